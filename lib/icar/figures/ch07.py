"""Figures of chapter 7: the training dynamics of one softmax attention layer on feature prompts (balanced and
imbalanced laws, the sweeps over K and the step size, linear attention's floor) and the explorer. Math and training
live in :mod:`icar.softmax_icl`; this module only draws."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .style import PAGE_WIDTH_IN, to_numpy, use_style  # noqa: F401 (use_style: the chapter's notebook calls it)
from .. import softmax_icl as S

_BELOW = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2))   # a legend under the axes, clear of the data


def plot_balanced(run: S.ReducedRun, models: Sequence[int], K: int, N: int, eta: float, t_phase1: float):
    r"""Balanced features, one curve per model in ``models`` (samples of prompt counts of the run ``run``, recorded
    at ``run.steps``). Top: attention share on the target feature against the iteration, with the mean-field
    solution :math:`t(r)` and the end of Phase I ``t_phase1``; bottom: the population loss (log-log) with the
    mean-field :math:`L(t) = \tfrac12(1-r)^2 K/(K-1)` and the Phase II law :math:`(K-1)/(4\eta t)`. Returns the
    figure."""
    t = to_numpy(run.steps).astype(float)
    share = torch.diagonal(run.attention, dim1=-2, dim2=-1)        # (S, M, K): attention on the target feature
    r_grid = torch.linspace(1 / K + 1e-4, 1 - 1e-3, 400, dtype=torch.float64)
    t_mf = S.balanced_time_to_share(r_grid, K, eta)
    keep = (t_mf <= t[-1]) & (t_mf >= 1)
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 10), layout="constrained")
    for j, m in enumerate(models):
        a0.plot(t, to_numpy(share[:, m].mean(-1)), lw=1.2, label=f"target share, sample {j}")
        a1.loglog(t[1:], to_numpy(run.loss[1:, m]), lw=1.2, label=f"loss, sample {j}")
    a0.plot(to_numpy(t_mf[keep]), to_numpy(r_grid[keep]), "k--", lw=1, label="mean-field solution")
    a0.axvline(t_phase1, color="gray", ls=":", lw=1)
    a0.text(t_phase1 * 0.35, 0.8, "Phase I", color="gray")
    a0.text(t_phase1 * 1.4, 0.3, "Phase II", color="gray")
    a0.set(xlabel="GD iteration t", ylabel="attention on the target feature", title=f"Balanced, K = {K}, N = {N}")
    a0.legend(**_BELOW, ncol=2)
    a1.loglog(to_numpy(t_mf[keep]), to_numpy(0.5 * (1 - r_grid[keep]) ** 2 * K / (K - 1)), "k--", lw=1,
              label="mean-field L(t)")
    a1.loglog(t[50:], (K - 1) / (4 * eta * t[50:]), ":", color="C3", lw=1, label=r"$(K-1)/(4 \eta t)$")
    a1.set(xlabel="GD iteration t (log scale)", ylabel="population loss L (log scale)", title="Loss (balanced)")
    a1.legend(**_BELOW, ncol=2)
    return fig


def plot_imbalanced(t: torch.Tensor, L_dom: torch.Tensor, L_rare: torch.Tensor, L_balanced: torch.Tensor,
                    alpha_k: torch.Tensor, beta_dom: torch.Tensor, beta_other: torch.Tensor, shares: torch.Tensor,
                    k: int, marks: Sequence[float], p1: float, K: int, xmax: float):
    r"""Imbalanced features, against the iteration ``t`` ``(S,)``. Top: per-query loss of the dominant query and of
    the rare ones (mean), with the balanced law's total loss; middle: a rare query ``k``'s logits
    :math:`\alpha_k, \beta_{k,1}` and :math:`10\,\beta_{k,m}`; bottom: its attention ``shares`` ``(S, K)`` on the
    target, the dominant feature and the other rare ones, with the phase markers ``marks`` (the first three are
    drawn, as boundaries I|II, II|III, III|IV), up to ``xmax``. Returns the figure."""
    t = to_numpy(t)
    fig, axs = plt.subplots(3, 1, figsize=(PAGE_WIDTH_IN, 14), layout="constrained")
    axs[0].semilogy(t, to_numpy(L_dom), label="dominant query")
    axs[0].semilogy(t, to_numpy(L_rare), label="rare queries (mean)")
    axs[0].semilogy(t, to_numpy(L_balanced), "k:", lw=1, label="balanced law (total loss)")
    axs[0].axhline(0.01, color="gray", lw=0.8, ls="--")
    axs[0].set(xlabel="GD iteration t", ylabel="per-query loss $L_k$ (log scale)",
               title=f"Imbalanced, p1 = {p1}, K = {K}")
    axs[0].legend(**_BELOW, ncol=3)
    axs[1].plot(t, to_numpy(alpha_k), label=r"$\alpha_k$ (target)")
    axs[1].plot(t, to_numpy(beta_dom), label=r"$\beta_{k,1}$ (dominant)")
    axs[1].plot(t, 10 * to_numpy(beta_other), label=r"$10 \times \beta_{k,m}$ (other rare)")
    axs[1].set(xlabel="GD iteration t", ylabel="attention logit", title="Rare query: the two kinds of weights")
    axs[1].legend(**_BELOW, ncol=3)
    A = to_numpy(shares)
    axs[2].plot(t, A[:, k], label="share on the target")
    axs[2].plot(t, A[:, 0], label="share on the dominant feature")
    axs[2].plot(t, np.delete(A, [0, k], axis=1).sum(-1), label="share on other rare features")
    for x, name in zip(marks, ["I|II", "II|III", "III|IV"]):
        axs[2].axvline(x, color="gray", lw=0.8, ls=":")
        axs[2].text(x + 5, 0.02, name, color="gray")
    axs[2].set(xlabel="GD iteration t", ylabel="total attention share", title="Rare query: where attention goes",
               xlim=(0, xmax), ylim=(0, 1.2))
    axs[2].legend(**_BELOW, ncol=2)
    return fig


def plot_K_sweep(Ks: Sequence[int], t_phase1: torch.Tensor, t_phase1_formula: torch.Tensor, t_rare: torch.Tensor,
                 t_dom: torch.Tensor, cap: int, p1: float, eta: float):
    """Mean-field iteration counts against the number of features ``Ks`` (log-log): the balanced Phase I length
    (measured and closed form) and the imbalanced law's times to loss 0.01 for the rare and the dominant query (a
    time not reached within the run is drawn at ``cap``). Returns the figure."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 5.0), layout="constrained")
    Ka = np.array(Ks)
    ax.loglog(Ka, to_numpy(t_phase1), "o-", label="balanced: Phase I length (GD)")
    ax.loglog(Ka, to_numpy(t_phase1_formula), "k--", lw=1, label="closed form $t_I$")
    ax.loglog(Ka, to_numpy(t_rare.clamp(max=cap)), "s-", label="imbalanced: rare query, t(L <= 0.01)")
    ax.loglog(Ka, to_numpy(t_dom), "^-", label="imbalanced: dominant query, t(L <= 0.01)")
    ax.set(xlabel="number of features K (log scale)", ylabel="GD iterations (log scale)",
           title=f"Mean field, N = 20K, p1 = {p1}, eta = {eta}")
    ax.set_xticks(Ks, [str(k) for k in Ks])
    ax.minorticks_off()
    ax.legend(**_BELOW, ncol=2)
    return fig


def plot_lr_sweep(run: S.ReducedRun, etas: Sequence[float], K: int, *, xmax: float = 2000):
    r"""Losses against the rescaled time :math:`\eta t` for the step sizes ``etas``: model ``i`` of ``run`` is the
    balanced law at ``etas[i]``, model ``len(etas) + i`` the imbalanced law (its rare query drawn). The curves should
    lie on top of each other, so they are drawn thick to thin. Returns the figure."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 5.0), layout="constrained")
    steps = to_numpy(run.steps).astype(float)
    n = len(etas)
    for i, e in enumerate(etas):
        lw = float(np.linspace(5.0, 1.0, n)[i]) if n > 1 else 1.5
        ax.semilogy(steps * e, to_numpy(run.per_feature[:, n + i, 1]), color=f"C{i}", lw=lw,
                    label=f"rare query, eta = {e:g}")
        ax.semilogy(steps * e, to_numpy(run.loss[:, i]), color=f"C{i}", lw=lw, ls="--",
                    label=f"balanced law, eta = {e:g}")
    ax.set(xlabel=r"rescaled time $\eta t$", ylabel="loss (log scale)", xlim=(0, xmax),
           title=f"K = {K}, mean field")
    ax.legend(**_BELOW, ncol=2)
    return fig


def plot_linear_vs_softmax(t: torch.Tensor, L_rare: torch.Tensor, L_dom: torch.Tensor, lin_steps: torch.Tensor,
                           L_lin: torch.Tensor, eta_lin: float, floor: float, K: int, N: int, p1: float):
    """Per-query loss against the iteration (log-log) on the same data: softmax attention (``L_rare``, ``L_dom``
    ``(S,)`` at ``t``) against linear attention's gradient descent (``L_lin`` ``(len(lin_steps), K)``: dominant query
    first) and its rare-query floor ``floor``. Returns the figure."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 6.0), layout="constrained")
    t = to_numpy(t)
    ax.loglog(t[1:], to_numpy(L_rare[1:]), label="softmax, rare queries")
    ax.loglog(t[1:], to_numpy(L_dom[1:]), label="softmax, dominant query")
    ax.loglog(to_numpy(lin_steps), to_numpy(L_lin[:, 1:].mean(-1)), "--",
              label=f"linear attention (eta = {eta_lin:.1f}), rare queries")
    ax.loglog(to_numpy(lin_steps), to_numpy(L_lin[:, 0]), "--",
              label=f"linear attention (eta = {eta_lin:.1f}), dominant query")
    ax.axhline(floor, color="gray", ls=":", lw=1, label="linear floor, rare (formula)")
    ax.set(xlabel="GD iteration t (log scale)", ylabel="per-query loss $L_k$ (log scale)",
           title=f"Same data: K = {K}, N = {N}, p1 = {p1}")
    ax.legend(**_BELOW, ncol=1)
    return fig


def explore(K_feat: int = 10, p1: float = 0.5, eta: float = 1.0, steps: int = 1500):
    """Explorer: mean-field gradient descent for ``K_feat`` features with the first one of probability ``p1`` (the
    balanced law when ``p1 <= 1/K``): per-query losses (top) and the logits of query feature 2 (bottom). Returns the
    figure."""
    p = (S.feature_probs(K_feat, "imbalanced", p1) if p1 > 1 / K_feat else S.feature_probs(K_feat)).unsqueeze(0)
    r = S.reduced_gd(S.mean_field_counts(p, 20 * K_feat), p, eta, steps, record_every=5, progress=False)
    tt = to_numpy(r.steps)
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 7.4), layout="constrained")
    a0.semilogy(tt, to_numpy(r.per_feature[:, 0, 0]), label=f"feature 1 (p = {p[0, 0]:.2f})")
    a0.semilogy(tt, to_numpy(r.per_feature[:, 0, 1]), label=f"other features (p = {p[0, 1]:.3f})")
    a0.set(xlabel="GD iteration t", ylabel="per-query loss $L_k$ (log scale)", title=f"K = {K_feat}, eta = {eta}")
    a0.legend()
    a1.plot(tt, to_numpy(r.Z[:, 0, 1, 1]), label=r"$\alpha$ (target)")
    a1.plot(tt, to_numpy(r.Z[:, 0, 0, 1]), label=r"$\beta$ on feature 1")
    if K_feat > 2:
        a1.plot(tt, 10 * to_numpy(r.Z[:, 0, 2, 1]), label=r"$10 \times \beta$ on another feature")
    a1.set(xlabel="GD iteration t", ylabel="logit", title="Query feature 2: attention weights")
    a1.legend()
    return fig
