"""Figures of chapter 5: the augmented layer on Haar contexts, linear against softmax attention, the positional
attention's leak, early-stopped positional weights, word windows, and the explorer. Math and training live in
:mod:`icar.noncommuting`; this module only draws."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .style import PAGE_WIDTH_IN, heatmap, to_numpy, use_style  # noqa: F401 (use_style: the chapter's notebook)
from .. import noncommuting as nc

_QUERY = "query slot: 0 | $s_t$ | $s_{t-1}$"
_KEY = "key slot: 0 | $s_j$ | $s_{j-1}$"


def _slot_lines(ax, d: int, rows: bool = True) -> None:
    """Thin lines between the three slots (0 | s | s_prev) of an augmented token of width ``3 d``."""
    for k in (d - 0.5, 2 * d - 0.5):
        ax.axvline(k, color="grey", lw=0.5)
        if rows:
            ax.axhline(k, color="grey", lw=0.5)


def plot_augmented(losses: torch.Tensor, starts: Sequence[str], seeds: int, baseline: nc.Baselines,
                   KQ: torch.Tensor, V_eff: torch.Tensor, d: int):
    r"""Training of the augmented layers on Haar contexts and what they learned.

    Top: training MSE per Adam step for every model (``losses`` ``(steps, M)``; ``starts[m]`` is ``"fixed"`` or
    ``"random"``, ``seeds`` models per start) against the test MSE of three baselines on fixed-start prompts
    (``baseline.zero``, ``.gd_per_position``, ``.gd_normalized``); the legend has a panel of its own. Middle: the
    key-query matrix :math:`W_K^\top W_Q/\sqrt{3d}` (``KQ`` ``(M, 3d, 3d)``) of the first fixed-start and the first
    random-start model; bottom: the value map (``V_eff`` ``(M, d, 3d)``) of the first model. Returns the figure."""
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, 11.4))
    gs = fig.add_gridspec(3, 2)
    axs = [fig.add_subplot(gs[0, :]), fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1]), fig.add_subplot(gs[2, 0])]
    L = to_numpy(losses)
    steps = np.arange(1, L.shape[0] + 1)
    for k, st in enumerate(starts):
        axs[0].plot(steps, L[:, k], lw=1, ls="-" if st == "fixed" else "--", label=f"{st} start, seed {k % seeds}")
    for val, name, ls in ((baseline.zero, "predict 0", ":"),
                          (baseline.gd_per_position, "one GD step, $\\gamma$ per position", "-."),
                          (baseline.gd_normalized, "normalised GD step", "-")):
        axs[0].axhline(val, color="k", ls=ls, lw=1, label=f"{name} (test)")
    axs[0].set(xscale="log", yscale="log", xlabel="Adam step", ylabel="MSE per coordinate",
               title="Augmented layer on Haar contexts")
    key = fig.add_subplot(gs[2, 1])                  # the free slot holds the legend, clear of the data
    key.axis("off")
    key.legend(*axs[0].get_legend_handles_labels(), loc="center", title="training batches; test: fixed start")
    width = KQ.shape[-1]
    heatmap(axs[1], KQ[0], rf"$W_K^\top W_Q/\sqrt{{{width}}}$, fixed start")
    heatmap(axs[2], KQ[seeds], rf"$W_K^\top W_Q/\sqrt{{{width}}}$, random start")
    heatmap(axs[3], V_eff[0], "value map, fixed start")
    for ax in axs[1:3]:
        ax.set(xlabel=_QUERY, ylabel=_KEY)
        _slot_lines(ax, d)
    axs[3].set(xlabel="value slot: 0 | $s_j$ | $s_{j-1}$", ylabel="predicted coordinate")
    _slot_lines(axs[3], d, rows=False)
    fig.tight_layout()
    return fig


def plot_context_length(lin: torch.Tensor, soft: torch.Tensor, gd_shared: torch.Tensor, gd_per_position: torch.Tensor,
                        KQ_soft: torch.Tensor, d: int):
    r"""Top: test MSE against the context length for linear and softmax attention (``lin``, ``soft`` ``(seeds, T)``,
    seed means drawn) and two one-GD-step baselines (``(T,)`` each); legend below the axes. Bottom: the key-query
    matrix ``KQ_soft`` ``(3d, 3d)`` of one softmax layer. Returns the figure."""
    t_axis = np.arange(1, lin.shape[-1] + 1)
    fig, axs = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 9.4))
    axs[0].plot(t_axis, to_numpy(lin.mean(0)), "o-", ms=3, label=f"linear attention (mean of {lin.shape[0]} seeds)")
    axs[0].plot(t_axis, to_numpy(soft.mean(0)), "s-", ms=3, label=f"softmax attention (mean of {soft.shape[0]} seeds)")
    axs[0].plot(t_axis, to_numpy(gd_shared), "k--", lw=1, label=r"one GD step, shared $\gamma$")
    axs[0].plot(t_axis, to_numpy(gd_per_position), "k-.", lw=1, label=r"one GD step, $\gamma$ per position")
    axs[0].set(xlabel="context length $t$ (tokens seen)", ylabel="test MSE per coordinate", yscale="log",
               title=f"Loss versus context length, Haar contexts, $d = {d}$")
    axs[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    heatmap(axs[1], KQ_soft, rf"softmax layer: $W_K^\top W_Q/\sqrt{{{KQ_soft.shape[-1]}}}$")
    axs[1].set(xlabel=_QUERY, ylabel=_KEY)
    fig.tight_layout()
    return fig


def plot_positional(pos_attn: torch.Tensor, starts: Sequence[str], seeds: int, first_row: int):
    r"""Top: the head-averaged positional attention (``pos_attn`` ``(M, T, T)``) of the first fixed-start and the first
    random-start model; bottom: the mean attention mass on each key token over the rows :math:`t \ge` ``first_row``
    + 1, for every model, against a uniform causal attention. Returns the figure."""
    T = pos_attn.shape[-1]
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, 8.6))
    axs = [fig.add_subplot(2, 2, 1), fig.add_subplot(2, 2, 2), fig.add_subplot(2, 1, 2)]
    for ax, m, name in ((axs[0], 0, "fixed start"), (axs[1], seeds, "random start")):
        heatmap(ax, pos_attn[m], f"positional attention,\n{name}", cmap="viridis", symmetric=False)
        ax.set(xlabel="key position $j$ (0 = $s_1$)", ylabel="query position $t$ (0 = $s_1$)")
    j_axis = np.arange(1, T + 1)
    for m, st in enumerate(starts):
        prof = to_numpy(pos_attn[m, first_row:].mean(0))
        axs[2].plot(j_axis, prof, "o-" if st == "fixed" else "s--", ms=3, label=f"{st} start, seed {m % seeds}")
    axs[2].axhline(nc.uniform_mass(T, first_row), color="k", ls=":", lw=1, label="uniform causal attention")
    axs[2].set(xlabel="key token $s_j$", ylabel=f"mean attention mass (rows $t \\geq {first_row + 1}$)",
               title="Where the heads look", xticks=[1, 2, 5, 10, 15, 20])
    axs[2].legend(ncol=2)
    fig.tight_layout()
    return fig


def plot_early_stopping(last: torch.Tensor, kstar: torch.Tensor, mus: torch.Tensor, lam: torch.Tensor,
                        P_stop: torch.Tensor, shown: int = 1):
    r"""Early-stopped positional weights, one model per :math:`\mu` (``mus`` ``(M,)``, stopping steps ``kstar``).

    Top: the last row of weights ``last`` ``(M, T-1)`` against the key token; bottom left: the whole early-stopped
    matrix ``P_stop[shown]`` (rows :math:`t - 2`); bottom right: the spectrum of the Gram matrix, ``lam`` ``(M, T-1)``
    in increasing order (drawn largest first, floored at 1e-17). Returns the figure."""
    n = last.shape[-1]
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, 8.6))
    axs = [fig.add_subplot(2, 1, 1), fig.add_subplot(2, 2, 3), fig.add_subplot(2, 2, 4)]
    for i, mu in enumerate(mus.tolist()):
        axs[0].plot(np.arange(1, n + 1), to_numpy(last[i]), "o-", ms=2.5,
                    label=f"$\\mu$ = {mu:g} (step {int(kstar[i])})")
        axs[2].semilogy(np.arange(1, n + 1), to_numpy(lam[i].clamp(min=1e-17).flip(0)), ".-", label=f"$\\mu$ = {mu:g}")
    axs[0].set(xlabel=f"key token $s_j$ (query $s_{{{n - 1}}}$, latest $s_{{{n}}}$)", ylabel=f"weight $p_{{{n},j}}$",
               title="Early-stopped positional weights, last row")
    axs[0].legend()
    heatmap(axs[1], P_stop[shown, :, :-1], rf"$P$ at early stopping, $\mu = {float(mus[shown]):g}$")
    axs[1].set(xlabel="key token $j$ (0 = $s_1$)", ylabel="row $t - 2$")
    axs[2].set(xlabel="eigenvalue rank", ylabel="eigenvalue of $G$", title="Spectrum of the Gram matrix")
    axs[2].legend()
    fig.tight_layout()
    return fig


def plot_window_errors(hist: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]], *, exact: float = 1e-12):
    r"""Histogram of :math:`\log_{10}` of the AR(1) roll-out error of the windows that are not fitted exactly (error
    above ``exact``), one series per word order; ``hist[name] = (errors, has_repeat, rank)``. Returns the figure."""
    fig, ax = plt.subplots(figsize=(7, 4.4), layout="constrained")
    bins = np.linspace(-3.5, -1.5, 41)
    for name, (err, _, _) in hist.items():
        bad = err[err > exact]
        ax.hist(np.log10(to_numpy(bad)), bins=bins, alpha=0.6,
                label=f"{name}: {len(bad)} of {len(err)} windows (the other {len(err) - len(bad)} are exact)")
    ax.set(xlabel=r"$\log_{10}$ roll-out MSE of the window's AR(1) fit", ylabel="number of windows",
           title="5-word windows of movie reviews, 100-d fastText vectors")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))   # under the axes: the bars reach the top
    return fig


def explore_pe(mu: float = 50.0, row: int = 30, steps: int = 600, lr: float = 0.5, *, T: int = 31):
    r"""Explorer: exact gradient descent on one row of the positional weights for the angle concentration ``mu``
    (closed form of :func:`icar.noncommuting.pe_gd_closed_form`, step :math:`2\,\mathrm{lr}/(T-2)`): the weights
    after ``steps`` steps (top) and the row loss along the run with the paper's stopping threshold (bottom).
    Returns the figure."""
    mus = torch.tensor([float(mu)])
    alpha = 2 * lr / (T - 2)
    ks = torch.arange(0, max(steps, 1) + 1)
    p, loss = nc.pe_gd_closed_form(nc.pe_gram(mus, row), alpha, ks)
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 7))
    a0.bar(np.arange(1, row + 1), to_numpy(p[-1, 0]), color="tab:blue")
    a0.set(xlabel=f"key token $s_j$ (query $s_{{{row - 1}}}$)", ylabel=f"weight $p_{{{row},j}}$",
           title=f"after {steps} GD steps, $\\mu$ = {mu:g}")
    a1.semilogy(to_numpy(ks), to_numpy(loss[:, 0].clamp(min=1e-18)))
    a1.axhline(1e-3, color="k", ls=":", lw=1, label="paper's stopping threshold")
    a1.set(xlabel="GD step", ylabel=f"row loss $\\ell_{{{row}}}$", title="exact loss curve")
    a1.legend()
    fig.tight_layout()
    return fig
