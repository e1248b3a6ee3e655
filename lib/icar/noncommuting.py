r"""Beyond commuting contexts: Haar-orthogonal :math:`W`, the fixed-start leak, positional-encoding-only attention,
softmax versus linear attention, and the token-window AR(1) fits (chapter 5).

Course code following the experiments of Sander et al. (2024, arXiv 2402.05787), scaled down to a CPU.

Indexing follows :mod:`icar.data`: a sequence holds the states :math:`s_1, \dots, s_T`, ``states[:, t-1]`` is
:math:`s_t`. Models read the inputs :math:`e_1, \dots, e_{T-1}` and predict :math:`s_2, \dots, s_T`.

Sections
--------
* Data: :func:`haar_sequences` (Haar :math:`W \in O(d)`, fixed or random start) and :func:`augment`
  (:math:`e_t = (0, s_t, s_{t-1})`).
* Models batched over a model dimension ``M`` (subclasses of :class:`icar.models.BatchedModel`):
  :class:`AugmentedAttention` (one attention layer on augmented tokens, linear or softmax, optionally with the
  biases / LayerNorm / output layer of the paper's experiment), :class:`PositionalTokenAttention` (linear token
  attention times softmax positional attention, the paper's non-augmented experiment) and :class:`PEOnly`
  (:math:`d = 1`, only a positional matrix :math:`P` is learned).
* Analysis: :func:`kq_blocks`, :func:`relative_distance_to_scalar`, :func:`one_step_gd_baselines`,
  :func:`position_mass`.
* PE-only theory: :func:`pe_gram`, :func:`pe_gd_closed_form`, :func:`pe_sequences`.
* Token windows: :func:`window_ar_errors`, :func:`window_has_repeat`, :func:`load_polarity_corpus`.
* The trigonometric identity: :func:`trig_prediction`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .data import ARBatch, initial_states, matrix_powers, rollout, sample_contexts
from .models import BatchedModel, bilinear_mix, bilinear_scores
from .runtime import DeviceLike, make_generator, resolve_device
from .tokens import augment as _augment
from .validate import (
    require_choice,
    require_dtype,
    require_tensor,
    require_finite,
    require_floating,
    require_ndim,
    require_number,
    require_positive,
    require_orthogonal,
    require_positive_int,
    require_real,
    require_shape,
)

Seed = int | torch.Generator

START_LAWS = ("fixed", "random")


# =============================================================================================== data
def haar_sequences(n: int, d: int, T: int, *, seed: Seed, start: str = "fixed", dtype: torch.dtype = torch.float64,
                   device: DeviceLike = "cpu") -> ARBatch:
    r"""``n`` sequences :math:`s_{t+1} = W s_t`, :math:`t < T`, with :math:`W \sim \mathrm{Haar}(O(d))`.

    ``start="fixed"``: :math:`s_1 = \mathbf 1/\sqrt d` for every sequence (the paper's experiments);
    ``start="random"``: :math:`s_1` uniform on the unit sphere (a rotation-invariant start). Returns
    :class:`icar.data.ARBatch` with ``states`` ``(n, T, d)`` and ``W`` ``(n, d, d)``.
    """
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_positive_int(T, "T")
    if start not in START_LAWS:
        raise ValueError(f"start must be one of {START_LAWS}; got {start!r}")
    require_dtype(dtype)
    if dtype.is_complex:
        raise TypeError(f"Haar-orthogonal sequences are real: dtype must be float32/float64; got {dtype}")
    g = make_generator(seed)
    W = sample_contexts("haar", n, d, seed=g, dtype=torch.float64)
    if start == "fixed":
        s1 = initial_states("ones", n, d, seed=g, scale=1.0 / math.sqrt(d))
    else:
        s1 = initial_states("sphere", n, d, seed=g)
    dev = resolve_device(device)
    return ARBatch(rollout(W, s1, T).to(dtype=dtype, device=dev), W.to(dtype=dtype, device=dev))


def augment(states: torch.Tensor) -> torch.Tensor:
    r"""Augmented tokens :math:`e_t = (0_d, s_t, s_{t-1}) \in \mathbb R^{3d}` with :math:`s_0 = 0`.

    ``states`` ``(..., T, d)`` -> ``(..., T, 3d)``. Slot 0 is the answer slot, slot 1 the current state, slot 2 the
    previous state.
    """
    require_ndim(states, "states", (2, 3, 4), "(..., T, d)")
    require_floating(states, "states")
    require_finite(states, "states")
    return _augment(states)


def split_inputs_targets(states: torch.Tensor, augmented: bool) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Model inputs built from :math:`s_1..s_{T-1}` and targets :math:`s_2..s_T`: ``((n, T-1, D), (n, T-1, d))``."""
    require_ndim(states, "states", (3,), "(n, T, d)")
    require_floating(states, "states")
    require_finite(states, "states")
    if states.shape[1] < 2:
        raise ValueError(f"states must hold at least 2 time steps; got shape {tuple(states.shape)}")
    x = states[:, :-1]
    return (augment(x) if augmented else x), states[:, 1:]


# =============================================================================================== models
def _randn(g: torch.Generator, *shape: int, scale: float, dtype: torch.dtype) -> torch.Tensor:
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)


def _bmm(W: torch.Tensor, x: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Per-model linear map: ``W`` ``(M, o, i)``, ``x`` ``(M, ..., i)``, ``b`` ``(M, o)`` -> ``(M, ..., o)``."""
    y = torch.einsum("moi,m...i->m...o", W, x)
    if b is not None:
        y = y + b.view(b.shape[0], *([1] * (x.dim() - 2)), b.shape[1])
    return y


class _Normalize(torch.autograd.Function):
    r""":math:`\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}` over the last axis (biased variance): the values
    and the gradient of ``torch.nn.functional.layer_norm`` without weight or bias.

    The row statistics are products with a vector of ones: for rows as short as the 15 coordinates of chapter 5's
    tokens, ``layer_norm``'s own float32 kernel spends most of its time per row (forward 18 ms for 4 x 51,200 rows
    here, against 9 ms for these products). The backward is ``layer_norm``'s (``aten.native_layer_norm_backward``,
    given the saved :math:`\mu` and :math:`1/\sqrt{\sigma^2 + \epsilon}`); it is not differentiable a second time.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        D = x.shape[-1]
        mean_of = torch.full((D, 1), 1.0 / D, dtype=x.dtype, device=x.device)
        mu = x @ mean_of                                                      # (..., 1)
        xc = x - mu
        rstd = torch.rsqrt((xc * xc) @ mean_of + eps)
        ctx.save_for_backward(x, mu, rstd)
        return xc * rstd

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, mu, rstd = ctx.saved_tensors
        gx = torch.ops.aten.native_layer_norm_backward(grad.contiguous(), x, [x.shape[-1]], mu, rstd, None, None,
                                                       [True, False, False])[0]
        return gx, None


def _layernorm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    r"""LayerNorm over the last axis with per-model weight and bias ``(M, D)``: :math:`(x - \mu)/\sqrt{\sigma^2 +
    \epsilon}\, w + b` (biased variance, as ``torch.nn.LayerNorm``), ``x`` ``(M, ..., D)``. The normalisation is
    :class:`_Normalize` on the CPU (same values and gradient, faster for short rows), ``layer_norm`` elsewhere."""
    shape = (w.shape[0], *([1] * (x.dim() - 2)), w.shape[1])
    xhat = (_Normalize.apply(x, eps) if x.device.type == "cpu" and x.is_contiguous()
            else torch.nn.functional.layer_norm(x, x.shape[-1:], eps=eps))
    return torch.addcmul(b.view(shape), xhat, w.view(shape))


ATTENTIONS = ("linear", "softmax")


def _causal(T: int, like: torch.Tensor) -> torch.Tensor:
    """Causal mask ``(T, 1, T)`` in the dtype and device of ``like``: 1 where key ``j <= t`` query, else 0 (its
    logarithm, 0 or -inf, is the additive mask of a softmax)."""
    return torch.ones(T, T, dtype=like.dtype, device=like.device).tril()[:, None, :]


class AugmentedAttention(BatchedModel):
    r"""One causal attention layer on augmented tokens :math:`e_t = (0, s_t, s_{t-1}) \in \mathbb R^{D}`, ``D = 3d``.

    Scores :math:`a_{tj} = (W_Q e_t + b_Q)\cdot(W_K e_j + b_K)/\sqrt D` for :math:`j \le t`;
    ``attention="linear"`` uses them as they are, ``"softmax"`` normalises them with a softmax over :math:`j \le t`;
    a list gives one kind per model (linear and softmax models then train in one batch).
    The attention output is :math:`o_t = W_O \sum_{j\le t} \alpha_{tj} (W_V e_j + b_V) + b_O`.

    * ``paper=True`` (the paper's experiment, with its extras): :math:`h_t = e_t + \mathrm{LN}(o_t)`, prediction
      :math:`\hat s_{t+1} = (W_F h_t + b_F)_{0:d}`.
    * ``paper=False`` (the model of the theory): no biases, :math:`W_O = I`, prediction = answer slot
      :math:`(o_t)_{0:d}`; then :math:`\hat s_{t+1} = B\,(\sum_j s_j s_{j-1}^\top)\,A\, s_t/\sqrt D` + other blocks.

    Parameters carry a leading model dimension ``M``. Input tokens ``(B, T, D)`` or ``(M, B, T, D)``; output
    predictions ``(M, B, T, d)``.
    """

    def __init__(self, n_models: int, d: int, *, attention: str | list[str] = "linear", paper: bool = True,
                 seed: Seed = 0, init_scale: float | None = None, dtype: torch.dtype = torch.float64):
        super().__init__(n_models)
        self.d = require_positive_int(d, "d")
        require_dtype(dtype, complex_ok=False)
        if not isinstance(attention, (str, list, tuple)):
            raise TypeError(f"attention must be a kind or one kind per model; got {attention!r}")
        if init_scale is not None:
            require_number(init_scale, "init_scale")
            if init_scale < 0:
                raise ValueError(f"init_scale must be >= 0; got {init_scale!r}")
        kinds = [attention] * n_models if isinstance(attention, str) else list(attention)
        if len(kinds) != n_models or any(k not in ATTENTIONS for k in kinds):
            raise ValueError(f"attention must be one of {ATTENTIONS}, or a list of them with one entry per model "
                             f"(n_models={n_models}); got {attention!r}")
        self.attention, self.paper = kinds, paper
        self.register_buffer("_softmax", torch.tensor([k == "softmax" for k in kinds]), persistent=False)
        D = self.D = 3 * d
        M = n_models
        s = (1.0 / math.sqrt(D)) if init_scale is None else init_scale
        g = make_generator(seed)
        for name in ("W_Q", "W_K", "W_V"):
            setattr(self, name, nn.Parameter(_randn(g, M, D, D, scale=s, dtype=dtype)))
        if paper:
            for name in ("b_Q", "b_K", "b_V", "b_O", "b_F", "ln_b"):
                setattr(self, name, nn.Parameter(torch.zeros(M, D, dtype=dtype)))
            self.W_O = nn.Parameter(_randn(g, M, D, D, scale=s, dtype=dtype))
            self.W_F = nn.Parameter(_randn(g, M, D, D, scale=s, dtype=dtype))
            self.ln_w = nn.Parameter(torch.ones(M, D, dtype=dtype))

    def scores(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attention weights :math:`\\alpha_{tj}` ``(M, B, T, T)`` (zero above the diagonal)."""
        e = self._tokens(tokens)
        bq = getattr(self, "b_Q", None)
        bk = getattr(self, "b_K", None)
        q, k = _bmm(self.W_Q, e, bq), _bmm(self.W_K, e, bk)
        T = e.shape[2]
        a = torch.einsum("mbti,mbsi->mbts", q, k) / math.sqrt(self.D)
        mask = torch.ones(T, T, dtype=torch.bool, device=e.device).tril()
        lin = a.masked_fill(~mask, 0.0)
        if not bool(self._softmax.any()):
            return lin
        soft = torch.softmax(a.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.where(self._softmax.to(e.device).view(-1, 1, 1, 1), soft, lin)

    def _tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.per_model(tokens, 3, "tokens")
        require_real(e, "tokens")
        if e.shape[-1] != self.D:
            raise ValueError(f"tokens must be augmented, last dimension 3d = {self.D} (use icar.noncommuting.augment); "
                             f"got {tuple(e.shape)}")
        return e

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Predictions ``(M, B, T, d)`` for tokens shared ``(B, T, D)``, per model ``(M, B, T, D)`` or per group of
        models ``(G, B, T, D)`` (see :meth:`icar.models.BatchedModel.input_groups`).

        Shared tokens and linear models take the prefix-Gram form (:meth:`_forward_shared_linear`); every other
        input the grouped score form (:meth:`_forward_grouped`). Both give the outputs of the score-matrix
        definition (:meth:`scores`)."""
        require_tensor(tokens, "tokens")
        if tokens.dim() == 3 and not bool(self._softmax.any()):
            return self._forward_shared_linear(tokens)
        return self._forward_grouped(tokens)

    def _forward_grouped(self, tokens: torch.Tensor) -> torch.Tensor:
        r"""Score form with the models of a group sharing their input: tokens ``(G, B, T, D)`` or ``(B, T, D)``.

        With :math:`\tilde e = (e, 1)`, :math:`a_{tj} = \tilde e_t^\top G \tilde e_j` where
        :math:`G = \tilde Q^\top \tilde K/\sqrt D` (``(D+1) x (D+1)``, :meth:`_affine`), and
        :math:`\sum_j \alpha_{tj} v_j = \tilde V z_t` with :math:`z_t = \sum_j \alpha_{tj} \tilde e_j`. The ``M/G``
        models of a group take one product per sequence and block for their scores and one for :math:`z` (the
        products of :func:`icar.models.bilinear_scores` and :func:`icar.models.bilinear_mix`); no per-model
        ``q, k, v`` and no copy of the tokens per model are formed, and :math:`W_O \tilde V` is applied once per
        position. Both products are taken in blocks of :data:`GROUPED_BLOCK` query positions ``t0 <= t < t1``
        against the keys ``j < t1`` only (causality): about half of the ``T x T`` scores and of their softmax.
        """
        e = self.input_groups(tokens, 3, "tokens")
        require_real(e, "tokens")
        if e.shape[-1] != self.D:
            raise ValueError(f"tokens must be augmented, last dimension 3d = {self.D} (use icar.noncommuting.augment); "
                             f"got {tuple(e.shape)}")
        M, D, d = self.n_models, self.D, self.d
        Gn, B, T = e.shape[0], e.shape[1], e.shape[2]
        k, C = M // Gn, D + 1                                                            # models per group
        et = torch.cat([e, torch.ones_like(e[..., :1])], dim=-1)                         # (G, B, T, D+1)
        G = self._affine(self.W_Q, "b_Q").mT @ self._affine(self.W_K, "b_K") / math.sqrt(D)  # (M, D+1, D+1)
        G = G.view(Gn, k, C, C).permute(0, 2, 1, 3).reshape(Gn, C, k * C)                # the k models side by side
        causal = _causal(T, et)                                                          # (t, 1, j): 1 for j <= t
        softmax = bool(self._softmax.any())
        z = []
        for t0 in range(0, T, GROUPED_BLOCK):                                            # queries t0..t1-1
            t1 = min(T, t0 + GROUPED_BLOCK)
            n, keys, mask = t1 - t0, et[:, :, :t1], causal[t0:t1, :, :t1]                # keys j < t1 only
            q = (et[:, :, t0:t1].reshape(Gn, B * n, C) @ G).view(Gn, B, n * k, C)         # e~_t^T G_m, per block
            a = (q @ keys.mT).view(Gn, B, n, k, t1)                                      # (no slice of a large q)
            alpha = a * mask                                # a product, not masked_fill: a fast broadcast, both ways
            if softmax:
                soft = torch.softmax(a + torch.log(mask), dim=-1)                        # + log 0 = -inf for j > t
                alpha = torch.where(self._softmax.to(e.device).view(Gn, 1, 1, k, 1), soft, alpha)
            z.append((alpha.reshape(Gn, B, n * k, t1) @ keys).view(Gn, B, n, k, C))      # sum_j alpha_tj e~_j
        z = torch.cat(z, dim=2).permute(0, 3, 1, 2, 4).reshape(M, B * T, C)              # a view when k = 1
        V = self._affine(self.W_V, "b_V")
        if not self.paper:
            return (z @ V[:, :d].mT).view(M, B, T, d)
        o = torch.baddbmm(self.b_O[:, None, :], z, (self.W_O @ V).mT)                     # W_O V~ z + b_O
        h = (e[:, None] + _layernorm(o, self.ln_w, self.ln_b).view(Gn, k, B, T, D)).view(M, B * T, D)
        return torch.baddbmm(self.b_F[:, None, :d], h, self.W_F[:, :d].mT).view(M, B, T, d)

    def _affine(self, W: torch.Tensor, b: str) -> torch.Tensor:
        r"""``[W, b]`` ``(M, D, D+1)``: the affine map :math:`e \mapsto We + b` acting on :math:`\tilde e = (e, 1)`."""
        bias = getattr(self, b, None)
        return torch.cat([W, torch.zeros_like(W[..., :1]) if bias is None else bias[..., None]], dim=-1)

    def _forward_shared_linear(self, tokens: torch.Tensor) -> torch.Tensor:
        r"""The same output as the score-matrix form, for tokens ``(B, T, D)`` shared by all-linear models.

        With :math:`\tilde e = (e, 1)`, :math:`\tilde Q = [W_Q, b_Q]` (likewise :math:`\tilde K, \tilde V`),
        :math:`G = \tilde K^\top \tilde Q/\sqrt D` and the prefix Gram matrix
        :math:`F_t = \sum_{j\le t}\tilde e_j \tilde e_j^\top` (a cumulative sum over time, the same for every
        model), associativity gives :math:`\sum_{j\le t} a_{tj} v_j = \tilde V F_t G\, \tilde e_t`: no ``T x T``
        scores, no copy of the tokens per model, and the products over models are large matrix products. (With
        one input per model ``F`` would be per model too, and the score form is cheaper: ``forward`` uses it.)
        """
        e = tokens
        self._tokens(e)
        M, D, d = self.n_models, self.D, self.d
        B, T = e.shape[0], e.shape[1]
        N = B * T
        et = torch.cat([e, torch.ones_like(e[..., :1])], dim=-1).reshape(N, D + 1)
        F = torch.cumsum((et[:, :, None] * et[:, None, :]).view(B, T, D + 1, D + 1), dim=1).view(N, D + 1, D + 1)
        G = self._affine(self.W_K, "b_K").mT @ self._affine(self.W_Q, "b_Q") / math.sqrt(D)     # (M, D+1, D+1)
        Ge = (et @ G.permute(2, 1, 0).reshape(D + 1, (D + 1) * M)).view(N, D + 1, M)    # [n, i, m] = (G_m e~_n)_i
        w = (F @ Ge).permute(2, 0, 1).reshape(M, N, D + 1)                               # F_t G_m e~_t, (M, N, D+1)
        V = self._affine(self.W_V, "b_V")
        if not self.paper:
            return (w @ V[:, :d].mT).view(M, B, T, d)
        o = torch.baddbmm(self.b_O[:, None, :], w, (self.W_O @ V).mT)                     # W_O (V~ F G e~) + b_O
        h = e.reshape(1, N, D) + _layernorm(o, self.ln_w, self.ln_b)
        return torch.baddbmm(self.b_F[:, None, :d], h, self.W_F[:, :d].mT).view(M, B, T, d)

    @torch.no_grad()
    def key_query(self) -> torch.Tensor:
        r""":math:`W_K^\top W_Q/\sqrt D` ``(M, D, D)``: rows index the key slot, columns the query slot."""
        return (self.W_K.mT @ self.W_Q / math.sqrt(self.D)).detach()

    @torch.no_grad()
    def value_map(self) -> torch.Tensor:
        r"""Effective map from the value token to the prediction, ``(M, d, D)``.

        ``paper=True``: :math:`(W_F)_{0:d}\,\mathrm{diag}(\mathrm{LN\ weight})\,W_O W_V` (LayerNorm's data-dependent
        scale left out); ``paper=False``: :math:`(W_V)_{0:d}`.
        """
        if not self.paper:
            return self.W_V[:, : self.d].detach().clone()
        return (self.W_F[:, : self.d] @ (self.ln_w[:, :, None] * (self.W_O @ self.W_V))).detach()


FORMS = ("auto", "scores", "contracted")
GROUPED_BLOCK = 16          # query positions per block of AugmentedAttention's grouped score form
CONTRACTED_BLOCK = 8        # query positions per block of the contracted form's causal product
CONTRACTED_MIN_HEADS = 8    # from here on the contracted form is faster on a CPU (crossover measured at 4-8 heads)


class PositionalTokenAttention(BatchedModel):
    r"""The paper's non-augmented experiment: linear token attention times softmax positional attention.

    Input states :math:`s_t \in \mathbb R^d` are repeated, :math:`x_t = (s_t, s_t) \in \mathbb R^{D}`, ``D = 2d``.
    Head :math:`h` (width ``D``) has

    .. math:: \alpha^h_{tj} = \frac{q^h(x_t)\cdot k^h(x_j)}{\sqrt D}\;
              \mathrm{softmax}_{j\le t}\Big(\frac{q^h(E_t)\cdot k^h(E_j)}{\sqrt D}\Big),

    with affine maps :math:`q^h, k^h, v^h` and a learned position table :math:`E` ``(T_max, D)`` through the same
    :math:`q, k`. Output :math:`\hat s_{t+1} = W_2\,\mathrm{LN}(W_1 \sum_h \sum_{j\le t} \alpha^h_{tj} v^h(x_j) + b_1)
    + b_2` (no residual). Parameters carry a leading model dimension ``M``; states ``(B, T, d)`` or
    ``(M, B, T, d)`` -> predictions ``(M, B, T, d)``.

    Two exact forms of the same output (``form``): ``"scores"`` forms the ``T x T`` scores of every head
    (:meth:`_forward_scores`, work ``~ H T^2`` per sequence), ``"contracted"`` sums the heads out first
    (:meth:`_forward_contracted`, work independent of ``H``); ``"auto"`` takes the contracted form from
    :data:`CONTRACTED_MIN_HEADS` heads on (the crossover measured by ``benchmarks/chapter_models.py``).
    """

    def __init__(self, n_models: int, d: int, *, heads: int = 8, max_len: int = 64, seed: Seed = 0,
                 dtype: torch.dtype = torch.float64, form: str = "auto"):
        super().__init__(n_models)
        self.d = require_positive_int(d, "d")
        self.heads = require_positive_int(heads, "heads")
        self.max_len = require_positive_int(max_len, "max_len")
        require_dtype(dtype, complex_ok=False)
        self.form = require_choice(form, "form", FORMS)
        D = self.D = 2 * d
        M, H = n_models, heads
        g = make_generator(seed)
        s = 1.0 / math.sqrt(D)
        for name in ("W_Q", "W_K", "W_V"):
            setattr(self, name, nn.Parameter(_randn(g, M, H * D, D, scale=s, dtype=dtype)))
        for name in ("b_Q", "b_K", "b_V"):
            setattr(self, name, nn.Parameter(torch.zeros(M, H * D, dtype=dtype)))
        self.E = nn.Parameter(_randn(g, M, max_len, D, scale=1.0, dtype=dtype))
        self.W_1 = nn.Parameter(_randn(g, M, D, D, scale=s, dtype=dtype))
        self.b_1 = nn.Parameter(torch.zeros(M, D, dtype=dtype))
        self.ln_w = nn.Parameter(torch.ones(M, D, dtype=dtype))
        self.ln_b = nn.Parameter(torch.zeros(M, D, dtype=dtype))
        self.W_2 = nn.Parameter(_randn(g, M, d, D, scale=s, dtype=dtype))
        self.b_2 = nn.Parameter(torch.zeros(M, d, dtype=dtype))

    def _heads(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(*y.shape[:-1], self.heads, self.D)

    def positional_attention(self, T: int) -> torch.Tensor:
        r"""Softmax positional attention of every head, ``(M, H, T, T)`` (rows sum to 1 over :math:`j \le t`)."""
        require_positive_int(T, "T")
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds the position table max_len={self.max_len}")
        E = self.E[:, :T]
        q = self._heads(_bmm(self.W_Q, E, self.b_Q))  # (M, T, H, D)
        k = self._heads(_bmm(self.W_K, E, self.b_K))
        a = torch.einsum("mthi,mshi->mhts", q, k) / math.sqrt(self.D)
        mask = torch.ones(T, T, dtype=torch.bool, device=E.device).tril()
        return torch.softmax(a.masked_fill(~mask, float("-inf")), dim=-1)

    def _folded(self, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        r"""Head maps on :math:`\tilde s = (s, 1)`: :math:`W x + b = [W_{:, :d} + W_{:, d:},\ b]\,\tilde s` for
        :math:`x = (s, s)`; ``W`` ``(M, H D, D)``, ``b`` ``(M, H D)`` -> ``(M, H, D, d + 1)``."""
        M, H, D, d = self.n_models, self.heads, self.D, self.d
        return torch.cat([W[..., :d] + W[..., d:], b[..., None]], dim=-1).view(M, H, D, d + 1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        r"""Predictions ``(M, B, T, d)`` for states shared ``(B, T, d)``, per model ``(M, B, T, d)`` or per group of
        models ``(G, B, T, d)`` (see :meth:`icar.models.BatchedModel.input_groups`), in the form ``self.form``."""
        s = self.input_groups(states, 3, "states")
        if s.shape[-1] != self.d:
            raise ValueError(f"states must have last dimension d={self.d}; got {tuple(s.shape)}")
        contracted = self.form == "contracted" or (self.form == "auto" and self.heads >= CONTRACTED_MIN_HEADS)
        o = self._forward_contracted(s) if contracted else self._forward_scores(s)       # W_1 (attention) + b_1
        h = _layernorm(o, self.ln_w, self.ln_b)
        M, B, T = self.n_models, s.shape[1], s.shape[2]
        return torch.baddbmm(self.b_2[:, None], h, self.W_2.mT).view(M, B, T, self.d)

    def _forward_scores(self, s: torch.Tensor) -> torch.Tensor:
        r"""Pre-LayerNorm output :math:`W_1 \sum_h \sum_j \alpha^h_{tj} v^h_j + b_1` ``(M, B T, D)`` for states
        ``(G, B, T, d)``, through the scores of every head.

        Computed in the shared-input form: with :math:`\tilde s = (s, 1)` and the folded head maps
        :math:`\tilde Q_h, \tilde K_h, \tilde V_h` (``D x (d+1)``, see :meth:`_folded`), the token score is
        :math:`\tilde s_t^\top G_h \tilde s_j` with :math:`G_h = \tilde Q_h^\top \tilde K_h/\sqrt D` (``(d+1) x (d+1)``)
        and the head output :math:`\sum_j \alpha^h_{tj} v^h_j = \tilde V_h z_{t,h}` with
        :math:`z_{t,h} = \sum_j \alpha^h_{tj} \tilde s_j` (:func:`icar.models.bilinear_scores`,
        :func:`icar.models.bilinear_mix`). All heads (and all models reading the same states) then share one product
        per sequence, no ``q, k, v`` tensors are formed, and :math:`W_1 \sum_h \tilde V_h z_{t,h}` is one product
        over all positions, ``(B T, H (d+1)) @ (H (d+1), D)``.
        """
        M, H, D, d = self.n_models, self.heads, self.D, self.d
        Gn, B, T = s.shape[0], s.shape[1], s.shape[2]
        k = M // Gn                                                                      # models per group
        st = torch.cat([s, torch.ones_like(s[..., :1])], dim=-1)                         # (G, B, T, d+1)
        Q, K = self._folded(self.W_Q, self.b_Q), self._folded(self.W_K, self.b_K)
        G = (Q.mT @ K / math.sqrt(D)).reshape(Gn, k * H, d + 1, d + 1)                  # model m = g k + j
        P = self.positional_attention(T).reshape(Gn, 1, k * H, T, T).transpose(2, 3)     # (G, 1, T, kH, T)
        alpha = bilinear_scores(st, G) * P                                               # zero above the diagonal
        z = bilinear_mix(alpha, st).view(Gn, B, T, k, H * (d + 1))
        z = z.permute(0, 3, 1, 2, 4).reshape(M, B * T, H * (d + 1))                      # a view when k = 1
        V = self.W_1 @ self._folded(self.W_V, self.b_V).permute(0, 2, 1, 3).reshape(M, D, H * (d + 1))
        return torch.baddbmm(self.b_1[:, None], z, V.mT)                                 # W_1 sum_h V_h z_h + b_1

    def _forward_contracted(self, s: torch.Tensor) -> torch.Tensor:
        r"""The same pre-LayerNorm output ``(M, B T, D)`` with the heads summed out before the sequences are read.

        With :math:`U_h = W_1 \tilde V_h` (``D x (d+1)``) and :math:`G_h` as in :meth:`_forward_scores`,

        .. math:: o_{t,a} - b_{1,a} = \sum_h \sum_{j} P^h_{tj}\, (U_h \tilde s_j)_a\, \tilde s_j^\top G_h^\top \tilde s_t
                  = \sum_{e} \tilde s_{t,e} \sum_{j} \sum_{b \le c} \tilde s_{j,b} \tilde s_{j,c}\, C_{tj}[bc, a, e],

        with :math:`C_{tj}[bc, a, e] = \sum_h P^h_{tj}\, (X^h_{bcae} + X^h_{cbae})` for :math:`b < c`,
        :math:`\sum_h P^h_{tj} X^h_{bbae}` for :math:`b = c`, where :math:`X^h_{bcae} = (U_h)_{ab} (G_h)_{ec}`
        (the pair products of a state are symmetric in :math:`b, c`, so ``S = (d+1)(d+2)/2`` pairs suffice).
        :math:`C` (``T x T x S x (d+1) x D``, stored as ``[bc, e, a]``) does not depend on the data: one product
        over heads per model, ``(T^2, H) @ (H, S D (d+1))``. The data enter through the pair products of each state,
        and every model of a group reads them in one matrix product ``(B, T S) @ (T S, k T D (d+1))``. The work per
        sequence is ``~ T^2 S D (d+1)``, whatever the number of heads, and no ``H x T x T`` tensor per sequence is
        formed (the score form needs ``B H T^2`` numbers per model: about 0.7 GB at 64 heads, 50 tokens and batch
        1024).

        Causality makes :math:`C_{tj} = 0` for :math:`j > t`, so the product is taken in blocks of
        :data:`CONTRACTED_BLOCK` query positions ``t0 <= t < t1``, each reading the states ``j < t1`` only: about
        half the arithmetic of the full block-triangular product, and smaller blocks of :math:`C` (built block by
        block from the rows of :math:`P`).
        """
        M, H, D, d = self.n_models, self.heads, self.D, self.d
        Gn, B, T = s.shape[0], s.shape[1], s.shape[2]
        k, c = M // Gn, d + 1                                                            # models per group, width
        st = torch.cat([s, torch.ones_like(s[..., :1])], dim=-1)                         # (G, B, T, c)
        Q, K = self._folded(self.W_Q, self.b_Q), self._folded(self.W_K, self.b_K)
        G = Q.mT @ K / math.sqrt(D)                                                      # (M, H, c, c): [e, c']
        U = self.W_1[:, None] @ self._folded(self.W_V, self.b_V)                         # (M, H, D, c): [a, b]
        b_idx, c_idx = torch.triu_indices(c, c, device=s.device)                         # pairs b <= c'
        UG = torch.einsum("mhab,mhec->mhbcea", U, G)                                     # U_h (x) G_h: [b, c', e, a]
        half = torch.where(b_idx == c_idx, 0.5, 1.0).to(UG)                              # X_bc + X_cb for b < c, X_bb
        UG = (UG + UG.transpose(2, 3))[:, :, b_idx, c_idx] * half[:, None, None]         # (M, H, S, c, D)
        S = UG.shape[2]
        UG = UG.reshape(M, H, S * D * c)
        P = self.positional_attention(T)                                                 # (M, H, t, j)
        # (s~_j s~_j^T)_{bc}: the entries b and c' of each state picked by products with 0/1 matrices (exact, and
        # faster than an indexed gather on a CPU)
        pick_b, pick_c = (torch.eye(c, dtype=st.dtype, device=s.device)[:, idx] for idx in (b_idx, c_idx))
        pairs = ((st @ pick_b) * (st @ pick_c)).reshape(Gn, B, T * S)
        blocks = []
        for t0 in range(0, T, CONTRACTED_BLOCK):                                         # query positions t0..t1-1
            t1 = min(T, t0 + CONTRACTED_BLOCK)
            n = t1 - t0
            C = P[:, :, t0:t1, :t1].permute(0, 3, 2, 1).reshape(M, t1 * n, H) @ UG       # (M, j t, S D c), j < t1
            C = (C.view(Gn, k, t1, n, S, D * c).permute(0, 2, 4, 1, 3, 5)                # (G, j, S, k, t, D c)
                 .reshape(Gn, t1 * S, k * n * D * c))
            R = (pairs[..., : t1 * S] @ C).view(Gn, B, k, n, c, D)                       # sum over j < t1 and pairs
            # contract s~_t: a broadcast product and a sum over its c coordinates, with the output coordinate a
            # innermost (as an einsum, a batch of (kD x c) @ (c x 1) products whose backward is a batch of outer
            # products, 3x slower)
            blocks.append((R * st[:, :, None, t0:t1, :, None]).sum(-2).transpose(1, 2))  # (G, k, B, t, D)
        o = torch.cat(blocks, dim=3).reshape(M, B * T, D)
        return o + self.b_1[:, None]


# =============================================================================================== analysis
def kq_blocks(Q: torch.Tensor, d: int) -> torch.Tensor:
    r"""Frobenius norms of the 3x3 grid of ``d x d`` blocks of a key-query matrix ``(M, 3d, 3d)`` -> ``(M, 3, 3)``.

    Entry ``[a, b]``: key slot ``a``, query slot ``b`` (slots 0: answer, 1: :math:`s`, 2: previous :math:`s`).
    """
    require_positive_int(d, "d")
    require_shape(Q, "Q", (None, 3 * d, 3 * d), "(M, 3d, 3d)")
    require_floating(Q, "Q")
    require_finite(Q, "Q")
    return torch.linalg.matrix_norm(Q.reshape(Q.shape[0], 3, d, 3, d).transpose(2, 3))


def relative_distance_to_scalar(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Best scalar :math:`c = \mathrm{tr}(X)/d` and :math:`\|X - cI\|_F/\|X\|_F` for ``X`` ``(..., d, d)``."""
    require_floating(X, "X")
    require_finite(X, "X")
    if X.dim() < 2 or X.shape[-1] != X.shape[-2]:
        raise ValueError(f"X must be square, shape (..., d, d); got {tuple(X.shape)}")
    if bool((torch.linalg.matrix_norm(X) == 0).any()):
        raise ValueError("X must be non-zero (the relative distance divides by ||X||_F)")
    d = X.shape[-1]
    c = torch.diagonal(X, dim1=-2, dim2=-1).sum(-1) / d
    eye = torch.eye(d, dtype=X.dtype, device=X.device)
    dist = torch.linalg.matrix_norm(X - c[..., None, None] * eye) / torch.linalg.matrix_norm(X)
    return c, dist


def gd_features(states: torch.Tensor) -> torch.Tensor:
    r"""One-GD-step features :math:`f_t = \big(\sum_{j=2}^{t} s_j s_{j-1}^\top\big) s_t` for :math:`t = 1..T-1`.

    ``states`` ``(n, T, d)`` -> ``(n, T-1, d)`` (:math:`f_1 = 0`); :math:`\gamma f_t` is one gradient step from
    :math:`W_0 = 0` on :math:`\tfrac12\sum_{j\le t}\|s_j - W s_{j-1}\|^2` applied to :math:`s_t`. Vectorised with a
    cumulative sum over time.
    """
    require_ndim(states, "states", (3,), "(n, T, d)")
    require_real(states, "states")
    require_finite(states, "states")
    if states.shape[1] < 2:
        raise ValueError(f"states must hold at least 2 time steps; got shape {tuple(states.shape)}")
    outer = states[:, 1:, :, None] * states[:, :-1, None, :]  # s_{j} s_{j-1}^T for j = 2..T
    C = torch.cumsum(outer, dim=1)[:, :-1]  # sum_{j=2}^{t} for t = 2..T-1
    C = torch.cat([torch.zeros_like(C[:, :1]), C], dim=1)  # t = 1: empty sum
    return torch.einsum("ntij,ntj->nti", C, states[:, :-1])


class Baselines(NamedTuple):
    """Test MSE (mean over batch, positions, coordinates) of simple predictors, and the fitted steps."""

    zero: float
    copy: float
    gd_shared: float
    gd_per_position: float
    gd_normalized: float
    gamma_shared: float
    gamma_per_position: torch.Tensor


def one_step_gd_baselines(train_states: torch.Tensor, test_states: torch.Tensor) -> Baselines:
    r"""Predict 0, copy :math:`s_t`, one GD step :math:`\gamma f_t` (see :func:`gd_features`) with the step
    :math:`\gamma` fitted by least squares on ``train_states`` (shared over positions, or one per position), and a
    *normalised* GD step :math:`c_t f_t/\|f_t\|` (its length fitted per position, so the effective step size
    :math:`c_t/\|f_t\|` depends on the prompt, as after a LayerNorm).

    Errors are measured on ``test_states``; both ``(n, T, d)`` real.
    """
    for name, x in (("train_states", train_states), ("test_states", test_states)):
        require_ndim(x, name, (3,), "(n, T, d)")
        require_real(x, name)
    F, Y = gd_features(train_states), train_states[:, 1:]
    num, den = (F * Y).sum((0, 2)), (F * F).sum((0, 2))  # per position
    g_pos = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))
    g_sh = num.sum() / den.sum()
    Ft, Yt = gd_features(test_states), test_states[:, 1:]
    mse = lambda P: (P - Yt).pow(2).mean().item()  # noqa: E731

    def unit(F: torch.Tensor) -> torch.Tensor:
        n = torch.linalg.vector_norm(F, dim=-1, keepdim=True)
        return torch.where(n > 0, F / n.clamp_min(1e-300), torch.zeros_like(F))

    U, Ut = unit(F), unit(Ft)
    c_pos = (U * Y).sum((0, 2)) / (U * U).sum((0, 2)).clamp_min(1e-300)
    return Baselines(mse(torch.zeros_like(Yt)), mse(test_states[:, :-1]), mse(g_sh * Ft),
                     mse(g_pos[None, :, None] * Ft), mse(c_pos[None, :, None] * Ut), g_sh.item(), g_pos)


def position_mass(attn: torch.Tensor, position: int, first_row: int) -> torch.Tensor:
    r"""Average attention mass on key ``position`` (0-based) over query rows ``t >= first_row``.

    ``attn`` ``(..., T, T)`` with rows summing to 1 -> ``(...)``. Also see :func:`uniform_mass` for the mass a
    uniform causal attention would give.
    """
    require_real(attn, "attn")
    require_finite(attn, "attn")
    if attn.dim() < 2:
        raise ValueError(f"attn must have shape (..., T, T); got {tuple(attn.shape)}")
    T = attn.shape[-1]
    for k, name in ((position, "position"), (first_row, "first_row")):
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"{name} must be an integer; got {k!r}")
    if not 0 <= position < first_row < T:
        raise ValueError(f"position and first_row must satisfy 0 <= position < first_row < T={T}; got "
                         f"position={position}, first_row={first_row}")
    return attn[..., first_row:, position].mean(-1)


def uniform_mass(T: int, first_row: int) -> float:
    r"""Mass a uniform causal attention puts on one fixed earlier key, averaged over rows ``t >= first_row``:
    :math:`\mathrm{mean}_t\, 1/(t+1)` (0-based rows)."""
    require_positive_int(T, "T")
    if isinstance(first_row, bool) or not isinstance(first_row, int) or not 0 <= first_row < T:
        raise ValueError(f"first_row must be an integer in 0..T-1 = 0..{T - 1}; got {first_row!r}")
    return sum(1.0 / (t + 1) for t in range(first_row, T)) / (T - first_row)


# =============================================================================================== trigonometric identity
def trig_prediction(states: torch.Tensor) -> torch.Tensor:
    r"""The two-term predictor :math:`\hat s_{t+1} = \frac{2\langle s_{t-1}, s_t\rangle}{\|s_{t-1}\|^2} s_t - s_{t-1}`,
    for :math:`t = 2..T-1`. ``states`` ``(n, T, d)`` real -> ``(n, T-2, d)``.

    Exact for a plane rotation :math:`W = R_\theta` (then :math:`W + W^\top = 2\cos\theta\, I`); not for a general
    orthogonal :math:`W`.
    """
    require_ndim(states, "states", (3,), "(n, T, d)")
    require_real(states, "states")
    require_finite(states, "states")
    if states.shape[1] < 3:
        raise ValueError(f"states must hold T >= 3 time steps (the two-term predictor needs s_(t-1), s_t); got shape "
                         f"{tuple(states.shape)}")
    prev, cur = states[:, :-2], states[:, 1:-1]
    a = 2 * (prev * cur).sum(-1, keepdim=True) / (prev * prev).sum(-1, keepdim=True)
    return a * cur - prev


# =============================================================================================== PE-only model (d = 1)
def pe_sequences(mus: torch.Tensor, n: int, T: int, *, seed: Seed, device: DeviceLike = "cpu") -> torch.Tensor:
    r"""Complex scalar sequences :math:`s_t = \lambda^{t-1}` (:math:`s_1 = 1`), :math:`\lambda = e^{i\phi}`,
    :math:`\phi \sim U[0, 2\pi/\mu)`, ``n`` per value of ``mus`` ``(M,)``. Returns ``(M, n, T, 1)`` complex128."""
    require_ndim(mus, "mus", (1,), "(M,)")
    require_real(mus, "mus")
    require_finite(mus, "mus")
    if (mus <= 0).any():
        raise ValueError(f"every mu must be positive; got {mus.tolist()}")
    require_positive_int(n, "n")
    require_positive_int(T, "T")
    g = make_generator(seed)
    phi = 2 * math.pi * torch.rand(mus.shape[0], n, generator=g, dtype=torch.float64) / mus.double()[:, None]
    t = torch.arange(T, dtype=torch.float64)
    s = torch.polar(torch.ones(mus.shape[0], n, T, dtype=torch.float64), phi[..., None] * t)
    return s[..., None].to(resolve_device(device))


class PEOnly(BatchedModel):
    r"""Positional-encoding-only attention, :math:`d = 1` complex, query = previous token:

    .. math:: \hat s_{t+1} = \sum_{j=1}^{t} p_{t,j}\, \overline{s_{t-1}}\, s_j\, s_j, \qquad t = 2..T-1.

    Only ``P`` ``(M, T, T)`` (real, lower triangular; row ``t-1`` holds :math:`p_{t,\cdot}`) is learned; it starts at
    0. States ``(B, T, 1)`` or ``(M, B, T, 1)`` complex -> predictions of :math:`s_3..s_T`, ``(M, B, T-2, 1)``.
    """

    def __init__(self, n_models: int, T: int, *, dtype: torch.dtype = torch.float64):
        super().__init__(n_models)
        self.T = require_positive_int(T, "T")
        if T < 3:
            raise ValueError(f"T must be >= 3 (a row needs a query s_(t-1) and a target s_(t+1)); got {T}")
        self.P = nn.Parameter(torch.zeros(n_models, T, T, dtype=dtype))

    def weights(self) -> torch.Tensor:
        """The used part of ``P``: rows :math:`t = 2..T-1`, entries :math:`j \\le t`, ``(M, T-2, T)``."""
        mask = torch.ones(self.T, self.T, dtype=torch.bool, device=self.P.device).tril()
        return (self.P * mask)[:, 1:-1]

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        s = self.per_model(states, 3, "states")
        if s.shape[-1] != 1 or s.shape[-2] != self.T or not s.is_complex():
            raise ValueError(f"states must be complex with shape (B, T={self.T}, 1) or (M, B, T, 1); got "
                             f"{tuple(s.shape)} {s.dtype}")
        s = s[..., 0]
        feats = s.conj()[:, :, :-2, None] * (s * s)[:, :, None, :]  # (M, B, t=2..T-1, j): conj(s_{t-1}) s_j^2
        return torch.einsum("mtj,mbtj->mbt", self.weights().to(s.dtype), feats)[..., None]


def pe_targets(states: torch.Tensor) -> torch.Tensor:
    """Targets :math:`s_3..s_T` of :class:`PEOnly`: ``(..., T, 1)`` -> ``(..., T-2, 1)``."""
    require_ndim(states, "states", (3, 4), "(B, T, 1) or (M, B, T, 1)")
    if states.shape[-2] < 3:
        raise ValueError(f"states must hold T >= 3 time steps; got shape {tuple(states.shape)}")
    return states[..., 2:, :]


def pe_gram(mus: torch.Tensor, t: int) -> torch.Tensor:
    r"""Population Gram matrix of the PE-only features of row ``t``: :math:`f_j = \lambda^{2(j-t)}`, :math:`j=1..t`,

    .. math:: G_{jk} = \mathrm{Re}\,E\,\lambda^{2(j-k)} = \mathrm{sinc}\big(4\pi (j-k)/\mu\big),
              \quad \mathrm{sinc}(x) = \sin x / x .

    ``mus`` ``(M,)`` -> ``(M, t, t)`` float64. :math:`G = I` when :math:`2/\mu` is an integer (e.g. :math:`\mu = 1`).
    """
    require_ndim(mus, "mus", (1,), "(M,)")
    require_real(mus, "mus")
    require_finite(mus, "mus")
    if not bool((mus > 0).all()):
        raise ValueError(f"every mu must be positive; got {mus.tolist()}")
    require_positive_int(t, "t")
    m = torch.arange(t, dtype=torch.float64)
    diff = (m[:, None] - m[None, :])[None]
    x = 4 * math.pi * diff / mus.double()[:, None, None]
    return torch.where(diff == 0, torch.ones_like(x), torch.sin(x) / torch.where(diff == 0, torch.ones_like(x), x))


def pe_empirical_gram(states: torch.Tensor, t: int) -> torch.Tensor:
    r"""Empirical :math:`G_{jk} = \mathrm{Re}\,\mathrm{mean}_b\, f_j \bar f_k` of row ``t`` from ``states``
    ``(M, n, T, 1)`` (features :math:`f_j = \overline{s_{t-1}} s_j^2 / s_{t+1}`). Returns ``(M, t, t)``."""
    require_ndim(states, "states", (4,), "(M, n, T, 1)")
    require_finite(states, "states")
    if not states.is_complex():
        raise TypeError(f"states must be complex (from pe_sequences); got dtype {states.dtype}")
    require_positive_int(t, "t")
    if not 2 <= t <= states.shape[2] - 1:
        raise ValueError(f"t must be a row in 2..T-1 = 2..{states.shape[2] - 1}; got {t}")
    s = states[..., 0]
    f = s[:, :, t - 2, None].conj() * s[:, :, :t] ** 2 / s[:, :, t, None]
    return torch.einsum("mbj,mbk->mjk", f, f.conj()).real / s.shape[1]


def pe_gd_closed_form(G: torch.Tensor, alpha: float, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gradient descent from :math:`p = 0` on the row loss :math:`\ell(p) = (p - e_t)^\top G (p - e_t)`, in closed form.

    With gradient step :math:`p \leftarrow p - \tfrac{\alpha}{2}\nabla\ell = p - \alpha G(p - e_t)`,

    .. math:: p^{(k)} = \big(I - (I - \alpha G)^k\big) e_t = V\big(1 - (1-\alpha\Lambda)^k\big)V^\top e_t, \quad
              \ell^{(k)} = \sum_i \Lambda_i (1-\alpha\Lambda_i)^{2k} (V^\top e_t)_i^2 .

    ``G`` ``(M, t, t)`` symmetric PSD, ``steps`` ``(K,)`` integers. Returns ``p`` ``(K, M, t)`` and ``loss`` ``(K, M)``.
    """
    require_ndim(G, "G", (3,), "(M, t, t)")
    require_real(G, "G")
    require_finite(G, "G")
    require_positive(alpha, "alpha")
    require_ndim(steps, "steps", (1,), "(K,)")
    if steps.is_floating_point() or steps.is_complex() or bool((steps < 0).any()):
        raise ValueError(f"steps must be non-negative integers; got {steps.tolist()[:6]} ({steps.dtype})")
    lam, V = torch.linalg.eigh(G)
    u = V[..., -1, :]  # V^T e_t, (M, t)
    k = steps.to(torch.float64)[:, None, None]
    decay = (1 - alpha * lam)[None] ** k  # (K, M, t)
    p = torch.einsum("mji,kmi->kmj", V, (1 - decay) * u[None])
    loss = (lam[None] * decay**2 * u[None] ** 2).sum(-1)
    return p, loss


# =============================================================================================== token windows (fig. 4)
def window_ar_errors(windows: torch.Tensor) -> torch.Tensor:
    r"""AR(1) fit of each window and the MSE of its roll-out.

    For a window :math:`x_1..x_L` (rows of ``windows`` ``(n, L, d)``), :math:`\hat A = X_+ X_-^{+}` is the
    minimum-norm least-squares solution of :math:`\min_A \sum_{i<L}\|x_{i+1} - A x_i\|^2`; the roll-out
    :math:`\hat x_k = \hat A^{k-1} x_1` is compared with the window: mean over the :math:`L` tokens and :math:`d`
    coordinates. Returns ``(n,)``.
    """
    require_ndim(windows, "windows", (3,), "(n, L, d)")
    require_real(windows, "windows")
    require_finite(windows, "windows")
    if windows.shape[1] < 2:
        raise ValueError(f"windows must hold at least 2 tokens each (one AR pair); got shape {tuple(windows.shape)}")
    Xm, Xp = windows[:, :-1].mT, windows[:, 1:].mT  # (n, d, L-1)
    A = Xp @ torch.linalg.pinv(Xm)  # (n, d, d)
    L = windows.shape[1]
    roll = torch.einsum("nkij,nj->nki", matrix_powers(A, L), windows[:, 0])
    return (roll - windows).pow(2).mean((1, 2))


def window_has_repeat(ids: torch.Tensor) -> torch.Tensor:
    """Whether a window of token ids ``(n, L)`` contains a repeated id among its first ``L-1`` tokens: ``(n,)`` bool."""
    require_ndim(ids, "ids", (2,), "(n, L)")
    if ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"ids must be an integer tensor of token ids; got dtype {ids.dtype}")
    x = ids[:, :-1]
    return (x[:, :, None] == x[:, None, :]).triu(1).any(-1).any(-1)


def make_windows(ids: torch.Tensor, L: int) -> torch.Tensor:
    """Cut a token-id stream ``(N,)`` into ``N // L`` non-overlapping windows ``(N // L, L)``."""
    require_ndim(ids, "ids", (1,), "(N,)")
    if ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"ids must be an integer tensor of token ids; got dtype {ids.dtype}")
    require_positive_int(L, "L")
    n = ids.shape[0] // L
    if n == 0:
        raise ValueError(f"the stream has {ids.shape[0]} tokens, fewer than one window of {L}")
    return ids[: n * L].reshape(n, L)


class Corpus(NamedTuple):
    """A token stream with unit-norm embeddings: ``ids`` ``(N,)``, ``vectors`` ``(V, d)``, ``words`` (length V)."""

    ids: torch.Tensor
    vectors: torch.Tensor
    words: list[str]


def load_polarity_corpus() -> Corpus:
    r"""The movie-review sentences and the 100-d fastText vectors trained on them that ship with gensim's test data
    (``pang_lee_polarity.cor``, ``pang_lee_polarity_fasttext.vec``).

    Tokens are the whitespace-separated words (the ``__label__`` tags dropped); each is replaced by its vector,
    normalised to unit norm (as the paper does with GPT-2 embeddings). Needs the ``gensim`` package.
    """
    try:
        from gensim.models import KeyedVectors
        from gensim.test.utils import datapath
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("load_polarity_corpus needs the gensim package (pip install gensim); it ships the corpus "
                          "and the word vectors") from err
    kv = KeyedVectors.load_word2vec_format(datapath("pang_lee_polarity_fasttext.vec"), encoding="latin-1")
    with open(datapath("pang_lee_polarity.cor"), encoding="latin-1") as fh:
        tokens = [w for line in fh for w in line.split() if not w.startswith("__label__")]
    missing = sorted({w for w in tokens if w not in kv.key_to_index})
    if missing:
        raise ValueError(f"{len(missing)} corpus words have no vector, e.g. {missing[:5]}")
    ids = torch.tensor([kv.key_to_index[w] for w in tokens], dtype=torch.long)
    vec = torch.from_numpy(kv.vectors).to(torch.float64)
    vec = vec / torch.linalg.vector_norm(vec, dim=-1, keepdim=True)
    return Corpus(ids, vec, list(kv.index_to_key))


def random_unit_vectors(V: int, d: int, *, seed: Seed) -> torch.Tensor:
    """``V`` i.i.d. uniform unit vectors in :math:`\\mathbb R^d`, ``(V, d)`` float64 (a synthetic vocabulary)."""
    require_positive_int(V, "V")
    require_positive_int(d, "d")
    x = torch.randn(V, d, generator=make_generator(seed), dtype=torch.float64)
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def check_orthogonal_contexts(W: torch.Tensor) -> torch.Tensor:
    """Validate a batch of real orthogonal contexts ``(n, d, d)`` (used by the chapter's helpers)."""
    require_ndim(W, "W", (3,), "(n, d, d)")
    require_real(W, "W")
    return require_orthogonal(W, "W")  # at the tolerance of W's own dtype (see "dtype policy")


# =============================================================================================== training helpers
def minibatches(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int):
    """A batch function for :func:`icar.train.train` that draws ``batch_size`` sequences (with replacement) from a
    fixed training set, with the trainer's seeded generator. ``inputs``/``targets``: shared ``(n, T, .)`` or per
    model ``(M, n, T, .)``; the sequence axis is the third from the end."""
    require_positive_int(batch_size, "batch_size")
    require_ndim(inputs, "inputs", (3, 4), "(n, T, D) or (M, n, T, D)")
    require_ndim(targets, "targets", (3, 4), "(n, T, d) or (M, n, T, d)")
    require_finite(inputs, "inputs")
    require_finite(targets, "targets")
    n = inputs.shape[-3]
    if targets.shape[-3] != n:
        raise ValueError(f"inputs hold {n} sequences but targets hold {targets.shape[-3]}")

    def batch_fn(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(n, (batch_size,), generator=gen).to(inputs.device)
        return inputs.index_select(inputs.dim() - 3, idx), targets.index_select(targets.dim() - 3, idx)

    return batch_fn


def per_position_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each model at each position: pred ``(M, B, T, d)``, target ``(B, T, d)`` or
    ``(M, B, T, d)`` -> ``(M, T)``."""
    require_ndim(pred, "pred", (4,), "(M, B, T, d)")
    require_floating(pred, "pred")
    require_floating(target, "target")
    if target.dim() == 3:
        target = target.unsqueeze(0)
    if pred.shape[1:] != target.shape[1:]:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} do not match")
    return (pred - target).abs().pow(2).mean((1, 3))


def mse_standard_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Monte-Carlo standard error of the test MSE of each model (spread over the test sequences): ``(M,)``."""
    require_ndim(pred, "pred", (4,), "(M, B, T, d)")
    require_floating(pred, "pred")
    require_floating(target, "target")
    if pred.shape[1] < 2:
        raise ValueError(f"pred must hold B >= 2 test sequences for a standard error; got {tuple(pred.shape)}")
    if target.dim() == 3:
        target = target.unsqueeze(0)
    per_seq = (pred - target).abs().pow(2).mean((2, 3))  # (M, B)
    return per_seq.std(1) / math.sqrt(per_seq.shape[1])


def pe_early_stopping(mus: torch.Tensor, T: int, *, lr: float = 0.5, threshold: float = 1e-3,
                      max_steps: int = 3000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Gradient descent from :math:`P = 0` on the population loss of :class:`PEOnly` (mean over the rows
    :math:`t = 2..T-1`, step ``lr``), stopped at the first step where the loss is below ``threshold``.

    Returns ``kstar`` ``(M,)`` (``max_steps`` if never reached), the stopped matrix ``P`` ``(M, T-2, T)`` (row
    :math:`t-2` holds :math:`p_{t, 1..t}`, zero-padded) and the loss curve ``(max_steps+1, M)``.
    """
    require_ndim(mus, "mus", (1,), "(M,)")
    require_positive_int(max_steps, "max_steps")
    require_positive_int(T, "T")
    if T < 3:
        raise ValueError(f"T must be >= 3 (rows t = 2..T-1); got {T}")
    require_positive(lr, "lr")
    require_positive(threshold, "threshold")
    alpha = 2 * lr / (T - 2)
    steps = torch.arange(max_steps + 1)
    losses = torch.stack([pe_gd_closed_form(pe_gram(mus, t), alpha, steps)[1] for t in range(2, T)]).mean(0)
    below = losses < threshold
    kstar = torch.where(below.any(0), below.double().argmax(0), torch.full_like(below[0], max_steps, dtype=torch.long))
    P = torch.zeros(mus.shape[0], T - 2, T, dtype=torch.float64)
    for t in range(2, T):  # one small eigendecomposition per row
        p, _ = pe_gd_closed_form(pe_gram(mus, t), alpha, kstar)
        P[:, t - 2, :t] = p[torch.arange(mus.shape[0]), torch.arange(mus.shape[0])]
    return kstar, P, losses
