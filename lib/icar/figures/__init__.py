"""The figures layer: one module per chapter (``ch02``, ``ch03``, ...) draws that chapter's plots and explorers from
the tensors the mechanism modules compute; :mod:`icar.figures.style` holds the shared style and helpers, and
:mod:`icar.figures.explorer` shows an explorer live (ipywidgets) or as precomputed frames (the static book)."""
from . import style

__all__ = ["style"]
