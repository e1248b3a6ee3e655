r"""An explicit attention Transformer that runs causal kernel descent (a course construction following
Sander & Peyré, 2025, arXiv 2410.03011, whose Figure 1 describes a first layer :math:`\mathcal T_0`, ``n`` identical
residual layers :math:`\mathcal T` and a projector :math:`P`).

Tokens have width :math:`D = 4d + 2 + L` (``L = max_len + 1`` positions, position 0 is a zero start token)::

    [ x_t (d) | x_{t-1} (d) | u_t (d) | v_t (d) | 1 | m_t | one-hot position p_t (L) ]

with :math:`m_t = 1` for :math:`t \ge 2` (the positions that own a pair :math:`(x_{t-1}, x_t)`), else 0.

* :math:`\mathcal T_0`: one softmax head, query :math:`c\,p_{t-1}`, key :math:`p_s`, value :math:`x_s` written into the
  :math:`x_{t-1}` slot (a previous-token head; the copy error is at most about :math:`t e^{-c}`).
* :math:`\mathcal T` (the same weights in every layer, residual, attention only): head 1 has query :math:`\beta x_t`,
  head 2 query :math:`\beta x_{t-1}`; both have key :math:`x_{s-1}` and value :math:`\eta (x_s - v_s)`; head 1 writes
  into the ``u`` slot and head 2 into the ``v`` slot. For the exponential and softmax kernels a key coordinate
  :math:`\lambda (m_s - 1) + \tfrac{\lambda}{2}[s = 0]` multiplied by the query's constant 1 removes the keys
  without a pair (relative weight at most :math:`e^{-\lambda/2}`); the start token, whose value is 0, keeps a
  softmax row from being empty at :math:`t = 1`.
* :math:`P`: read the ``u`` slot.

The score of a head is :math:`a_{ts} = \phi(\langle W_Q e_t, W_K e_s\rangle)` for :math:`s \le t`, with
:math:`\phi(z) = z` (linear attention), :math:`e^{z}` (exponential attention) or the causal softmax. All parameters
carry the leading model dimension ``M`` (:class:`icar.models.BatchedModel`), so ``M`` step sizes or seeds run at once.
"""
from __future__ import annotations

import torch
from torch import nn

from .models import BatchedModel, bilinear_mix, bilinear_scores
from .runtime import make_generator
from .validate import (
    require_dtype,
    require_finite,
    require_min_length,
    require_nonnegative,
    require_positive,
    require_positive_int,
    require_real,
    require_step,
)

ATTENTIONS = ("linear", "exp", "softmax")


class KernelDescentTransformer(BatchedModel):
    """``M`` attention-only Transformers of depth ``1 + n_layers`` on augmented tokens (see the module docstring).

    ``init="construct"`` sets the weights of the causal-kernel-descent construction with step ``eta`` (a number or
    one per model, ``(M,)``) and inverse temperature ``beta``; ``init="random"`` draws the CKD-layer weights
    with standard deviation ``init_scale`` (queries and keys) and zero values, for training. The first layer
    :math:`\\mathcal T_0` is always the fixed previous-token head (stored as buffers).

    Input states ``(B, T, d)`` (shared) or ``(M, B, T, d)``; output ``(M, B, T, d)``: position ``t`` estimates
    :math:`x_{t+1}`.
    """

    def __init__(self, n_models: int, d: int, max_len: int, n_layers: int, *, attention: str = "linear",
                 init: str = "construct", eta: float | torch.Tensor = 1.0, beta: float = 1.0, copy_scale: float = 40.0,
                 mask_bias: float = 80.0, init_scale: float = 0.05, seed: int | torch.Generator = 0,
                 dtype: torch.dtype = torch.float64):
        super().__init__(n_models)
        self.d = require_positive_int(d, "d")
        self.max_len = require_positive_int(max_len, "max_len")
        self.n_layers = require_positive_int(n_layers, "n_layers")
        require_dtype(dtype, complex_ok=False)
        require_positive(beta, "beta (inverse temperature)")
        require_positive(copy_scale, "copy_scale")
        require_nonnegative(mask_bias, "mask_bias")
        require_nonnegative(init_scale, "init_scale")
        require_step(eta, "eta (step size)")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}; got {attention!r}")
        if init not in ("construct", "random"):
            raise ValueError(f"init must be 'construct' or 'random'; got {init!r}")
        self.attention = attention
        M, L = n_models, max_len + 1
        D = 4 * d + 2 + L
        self.D = D
        self.sl = {"x": slice(0, d), "xp": slice(d, 2 * d), "u": slice(2 * d, 3 * d), "v": slice(3 * d, 4 * d)}
        self.one, self.m, self.pos = 4 * d, 4 * d + 1, 4 * d + 2

        # first layer T0: previous-token head on one-hot positions (fixed)
        q0 = torch.zeros(D, D, dtype=dtype)
        k0 = torch.zeros(D, D, dtype=dtype)
        v0 = torch.zeros(D, D, dtype=dtype)
        idx = torch.arange(1, L)
        q0[self.pos + idx - 1, self.pos + idx] = copy_scale  # query c p_{t-1}
        k0[self.pos + torch.arange(L), self.pos + torch.arange(L)] = 1.0  # key p_s
        v0[self.sl["xp"], self.sl["x"]] = torch.eye(d, dtype=dtype)  # value x_s -> x_{t-1} slot
        self.register_buffer("Wq0", q0.expand(M, D, D).clone())
        self.register_buffer("Wk0", k0.expand(M, D, D).clone())
        self.register_buffer("Wv0", v0.expand(M, D, D).clone())

        # the CKD layer reads the content slots, the constant, the pair flag and the start-token flag (C = 4d + 3
        # coordinates) and writes the content slots (4d): its weights are (M, 2 heads, 4d, C)
        C = 4 * d + 3
        self.C = C
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
            raise ValueError(f"beta (inverse temperature) must be a positive number; got {beta!r}")
        if init == "construct":
            eta_t = torch.as_tensor(eta, dtype=dtype).flatten()
            if not bool((eta_t > 0).all()):
                raise ValueError(f"eta (step size) must be positive; got {eta_t.tolist()}")
            if eta_t.numel() == 1:
                eta_t = eta_t.expand(M)
            if eta_t.numel() != M:
                raise ValueError(f"eta must be one number or one per model (M={M}); got {eta_t.numel()} values")
            bias = 0.0 if attention == "linear" else mask_bias
            Wq = torch.zeros(M, 2, 4 * d, C, dtype=dtype)
            Wk = torch.zeros(M, 2, 4 * d, C, dtype=dtype)
            Wv = torch.zeros(M, 2, 4 * d, C, dtype=dtype)
            eye = torch.eye(d, dtype=dtype)
            for h, (src, dst) in enumerate([("x", "u"), ("xp", "v")]):
                Wq[:, h, :d, self.sl[src]] = beta * eye
                Wq[:, h, d, self.one] = 1.0
                Wk[:, h, :d, self.sl["xp"]] = eye
                Wk[:, h, d, self.m] = bias
                Wk[:, h, d, self.one] = -bias
                Wk[:, h, d, self.pos] = bias / 2  # the start token (value 0) is a sink: a softmax row never empties
                Wv[:, h, self.sl[dst], self.sl["x"]] = eta_t[:, None, None] * eye
                Wv[:, h, self.sl[dst], self.sl["v"]] = -eta_t[:, None, None] * eye
        else:
            g = make_generator(seed)
            Wq, Wk = (init_scale * torch.randn(M, 2, 4 * d, C, generator=g, dtype=torch.float64).to(dtype)
                      for _ in range(2))
            Wv = torch.zeros(M, 2, 4 * d, C, dtype=dtype)  # zero values: the untrained model predicts 0
        self.Wq = nn.Parameter(Wq)
        self.Wk = nn.Parameter(Wk)
        self.Wv = nn.Parameter(Wv)

    # ------------------------------------------------------------------------------------------- pieces
    def embed(self, states: torch.Tensor) -> torch.Tensor:
        """Tokens of layer 0: ``(M, B, T, d)`` -> ``(M, B, T+1, D)`` with the zero start token at position 0."""
        M, B, T, d = states.shape
        e = states.new_zeros(M, B, T + 1, self.D)
        e[:, :, 1:, self.sl["x"]] = states
        e[..., self.one] = 1.0
        e[:, :, 2:, self.m] = 1.0
        e[..., self.pos: self.pos + T + 1] = torch.eye(T + 1, dtype=states.dtype, device=states.device)
        return e

    def _attend(self, e: torch.Tensor, Wq: torch.Tensor, Wk: torch.Tensor, Wv: torch.Tensor, kind: str) -> torch.Tensor:
        r"""Sum over heads of causal attention outputs: tokens ``e`` ``(G, B, N, C)`` (``G`` dividing ``M``: model
        ``m`` reads group ``m // (M/G)``; ``G = 1`` for tokens shared by all models), weights ``W*``
        ``(M, H, out, C)`` -> ``(M, B, N, out)``.

        Queries, keys and values all read the same tokens, so the score of head ``h`` is
        :math:`\langle W_Q^h e_t, W_K^h e_s\rangle = e_t^\top G_h e_s` with :math:`G_h = W_Q^{h\top} W_K^h`, and
        :math:`\sum_s a^h_{ts} W_V^h e_s = W_V^h z_{t,h}`, :math:`z_{t,h} = \sum_s a^h_{ts} e_s`
        (:func:`icar.models.bilinear_scores`, :func:`icar.models.bilinear_mix`): the heads of all models that read
        the same tokens share one product per sequence, no ``q, k, v`` copies are made, and the value maps of all
        heads are one product over positions.
        """
        M, H, out, C = Wq.shape
        Gn, B, N = e.shape[0], e.shape[1], e.shape[2]
        k = M // Gn                                                           # models per group
        s = bilinear_scores(e, (Wq.mT @ Wk).reshape(Gn, k * H, C, C))         # (G, B, N, k H, N): [t, (j, h), s]
        causal = torch.ones(N, N, dtype=e.dtype, device=e.device).tril()[:, None, :]      # (t, 1, s): 1 for s <= t
        # a product and a sum with log(causal) = 0 / -inf, not masked_fill: fast broadcasts, forward and backward
        if kind == "linear":
            a = s * causal
        elif kind == "exp":
            a = torch.exp(s + torch.log(causal))
        else:
            a = torch.softmax(s + torch.log(causal), dim=-1)
        z = bilinear_mix(a, e).view(Gn, B, N, k, H * C)
        z = z.permute(0, 3, 1, 2, 4).reshape(M, B * N, H * C)                 # a view when k = 1
        V = Wv.permute(0, 2, 1, 3).reshape(M, out, H * C)                    # [W_V^1 ... W_V^H]
        return (z @ V.mT).view(M, B, N, out)

    def first_layer(self, states: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathcal T_0`: augmented tokens ``(G, B, T+1, D)`` (``x_{t-1}`` copied by the previous-token head),
        for states ``(G, B, T, d)`` with ``G = M`` or ``G = 1`` (the fixed layer is the same for every model)."""
        e = self.embed(states)
        G = states.shape[0]
        return e + self._attend(e, self.Wq0[:G, None], self.Wk0[:G, None], self.Wv0[:G, None], "softmax")

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        x = self.per_model(states, 3, "states")
        require_real(x, "states")
        if x.shape[-1] != self.d:
            raise ValueError(f"states must have last dimension d={self.d}; got {tuple(x.shape)}")
        if x.shape[2] > self.max_len:
            raise ValueError(f"the prompt has T={x.shape[2]} tokens but the model was built for max_len={self.max_len}")
        require_min_length(x, "states", 2, 2, "tokens (T >= 2: the first pair is (x_1, x_2))")
        # shared prompts: the fixed first layer is computed once, and the first CKD layer reads one copy of its output
        # for all models (a group of M, see _attend); the content differs per model from then on
        e = self.first_layer(states[None]) if states.dim() == 3 else self.first_layer(x)
        content, rest = e[..., : 4 * self.d], e[..., 4 * self.d: self.C]
        for _ in range(self.n_layers):
            tokens = torch.cat([content, rest.expand(content.shape[0], -1, -1, -1)], -1)
            content = content + self._attend(tokens, self.Wq, self.Wk, self.Wv, self.attention)
        return content[:, :, 1:, self.sl["u"]]  # projector P
