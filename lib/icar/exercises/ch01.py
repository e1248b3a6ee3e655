"""Checkers for the graded exercises of chapter 1 (autoregressive processes and in-context estimators)."""
from __future__ import annotations

from typing import Callable

import torch

from .. import data as D
from .. import estimators as E
from . import Exercise, assert_close, matches, passed


def _noisy_states(n: int, d: int, T: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Gaussian states with no exact dynamics: every prefix length gives a different estimate, so an estimate built
    from the wrong prefix cannot pass by accident (on noiseless data any spanning prefix gives ``W`` exactly)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, d, generator=g, dtype=torch.float64)
    return x.to(dtype) if not dtype.is_complex else torch.complex(x, torch.randn(n, T, d, generator=g, dtype=torch.float64))


def _prefix_diagnosis(got: object, est: torch.Tensor, t: int, transpose_hint: str) -> None:
    """Recognise the usual wrong prefixes and the transpose; ``est[:, k]`` is the estimate from ``s_1..s_(k+1)``."""
    T = est.shape[1]
    want = est[:, t - 1]
    if matches(got, want.mT) and not matches(got, want):
        raise AssertionError(f"t={t}: you returned the transpose of the estimate. {transpose_hint}")
    if t < T and matches(got, est[:, t]):
        raise AssertionError(f"t={t}: your estimate uses the pair (s_t, s_(t+1)), which contains the state to be "
                             "predicted: the estimate from the prefix s_1..s_t may only use pairs (s_i, s_(i+1)) "
                             "with i < t")
    if t < T - 1 and matches(got, est[:, T - 1]):
        raise AssertionError(f"t={t}: your estimate uses the whole sequence, whatever t: use only the prefix s_1..s_t")
    if t >= 2 and matches(got, est[:, t - 2]):
        raise AssertionError(f"t={t}: your prefix is one pair short: the prefix s_1..s_t holds t-1 pairs (s_i, s_(i+1)),"
                             " i = 1..t-1")


def check_gd_estimate(fn: Callable[[torch.Tensor, int, float], torch.Tensor], seed: int = 0) -> None:
    r"""``fn(states, t, eta)`` must return one GD step from 0 on :math:`\frac12\sum_{i<t}\|s_{i+1}-Ws_i\|^2` using the
    prefix :math:`s_1..s_t`: :math:`\eta\sum_{i<t} s_{i+1}s_i^*`, shape ``(n, d, d)``."""
    eta = 0.7 + 0.11 * seed                        # never 1, so that a missing eta shows
    real = _noisy_states(3, 4, 8, 11 + seed)
    est = E.gd_estimates(real, eta)
    for t in (2, 5, 7):
        got = fn(real.clone(), t, eta)
        _prefix_diagnosis(got, est, t, "The sum is s_(i+1) s_i^T (the next state on the left), so that W_hat @ s_i "
                                       "approximates s_(i+1)")
        if matches(got, -est[:, t - 1]):
            raise AssertionError(f"t={t}: the sign is flipped: the step goes against the gradient, "
                                 "-grad at W = 0 is +sum s_(i+1) s_i^*")
        if matches(got, est[:, t - 1] / eta):
            raise AssertionError(f"t={t}: the step size eta is missing: multiply the sum by eta")
        if t > 2 and matches(got, est[:, t - 1] / (t - 1)):
            raise AssertionError(f"t={t}: you averaged over the t-1 pairs: one gradient step from 0 on the SUM of the "
                                 "squared errors is eta times the sum, not the mean")
        assert_close(got, est[:, t - 1], f"real states, t={t}")
    first = fn(real.clone(), 1, eta)
    assert_close(first, torch.zeros(3, 4, 4, dtype=real.dtype), "t=1 (no pair yet: the step from 0 is 0)")
    cplx, _ = D.sample_ar("unitary", 2, 3, 6, seed=12 + seed, init="phases")
    want = E.gd_estimates(cplx, 0.5)[:, 5]
    got = fn(cplx.clone(), 6, 0.5)
    noconj = 0.5 * torch.einsum("nti,ntj->nij", cplx[:, 1:6], cplx[:, :5])
    if matches(got, noconj):
        raise AssertionError("complex states, t=6: the conjugate is missing: the gradient uses the conjugate "
                             "transpose s_i^* (use .conj())")
    assert_close(got, want, "complex states, t=6", hint="for complex states the gradient uses s_i^* (use .conj())")
    passed("check_gd_estimate")


def check_ols_estimate(fn: Callable[[torch.Tensor, int], torch.Tensor], seed: int = 0) -> None:
    r"""``fn(states, t)`` must return the least-squares estimate :math:`\arg\min_W \sum_{i<t}\|s_{i+1}-Ws_i\|^2`
    from the prefix :math:`s_1..s_t` (for :math:`t > d`, where it is unique), shape ``(n, d, d)``.

    The states are noisy (no exact dynamics), so that every prefix gives a different estimate; a noiseless sequence
    then checks that the estimate recovers ``W``."""
    noisy = _noisy_states(4, 3, 10, 13 + seed)
    est = E.ols_estimates(noisy)
    for t in (5, 7, 9):
        got = fn(noisy.clone(), t)
        _prefix_diagnosis(got, est, t, "torch.linalg.lstsq(X, Y) solves X B = Y with the pairs as rows, so B = W^T: "
                                       "transpose it")
        X, Y = noisy[:, : t - 1], noisy[:, 1:t]
        swapped = torch.linalg.lstsq(Y, X).solution.mT
        if matches(got, swapped, atol=1e-8):
            raise AssertionError(f"t={t}: you regressed s_i on s_(i+1) (X and Y swapped): the model is s_(i+1) = W s_i")
        assert_close(got, est[:, t - 1], f"noisy states, t={t}", atol=1e-8,
                     hint="use only the pairs (s_i, s_(i+1)) with i < t, and least squares, not one gradient step")
    states, W = D.sample_ar("haar", 4, 3, 9, seed=17 + seed, init="gaussian")
    assert_close(fn(states.clone(), 6), W, "noiseless states, t=6: recovering W (the prefix spans R^3)", atol=1e-8)
    passed("check_ols_estimate")


EXERCISES = (
    Exercise("ch01-gd-estimate-test", "gd_estimate", check_gd_estimate, 4),
    Exercise("ch01-ols-estimate-test", "ols_estimate", check_ols_estimate, 6),
)
