"""Chapter notebooks are stored without outputs, start with the setup cell, and are all in the table of contents."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no chapter notebook found in book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; run nbstripout before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_setup_cell(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    src = "".join(code[0]["source"])
    assert "google.colab" in src and "icar.setup" in src, (
        f"{path.name}: the first code cell must be the Colab/device setup cell (see CONTRIBUTING.md)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_toc(path):
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert f"book/{path.stem}" in toc, f"{path.name} is not listed in _toc.yml"


# A printed line reads as text: `numbers(x, ".3f")` (icar.figures.style) gives "0.123, 0.456". A list of formatted
# strings prints its quotes and brackets (['0.123', '0.456']), a dict of them its braces, and a bare vector numpy's
# own layout. A matrix printed on lines of its own (after a string ending in a newline) keeps numpy's layout: its rows
# and columns line up.
def _raw_print_args(call: "ast.Call") -> list[str]:
    import ast
    bad, matrix_ok = [], False
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            matrix_ok = arg.value.endswith("\n")
            continue
        for node in ast.walk(arg):
            if isinstance(node, (ast.ListComp, ast.DictComp)):
                elts = [node.elt] if isinstance(node, ast.ListComp) else [node.value]
                if any(isinstance(e, ast.JoinedStr) or (isinstance(e, ast.Call) and getattr(e.func, "id", "") == "round")
                       for e in elts):
                    bad.append(ast.unparse(node))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "round":
                base = node.func.value
                numpy_round = isinstance(base, ast.Name) and base.id in ("np", "numpy")
                array_round = isinstance(base, ast.Call) and getattr(base.func, "attr", "") == "numpy"
                if numpy_round or (array_round and not matrix_ok):
                    bad.append(ast.unparse(node))
        matrix_ok = False
    return bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_printed_numbers_are_formatted(path):
    import ast
    nb = json.loads(path.read_text(encoding="utf-8"))
    raw = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code":
            continue
        src = "\n".join(line for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print":
                raw += [(i, expr) for expr in _raw_print_args(node)]
    assert not raw, f"{path.name}: printed lists or arrays of raw numbers (use icar.figures.style.numbers): {raw}"


def test_raw_print_detector_flags_what_it_should():
    import ast
    call = lambda src: ast.parse(src).body[0].value          # noqa: E731
    assert _raw_print_args(call('print("a", [f"{v:.2f}" for v in x.tolist()])'))
    assert _raw_print_args(call('print([round(v, 3) for v in xs])'))
    assert _raw_print_args(call('print({k: f"{v:.1e}" for k, v in d.items()})'))
    assert _raw_print_args(call('print("c", c.numpy().round(3))'))
    assert _raw_print_args(call('print(np.round(x, 3))'))
    assert not _raw_print_args(call('print("matrix:\\n", m.numpy().round(3))'))
    assert not _raw_print_args(call('print("c", numbers(c, ".3f"), f"{x:.2f}")'))


def _markdown_sources():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, c in enumerate(nb["cells"]):
            if c["cell_type"] == "markdown":
                yield path.name, i, "".join(c["source"])
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, 0, path.read_text(encoding="utf-8")


def test_no_line_inside_inline_math_starts_like_a_list_item():
    """A line that starts with `+ `, `- `, `* ` or `1. ` is a Markdown list item even inside `$...$`: the formula breaks
    and the rest of the paragraph renders as run-together italics. Keep the operator at the end of the line above."""
    import re
    bad = []
    for name, i, src in _markdown_sources():
        opened = ""
        for line in src.split("\n"):
            if not line.strip():
                opened = ""
                continue
            if re.match(r"\s*([+*-]|\d+[.)])\s", line) and opened.count("$") % 2 == 1:
                bad.append((name, i, line[:60]))
            opened += line.replace("$$", "") + "\n"
    assert not bad, f"lines that would start a list inside inline math: {bad}"
