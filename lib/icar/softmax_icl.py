r"""Training dynamics of one softmax-attention layer on linear-regression prompts (Chapter 7).

Setting (a course derivation following Huang, Cheng & Liang, 2024). ``K`` orthonormal features
:math:`v_1..v_K \in \mathbb R^d`; every prompt input :math:`x_i` (``i = 1..N``) and the query :math:`x_q` equal
:math:`v_k` with probability :math:`p_k`; a fresh task :math:`w \sim N(0, I_d)` per prompt and labels
:math:`y_i = \langle w, x_i\rangle`. The model is

.. math:: \hat y_q = \sum_{i=1}^N \mathrm{attn}_i\, y_i, \qquad
          \mathrm{attn}_i = \frac{\exp(x_i^\top Q x_q)}{\sum_{j \le N} \exp(x_j^\top Q x_q)},

i.e. :math:`W^V E\,\mathrm{softmax}(E^\top W^{KQ} E)` with the value matrix reading the label row (``v = 1``) and the
key-query matrix :math:`W^{KQ} = \mathrm{diag}(Q, 0)`. Only :math:`Q` is trained, from :math:`Q = 0`.

Two implementations:

* :class:`SoftmaxICL`: the raw model on prompt matrices ``E`` ``(B, d+1, N+1)``, batched over models ``M``
  (``Q`` ``(M, d, d)``), trained with :func:`icar.train.train`;
* :func:`reduced_gd`: gradient descent on the *reduced* loss, exactly integrated over :math:`w`, in feature
  coordinates :math:`Z_{mk} = v_m^\top Q v_k` (``Z`` ``(M, K, K)``; column ``k`` holds the logits of query feature
  ``k``: :math:`\alpha_k = Z_{kk}` and :math:`\beta_{k,m} = Z_{mk}`). With the prompt counts :math:`n_m`,

  .. math:: a^{(k)}_m = \frac{n_m e^{Z_{mk}}}{\sum_j n_j e^{Z_{jk}}}, \qquad
            L(Z) = \sum_k p_k\, \tfrac12\, \mathbb E_n\big[\|a^{(k)} - e_k\|^2\big].

The linear-attention contrast :math:`\hat y_q = \frac1N\sum_i y_i\, x_i^\top \Gamma x_q` has the reduced loss
:math:`\sum_k p_k \tfrac12 \mathbb E\|(n_m/N)\,\Gamma_{mk} - \delta_{mk}\|^2`, a convex quadratic solved in closed form
(:func:`linear_attention_gd`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .models import BatchedModel
from .runtime import DeviceLike, make_generator, progress_enabled, resolve_device
from .validate import (
    require_dtype,
    require_finite,
    require_floating,
    require_nonnegative,
    require_number,
    require_positive,
    require_positive_int,
    require_real,
    require_shape,
    require_tensor,
)

__all__ = [
    "feature_probs", "orthonormal_features", "sample_counts", "mean_field_counts", "sample_prompts", "quadrature_tasks", "sample_tokens", "design_prompts", "counts_of", "integrated_row_loss",
    "feature_attention", "reduced_loss", "per_feature_loss", "reduced_grad", "reduced_gd", "ReducedRun",
    "SoftmaxICL", "raw_loss", "initial_loss", "balanced_phase_time", "balanced_time_to_share",
    "balanced_late_constant", "linear_attention_floor", "linear_attention_gd", "first_time_below", "first_time_above",
]


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------

def feature_probs(K: int, kind: str = "balanced", p1: float = 0.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Token law over the ``K`` features, ``(K,)``.

    ``"balanced"``: :math:`p_k = 1/K`. ``"imbalanced"``: :math:`p_1 = p_1` (dominant feature) and
    :math:`p_k = (1 - p_1)/(K - 1)` for :math:`k \ge 2`.
    """
    K = require_positive_int(K, "K")
    require_dtype(dtype, complex_ok=False)
    if kind == "balanced":
        return torch.full((K,), 1.0 / K, dtype=dtype)
    if kind != "imbalanced":
        raise ValueError(f"kind must be 'balanced' or 'imbalanced'; got {kind!r}")
    if K < 2:
        raise ValueError(f"an imbalanced law needs K >= 2 features; got K={K}")
    if not (0.0 < require_number(p1, "p1") < 1.0):
        raise ValueError(f"p1 (probability of the dominant feature) must lie in (0, 1); got {p1!r}")
    p = torch.full((K,), (1.0 - p1) / (K - 1), dtype=dtype)
    p[0] = p1
    return p


def _check_probs(p: torch.Tensor, name: str = "p") -> torch.Tensor:
    require_tensor(p, name)
    require_real(p, name)
    require_finite(p, name)
    if p.dim() < 1:
        raise ValueError(f"{name} must have a last dimension K (one probability per feature); got a scalar")
    if (p < 0).any() or not torch.allclose(p.sum(-1), torch.ones((), dtype=p.dtype), atol=1e-9):
        raise ValueError(f"{name} must be non-negative and sum to 1 over its last dimension; got sums "
                         f"{p.sum(-1).flatten()[:4].tolist()}")
    return p


def orthonormal_features(K: int, d: int, *, seed: int | torch.Generator = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""``K`` random orthonormal features in :math:`\mathbb R^d` as the columns of ``V`` ``(d, K)`` (needs ``K <= d``)."""
    K, d = require_positive_int(K, "K"), require_positive_int(d, "d")
    require_dtype(dtype, complex_ok=False)
    if K > d:
        raise ValueError(f"K={K} orthonormal features do not fit in dimension d={d}; need K <= d")
    g = make_generator(seed)
    A = torch.randn(d, K, generator=g, dtype=torch.float64)
    V, R = torch.linalg.qr(A)
    return (V * torch.sign(torch.diagonal(R))).to(dtype)


def sample_counts(p: torch.Tensor, N: int, n_prompts: int, *, seed: int | torch.Generator = 0) -> torch.Tensor:
    r"""Feature counts :math:`n \sim \mathrm{Multinomial}(N, p)` of ``n_prompts`` prompts.

    ``p`` ``(K,)`` or ``(M, K)`` -> counts ``(n_prompts, K)`` or ``(M, n_prompts, K)`` (float64, drawn on the CPU).
    """
    _check_probs(p)
    N, n_prompts = require_positive_int(N, "N"), require_positive_int(n_prompts, "n_prompts")
    g = make_generator(seed)
    flat = p.reshape(-1, p.shape[-1]).cpu().double()
    idx = torch.stack([torch.multinomial(row, N * n_prompts, replacement=True, generator=g) for row in flat])
    idx = idx.view(flat.shape[0], n_prompts, N)
    counts = torch.zeros(flat.shape[0], n_prompts, p.shape[-1], dtype=torch.float64)
    counts.scatter_add_(2, idx, torch.ones_like(idx, dtype=torch.float64))
    return counts.view(*p.shape[:-1], n_prompts, p.shape[-1])


def mean_field_counts(p: torch.Tensor, N: int) -> torch.Tensor:
    r"""Deterministic counts :math:`n_m = N p_m` (one 'prompt'): ``(K,)`` -> ``(1, K)``, ``(M, K)`` -> ``(M, 1, K)``."""
    _check_probs(p)
    N = require_positive_int(N, "N")
    return (N * p.double()).unsqueeze(-2)


def sample_prompts(V: torch.Tensor, p: torch.Tensor, N: int, n_prompts: int, *, seed: int | torch.Generator = 0,
                   w: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Raw prompts ``E`` ``(B, d+1, N+1)`` (columns :math:`(x_i; y_i)` and :math:`(x_q; 0)`), targets
    :math:`\langle w, x_q\rangle` ``(B,)``, the feature index of every token ``(B, N+1)`` (last = query) and ``w``
    ``(B, d)``. ``w`` is drawn :math:`N(0, I_d)` unless given (``(B, d)``, e.g. from :func:`quadrature_tasks`).
    """
    require_shape(V, "V", (None, None), "(d, K)")
    require_real(V, "V")
    require_finite(V, "V")
    _check_probs(p)
    require_positive_int(N, "N")
    d, K = V.shape
    if p.shape != (K,):
        raise ValueError(f"p must have shape (K,) = ({K},) to match the columns of V; got {tuple(p.shape)}")
    B = require_positive_int(n_prompts, "n_prompts")
    g = make_generator(seed)
    idx = torch.multinomial(p.cpu().double(), B * (N + 1), replacement=True, generator=g).view(B, N + 1)
    x = V.cpu().double().T[idx]                                              # (B, N+1, d)
    if w is None:
        w = torch.randn(B, d, generator=g, dtype=torch.float64)
    require_shape(w, "w", (B, d), "(n_prompts, d)")
    require_real(w, "w")
    require_finite(w, "w")
    y = torch.einsum("bnd,bd->bn", x, w.double())
    y[:, -1] = 0.0
    E = torch.cat([x.transpose(1, 2), y[:, None, :]], 1)                     # (B, d+1, N+1)
    target = (x[:, -1] * w).sum(-1)
    return E.to(V.dtype), target.to(V.dtype), idx, w


def quadrature_tasks(n_prompts: int, d: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Tasks :math:`w = \sqrt d\, e_j` cycling over ``j``: ``(n_prompts, d)``.

    The loss only sees :math:`\mathbb E[ww^\top] = I`. Repeating each prompt with these ``d`` tasks makes the sample
    average of the squared error equal to its :math:`w`-expectation *exactly*, so the raw model can be compared with
    the reduced dynamics to float64 rounding (``n_prompts`` must be a multiple of ``d``).
    """
    require_positive_int(n_prompts, "n_prompts")
    require_positive_int(d, "d")
    require_dtype(dtype, complex_ok=False)
    if n_prompts % d:
        raise ValueError(f"n_prompts={n_prompts} must be a multiple of d={d} to cycle over the d quadrature tasks")
    return math.sqrt(d) * torch.eye(d, dtype=dtype).repeat(n_prompts // d, 1)


def sample_tokens(p: torch.Tensor, N: int, n_prompts: int, *, seed: int | torch.Generator = 0) -> torch.Tensor:
    r"""Feature index of every prompt token, ``(n_prompts, N)``, iid from ``p`` ``(K,)``."""
    _check_probs(p)
    if p.dim() != 1:
        raise ValueError(f"p must have shape (K,); got {tuple(p.shape)}")
    g = make_generator(seed)
    N, B = require_positive_int(N, "N"), require_positive_int(n_prompts, "n_prompts")
    return torch.multinomial(p.cpu().double(), B * N, replacement=True, generator=g).view(B, N)


def design_prompts(V: torch.Tensor, tokens: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Every prompt of ``tokens`` ``(B0, N)`` paired with every query feature and every quadrature task.

    Returns ``E`` ``(B0*K*d, d+1, N+1)``, targets ``(B0*K*d,)`` and row weights :math:`K p_{k}` of the query feature
    ``(B0*K*d,)``. The weighted mean of :math:`\tfrac12(\hat y - y)^2` over these rows equals the reduced loss
    :math:`\sum_k p_k L_k` on the counts of ``tokens`` exactly (the quadrature tasks integrate :math:`w`, the query
    copies integrate :math:`x_q`), so the raw model and :func:`reduced_gd` can be compared to float64 rounding.
    """
    require_shape(V, "V", (None, None), "(d, K)")
    require_real(V, "V")
    require_finite(V, "V")
    d, K = V.shape
    _check_probs(p)
    if p.shape != (K,):
        raise ValueError(f"p must have shape (K,) = ({K},); got {tuple(p.shape)}")
    _check_tokens(tokens, K)
    if tokens.min() < 0 or tokens.max() >= K:
        raise ValueError(f"tokens must be feature indices in [0, {K - 1}]; got values in [{tokens.min()}, {tokens.max()}]")
    B0, N = tokens.shape
    q = torch.arange(K).view(1, K, 1).expand(B0, K, d)
    tok = tokens.view(B0, 1, 1, N).expand(B0, K, d, N)
    idx = torch.cat([tok, q.unsqueeze(-1)], -1).reshape(-1, N + 1)                  # (B0*K*d, N+1)
    w = math.sqrt(d) * torch.eye(d, dtype=torch.float64).view(1, 1, d, d).expand(B0, K, d, d).reshape(-1, d)
    x = V.cpu().double().T[idx]                                                      # (R, N+1, d)
    y = torch.einsum("rnd,rd->rn", x, w)
    target = y[:, -1].clone()
    y[:, -1] = 0.0
    E = torch.cat([x.transpose(1, 2), y[:, None, :]], 1)
    weights = (K * p.double())[idx[:, -1]]
    return E.to(V.dtype), target.to(V.dtype), weights.to(V.dtype)


def _check_tokens(tokens: torch.Tensor, K: int, name: str = "tokens") -> torch.Tensor:
    """``tokens`` must be an integer tensor ``(B, N)`` of feature indices in ``[0, K)``, with ``N >= 1``."""
    require_shape(tokens, name, (None, None), "(B0, N)")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of feature indices; got dtype {tokens.dtype}")
    if tokens.shape[1] < 1 or tokens.numel() == 0:
        raise ValueError(f"{name} must hold at least one token per prompt; got shape {tuple(tokens.shape)}")
    if tokens.min() < 0 or tokens.max() >= K:
        raise ValueError(f"{name} must be feature indices in [0, {K - 1}]; got values in [{tokens.min()}, {tokens.max()}]")
    return tokens


def _check_counts(counts: torch.Tensor, name: str = "counts") -> torch.Tensor:
    """``counts`` must be a real, finite, non-negative tensor (numbers of prompt tokens of each feature)."""
    require_real(counts, name)
    require_finite(counts, name)
    if bool((counts < 0).any()):
        raise ValueError(f"{name} must be non-negative (numbers of prompt tokens of each feature)")
    return counts


def _lr_per_model(lr: float | torch.Tensor, M: int) -> torch.Tensor:
    """``lr``: a positive number or ``M`` positive numbers -> ``(M,)`` float64."""
    if isinstance(lr, torch.Tensor):
        require_real(lr, "lr")
        require_finite(lr, "lr")
    else:
        require_positive(lr, "lr")
    lr_t = torch.as_tensor(lr, dtype=torch.float64).flatten()
    if lr_t.numel() == 1:
        lr_t = lr_t.expand(M)
    if lr_t.shape != (M,) or (lr_t <= 0).any():
        raise ValueError(f"lr must be a positive number or M={M} positive numbers; got {lr_t.tolist()}")
    return lr_t


def counts_of(tokens: torch.Tensor, K: int) -> torch.Tensor:
    """Feature counts ``(B0, K)`` of token indices ``(B0, N)``."""
    _check_tokens(tokens, require_positive_int(K, "K"))
    out = torch.zeros(tokens.shape[0], K, dtype=torch.float64)
    return out.scatter_add_(1, tokens, torch.ones_like(tokens, dtype=torch.float64))


# ----------------------------------------------------------------------------------------------------------------
# Reduced (w-integrated) loss and its gradient
# ----------------------------------------------------------------------------------------------------------------

def _prep(Z: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    require_tensor(Z, "Z")
    require_real(Z, "Z")
    require_finite(Z, "Z")
    if Z.dim() not in (2, 3) or Z.shape[-1] != Z.shape[-2]:
        raise ValueError(f"Z must have shape (K, K) or (M, K, K) (feature-coordinate logits); got {tuple(Z.shape)}")
    _check_counts(counts)
    K = Z.shape[-1]
    if counts.dim() not in (2, 3) or counts.shape[-1] != K:
        raise ValueError(f"counts must have shape (P, K) or (M, P, K) with K={K}; got {tuple(counts.shape)}")
    if (counts < 0).any():
        raise ValueError("counts must be non-negative (numbers of prompt tokens of each feature)")
    if (counts.sum(-1) <= 0).any():
        raise ValueError("every prompt needs at least one token: a row of counts sums to 0")
    Zb = Z if Z.dim() == 3 else Z.unsqueeze(0)
    cb = counts if counts.dim() == 3 else counts.unsqueeze(0)
    if cb.shape[0] not in (1, Zb.shape[0]) and Zb.shape[0] != 1:
        raise ValueError(f"counts has {cb.shape[0]} models but Z has {Zb.shape[0]}")
    return Zb, cb.to(dtype=Zb.dtype, device=Zb.device)


def feature_attention(Z: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    r"""Total attention on each feature, :math:`a^{(k)}_m = n_m e^{Z_{mk}} / \sum_j n_j e^{Z_{jk}}`.

    ``Z`` ``(M, K, K)`` (or ``(K, K)``), ``counts`` ``(M, P, K)`` (or ``(P, K)``) -> ``(M, P, K_query, K_feature)``.
    Features absent from a prompt get attention exactly 0.
    """
    Zb, cb = _prep(Z, counts)
    logits = Zb.transpose(1, 2).unsqueeze(1) + torch.log(cb).unsqueeze(2)   # (M, P, k, m): Z[m, k] + log n_m
    return torch.softmax(logits, dim=-1)


def per_feature_loss(Z: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    r""":math:`L_k = \tfrac12\mathbb E_n\|a^{(k)} - e_k\|^2` for every query feature: ``(M, K)``."""
    a = feature_attention(Z, counts)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return 0.5 * (a - eye).pow(2).sum(-1).mean(1)


def reduced_loss(Z: torch.Tensor, counts: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    r"""Population loss :math:`L = \sum_k p_k L_k`, exactly integrated over :math:`w`: ``(M,)``; ``p`` ``(K,)``/``(M, K)``."""
    _check_probs(p)
    return (per_feature_loss(Z, counts) * p.to(Z.device, Z.dtype)).sum(-1)


def reduced_grad(Z: torch.Tensor, counts: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    r"""Closed-form gradient :math:`\partial L / \partial Z_{mk}`, ``(M, K, K)``.

    For query ``k`` with shares ``a`` and residual :math:`r = a - e_k`, the softmax Jacobian gives
    :math:`\partial L_k/\partial Z_{mk} = \mathbb E[a_m (r_m - \langle a, r\rangle)]`, weighted by :math:`p_k`.
    Each column sums to zero (conservation of :math:`\alpha_k + \sum_m \beta_{k,m}`).
    """
    _check_probs(p)
    a = feature_attention(Z, counts)                                        # (M, P, k, m)
    r = a - torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    g = (a * (r - (a * r).sum(-1, keepdim=True))).mean(1)                   # (M, k, m)
    g = g * p.to(Z.device, Z.dtype).unsqueeze(-1)
    return g.transpose(-1, -2)                                              # (M, m, k)


@dataclass
class ReducedRun:
    r"""History of :func:`reduced_gd` (on the CPU), recorded at the iterations ``steps`` ``(S,)``.

    ``Z`` ``(S, M, K, K)`` logits, ``loss`` ``(S, M)``, ``per_feature`` ``(S, M, K)`` (:math:`L_k`), ``attention``
    ``(S, M, K, K)`` (mean over prompts of :math:`a^{(k)}_m`, indexed ``[k, m]``).
    """

    steps: torch.Tensor
    Z: torch.Tensor
    loss: torch.Tensor
    per_feature: torch.Tensor
    attention: torch.Tensor

    @property
    def alpha(self) -> torch.Tensor:
        """Target weights :math:`\\alpha_k = Z_{kk}`: ``(S, M, K)``."""
        return torch.diagonal(self.Z, dim1=-2, dim2=-1)


def reduced_gd(counts: torch.Tensor, p: torch.Tensor, lr: float | torch.Tensor, steps: int, *,
               Z0: torch.Tensor | None = None, record_every: int = 1, device: DeviceLike = "cpu",
               progress: bool | None = None, desc: str = "reduced GD") -> ReducedRun:
    r"""Gradient descent :math:`Z \leftarrow Z - \eta\,\nabla L(Z)` on the reduced loss, for ``M`` models at once.

    ``counts`` ``(M, P, K)`` (a fixed sample of prompt counts per model; ``P = 1`` with :func:`mean_field_counts` is
    the mean-field limit), ``p`` ``(M, K)``, ``lr`` a number or ``(M,)``. Starts from ``Z0`` (default 0, uniform
    attention). Records iterations ``0, record_every, ...`` and the last one. One loop over iterations (GD is
    sequential); everything inside is a tensor op over models, prompts and features. Runs in float64, except on
    MPS (which has no float64), where it runs in float32.
    """
    _check_counts(counts)
    if counts.dim() != 3:
        raise ValueError(f"counts must have shape (M, P, K); got {tuple(counts.shape)}")
    M, _, K = counts.shape
    if (counts < 0).any() or (counts.sum(-1) <= 0).any():
        raise ValueError("counts must be non-negative with at least one token per prompt (every row sums to N >= 1)")
    _check_probs(p)
    if p.shape != (M, K):
        raise ValueError(f"p must have shape (M, K) = ({M}, {K}); got {tuple(p.shape)}")
    steps = require_positive_int(steps, "steps")
    record_every = require_positive_int(record_every, "record_every")
    dev = resolve_device(device)
    dtype = torch.float64 if dev.type != "mps" else torch.float32
    lr_t = _lr_per_model(lr, M).to(dev, dtype).view(M, 1, 1)
    if Z0 is not None:
        require_real(Z0, "Z0")
        require_finite(Z0, "Z0")
    c, pp = counts.to(dev, dtype), p.to(dev, dtype)
    Z = torch.zeros(M, K, K, dtype=dtype, device=dev) if Z0 is None else require_shape(Z0, "Z0", (M, K, K), "(M, K, K)").to(dev, dtype).clone()
    rec: dict[str, list[torch.Tensor]] = {"s": [], "Z": [], "L": [], "Lk": [], "A": []}
    eye = torch.eye(K, dtype=dtype, device=dev)

    def record(t: int, a: torch.Tensor) -> None:
        Lk = 0.5 * (a - eye).pow(2).sum(-1).mean(1)
        rec["s"].append(torch.tensor(t))
        rec["Z"].append(Z.cpu())
        rec["Lk"].append(Lk.cpu())
        rec["L"].append((Lk * pp).sum(-1).cpu())
        rec["A"].append(a.mean(1).cpu())

    show = progress_enabled() if progress is None else progress
    for t in tqdm(range(steps + 1), desc=desc, disable=not show, leave=False):
        a = torch.softmax(Z.transpose(1, 2).unsqueeze(1) + torch.log(c).unsqueeze(2), dim=-1)   # (M, P, k, m)
        if t % record_every == 0 or t == steps:
            record(t, a)
        if t < steps:  # no break: the bar runs to its end (an early exit shows an unfinished, red bar)
            r = a - eye
            g = ((a * (r - (a * r).sum(-1, keepdim=True))).mean(1) * pp.unsqueeze(-1)).transpose(1, 2)
            Z = Z - lr_t * g
    return ReducedRun(torch.stack(rec["s"]), torch.stack(rec["Z"]), torch.stack(rec["L"]), torch.stack(rec["Lk"]),
                      torch.stack(rec["A"]))


# ----------------------------------------------------------------------------------------------------------------
# The raw model
# ----------------------------------------------------------------------------------------------------------------

class SoftmaxICL(BatchedModel):
    r"""One softmax-attention layer :math:`F(E) = W^V E\,\mathrm{softmax}(E^\top W^{KQ} E)`, read at the query label.

    Only :math:`Q` ``(M, d, d)`` (the top-left block of :math:`W^{KQ}`) is a parameter; :math:`W^V` reads the label
    row with the fixed scalar ``v = 1``; no residual connection. Input prompts ``E`` ``(B, d+1, N+1)`` (shared) or
    ``(M, B, d+1, N+1)``; output :math:`\hat y_q` ``(M, B)``. With ``include_query=True`` the softmax runs over all
    ``N+1`` columns (the query's own label slot is 0), otherwise over the ``N`` prompt tokens.
    """

    def __init__(self, n_models: int, d: int, *, include_query: bool = False, init_scale: float = 0.0,
                 seed: int | torch.Generator = 0, dtype: torch.dtype = torch.float64):
        super().__init__(n_models)
        self.d = require_positive_int(d, "d")
        self.include_query = bool(include_query)
        require_nonnegative(init_scale, "init_scale")
        require_dtype(dtype, complex_ok=False)
        g = make_generator(seed)
        self.Q = nn.Parameter(init_scale * torch.randn(n_models, d, d, generator=g, dtype=torch.float64).to(dtype))

    def forward(self, E: torch.Tensor) -> torch.Tensor:
        E = self.per_model(E, 3, "E")
        if E.shape[2] != self.d + 1:
            raise ValueError(f"E must have shape (B, d+1, N+1) with d+1={self.d + 1} rows (features, then the label); "
                             f"got {tuple(E.shape[1:])}")
        require_real(E, "E")
        X, y = E[:, :, : self.d], E[:, :, self.d]                      # (M, B, d, N+1), (M, B, N+1)
        xq = X[..., -1]                                                 # (M, B, d)
        keys = X if self.include_query else X[..., :-1]
        vals = y if self.include_query else y[..., :-1]
        scores = torch.einsum("mbdn,mde,mbe->mbn", keys, self.Q, xq)    # x_i^T Q x_q
        return (torch.softmax(scores, dim=-1) * vals).sum(-1)


def raw_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""Half (weighted) mean squared error of each model, :math:`\tfrac12\,\mathrm{mean}_b\,c_b(\hat y_b - y_b)^2`:
    ``pred`` ``(M, B)``, ``target`` and ``weights`` ``(B,)`` or ``(M, B)`` -> ``(M,)``."""
    require_real(pred, "pred")
    require_real(target, "target")
    require_finite(target, "target")
    if weights is not None:
        require_real(weights, "weights")
        require_finite(weights, "weights")
    if target.dim() == pred.dim() - 1:
        target = target.unsqueeze(0)
    if pred.shape[-1] != target.shape[-1]:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} do not match")
    sq = (pred - target).pow(2)
    if weights is not None:
        sq = sq * (weights if weights.dim() == sq.dim() else weights.unsqueeze(0))
    return 0.5 * sq.mean(-1)


# ----------------------------------------------------------------------------------------------------------------
# Closed forms
# ----------------------------------------------------------------------------------------------------------------

def initial_loss(p: torch.Tensor, N: int) -> torch.Tensor:
    r"""Loss at :math:`Q = 0` (attention :math:`a_m = n_m/N`) for multinomial counts, exactly:

    .. math:: L(0) = \sum_k p_k\,\tfrac12\Big[(1-p_k)^2 + \sum_{m\ne k}p_m^2 + \frac{1 - \sum_m p_m^2}{N}\Big].
    """
    _check_probs(p)
    N = require_positive_int(N, "N")
    s2 = p.pow(2).sum(-1, keepdim=True)
    Lk = 0.5 * ((1 - p).pow(2) + s2 - p.pow(2) + (1 - s2) / N)
    return (p * Lk).sum(-1)


def balanced_time_to_share(r: float | torch.Tensor, K: int, lr: float = 1.0) -> torch.Tensor:
    r"""Mean-field time for the target share to grow from :math:`1/K` to ``r`` under balanced features:

    .. math:: t(r) = \frac{(K-1)^2}{\eta K}\,[G(r) - G(1/K)], \quad
              G(r) = -\frac1r + 3\ln r - 3\ln(1-r) + \frac2{1-r} + \frac1{2(1-r)^2},

    the solution of :math:`\dot r = \eta K r^2 (1-r)^3/(K-1)^2` (a course derivation).
    """
    K = require_positive_int(K, "K")
    require_positive(lr, "lr")
    if K < 2:
        raise ValueError("balanced dynamics need K >= 2 features")
    if isinstance(r, torch.Tensor):
        require_real(r, "r")
        require_finite(r, "r")
    else:
        require_number(r, "r")
    r = torch.as_tensor(r, dtype=torch.float64)
    if ((r <= 1.0 / K) | (r >= 1)).any():
        raise ValueError(f"r must lie in (1/K, 1) = ({1 / K:.3g}, 1); got {r}")

    def G(x: torch.Tensor) -> torch.Tensor:
        return -1 / x + 3 * torch.log(x) - 3 * torch.log1p(-x) + 2 / (1 - x) + 0.5 / (1 - x) ** 2

    return (K - 1) ** 2 / (lr * K) * (G(r) - G(torch.tensor(1.0 / K, dtype=torch.float64)))


def balanced_phase_time(K: int, lr: float = 1.0) -> float:
    r"""Length of Phase I (target share :math:`1/K \to 1/2`):
    :math:`\frac{(K-1)^2}{\eta K}[K + 4 + 3\ln(K-1) - \frac{2K}{K-1} - \frac{K^2}{2(K-1)^2}]`."""
    return float(balanced_time_to_share(0.5, K, lr))


def balanced_late_constant(K: int, lr: float = 1.0) -> float:
    r"""Phase II law :math:`L(t)\,t \to (K-1)/(4\eta)` (balanced, mean field)."""
    return (require_positive_int(K, "K") - 1) / (4 * require_positive(lr, "lr"))


def linear_attention_floor(counts: torch.Tensor, p: torch.Tensor, N: int) -> torch.Tensor:
    r"""Smallest reduced loss of linear attention on the same data, per query feature, ``(..., K)``:

    .. math:: L_k^\star = \tfrac12\Big(1 - \frac{\mathbb E[f_k]^2}{\mathbb E[f_k^2]}\Big), \quad f_k = n_k/N,

    the expectation over the given ``counts`` ``(..., P, K)``. For multinomial counts this is
    :math:`\tfrac12(1-p_k)/(Np_k + 1 - p_k)`. ``p`` is only validated here (weights are applied by the caller).
    """
    _check_probs(p)
    _check_counts(counts)
    f = counts.double() / require_positive_int(N, "N")
    return 0.5 * (1 - f.mean(-2).pow(2) / f.pow(2).mean(-2))


def linear_attention_gd(counts: torch.Tensor, p: torch.Tensor, N: int, lr: float | torch.Tensor,
                        steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gradient descent on linear attention's reduced loss from :math:`\Gamma = 0`, in closed form at the times ``steps``.

    Off-diagonal entries of :math:`\Gamma` (feature coordinates) get zero gradient and stay 0; the diagonal solves
    :math:`\gamma_k \leftarrow \gamma_k - \eta p_k(\mathbb E[f_k^2]\gamma_k - \mathbb E[f_k])`, so
    :math:`\gamma_k(t) = \gamma_k^\star(1 - (1 - \eta p_k\mathbb E[f_k^2])^t)`. ``counts`` ``(M, P, K)``, ``p``
    ``(M, K)``, ``lr`` number or ``(M,)``, ``steps`` ``(S,)`` -> ``gamma`` ``(S, M, K)`` and per-feature losses
    ``(S, M, K)``. No loop: one power per time.
    """
    _check_probs(p)
    _check_counts(counts)
    if counts.dim() < 2 or bool((counts.pow(2).mean(-2) == 0).any()):
        raise ValueError("counts must have shape (M, P, K) with every feature seen in some prompt (E[f_k^2] > 0)")
    if isinstance(lr, torch.Tensor):
        require_real(lr, "lr")
        require_finite(lr, "lr")
        if not bool((lr > 0).all()):
            raise ValueError(f"lr must be positive; got {lr.tolist()}")
    else:
        require_positive(lr, "lr")
    require_tensor(steps, "steps")
    require_finite(steps, "steps")
    if steps.is_complex() or bool((steps < 0).any()):
        raise ValueError(f"steps must be non-negative times; got {steps.tolist()}")
    f = counts.double() / require_positive_int(N, "N")
    m1, m2 = f.mean(-2), f.pow(2).mean(-2)                                  # (M, K)
    lr_t = torch.as_tensor(lr, dtype=torch.float64).reshape(-1, 1)
    rate = lr_t * p.double() * m2
    if (rate >= 2).any():
        raise ValueError(f"lr too large: eta p_k E[f_k^2] must stay below 2 for GD to converge; got {rate.max():.3g}")
    s = torch.as_tensor(steps, dtype=torch.float64).view(-1, 1, 1)
    gamma = (m1 / m2) * (1 - (1 - rate).pow(s))
    Lk = 0.5 * (m2 * gamma.pow(2) - 2 * m1 * gamma + 1)
    return gamma, Lk


# ----------------------------------------------------------------------------------------------------------------
# Reading phases off a curve
# ----------------------------------------------------------------------------------------------------------------

def first_time_below(steps: torch.Tensor, curve: torch.Tensor, level: float) -> torch.Tensor:
    r"""First recorded step at which ``curve`` ``(S, ...)`` is ``<= level``; ``inf`` where it never is. -> ``(...)``."""
    require_real(curve, "curve")
    require_tensor(steps, "steps")
    require_finite(steps, "steps")
    require_number(level, "level")
    if steps.dim() != 1 or curve.dim() < 1 or curve.shape[0] != steps.shape[0] or steps.numel() == 0:
        raise ValueError(f"steps must have shape (S,) and curve (S, ...), S >= 1; got {tuple(steps.shape)} and {tuple(curve.shape)}")
    hit = curve <= level
    first = torch.argmax(hit.to(torch.int8), dim=0)
    t = steps.double()[first]
    return torch.where(hit.any(0), t, torch.full_like(t, math.inf))


def first_time_above(steps: torch.Tensor, curve: torch.Tensor, level: float) -> torch.Tensor:
    r"""First recorded step at which ``curve`` ``(S, ...)`` is ``>= level``; ``inf`` where it never is."""
    require_real(curve, "curve")
    require_number(level, "level")
    return first_time_below(steps, -curve, -level)


def integrated_row_loss(Z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    r"""Exact :math:`w`-average of :math:`\tfrac12(\hat y - y)^2` for each prompt, :math:`\tfrac12\|a^{(k)} - e_k\|^2`.

    ``Z`` ``(K, K)`` feature-coordinate logits, ``idx`` ``(B, N+1)`` feature indices (last column = query) -> ``(B,)``.
    """
    require_shape(Z, "Z", (None, None), "(K, K)")
    require_real(Z, "Z")
    require_finite(Z, "Z")
    K = Z.shape[0]
    require_shape(idx, "idx", (None, None), "(B, N+1)")
    _check_tokens(idx, K, "idx")
    if idx.shape[1] < 2:
        raise ValueError(f"idx must hold N >= 1 prompt tokens and the query; got shape {tuple(idx.shape)}")
    counts = counts_of(idx[:, :-1], K)
    a = feature_attention(Z, counts)[0]                                    # (B, k, m)
    k = idx[:, -1]
    ak = a[torch.arange(a.shape[0]), k]                                     # (B, m)
    return 0.5 * (ak - torch.nn.functional.one_hot(k, K).to(ak.dtype)).pow(2).sum(-1)
