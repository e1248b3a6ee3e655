"""Figures of chapter 3: gradient maps, training runs of the step ab, errors by position, the explorer.
Math and training live in :mod:`icar.mesa`; this module only draws."""
from __future__ import annotations

import re

import matplotlib.pyplot as plt
import torch
from matplotlib.lines import Line2D

from .style import PAGE_WIDTH_IN, image, use_style  # noqa: F401 (use_style: the chapter's notebook calls it)
from ..mesa import diagonals, init_moments, p_star, population_coefficients, reduced_flow


#: How the figures name the laws of :math:`x_1` (the library's names are lower case).
LAW_NAMES = {"gaussian": "Gaussian", "rademacher": "Rademacher", "complex_gaussian": "complex Gaussian"}
#: One line style per initialisation, the same in both panels of a row: runs that coincide stay visible.
_INIT_STYLES = [dict(ls="-", lw=3.5), dict(ls="--", lw=2.2), dict(ls=":", lw=2.2), dict(ls="-.", lw=1.5)]


def law_name(law: str) -> str:
    """``"gaussian"`` -> ``"Gaussian"``, ``"rademacher"`` -> ``"Rademacher"``; other laws keep their name."""
    return LAW_NAMES.get(law, law)


def math_title(name: str) -> str:
    r"""An experiment's name as a title in mathtext: ``"Gaussian x1 (sigma = 1)"`` -> ``"Gaussian $x_1$
    ($\sigma = 1$)"``."""
    name = re.sub(r"\bx1\b", "$x_1$", name)
    return re.sub(r"\((sigma|c) = ([^)]*)\)", lambda m: "($" + ("\\sigma" if m[1] == "sigma" else m[1])
                  + " = " + m[2] + "$)", name)


def _block_lines(ax, d: int, rows: int) -> None:
    ax.axvline(d - 0.5, color="k", lw=0.8)
    if rows == 2 * d:
        ax.axhline(d - 0.5, color="k", lw=0.8)


def plot_gradient_maps(grads: dict[str, tuple[torch.Tensor, torch.Tensor]], *, floor: float = 1e-16):
    r"""Heat-maps of :math:`\log_{10}|\nabla L|` for :math:`W^{KQ}` (left) and :math:`W^{PV}` (right), one row per
    law; ``grads[name] = (dK (2d, 2d), dP (d, 2d))``. Thin lines separate the token slots (current | previous)."""
    names = list(grads)
    fig, axes = plt.subplots(len(names), 2, figsize=(PAGE_WIDTH_IN, 3.3 * len(names)), squeeze=False,
                             layout="constrained")
    for j, name in enumerate(names):
        dK, dP = grads[name]
        d = dP.shape[-2]
        for i, (G, label) in enumerate([(dK, r"$\nabla W^{KQ}$"), (dP, r"$\nabla W^{PV}$")]):
            ax = axes[j, i]
            im = image(ax, torch.log10(G.abs().clamp(min=floor)), vmin=-16, vmax=1, cmap="magma")
            _block_lines(ax, d, G.shape[0])
            ax.set_title(f"{math_title(name)}: {label}")
            ax.set_xlabel("column (current | previous)")
            ax.set_ylabel("row")
    fig.colorbar(im, ax=axes, shrink=0.6, label=r"$\log_{10}$ |gradient entry|")
    return fig


def plot_training(exps: dict[str, "icar.mesa.Experiment"], p_pop: dict[str, float], p_inf: dict[str, float]):
    r"""For each experiment: :math:`ab` along full-batch GD (lines) and along the two-scalar recursion (dots), with
    the training set's optimum :math:`\hat N/\hat M`, the population :math:`p^*(T)` and the :math:`T\to\infty` value;
    right column: :math:`a^2 - b^2` along the runs; one row per experiment, one legend per row below it.

    Each initialisation keeps one line style in both panels (runs with the same :math:`a_0^2 - b_0^2` overlap on the
    right: the thick solid line stays visible under the dotted one); the three reference levels are drawn with
    interleaved dashes, so that levels that coincide show all three colours."""
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, 5.0 * len(exps)), layout="constrained")
    rows = fig.subfigures(len(exps), 1, squeeze=False)[:, 0]
    refs = [("k", 0, r"$\hat N/\hat M$ (this training set)"), ("C4", 5, r"population $p^*(T)$"),
            ("C3", 10, r"$T\to\infty$: $\kappa_1/\kappa_2$")]
    for sub, (name, ex) in zip(rows, exps.items()):
        ax, ax_c = sub.subplots(1, 2, width_ratios=[1.6, 1])
        ab = ex.run.ab.numpy()
        a_r, b_r = ex.reduced()
        steps = ex.run.at.numpy()
        a, b = diagonals(ex.run.K, ex.run.P)
        conserved = (a**2 - b**2).mean(-1)
        handles = []
        for m in range(ab.shape[1]):
            style = dict(color=f"C{m}", **_INIT_STYLES[m % len(_INIT_STYLES)])
            c0 = float(ex.a0[m] ** 2 - ex.b0[m] ** 2)
            line, = ax.plot(steps, ab[:, m], **style,
                            label=rf"$(a_0, b_0) = ({ex.a0[m]:.1f}, {ex.b0[m]:.1f})$, $a_0^2 - b_0^2 = {c0:.1f}$")
            ax.plot(steps[::4], (a_r * b_r)[ex.run.at][::4, m].numpy(), "o", ms=4, color=style["color"])
            ax_c.plot(steps, conserved[:, m].numpy(), **style)
            handles.append(line)
        handles.append(Line2D([], [], color="k", marker="o", ms=4, ls="none", label="two-scalar recursion (dots)"))
        for (color, offset, label), level in zip(refs, (ex.p_hat, p_pop[name], p_inf[name])):
            handles.append(ax.axhline(level, color=color, lw=1.8, ls=(offset, (5, 10)), label=label))
        ax.set_yscale("log")
        ax.set_xlabel("GD step")
        ax.set_ylabel(r"$ab$ (in-context step)")
        ax.set_title(math_title(name))
        ax_c.set_xlabel("GD step")
        ax_c.set_ylabel(r"$a^2 - b^2$ (diagonal mean)")
        ax_c.set_title("conserved along the run")
        sub.legend(handles=handles, loc="outside lower center", ncol=2)
    return fig


def plot_errors(t: torch.Tensor, curves: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]]):
    r"""Squared next-token error against the position t: Monte-Carlo mean (band: :math:`\pm 2` s.e.), the exact
    formula (dashed) and the :math:`t \to \infty` limit :math:`d(m_2 - \kappa_1^2/\kappa_2)` (dotted);
    ``curves[name] = (mean, se, formula, limit)``."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    tt = t.numpy()
    for name, (mean, se, formula, limit) in curves.items():
        line, = ax.plot(tt, mean.numpy(), lw=2, label=f"{law_name(name)}: measured")
        ax.fill_between(tt, (mean - 2 * se).numpy(), (mean + 2 * se).numpy(), color=line.get_color(), alpha=0.2)
        ax.plot(tt, formula.numpy(), "--", color="k", lw=0.8)
        ax.axhline(max(limit, 1e-17), color=line.get_color(), ls=":", lw=1)
    ax.plot([], [], "--", color="k", lw=0.8, label="exact formula")
    ax.plot([], [], ":", color="gray", label=r"limit $d(m_2 - \kappa_1^2/\kappa_2)$")
    ax.set_yscale("symlog", linthresh=1e-3)
    top = max(float(torch.cat([mean + 2 * se, formula]).max()) for mean, se, formula, _ in curves.values())
    ax.set_ylim(0, 2 * top)  # headroom: the Rademacher error is largest at the first position
    ax.set_xlabel("position $t$ (number of observed transitions + 1)")
    ax.set_ylabel(r"$E\|\hat y_t - x_{t+1}\|^2$")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    return fig


def plot_beyond(K: torch.Tensor, P: torch.Tensor, ab_full: torch.Tensor, ab_masked: torch.Tensor, p_masked: float):
    """Trained all-ones model: real parts of :math:`W^{KQ}` and :math:`W^{PV}` (one model, top), and :math:`ab`
    along the unmasked (full) and masked runs (bottom)."""
    fig = plt.figure(figsize=(PAGE_WIDTH_IN, 7.6), layout="constrained")
    grid = fig.add_gridspec(2, 2)
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    d = P.shape[-2]
    vmax = max(K.real.abs().max().item(), P.real.abs().max().item())
    for ax, G, name in [(axes[0], K, r"$\mathrm{Re}\,W^{KQ}$"), (axes[1], P, r"$\mathrm{Re}\,W^{PV}$")]:
        im = image(ax, G.real, cmap="RdBu_r", vmin=-0.1, vmax=0.1)
        _block_lines(ax, d, G.shape[0])
        ax.set_title(name)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    fig.colorbar(im, ax=axes[:2], shrink=0.8, label="entry value (clipped at ±0.1)")
    ax = axes[2]
    ax.plot(ab_full.numpy(), lw=2, label="all entries trained: mean diagonal $ab$")
    ax.plot(ab_masked.numpy(), lw=2, ls="--", label="off-diagonal gradients masked")
    ax.axhline(p_masked, color="k", ls=":", label=r"masked optimum $\hat N/\hat M$")
    ax.set_xlabel("GD step")
    ax.set_ylabel(r"$ab$")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1)
    del vmax
    return fig


def explore(T: int = 100, d: int = 5, law: str = "gaussian", a0: float = 0.1, b0: float = 0.1, scale: float = 1.0):
    r"""Explorer: :math:`p^*(T)` against T for the chosen law (top) and the gradient-flow trajectory of :math:`ab` in
    the two-scalar family with the population coefficients (bottom; time in units of :math:`d/N`)."""
    m = init_moments(law, d, scale)
    Ts = torch.arange(3, max(T, 4) * 2 + 1)
    ps = torch.tensor([p_star(m, d, int(t)) for t in Ts])
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 7.2))
    axes[0].plot(Ts.numpy(), ps.numpy(), lw=2, label=rf"$p^*(T)$, {law_name(law)} $x_1$, $d = {d}$")
    axes[0].axhline(m.kappa1 / m.kappa2, color="k", ls="--", label=r"$\kappa_1/\kappa_2$ ($T\to\infty$)")
    axes[0].axvline(T, color="gray", ls=":", label=f"$T = {T}$")
    axes[0].set_xlabel("sequence length $T$")
    axes[0].set_ylabel(r"limit step $p^* = \lim ab$")
    axes[0].legend()
    M, N, _ = population_coefficients(m, d, T)
    tau = torch.linspace(0, 12, 200) * d / N
    a, b = reduced_flow(a0, b0, M, N, d, times=tau, substeps=4)
    axes[1].plot((tau * N / d).numpy(), (a * b)[:, 0].numpy(), lw=2, label=f"$(a_0, b_0) = ({a0:.2f}, {b0:.2f})$")
    axes[1].axhline(N / M, color="k", ls="--", label=r"$p^*(T)$")
    axes[1].set_xlabel(r"gradient-flow time $\tau N/d$")
    axes[1].set_ylabel(r"$ab$")
    axes[1].legend()
    fig.tight_layout()
    return fig
