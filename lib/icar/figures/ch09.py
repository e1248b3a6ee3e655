"""Figure of chapter 9: every mechanism's error against the context length on the shared prompts.
The errors and closed forms come from :mod:`icar.lens`; this module only draws."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..lens import APPROXIMATE, EXACT

LABELS = {
    "gd_optimal": "one GD step, best $\\gamma_n$ (ch. 1)",
    "augmented": "augmented-token layer, $\\eta^\\star$ (ch. 2)",
    "mesa": "mesa-optimizer, $p^*/(t-1)$ (ch. 3)",
    "multihead_half": "multi-head, $H = d/2$ heads (ch. 4)",
    "ckd": "causal kernel descent, depth {depth} (ch. 6)",
    "kaczmarz": "causal kernel descent, infinite depth (ch. 6)",
    "softmax_1": "softmax, one layer: averaging (ch. 5, 7)",
    "softmax_inf": "softmax CKD, infinite depth (ch. 6)",
    "ols": "least squares (ch. 1)",
    "multihead": "multi-head, $H = d$ heads (ch. 4)",
    "trig": "trigonometric recursion, real view (ch. 4)",
}
_MARKERS = dict(zip(LABELS, "os^vDPXd*hp"))


def plot_lens(errors: dict[str, torch.Tensor], theory_curves: dict[str, torch.Tensor], *, ckd_depth: int = 4,
              floor: float = 1e-32):
    r"""The closing figure: mean squared next-token error against the number of pairs :math:`n`, one marker series
    per mechanism (Monte-Carlo mean over the shared prompts) and a black line for each closed form in
    ``theory_curves`` (same keys). Top panel: the approximate in-context maps; bottom: the exact ones, at rounding
    level (floored at ``floor`` for the log scale). ``ckd_depth`` names the depth of the ``ckd`` series. Returns the
    figure."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.6, 9.6), sharex=True,
                                      gridspec_kw={"height_ratios": [1.5, 1.0]})
    for ax, keys in ((top, APPROXIMATE), (bottom, EXACT)):
        for i, key in enumerate(k for k in keys if k in errors):
            err = errors[key]
            n = torch.arange(1, err.shape[1] + 1).numpy()
            mean = err.detach().mean(0).clamp_min(floor).cpu().numpy()
            ax.plot(n, mean, _MARKERS[key], ms=4.5, ls="-" if ax is bottom else ":", lw=0.8, color=f"C{i}",
                    label=LABELS[key].format(depth=ckd_depth))
            if key in theory_curves:
                ax.plot(n, theory_curves[key].detach().cpu().numpy(), "k-", lw=1.0, zorder=0)
        ax.set_yscale("log")
        ax.set_ylabel(r"$\mathbb{E}\,\|\hat s_{t+1} - s_{t+1}\|^2$  (units of $\|s_1\|^2$)")
    top.plot([], [], "k-", lw=1.0, label="closed form proved in the chapter")
    top.set_ylim(1.5e-2, 4.0)
    top.set_title("Approximate in-context maps: error decays with the context")
    top.legend(loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=2, frameon=False)
    bottom.set_ylim(floor / 10, 1e4)
    bottom.set_title("Exact in-context maps: rounding level once the map is determined")
    bottom.legend(loc="upper right", frameon=False)
    bottom.set_xlabel("number of pairs in the prompt $n = t - 1$")
    fig.tight_layout()
    return fig
