"""The figure functions of chapters 1, 2, 4, 5, 6 and 7 draw from small inputs: each returns a figure whose axes carry
labels (2-D axes: both; 3-D axes of the geometry figure: a title) and fits the page width, and a figure function
closes nothing and leaves one new figure open."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from icar import data  # noqa: E402
from icar import multihead as mh  # noqa: E402
from icar import noncommuting as nc  # noqa: E402
from icar import softmax_icl as S  # noqa: E402
from icar.figures import ch01, ch02, ch04, ch05, ch06, ch07, style  # noqa: E402

G = torch.Generator().manual_seed(0)


def _rand(*shape, low=1e-3, high=1.0):
    return low + (high - low) * torch.rand(*shape, generator=G, dtype=torch.float64)


def _check(fig, n_axes=None):
    """A figure, no wider than the page, whose data axes all have x and y labels (colour bars and the legend panel
    excepted: they carry no data)."""
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig.get_figwidth() <= style.PAGE_WIDTH_IN + 1e-9
    data_axes = [ax for ax in fig.axes if (ax.axison or ax.name == "3d") and not hasattr(ax, "_colorbar")
                 and ax.get_label() != "<colorbar>"]
    if n_axes is not None:
        assert len(data_axes) == n_axes
    for ax in data_axes:
        if ax.name == "3d":
            assert ax.get_title()
        else:
            assert ax.get_xlabel() and ax.get_ylabel(), f"unlabelled axes: {ax.get_title()!r}"
            assert ax.has_data()
    plt.close(fig)


@pytest.fixture(autouse=True)
def _one_new_figure():
    before = len(plt.get_fignums())
    yield
    assert len(plt.get_fignums()) == before, "a figure function left a figure open after the test closed its own"


# --- chapter 1 -------------------------------------------------------------------------------------------------------

def test_ch01_geometry_draws_the_three_prompts():
    s2, _ = data.sample_ar(data.rotation(torch.tensor(0.5, dtype=torch.float64)), n=1, d=2, T=6, seed=0)
    s3, W3 = data.sample_ar("haar", n=1, d=3, T=8, seed=4)
    basis = data.haar_orthogonal(1, 4, seed=5)[0]
    s4, _ = data.sample_ar("commuting", n=1, d=4, T=20, seed=5, basis=basis)
    fig = ch01.plot_geometry(s2[0], 0.5, s3[0], W3[0], s4[0], basis)
    assert "0.5" in fig.axes[0].get_title()
    _check(fig, n_axes=3)


def test_ch01_context_free_and_estimators():
    fig = ch01.plot_context_free(_rand(10, 6), lrs=[1e-3, 1e-2], seeds=3)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3                             # two learning rates and the floor
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().y0 < ax.get_window_extent().y0   # below the axes
    _check(fig, n_axes=1)
    n = np.arange(1, 6)
    fig = ch01.plot_estimators(n, _rand(5), _rand(5).numpy(), _rand(5), torch.zeros(5), d=3)
    assert min(fig.axes[0].get_lines()[3].get_ydata()) > 0      # the exact OLS curve is floored for the log scale
    _check(fig, n_axes=1)


def test_ch01_explorer_is_one_figure():
    _check(ch01.explore(d=2, T=8, law="one angle", theta=0.3, n=16), n_axes=2)


# --- chapter 2 -------------------------------------------------------------------------------------------------------

def test_ch02_held_out_errors():
    n = torch.arange(6)
    fig = ch02.plot_held_out_errors(n, _rand(3, 6), _rand(6), _rand(6), torch.zeros(6), d=2)
    ax = fig.axes[0]
    assert "mean of 3 seeds" in ax.get_legend().get_texts()[0].get_text()
    assert min(ax.get_lines()[3].get_ydata()) > 0                 # the exact OLS curve is floored for the log scale
    _check(fig, n_axes=1)


# --- chapter 4 -------------------------------------------------------------------------------------------------------

def test_ch04_minima():
    model = mh.MultiHeadDiagonal(2, 4, n_heads=2, T=6, seed=0)
    C, P = model.C().detach(), model.P_masked().detach()
    c = torch.diagonal(C, 0, -2, -1).mean(-1)
    latest, query, _ = mh.bands(P)
    fig = ch04.plot_unitary_minimum(model, _rand(5, 2), latest, query, c, index=1)
    assert any("2 seeds" in a.get_title() for a in fig.axes)
    _check(fig, n_axes=6)
    fig = ch04.plot_orthogonal_minimum(model, _rand(5, 2), C, c)
    assert any("$H = 2 < d = 4$" in a.get_title() for a in fig.axes)
    _check(fig, n_axes=6)


def test_ch04_heads_coefficients_and_sweep():
    gram = _rand(2, 3, 3)
    _check(ch04.plot_head_gram(gram, gram + 0.01), n_axes=3)
    alpha, two_cos = _rand(2, 4, 3, 4), _rand(2, 4, 3, 4)
    others = torch.cat([torch.zeros(2, 4, 3, 1), _rand(2, 4, 3, 3)], -1)
    _check(ch04.plot_trig_coefficients(two_cos, alpha, -1 + 0.01 * _rand(2, 4, 3, 4), others), n_axes=2)
    d = 4
    floor = torch.tensor([3.0, 2.0, 1.0, 0.0], dtype=torch.float64)
    _check(ch04.plot_head_sweep(floor, _rand(d, 2), _rand(d, 2), d), n_axes=1)


# --- chapter 5 -------------------------------------------------------------------------------------------------------

def test_ch05_figures_of_the_trained_layers():
    d, seeds, T = 2, 1, 5
    starts = ["fixed", "random"]
    base = nc.Baselines(zero=1.0, copy=0.8, gd_shared=0.6, gd_per_position=0.5, gd_normalized=0.4,
                        gamma_shared=0.3, gamma_per_position=torch.ones(T))
    fig = ch05.plot_augmented(_rand(8, 2), starts, seeds, base, _rand(2, 3 * d, 3 * d), _rand(2, d, 3 * d), d)
    _check(fig, n_axes=4)
    fig = ch05.plot_context_length(_rand(1, T), _rand(1, T), _rand(T), _rand(T), _rand(3 * d, 3 * d), d)
    _check(fig, n_axes=2)
    fig = ch05.plot_positional(torch.tril(_rand(2, T, T)), starts, seeds, first_row=2)
    _check(fig, n_axes=3)


def test_ch05_early_stopping_windows_and_explorer():
    mus = torch.tensor([1.0, 50.0])
    fig = ch05.plot_early_stopping(_rand(2, 6), torch.tensor([3, 9]), mus, _rand(2, 6), _rand(2, 5, 7))
    assert "50" in fig.axes[1].get_title()
    _check(fig, n_axes=3)
    err = torch.cat([torch.zeros(3), 10 ** -_rand(4, low=1.6, high=3.4)])
    fig = ch05.plot_window_errors({"original order": (err, err > 0, torch.full((7,), 4))})
    assert "4 of 7 windows" in fig.axes[0].get_legend().get_texts()[0].get_text()
    _check(fig, n_axes=1)
    _check(ch05.explore_pe(mu=10.0, row=5, steps=20, T=8), n_axes=2)


# --- chapter 6 -------------------------------------------------------------------------------------------------------

def test_ch06_figures():
    Ts = [4, 6, 8]
    _check(ch06.plot_blowup(Ts, {"peak": [1.0, 10.0, 100.0], "float64": [1e-15] * 3, "float32": [1e-7] * 3}), 1)
    B, T = 4, 10
    fig = ch06.plot_linear_rate(_rand(B, T), _rand(B, T), _rand(B, T), 3, [2, 3, 5], 1 - _rand(3, 20, high=0.1))
    _check(fig, n_axes=2)
    _check(ch06.plot_periodic({"linear": _rand(B, T), "exponential, beta = 1": _rand(B, T)}, d=3, p=2), 1)
    _check(ch06.plot_softmax_rate(_rand(B, T), _rand(B, T), d=3, p=2, beta=3.0), 1)
    fig = ch06.plot_depth({"constant eta = 0.5": _rand(6), "softmax": _rand(6)}, kaczmarz=0.1, window="t in [2, 5]")
    assert "t in [2, 5]" in fig.axes[0].get_ylabel()
    _check(fig, n_axes=1)
    _check(ch06.plot_nonlinear(_rand(B, T), _rand(B, T), d=4, beta=5.0, eps=1.0), 1)
    etas = torch.linspace(0.1, 1.0, 4, dtype=torch.float64)
    _check(ch06.plot_training(_rand(12, 3), etas, _rand(4), _rand(3), kaczmarz=0.2, depth=3), 2)


def test_ch06_explorer_is_one_figure():
    _check(ch06.explore(kernel="linear", depth=3, instance="linear"), n_axes=2)


# --- chapter 7 -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_run():
    K = 4
    laws = torch.stack([S.feature_probs(K), S.feature_probs(K, "imbalanced", 0.5)])
    return K, laws, S.reduced_gd(S.mean_field_counts(laws, 20 * K), laws, 1.0, 60, progress=False)


def test_ch07_balanced_and_imbalanced(small_run):
    K, laws, run = small_run
    fig = ch07.plot_balanced(run, [0], K, 20 * K, 1.0, t_phase1=20.0)
    _check(fig, n_axes=2)
    t = run.steps.double()
    Z, A = run.Z[:, 1], run.attention[:, 1, 1]
    fig = ch07.plot_imbalanced(t, run.per_feature[:, 1, 0], run.per_feature[:, 1, 1:].mean(-1), run.loss[:, 0],
                               Z[:, 1, 1], Z[:, 0, 1], Z[:, 2, 1], A, 1, [5.0, 10.0, 20.0, 40.0], 0.5, K, xmax=60)
    assert [tx.get_text() for tx in fig.axes[2].texts] == ["I|II", "II|III", "III|IV"]
    _check(fig, n_axes=3)


def test_ch07_sweeps_and_linear_attention(small_run):
    K, laws, run = small_run
    Ks = [2, 4, 8]
    v = torch.tensor([4.0, 20.0, 80.0], dtype=torch.float64)
    fig = ch07.plot_K_sweep(Ks, v, v * 1.01, torch.tensor([10.0, 50.0, math.inf]), v / 2, cap=100, p1=0.5, eta=1.0)
    assert max(fig.axes[0].get_lines()[2].get_ydata()) == 100      # an unreached time is drawn at the cap
    _check(fig, n_axes=1)
    lr_laws = torch.cat([laws[:1]] * 2 + [laws[1:]] * 2)
    lr_run = S.reduced_gd(S.mean_field_counts(lr_laws, 20 * K), lr_laws, torch.tensor([0.5, 1.0, 0.5, 1.0]), 20,
                          progress=False)
    _check(ch07.plot_lr_sweep(lr_run, [0.5, 1.0], K, xmax=20), n_axes=1)
    steps = torch.logspace(0, 2, 5, dtype=torch.float64)
    fig = ch07.plot_linear_vs_softmax(run.steps.double(), run.per_feature[:, 1, 1], run.per_feature[:, 1, 0], steps,
                                      _rand(5, K), 1.0, 0.05, K, 20 * K, 0.5)
    _check(fig, n_axes=1)


def test_ch07_explorer_balanced_and_imbalanced():
    _check(ch07.explore(K_feat=3, p1=0.6, steps=40), n_axes=2)
    _check(ch07.explore(K_feat=3, p1=0.2, steps=40), n_axes=2)   # p1 <= 1/K: the balanced law
