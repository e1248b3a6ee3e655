"""Figures of chapter 8: the learned matrices of the planner, and the explorer. Math and training live in
:mod:`icar.planning`; this module only draws."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .style import PAGE_WIDTH_IN, image
from ..planning import PathData, accuracy_by_group, make_data, observed_matrices, train_planner


def plot_matrices(W_M: torch.Tensor, W_V: torch.Tensor, data: PathData, *, graph: int = 0, size: int = 30):
    """Heatmaps of the first ``size`` nodes, in two columns: what the data hold (true A, true R, observed R: left) and
    what the planner learned (W^M beside A, W^V beside R, and where W^V is positive beside the observed R: right).
    Returns the figure."""
    A_obs, R_obs = observed_matrices(data.counts)
    k = min(size, data.n)
    sl = (graph, slice(0, k), slice(0, k))
    cur, tgt = "current node $i$", "target node $t$"
    # left column: the graph; right column: what the planner learned, beside the matrix it should recover
    mats = [[(data.A[sl], r"true adjacency $A$", "Greys", cur),
             (W_M[sl], r"learned $W^M$ (current $\to$ next)", "RdBu_r", cur)],
            [(data.R[sl], r"true reachability $R$", "Greys", tgt),
             (W_V[sl], r"learned $W^V$ (target $\to$ next)", "RdBu_r", tgt)],
            [(R_obs[sl], r"observed reachability $R^{\mathrm{obs}}$", "Greys", tgt),
             ((W_V[sl] > 0).double(), r"where learned $W^V > 0$", "Greys", tgt)]]
    fig, axes = plt.subplots(3, 2, figsize=(PAGE_WIDTH_IN, 10.6), layout="constrained")
    for row, ax_row in zip(mats, axes):
        for panel, ax in zip(row, ax_row):
            Mx, title, cmap, ylabel = panel
            X = Mx.detach().double().cpu().numpy()
            if cmap == "RdBu_r":
                v = float(np.abs(X).max()) or 1.0
                im = image(ax, X, cmap=cmap, vmin=-v, vmax=v)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="logit")
            else:
                image(ax, X, cmap=cmap, vmin=0, vmax=1)
            ax.set_title(title)
            ax.set_xlabel("next node $k$")
            ax.set_ylabel(ylabel)
    return fig


def explore(n: int = 40, p: float = 0.15, train_frac: float = 0.2, steps: int = 300, lr: float = 300.0,
            seed: int = 0):
    """Explorer: one graph, train the simplified planner, show the matrices and the test accuracy by group."""
    data = make_data(1, n, p, train_frac=train_frac, n_paths=10, seed=seed)
    run = train_planner(data.counts, steps=steps, lr=lr, n_snapshots=1, progress=False)
    fig = plot_matrices(run.W_M[-1], run.W_V[-1], data, size=min(n, 40))
    acc = accuracy_by_group(run.W_M[-1], run.W_V[-1], data)
    txt = ", ".join(f"{k}: {v[0]:.2f} ({v[1]} pairs)" for k, v in acc.items())
    fig.suptitle(f"greedy test accuracy\n{txt}")
    return fig
