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
        direct = arg.value if isinstance(arg, ast.FormattedValue) else arg
        if isinstance(arg, ast.JoinedStr):
            direct = None
            bad += [ast.unparse(v.value) for v in arg.values if isinstance(v, ast.FormattedValue)
                    and isinstance(v.value, ast.Call) and getattr(v.value.func, "attr", "") in ("tolist", "numpy")]
        if (isinstance(direct, ast.Call) and getattr(direct.func, "attr", "") in ("tolist", "numpy") and not matrix_ok
                or isinstance(direct, ast.Call) and getattr(direct.func, "id", "") == "dict"):
            bad.append(ast.unparse(direct))
        for node in ast.walk(arg):
            if isinstance(node, ast.List) and any(isinstance(e, ast.Call) and getattr(e.func, "id", "") == "round"
                                                  for e in node.elts):
                bad.append(ast.unparse(node))
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
    assert _raw_print_args(call('print("loss:", loss.numpy())'))
    assert _raw_print_args(call('print("in", [round(a, 4), round(b, 4)])'))
    assert _raw_print_args(call('print(f"edges: {A.sum(1).tolist()}")'))
    assert _raw_print_args(call('print("k:", dict(zip(a.tolist(), b.tolist())))'))
    assert not _raw_print_args(call('print("c", numbers(c, ".3f"), f"{x:.2f}")'))


# A chapter is read, so its code cells are short and call the library (CONTRIBUTING.md): a cell that draws holds the
# call of a figure function of icar.figures and little else, and no cell asks a reader to follow too many steps at
# once. The budgets count statements (Python's own: an assignment, a call, a loop header and each statement of its
# body), not lines: the 88-column layout of .ci/format_notebooks.py spreads one claim call over a dozen lines, yet it
# is one step to read. DRAW_BUDGET: the drawing cells that call a figure function carry a few statements besides
# (explorer cells: the controls); CELL_BUDGET: the longest run or claim cells that read as one idea. Every exemption
# names its cell by a line in it and says why; an exemption that no longer applies fails, so the list stays true.
_DRAWS = (r"plt\.(?:subplots|figure|subplot)\(", r"\.add_subplot\(", r"\.add_gridspec\(", r"\.heatmap\(",
          r"\.(?:plot|semilogy|semilogx|loglog|scatter|imshow|hist|bar|fill_between|plot_surface|quiver)\(",
          r"\.(?:axhline|axvline|set_xlabel|set_ylabel|legend)\(")
DRAW_BUDGET, CELL_BUDGET = 12, 20
_DRAW_EXEMPT: dict[tuple[str, str], str] = {}
_CELL_EXEMPT: dict[tuple[str, str], str] = {}


def _code_cells(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [(i, "".join(c["source"])) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def _statements(src: str) -> int:
    """Number of statements in a cell (IPython magics and shell lines left out)."""
    import ast
    code = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
    return sum(isinstance(node, ast.stmt) for node in ast.walk(ast.parse(code)))


def _exempt(table, path, src):
    return next((key for key in table if key[0] == path.name and key[1] in src), None)


def _draws(src):
    import re
    return any(re.search(p, src) for p in _DRAWS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_drawing_cells_are_short(path):
    long = [(i, _statements(src)) for i, src in _code_cells(path)
            if _draws(src) and _statements(src) > DRAW_BUDGET and not _exempt(_DRAW_EXEMPT, path, src)]
    assert not long, (f"{path.name}: cells (index, statements) that draw with more than {DRAW_BUDGET} statements: "
                      f"{long}; move the drawing into a function of icar.figures")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_fit_the_budget(path):
    long = [(i, _statements(src)) for i, src in _code_cells(path)
            if _statements(src) > CELL_BUDGET and not _exempt(_CELL_EXEMPT, path, src)]
    assert not long, (f"{path.name}: code cells (index, statements) over {CELL_BUDGET} statements: {long}; split "
                      "them into a run cell and claim cells grouped by idea")


@pytest.mark.parametrize("table, budget, draws",
                         [(_DRAW_EXEMPT, DRAW_BUDGET, True), (_CELL_EXEMPT, CELL_BUDGET, False)], ids=["draw", "cell"])
def test_budget_exemptions_still_apply(table, budget, draws):
    for (name, needle), reason in table.items():
        cells = [src for _, src in _code_cells(ROOT / "book" / name) if needle in src]
        assert len(cells) == 1, f"{name}: the exempt cell '{needle}' is not found once ({len(cells)} matches)"
        assert _statements(cells[0]) > budget and (_draws(cells[0]) or not draws), (
            f"{name}: the cell '{needle}' is within the budget now; remove its exemption ({reason})")


def test_budget_counts_statements_not_lines():
    cell = "fig, ax = plt.subplots(figsize=(6, 4))\n" + "ax.plot([0, 1], [0, 1])\n" * DRAW_BUDGET
    assert _draws(cell) and _statements(cell) == DRAW_BUDGET + 1
    assert _statements("claim(\n    'id',\n    'statement',\n    measured=x,\n    upper=1,\n)\n") == 1
    assert _statements("for k in range(3):\n    a = k\n    b = a\n") == 3
    assert not _draws("fig = figs.plot_blowup(Ts, blow)\nprint(plotting.numbers(x))")


LINE_LIMIT = 88   # the code column of the rendered page (.ci/format_notebooks.py lays the cells out to it)
ASSIGNMENTS = sorted((ROOT / "book" / "assignments").glob("*/*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS + ASSIGNMENTS, ids=lambda p: p.name)
def test_code_lines_fit_the_page(path):
    """A longer line wraps in the middle of an expression on the page: run .ci/format_notebooks.py."""
    long = [(i, len(line)) for i, src in _code_cells(path) for line in src.splitlines() if len(line) > LINE_LIMIT]
    assert not long, f"{path.name}: code lines (cell, length) over {LINE_LIMIT} characters: {long[:8]}"


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


def test_display_math_starts_a_block():
    """MyST reads `$$ ... $$` as display math only where it starts a block (after a blank line); written inside a
    paragraph it is taken apart as inline math, and the text around it runs together in italics."""
    bad = []
    for name, i, src in _markdown_sources():
        lines, inside = src.split("\n"), False
        for k, line in enumerate(lines):
            n = line.count("$$")
            if not n:
                continue
            opens = not inside
            prev = lines[k - 1].strip() if k else ""
            if opens and prev and not prev.startswith((":", "```", "$$")):
                bad.append((name, i, line.strip()[:50]))
            inside = inside if n % 2 == 0 else not inside
    assert not bad, f"display math inside a paragraph (put a blank line before its $$): {bad}"
