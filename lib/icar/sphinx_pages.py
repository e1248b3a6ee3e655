"""Sphinx extension for the rendered book's pages.

* The page has no kernel behind it, so the chapters execute with ``ICAR_EXPLORERS=static`` (every explorer embeds
  precomputed frames and a slider; Jupyter and Colab keep the live widgets, see :mod:`icar.figures.explorer`) and
  ``ICAR_PROGRESS=0`` (no progress bars: a hidden bar still leaves a blank gap in the page).
* Theorems, propositions, lemmas ... and exercises are numbered per chapter, ``Proposition 3.2`` (the chapter number
  is the ``NN`` of ``book/NN_name``); sphinx-proof and sphinx-exercise alone number them across the whole book.
* The bibliography is labelled as the text cites: ``[Sander et al. 2024]`` beside the entry that the citation
  "Sander et al. (2024)" points to (the ``icar_author_year`` pybtex style; the stock styles number the entries, which
  an author-year citation cannot be matched to).
* No proof index page: sphinx-proof's domain index lists bare label ids (``ch01-def-gamma-psi``); the claims ledger
  is the course's index of results.
"""
from __future__ import annotations

import os
import re
from collections import Counter

_CHAPTER = re.compile(r"(?:^|/)(\d\d)_[^/]*$")


def chapter_of(docname: str) -> int | None:
    """``"book/03_mesa_optimizer"`` -> 3; ``None`` for pages that are not chapters."""
    m = _CHAPTER.search(docname)
    return int(m.group(1)) if m else None


def per_chapter(fignumbers: dict[str, dict[str, dict[str, tuple[int, ...]]]], figtypes: set[str]) -> list[str]:
    """Renumber, in place, the items of ``figtypes`` in every chapter as ``(chapter, k)``, ``k = 1, 2, ...`` in their
    order on the page. Returns the chapters whose numbers changed."""
    changed = []
    for docname, by_type in fignumbers.items():
        ch = chapter_of(docname)
        if ch is None:
            continue
        for figtype, ids in by_type.items():
            if figtype not in figtypes:
                continue
            new = {i: (ch, k) for k, i in enumerate(sorted(ids, key=ids.get), start=1)}
            if new != ids:
                ids.clear()
                ids.update(new)
                changed.append(docname)
    return sorted(set(changed))


def _renumber(app, env) -> list[str]:
    try:
        from sphinx_proof.proof_type import PROOF_TYPES
    except ImportError:  # pragma: no cover - the book always has sphinx-proof
        return []
    return per_chapter(env.toc_fignumbers, set(PROOF_TYPES) | {"exercise"})


def author_year_label(persons: list, year: str) -> str:
    """``"Sander et al. 2024"``, ``"Sander and Peyré 2025"``, ``"von Oswald et al. 2023"`` from pybtex persons (their
    "von" part included) and a year."""
    last = [" ".join(n.render_as("text") for n in [*p.rich_prelast_names, *p.rich_last_names]) for p in persons]
    if not last:
        names = "Anon."
    elif len(last) == 1:
        names = last[0]
    elif len(last) == 2:
        names = f"{last[0]} and {last[1]}"
    else:
        names = f"{last[0]} et al."
    return f"{names} {year}".strip()


def register_author_year_style() -> None:
    """Register the pybtex formatting style ``icar_author_year``: pybtex's ``plain`` entries with author-year labels
    (``a``, ``b`` appended where two entries would share a label)."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.plain import Style as Plain
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            labels = [author_year_label(e.persons.get("author") or e.persons.get("editor") or [],
                                        e.fields.get("year", "")) for e in sorted_entries]
            total, seen = Counter(labels), Counter()
            for label in labels:
                seen[label] += 1
                yield label if total[label] == 1 else label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]

    class AuthorYear(Plain):
        default_label_style = AuthorYearLabels

    register_plugin("pybtex.style.formatting", "icar_author_year", AuthorYear, force=True)


def setup(app):
    register_author_year_style()
    # The notebook kernels are started by this process during the build and inherit its environment.
    os.environ.setdefault("ICAR_EXPLORERS", "static")
    os.environ.setdefault("ICAR_PROGRESS", "0")
    if app is not None:
        app.connect("env-get-updated", _renumber, priority=900)   # after Sphinx has assigned its numbers
    return {"parallel_read_safe": True, "parallel_write_safe": True}
