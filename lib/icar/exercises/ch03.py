"""Checkers of the graded exercises of Chapter 3 (the mesa-optimizer)."""
from __future__ import annotations

from typing import Callable

import torch

from .. import mesa
from . import assert_close, passed


def check_p_star_rademacher(student: Callable[[float, int, int], float]) -> None:
    r"""``student(c, d, T)`` must return :math:`p^*` for :math:`x_1` with i.i.d. :math:`\pm c` coordinates:
    :math:`1 / (c^2 (1 + (d-1) H_{T-2}/(T-2)))`."""
    cases = [(1.0, 5, 100), (0.5, 3, 10), (2.0, 2, 3), (1.5, 8, 40)]
    for c, d, T in cases:
        want = mesa.p_star(mesa.init_moments("rademacher", d, c), d, T)
        got = student(c, d, T)
        if isinstance(got, torch.Tensor):
            got = got.item()
        if not isinstance(got, (int, float)):
            raise AssertionError(f"p*(c={c}, d={d}, T={T}): expected a number, got {type(got).__name__}")
        if abs(got - want) <= 1e-10 * max(1.0, abs(want)):
            continue
        H = mesa.harmonic
        hints = {
            "you returned the T -> infinity limit kappa1/kappa2 = 1/c^2; keep the finite-T cross-coordinate term":
                1 / c**2,
            "the harmonic number has T-2 terms (positions t = 2..T-1 give 1/(t-1) = 1/1..1/(T-2))":
                1 / (c**2 * (1 + (d - 1) * H(T - 1) / (T - 2))),
            "there are d-1 other coordinates k != j, not d": 1 / (c**2 * (1 + d * H(T - 2) / (T - 2))),
            "kappa1 = c^4 and kappa2 = kappa3 = c^6: p* scales like 1/c^2, not 1/c^4 or 1/c":
                1 / (c**4 * (1 + (d - 1) * H(T - 2) / (T - 2))),
        }
        hint = next((h for h, v in hints.items() if abs(got - v) <= 1e-10 * max(1.0, abs(v))), None)
        msg = f"p*(c={c}, d={d}, T={T}): got {got:.6g}, expected {want:.6g}"
        raise AssertionError(msg + (f"\n  hint: {hint}" if hint else ""))
    passed("check_p_star_rademacher")


def check_mesa_prediction(student: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    r"""``student(states, p)`` (``states`` complex ``(n, T, d)``) must return the predictions of the diagonal-family
    layer, :math:`\hat y_t = \frac{p}{t-1}\sum_{i<t} x_{i+1} x_i^* x_t` for ``t = 2..T-1``, shape ``(n, T-2, d)``."""
    states, _ = mesa.sample("gaussian", 6, 3, 7, seed=11)
    p = 0.37
    want = mesa.one_step_gd_predictions(states, p)[0]
    got = student(states, p)
    if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(want.shape) and got.is_complex():
        g = got.detach().to(want.dtype)
        T = states.shape[1]
        t = torch.arange(2, T, dtype=torch.float64)[None, :, None]
        if torch.allclose(g, want * (t - 1) / t, atol=1e-10):
            raise AssertionError("values are off by a factor (t-1)/t: normalise by t-1, the number of observed "
                                 "transitions x_i -> x_(i+1), not by t")
        outer = states[:, 1:, :, None] * states[:, :-1, None, :]  # x_(i+1) x_i^T without the conjugate
        C = torch.cumsum(outer, dim=1)[:, :T - 2]
        noconj = p * torch.einsum("ntij,ntj->nti", C, states[:, 1:T - 1]) / (t - 1)
        if torch.allclose(g, noconj, atol=1e-10):
            raise AssertionError("the states are complex: the key must be conjugated, x_(i+1) x_i^* "
                                 "(use .conj() or .mH)")
    assert_close(got, want, "mesa predictions", atol=1e-10, rtol=1e-8,
                 hint="y_t = p/(t-1) * sum_{i<t} x_(i+1) (x_i^* x_t); index t-2 of the output predicts x_(t+1)")
    passed("check_mesa_prediction")
