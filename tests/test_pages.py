"""What the rendered pages show: no echoed claim reprs, progress bars that finish, the book build's environment."""
import os

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
