r"""Models batched over a leading *model* dimension ``M``.

Every parameter has shape ``(M, ...)``: model ``m`` owns slice ``m``. Inputs are either shared by all models,
``(B, T, d)``, or given per model, ``(M, B, T, d)``; outputs are ``(M, B, ...)``. One forward/backward pass then
trains ``M`` independent models (seeds x hyper-parameters), which is what :func:`icar.train.train` does.

Chapters add their own models (augmented linear attention, multi-head diagonal attention, kernel-descent
Transformers) in their own modules, following the same convention (subclass :class:`BatchedModel`).
"""
from __future__ import annotations

import torch
from torch import nn

from .runtime import make_generator
from .validate import (
    require_dtype,
    require_finite,
    require_floating,
    require_min_length,
    require_nonnegative,
    require_positive_int,
    require_tensor,
)


class BatchedModel(nn.Module):
    """Base class: ``n_models`` independent copies stacked on a leading dimension of every parameter."""

    def __init__(self, n_models: int):
        super().__init__()
        self.n_models = require_positive_int(n_models, "n_models")

    def per_model(self, x: torch.Tensor, base_dim: int, name: str = "input", *, floating: bool = True) -> torch.Tensor:
        """Broadcast a shared input ``(*base)`` to ``(M, *base)``; check a per-model input ``(M, *base)``.

        With ``floating`` (the default) the input must also be a finite floating-point or complex tensor."""
        require_tensor(x, name)
        if floating:
            require_floating(x, name)
            require_finite(x, name)
        if x.dim() == base_dim:
            return x.unsqueeze(0).expand(self.n_models, *x.shape)
        if x.dim() == base_dim + 1 and x.shape[0] == self.n_models:
            return x
        raise ValueError(
            f"{name} must be shared, with {base_dim} dimensions, or per model, ({self.n_models}, ...) with "
            f"{base_dim + 1}; got shape {tuple(x.shape)}"
        )

    def input_groups(self, x: torch.Tensor, base_dim: int, name: str = "input") -> torch.Tensor:
        """An input as ``(G, *base)`` groups: shared ``(*base)`` -> ``G = 1``; ``(G, *base)`` with ``G`` dividing ``M``.

        Model ``m`` reads group ``m // (M // G)``: ``G = M`` is one input per model, ``G < M`` lets consecutive
        models share one input (e.g. seeds of one data set), so a model can compute what depends on the input alone
        once per group instead of once per model."""
        require_tensor(x, name)
        require_floating(x, name)
        require_finite(x, name)
        if x.dim() == base_dim:
            return x.unsqueeze(0)
        if x.dim() == base_dim + 1 and x.shape[0] >= 1 and self.n_models % x.shape[0] == 0:
            return x
        raise ValueError(
            f"{name} must be shared, with {base_dim} dimensions, or given per group of models, (G, ...) with "
            f"{base_dim + 1} dimensions and G dividing n_models={self.n_models}; got shape {tuple(x.shape)}"
        )

    def check_batched(self) -> None:
        """Every parameter must have the leading model dimension ``M``."""
        for name, p in self.named_parameters():
            if p.dim() == 0 or p.shape[0] != self.n_models:
                raise ValueError(f"parameter {name} must have leading dimension n_models={self.n_models}; got {tuple(p.shape)}")


def bilinear_scores(x: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    r"""Scores of ``K`` bilinear forms that share their input: :math:`a_{t,h,s} = x_t^\top G_h\, x_s`.

    ``x`` ``(N, B, T, C)`` (``N`` groups of ``B`` sequences), ``G`` ``(N, K, C, C)`` -> ``(N, B, T, K, T)``.
    Attention with query :math:`q^h_t = W_Q^h x_t` and key :math:`k^h_s = W_K^h x_s` has
    :math:`q^h_t \cdot k^h_s = x_t^\top G_h x_s` with :math:`G_h = W_Q^{h\top} W_K^h`: the ``K`` heads (or models
    that read the same input) share the key side :math:`x_s`, so all of them take one matrix product per sequence,
    ``(T K, C) @ (C, T)``, instead of one small product per head, and no key tensor is formed.
    """
    N, K, C = G.shape[0], G.shape[1], G.shape[-1]
    B, T = x.shape[1], x.shape[2]
    q = (x.reshape(N, B * T, C) @ G.permute(0, 2, 1, 3).reshape(N, C, K * C)).view(N, B, T * K, C)  # x_t^T G_h
    return (q @ x.transpose(-1, -2)).view(N, B, T, K, T)


def bilinear_mix(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Weighted sums of the shared input: :math:`z_{t,h} = \sum_s a_{t,h,s}\, x_s`.

    ``a`` ``(N, B, T, K, T)``, ``x`` ``(N, B, T, C)`` -> ``(N, B, T, K, C)``. With values :math:`v^h_s = W_V^h x_s` the
    attention output of head ``h`` is :math:`W_V^h z_{t,h}`: one product per sequence, ``(T K, T) @ (T, C)``, and the
    value maps applied afterwards (summed over heads) in one product over all positions.
    """
    N, B, T, K, S = a.shape
    return (a.reshape(N, B, T * K, S) @ x).view(N, B, T, K, x.shape[-1])


def _init(shape: tuple[int, ...], scale: float, seed: int | torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    require_nonnegative(scale, "init_scale")
    require_dtype(dtype)
    g = make_generator(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


class FixedLinear(BatchedModel):
    r"""A context-free predictor :math:`\hat s_{t+1} = A s_t` with one matrix :math:`A` for every sequence.

    It cannot adapt to the prompt: the baseline every in-context learner must beat. Parameters ``A`` ``(M, d, d)``.
    Input states ``(B, T, d)`` or ``(M, B, T, d)``; output ``(M, B, T-1, d)`` (predictions of :math:`s_2..s_T`).
    """

    def __init__(self, n_models: int, d: int, *, seed: int | torch.Generator = 0, init_scale: float = 0.1,
                 dtype: torch.dtype = torch.float64):
        super().__init__(n_models)
        self.d = require_positive_int(d, "d")
        self.A = nn.Parameter(_init((n_models, d, d), init_scale, seed, dtype))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        s = self.per_model(states, 3, "states")
        if s.shape[-1] != self.d:
            raise ValueError(f"states must have last dimension d={self.d}; got {tuple(s.shape)}")
        require_min_length(s, "states", -2, 2, "time steps (T >= 2: one to read, one to predict)")
        return torch.einsum("mij,mbtj->mbti", self.A, s[:, :, :-1])


class LinearAttention(BatchedModel):
    r"""One causal linear-attention layer (no softmax) on tokens :math:`e_1..e_T \in \mathbb R^{D}`:

    .. math:: \mathrm{out}_t = \frac{1}{t}\sum_{j \le t} W_V e_j \,(e_j^\top W_K^\top W_Q e_t)

    (without the :math:`1/t` if ``normalize=False``). Parameters ``W_Q, W_K, W_V`` ``(M, D, D)``. Input tokens
    ``(B, T, D)`` or ``(M, B, T, D)``; output ``(M, B, T, D)``. Causality is exact: out_t only sees :math:`e_{1..t}`.
    """

    def __init__(self, n_models: int, dim: int, *, normalize: bool = True, seed: int | torch.Generator = 0,
                 init_scale: float = 0.1, dtype: torch.dtype = torch.float64):
        super().__init__(n_models)
        self.dim = require_positive_int(dim, "dim")
        self.normalize = normalize
        g = make_generator(seed)
        self.W_Q = nn.Parameter(_init((n_models, dim, dim), init_scale, g, dtype))
        self.W_K = nn.Parameter(_init((n_models, dim, dim), init_scale, g, dtype))
        self.W_V = nn.Parameter(_init((n_models, dim, dim), init_scale, g, dtype))

    def causal_weights(self, T: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``(T, T)`` lower-triangular mask, divided row-wise by ``t`` when ``normalize``."""
        w = torch.ones(T, T, dtype=dtype, device=device).tril()
        return w / torch.arange(1, T + 1, dtype=dtype, device=device)[:, None] if self.normalize else w

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        require_tensor(tokens, "tokens")
        if tokens.dim() == 3:
            return self._forward_shared(tokens)
        e = self.per_model(tokens, 3, "tokens")
        if e.shape[-1] != self.dim:
            raise ValueError(f"tokens must have last dimension {self.dim}; got {tuple(e.shape)}")
        q = torch.einsum("mij,mbtj->mbti", self.W_Q, e)
        k = torch.einsum("mij,mbtj->mbti", self.W_K, e)
        v = torch.einsum("mij,mbtj->mbti", self.W_V, e)
        scores = (q @ k.transpose(-1, -2)) * self.causal_weights(e.shape[2], e.dtype, e.device)  # (M, B, T, T)
        return scores @ v

    def _forward_shared(self, e: torch.Tensor) -> torch.Tensor:
        r"""Same output for tokens shared by all models, ``(B, T, D)``, by associativity of linear attention.

        With :math:`G_m = W_{K,m}^\top W_{Q,m}` and the prefix Gram matrix :math:`F_t = \sum_{s\le t} e_s e_s^\top`
        (a cumulative sum, the same for every model),
        :math:`\mathrm{out}_t = \tfrac1t W_{V,m} F_t G_m e_t`. This costs :math:`O(T D^2)` per sequence and model
        instead of :math:`O(T^2 D)`, and is three large matrix products over all models at once.
        """
        self.per_model(e, 3, "tokens")
        if e.shape[-1] != self.dim:
            raise ValueError(f"tokens must have last dimension {self.dim}; got {tuple(e.shape)}")
        M, (B, T, D) = self.n_models, e.shape
        F = torch.cumsum(e[..., :, None] * e[..., None, :], dim=1).reshape(B * T, D, D)   # prefix Gram, shared
        G = self.W_K.transpose(1, 2) @ self.W_Q                                          # (M, D, D)
        Ge = (e.reshape(B * T, D) @ G.permute(2, 1, 0).reshape(D, D * M)).reshape(B * T, D, M)  # [n, i, m] = (G_m e_n)_i
        w = F @ Ge                                                                       # (B*T, D, M): F_t G_m e_t
        if self.normalize:
            w = w / torch.arange(1, T + 1, dtype=e.dtype, device=e.device).repeat(B)[:, None, None]
        out = w.permute(2, 0, 1).contiguous() @ self.W_V.transpose(1, 2)                 # (M, B*T, D)
        return out.reshape(M, B, T, D)
