"""Run the chapters as a Colab student would, and move every explorer's first control.

Not collected by pytest (it needs its own environment). It checks what a fresh Colab runtime sees: the library
installed from a built wheel (not editable, not on ``sys.path`` from the repository), an ipywidgets of the user's
choice (Colab ships 7.7), and an IPython shell (so that ``interact`` reports a failing callback as a traceback rather
than a log line). Every code cell of every chapter runs in quick mode; each ``interact`` builds its widget inside an
``Output`` widget, and after the chapter ran, the first control of each explorer is moved (a slider to its minimum,
a dropdown to its next option) so the callback runs again with a new value. Any traceback fails the run.

    python -m venv /tmp/venv-w7 && /tmp/venv-w7/bin/pip install dist/icar-*.whl[corpus] torch==2.13.0 \\
        "ipywidgets==7.7.*" ipython
    cd /tmp && ICAR_QUICK=1 ICAR_PROGRESS=0 MPLBACKEND=Agg /tmp/venv-w7/bin/python \\
        /path/to/repo/tests/colab_explorers.py /path/to/repo/book/0*.ipynb
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(paths: list[str]) -> int:
    import ipywidgets
    from IPython.core.interactiveshell import InteractiveShell

    import icar
    repo = Path(__file__).resolve().parents[1]
    assert repo not in Path(icar.__file__).resolve().parents, f"icar imported from the repository: {icar.__file__}"
    print(f"python {sys.version.split()[0]} | ipywidgets {ipywidgets.__version__} | icar {icar.__version__} "
          f"from {icar.__file__}")

    created: list = []
    original_init = ipywidgets.interactive.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        created.append(self)
    ipywidgets.interactive.__init__ = recording_init

    shell = InteractiveShell.instance()
    failures: list[str] = []
    shell.showtraceback = lambda *a, **k: failures.append("".join(__import__("traceback").format_exc()))
    os.environ.setdefault("ICAR_CLAIMS_DIR", tempfile.mkdtemp(prefix="icar-claims-"))
    for path in paths:
        start, n_before, n_fail = time.time(), len(created), len(failures)
        cells = [c for c in json.loads(Path(path).read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
        out = ipywidgets.Output()
        for i, cell in enumerate(cells):
            src = "".join(cell["source"])
            with out:
                result = shell.run_cell(src, silent=True)
            if not result.success:
                failures.append(f"{Path(path).name} cell {i}: {result.error_in_exec or result.error_before_exec!r}")
                break
        mine = created[n_before:]
        for w in mine:
            control = next((c for c in w.children if hasattr(c, "value") and not isinstance(c, ipywidgets.Output)),
                           None)
            if control is None:
                failures.append(f"{Path(path).name}: an explorer without a control")
                continue
            if hasattr(control, "options") and len(control.options) > 1:
                labels = [o[1] if isinstance(o, tuple) else o for o in control.options]
                control.value = labels[(labels.index(control.value) + 1) % len(labels)]
            elif hasattr(control, "min"):
                control.value = control.min
            with out:
                w.update()
        status = "ok" if len(failures) == n_fail else "FAILED"
        print(f"{Path(path).name}: {len(cells)} cells, {len(mine)} explorer(s) moved, {time.time() - start:.0f} s, "
              f"{status}", flush=True)
        __import__("matplotlib.pyplot").pyplot.close("all")
        shell.reset(new_session=False)
    for f in failures:
        print("FAILURE:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
