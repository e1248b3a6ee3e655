"""Figure helpers shared by the chapters: one style, and the few plots that several chapters draw."""
from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import torch


#: Width of the book's content column (sphinx-book-theme at a 1366 px laptop window, both sidebars shown) and the size
#: of the body text that carries the figure captions, both in CSS px, measured in the rendered chapter 1.
CONTENT_PX = 745
CAPTION_PX = 16
#: Resolution of the figures in the notebooks and the book: a figure is shown at its natural size (``FIGURE_DPI`` px per
#: inch) up to the column width, so every figure at least ``CONTENT_PX / FIGURE_DPI`` (6.8 in) wide fills the column.
FIGURE_DPI = 110
#: The figures' base font size (ticks, labels and legends use it; titles are larger).
FONT_PT = 12


def max_width_in(fontsize_pt: float = FONT_PT) -> float:
    r"""Widest figure (inches) whose ``fontsize_pt`` text is still at least caption-sized once the browser scales it
    into the content column: :math:`\text{px} = \text{pt}\cdot\text{CONTENT\_PX}/(72\,w) \ge \text{CAPTION\_PX}`,
    i.e. :math:`w \le \text{pt}\cdot\text{CONTENT\_PX}/(72\cdot\text{CAPTION\_PX})` (7.76 in at 12 pt)."""
    return fontsize_pt * CONTENT_PX / (72 * CAPTION_PX)


#: The width every wide figure of the course uses: the largest that keeps ``FONT_PT`` text legible.
PAGE_WIDTH_IN = 7.6


def use_style() -> None:
    """White backgrounds (readable in the book's dark mode), a light grid, and a font that stays legible at the page
    width for every figure no wider than :func:`max_width_in` (see ``tests/test_pages.py``)."""
    mpl.rcParams.update({
        "figure.dpi": FIGURE_DPI,
        "figure.facecolor": "white",
        "savefig.facecolor": "white",
        "axes.facecolor": "white",
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "font.size": FONT_PT,
    })


def to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Detach, move to the CPU and convert (figures never hold device tensors)."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plane_angles(states: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    r"""Angles of a trajectory in each invariant 2-plane of a commuting family :math:`W = P B P^\top`.

    ``states`` ``(T, d)``, ``basis`` :math:`P` ``(d, d)`` -> ``(T, d/2)``: the angle of :math:`(P^\top s)_{2m:2m+2}`.
    """
    x = states @ basis  # coordinates in the invariant basis, (T, d)
    return torch.atan2(x[:, 1::2], x[:, 0::2])


def torus_xyz(phi1: np.ndarray, phi2: np.ndarray, R: float = 2.0, r: float = 0.8) -> tuple[np.ndarray, ...]:
    r"""Standard embedding of the torus in :math:`\mathbb R^3`: :math:`((R + r\cos\phi_2)\cos\phi_1,
    (R + r\cos\phi_2)\sin\phi_1, r\sin\phi_2)`."""
    return (R + r * np.cos(phi2)) * np.cos(phi1), (R + r * np.cos(phi2)) * np.sin(phi1), r * np.sin(phi2)


def image_axes(ax: plt.Axes, *, integer: bool = True) -> plt.Axes:
    """Make ``ax`` fit an image: no grid drawn over the cells and, for integer-indexed axes (rows, heads,
    coordinates, positions), ticks only at integers (never 2.5 or 7.5). Returns ``ax``."""
    ax.grid(False)
    return integer_ticks(ax) if integer else ax


def integer_ticks(ax: plt.Axes, axis: str = "both") -> plt.Axes:
    """Ticks only at integers on ``axis`` (``"x"``, ``"y"`` or ``"both"``) of an integer-indexed plot. Returns ``ax``."""
    if axis not in ("x", "y", "both"):
        raise ValueError(f"axis must be 'x', 'y' or 'both'; got {axis!r}")
    for name in ("x", "y") if axis == "both" else (axis,):
        getattr(ax, f"{name}axis").set_major_locator(MaxNLocator(integer=True))
    return ax


def image(ax: plt.Axes, X: torch.Tensor | np.ndarray, *, integer: bool = True, **kwargs) -> mpl.image.AxesImage:
    """``ax.imshow(X, **kwargs)`` on an axis prepared by :func:`image_axes` (every heatmap of the course uses it)."""
    im = ax.imshow(to_numpy(X), **kwargs)
    image_axes(ax, integer=integer)
    return im


def heatmap(ax: plt.Axes, M: torch.Tensor | np.ndarray, title: str, *, cmap: str = "RdBu_r",
            symmetric: bool = True) -> mpl.image.AxesImage:
    """A labelled matrix heatmap with a centred colour scale and a colour bar."""
    A = to_numpy(M)
    vmax = float(np.abs(A).max()) or 1.0
    im = image(ax, A, cmap=cmap, vmin=-vmax if symmetric else None, vmax=vmax if symmetric else None)
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def numbers(x, spec: str = ".3g", sep: str = ", ") -> str:
    """Numbers as text for a printed line: ``numbers(torch.tensor([0.012345, 3.0]))`` -> ``"0.0123, 3"``; the rows
    of a 2-D input are grouped, ``"(1, 2), (3, 4)"``.

    ``x`` is a tensor, an array, a (nested) list or a number; ``spec`` a format specification (``".3g"``, ``".0f"``)."""
    values = to_numpy(x).tolist() if isinstance(x, (torch.Tensor, np.ndarray)) else x
    if not isinstance(values, (list, tuple)):
        return format(float(values), spec)
    return sep.join(f"({numbers(v, spec, sep)})" if isinstance(v, (list, tuple)) else format(float(v), spec)
                    for v in values)
