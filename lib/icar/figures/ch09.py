"""Figure of chapter 9: every mechanism's error against the context length on the shared prompts.
The errors and closed forms come from :mod:`icar.lens`; this module only draws."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..lens import APPROXIMATE, EXACT
from .style import PAGE_WIDTH_IN

LABELS = {
    "gd_optimal": "one GD step, best $\\eta_n$ (ch. 1)",
    "augmented": "augmented-token layer, $\\eta^\\star$ (ch. 2)",
    "mesa": "mesa-optimizer, $p^*/(t-1)$ (ch. 3)",
    "multihead_half": "multi-head, $H = d/2$ heads (ch. 4)",
    "ckd": "causal kernel descent, depth {depth} (ch. 6)",
    "kaczmarz": "causal kernel descent, infinite depth (ch. 6)",
    "softmax_1": "softmax, one layer: averaging (ch. 5, 7)",
    "softmax_inf": "softmax CKD, infinite depth (ch. 6)",
    "ols": "least squares (ch. 1)",
    "multihead": "multi-head, $H = d$ heads (ch. 4)",
    "trig": "trigonometric recursion, real view (ch. 4):\ncoincides with multi-head $H = d$",
}
#: One colour and marker per mechanism; the two exact maps that coincide are drawn as large hollow markers around small
#: filled ones, so that both stay visible.
STYLES = {
    "gd_optimal": dict(color="C0", marker="o"), "augmented": dict(color="C1", marker="s"),
    "mesa": dict(color="C2", marker="^"), "multihead_half": dict(color="C3", marker="v"),
    "ckd": dict(color="C4", marker="D"), "kaczmarz": dict(color="C5", marker="P"),
    "softmax_1": dict(color="C6", marker="X"), "softmax_inf": dict(color="C8", marker="*", ms=7),
    "ols": dict(color="C7", marker="s", ms=5),
    "multihead": dict(color="C9", marker="o", ms=10, mfc="none", mew=1.5),
    "trig": dict(color="navy", marker=".", ms=6),
}
def plot_lens(errors: dict[str, torch.Tensor], theory_curves: dict[str, torch.Tensor], *, ckd_depth: int = 4,
              floor: float = 1e-32):
    r"""The closing figure: mean squared next-token error against the number of pairs :math:`n`, one marker series
    per mechanism (Monte-Carlo mean over the shared prompts) and a black line for each closed form in
    ``theory_curves`` (same keys). Top panel: the approximate in-context maps; bottom: the exact ones, at rounding
    level (floored at ``floor`` for the log scale); one legend for both, below them. ``ckd_depth`` names the depth of
    the ``ckd`` series. Returns the figure."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 11.5), layout="constrained",
                                      gridspec_kw={"height_ratios": [1.5, 1.0]})
    for ax, keys in ((top, APPROXIMATE), (bottom, EXACT)):
        for key in (k for k in keys if k in errors):
            err = errors[key]
            n = torch.arange(1, err.shape[1] + 1).numpy()
            mean = err.detach().mean(0).clamp_min(floor).cpu().numpy()
            ax.plot(n, mean, **{"ms": 4.5, **STYLES[key]}, ls="-" if ax is bottom else ":", lw=1.0,
                    label=LABELS[key].format(depth=ckd_depth))
            if key in theory_curves:
                ax.plot(n, theory_curves[key].detach().cpu().numpy(), "k-", lw=1.0, zorder=0)
        ax.set_yscale("log")
        ax.set_ylabel(r"$\mathbb{E}\,\|\hat s_{t+1} - s_{t+1}\|^2$  (units of $\|s_1\|^2$)")
        ax.set_xlabel("number of pairs in the prompt $n = t - 1$")
    top.plot([], [], "k-", lw=1.0, label="closed form proved in the chapter")
    top.set_ylim(1.5e-2, 4.0)
    top.set_title("Approximate in-context maps: error decays with the context")
    bottom.set_ylim(floor / 10, 1e4)
    bottom.set_title("Exact in-context maps: rounding level once the map is determined")
    # one legend for both panels, below the figure: between the panels or inside it would cover data
    handles = [h for ax in (top, bottom) for h in ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig
