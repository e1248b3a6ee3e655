"""Checkers of Chapter 4's graded exercises (diagonal multi-head attention, non-augmented tokens)."""
from __future__ import annotations

from typing import Callable

import torch

from . import Exercise, assert_close, matches, passed
from ..multihead import unitary_position_loss


def _cases(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(404 + seed)
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


def check_unitary_position_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int = 0) -> None:
    r"""Check a student's closed-form loss ``fn(C, p)`` of one position, unitary law (Lemma B1).

    ``C`` is ``(d, d)``, ``p`` is ``(t,)`` with ``p[-1]`` the weight on the latest token and ``p[-2]`` the weight on
    the query token; ``fn`` returns a 0-dimensional tensor.
    """
    for C, p in _cases(seed):
        got = fn(C.clone(), p.clone())
        if isinstance(got, (int, float)) or (hasattr(got, "dtype") and not isinstance(got, torch.Tensor)):
            got = torch.as_tensor(got)
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
            (_reference(C.T.contiguous(), p), "you used C^T: the query-token term sums the ROWS of C, "
             "sum_i (sum_k C_ik)^2"),
            (want - p[-2] ** 2 * (C.sum(1).pow(2).sum() - C.pow(2).sum()) + p[-1] ** 2 * (C.sum(1).pow(2).sum() - C.pow(2).sum()),
             "the query token is p[-2] (the weight of s_{t-1}), not p[-1] (the latest token)"),
            (want / d, "you averaged over the d coordinates: the loss is the sum of E|hat s_{t+1,i} - lambda_i^{t+1}|^2"),
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


def _trig_reference(prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    n, d = cur.shape
    dot = (prev * cur).reshape(n, d // 2, 2).sum(-1)
    norm2 = cur.reshape(n, d // 2, 2).pow(2).sum(-1)
    return (2 * dot / norm2).repeat_interleave(2, dim=-1) * cur - prev


def check_trig_predict(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int = 0) -> None:
    r"""Check a student's trigonometric predictor ``fn(prev, cur)``: from :math:`s_{t-1}` and :math:`s_t`
    (``(n, d)`` real, ``d`` even, planes = coordinates ``(2m, 2m+1)``), return
    :math:`\hat s_{t+1} = 2\cos\theta_m\, s_t - s_{t-1}` in each plane, with
    :math:`2\cos\theta_m = 2\langle s_{t-1}, s_t\rangle_m / \|s_t\|_m^2` read from the two states only."""
    g = torch.Generator().manual_seed(44 + seed)
    n, d = 16, 6
    theta = 2 * torch.pi * torch.rand(n, d // 2, generator=g, dtype=torch.float64)
    c, s = torch.cos(theta), torch.sin(theta)
    prev = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.rand(n, d // 2, generator=g,
                                                                                 dtype=torch.float64).add(0.5).repeat_interleave(2, -1)
    x, y = prev[:, 0::2], prev[:, 1::2]
    cur = torch.stack([c * x - s * y, s * x + c * y], -1).reshape(n, d)
    nxt = torch.stack([c * cur[:, 0::2] - s * cur[:, 1::2], s * cur[:, 0::2] + c * cur[:, 1::2]], -1).reshape(n, d)
    got = fn(prev.clone(), cur.clone())
    want = _trig_reference(prev, cur)
    if isinstance(got, torch.Tensor) and got.shape == want.shape and not torch.allclose(got.double(), want, atol=1e-9):
        dot_all = (prev * cur).sum(-1, keepdim=True)
        hints = [
            (2 * (prev * cur).reshape(n, d // 2, 2).sum(-1).repeat_interleave(2, -1) * cur - prev,
             "divide the inner product by the squared norm of the plane: 2 cos(theta) = 2 <s_{t-1}, s_t> / ||s_t||^2"),
            (2 * dot_all / cur.pow(2).sum(-1, keepdim=True) * cur - prev,
             "each plane (coordinates 2m, 2m+1) rotates by its own angle: take the inner products plane by plane"),
            ((2 * (prev * cur).reshape(n, d // 2, 2).sum(-1) / cur.reshape(n, d // 2, 2).pow(2).sum(-1))
             .repeat_interleave(2, -1) * cur + prev, "the recursion subtracts the previous state: ... - s_{t-1}"),
            (_trig_reference(cur, prev), "the arguments are swapped: predict from (prev, cur) = (s_{t-1}, s_t) "
             "the NEXT state, 2 cos(theta) s_t - s_{t-1}"),
            ((2 * (prev * cur).reshape(n, d // 2, 2).sum(-1) / cur.reshape(n, d // 2, 2).pow(2).sum(-1))
             .repeat_interleave(2, -1) * cur, "the recursion subtracts the previous state: 2 cos(theta) s_t - s_{t-1}"),
        ]
        for wrong, hint in hints:
            if matches(got, wrong):
                raise AssertionError(f"prediction of s_(t+1) differs from the recursion\n  hint: {hint}")
    assert_close(got, want, "prediction of s_(t+1)", atol=1e-9, rtol=1e-9,
                 hint="in each plane, s_{t+1} + s_{t-1} = 2 cos(theta) s_t")
    assert_close(want, nxt, "reference against the true next state", atol=1e-9, rtol=1e-9)
    passed("check_trig_predict")


EXERCISES = (
    Exercise("ch04-unitary-loss-test", "unitary_loss", check_unitary_position_loss, 6),
    Exercise("ch04-trig-predict-test", "trig_predict", check_trig_predict, 4),
)
