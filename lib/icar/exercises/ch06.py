"""Checkers for the graded exercises of Chapter 6 (causal kernel descent and the Kaczmarz algorithm)."""
from __future__ import annotations

from typing import Callable

import torch

from ..kernels import kaczmarz, kernel_matrix, previous_tokens, sample_linear
from . import Exercise, as_tensor, assert_close, matches, passed


def _fixed_states(seed: int = 0) -> torch.Tensor:
    """Linear-instance prompts rescaled by a random norm per position (0.5 to 2): with unit-norm states a projection
    that forgets to divide by ||x||^2 would look right."""
    states, _, _ = sample_linear(3, 4, 12, seed=2024 + seed)
    g = torch.Generator().manual_seed(99 + seed)
    return states * (0.5 + 1.5 * torch.rand(3, 12, 1, generator=g, dtype=torch.float64))


def _sweep(states: torch.Tensor, *, divide: bool = True, residual: bool = True, transpose: bool = False,
           sign: float = 1.0) -> torch.Tensor:
    """The Kaczmarz sweep written as a loop, with optional slips (used to recognise a student's mistake)."""
    B, T, d = states.shape
    A = torch.zeros(B, d, d, dtype=states.dtype)
    out = torch.zeros_like(states)
    for t in range(1, T):
        prev, cur = states[:, t - 1], states[:, t]
        r = cur - torch.einsum("bij,bj->bi", A, prev) if residual else cur
        step = r[:, :, None] * prev[:, None, :]
        if transpose:
            step = step.mT
        if divide:
            step = step / (prev * prev).sum(-1)[:, None, None]
        A = A + sign * step
        out[:, t] = torch.einsum("bij,bj->bi", A, cur)
    return out


def check_kaczmarz_linear(fn: Callable[[torch.Tensor], torch.Tensor], seed: int = 0) -> None:
    r"""Check a student's time-ordered Kaczmarz sweep with the linear kernel.

    ``fn(states)`` takes ``(B, T, d)`` float64 states and returns ``(B, T, d)`` predictions, row ``t-1`` being
    :math:`A_t x_t` where :math:`A_t` has processed the pairs :math:`(x_{s-1}, x_s)`, :math:`s \le t`, by orthogonal
    projections :math:`A \leftarrow A + (x_s - A x_{s-1}) x_{s-1}^\top / \|x_{s-1}\|^2`, starting from :math:`A = 0`.
    The test states do not have unit norm.
    """
    states = _fixed_states(seed)
    want = kaczmarz(states, kernel="linear").u
    got = as_tensor(fn(states.clone()), "kaczmarz_linear(states)")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"kaczmarz_linear must return shape (B, T, d) = {tuple(want.shape)}; got {tuple(got.shape)}")
    g64 = got.detach().to(torch.float64)
    if bool(torch.isclose(g64[:, :-1], states[:, 1:], atol=1e-9).all()):
        raise AssertionError(
            "your predictions equal the next tokens exactly: position t used the pair (x_t, x_{t+1}), which it "
            "cannot see. Predict with A_t first, then update A with the pair that ends at x_{t+1}.")
    if g64[:, 0].abs().max() > 1e-12:
        raise AssertionError("position 1 has no pair yet, so its prediction must be 0 (A starts at 0)")
    lagged = torch.cat([torch.zeros_like(want[:, :1]), want[:, :-1]], 1)
    if matches(got[:, 2:], lagged[:, 2:]) and not matches(got, want):
        raise AssertionError("your predictions are one step late: position t must use every pair up to (x_{t-1}, x_t)")
    for kwargs, hint in (
        (dict(divide=False), "the projection divides by the squared norm ||x_{s-1}||^2: without it the step is too "
                             "long or too short whenever the state does not have unit norm"),
        (dict(residual=False), "the update uses the residual x_s - A x_{s-1} of the CURRENT A, not x_s alone (that "
                               "would be a Hebbian sum, not a projection)"),
        (dict(transpose=True), "the outer product is transposed: the update is (x_s - A x_{s-1}) x_{s-1}^T, residual "
                               "on the left, so that the new A maps x_{s-1} to x_s"),
        (dict(sign=-1.0), "the sign of the update is flipped: A += residual x_{s-1}^T / ||x_{s-1}||^2"),
    ):
        if matches(got, _sweep(states, **kwargs)):
            raise AssertionError(hint)
    assert_close(got, want, "predictions A_t x_t", atol=1e-9, rtol=1e-9,
                 hint="the update is A += outer(x_s - A x_{s-1}, x_{s-1}) / ||x_{s-1}||^2 (a projection: divide by "
                      "the squared norm, and use the residual of the current A)")
    passed("check_kaczmarz_linear")


def check_causal_exp_scores(fn: Callable[[torch.Tensor, float], torch.Tensor], seed: int = 0) -> None:
    r"""``fn(states, beta)`` must return the ``(B, T, T)`` causal score matrix of one exp-kernel layer:
    :math:`K[t, s] = e^{\beta\langle x_t, x_{s-1}\rangle}` for :math:`s \le t` (keys are the PREVIOUS tokens, with
    :math:`x_0 = 0`) and :math:`0` for :math:`s > t`."""
    states = _fixed_states(seed)[:, :7]
    beta = 0.8 + 0.13 * seed                       # never 1, so that a missing beta shows
    T = states.shape[1]
    prev = previous_tokens(states)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    want = kernel_matrix(states, prev, "exp", beta).masked_fill(~mask, 0.0)
    got = fn(states.clone(), beta)
    for wrong, hint in (
        (kernel_matrix(states, prev, "exp", beta), "the scores are not causal: zero the entries s > t (a query may "
                                                   "only attend to keys at positions s <= t)"),
        (kernel_matrix(states, prev, "exp", beta).masked_fill(~mask.tril(-1), 0.0),
         "the diagonal s = t belongs to the causal prefix: key x_{t-1} is visible to query x_t"),
        (kernel_matrix(states, states, "exp", beta).masked_fill(~mask, 0.0),
         "the keys are the previous tokens x_{s-1} (with x_0 = 0), not x_s"),
        (kernel_matrix(prev, states, "exp", beta).masked_fill(~mask, 0.0),
         "queries and keys are swapped: the query is x_t, the key x_{s-1}"),
        (want.mT, "you returned the transpose: rows are queries t, columns keys s"),
        (kernel_matrix(states, prev, "linear").masked_fill(~mask, 0.0),
         "that is the linear kernel <x_t, x_{s-1}>: the exp kernel is exp(beta <x_t, x_{s-1}>)"),
        (kernel_matrix(states, prev, "exp", 1.0).masked_fill(~mask, 0.0), "the inverse temperature beta is missing"),
        (torch.softmax(kernel_matrix(states, prev, "linear").mul(beta).masked_fill(~mask, float("-inf")), -1),
         "no softmax normalisation here: the exp kernel keeps the raw values exp(beta <x_t, x_{s-1}>)"),
    ):
        if matches(got, wrong):
            raise AssertionError(hint)
    assert_close(got, want, "causal exp-kernel scores", atol=1e-10, rtol=1e-9,
                 hint="K[t, s] = exp(beta <x_t, x_{s-1}>) for s <= t, x_0 = 0, and 0 above the diagonal")
    passed("check_causal_exp_scores")


EXERCISES = (
    Exercise("ch06-causal-exp-scores-test", "causal_exp_scores", check_causal_exp_scores, 4),
    Exercise("ch06-kaczmarz-linear-test", "kaczmarz_linear", check_kaczmarz_linear, 6),
)
