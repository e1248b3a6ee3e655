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


def _parameters_over_losses(model: MultiHeadDiagonal, index: int, losses: torch.Tensor, xlabel: str, title: str):
    """The four heat-maps of :func:`show_parameters` for model ``index`` on two rows, the training losses
    ``(steps, M)`` on a third (one line per model) and an empty fourth row. Returns the figure and that last axes."""
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, 11), layout="constrained")
    gs = fig.add_gridspec(4, 2, height_ratios=[1, 1, 0.9, 0.9])
    show_parameters(model, index, axes=[fig.add_subplot(gs[k // 2, k % 2]) for k in range(4)])
    ax = fig.add_subplot(gs[2, :])
    ax.semilogy(losses.clamp_min(1e-16).numpy(), alpha=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"loss summed over {model.T - 2} positions")
    ax.set_title(title)
    return fig, fig.add_subplot(gs[3, :])


def plot_unitary_minimum(model: MultiHeadDiagonal, losses: torch.Tensor, latest: torch.Tensor, query: torch.Tensor,
                         c: torch.Tensor, index: int = 0):
    r"""The parameters of model ``index`` trained on unitary contexts (:func:`show_parameters`), the training losses
    ``(steps, M)`` of all models, and the two bands of each model's positional encoding (:func:`icar.multihead.bands`)
    scaled by its ``c`` ``(M,)``: :math:`c\,p_{t,t}` (``latest``, dots) and :math:`c\,p_{t,t-1}` (``query``,
    crosses), ``(M, T-2)`` each, against ``t``. Returns the figure."""
    fig, ax = _parameters_over_losses(model, index, losses, "gradient-descent iteration",
                                      f"{model.n_models} seeds, unitary contexts (one line per seed)")
    ax.plot(range(2, model.T), (c[:, None] * latest).T.numpy(), "o-", ms=3)
    ax.plot(range(2, model.T), (c[:, None] * query).T.numpy(), "x--", ms=3)
    integer_ticks(ax, "x")
    ax.set_xlabel("position $t$")
    ax.set_ylabel(r"$c\,p_{t,t}$ (dots), $c\,p_{t,t-1}$ (crosses)")
    ax.set_title("positional encoding on the latest and the query token")
    return fig


def plot_orthogonal_minimum(model: MultiHeadDiagonal, losses: torch.Tensor, C: torch.Tensor, c: torch.Tensor,
                            index: int = 0):
    r"""The parameters of model ``index`` trained on orthogonal contexts (:func:`show_parameters`), the training
    losses ``(steps, M)`` of all models, and the singular values of each model's ``C`` ``(M, d, d)`` divided by its
    :math:`|c|` ``(M,)``, next to the level :math:`2|c|` of a rank-:math:`d/2` minimum. Returns the figure."""
    d = model.d
    fig, ax = _parameters_over_losses(
        model, index, losses, "gradient-descent iteration (momentum 0.9)",
        f"{model.n_models} seeds (one line per seed), orthogonal contexts, $H = {model.n_heads} < d = {d}$")
    sv = torch.linalg.svdvals(C) / c.abs()[:, None]
    ax.semilogy(range(1, d + 1), sv.T.clamp_min(1e-16).numpy(), "o-", ms=3, alpha=0.7)
    ax.set_yscale("log")
    ax.axhline(2, color="k", ls="--", lw=1, label=rf"$2|c|$ (rank $d/2 = {d // 2}$)")
    integer_ticks(ax, "x")
    ax.set_xlabel("index of singular value")
    ax.set_ylabel(r"singular value of $C$ / $|c|$")
    ax.legend()
    ax.set_title("$C$ has rank $d/2$: the heads share the work in pairs")
    return fig


def plot_head_gram(gram: torch.Tensor, gram_pred: torch.Tensor):
    r"""The heads' Gram matrix :math:`AA^\top` ``(M, H, H)`` measured after training against its prediction from
    the conserved quantity: heat-maps of both for model 0, and a scatter of every entry of every model (diagonal and
    off-diagonal apart) around :math:`y = x`. Returns the figure."""
    offdiag = ~torch.eye(gram.shape[-1], dtype=torch.bool)
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, 8.4))
    axes = [fig.add_subplot(2, 2, 1), fig.add_subplot(2, 2, 2), fig.add_subplot(2, 1, 2)]
    lim = float(gram[0].abs().max())
    for ax, X, name in [(axes[0], gram[0], "measured\n" r"$AA^\top$ (seed 0)"),
                        (axes[1], gram_pred[0], "predicted\n" r"$E/2 + (E^2/4 + c^2I)^{1/2}$")]:
        im = image(ax, X, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(name)
        ax.set_xlabel("head h'")
        ax.set_ylabel("head h")
        plt.colorbar(im, ax=ax, fraction=0.046)
    axes[2].scatter(gram_pred[:, offdiag].flatten(), gram[:, offdiag].flatten(), s=6, label="off-diagonal entries")
    axes[2].scatter(torch.diagonal(gram_pred, 0, -2, -1).flatten(), torch.diagonal(gram, 0, -2, -1).flatten(), s=6,
                    label="diagonal entries")
    mx = float(gram.abs().max())
    axes[2].plot([-mx, mx], [-mx, mx], "k--", lw=1, label="y = x")
    axes[2].set_xlabel(r"predicted $(AA^\top)_{hh'}$")
    axes[2].set_ylabel(r"measured $(AA^\top)_{hh'}$")
    axes[2].set_title(f"all {gram.shape[0]} seeds")
    axes[2].legend()
    fig.tight_layout()
    return fig


def plot_trig_coefficients(two_cos: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, others: torch.Tensor):
    r"""The learned coefficients of the latest token ``alpha`` against :math:`2\cos\theta` of the sequence
    ``two_cos`` (same shape; every 7th point), and histograms of :math:`\log_{10}` of the deviations from the
    trigonometric solution: :math:`|\alpha - 2\cos\theta|`, :math:`|\beta + 1|` for the coefficient ``beta`` of
    :math:`s_{t-1}`, and the non-zero entries of ``others`` (the older tokens' coefficients, zeros where ``alpha``
    and ``beta`` sit). Returns the figure."""
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 9))
    axes[0].scatter(two_cos.flatten()[::7], alpha.flatten()[::7], s=3, alpha=0.4)
    axes[0].plot([-2, 2], [-2, 2], "k--", lw=1, label=r"$y = 2\cos\theta$")
    axes[0].set_xlabel(r"$2\cos\theta_m$ of the sequence's rotation")
    axes[0].set_ylabel(r"learned coefficient of $s_t$")
    axes[0].legend()
    axes[0].set_title("the attention score reads the angle")
    for vals, name in [((alpha - two_cos).abs(), r"$|$coefficient of $s_t - 2\cos\theta|$"),
                       ((beta + 1).abs(), r"$|$coefficient of $s_{t-1} + 1|$"),
                       (others[others != 0].abs(), r"$|$coefficient of an older token$|$")]:
        axes[1].hist(torch.log10(vals.flatten().clamp_min(1e-17)).numpy(), bins=60, alpha=0.6, label=name)
    axes[1].set_yscale("log")  # the three counts differ by orders of magnitude
    axes[1].set_xlabel(r"$\log_{10}$ of the deviation from the trigonometric solution")
    axes[1].set_ylabel("count (sequences × positions\n× coordinates, log scale)")
    axes[1].legend(loc="upper left")
    axes[1].set_title("every coefficient is where the recursion puts it")
    fig.tight_layout()
    return fig


def plot_head_sweep(floor_u: torch.Tensor, per_pos_u: torch.Tensor, per_pos_o: torch.Tensor, d: int):
    r"""Loss per position after training against the number of heads :math:`H = 1..d`: the predicted unitary floor
    ``floor_u`` ``(d,)``, the orthogonal upper bound :math:`\max(d - 2H, 0)`, the trained losses ``per_pos_u`` and
    ``per_pos_o`` ``(d, seeds)`` of every seed, and the range :math:`H \ge d/2` where an orthogonal zero exists.
    Returns the figure."""
    H_axis = torch.arange(1, d + 1)
    H_seeds = H_axis.repeat_interleave(per_pos_u.shape[1])
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    ax.plot(H_axis, floor_u, "k-", lw=2, label="unitary: predicted floor $d - H$")
    ax.plot(H_axis, (d - 2 * H_axis).clamp_min(0), "C1:", lw=2,
            label="orthogonal: trigonometric solution on $H$ planes (upper bound)")
    ax.plot(H_seeds, per_pos_u.flatten(), "o", ms=7, mfc="none", label="unitary: trained (each seed)")
    ax.plot(H_seeds, per_pos_o.flatten().clamp_min(0), "x", ms=7,
            label="orthogonal: trained (each seed)")
    ax.axvspan(d / 2 - 0.5, d + 0.5, color="C1", alpha=0.08, label=r"orthogonal: zero loss reachable ($H \geq d/2$)")
    ax.set_xlabel("number of heads $H$")
    ax.set_ylabel("loss per position after training")
    integer_ticks(ax, "x")
    ax.set_title(f"$d = {d}$: loss floor against the number of heads")
    # below the axes, clear of the data
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    return fig
