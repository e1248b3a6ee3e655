"""Checkers of the graded exercise of Chapter 8 (planning as path-finding)."""
from __future__ import annotations

from typing import Callable

import torch

from .. import planning
from . import Exercise, as_tensor, assert_close, matches, passed


def _fixture(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = planning.make_data(2, 12, 0.3, train_frac=0.5, n_paths=3, seed=5 + seed)
    g = torch.Generator().manual_seed(7 + seed)
    W_M = torch.randn(2, 12, 13, generator=g, dtype=torch.float64)
    W_V = torch.randn(2, 12, 13, generator=g, dtype=torch.float64)
    return W_M, W_V, data.counts


def check_gradients(student: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                    seed: int = 0) -> None:
    r"""``student(W_M, W_V, N)`` must return the gradients of the mean count cross-entropy
    :math:`-\frac1Z\sum N[i,j,k]\log\mathrm{softmax}_k(W^M[i,k] + W^V[j,k])` with respect to ``W_M`` and ``W_V``,
    both ``(M, n, n+1)``, for counts ``N`` ``(M, n, n, n+1)``."""
    W_M, W_V, N = _fixture(seed)
    want_M, want_V = planning.gradients(W_M, W_V, N)
    got = student(W_M.clone(), W_V.clone(), N.clone())
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise AssertionError(f"return a pair (grad_W_M, grad_W_V); got {type(got).__name__}")
    gM, gV = got
    for what, g, want in (("grad_W_M", gM, want_M), ("grad_W_V", gV, want_V)):
        answer = g
        if isinstance(g, torch.Tensor) and g.shape == want.shape and not g.is_complex():
            g = g.detach().double()
            Z = N.sum((1, 2, 3))[:, None, None]
            other = want_V if what == "grad_W_M" else want_M
            if torch.allclose(g, -want, atol=1e-10):
                raise AssertionError(f"{what}: the sign is flipped: the gradient is (predicted - observed) counts, "
                                     "N[i,j] p_ij(k) - N[i,j,k]")
            if torch.allclose(g, want * Z, atol=1e-8):
                raise AssertionError(f"{what}: missing the 1/Z normalisation (Z = N.sum() per model: the loss is a "
                                     "mean over all predictions)")
            if torch.allclose(g, other, atol=1e-10):
                raise AssertionError(f"{what}: you summed over the wrong axis: W^M collects the sum over targets j, "
                                     "W^V the sum over current nodes i")
            p = torch.softmax(W_M[:, :, None, :] + W_V[:, None, :, :], -1)
            resid = p - N  # probabilities not weighted by the context counts N[i,j]
            unweighted = (resid.sum(2) if what == "grad_W_M" else resid.sum(1)) / Z
            if torch.allclose(g, unweighted, atol=1e-10):
                raise AssertionError(f"{what}: the predicted counts must be weighted by how often the context "
                                     "occurs: N[i,j] p_ij(k) with N[i,j] = N[i,j,:].sum()")
        assert_close(answer, want, what, atol=1e-10, rtol=1e-8,
                     hint="residual r[i,j,k] = N[i,j] p_ij(k) - N[i,j,k]; sum it over j for W^M, over i for W^V, "
                          "divide by Z")
    passed("check_gradients")


def _graphs(seed: int) -> torch.Tensor:
    """Two random DAGs and a chain 0 -> 1 -> ... -> 11 (the longest path: it needs every squaring)."""
    A = planning.random_dag(2, 12, 0.2, seed=31 + seed)
    chain = torch.zeros(1, 12, 12, dtype=torch.bool)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(seed))
    chain[0, perm[:-1], perm[1:]] = True
    return torch.cat([A.to(torch.bool), chain])


def check_reach(student: Callable[[torch.Tensor], torch.Tensor], seed: int = 0) -> None:
    r"""``student(A)`` (``A`` bool ``(G, n, n)``, ``A[g, i, j]`` = edge i -> j) must return the bool ``(G, n, n)``
    matrix ``C[g, k, t]`` = a path of length >= 0 leads from k to t (so ``C[k, k]`` is true), source first."""
    A = _graphs(seed)
    want = planning.reachability(A).transpose(-1, -2)               # the library's is target first
    got = as_tensor(student(A.clone()), "reach(A)")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"reach(A): expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if got.dtype != torch.bool:
        raise AssertionError(f"reach(A) must be a bool tensor (reachable or not); got {got.dtype}. Counts of paths "
                             "grow exponentially: compare with 0 after each product")
    eye = torch.eye(12, dtype=torch.bool)
    If = (A | eye).double()
    for wrong, hint in (
        (want.transpose(-1, -2), "you returned the target-first matrix (the transpose): C[k, t] says whether k "
                                 "reaches t"),
        (A | eye, "you only followed single edges: a path can have up to n-1 edges (repeated squaring of I + A)"),
        ((If @ If) > 0, "one squaring only covers paths of up to 2 edges: square ceil(log2 n) times"),
        ((If @ If @ If @ If) > 0, "two squarings only cover paths of up to 4 edges: square ceil(log2 n) times"),
        (want & ~eye, "a node reaches itself by the path of length 0: C[k, k] is true"),
        (A.double().matrix_power(11).gt(0) | eye, "A^(n-1) only holds the paths of exactly n-1 edges: use I + A"),
    ):
        if torch.equal(got, wrong):
            raise AssertionError(hint)
    if not torch.equal(got, want):
        bad = torch.nonzero(got != want)[0].tolist()
        raise AssertionError(f"reach(A) differs at graph {bad[0]}, from {bad[1]} to {bad[2]}: got "
                             f"{bool(got[tuple(bad)])}, expected {bool(want[tuple(bad)])}")
    passed("check_reach")


EXERCISES = (
    Exercise("ch08-reach-test", "reach", check_reach, 4),
    Exercise("ch08-planner-gradients-test", "planner_gradients", check_gradients, 6),
)
