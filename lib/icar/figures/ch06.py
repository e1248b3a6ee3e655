"""Figures of chapter 6: causal kernel descent (CKD) in floating point, its rates on linear, periodic and non-linear
prompts, depth, training against the construction, and the explorer. Math lives in :mod:`icar.kernels` and
:mod:`icar.kernel_transformer`; this module only draws."""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .style import PAGE_WIDTH_IN, to_numpy, use_style  # noqa: F401 (use_style: the chapter's notebook calls it)
from .. import kernels as K

_BELOW = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)   # a legend under the axes, clear of the data


def _median(err: torch.Tensor, floor: float = 1e-17) -> np.ndarray:
    """Median over prompts (dim 0), floored for a log scale."""
    return to_numpy(err.median(0).values.clamp(min=floor))


def plot_blowup(Ts: Sequence[int], blow: dict[str, Sequence[float]]):
    r"""Unit-step CKD at depth :math:`T - 1` against the context length ``Ts``: the peak intermediate magnitude
    (``blow["peak"]``) and the largest error against the Kaczmarz sweep in float64 and float32 (``blow["float64"]``,
    ``blow["float32"]``), log scale. Returns the figure."""
    fig, ax = plt.subplots(figsize=(6.5, 4.6), layout="constrained")
    names = {"peak": ("k^-", r"peak $\max|u^k|$ over layers"), "float64": ("o-", "float64 error"),
             "float32": ("s-", "float32 error")}
    for key, (style, label) in names.items():
        ax.semilogy(Ts, blow[key], style, label=label)
    ax.set(xlabel=r"context length T (depth n = T - 1, step $\eta$ = 1)", ylabel="magnitude (log scale)",
           title="Exact in theory, unstable in floating point")
    ax.legend(**{**_BELOW, "ncol": 3})
    return fig


def plot_linear_rate(err_kz: torch.Tensor, err_cf: torch.Tensor, err_ols: torch.Tensor, d: int,
                     dims: Sequence[int], rhos: torch.Tensor):
    r"""Top: median prediction error against the position on linear prompts (``(B, T-1)`` each): the causal Kaczmarz
    sweep, its closed form :math:`\|(\Pi_1 W)^{t-1}x_1\|` and non-causal least squares. Bottom: the gap
    :math:`1 - \rho(\Pi_1 W)` against the dimension ``dims`` (``rhos`` ``(len(dims), draws)``: median and 10%-90%
    band). Returns the figure."""
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 8.6), layout="constrained")
    tt = np.arange(1, err_kz.shape[1] + 1)
    a0.semilogy(tt, _median(err_kz), "o-", ms=3, label="causal: Kaczmarz sweep (median)")
    a0.semilogy(tt, _median(err_cf), "k--", lw=1, label=r"closed form $\|(\Pi_1 W)^{t-1} x_1\|$")
    a0.semilogy(tt, _median(err_ols), "s-", ms=3, label="non-causal least squares")
    a0.axvline(d + 1, color="gray", lw=0.8, ls=":", label=f"t = d + 1 = {d + 1}")
    a0.set(xlabel="position t", ylabel=r"prediction error $\|u_t - x_{t+1}\|$", ylim=(1e-17, 3),
           title=f"Linear kernel, Haar W, d = {d}")
    a0.legend(**_BELOW)
    q = to_numpy(torch.quantile(rhos, torch.tensor([0.1, 0.5, 0.9], dtype=rhos.dtype), dim=1))
    a1.semilogy(dims, 1 - q[1], "o-", label="median")
    a1.fill_between(dims, 1 - q[2], 1 - q[0], alpha=0.25, label="10%-90% of draws")
    a1.set(xscale="log", xlabel="dimension d (log scale)", ylabel=r"$1 - \rho(\Pi_1 W)$  (log scale)",
           title="Geometric rate degrades with d")
    a1.set_xticks(dims, [str(dd) for dd in dims])
    a1.minorticks_off()
    a1.legend()
    return fig


def plot_periodic(err: dict[str, torch.Tensor], d: int, p: int):
    """Median prediction error against the position on periodic prompts, one line per kernel (``err[name]``
    ``(B, T-1)``). Returns the figure."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, e in err.items():
        ax.semilogy(np.arange(1, e.shape[1] + 1), _median(e), lw=1.2, label=name)
    ax.set(xlabel="position t", ylabel="prediction error (median over prompts)", ylim=(1e-16, 5),
           title=f"Periodic prompts: d = {d}, period p = {p}")
    ax.legend()
    return fig


def plot_softmax_rate(err_soft: torch.Tensor, err_exp: torch.Tensor, d: int, p: int, beta: float):
    r"""Median prediction error against the position (log-log) on periodic prompts: softmax CKD at infinite depth
    (``err_soft`` ``(B, T-1)``) against the exponential kernel's Kaczmarz sweep (``err_exp``) and the line
    :math:`10/t`. Returns the figure."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    tt = np.arange(1, err_soft.shape[1] + 1)
    ax.loglog(tt, _median(err_soft), lw=1.2, label="softmax CKD, infinite depth")
    ax.loglog(tt, _median(err_exp), lw=1.2, label="exponential kernel (Kaczmarz)")
    ax.loglog(tt[p:], 10.0 / tt[p:], "k--", lw=1, label="10 / t")
    ax.set(xlabel="position t (log scale)", ylabel="prediction error (median over prompts)", ylim=(1e-16, 5),
           title=f"Periodic prompts, beta = {beta:g}, d = {d}, p = {p}")
    ax.legend()
    return fig


def plot_depth(curves: dict[str, torch.Tensor], kaczmarz: float, window: str):
    """Mean squared error against the depth, one line per step rule (``curves[name]`` ``(depth,)``, capped at 1e12),
    and the infinite-depth Kaczmarz error; ``window`` names the positions averaged. Returns the figure."""
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 5.0), layout="constrained")
    for name, c in curves.items():
        ax.semilogy(np.arange(1, c.shape[0] + 1), to_numpy(c.clamp(max=1e12)), "o-", ms=2.5, label=name)
    ax.axhline(float(kaczmarz), color="k", ls="--", lw=1, label="Kaczmarz (infinite depth)")
    ax.set(xlabel="depth n (layers)", ylabel=f"mean squared error, {window}", title="Linear instance, d = 5, T = 30")
    ax.legend(**_BELOW)
    return fig


def plot_nonlinear(err: torch.Tensor, copy: torch.Tensor, d: int, beta: float, eps: float):
    """Prediction error against the position (log-log) on prompts of a non-linear map of the sphere: the exponential
    kernel's Kaczmarz sweep (``err`` ``(B, T-1)``: mean and median) against copying the last token (``copy``, mean).
    Returns the figure."""
    fig, ax = plt.subplots(figsize=(6.5, 5.0), layout="constrained")
    tt = np.arange(1, err.shape[1] + 1)
    ax.loglog(tt, to_numpy(err.mean(0)), lw=1.4, label=f"exponential kernel, beta = {beta:g}: mean over prompts")
    ax.loglog(tt, _median(err), lw=1, ls="--", label=f"exponential kernel, beta = {beta:g}: median")
    ax.loglog(tt, to_numpy(copy.mean(0)), lw=1.2, label="copy the last token (mean)")
    ax.set(xlabel="position t (log scale)", ylabel="prediction error", ylim=(1e-16, 5),
           title=f"Non-linear map of the sphere, d = {d}, eps = {eps:g}")
    ax.legend(**{**_BELOW, "ncol": 1})
    return fig


def plot_training(losses: torch.Tensor, etas: torch.Tensor, constructed: torch.Tensor, trained: torch.Tensor,
                  kaczmarz: float, depth: int):
    """Top: training loss of each trained model (``losses`` ``(steps, seeds)``, squared error per prompt position)
    against the best constructed network of the same ``depth`` and the infinite-depth sweep. Bottom: the constructed
    network's test error against its step (``etas``, ``constructed`` ``(len(etas),)``) and the trained models'
    median test error (``trained`` ``(seeds,)``). Returns the figure."""
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 9), layout="constrained")
    L = to_numpy(losses)
    steps = np.arange(1, L.shape[0] + 1)
    for m in range(L.shape[1]):
        a0.semilogy(steps, L[:, m], lw=0.8, label=f"trained, seed {m}")
    a0.axhline(float(constructed.min()), color="k", ls="--", lw=1, label=f"constructed, best eta, n = {depth}")
    a0.axhline(float(kaczmarz), color="gray", ls=":", lw=1, label="Kaczmarz (infinite depth)")
    a0.set(xlabel="training step", ylabel="squared error per prompt position", title="Training on fresh Haar prompts")
    a0.legend(**_BELOW)
    a1.semilogy(to_numpy(etas), to_numpy(constructed), "o-", ms=3, label=f"constructed, n = {depth}")
    a1.axhline(float(trained.median()), color="C1", ls="--", label=f"trained (median of {trained.shape[0]} seeds)")
    a1.set(xlabel="step eta of the construction", ylabel="test squared error (log scale)",
           title="Construction vs training")
    a1.legend()
    return fig


def explore(kernel: str = "exp", step: float = 0.5, depth: int = 20, instance: str = "periodic", period: int = 12,
            beta: float = 2.0):
    r"""Explorer: CKD of the given ``depth`` and step ``step / k(x, x)`` on 8 prompts (periodic of the given
    ``period`` in :math:`\R^8`, or linear in :math:`\R^5`): the median error against the position next to the
    infinite-depth limit (top), and the mean squared error against the depth (bottom). Returns the figure."""
    if instance == "periodic":
        X, _ = K.sample_periodic(8, 8, period, 10 * period + 1, seed=11)
    else:
        X, _, _ = K.sample_linear(8, 5, 60, seed=11)
    kxx = 1.0 if kernel != "exp" else math.exp(beta)
    res = K.ckd(X, depth, kernel=kernel, beta=beta, eta=step / kxx if kernel != "softmax" else step, keep_path=True)
    limit = K.ckd_limit(X, kernel=kernel, beta=beta)
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 7.6), layout="constrained")
    tt = np.arange(1, X.shape[1])
    a0.semilogy(tt, to_numpy(K.prediction_errors(res.u, X).median(0).values.clamp(1e-17, 1e12)), label=f"depth {depth}")
    a0.semilogy(tt, _median(K.prediction_errors(limit, X)), "k--", label="infinite depth")
    a0.set(xlabel="position t", ylabel="prediction error (median)", title=f"{kernel}, {instance} prompt")
    a0.legend()
    err_n = (res.path[:, :, :-1] - X[:, 1:]).pow(2).sum(-1).mean(dim=(1, 2))
    a1.semilogy(np.arange(1, depth + 1), to_numpy(err_n.clamp(max=1e12)), "o-", ms=3)
    a1.set(xlabel="depth n", ylabel="mean squared error over t", title=f"step = {step:g} / k(x, x)")
    return fig
