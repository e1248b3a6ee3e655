"""Mutation score per module from mutmut's records in mutants/ (run `.ci/mutation run` first).

Prints, for each mutated module, killed / checked (timeouts count as killed: the mutant broke the code) and the
mutants that survived or had no test, so they can be read with `.ci/mutation show NAME`.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

KILLED = {"killed", "timeout", "segfault"}


def main(root: str = "mutants/src/icar") -> None:
    total = Counter()
    for meta in sorted(Path(root).glob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        status = {k: status_by_exit_code[v] for k, v in codes.items()}
        kinds = Counter(status.values())
        checked = sum(n for s, n in kinds.items() if s != "not checked")
        killed = sum(kinds[s] for s in KILLED)
        if not checked:
            continue
        module = meta.name.removesuffix(".py.meta")
        print(f"{module:12s} killed {killed:4d} / {checked:4d} = {killed / checked:6.1%}  " +
              ", ".join(f"{s} {n}" for s, n in sorted(kinds.items()) if s not in KILLED))
        total.update(kinds)
        for k, s in sorted(status.items(), key=lambda kv: (kv[1], kv[0])):
            if s in ("survived", "no tests", "suspicious"):
                print(f"    {s:9s} {k}")
    checked = sum(n for s, n in total.items() if s != "not checked")
    killed = sum(total[s] for s in KILLED)
    if checked:
        print(f"{'all':12s} killed {killed:4d} / {checked:4d} = {killed / checked:6.1%}")


if __name__ == "__main__":
    main(*sys.argv[1:])
