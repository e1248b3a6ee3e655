"""Checkers of Chapter 4's graded exercises (diagonal multi-head attention, non-augmented tokens)."""
from __future__ import annotations

from typing import Callable

import torch

from . import assert_close, passed
from ..multihead import unitary_position_loss


def _cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(404)
    cases = []
    for d, t in [(3, 4), (4, 5), (6, 2)]:
        cases.append((torch.randn(d, d, generator=g, dtype=torch.float64),
                      torch.randn(t, generator=g, dtype=torch.float64)))
    return cases


def _reference(C: torch.Tensor, p: torch.Tensor, variant: str = "corrected") -> torch.Tensor:
    t = p.shape[0]
    P = torch.zeros(1, t + 1, t + 1, dtype=torch.float64)
    P[0, t - 1, :t] = p
    return unitary_position_loss(C[None], P, variant)[0, t - 2]


def check_unitary_position_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    r"""Check a student's closed-form loss ``fn(C, p)`` of one position, unitary law (Lemma B1).

    ``C`` is ``(d, d)``, ``p`` is ``(t,)`` with ``p[-1]`` the weight on the latest token and ``p[-2]`` the weight on
    the query token; ``fn`` returns a 0-dimensional tensor.
    """
    for C, p in _cases():
        got = fn(C.clone(), p.clone())
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"expected a 0-dimensional torch.Tensor, got {type(got).__name__}")
        if got.dim() != 0:
            raise AssertionError(f"expected a 0-dimensional tensor (one loss), got shape {tuple(got.shape)}; "
                                 "did you forget to sum over the d coordinates?")
        want = _reference(C, p)
        d, q = C.shape[0], p[-2]
        hints = [
            (_reference(C, p, "released"), "you count the (t' = t-1, k = k') terms twice: the terms with both "
             "factors on the query token and k = k' are already inside ||p||^2 ||C||_F^2"),
            (want - d, "the constant term is missing: E|s_{t+1,i}|^2 = 1 for each of the d coordinates"),
            (want + 4 * p[-1] * torch.trace(C), "the sign of the cross term is wrong: it is -2 p_t tr(C)"),
            (want - q**2 * (C.sum(1).pow(2).sum() - C.pow(2).sum()), "the query-token term is missing: on the "
             "query position the score |s_{t-1,k}|^2 = 1 is deterministic, so every pair (k, k') survives"),
        ]
        for wrong, hint in hints:
            if torch.isclose(got.detach().double(), wrong, rtol=1e-9, atol=1e-9):
                raise AssertionError(f"loss for d = {d}, t = {p.shape[0]}: got {got.item():.6g}, expected "
                                     f"{want.item():.6g}\n  hint: {hint}")
        assert_close(got.reshape(()), want, f"loss for d = {d}, t = {p.shape[0]}", atol=1e-9, rtol=1e-9,
                     hint="expand E|hat s_{t+1,i} - lambda_i^{t+1}|^2 and keep the monomials of total phase 0")
    zero = fn(torch.eye(4, dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert_close(zero.reshape(()), torch.tensor(0.0, dtype=torch.float64), "loss at C = I, p = (0, 0, 1)",
                 atol=1e-12, rtol=0, hint="C = I with all the weight on the latest token predicts s_{t+1} exactly")
    passed("check_unitary_position_loss")
