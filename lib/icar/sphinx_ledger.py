"""Sphinx extension: fill the claims-ledger page from the records the chapters wrote while the book executed them.

Every ``icar.claim`` call of an executed chapter appends one JSON line to ``book/_claims/<chapter>.jsonl`` (the
notebooks run with ``book/`` as working directory). Sphinx reads documents in sorted order, so the chapter notebooks
(``book/01_...``) are executed before the ledger page (``book/claims.md``) is read; this extension then replaces the
marker ``<!-- claims-ledger -->`` with the ledger, and forces the page to be re-read at every build so it never goes
stale.

The page is built by small functions, each a pure function of its inputs (tested in ``tests/test_ledger.py``):

* :func:`read_records`: the records of each chapter, in the order the chapter checked them;
* :func:`find_chapters` and :func:`find_statements`: the chapters' titles and the labelled statements
  (``prf:theorem``, ``prf:lemma``, ...) of the book's sources, so that a source naming a label reads as a link with
  the statement's title and chapter;
* :func:`summary_table`, :func:`chapter_section` (one row per claim: :func:`claim_row`): Markdown (MyST);
* :func:`ledger_markdown`: the whole page body.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

MARKER = "<!-- claims-ledger -->"
LEDGER_DOC = "book/claims"
LABEL = re.compile(r"\b(?:(?:Propositions?|Lemmas?|Theorems?|Definitions?|Corollary|Algorithm|Conjecture)\s+)?"
                   r"(ch\d\d-[a-z0-9-]*[a-z0-9])", re.I)
_DIRECTIVE = re.compile(r"^[`:]{3,}\{prf:(\w+)\}[ \t]*(.*)\n((?:[ \t]*:[\w-]+:.*\n)*)", re.M)


@dataclass(frozen=True)
class Chapter:
    """A chapter notebook: its key in the records (``ch01``), number, document name (``01_...``) and title."""

    key: str
    number: int
    docname: str
    title: str


@dataclass(frozen=True)
class Statement:
    """A labelled ``prf`` directive: kind (``proposition``), title, and the chapter it sits in."""

    label: str
    kind: str
    title: str
    chapter: int


def _chapter_number(key: str) -> int | None:
    m = re.fullmatch(r"ch(\d+)", key)
    return int(m.group(1)) if m else None


def read_records(folder: Path) -> dict[str, list[dict]]:
    """``{chapter: [record, ...]}`` from ``folder/<chapter>.jsonl``, chapters in course order (``ch01``, ``ch02``,
    ..., then any other name), records in the order they were checked; a re-checked id keeps its last record."""
    folder = Path(folder)
    out: dict[str, list[dict]] = {}
    paths = sorted(folder.glob("*.jsonl"), key=lambda p: (_chapter_number(p.stem) is None,
                                                          _chapter_number(p.stem) or 0, p.stem))
    for path in paths:
        rows: dict[str, dict] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["id"]] = row      # dicts keep first-insertion order: a re-check stays in place
        if rows:
            out[path.stem] = list(rows.values())
    return out


def _markdown_sources(book: Path) -> dict[str, str]:
    """``{docname: markdown text}`` of the chapter notebooks (markdown cells) and Markdown pages in ``book``."""
    out = {}
    for path in sorted(book.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        out[path.stem] = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for path in sorted(book.glob("*.md")):
        out[path.stem] = path.read_text(encoding="utf-8")
    return out


def find_chapters(book: Path) -> dict[str, Chapter]:
    """``{"ch01": Chapter(...)}`` for every notebook ``book/NN_*.ipynb``; the title is its first ``#`` heading
    without a leading "Chapter N." (the ledger writes the number itself)."""
    out = {}
    for docname, text in _markdown_sources(Path(book)).items():
        m = re.match(r"(\d\d)_", docname)
        if not m:
            continue
        number = int(m.group(1))
        heading = re.search(r"^# (.+)$", text, re.M)
        title = heading.group(1).strip() if heading else docname
        title = re.sub(r"^Chapter \d+\s*[.:]\s*", "", title)
        out[f"ch{number:02d}"] = Chapter(f"ch{number:02d}", number, docname, title)
    return out


def find_statements(book: Path) -> dict[str, Statement]:
    """``{label: Statement}`` for every labelled ``prf`` directive in the book's notebooks and pages."""
    out = {}
    for docname, text in _markdown_sources(Path(book)).items():
        m = re.match(r"(\d\d)_", docname)
        chapter = int(m.group(1)) if m else 0
        for d in _DIRECTIVE.finditer(text):
            label = re.search(r":label:[ \t]*(\S+)", d.group(3))
            if label:
                out[label.group(1)] = Statement(label.group(1), d.group(1), d.group(2).strip(), chapter)
    return out


def readable_source(source: str, statements: dict[str, Statement]) -> str:
    """The source with each known label (``Proposition ch01-prop-ols``) replaced by a link that reads
    ``Proposition 1.3: *Title*, chapter 1``; unknown labels are left as they are."""
    def link(m: re.Match) -> str:
        s = statements.get(m.group(1))
        if s is None:
            return m.group(0)
        where = f", chapter {s.chapter}" if s.chapter else ""
        title = f": *{s.title}*" if s.title else ""
        return f"{{prf:ref}}`{s.label}`{title}{where}"
    return LABEL.sub(link, source)


def _inline(text: object) -> str:
    """One line of plain text as Markdown that stays a paragraph inside a table cell: the characters Markdown would
    read as emphasis, code, links, HTML or math (``p_{t-1}^2 ||C||_F^2``, ``a*b``, ``$x$``) are escaped, and no list,
    heading or quote marker comes first."""
    s = re.sub(r"([\\`*_\[\]<>$~])", r"\\\1", " ".join(str(text).split()))
    return "\\" + s if re.match(r"[-+*#>|]|\d+[.)]\s", s) else s


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def check_text(r: dict) -> str:
    """What was measured against what: ``measured 0.5012; expected 1/2 = 0.5 ± 0.01``, or ``measured 3e-15 ≤ 1e-10``."""
    bound = re.search(r"(-?[\d.]+(?:e[-+]?\d+)?)\s*$", r["tolerance"])
    bound = bound.group(1) if bound else r["tolerance"]
    measured = f"measured {_num(r['measured'])}"
    if r["relation"] == "close":
        expected = _num(r.get("expected"))
        if r.get("formula"):
            expected = f"{_inline(r['formula'])} = {expected}"
        return f"{measured}; expected {expected} ± {bound}"
    return f"{measured} {'≤' if r['relation'] == '<=' else '≥'} {bound}"


def claim_row(r: dict, statements: dict[str, Statement]) -> list[str]:
    """The cells of one claim: status, claim (statement; id and readable source), check, tolerance's reason."""
    status = "pass" if r["passed"] else "**FAIL**"
    claim = f"{_inline(r['statement'])}\n\n`{r['id']}` · {readable_source(_inline(r['source']), statements)}"
    why = _inline(r["justification"]) if r.get("justification") else "*(no justification recorded)*"
    return [status, claim, check_text(r), why]


def _list_table(header: list[str], rows: list[list[str]], widths: str, css: str) -> str:
    lines = ["```{list-table}", ":header-rows: 1", f":widths: {widths}", ":width: 100%", f":class: {css}", ""]
    for row in [header, *rows]:
        for i, cell in enumerate(row):
            first, *rest = cell.split("\n")
            lines.append(("* - " if i == 0 else "  - ") + first)
            lines += [("    " + x) if x else "" for x in rest]
    return "\n".join(lines + ["```", ""])


def _chapter_of(key: str, chapters: dict[str, Chapter]) -> Chapter:
    return chapters.get(key) or Chapter(key, _chapter_number(key) or 0, "", key)


def _chapter_link(ch: Chapter) -> str:
    return f"{{doc}}`Chapter {ch.number}. {ch.title} <{ch.docname}>`" if ch.docname else f"Chapter {ch.key}"


def _count(rows: list[dict]) -> str:
    n_pass = sum(bool(r["passed"]) for r in rows)
    return f"{n_pass} / {len(rows)}" + ("" if n_pass == len(rows) else " **(failures)**")


def summary_table(records: dict[str, list[dict]], chapters: dict[str, Chapter]) -> str:
    """One row per chapter (linked) with its claims that hold, passed / total, and the book's total."""
    rows = [[_chapter_link(_chapter_of(k, chapters)), _count(v)] for k, v in records.items()]
    rows.append(["**All chapters**", _count([r for v in records.values() for r in v])])
    return _list_table(["chapter", "claims that hold"], rows, "80 20", "icar-ledger-summary")


def chapter_section(key: str, rows: list[dict], chapters: dict[str, Chapter],
                    statements: dict[str, Statement]) -> str:
    """A section for one chapter: heading, link and count, and one table row per claim in the chapter's order."""
    ch = _chapter_of(key, chapters)
    head = f"## Chapter {ch.number}. {ch.title}" if ch.docname else f"## Chapter {key}"
    n_pass = sum(bool(r["passed"]) for r in rows)
    link = f"{{doc}}`Read the chapter <{ch.docname}>`: " if ch.docname else ""
    intro = f"{link}{n_pass} of {len(rows)} claims hold."
    table = _list_table(["status", "claim and source", "check", "why this tolerance"],
                        [claim_row(r, statements) for r in rows], "8 44 20 28", "icar-ledger")
    return "\n".join([head, "", intro, "", table])


def ledger_markdown(folder: Path, book: Path | None = None) -> str:
    """The ledger as MyST Markdown: the total, a per-chapter summary, then one section per chapter.

    ``folder`` holds the ``<chapter>.jsonl`` records; ``book`` the chapter notebooks (for titles and links;
    default: the folder's parent)."""
    folder = Path(folder)
    records = read_records(folder) if folder.exists() else {}
    if not records:
        return "*No claim has been recorded yet: build the book to execute the chapters.*\n"
    book = Path(book) if book is not None else folder.parent
    chapters, statements = find_chapters(book), find_statements(book)
    every = [r for v in records.values() for r in v]
    n_pass = sum(bool(r["passed"]) for r in every)
    parts = [f"**{n_pass} of {len(every)} claims hold**, in {len(records)} chapters.", "", summary_table(records, chapters)]
    parts += [chapter_section(k, v, chapters, statements) for k, v in records.items()]
    return "\n".join(parts)


def _fill(app, docname: str, source: list[str]) -> None:
    if docname == LEDGER_DOC and MARKER in source[0]:
        book = Path(app.srcdir) / "book"
        source[0] = source[0].replace(MARKER, ledger_markdown(book / "_claims", book))


def _always_reread(app, env, added, changed, removed) -> list[str]:
    return [LEDGER_DOC] if LEDGER_DOC in env.found_docs else []


def setup(app):
    app.connect("source-read", _fill)
    app.connect("env-get-outdated", _always_reread)
    return {"version": "0.2", "parallel_read_safe": False, "parallel_write_safe": True}
