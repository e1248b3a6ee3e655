"""Figures of chapter 2: the learned weights against one gradient step, and the error budget.
Math and training live in :mod:`icar.augmented`; this module only draws."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .style import PAGE_WIDTH_IN, image
from ..augmented import (AugmentedLinearAttention, error_split, gd_construction, live_mask, moments_of,
                         per_prefix_steps, read_structure, shared_step)


#: How the figures name the laws of the initial state.
LAW_NAMES = {"phases": "random-phase", "gaussian": "Gaussian"}


def plot_structure(model: AugmentedLinearAttention, index: int = 0, axes=None, title: str = ""):
    r"""Heat-maps of :math:`|W_V|` (answer rows) and :math:`|W_{KQ}|` of model ``index``, next to the one-step
    structure with the same :math:`|a|, |b|`. Dead entries (that never touch the prediction) are left blank.
    Returns the figure."""
    d = model.d
    st = read_structure(model)
    WV = model.W_V.detach()[index].abs().cpu().numpy().copy()[:d]
    WKQ = model.W_KQ.detach()[index].abs().cpu().numpy().copy()
    mv, mkq = live_mask(d)
    WV[~mv[:d].numpy()] = float("nan")
    WKQ[~mkq.numpy()] = float("nan")
    pV, pKQ = gd_construction(d, 1.0)
    pV = (pV[:d] * st.b[index]).numpy()
    pKQ = (pKQ * st.a[index]).numpy()
    pV[~mv[:d].numpy()] = float("nan")
    pKQ[~mkq.numpy()] = float("nan")
    if axes is None:
        fig, grid = plt.subplots(2, 2, figsize=(PAGE_WIDTH_IN, 4.9), gridspec_kw={"height_ratios": [1, 3]},
                                 layout="constrained")
        axes = [grid[0, 0], grid[0, 1], grid[1, 0], grid[1, 1]]
    fig = axes[0].figure
    vmax = float(max(st.a[index], st.b[index])) * 1.05
    panels = [(WV, "learned $|W_V|$"), (pV, "predicted $|W_V|$"),
              (WKQ, "learned $|W_{KQ}|$"), (pKQ, "predicted $|W_{KQ}|$")]
    labels = ["0", "$s_t$", "$s_{t-1}$"]
    for j, (ax, (X, name)) in enumerate(zip(axes, panels)):
        im = image(ax, X, integer=False, cmap="viridis", vmin=0, vmax=vmax, aspect="equal")
        ax.set_title(name)
        ax.set_xticks([d * k + (d - 1) / 2 for k in range(3)], labels)
        rows = X.shape[0] // d
        ax.set_yticks([d * k + (d - 1) / 2 for k in range(rows)], labels[:rows] if rows == 3 else ["answer"])
        for k in range(1, 3):
            ax.axvline(k * d - 0.5, color="w", lw=0.8)
            if rows == 3:
                ax.axhline(k * d - 0.5, color="w", lw=0.8)
        ax.set_xlabel("query slot" if "KQ" in name else "input slot (value)")
        if j % 2 == 0:  # the right panel of a row has the rows of the left one
            ax.set_ylabel("key slot" if "KQ" in name else "output slot")
    fig.colorbar(im, ax=list(axes), shrink=0.6, label="|entry| (dimensionless)")
    if title:
        fig.suptitle(title, y=1.02, va="bottom")
    return fig




def plot_error_budget(d: int = 5, n_max: int = 49, law: str = "phases", ax=None):
    r"""Closed-form next-token error against the number of pairs ``n``: one step with the shared step
    :math:`\eta^\star`, its two parts (shrinkage, Gram noise), one step with the best step for each ``n``, and
    the line :math:`n = d` from which least squares is exact. Returns the figure."""
    m = moments_of(law, d)
    eta = shared_step(n_max, d, m)
    n = list(range(1, n_max + 1))
    steps = per_prefix_steps(n_max + 1, d, m)[1:]  # eta_n for n = 1..n_max
    shrink, noise = error_split(eta, torch.tensor(n), d, m)
    if ax is None:
        _, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 4.6), layout="constrained")
    best = sum(error_split(steps, torch.tensor(n), d, m))  # e_n(eta_n), elementwise in n
    ax.plot(n, shrink + noise, "k-", lw=2, label=f"one step, shared $\\eta^\\star = {eta:.3g}$")
    ax.plot(n, shrink, "C0--", label="its shrinkage part")
    ax.plot(n, noise, "C1--", label="its Gram-noise part")
    ax.plot(n, best, "C2:", lw=2, label="one step, best $\\eta_n$ per $n$")
    ax.axvline(d, color="C3", ls="-.", label="$n = d$: least squares exact from here")
    top = float((shrink + noise).max())
    ax.set_yscale("log")
    ax.set_ylim(1e-4 * top, 2 * top)  # the shrinkage part touches 0 where eta* n |x|^2 = 1
    ax.set_xlabel("number of pairs $n$ in the prompt ($n = t - 1$)")
    ax.set_ylabel(r"$E\|\hat s_{t+1} - s_{t+1}\|^2$ (units of $\|s_1\|^2$)")
    ax.set_title(f"error budget of one gradient step: $d = {d}$, {LAW_NAMES.get(law, law)} $s_1$")
    # below the axes: inside, the legend would lie across the curves at some d
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return ax.figure


def plot_held_out_errors(n_pairs: torch.Tensor, err_model: torch.Tensor, theory_shared: torch.Tensor,
                         gd_best: torch.Tensor, ols: torch.Tensor, d: int):
    r"""Held-out next-token error against the number of pairs ``n_pairs`` ``(T-1,)``: the trained layers (mean of
    ``err_model`` ``(M, T-1)`` over the models), the formula :math:`e_n(\eta^\star)` ``theory_shared``, one step with
    the best step for each ``n`` ``gd_best`` and least squares ``ols`` (floored at :math:`10^{-6}` for the log
    scale), all ``(T-1,)``. Returns the figure."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(n_pairs, err_model.mean(0), "o", ms=4, label=f"trained layers (mean of {err_model.shape[0]} seeds)")
    ax.plot(n_pairs, theory_shared, "k-", label=r"formula $e_n(\eta^\star)$: one step, shared step")
    ax.plot(n_pairs, gd_best, "C2:", lw=2, label=r"one step with the best $\eta_n$ for each $n$")
    ax.plot(n_pairs, ols.clamp_min(1e-6), "C3-.", label="least squares (OLS; floored at $10^{-6}$)")
    ax.set(yscale="log", xlabel="number of pairs $n$ in the prompt ($n = t-1$)",
           ylabel=r"$E\|\hat s_{t+1}-s_{t+1}\|^2$ (units of $\|s_1\|^2$)", title=f"held-out error, d = {d}")
    ax.legend()
    return fig
