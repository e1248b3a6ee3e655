"""Checkers for the graded exercises of Chapter 7 (training dynamics of softmax attention)."""
from __future__ import annotations

from typing import Callable

import torch

from ..softmax_icl import feature_probs, per_feature_loss, sample_counts
from . import assert_close, passed


def _fixed_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    K = 4
    Z = 0.8 * torch.randn(K, K, generator=g, dtype=torch.float64)
    counts = sample_counts(feature_probs(K, "imbalanced", 0.55), 6, 9, seed=g)   # small N: some features are missing
    return Z, counts


def check_per_query_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    r"""Check a student's per-query-feature loss :math:`L_k = \tfrac12\,\mathrm{mean}_P\|a^{(k)} - e_k\|^2`.

    ``fn(Z, counts)`` takes logits ``Z`` ``(K, K)`` with ``Z[m, k]`` :math:`= v_m^\top Q v_k` and prompt counts
    ``counts`` ``(P, K)``, and returns ``(K,)``.
    """
    Z, counts = _fixed_inputs()
    want = per_feature_loss(Z, counts)[0]
    got = fn(Z.clone(), counts.clone())
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"per_query_loss must return a torch.Tensor; got {type(got).__name__}")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"per_query_loss must return one loss per query feature, shape (K,) = {tuple(want.shape)}; "
                             f"got {tuple(got.shape)}")
    got = got.detach().to(torch.float64)
    if torch.allclose(got, 2 * want, atol=1e-10):
        raise AssertionError("your losses are twice the expected ones: the loss carries a factor 1/2")
    if torch.allclose(got, per_feature_loss(Z.T.contiguous(), counts)[0], atol=1e-10):
        raise AssertionError("you used row k of Z for query k: the logits of query feature k are the COLUMN Z[:, k] "
                             "(Z[m, k] = v_m^T Q v_k)")
    ones = torch.ones_like(counts)
    if torch.allclose(got, per_feature_loss(Z, ones)[0], atol=1e-10):
        raise AssertionError("your attention ignores the counts: feature m receives n_m exp(Z[m, k]) / sum_j n_j "
                             "exp(Z[j, k]) because n_m prompt tokens share it")
    if torch.allclose(got, want * counts.shape[0], atol=1e-10):
        raise AssertionError("you summed over the prompts instead of averaging over them")
    assert_close(got, want, "per-query losses L_k", atol=1e-10, rtol=1e-9,
                 hint="a^{(k)} = softmax(Z[:, k] + log n) per prompt; L_k = 0.5 * mean over prompts of "
                      "||a^{(k)} - e_k||^2; a feature with n_m = 0 gets attention 0")
    passed("check_per_query_loss")
