"""Checkers of chapter 5's graded exercises (beyond commuting matrices).

* :func:`check_pe_gram`: the Gram matrix of the positional-encoding-only features (a sinc Toeplitz matrix).
* :func:`check_gd_features`: the one-gradient-step features :math:`(\\sum_{j=2}^t s_j s_{j-1}^\\top) s_t`,
  vectorised over time, without peeking at the future.
"""
from __future__ import annotations

from typing import Callable

import torch

from . import Exercise, assert_close, matches, passed
from .. import noncommuting as nc


def check_pe_gram(fn: Callable[[float, int], torch.Tensor], seed: int = 0) -> None:
    r"""``fn(mu, t)`` must return the ``(t, t)`` float64 matrix :math:`G_{jk} = \mathrm{sinc}(4\pi(j-k)/\mu)`.

    Compared with :func:`icar.noncommuting.pe_gram` for several ``mu`` and ``t``; the error message points at the usual
    slips (a NaN diagonal from 0/0, :math:`2\pi` instead of :math:`4\pi`, a complex result).
    """
    cases = ((1.0, 4), (7.0, 5), (50.0, 6), (300.0, 3))
    if seed:
        cases = tuple((mu * (1 + 0.31 * seed), t + seed % 3) for mu, t in cases)
    for mu, t in cases:
        want = nc.pe_gram(torch.tensor([mu], dtype=torch.float64), t)[0]
        got = fn(mu, t)
        if isinstance(got, torch.Tensor):
            if got.is_complex():
                raise AssertionError(f"pe_gram(mu={mu}, t={t}) is complex ({got.dtype}); the loss only sees the real "
                                     "part of E[f_j conj(f_k)] because the weights p are real: return .real")
            if torch.isnan(got).any():
                raise AssertionError(f"pe_gram(mu={mu}, t={t}) contains NaN: sin(x)/x at x = 0 must be replaced by its "
                                     "limit 1 on the diagonal")
            diff = (torch.arange(t)[:, None] - torch.arange(t)[None, :]).double()
            if mu > 2.0 and matches(got, torch.sinc(2 * diff / mu), atol=1e-8):
                raise AssertionError("your entries are sinc(2 pi (j-k)/mu): the features are lambda^(2(j-k)), "
                                     "with a factor 2 from s_j^2, so the argument is 4 pi (j-k)/mu")
            if matches(got, torch.sinc(4 * torch.pi * diff / mu), atol=1e-8):
                raise AssertionError("torch.sinc(x) is the NORMALISED sinc sin(pi x)/(pi x): pass 4 (j-k)/mu to it, "
                                     "or write sin(x)/x with x = 4 pi (j-k)/mu")
            if matches(got, torch.cos(4 * torch.pi * diff / mu), atol=1e-8):
                raise AssertionError("cos(4 pi (j-k)/mu) is the Gram matrix of ONE frequency; averaging over the "
                                     "uniform frequency gives sin(x)/x")
        assert_close(got, want, f"pe_gram(mu={mu}, t={t})", atol=1e-10, rtol=1e-8,
                     hint="G_jk = sin(x)/x with x = 4 pi (j-k)/mu, and 1 on the diagonal")
    passed("check_pe_gram")


def check_gd_features(fn: Callable[[torch.Tensor], torch.Tensor], seed: int = 0) -> None:
    r"""``fn(states)`` with ``states`` ``(n, T, d)`` must return ``(n, T-1, d)``: row ``t-1`` is
    :math:`f_t = (\sum_{j=2}^{t} s_j s_{j-1}^\top) s_t`, :math:`t = 1..T-1` (so :math:`f_1 = 0`)."""
    g = torch.Generator().manual_seed(5 + seed)
    states = torch.randn(3, 7 + seed % 3, 4, generator=g, dtype=torch.float64)
    want = nc.gd_features(states)
    got = fn(states.clone())
    if matches(got, -want):
        raise AssertionError("the sign is flipped: f_t = +(sum_j s_j s_{j-1}^T) s_t (minus the gradient at W = 0)")
    late = torch.cat([torch.zeros_like(want[:, :1]), want[:, :-1]], 1)
    if matches(got, late) and not matches(got, want):
        raise AssertionError("your features are one step late: f_t must use every pair up to (s_t, s_{t-1})")
    if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(want.shape):
        later = states.clone()
        later[:, -1] += 1.0  # change only s_T, which no feature f_1..f_{T-1} may use
        if (fn(later).double() - got.double()).abs().amax().item() > 1e-12:
            raise AssertionError("your features change when only the last state s_T changes: f_t may use s_1..s_t only "
                                 "(the pair (s_{t+1}, s_t) holds the answer the model must predict)")
        if got[:, 0].abs().amax().item() > 1e-12:
            raise AssertionError("f_1 must be 0: a prefix with one state holds no pair (s_j, s_{j-1})")
        swapped = torch.einsum("ntij,ntj->nti",
                               torch.cumsum(states[:, :-1, :, None] * states[:, 1:, None, :], 1)[:, :-1],
                               states[:, 1:-1])
        if torch.allclose(got[:, 1:].double(), swapped, atol=1e-10):
            raise AssertionError("you used s_{j-1} s_j^T instead of s_j s_{j-1}^T: the gradient of "
                                 "1/2 sum ||s_j - W s_{j-1}||^2 at W = 0 is -sum s_j s_{j-1}^T")
    assert_close(got, want, "gd_features(states)", atol=1e-10, rtol=1e-8,
                 hint="cumsum the outer products s_j s_{j-1}^T over j, shift by one so that row t holds j <= t, "
                      "and apply each sum to s_t")
    passed("check_gd_features")


__all__ = ["check_pe_gram", "check_gd_features", "EXERCISES"]

EXERCISES = (
    Exercise("ch05-pe-gram-test", "pe_gram", check_pe_gram, 4),
    Exercise("ch05-gd-features-test", "gd_features", check_gd_features, 6),
)
