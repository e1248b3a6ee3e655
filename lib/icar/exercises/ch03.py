"""Checkers of the graded exercises of Chapter 3 (the mesa-optimizer)."""
from __future__ import annotations

from typing import Callable

import torch

from .. import mesa
from . import Exercise, as_number, assert_close, matches, number_close, passed, precision_note


def check_p_star_gaussian(student: Callable[[float, int, int], float], seed: int = 0) -> None:
    r"""``student(sigma, d, T)`` must return :math:`p^*` for :math:`x_1` with i.i.d. real :math:`N(0, \sigma^2)`
    coordinates (moments :math:`m_2 = \sigma^2`, :math:`\kappa_1 = 3\sigma^4`, :math:`\kappa_2 = 15\sigma^6`,
    :math:`\kappa_3 = 3\sigma^6`). Numpy and torch scalars are accepted; float32 answers get a float32 tolerance."""
    cases = [(1.0, 5, 100), (0.5, 3, 10), (2.0, 2, 3), (1.5, 8, 40)]
    if seed:
        cases = [(c * (1 + 0.29 * seed), d + seed, T + 7 * seed) for c, d, T in cases]
    H = mesa.harmonic
    for c, d, T in cases:
        want = mesa.p_star(mesa.init_moments("gaussian", d, c), d, T)
        got, low = as_number(student(c, d, T), f"p*(sigma={c}, d={d}, T={T})")
        if number_close(got, want, low, rel_tol=1e-10):
            continue
        s2, r = c**2, (d - 1) * H(T - 2) / (T - 2)
        hints = {
            "you returned the T -> infinity limit kappa1/kappa2 = 1/(5 sigma^2); keep the finite-T cross-coordinate "
            "term": 1 / (5 * s2),
            "the harmonic number has T-2 terms (positions t = 2..T-1 give 1/(t-1) = 1/1..1/(T-2))":
                1 / (s2 * (5 + (d - 1) * H(T - 1) / (T - 2))) if T > 2 else float("nan"),
            "there are d-1 other coordinates k != j, not d": 1 / (s2 * (5 + d * H(T - 2) / (T - 2))),
            "those are the moments of a complex Gaussian (2 sigma^4, 6 sigma^6, 2 sigma^6); the coordinates are real: "
            "E x^4 = 3 sigma^4, E x^6 = 15 sigma^6": 1 / (s2 * (3 + r)),
            "that is the Rademacher (|x_j| = c) formula: a Gaussian has kappa2 = E x^6 = 15 sigma^6, not sigma^6":
                1 / (s2 * (1 + r)),
            "p* scales like 1/sigma^2 (kappa1/kappa2 = 3 sigma^4 / 15 sigma^6), not 1/sigma or 1/sigma^4":
                1 / (c * (5 + r)) if c != 1 else float("nan"),
            "p* scales like 1/sigma^2, not 1/sigma^4": 1 / (s2**2 * (5 + r)) if c != 1 else float("nan"),
            "kappa3 = E x_j^2 x_k^4 = sigma^2 * 3 sigma^4 = 3 sigma^6 (independent coordinates), not sigma^6":
                1 / (s2 * (5 + r / 3)),
        }
        hint = next((h for h, v in hints.items() if number_close(got, v, low, rel_tol=1e-10)), None)
        msg = f"p*(sigma={c}, d={d}, T={T}): got {got:.10g}, expected {want:.10g}{precision_note(low)}"
        raise AssertionError(msg + (f"\n  hint: {hint}" if hint else ""))
    passed("check_p_star_gaussian")


def _mesa_variant(states: torch.Tensor, p: float, *, conj: bool = True, shift: int = 0, norm: str = "t-1") -> torch.Tensor:
    """The two-scalar predictions with a deliberate slip: no conjugate, a prefix shifted by ``shift`` pairs, or a
    normalisation by ``t`` / none."""
    T = states.shape[1]
    key = states[:, :-1].conj() if conj else states[:, :-1]
    outer = states[:, 1:, :, None] * key[:, :, None, :]
    C = torch.cumsum(outer, dim=1)                                    # C[:, k] = sum_{i <= k+1}
    idx = torch.arange(T - 2) + shift                                 # t = 2..T-1 uses C[:, t-2]
    C = torch.where((idx >= 0)[None, :, None, None], C[:, idx.clamp(0, T - 2)], torch.zeros_like(C[:, :T - 2]))
    t = torch.arange(2, T, dtype=torch.float64)[None, :, None]
    scale = {"t-1": t - 1, "t": t, "none": torch.ones_like(t)}[norm]
    return p * torch.einsum("ntij,ntj->nti", C, states[:, 1:T - 1]) / scale


def check_mesa_prediction(student: Callable[[torch.Tensor, float], torch.Tensor], seed: int = 0) -> None:
    r"""``student(states, p)`` (``states`` complex ``(n, T, d)``) must return the predictions of the diagonal-family
    layer, :math:`\hat y_t = \frac{p}{t-1}\sum_{i<t} x_{i+1} x_i^* x_t` for ``t = 2..T-1``, shape ``(n, T-2, d)``."""
    states, _ = mesa.sample("gaussian", 6, 3, 7 + seed % 3, seed=11 + seed)
    p = 0.37 + 0.05 * seed
    want = mesa.one_step_gd_predictions(states, p)[0]
    got = student(states.clone(), p)
    if matches(got, -want):
        raise AssertionError("the sign is flipped: the layer adds +p/(t-1) sum x_(i+1) x_i^* x_t")
    for kwargs, hint in (
        (dict(norm="t"), "values are off by a factor (t-1)/t: normalise by t-1, the number of observed transitions "
                         "x_i -> x_(i+1), not by t"),
        (dict(norm="none"), "the normalisation 1/(t-1) is missing"),
        (dict(conj=False), "the states are complex: the key must be conjugated, x_(i+1) x_i^* (use .conj() or .mH)"),
        (dict(shift=1), "you used the pair (x_t, x_(t+1)), which contains the state to predict: only pairs with "
                        "i < t enter the prediction of x_(t+1)"),
        (dict(shift=-1), "your sum stops one pair early: the prefix x_1..x_t holds the t-1 pairs i = 1..t-1"),
    ):
        if matches(got, _mesa_variant(states, p, **kwargs)):
            raise AssertionError(hint)
    if matches(got, states[:, 2:]):
        raise AssertionError("you returned the true next states x_(t+1): the layer must compute them from the prefix")
    assert_close(got, want, "mesa predictions", atol=1e-10, rtol=1e-8,
                 hint="y_t = p/(t-1) * sum_{i<t} x_(i+1) (x_i^* x_t); index t-2 of the output predicts x_(t+1)")
    passed("check_mesa_prediction")


EXERCISES = (
    Exercise("ch03-p-star-gaussian-test", "p_star_gaussian", check_p_star_gaussian, 4),
    Exercise("ch03-mesa-prediction-test", "mesa_prediction", check_mesa_prediction, 6),
)
