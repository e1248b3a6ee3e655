"""Wall-clock time of every chapter notebook in quick, full and paper mode (``ICAR_SCALE``), as a table.

Each notebook is executed top to bottom with nbclient in a fresh kernel (so every claim is asserted again); a failing
cell is reported as ``FAIL`` with the error's first line, and the table goes on. Run from the repository root:

    python benchmarks/chapter_times.py --modes quick,full          # all chapters
    python benchmarks/chapter_times.py --modes paper --chapters 04,05 --timeout 7200

Timings on a shared machine are only meaningful as ratios within one run. ``--json`` writes the raw numbers.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def run(path: str, mode: str, timeout: int) -> tuple[float, str]:
    """Execute one notebook at ``mode`` (on the device ``icar.setup`` picks: CUDA, then MPS, then the CPU); return
    (seconds, "ok" or the first line of the error)."""
    # Static explorers, as in the book build: a live explorer's Output widget makes nbclient send comm messages on
    # the shell channel, which can lose the wake-up of a cell's reply (benchmarks/kernel_stall.py).
    env = {"ICAR_SCALE": mode, "ICAR_PROGRESS": "0", "ICAR_EXPLORERS": "static"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(path)}})
    t0 = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except CellExecutionError as err:
        lines = [ln for ln in str(err).splitlines() if "Error" in ln]  # the exception line of the failing cell
        status = "FAIL: " + (lines[-1] if lines else str(err).splitlines()[0])[:120]
    except Exception as err:  # a timeout or a dead kernel: report and go on
        status = f"FAIL: {type(err).__name__}: {str(err)[:100]}"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return time.perf_counter() - t0, status


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default="quick,full", help="comma-separated: quick, full, paper")
    p.add_argument("--chapters", default="", help="comma-separated prefixes, e.g. 02,05 (default: all)")
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell (a stalled kernel is retried once)")
    p.add_argument("--json", default=None, help="write the results to this file")
    a = p.parse_args()
    paths = sorted(glob.glob("book/0*.ipynb"))
    if a.chapters:
        paths = [q for q in paths if any(os.path.basename(q).startswith(c) for c in a.chapters.split(","))]
    modes = a.modes.split(",")
    results: dict[str, dict[str, tuple[float, str]]] = {}
    print(f"{'chapter':40s} " + " ".join(f"{m:>12s}" for m in modes), flush=True)
    for path in paths:
        row = results.setdefault(os.path.basename(path), {})
        for mode in modes:
            row[mode] = run(path, mode, a.timeout)
            if "Timeout" in row[mode][1] or "DeadKernel" in row[mode][1]:   # a stalled kernel: one more try
                seconds, status = run(path, mode, a.timeout)
                row[mode] = (seconds, status)
                print(f"    {mode}: the first run stalled; retried: {status}", flush=True)
        print(f"{os.path.basename(path):40s} " + " ".join(
            f"{row[m][0]:>10.0f} s" if row[m][1] == "ok" else f"{'FAIL':>12s}" for m in modes), flush=True)
        for m in modes:
            if row[m][1] != "ok":
                print(f"    {m}: {row[m][1]}", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
