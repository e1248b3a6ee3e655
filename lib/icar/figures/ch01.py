"""Figures of chapter 1: the geometry of the prompts, the context-free baseline, the in-context estimators, and the
explorer. Sampling, estimators and closed forms live in :mod:`icar.data`, :mod:`icar.estimators` and
:mod:`icar.theory`; this module only draws."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .style import PAGE_WIDTH_IN, plane_angles, to_numpy, torus_xyz, use_style  # noqa: F401 (use_style: the notebook)
from .. import data, estimators, theory


def plot_geometry(circle: torch.Tensor, angle: float, haar: torch.Tensor, W_haar: torch.Tensor, torus: torch.Tensor,
                  basis: torch.Tensor):
    r"""Three prompts: ``circle`` ``(T, 2)`` of the plane rotation by ``angle`` (rad; a circle, :math:`s_1`
    starred); ``haar`` ``(T, 3)`` of a Haar rotation ``W_haar`` ``(3, 3)`` with :math:`\det = +1` (a circle around
    the axis :math:`\ker(W - I)`, drawn as an arrow, viewed along it); ``torus`` ``(T, 4)`` of a commuting context
    with invariant basis ``basis`` ``(4, 4)``, plotted by its two plane angles on the torus :math:`\mathbb T^2`.
    Returns the figure."""
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, 7.6))
    ax = fig.add_subplot(2, 2, 1)
    c = to_numpy(circle)
    ax.plot(*c.T, "o-", ms=4)
    ax.plot(*c[0], "k*", ms=12, label="$s_1$")
    ax.set(xlabel="$s_{t,1}$", ylabel="$s_{t,2}$", title=f"$d=2$: a circle,\n$\\theta = {angle:g}$ rad", aspect="equal")
    ax.legend(loc="center", frameon=True)                      # the centre of the circle holds no data

    ax = fig.add_subplot(2, 2, 2, projection="3d")
    axis = torch.linalg.svd(W_haar - torch.eye(3, dtype=W_haar.dtype)).Vh[-1]   # kernel of W - I
    ax.plot(*to_numpy(haar).T, "o", ms=3)
    ax.quiver(0, 0, 0, *to_numpy(axis), color="k", label="rotation axis")
    ax.view_init(elev=float(torch.rad2deg(torch.asin(axis[2]))) - 20,
                 azim=float(torch.rad2deg(torch.atan2(axis[1], axis[0]))))
    ax.set(xticks=[], yticks=[], zticks=[], title="Haar $d=3$: a circle\naround an axis")
    ax.legend(loc="lower left")

    ax = fig.add_subplot(2, 1, 2, projection="3d")
    phi = to_numpy(plane_angles(torus, basis))
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 40), np.linspace(0, 2 * np.pi, 20))
    ax.plot_surface(*torus_xyz(u, v), alpha=0.08, color="grey")
    ax.plot(*torus_xyz(phi[:, 0], phi[:, 1]), ".", ms=2)
    ax.set(title="$d=4$: two planes, a winding on a torus", xticks=[], yticks=[], zticks=[])
    fig.tight_layout()
    return fig


def plot_context_free(losses: torch.Tensor, lrs: Sequence[float], seeds: int):
    r"""Training loss of the context-free predictors against the step (log scale), one line per learning rate (mean
    of its ``seeds`` models; ``losses`` ``(steps, len(lrs) * seeds)``, models grouped by learning rate), and the floor
    :math:`\E\|s_1\|^2 = 1` of predicting zero. The legend sits below the axes. Returns the figure."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 4.8), layout="constrained")
    L = to_numpy(losses)
    steps = np.arange(1, L.shape[0] + 1)
    for k, lr in enumerate(lrs):
        ax.plot(steps, L[:, seeds * k: seeds * (k + 1)].mean(1), label=f"lr = {lr:g} (mean of {seeds} seeds)")
    ax.axhline(1.0, color="k", ls="--", label=r"predict 0: $\mathbb{E}\|s_1\|^2 = 1$")
    ax.set(xscale="log", xlabel="training step", ylabel=r"error $\mathbb{E}\|\hat s_{t+1}-s_{t+1}\|^2$",
           title="A context-free linear predictor")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return fig


def plot_estimators(n: np.ndarray, gd: torch.Tensor, gd_theory: np.ndarray, fixed: torch.Tensor, ols: torch.Tensor,
                    d: int, *, floor: float = 1e-32):
    r"""Mean next-token error against the number of pairs ``n``: one GD step with the optimal step (Monte Carlo,
    ``gd``) against its closed form ``gd_theory``, one GD step with a fixed step (``fixed``) and least squares
    (``ols``, floored at ``floor`` for the log scale); all curves have the shape of ``n``. Returns the figure."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 5.2))
    ax.plot(n, to_numpy(gd), "o", ms=4, label=r"one GD step, $\gamma_n = d/(n+d-1)$ (Monte Carlo)")
    ax.plot(n, gd_theory, "k-", lw=1, label=r"theory $(d-1)/(n+d-1)$")
    ax.plot(n, to_numpy(fixed), "s", ms=3, label=r"one GD step, fixed $\gamma = 0.5$")
    ax.plot(n, to_numpy(ols).clip(min=floor), "^", ms=4, label="least squares (OLS)")
    ax.axvline(d, color="grey", ls=":", label="$n = d$: the prompt spans the space")
    ax.set(yscale="log", ylim=(1e-26, 10), xlabel="number of pairs in the prompt $n = t-1$",
           ylabel=r"next-token error $\mathbb{E}\|\hat s_{t+1}-s_{t+1}\|^2$",
           title=f"In-context estimators, unitary law, d = {d}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    return fig


def explore(d: int = 4, T: int = 24, law: str = "commuting", theta: float = 0.5, step_scale: float = 1.0,
            n: int = 400):
    r"""Explorer: one prompt of the law (first two coordinates, top) and the mean next-token error of least squares
    and of one GD step with ``step_scale`` times the optimal step :math:`d/(n+d-1)` against the number of pairs
    (bottom), over ``n`` prompts. Law ``"one angle"``: every prompt turns all its planes by the same ``theta`` (one
    known-in-advance :math:`W`). Returns the figure."""
    context = data.block_rotation(torch.full((d // 2,), theta, dtype=torch.float64)) if law == "one angle" else law
    states, _ = data.sample_ar(context, n=n, d=d, T=T, seed=7, init="phases" if law == "unitary" else "sphere")
    m = theory.phase_moments(d)
    gamma = step_scale * torch.tensor([theory.gd_optimal_step(max(t - 1, 1), d, m) for t in range(1, T + 1)])
    errs = {"least squares": estimators.ols_estimates(states),
            f"one GD step, {step_scale:g} x d/(n+d-1)": estimators.gd_estimates(states, gamma)}
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 7.4))
    x = to_numpy(states[0].real)
    a0.plot(x[:, 0], x[:, 1], ".-")
    a0.set(xlabel="$s_{t,1}$", ylabel="$s_{t,2}$", title=f"one prompt ({law}, d = {d}), first two coordinates",
           aspect="equal")
    for name, est in errs.items():
        err = estimators.next_token_errors(est, states)[:, 1:].mean(0).clamp(min=1e-32)
        a1.plot(np.arange(1, T - 1), to_numpy(err), "o-", ms=3, label=name)
    a1.set(yscale="log", xlabel="pairs in the prompt $n$",
           ylabel=r"next-token error $\mathbb{E}\|\hat s_{t+1}-s_{t+1}\|^2$", title="estimators")
    a1.legend()
    fig.tight_layout()
    return fig
