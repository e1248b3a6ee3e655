"""Checkers of the graded exercise of Chapter 8 (planning as path-finding)."""
from __future__ import annotations

from typing import Callable

import torch

from .. import planning
from . import assert_close, passed


def _fixture() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = planning.make_data(2, 12, 0.3, train_frac=0.5, n_paths=3, seed=5)
    g = torch.Generator().manual_seed(7)
    W_M = torch.randn(2, 12, 13, generator=g, dtype=torch.float64)
    W_V = torch.randn(2, 12, 13, generator=g, dtype=torch.float64)
    return W_M, W_V, data.counts


def check_gradients(student: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                    ) -> None:
    r"""``student(W_M, W_V, N)`` must return the gradients of the mean count cross-entropy
    :math:`-\frac1Z\sum N[i,j,k]\log\mathrm{softmax}_k(W^M[i,k] + W^V[j,k])` with respect to ``W_M`` and ``W_V``,
    both ``(M, n, n+1)``, for counts ``N`` ``(M, n, n, n+1)``."""
    W_M, W_V, N = _fixture()
    want_M, want_V = planning.gradients(W_M, W_V, N)
    got = student(W_M.clone(), W_V.clone(), N.clone())
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise AssertionError(f"return a pair (grad_W_M, grad_W_V); got {type(got).__name__}")
    gM, gV = got
    for what, g, want in (("grad_W_M", gM, want_M), ("grad_W_V", gV, want_V)):
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
        assert_close(g, want, what, atol=1e-10, rtol=1e-8,
                     hint="residual r[i,j,k] = N[i,j] p_ij(k) - N[i,j,k]; sum it over j for W^M, over i for W^V, "
                          "divide by Z")
    passed("check_gradients")
