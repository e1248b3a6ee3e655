"""Sphinx extension for the rendered book's pages.

* The page has no kernel behind it, so the chapters execute with ``ICAR_EXPLORERS=static`` (every explorer embeds
  precomputed frames and a slider; Jupyter and Colab keep the live widgets, see :mod:`icar.figures.explorer`) and
  ``ICAR_PROGRESS=0`` (no progress bars: a hidden bar still leaves a blank gap in the page).
* Theorems, propositions, lemmas ... and exercises are numbered per chapter, ``Proposition 3.2`` (the chapter number
  is the ``NN`` of ``book/NN_name``); sphinx-proof and sphinx-exercise alone number them across the whole book.
"""
from __future__ import annotations

import os
import re

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


def setup(app):
    # The notebook kernels are started by this process during the build and inherit its environment.
    os.environ.setdefault("ICAR_EXPLORERS", "static")
    os.environ.setdefault("ICAR_PROGRESS", "0")
    if app is not None:
        app.connect("env-get-updated", _renumber, priority=900)   # after Sphinx has assigned its numbers
    return {"parallel_read_safe": True, "parallel_write_safe": True}
