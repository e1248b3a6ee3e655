"""Checkers for the graded exercises of Chapter 7 (training dynamics of softmax attention)."""
from __future__ import annotations

from typing import Callable

import torch

from ..softmax_icl import feature_attention, feature_probs, per_feature_loss, sample_counts
from . import Exercise, as_tensor, assert_close, matches, passed


def _fixed_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7 + seed)
    K = 4
    Z = 0.8 * torch.randn(K, K, generator=g, dtype=torch.float64)
    counts = sample_counts(feature_probs(K, "imbalanced", 0.55), 6, 9, seed=g)   # small N: some features are missing
    return Z, counts


def check_per_query_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int = 0) -> None:
    r"""Check a student's per-query-feature loss :math:`L_k = \tfrac12\,\mathrm{mean}_P\|a^{(k)} - e_k\|^2`.

    ``fn(Z, counts)`` takes logits ``Z`` ``(K, K)`` with ``Z[m, k]`` :math:`= v_m^\top Q v_k` and prompt counts
    ``counts`` ``(P, K)``, and returns ``(K,)``.
    """
    Z, counts = _fixed_inputs(seed)
    want = per_feature_loss(Z, counts)[0]
    got = as_tensor(fn(Z.clone(), counts.clone()), "per_query_loss(Z, counts)")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"per_query_loss must return one loss per query feature, shape (K,) = {tuple(want.shape)}; "
                             f"got {tuple(got.shape)}")
    low = got
    got = got.detach().to(torch.float64)
    if matches(low, want * Z.shape[0] ** -1):
        raise AssertionError("you averaged over the K features of ||a^{(k)} - e_k||^2: it is a squared norm (a sum)")
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
    assert_close(low, want, "per-query losses L_k", atol=1e-10, rtol=1e-9,
                 hint="a^{(k)} = softmax(Z[:, k] + log n) per prompt; L_k = 0.5 * mean over prompts of "
                      "||a^{(k)} - e_k||^2; a feature with n_m = 0 gets attention 0")
    passed("check_per_query_loss")


def check_feature_attention(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int = 0) -> None:
    r"""``fn(Z, counts)`` must return the total attention on each feature, ``(P, K, K)`` indexed ``[prompt, query k,
    feature m]``: :math:`a^{(k)}_m = n_m e^{Z_{mk}} / \sum_j n_j e^{Z_{jk}}` (0 for a feature absent from the
    prompt)."""
    Z, counts = _fixed_inputs(seed)
    want = feature_attention(Z, counts)[0]
    got = fn(Z.clone(), counts.clone())
    soft = torch.softmax
    for wrong, hint in (
        (feature_attention(Z.T.contiguous(), counts)[0], "you used row k of Z for query k: the logits of query k are "
                                                         "the COLUMN Z[:, k] (Z[m, k] = v_m^T Q v_k)"),
        (want.transpose(1, 2), "the last two axes are swapped: index the result [prompt, query k, feature m]"),
        (soft(Z.T, -1).expand_as(want), "the attention ignores the counts: feature m is shared by n_m prompt tokens, "
                                         "so its weight is n_m exp(Z[m, k]) (add log n_m to the logit)"),
        (soft(Z.T[None] + counts[:, None, :], -1), "add log n_m to the logits, not n_m"),
        (counts[:, None, :] * soft(Z.T, -1)[None], "after weighting by n_m, renormalise: divide by "
                                                    "sum_j n_j exp(Z[j, k])"),
        (soft(Z.T[None] + torch.log(counts)[:, None, :], -2), "the softmax runs over the features m (the last axis), "
                                                               "for each query k"),
    ):
        if matches(got, wrong):
            raise AssertionError(hint)
    assert_close(got, want, "feature attention a[p, k, m]", atol=1e-10, rtol=1e-9,
                 hint="a[p, k, :] = softmax over m of Z[m, k] + log n_m (log 0 = -inf gives attention 0)")
    passed("check_feature_attention")


EXERCISES = (
    Exercise("ch07-feature-attention-test", "feature_attention_weights", check_feature_attention, 4),
    Exercise("ch07-per-query-loss-test", "per_query_loss", check_per_query_loss, 6),
)
