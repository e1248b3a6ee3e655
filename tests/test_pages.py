"""What the rendered pages show: no echoed claim reprs, progress bars that finish, the book build's environment."""
import os
from pathlib import Path

import torch
from IPython.core.interactiveshell import InteractiveShell

import icar
from icar import softmax_icl
from icar import sphinx_pages as book_ext


def test_a_claim_as_last_value_displays_nothing(capsys):
    c = icar.claim("test.pages", "one equals one", measured=1.0, upper=1.0, source="arithmetic",
                   justification="exact")
    assert "[PASS] test.pages" in capsys.readouterr().out
    shell = InteractiveShell.instance()
    data, meta = shell.display_formatter.format(c)
    assert data == {} and meta == {}                 # no Claim(id=...) repr under the [PASS] line


def test_reduced_gd_progress_bar_runs_to_its_end(monkeypatch):
    closed = []

    class Bar:
        def __init__(self, it, **kw):
            self.items, self.n = list(it), 0

        def __iter__(self):
            for x in self.items:
                yield x
                self.n += 1
            closed.append((self.n, len(self.items)))

    monkeypatch.setattr(softmax_icl, "tqdm", Bar)
    p = softmax_icl.feature_probs(3).unsqueeze(0)
    softmax_icl.reduced_gd(softmax_icl.mean_field_counts(p, 30), p, 1.0, 7, record_every=2, progress=True)
    assert closed == [(8, 8)]                        # the loop was not left early: a finished (not red) bar


def test_book_build_runs_static_explorers_without_bars(monkeypatch):
    monkeypatch.delenv("ICAR_EXPLORERS", raising=False)
    monkeypatch.delenv("ICAR_PROGRESS", raising=False)
    meta = book_ext.setup(None)
    assert os.environ["ICAR_EXPLORERS"] == "static" and os.environ["ICAR_PROGRESS"] == "0"
    assert meta["parallel_read_safe"]
    assert not icar.runtime.progress_enabled()
    torch.manual_seed(0)


def test_theorems_are_numbered_per_chapter():
    nums = {"book/03_mesa_optimizer": {"proposition": {"p-a": (4,), "p-b": (6,)}, "lemma": {"l": (2,)},
                                       "figure": {"f": (9,)}},
            "book/intro": {"proposition": {"q": (1,)}}}
    assert book_ext.per_chapter(nums, {"proposition", "lemma"}) == ["book/03_mesa_optimizer"]
    assert nums["book/03_mesa_optimizer"] == {"proposition": {"p-a": (3, 1), "p-b": (3, 2)}, "lemma": {"l": (3, 1)},
                                             "figure": {"f": (9,)}}
    assert nums["book/intro"] == {"proposition": {"q": (1,)}}
    assert book_ext.chapter_of("book/08_planning_path_finding") == 8 and book_ext.chapter_of("book/claims") is None


def test_numbers_are_formatted_for_print():
    from icar.figures.style import numbers

    assert numbers(torch.tensor([0.012345, 3.0])) == "0.0123, 3"
    assert numbers(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), ".0f") == "(1, 2), (3, 4)"
    assert numbers([5, 10], ".0f") == "5, 10" and numbers(0.5, ".2f") == "0.50"


def _notebooks():
    import nbformat
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return [(p.name, nbformat.read(p, as_version=4)) for p in sorted((root / "book").glob("0*.ipynb"))]


def test_rendered_cells_carry_no_test_markers_and_titles_match():
    for name, nb in _notebooks():
        code = [c for c in nb.cells if c.cell_type == "code"]
        marked = [i for i, c in enumerate(code[1:], start=1) if "NBVAL_" in c.source]
        assert not marked, f"{name}: code cells {marked} show an NBVAL comment; use the cell tag nbval-ignore-output"
        title = nb.cells[0].source.splitlines()[0]
        assert title.startswith("# ") and not title.lower().startswith("# chapter"), f"{name}: title {title!r}"


def test_every_explorer_is_one_cell_live_or_static():
    for name, nb in _notebooks():
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        if name[:2] in {"01", "02", "03", "04", "05", "06", "07", "08"}:    # the chapters with an explorer
            assert sum("explorer.show(" in s for s in code) == 1, f"{name}: expected one explorer.show(...) cell"
        assert not any(".interact(" in s for s in code), f"{name}: call explorer.show, not ipywidgets.interact"


# Legibility at the page width: the browser scales a figure of width w (inches) into the content column, so text of
# size pt shows at pt * CONTENT_PX / (72 w) CSS px; it must be at least the caption text (CAPTION_PX).
_FIGSIZE = __import__("re").compile(r"figsize\s*=\s*\(\s*([^,]+?)\s*,")
_EXPLICIT_FONT = __import__("re").compile(r"\b(?:fontsize|labelsize|size)\s*=\s*([0-9.]+)")


def _width_in(expr: str, where: str) -> float:
    from icar.figures import style

    if expr.split(".")[-1] == "PAGE_WIDTH_IN":
        return style.PAGE_WIDTH_IN
    try:
        return float(expr)
    except ValueError:
        raise AssertionError(f"{where}: figsize width {expr!r} is neither a number nor PAGE_WIDTH_IN; a width that "
                             "grows with the data cannot be checked against the page") from None


def _figure_sources():
    """(where, code, base font size in force) for every notebook code cell and every library figure function."""
    import ast
    from pathlib import Path

    import matplotlib as mpl

    from icar.figures import style

    for name, nb in _notebooks():
        styled = any("use_style()" in c.source for c in nb.cells if c.cell_type == "code")
        base = style.FONT_PT if styled else mpl.rcParamsDefault["font.size"]
        for i, c in enumerate(nb.cells):
            if c.cell_type == "code" and "figsize" in c.source:
                yield f"{name} cell {i}", c.source, base
    for path in sorted(Path(style.__file__).parent.glob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef):
                code = ast.get_source_segment(text, node)
                if "figsize" in code:
                    yield f"icar/figures/{path.name}:{node.name}", code, style.FONT_PT


def test_legibility_bound_follows_from_the_measured_page():
    import matplotlib as mpl

    from icar.figures import style

    px = lambda pt, w: pt * style.CONTENT_PX / (72 * w)             # noqa: E731 (shown text size, CSS px)
    bound = style.max_width_in()
    assert abs(px(style.FONT_PT, bound) - style.CAPTION_PX) < 1e-9   # the bound is where the text reaches caption size
    assert 7.7 < bound < 7.8 and style.PAGE_WIDTH_IN <= bound
    assert style.max_width_in(10) < 6.5                              # matplotlib's 10 pt allowed only 6.47 in
    with mpl.rc_context():
        style.use_style()
        assert mpl.rcParams["font.size"] == style.FONT_PT
        for key in ("xtick.labelsize", "ytick.labelsize", "legend.fontsize", "axes.labelsize"):
            assert mpl.rcParams[key] in ("medium", "large", "larger") or float(mpl.rcParams[key]) >= style.FONT_PT


def test_every_figure_is_legible_at_the_page_width():
    from icar.figures import style

    sources = list(_figure_sources())
    assert len(sources) > 30                                         # the parser sees the course's figures
    too_wide = []
    for where, code, base in sources:
        smallest = min([base] + [float(s) for s in _EXPLICIT_FONT.findall(code) if float(s) < base])
        for expr in _FIGSIZE.findall(code):
            w = _width_in(expr.strip(), where)
            if w > style.max_width_in(smallest):
                too_wide.append(f"{where}: {w:g} in at {smallest:g} pt (at most {style.max_width_in(smallest):.2f} in)")
    assert not too_wide, "figures whose text is smaller than the captions at the page width:\n" + "\n".join(too_wide)


def test_legibility_check_catches_a_wide_figure():
    import re

    from icar.figures import style

    code = "fig, axs = plt.subplots(1, 3, figsize=(13, 3.6))\naxs[0].legend(fontsize=7)"
    assert [float(w) for w in _FIGSIZE.findall(code)] == [13.0] and _EXPLICIT_FONT.findall(code) == ["7"]
    assert 13 > style.max_width_in(style.FONT_PT) and style.PAGE_WIDTH_IN > style.max_width_in(7)
    assert re.fullmatch(r"PAGE_WIDTH_IN", _FIGSIZE.findall("figsize=(figs.PAGE_WIDTH_IN, 4)")[0].split(".")[-1])


def test_bibliography_labels_are_author_year_as_cited():
    """The bibliography's labels match the author-year citations of the text, with a letter where two would clash."""
    from pybtex.database import BibliographyData, Entry, Person, parse_file
    from pybtex.plugin import find_plugin

    book_ext.register_author_year_style()
    style = find_plugin("pybtex.style.formatting", "icar_author_year")()
    labels = {e.key: e.label for e in style.format_entries(parse_file(str(Path(__file__).resolve().parents[1] / "references.bib")).entries.values())}
    assert labels["sander2024icar"] == "Sander et al. 2024" and labels["sander2025kernel"] == "Sander and Peyré 2025"
    assert "Kaczmarz 1937" in labels.values() and "Sander and Peyré 2025" in labels.values()
    assert "von Oswald et al. 2023" in labels.values()
    twin = BibliographyData({k: Entry("article", fields={"title": k, "year": "2020", "journal": "J"},
                                      persons={"author": [Person(n) for n in ("Doe, Jane", "Roe, Rick", "Poe, Pat")]}) for k in "xy"})
    assert sorted(e.label for e in style.format_entries(twin.entries.values())) == ["Doe et al. 2020a",
                                                                                    "Doe et al. 2020b"]
