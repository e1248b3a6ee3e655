"""Chapter 9 (one lens): every mechanism on the shared prompts, against its chapter's closed form.

Each test mirrors a claim of book/09_one_lens.ipynb at a smaller size; the last ones check the error messages.
"""
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from icar import estimators, kernels, lens, mesa  # noqa: E402
from icar.figures import ch09 as figures  # noqa: E402

D, T = 4, 33
EPS = torch.finfo(torch.float64).eps


@pytest.fixture(scope="module")
def batch():
    return lens.shared_prompts(600, D, T, seed=7)


@pytest.fixture(scope="module")
def errors(batch):
    return lens.mechanism_errors(batch)


@pytest.fixture(scope="module")
def real(batch):
    return lens.real_view(batch.states), lens.real_context(batch.W)


# ----------------------------------------------------------------------------------------------- real view
def test_real_view_is_a_block_rotation_trajectory(real):  # ch09.real-view
    X, W = real
    assert X.shape == (600, T, 2 * D) and not X.is_complex()
    assert (X[:, 1:] - torch.einsum("nij,ntj->nti", W, X[:, :-1])).abs().max() < 1e-12
    assert (W.mT @ W - torch.eye(2 * D, dtype=W.dtype)).abs().max() < 1e-12


def test_real_view_planes_carry_one_over_d(real):  # ch09.plane-norms
    planes = real[0].pow(2).unflatten(-1, (D, 2)).sum(-1)
    assert (planes - 1 / D).abs().max() < 1e-12


def test_real_view_keeps_squared_norms(batch, real):
    assert (batch.states.abs().pow(2).sum(-1) - real[0].pow(2).sum(-1)).abs().max() < 1e-12


# ----------------------------------------------------------------------------------------------- exact maps
def test_ols_exact_from_d_pairs(batch, errors):  # ch09.ols-exact, ch09.ols-rounding
    late = errors["ols"][:, D - 1:]
    kappa = torch.linalg.cond(estimators.gram_moments(batch.states)[:, D:T - 1])
    assert late[kappa < 1e6].max() < 1e-16
    assert (late.sqrt() / (EPS * kappa)).max() < 100 * D
    assert errors["ols"][:, D - 2].mean() > 1e-3          # with d - 1 pairs it is not exact yet


def test_multihead_and_trig_exact_from_one_pair(errors):  # ch09.multihead-exact, ch09.trig-exact
    assert errors["multihead"].max() < 1e-24
    assert errors["trig"].max() < 1e-24


def test_multihead_half_heads_floor(errors):  # ch09.multihead-floor
    assert (errors["multihead_half"] - (D - D // 2) / D).abs().max() < 1e-12


def test_multihead_unitary_minimum_is_W(batch):
    """With H = d the map diag(conj(s_{t-1}) s_t) / |x|^2 is W itself: predictions equal W s_t."""
    C, P = lens.multihead_unitary(D, T, D, 1 / D)
    assert torch.equal(C[0], torch.eye(D, dtype=torch.float64))
    assert torch.allclose(torch.diagonal(P[0])[1:T - 1], torch.full((T - 2,), float(D), dtype=torch.float64))


# ----------------------------------------------------------------------------------------------- one-step maps
def test_one_step_curves_match_their_closed_forms(errors):  # ch09.gd-optimal-curve, -augmented-curve, -mesa-curve
    assert lens.max_z(errors["gd_optimal"], lens.gd_optimal_curve(T, D)) < 4
    assert lens.max_z(errors["augmented"], lens.shared_step_curve(T, D, lens.shared_step(T, D))) < 4
    assert lens.max_z(errors["mesa"], lens.mesa_curve(T, D, lens.mesa_step(T, D))) < 4


def test_curves_are_not_interchangeable(errors):
    """The z-score test has power: each Monte-Carlo curve is far from the other mechanisms' closed forms."""
    assert lens.max_z(errors["mesa"], lens.shared_step_curve(T, D, lens.shared_step(T, D))) > 10
    assert lens.max_z(errors["augmented"], lens.gd_optimal_curve(T, D)) > 10


def test_no_one_step_map_beats_the_best_step(errors):  # ch09.one-step-floor
    for key in ("augmented", "mesa"):
        assert lens.paired_min_z(errors[key], errors["gd_optimal"]) > -4
        assert (errors[key].mean(0) - errors["gd_optimal"].mean(0)).max() > 0.05   # and it is strictly worse somewhere


def test_three_steps_one_formula():
    """Proposition ch09-prop-shared item 3: e_n(eta) = eta^2 n (n+d-1)/d^2 - 2 eta n/d + 1 for every schedule."""
    n = lens.pairs_axis(T).double()
    e = lambda eta: eta**2 * n * (n + D - 1) / D**2 - 2 * eta * n / D + 1
    eta_star, p_star = lens.shared_step(T, D), lens.mesa_step(T, D)
    N = T - 2
    assert eta_star == pytest.approx(3 * D / (2 * N + 3 * D - 2), rel=1e-14)
    assert p_star == pytest.approx(D / (1 + (D - 1) * mesa.harmonic(N) / N), rel=1e-14)
    assert torch.allclose(lens.shared_step_curve(T, D, eta_star), e(eta_star), atol=1e-13)
    assert torch.allclose(lens.mesa_curve(T, D, p_star), e(p_star / n), atol=1e-13)
    assert torch.allclose(lens.gd_optimal_curve(T, D), e(D / (n + D - 1)), atol=1e-13)
    assert torch.allclose(lens.gd_optimal_curve(T, D), (D - 1) / (n + D - 1), atol=1e-13)


def test_optimal_steps_are_d_over_n_plus_d_minus_1():
    steps = lens.optimal_steps(T, D)
    n = torch.arange(1, T, dtype=torch.float64)
    assert steps.shape == (T,)
    assert torch.allclose(steps[1:], D / (n + D - 1), rtol=1e-14)


def test_augmented_layer_is_one_gd_step(batch):
    eta = lens.shared_step(T, D)
    gap = (lens.augmented_layer_errors(batch.states, eta) - lens.gd_errors(batch.states, eta)).abs().max()
    assert gap < 1e-12


def test_mesa_layer_is_a_normalised_gd_step(batch):
    p = lens.mesa_step(T, D)
    steps = torch.cat([torch.ones(1, dtype=torch.float64), p / torch.arange(1, T, dtype=torch.float64)])
    assert (lens.mesa_errors(batch.states, p) - lens.gd_errors(batch.states, steps)).abs().max() < 1e-12


# ----------------------------------------------------------------------------------------------- kernel descent
def test_kaczmarz_closed_form(errors, real):  # ch09.kaczmarz-closed-form
    X, W = real
    assert (errors["kaczmarz"] - lens.kaczmarz_closed_form(W, X[:, 0], T)).abs().max() < 1e-12


def test_unit_step_depth_T_minus_1_is_kaczmarz(errors, real):  # ch09.ckd-depth
    X, _ = real
    deep = kernels.ckd(X, T - 1, eta=1.0)
    gap = (kernels.prediction_errors(deep.u, X)[:, 1:].pow(2) - errors["kaczmarz"]).abs().max()
    assert gap / (EPS * deep.peak.max()) < 10
    shallow = lens.ckd_errors(X, 8, 1.0)                  # depth 8 is exact on the first 8 pairs only
    assert (shallow[:, :8] - errors["kaczmarz"][:, :8]).abs().max() < 1e-12
    assert (shallow[:, 12:] - errors["kaczmarz"][:, 12:]).abs().max() > 1e-3


def test_energy_identity(real):  # ch09.energy
    X, W = real
    b = kernels.energy_balance(X, *kernels.linear_map_as_kernel_expansion(W))
    assert (b.weighted_sum + b.remainder - 2 * D).abs().max() < 1e-9
    assert (b.norm2 - 2 * D).abs().max() < 1e-9


# ----------------------------------------------------------------------------------------------- softmax
def test_softmax_rate_on_shared_prompts(errors):  # ch09.softmax-slower, -decreases, -vs-kaczmarz
    n = lens.pairs_axis(T)[7:].double()
    slope = kernels.loglog_slope(n, errors["softmax_inf"].mean(0)[7:].sqrt())
    assert -0.75 < slope < -0.15
    assert errors["softmax_inf"][:, -1].mean() / errors["kaczmarz"][:, -1].mean() > 5


def test_softmax_one_layer_is_the_successor_average(real):
    """Depth 1 is the kernel smoother sum_s softmax_s(beta <x_t, x_(s-1)>) x_s (ch. 5's reading)."""
    X, _ = real
    X = X[:5]
    beta = 3.0
    u = kernels.ckd(X, 1, kernel="softmax", beta=beta, eta=1.0).u
    t = 9                                                  # position t = 10 (index 9): pairs s = 2..10
    w = torch.softmax(beta * X[:, :t] @ X[:, t, :, None], dim=1)        # keys x_1..x_9
    assert (u[:, t] - (w * X[:, 1:t + 1]).sum(1)).abs().max() < 1e-12


# ----------------------------------------------------------------------------------------------- figure
def test_plot_lens_draws_both_panels(errors):
    fig = figures.plot_lens(errors, {"gd_optimal": lens.gd_optimal_curve(T, D)}, ckd_depth=4)
    top, bottom = fig.axes
    assert top.get_yscale() == "log" and bottom.get_yscale() == "log"
    assert len(fig.legends) == 1                             # one legend for both panels, below them
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "causal kernel descent, depth 4 (ch. 6)" in labels and "one GD step, best $\\eta_n$ (ch. 1)" in labels
    assert top.get_xlabel().startswith("number of pairs") and bottom.get_xlabel().startswith("number of pairs")
    matplotlib.pyplot.close(fig)


# ----------------------------------------------------------------------------------------------- bad input
def test_shared_prompts_needs_four_steps():
    with pytest.raises(ValueError, match="at least 4"):
        lens.shared_prompts(3, D, 3, seed=0)


def test_real_view_refuses_real_states():
    with pytest.raises(TypeError, match="complex"):
        lens.real_view(torch.zeros(2, 5, 3))


def test_real_context_refuses_non_diagonal():
    with pytest.raises(ValueError):
        lens.real_context(torch.eye(3, dtype=torch.complex128)[None] + 0.5)


def test_multihead_needs_equal_moduli(batch):
    s = batch.states[:4].clone()
    s[0] = s[0] * 2
    with pytest.raises(ValueError, match="same modulus"):
        lens.multihead_errors(s, D)


def test_trig_needs_equal_planes(real):
    X = real[0][:4].clone()
    X[0] = 2 * X[0]
    with pytest.raises(ValueError, match="same norm"):
        lens.trig_errors(X)


def test_mesa_step_must_be_positive(batch):
    with pytest.raises(ValueError, match="positive"):
        lens.mesa_errors(batch.states[:2], 0.0)


def test_multihead_unitary_bad_modulus():
    with pytest.raises(ValueError, match="modulus2"):
        lens.multihead_unitary(D, T, D, 0.0)


def test_statistics_check_shapes(errors):
    with pytest.raises(ValueError, match="expected"):
        lens.max_z(errors["ols"], torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="reference"):
        lens.paired_min_z(errors["ols"], errors["ols"][:10])
    with pytest.raises(ValueError, match="err"):
        lens.summarize(torch.zeros(5))


def test_summarize_standard_error():
    x = torch.arange(8, dtype=torch.float64).reshape(4, 2)
    c = lens.summarize(x)
    assert torch.allclose(c.mean, torch.tensor([3.0, 4.0], dtype=torch.float64))
    assert torch.allclose(c.se, x.std(0) / math.sqrt(4))
