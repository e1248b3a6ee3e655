"""Checkers for the graded exercises of chapter 1 (autoregressive processes and in-context estimators)."""
from __future__ import annotations

from typing import Callable

import torch

from .. import data as D
from .. import estimators as E
from . import assert_close, passed


def check_gd_estimate(fn: Callable[[torch.Tensor, int, float], torch.Tensor]) -> None:
    r"""``fn(states, t, eta)`` must return one GD step from 0 on :math:`\frac12\sum_{i<t}\|s_{i+1}-Ws_i\|^2` using the
    prefix :math:`s_1..s_t`: :math:`\eta\sum_{i<t} s_{i+1}s_i^*`, shape ``(n, d, d)``."""
    real, _ = D.sample_ar("haar", 3, 4, 8, seed=11, init="gaussian")
    for t in (2, 5, 8):
        want = E.gd_estimates(real, 0.7)[:, t - 1]
        got = fn(real.clone(), t, 0.7)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want.mT, atol=1e-10) \
                and not torch.allclose(got, want, atol=1e-10):
            raise AssertionError(f"t={t}: you returned the transpose of the estimate: the sum is s_(i+1) s_i^T "
                                 "(the next state on the left), so that W_hat @ s_i approximates s_(i+1)")
        want_shifted = E.gd_estimates(real, 0.7)[:, min(t, 7)]
        if isinstance(got, torch.Tensor) and got.shape == want.shape and t < 8 and torch.allclose(got, want_shifted, atol=1e-10):
            raise AssertionError(f"t={t}: your sum includes the pair (s_t, s_(t+1)), which uses s_(t+1): the estimate "
                                 "built from the prefix s_1..s_t may only use pairs with i < t")
        assert_close(got, want, f"real states, t={t}")
    first = fn(real.clone(), 1, 0.7)
    assert_close(first, torch.zeros(3, 4, 4, dtype=real.dtype), "t=1 (no pair yet: the step from 0 is 0)")
    cplx, _ = D.sample_ar("unitary", 2, 3, 6, seed=12, init="phases")
    assert_close(fn(cplx.clone(), 6, 0.5), E.gd_estimates(cplx, 0.5)[:, 5], "complex states, t=6",
                 hint="for complex states the gradient uses the conjugate transpose s_i^* (use .conj())")
    passed("check_gd_estimate")


def check_ols_estimate(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    r"""``fn(states, t)`` must return the least-squares estimate :math:`\arg\min_W \sum_{i<t}\|s_{i+1}-Ws_i\|^2`
    from the prefix :math:`s_1..s_t` (for :math:`t > d`, where it is unique), shape ``(n, d, d)``."""
    states, W = D.sample_ar("haar", 4, 3, 9, seed=13, init="gaussian")
    for t in (5, 9):
        want = E.ols_estimates(states)[:, t - 1]
        got = fn(states.clone(), t)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want.mT, atol=1e-8) \
                and not torch.allclose(got, want, atol=1e-8):
            raise AssertionError(f"t={t}: you returned W_hat^T. torch.linalg.lstsq(X, Y) solves X B = Y with the "
                                 "pairs as rows, so B = W^T: transpose it")
        assert_close(got, want, f"t={t}", atol=1e-8, hint="use only the pairs (s_i, s_(i+1)) with i < t")
        assert_close(got, W, f"t={t}: recovering W itself (the prefix spans R^3)", atol=1e-8)
    passed("check_ols_estimate")
