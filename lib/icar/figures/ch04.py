"""Figures of chapter 4: the parameters of a multi-head model.
Math and training live in :mod:`icar.multihead`; this module only draws."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .style import PAGE_WIDTH_IN, image, integer_ticks, use_style  # noqa: F401 (the chapter's notebook uses them)
from ..multihead import MultiHeadDiagonal, position_mask


def show_parameters(model: MultiHeadDiagonal, index: int = 0, axes=None, title: str = ""):
    """Heat-maps of model ``index``: ``A`` and ``B`` (heads x coordinates), ``C = B^T A`` and the positional
    encoding ``P`` (rows t = 2..T-1, columns t' <= t; unused entries blank). Returns the matplotlib axes."""
    if not 0 <= index < model.n_models:
        raise ValueError(f"index must be in 0..{model.n_models - 1}; got {index}")
    A, B = (x[index].detach().cpu() for x in model.masked_heads())
    C = model.C()[index].detach().cpu()
    P = model.P_masked()[index].detach().cpu()
    mask = position_mask(model.T)
    P = P.masked_fill(~mask, float("nan"))[1:-1]
    if axes is None:
        fig, grid = plt.subplots(2, 2, figsize=(PAGE_WIDTH_IN, 6.6), layout="constrained")
        axes = list(grid.ravel())
    panels = [(A, r"$A$ (heads $\times$ coordinates)", "coordinate $k$", "head $h$"),
              (B, r"$B$ (heads $\times$ coordinates)", "coordinate $i$", "head $h$"),
              (C, r"$C = B^\top A$", "coordinate $k$", "coordinate $i$"),
              (P, r"positional encoding $p_{t,t'}$", "context position $t'$", "predicting position $t$")]
    for ax, (X, name, xl, yl) in zip(axes, panels):
        lim = float(torch.nan_to_num(X).abs().max()) or 1.0
        extent = None
        if X is P:
            extent = (0.5, model.T + 0.5, model.T - 0.5, 1.5)
        im = image(ax, X, cmap="RdBu_r", vmin=-lim, vmax=lim, extent=extent, aspect="auto")
        ax.set_title(name)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        axes[0].figure.suptitle(title)
    return axes
