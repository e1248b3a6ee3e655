"""Checkers for the graded exercises of Chapter 6 (causal kernel descent and the Kaczmarz algorithm)."""
from __future__ import annotations

from typing import Callable

import torch

from ..kernels import kaczmarz, sample_linear
from . import assert_close, passed


def _fixed_states() -> torch.Tensor:
    states, _, _ = sample_linear(3, 4, 12, seed=2024)
    return states


def check_kaczmarz_linear(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    r"""Check a student's time-ordered Kaczmarz sweep with the linear kernel.

    ``fn(states)`` takes ``(B, T, d)`` float64 states and returns ``(B, T, d)`` predictions, row ``t-1`` being
    :math:`A_t x_t` where :math:`A_t` has processed the pairs :math:`(x_{s-1}, x_s)`, :math:`s \le t`, by orthogonal
    projections :math:`A \leftarrow A + (x_s - A x_{s-1}) x_{s-1}^\top / \|x_{s-1}\|^2`, starting from :math:`A = 0`.
    """
    states = _fixed_states()
    want = kaczmarz(states, kernel="linear").u
    got = fn(states.clone())
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"kaczmarz_linear must return a torch.Tensor; got {type(got).__name__}")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"kaczmarz_linear must return shape (B, T, d) = {tuple(want.shape)}; got {tuple(got.shape)}")
    got = got.detach().to(torch.float64)
    if bool(torch.isclose(got[:, :-1], states[:, 1:], atol=1e-9).all()):
        raise AssertionError(
            "your predictions equal the next tokens exactly: position t used the pair (x_t, x_{t+1}), which it "
            "cannot see. Predict with A_t first, then update A with the pair that ends at x_{t+1}.")
    if got[:, 0].abs().max() > 1e-12:
        raise AssertionError("position 1 has no pair yet, so its prediction must be 0 (A starts at 0)")
    lagged = torch.cat([torch.zeros_like(want[:, :1]), want[:, :-1]], 1)
    if torch.allclose(got[:, 2:], lagged[:, 2:], atol=1e-9) and not torch.allclose(got, want, atol=1e-9):
        raise AssertionError("your predictions are one step late: position t must use every pair up to (x_{t-1}, x_t)")
    assert_close(got, want, "predictions A_t x_t", atol=1e-9, rtol=1e-9,
                 hint="the update is A += outer(x_s - A x_{s-1}, x_{s-1}) / ||x_{s-1}||^2 (a projection: divide by "
                      "the squared norm, and use the residual of the current A)")
    passed("check_kaczmarz_linear")
