"""The claims-ledger page (icar.sphinx_ledger) generated from a small fake record folder and fake chapters."""
import json

import nbformat
import pytest

from icar import sphinx_ledger as L


def record(id, passed=True, relation="<=", **kw):
    r = {"id": id, "statement": f"statement of {id}", "source": "course derivation", "measured": 1e-14,
         "expected": None, "formula": None, "relation": relation, "tolerance": "<= 1e-10",
         "justification": "float64 rounding", "passed": passed}
    r.update(kw)
    return r


def write_jsonl(folder, chapter, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{chapter}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_chapter(book, name, *markdown):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(m) for m in markdown] + [nbformat.v4.new_code_cell("1 + 1")]
    nbformat.write(nb, book / f"{name}.ipynb")


@pytest.fixture
def book(tmp_path):
    """Chapters 2 and 10 (so that alphabetical and course order differ) and records written out of order."""
    book = tmp_path / "book"
    book.mkdir()
    write_chapter(book, "02_second", "# Chapter 2. The second chapter\n\ntext",
                  "```{prf:proposition} OLS is exact\n:label: ch02-prop-ols\n```\nproof")
    write_chapter(book, "10_tenth", "# The tenth chapter",
                  ":::{prf:lemma} A small lemma\n:nonumber:\n:label: ch10-lem-small\n:::")
    claims = book / "_claims"
    write_jsonl(claims, "ch10", [record("ch10.b"), record("ch10.a", passed=False, measured=0.5)])
    write_jsonl(claims, "ch02", [
        record("ch02.z", source="course derivation (Proposition ch02-prop-ols)"),
        record("ch02.a", relation="close", expected=0.5, formula="1/2", measured=0.501,
               tolerance="|measured - expected| <= 0.01", justification="Monte-Carlo: 5 standard errors"),
        record("ch02.m", relation=">=", tolerance=">= 0.9", measured=0.95, justification=None,
               source="Lemma ch10-lem-small and ch99-unknown-label")])
    return book


def test_records_come_in_course_order_and_checking_order(book):
    recs = L.read_records(book / "_claims")
    assert list(recs) == ["ch02", "ch10"]                       # not "ch10" < "ch02" alphabetically by id
    assert [r["id"] for r in recs["ch02"]] == ["ch02.z", "ch02.a", "ch02.m"]


def test_a_recheck_keeps_the_last_record_in_place(tmp_path):
    write_jsonl(tmp_path, "ch01", [record("ch01.x", passed=False), record("ch01.y"), record("ch01.x")])
    recs = L.read_records(tmp_path)["ch01"]
    assert [(r["id"], r["passed"]) for r in recs] == [("ch01.x", True), ("ch01.y", True)]


def test_chapters_and_statements_are_found(book):
    ch = L.find_chapters(book)
    assert ch["ch02"] == L.Chapter("ch02", 2, "02_second", "The second chapter")   # "Chapter 2." removed
    assert ch["ch10"].title == "The tenth chapter"
    st = L.find_statements(book)
    assert st["ch02-prop-ols"] == L.Statement("ch02-prop-ols", "proposition", "OLS is exact", 2)
    assert st["ch10-lem-small"] == L.Statement("ch10-lem-small", "lemma", "A small lemma", 10)


def test_sources_read_as_linked_titles(book):
    st = L.find_statements(book)
    assert (L.readable_source("course derivation (Proposition ch02-prop-ols)", st)
            == "course derivation ({prf:ref}`ch02-prop-ols`: *OLS is exact*, chapter 2)")
    out = L.readable_source("Lemma ch10-lem-small and ch99-unknown-label", st)
    assert out == "{prf:ref}`ch10-lem-small`: *A small lemma*, chapter 10 and ch99-unknown-label"
    assert L.readable_source("Sander et al. (2024)", st) == "Sander et al. (2024)"


def test_check_text_for_each_relation():
    assert L.check_text(record("a")) == "measured 1e-14 ≤ 1e-10"
    assert L.check_text(record("a", relation=">=", tolerance=">= 0.9", measured=0.95)) == "measured 0.95 ≥ 0.9"
    close = record("a", relation="close", expected=0.5, formula="1/2", measured=0.501,
                   tolerance="|measured - expected| <= 0.01")
    assert L.check_text(close) == "measured 0.501; expected 1/2 = 0.5 ± 0.01"


def test_page_has_counts_status_first_and_justifications(book):
    md = L.ledger_markdown(book / "_claims", book)
    assert md.startswith("**4 of 5 claims hold**, in 2 chapters.")
    # summary: per chapter passed / total, linked to the chapter, in course order
    assert md.index("{doc}`Chapter 2. The second chapter <02_second>`") < md.index("{doc}`Chapter 10.")
    assert "  - 3 / 3\n" in md and "  - 1 / 2 **(failures)**\n" in md and "  - 4 / 5 **(failures)**\n" in md
    # sections in course order, rows in checking order
    assert md.index("## Chapter 2. The second chapter") < md.index("## Chapter 10. The tenth chapter")
    assert md.index("`ch02.z`") < md.index("`ch02.a`") < md.index("`ch02.m`")
    assert md.index("`ch10.b`") < md.index("`ch10.a`")
    assert "{doc}`Read the chapter <02_second>`: 3 of 3 claims hold." in md
    # status is the first column, the reason for the tolerance the last
    assert "* - status\n  - claim and source\n  - check\n  - why this tolerance\n" in md
    assert "* - **FAIL**\n  - statement of ch10.a" in md
    assert "Monte-Carlo: 5 standard errors" in md and "*(no justification recorded)*" in md
    assert "{prf:ref}`ch02-prop-ols`: *OLS is exact*, chapter 2" in md
    assert ":widths: 8 44 20 28" in md and ":width: 100%" in md


def test_cell_text_cannot_open_a_list_or_break_a_row(book):
    write_jsonl(book / "_claims", "ch02", [record("ch02.q", statement="- log p\nfalls | below 1")])
    md = L.ledger_markdown(book / "_claims", book)
    assert "  - \\- log p falls | below 1\n" in md


def test_empty_or_missing_folder_says_so(tmp_path):
    assert "No claim has been recorded yet" in L.ledger_markdown(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    assert "No claim has been recorded yet" in L.ledger_markdown(tmp_path / "empty")


def test_records_of_an_unknown_chapter_still_show(tmp_path):
    write_jsonl(tmp_path / "_claims", "extra", [record("extra.a")])
    md = L.ledger_markdown(tmp_path / "_claims", tmp_path)
    assert "## Chapter extra" in md and "`extra.a`" in md


def test_plain_text_is_escaped_for_markdown():
    """A justification such as ``p_{t-1}^2 ||C||_F^2 ... p_{t-1} = 0`` must not turn into italics, code or math."""
    from icar.sphinx_ledger import _inline
    out = _inline("p_{t-1}^2 ||C||_F^2 at (p_{t-1} = 0), a*b, $x$, `c`, [1] <b>")
    assert "_" not in out.replace("\\_", "") and "*" not in out.replace("\\*", "")
    assert "\\$x\\$" in out and "\\`c\\`" in out and "\\[1\\]" in out and "\\<b\\>" in out
    assert _inline("- a list?") == "\\- a list?" and _inline("  two\n lines ") == "two lines"
