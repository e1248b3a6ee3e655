"""Sphinx extension: fill the claims-ledger page from the records the chapters wrote while the book executed them.

Every ``icar.claim`` call of an executed chapter appends one JSON line to ``book/_claims/<chapter>.jsonl`` (the
notebooks run with ``book/`` as working directory). Sphinx reads documents in sorted order, so the chapter notebooks
(``book/01_...``) are executed before the ledger page (``book/claims.md``) is read; this extension then replaces the
marker ``<!-- claims-ledger -->`` with one table per chapter, and forces the page to be re-read at every build so the
table never goes stale.
"""
from __future__ import annotations

from pathlib import Path

from .claims import load_ledger

MARKER = "<!-- claims-ledger -->"
LEDGER_DOC = "book/claims"


def _cell(x: object) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def ledger_markdown(folder: Path) -> str:
    """The ledger as Markdown: one table per chapter (id, statement, source, expected, measured, tolerance, status)."""
    rows = load_ledger(folder) if folder.exists() else []
    if not rows:
        return "*No claim has been recorded yet: build the book to execute the chapters.*\n"
    out, chapter = [], None
    for r in rows:
        ch = r["id"].split(".")[0]
        if ch != chapter:
            chapter = ch
            out += ["", f"## Chapter {ch.removeprefix('ch').lstrip('0') or ch}", "",
                    "| claim | statement | source | expected | measured | tolerance | status |",
                    "|---|---|---|---|---|---|---|"]
        expected = r.get("formula") or _fmt(r.get("expected"))
        if r.get("formula") and r.get("expected") is not None:
            expected = f"{r['formula']} = {_fmt(r['expected'])}"
        out.append("| " + " | ".join(_cell(v) for v in (
            f"`{r['id']}`", r["statement"], r["source"], expected, _fmt(r["measured"]), r["tolerance"],
            "pass" if r["passed"] else "**FAIL**")) + " |")
    n_pass = sum(r["passed"] for r in rows)
    return f"{n_pass} of {len(rows)} claims hold.\n" + "\n".join(out) + "\n"


def _fill(app, docname: str, source: list[str]) -> None:
    if docname == LEDGER_DOC and MARKER in source[0]:
        source[0] = source[0].replace(MARKER, ledger_markdown(Path(app.srcdir) / "book" / "_claims"))


def _always_reread(app, env, added, changed, removed) -> list[str]:
    return [LEDGER_DOC] if LEDGER_DOC in env.found_docs else []


def setup(app):
    app.connect("source-read", _fill)
    app.connect("env-get-outdated", _always_reread)
    return {"version": "0.1", "parallel_read_safe": False, "parallel_write_safe": True}
