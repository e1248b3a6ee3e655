"""icar.estimators and icar.theory: against a direct numpy computation and against the closed forms."""
import numpy as np
import pytest
import torch

from icar import data as D
from icar import estimators as E
from icar import theory as Th


def _numpy_ols_and_gd(states: np.ndarray, t: int, eta: float):
    X, Y = states[:, : t - 1], states[:, 1:t]  # pairs (s_i, s_{i+1}), i < t
    ols, gd = [], []
    for x, y in zip(X, Y):
        W_T, *_ = np.linalg.lstsq(x, y, rcond=None)  # min ||x W^T - y||
        ols.append(W_T.T)
        gd.append(eta * y.T @ x.conj())
    return np.stack(ols), np.stack(gd)


@pytest.mark.parametrize("law", ["commuting", "haar", "unitary"])
def test_estimators_match_numpy(law):
    states, W = D.sample_ar(law, 5, 4, 9, seed=0, init="gaussian")
    ols, gd = E.ols_estimates(states), E.gd_estimates(states, 0.3)
    for t in (2, 4, 7, 9):
        ols_np, gd_np = _numpy_ols_and_gd(states.numpy(), t, 0.3)
        np.testing.assert_allclose(gd[:, t - 1].numpy(), gd_np, atol=1e-12)
        np.testing.assert_allclose(ols[:, t - 1].numpy(), ols_np, atol=1e-8)


def test_ols_exact_once_prefix_spans():
    d = 4
    states, W = D.sample_ar("haar", 64, d, 10, seed=1, init="gaussian")
    err = E.estimation_errors(E.ols_estimates(states), W)
    assert err[:, d + 1 :].max() < 1e-10  # s_1..s_d span R^d: exact from t = d + 1 on
    assert err[:, : d - 1].min() > 1e-3  # fewer than d pairs: not identifiable


def test_gd_step_is_minus_gradient():
    states, _ = D.sample_ar("commuting", 3, 4, 6, seed=2, init="gaussian")
    W0 = torch.zeros(3, 4, 4, dtype=torch.float64, requires_grad=True)
    t = 5
    loss = 0.5 * (states[:, 1:t] - torch.einsum("nij,ntj->nti", W0, states[:, : t - 1])).pow(2).sum()
    loss.backward()
    assert torch.allclose(E.gd_estimates(states, 1.0)[:, t - 1], -W0.grad, atol=1e-12)


def test_next_token_errors_and_predictions_shapes():
    states, W = D.sample_ar("commuting", 3, 2, 5, seed=0)
    est = W[:, None].expand(3, 5, 2, 2)
    assert E.next_token_errors(est, states).shape == (3, 4)
    assert E.next_token_errors(est, states).max() < 1e-24  # the true W predicts perfectly


def test_gd_optimal_error_matches_monte_carlo():
    # Course derivation following Sander et al. (2024): unit-norm random-phase s_1, unitary W.
    d, T, n = 3, 8, 40000
    states, _ = D.sample_ar("unitary", n, d, T, seed=3, init="phases")
    m = Th.phase_moments(d)
    eta = torch.tensor([Th.gd_optimal_step(max(t - 1, 1), d, m) for t in range(1, T + 1)])
    err = E.next_token_errors(E.gd_estimates(states, eta), states)
    for t in range(2, T):
        e = err[:, t - 1]
        se = e.std().item() / n**0.5
        assert abs(e.mean().item() - Th.gd_optimal_error(t - 1, d, m)) < 4 * se
        assert abs(Th.gd_optimal_error(t - 1, d, m) - (d - 1) / (t - 1 + d - 1)) < 1e-12
    assert abs(Th.gd_optimal_step(5, d, m) - d / (5 + d - 1)) < 1e-12


def test_gd_error_is_minimised_at_optimal_step():
    m = Th.gaussian_moments(1.0)
    g = Th.gd_optimal_step(4, 3, m)
    assert abs(g - 1 / (3 * 4 + 3 - 1)) < 1e-12  # 1/(sigma^2 (3t + d - 1))
    assert Th.gd_error(g, 4, 3, m) < Th.gd_error(1.1 * g, 4, 3, m)
    assert Th.gd_error(g, 4, 3, m) < Th.gd_error(0.9 * g, 4, 3, m)
    assert abs(Th.gd_error(g, 4, 3, m) - Th.gd_optimal_error(4, 3, m)) < 1e-12


def test_estimator_errors():
    with pytest.raises(ValueError, match=r"states must have shape \(n, T, d\)"):
        E.ols_estimates(torch.ones(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2 time steps"):
        E.gd_estimates(torch.ones(3, 1, 2, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match=r"eta must have shape \(T,\)"):
        E.gd_estimates(torch.ones(3, 4, 2, dtype=torch.float64), torch.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        E.ols_estimates(torch.ones(3, 4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="positive integer"):
        Th.gd_optimal_step(0, 3, Th.phase_moments(3))


# ------------------------------------------------------------------ moments away from the unit case
def test_moments_are_not_only_right_at_unit_scale():
    # sigma^2 = 1 and norm = 1 hide every power; these values do not.
    m = Th.gaussian_moments(2.0)
    assert (m.mu2, m.mu4, m.mu6, m.mu24) == pytest.approx((2.0, 8.0, 48.0, 16.0), rel=1e-12)
    m = Th.phase_moments(4, norm=2.0)                    # |x_k|^2 = norm^2 / d = 1
    assert (m.mu2, m.mu4, m.mu6, m.mu24) == pytest.approx((1.0, 1.0, 1.0, 1.0), rel=1e-12)
    m = Th.phase_moments(2, norm=1.0)                    # |x_k|^2 = 1/2
    assert (m.mu2, m.mu4, m.mu6, m.mu24) == pytest.approx((0.5, 0.25, 0.125, 0.125), rel=1e-12)


def test_gaussian_moments_match_the_gaussian_law():
    # Monte-Carlo moments of the library's circular complex Gaussian (standard errors from the samples).
    n, s2 = 20000, 2.0
    x = D.initial_states("gaussian", n, 2, seed=11, scale=s2**0.5, dtype=torch.complex128)
    m = Th.gaussian_moments(s2)
    for sample, want in ((x[:, 0].abs() ** 2, m.mu2), (x[:, 0].abs() ** 4, m.mu4), (x[:, 0].abs() ** 6, m.mu6),
                         (x[:, 0].abs() ** 2 * x[:, 1].abs() ** 4, m.mu24)):
        assert abs(sample.mean().item() - want) < 5 * sample.std().item() / n**0.5


def test_two_time_steps_are_enough():
    # T = 2: one pair (s_1, s_2); the estimate of prefix s_1..s_2 is built from it, the first one is 0.
    states, _ = D.sample_ar("haar", 3, 2, 2, seed=4, init="gaussian")
    C = E.cross_moments(states)
    assert C.shape == (3, 2, 2, 2) and C[:, 0].abs().max() == 0
    assert torch.allclose(C[:, 1], states[:, 1, :, None] * states[:, 0, None, :], atol=1e-14)
    assert E.next_token_errors(E.gd_estimates(states, 0.5), states).shape == (3, 1)


def test_per_prefix_steps_may_be_zero_not_negative():
    # eta_1 = 0 is the usual choice for the empty prefix; a negative step is refused.
    states, _ = D.sample_ar("haar", 2, 3, 4, seed=0, init="gaussian")
    eta = torch.tensor([0.0, 0.5, 0.5, 0.25], dtype=torch.float64)
    est = E.gd_estimates(states, eta)
    assert est[:, 0].abs().max() == 0 and torch.allclose(est[:, 3], 0.25 * E.cross_moments(states)[:, 3])
    with pytest.raises(ValueError, match=">= 0"):
        E.gd_estimates(states, torch.tensor([0.0, -0.5, 0.5, 0.25], dtype=torch.float64))


def test_estimation_errors_refuses_non_square_estimates():
    import pytest
    W = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    with pytest.raises(ValueError, match=r"estimates must be square.*\(2, 4, 2, 3\)"):
        E.estimation_errors(torch.zeros(2, 4, 2, 3, dtype=torch.float64), W)
