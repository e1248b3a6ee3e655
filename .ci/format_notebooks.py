"""Format the code cells of the chapters and assignments so that every line fits the book's code column.

    python .ci/format_notebooks.py                 # book/*.ipynb and book/assignments/*/*.ipynb
    python .ci/format_notebooks.py book/04_*.ipynb

The rendered page shows about 88 characters of code per line; a longer line wraps in the middle of an expression.
So: a trailing comment that would push its line past the limit moves onto its own line above the code, a comment
line past the limit is re-wrapped, and then black (``pip install "black[jupyter]"``) lays the code out at 88
columns, splitting long strings too (its ``string_processing`` feature). ``tests/test_notebooks_clean.py`` checks the
result without needing black. Run ``python -m icar.classroom`` afterwards to regenerate the student copies.
"""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import nbformat

LIMIT = 88
ROOT = Path(__file__).resolve().parents[1]
BLACK = ["black", "-q", f"--line-length={LIMIT}", "--preview", "--enable-unstable-feature", "string_processing"]


def _comments(source: str) -> dict[int, int]:
    """Line number (1-based) -> column of a comment that follows code on that line."""
    out: dict[int, int] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return out
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            if tok.line[:col].strip():
                out[row] = col
    return out


def lift_comments(source: str, limit: int = LIMIT) -> str:
    """Move over-long trailing comments above their line; re-wrap over-long comment lines."""
    trailing = _comments(source)
    lines = source.split("\n")
    out: list[str] = []
    for row, line in enumerate(lines, start=1):
        indent = line[: len(line) - len(line.lstrip())]
        if len(line) > limit and row in trailing:
            col = trailing[row]
            comment, code = line[col:].lstrip("# ").rstrip(), line[:col].rstrip()
            out += [indent + "# " + part for part in textwrap.wrap(comment, limit - len(indent) - 2)]
            out.append(code)
        elif len(line) > limit and line.lstrip().startswith("#") and not line.lstrip().startswith("#!"):
            out += [indent + "# " + part
                    for part in textwrap.wrap(line.lstrip().lstrip("# "), limit - len(indent) - 2)]
        else:
            out.append(line)
    return "\n".join(out)


def format_notebook(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = lift_comments(cell.source)
    nbformat.write(nb, path)
    subprocess.run(BLACK + [str(path)], check=True)
    nb = nbformat.read(path, as_version=4)                # black may leave a comment past the limit: once more
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = lift_comments(cell.source)
    nbformat.write(nb, path)
    subprocess.run(BLACK + [str(path)], check=True)


def main(paths: list[str]) -> None:
    files = [Path(p) for p in paths] or sorted([*ROOT.glob("book/*.ipynb"), *ROOT.glob("book/assignments/*/*.ipynb")])
    for path in files:
        format_notebook(path)
        print("formatted", path)


if __name__ == "__main__":
    main(sys.argv[1:])
