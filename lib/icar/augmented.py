r"""Augmented tokens and one-layer linear attention: the layer that takes one gradient step (Chapter 2).

Following Sander et al. (2024, arXiv 2402.05787), each state is fed together with its predecessor and an empty
*answer slot*:

.. math:: e_t = (0_d,\ s_t,\ s_{t-1}) \in \mathbb{F}^{3d}, \qquad s_0 := 0,

with :math:`\mathbb F = \mathbb R` or :math:`\mathbb C`. One causal linear-attention layer (no softmax, no
normalisation) with value matrix :math:`W_V` and merged key-query matrix :math:`W_{KQ} = W_K^* W_Q` (both
:math:`3d \times 3d`) maps the prefix :math:`e_{1:t}` to

.. math:: \mathrm{out}_t = e_t + \sum_{j \le t} W_V e_j\, (e_j^* W_{KQ}\, e_t)
                         = e_t + W_V F_t W_{KQ}\, e_t, \qquad F_t = \sum_{j\le t} e_j e_j^*,

and the prediction of :math:`s_{t+1}` is the answer slot of :math:`\mathrm{out}_t` (its first ``d`` entries).
The second form is how the layer is computed here: the prefix Gram matrices :math:`F_t` are a cumulative sum
over time, shared by all models, so there is neither a loop over time nor a ``T x T`` score matrix.

Slots are indexed ``0`` (answer), ``1`` (:math:`s_t`), ``2`` (:math:`s_{t-1}`); block ``(a, b)`` of a
``3d x 3d`` matrix is ``[a*d:(a+1)*d, b*d:(b+1)*d]``. For :math:`W_{KQ}` the row slot is the *key* slot and the
column slot the *query* slot. The structure that implements one gradient step is

.. math:: [W_V]_{0,1} = b\, I_d, \qquad [W_{KQ}]_{2,1} = a\, I_d, \qquad \text{every other live block } 0,

which gives :math:`\hat s_{t+1} = ab \sum_{j \le t} s_j s_{j-1}^* s_t = \Gamma_t s_t` with
:math:`\Gamma_t = \eta\, C_t`, :math:`C_t = \sum_{i<t} s_{i+1} s_i^*` and :math:`\eta = ab`: one gradient step from
0 on :math:`\tfrac12\sum_{i<t}\|s_{i+1} - W s_i\|^2` (see :func:`icar.estimators.gd_estimates`).

*Dead* entries: the answer slot of every input token is 0, so the columns of :math:`W_V` and the rows and columns
of :math:`W_{KQ}` that read slot 0 never touch the prediction, and the rows of :math:`W_V` that write into slots 1
and 2 are never read by the loss. They get no gradient; :func:`live_mask` marks the others.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .data import sample_ar
from .models import BatchedModel
from .runtime import DeviceLike, make_generator, resolve_device
from .theory import Moments, check_moments, gd_error
from .train import per_model_sum_mse
from .tokens import augment as _augment
from .validate import (
    require_dtype,
    require_finite,
    require_floating,
    require_int,
    require_ndim,
    require_nonnegative,
    require_number,
    require_positive,
    require_positive_int,
    require_real,
    require_shape,
    require_step,
)

SLOTS = ("answer", "s_t", "s_{t-1}")


# ----------------------------------------------------------------------------------------------- tokens
def augment(states: torch.Tensor) -> torch.Tensor:
    r"""Augmented tokens :math:`e_t = (0, s_t, s_{t-1})` with :math:`s_0 = 0`.

    ``states`` ``(n, T, d)`` (real or complex; ``states[:, t-1]`` is :math:`s_t`) -> tokens ``(n, T, 3d)``.
    """
    require_ndim(states, "states", (3,), "(n, T, d)")
    require_floating(states, "states")
    require_finite(states, "states")
    return _augment(states)


def prefix_gram(tokens: torch.Tensor) -> torch.Tensor:
    r""":math:`F_t = \sum_{j \le t} e_j e_j^*` for every prefix: ``(..., T, D)`` -> ``(..., T, D, D)`` (a cumsum)."""
    require_floating(tokens, "tokens")
    require_finite(tokens, "tokens")
    if tokens.dim() < 2:
        raise ValueError(f"tokens must have shape (..., T, D); got {tuple(tokens.shape)}")
    return torch.cumsum(tokens[..., :, None] * tokens[..., None, :].conj(), dim=-3)


def block(X: torch.Tensor, a: int, b: int, d: int) -> torch.Tensor:
    """Block ``(a, b)`` (slots, 0..2) of a stack of ``3d x 3d`` matrices ``(..., 3d, 3d)`` -> ``(..., d, d)``."""
    require_positive_int(d, "d")
    require_ndim(X, "X", tuple(range(2, 8)), "(..., 3d, 3d)")
    require_shape(X, "X", (*X.shape[:-2], 3 * d, 3 * d), f"(..., 3d, 3d) with d={d}")
    require_int(a, "a")
    require_int(b, "b")
    if a not in (0, 1, 2) or b not in (0, 1, 2):
        raise ValueError(f"slot indices must be 0 (answer), 1 (s_t) or 2 (s_(t-1)); got ({a}, {b})")
    return X[..., a * d:(a + 1) * d, b * d:(b + 1) * d]


def live_mask(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks ``(3d, 3d)`` of the entries of ``W_V`` and ``W_KQ`` that can change the prediction.

    ``W_V``: rows of the answer slot, columns of slots 1, 2. ``W_KQ``: rows and columns of slots 1, 2.
    """
    require_positive_int(d, "d")
    mv = torch.zeros(3 * d, 3 * d, dtype=torch.bool)
    mv[:d, d:] = True
    mkq = torch.zeros(3 * d, 3 * d, dtype=torch.bool)
    mkq[d:, d:] = True
    return mv, mkq


def gd_construction(d: int, eta: float, *, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The parameters of one gradient step with step ``eta``: :math:`[W_V]_{0,1} = I`, :math:`[W_{KQ}]_{2,1} = \eta I`,
    all else 0. Returns ``(W_V, W_KQ)``, each ``(3d, 3d)``."""
    require_positive_int(d, "d")
    require_number(eta, "eta")
    require_dtype(dtype)
    W_V = torch.zeros(3 * d, 3 * d, dtype=dtype)
    W_KQ = torch.zeros(3 * d, 3 * d, dtype=dtype)
    eye = torch.eye(d, dtype=dtype)
    W_V[:d, d:2 * d] = eye
    W_KQ[2 * d:, d:2 * d] = eta * eye
    return W_V, W_KQ


# ----------------------------------------------------------------------------------------------- the model
class AugmentedLinearAttention(BatchedModel):
    r"""``M`` one-layer linear-attention models on augmented tokens, real or complex.

    .. math:: \mathrm{out}_t = e_t + W_V F_t W_{KQ} e_t, \quad F_t = \sum_{j\le t} e_j e_j^*.

    Parameters ``W_V``, ``W_KQ``: ``(M, 3d, 3d)`` (complex if ``dtype`` is complex), initialised i.i.d.
    :math:`N(0, \mathrm{init\_scale}^2)` (circular complex Gaussian in the complex case). Input: augmented tokens
    ``(B, T, 3d)`` shared by the models or ``(M, B, T, 3d)`` per model (see :func:`augment`). Output ``(M, B, T, 3d)``;
    ``out[..., :d]`` is the prediction of :math:`s_{t+1}`.
    """

    def __init__(self, n_models: int, d: int, *, seed: int | torch.Generator = 0, init_scale: float = 0.1,
                 dtype: torch.dtype = torch.float64, device: DeviceLike = "cpu"):
        super().__init__(n_models)
        self.d = require_positive_int(d, "d")
        require_nonnegative(init_scale, "init_scale")
        require_dtype(dtype)
        if not (dtype.is_floating_point or dtype.is_complex):
            raise TypeError(f"dtype must be a real floating or complex dtype; got {dtype}")
        if init_scale < 0:
            raise ValueError(f"init_scale must be >= 0; got {init_scale}")
        dev = resolve_device(device)
        if dev.type == "mps" and dtype in (torch.float64, torch.complex128):
            raise ValueError(f"MPS has no {dtype}: use device='cpu' for float64/complex128 models, or a 32-bit dtype")
        g = make_generator(seed)
        D = 3 * d

        def draw() -> torch.Tensor:
            if dtype.is_complex:
                re = torch.randn(n_models, D, D, generator=g, dtype=torch.float64)
                im = torch.randn(n_models, D, D, generator=g, dtype=torch.float64)
                x = torch.complex(re, im) / math.sqrt(2)
            else:
                x = torch.randn(n_models, D, D, generator=g, dtype=torch.float64)
            return (init_scale * x).to(dtype=dtype, device=dev)

        self.W_V = nn.Parameter(draw())
        self.W_KQ = nn.Parameter(draw())

    @classmethod
    def from_parameters(cls, W_V: torch.Tensor, W_KQ: torch.Tensor) -> "AugmentedLinearAttention":
        """A model with the given parameters, ``(3d, 3d)`` (one model) or ``(M, 3d, 3d)``."""
        for name, X in (("W_V", W_V), ("W_KQ", W_KQ)):
            require_floating(X, name)
            require_ndim(X, name, (2, 3), "(3d, 3d) or (M, 3d, 3d)")
            if X.shape[-1] != X.shape[-2] or X.shape[-1] % 3:
                raise ValueError(f"{name} must be (3d, 3d) (three slots of size d); got {tuple(X.shape)}")
        if W_V.shape != W_KQ.shape:
            raise ValueError(f"W_V and W_KQ must have the same shape; got {tuple(W_V.shape)} and {tuple(W_KQ.shape)}")
        if W_V.dtype != W_KQ.dtype:
            raise TypeError(f"W_V and W_KQ must have the same dtype; got {W_V.dtype} and {W_KQ.dtype}")
        W_V = W_V.unsqueeze(0) if W_V.dim() == 2 else W_V
        W_KQ = W_KQ.unsqueeze(0) if W_KQ.dim() == 2 else W_KQ
        model = cls(W_V.shape[0], W_V.shape[-1] // 3, init_scale=0.0, dtype=W_V.dtype, device=W_V.device)
        with torch.no_grad():
            model.W_V.copy_(W_V)
            model.W_KQ.copy_(W_KQ)
        return model

    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        require_floating(tokens, "tokens")
        require_finite(tokens, "tokens")
        M = self.n_models
        ok = tokens.dim() == 3 or (tokens.dim() == 4 and tokens.shape[0] >= 1 and M % tokens.shape[0] == 0)
        if not ok:
            raise ValueError(f"tokens must be shared, (B, T, 3d), or given per model or per group of models, "
                             f"(G, B, T, 3d) with G dividing n_models={M}; got shape {tuple(tokens.shape)}")
        if tokens.shape[-1] != 3 * self.d:
            raise ValueError(f"tokens must have last dimension 3d = {3 * self.d} (augmented tokens of d={self.d} "
                             f"states, see icar.augmented.augment); got {tuple(tokens.shape)}")
        if tokens.is_complex() != self.W_V.is_complex():
            kind = "complex" if self.W_V.is_complex() else "real"
            raise TypeError(f"tokens must match the model: this model is {kind} ({self.W_V.dtype}) but the tokens have "
                            f"dtype {tokens.dtype}; "
                            "use a complex model for complex (unitary) data and a real one for real data")
        return tokens.to(self.W_V.dtype)

    def _grouped(self, X: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Parameters ``(M, ...)`` -> ``(G, M/G, ...)`` matching grouped tokens (G = 1 for shared tokens)."""
        G = 1 if tokens.dim() == 3 else tokens.shape[0]
        return X.reshape(G, self.n_models // G, *X.shape[1:])

    def layer_output(self, tokens: torch.Tensor) -> torch.Tensor:
        """Full layer output :math:`e_t + W_V F_t W_{KQ} e_t`, ``(M, B, T, 3d)``, for any tokens (answer slot empty
        or not). Tokens ``(B, T, 3d)`` shared, or ``(G, B, T, 3d)``: group ``g`` of ``M/G`` consecutive models reads
        ``tokens[g]`` (``G = M``: one input per model)."""
        tokens = self._check_tokens(tokens)
        e = tokens if tokens.dim() == 4 else tokens.unsqueeze(0)  # (G, B, T, D)
        F = prefix_gram(e)
        q = torch.einsum("gkij,gbtj->gkbti", self._grouped(self.W_KQ, tokens), e)
        h = torch.einsum("gbtij,gkbtj->gkbti", F, q)
        ans = torch.einsum("gkij,gkbtj->gkbti", self._grouped(self.W_V, tokens), h)
        return (e.unsqueeze(1) + ans).flatten(0, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prediction of :math:`s_{t+1}` (the answer slot of the output), ``(M, B, T, d)``; tokens as in
        :meth:`layer_output`. When every answer slot of the input is 0 (always so for :func:`augment`) only the
        live blocks act, and only those are computed (an exact shortcut)."""
        tokens = self._check_tokens(tokens)
        d = self.d
        e = tokens if tokens.dim() == 4 else tokens.unsqueeze(0)  # (G, B, T, D)
        if not bool((e[..., :d] == 0).all()):
            return self.layer_output(tokens)[..., :d]
        live = e[..., d:]                                                    # (G, B, T, 2d)
        Gn, B, T, L = live.shape
        K = self.n_models // Gn                                              # models per group
        # q = Q_k e_t for the K models of a group in one product, then h_t = F_t q_t with the models as columns
        N = B * T
        Q = self._grouped(self.W_KQ[:, d:, d:], tokens)                    # (G, K, L, L)
        q = (live.reshape(Gn, N, L) @ Q.permute(0, 3, 2, 1).reshape(Gn, L, L * K)).view(Gn, N, L, K)
        h = prefix_gram(live).reshape(Gn, N, L, L) @ q                     # (G, N, L, K)
        h = h.view(Gn, N, L, K).permute(0, 3, 1, 2).reshape(self.n_models, N, L)
        ans = h @ self.W_V[:, :d, d:].mT                                      # (M, N, d)
        return ans.view(self.n_models, B, T, d)

    def predict(self, states: torch.Tensor) -> torch.Tensor:
        r"""Predictions of :math:`s_{t+1}` for :math:`t = 1..T` from states ``(B, T, d)`` or ``(M, B, T, d)``:
        ``(M, B, T, d)``."""
        require_ndim(states, "states", (3, 4), "(B, T, d) or (G, B, T, d)")
        require_floating(states, "states")
        if states.shape[-2] < 1:
            raise ValueError(f"states must hold at least one time step; got shape {tuple(states.shape)}")
        if states.dim() == 4:
            tokens = augment(states.flatten(0, 1)).unflatten(0, states.shape[:2])
        else:
            tokens = augment(states)
        return self(tokens)

    def in_context_matrix(self, states: torch.Tensor) -> torch.Tensor:
        r"""The matrix the layer applies to :math:`s_t`: :math:`\Gamma_t = [W_V F_t W_{KQ}]_{0,1}` ``(M, B, T, d, d)``.

        The prediction is :math:`\Gamma_t s_t + [W_V F_t W_{KQ}]_{0,2}\, s_{t-1}`; the second term vanishes with
        the one-step structure.
        """
        require_ndim(states, "states", (3,), "(B, T, d)")
        d = self.d
        F = prefix_gram(self._check_tokens(augment(states)))
        G = torch.einsum("mij,btjk,mkl->mbtil", self.W_V[:, :d], F, self.W_KQ[:, :, d:2 * d])
        return G


def next_token_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Training loss of :class:`AugmentedLinearAttention`: predictions at positions ``1..T-1`` against
    :math:`s_2..s_T`, :math:`\frac{1}{T-1}\sum_t E\|\hat s_{t+1} - s_{t+1}\|^2` per model ``(M,)``.

    ``pred`` ``(M, B, T, d)`` (the model's output); ``target`` = states ``(B, T, d)`` or ``(G, B, T, d)``.
    """
    require_floating(pred, "pred")
    require_floating(target, "target")
    require_finite(target, "target")
    out = pred
    d = target.shape[-1]
    if out.shape[-1] != d:
        raise ValueError(f"predictions must have last dimension d = {d}; got {tuple(out.shape)}")
    if target.dim() == 4 and target.shape[0] != out.shape[0]:
        if out.shape[0] % target.shape[0]:
            raise ValueError(f"target groups ({target.shape[0]}) must divide the number of models ({out.shape[0]})")
        target = target.repeat_interleave(out.shape[0] // target.shape[0], dim=0)
    return per_model_sum_mse(out[..., :-1, :], target[..., 1:, :])


# ----------------------------------------------------------------------------------------------- training
def ar_batches(d: int, T: int, batch: int, *, inits: tuple[str, ...] = ("phases",),
               scales: tuple[float, ...] | None = None, dtype: torch.dtype = torch.complex128,
               device: DeviceLike = "cpu") -> Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    r"""A ``batch_fn`` for :func:`icar.train.train`: fresh sequences of ``T`` states at every step.

    Contexts :math:`W = \mathrm{diag}(e^{i\theta_k})` with i.i.d. uniform phases (law ``"unitary"``). One batch of
    ``batch`` sequences per initial-state law in ``inits`` (see :func:`icar.data.initial_states`), e.g.
    ``("phases", "ones")``: with ``G = len(inits)`` laws, tokens are ``(G, B, T, 3d)`` and group ``g`` of the models
    reads law ``g``; a single law gives shared tokens ``(B, T, 3d)``. ``scales`` (default: unit-norm :math:`s_1`,
    i.e. 1 for ``"phases"``, :math:`1/\sqrt d` for ``"ones"``). Returns ``(tokens, states)``.
    """
    require_positive_int(d, "d")
    require_positive_int(T, "T")
    require_positive_int(batch, "batch")
    if not inits:
        raise ValueError("inits must name at least one initial-state law")
    scales = tuple(1.0 if law == "phases" else 1.0 / math.sqrt(d) for law in inits) if scales is None else scales
    if len(scales) != len(inits):
        raise ValueError(f"scales must give one scale per law in inits ({len(inits)}); got {len(scales)}")
    for c in scales:
        require_positive(c, "scales")
    require_dtype(dtype)
    dev = resolve_device(device)

    def fn(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        states = [sample_ar("unitary", batch, d, T, seed=gen, init=law, scale=c).states for law, c in zip(inits, scales)]
        S = states[0] if len(states) == 1 else torch.stack(states)
        S = S.to(dtype=dtype, device=dev)
        tokens = augment(S) if S.dim() == 3 else augment(S.flatten(0, 1)).unflatten(0, S.shape[:2])
        return tokens, S

    return fn


def train_augmented(d: int, T: int, *, n_seeds: int, inits: tuple[str, ...] = ("phases",), batch: int = 64,
                    schedule: tuple[tuple[int, float], ...] = ((300, 1e-2), (200, 1e-3)), init_scale: float = 0.1,
                    seed: int = 0, dtype: torch.dtype = torch.complex128, device: DeviceLike = "cpu",
                    progress: bool | None = None) -> tuple[AugmentedLinearAttention, torch.Tensor]:
    r"""Train ``n_seeds`` models per initial-state law in ``inits`` (``M = n_seeds * len(inits)`` models at once),
    with Adam on fresh unitary-context sequences of ``T`` states, following ``schedule`` = ``((steps, lr), ...)``.

    Model ``g * n_seeds + k`` is seed ``k`` of law ``inits[g]``; its initialisation is drawn from ``seed + 1``.
    Returns the model and the loss history ``(steps, M)``.
    """
    from .train import train

    require_positive_int(n_seeds, "n_seeds")
    require_positive_int(batch, "batch")
    if isinstance(schedule, (str, torch.Tensor)) or not isinstance(schedule, (tuple, list)):
        raise TypeError(f"schedule must be a sequence of (steps, lr) pairs; got {type(schedule).__name__}")
    for phase in schedule:
        if not isinstance(phase, (tuple, list)) or len(phase) != 2:
            raise ValueError(f"schedule must hold (steps, lr) pairs; got {phase!r}")
        require_positive_int(phase[0], "schedule steps")
        require_positive(phase[1], "schedule lr")
    if not schedule:
        raise ValueError("schedule must hold at least one (steps, lr) phase")
    model = AugmentedLinearAttention(n_seeds * len(inits), d, seed=seed + 1, init_scale=init_scale, dtype=dtype,
                                     device=device)
    fn = ar_batches(d, T, batch, inits=inits, dtype=dtype, device=device)
    losses = []
    for k, (steps, lr) in enumerate(schedule):
        res = train(model, fn, steps=steps, lr=lr, loss_fn=next_token_loss, seed=seed + 1000 * (k + 1),
                    progress=progress, desc=f"training (lr {lr:g})")
        losses.append(res.losses)
    return model, torch.cat(losses)


# ----------------------------------------------------------------------------------------------- reading the weights
@dataclass(frozen=True)
class Structure:
    r"""What a trained model's weights say, one value per model (tensors ``(M,)``).

    With :math:`B = [W_V]_{0,1}` (value: :math:`s_j` slot -> answer slot), :math:`A = [W_{KQ}]_{2,1}` (key
    :math:`s_{j-1}`, query :math:`s_t`), :math:`Q_{ss} = [W_{KQ}]_{1,1}`, :math:`Q_{pp} = [W_{KQ}]_{2,2}`:

    * ``eta``, ``eta_imag``: real and imaginary parts of :math:`\mathrm{tr}(BA)/d`, the learned step size;
    * ``product_dev``: :math:`\max_{ik} |(BA - \eta I)_{ik}| / \eta`;
    * ``b``, ``a``: mean modulus of the diagonals of :math:`B` and :math:`A`;
    * ``off``: largest live entry outside the diagonals of :math:`B`, :math:`A`, :math:`Q_{ss}`, :math:`Q_{pp}`,
      relative to :math:`\sqrt{ab}`; it is the larger of ``off_pair`` (largest off-diagonal entry of :math:`B` and
      :math:`A`) and ``off_blocks`` (largest entry of the other live blocks, valley diagonals excepted);
    * ``valley``: :math:`\max_k |(Q_{ss} + Q_{pp})_{kk}|` and ``valley_size``: :math:`\max_k |(Q_{ss})_{kk}|`,
      both relative to :math:`\sqrt{ab}` (the flat direction of the loss, see the chapter).
    """

    eta: torch.Tensor
    eta_imag: torch.Tensor
    product_dev: torch.Tensor
    b: torch.Tensor
    a: torch.Tensor
    off: torch.Tensor
    valley: torch.Tensor
    valley_size: torch.Tensor
    off_pair: torch.Tensor
    off_blocks: torch.Tensor


def _diag_mask(d: int, a: int, b: int) -> torch.Tensor:
    m = torch.zeros(3 * d, 3 * d, dtype=torch.bool)
    idx = torch.arange(d)
    m[a * d + idx, b * d + idx] = True
    return m


@torch.no_grad()
def read_structure(model: AugmentedLinearAttention) -> Structure:
    """Read the step size, the off-structure size and the flat direction from the weights (see :class:`Structure`)."""
    if not isinstance(model, AugmentedLinearAttention):
        raise TypeError(f"model must be an AugmentedLinearAttention; got {type(model).__name__}")
    d = model.d
    WV, WKQ = model.W_V.detach(), model.W_KQ.detach()
    B, A = block(WV, 0, 1, d), block(WKQ, 2, 1, d)
    P = B @ A
    eta_c = torch.diagonal(P, dim1=-2, dim2=-1).mean(-1)
    eye = torch.eye(d, dtype=P.dtype, device=P.device)
    product_dev = (P - eta_c[:, None, None] * eye).abs().flatten(1).amax(1) / eta_c.real.abs()
    b = torch.diagonal(B, dim1=-2, dim2=-1).abs().mean(-1)
    a = torch.diagonal(A, dim1=-2, dim2=-1).abs().mean(-1)
    scale = (a * b).sqrt()
    mv, mkq = live_mask(d)
    keep_v = mv & ~_diag_mask(d, 0, 1)
    keep_kq = mkq & ~(_diag_mask(d, 2, 1) | _diag_mask(d, 1, 1) | _diag_mask(d, 2, 2))
    off = torch.maximum(WV.abs()[:, keep_v].amax(1), WKQ.abs()[:, keep_kq].amax(1)) / scale
    pair_v = torch.zeros(3 * d, 3 * d, dtype=torch.bool)
    pair_v[:d, d:2 * d] = True
    pair_kq = torch.zeros(3 * d, 3 * d, dtype=torch.bool)
    pair_kq[2 * d:, d:2 * d] = True
    off_pair = torch.maximum(WV.abs()[:, keep_v & pair_v].amax(1), WKQ.abs()[:, keep_kq & pair_kq].amax(1)) / scale
    off_blocks = torch.maximum(WV.abs()[:, keep_v & ~pair_v].amax(1), WKQ.abs()[:, keep_kq & ~pair_kq].amax(1)) / scale
    dss = torch.diagonal(block(WKQ, 1, 1, d), dim1=-2, dim2=-1)
    dpp = torch.diagonal(block(WKQ, 2, 2, d), dim1=-2, dim2=-1)
    valley = (dss + dpp).abs().amax(-1) / scale
    valley_size = dss.abs().amax(-1) / scale
    eta_imag = eta_c.imag if eta_c.is_complex() else torch.zeros_like(eta_c)
    return Structure(*(x.cpu() for x in (eta_c.real, eta_imag, product_dev, b, a, off, valley, valley_size,
                                          off_pair, off_blocks)))


@torch.no_grad()
def per_position_errors(model: AugmentedLinearAttention, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Test error of every model at every position: mean over the sequences of
    :math:`\|\hat s_{t+1} - s_{t+1}\|^2`, ``(M, T-1)``, and its Monte-Carlo standard error ``(M, T-1)``.

    ``states`` ``(B, T, d)`` (shared) or ``(G, B, T, d)`` (one set per group of models)."""
    if not isinstance(model, AugmentedLinearAttention):
        raise TypeError(f"model must be an AugmentedLinearAttention; got {type(model).__name__}")
    require_floating(states, "states")
    if states.shape[-2] < 2:
        raise ValueError(f"states must hold at least 2 time steps; got shape {tuple(states.shape)}")
    pred = model.predict(states)[..., :-1, :]
    target = states[..., 1:, :]
    if target.dim() == 4:
        target = target.repeat_interleave(model.n_models // target.shape[0], dim=0)
    err = (pred - target).abs().pow(2).sum(-1)  # (M, B, T-1)
    return err.mean(1).cpu(), (err.std(1) / math.sqrt(err.shape[1])).cpu()


# ----------------------------------------------------------------------------------------------- theory
def _sums(n_max: int) -> tuple[int, int]:
    require_positive_int(n_max, "n_max")
    s1 = n_max * (n_max + 1) // 2
    s2 = n_max * (n_max + 1) * (2 * n_max + 1) // 6
    return s1, s2


def shared_step(n_max: int, d: int, m: Moments) -> float:
    r"""Best single step size for all prefixes with :math:`n = 0..n_{\max}` pairs (loss summed over positions):

    .. math:: \eta^\star = \frac{\mu_4 \sum_n n}{\mu_6 \sum_n n^2 + (d-1)\mu_{24}\sum_n n},

    :math:`= 3d/(2n_{\max} + 3d - 2)` for unit-norm random phases. (A course derivation following Sander et al.,
    2024; the prefix with no pair predicts 0 whatever the step, so it does not enter.)
    """
    check_moments(m)
    require_positive_int(d, "d")
    s1, s2 = _sums(n_max)
    return m.mu4 * s1 / (m.mu6 * s2 + (d - 1) * m.mu24 * s1)


def error_curve(eta: float, n_max: int, d: int, m: Moments) -> torch.Tensor:
    r"""Expected squared error :math:`e_n(\eta)` of one step with step ``eta`` for :math:`n = 0..n_{\max}` pairs
    ``(n_max + 1,)`` float64 (vectorised over ``n``); :math:`e_0 = d\mu_2` (the empty prefix predicts 0)."""
    check_moments(m)
    require_positive_int(d, "d")
    require_positive_int(n_max, "n_max")
    require_nonnegative(eta, "eta")
    n = torch.arange(n_max + 1, dtype=torch.float64)
    return d * (eta**2 * n**2 * m.mu6 - 2 * eta * n * m.mu4 + m.mu2 + eta**2 * n * (d - 1) * m.mu24)


def per_prefix_steps(T: int, d: int, m: Moments) -> torch.Tensor:
    r"""Best step for each prefix length, :math:`\eta_n = \mu_4/(n\mu_6 + (d-1)\mu_{24})` with :math:`n = t-1`
    pairs, as the ``(T,)`` tensor :func:`icar.estimators.gd_estimates` takes (the empty prefix gets :math:`\eta_1`; its
    estimate is 0 whatever the step)."""
    check_moments(m)
    require_positive_int(T, "T")
    require_positive_int(d, "d")
    n = torch.arange(T, dtype=torch.float64).clamp_min(1)
    return m.mu4 / (n * m.mu6 + (d - 1) * m.mu24)


def shared_loss(n_max: int, d: int, m: Moments) -> float:
    r"""Training loss (mean over the ``n_max + 1`` positions) of the best shared step: the minimum the trained
    model can reach when it implements one gradient step."""
    return float(error_curve(shared_step(n_max, d, m), n_max, d, m).mean())


def error_split(eta: float | torch.Tensor, n: int | torch.Tensor, d: int, m: Moments) -> tuple[float, float] | tuple[torch.Tensor, torch.Tensor]:
    r"""The two parts of the one-step error with ``n`` pairs (an int, or a tensor of them): *shrinkage*
    :math:`d\,E[|x|^2(\eta n|x|^2 - 1)^2] = d(\eta^2 n^2 \mu_6 - 2\eta n\mu_4 + \mu_2)` and *Gram noise*
    :math:`d(d-1)\eta^2 n\mu_{24}`."""
    check_moments(m)
    require_positive_int(d, "d")
    if isinstance(n, torch.Tensor):
        if n.is_complex() or bool((n < 1).any()):
            raise ValueError(f"n must hold positive numbers of pairs; got {n.tolist()}")
        n = n.to(torch.float64)
    else:
        require_positive_int(n, "n")
    require_step(eta, "eta", positive=False)
    shrink = d * (eta**2 * n**2 * m.mu6 - 2 * eta * n * m.mu4 + m.mu2)
    noise = d * (d - 1) * eta**2 * n * m.mu24
    return shrink, noise


def empirical_error_split(states: torch.Tensor, eta: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Split the one-step error of every prefix, for *diagonal* contexts (eigenbasis = standard basis).

    Since :math:`C_t = W G_t` with :math:`G_t = \sum_{i<t} s_i s_i^*`, the one-step prediction misses by
    :math:`W(\eta G_t - I)s_t`; with :math:`G_t = D_t + N_t` (diagonal + off-diagonal part),

    * shrinkage :math:`\|(\eta D_t - I) s_t\|^2`, * Gram noise :math:`\eta^2\|N_t s_t\|^2`,
    * total :math:`\|(\eta G_t - I) s_t\|^2` (= the squared next-token error when :math:`W` is unitary).

    ``states`` ``(n, T, d)``; ``eta`` a float or ``(T,)``. Returns three ``(n, T)`` tensors (index ``t-1`` is the
    prefix :math:`s_1..s_t`, i.e. ``t-1`` pairs).
    """
    from .estimators import gram_moments

    G = gram_moments(states)
    if isinstance(eta, torch.Tensor):
        require_shape(eta, "eta", (states.shape[1],), "(T,)")
        require_real(eta, "eta")
        require_finite(eta, "eta")
        eta = eta.to(dtype=G.real.dtype, device=G.device)[:, None, None]
    else:
        require_nonnegative(eta, "eta")
    D = torch.diag_embed(torch.diagonal(G, dim1=-2, dim2=-1))
    N = G - D
    eye = torch.eye(states.shape[-1], dtype=G.dtype, device=G.device)
    s = states[..., None]
    shrink = ((eta * D - eye) @ s).abs().pow(2).sum((-2, -1))
    noise = ((eta * N) @ s).abs().pow(2).sum((-2, -1))
    total = ((eta * G - eye) @ s).abs().pow(2).sum((-2, -1))
    return shrink, noise, total


def inner_gradient_step(states: torch.Tensor, eta: float) -> torch.Tensor:
    r"""One gradient step from :math:`W = 0` on :math:`\tfrac12\sum_{i<t}\|s_{i+1} - W s_i\|^2`, *by autograd*, for
    every prefix: ``(n, T, d, d)``. Independent of the closed form :math:`\eta C_t`, against which the chapter
    checks the attention layer. (For complex ``W``, torch's gradient of a real loss is the steepest-ascent
    direction :math:`2\,\partial L/\partial \bar W`, which for :math:`\tfrac12 L` is :math:`-C_t` at 0.)
    """
    require_ndim(states, "states", (3,), "(n, T, d)")
    require_floating(states, "states")
    require_finite(states, "states")
    require_positive(eta, "eta")
    if states.shape[1] < 2:
        raise ValueError(f"states must hold at least 2 time steps (one pair); got shape {tuple(states.shape)}")
    n, T, d = states.shape
    W = torch.zeros(n, T, d, d, dtype=states.dtype, device=states.device, requires_grad=True)
    # residual of pair i (s_i -> s_{i+1}) seen by the prefix t, masked to i < t
    pred = torch.einsum("ntij,nkj->ntki", W, states[:, :-1])  # (n, T, T-1, d): W_t s_i
    r = states[:, None, 1:] - pred
    k = torch.arange(T - 1, device=states.device)
    rows = torch.arange(T, device=states.device)
    mask = (k[None, :] < rows[:, None]).to(states.real.dtype)  # (T, T-1): pair k is in prefix t = row + 1 iff k < row
    loss = 0.5 * (r.abs().pow(2).sum(-1) * mask).sum()
    (grad,) = torch.autograd.grad(loss, W)
    return (-eta * grad).detach()


@torch.no_grad()
def held_out_loss(model: AugmentedLinearAttention, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Test loss of every model (mean over positions ``1..T-1`` and sequences of the squared error), ``(M,)``,
    with its Monte-Carlo standard error ``(M,)`` (from the spread of the per-sequence losses).

    ``states`` ``(B, T, d)`` (shared) or ``(G, B, T, d)`` (one set per group of models)."""
    if not isinstance(model, AugmentedLinearAttention):
        raise TypeError(f"model must be an AugmentedLinearAttention; got {type(model).__name__}")
    require_floating(states, "states")
    if states.shape[-2] < 2:
        raise ValueError(f"states must hold at least 2 time steps; got shape {tuple(states.shape)}")
    pred = model.predict(states)[..., :-1, :]
    target = states[..., 1:, :]
    if target.dim() == 4:
        target = target.repeat_interleave(model.n_models // target.shape[0], dim=0)
    per_seq = (pred - target).abs().pow(2).sum(-1).mean(-1)  # (M, B)
    return per_seq.mean(1).cpu(), (per_seq.std(1) / math.sqrt(per_seq.shape[1])).cpu()


# ----------------------------------------------------------------------------------------------- moments of the laws
def moments_of(law: str, d: int) -> Moments:
    """Moments of the eigen-coordinates of :math:`s_1` for the laws the chapter uses: ``"phases"`` (unit norm,
    :math:`|x_k|^2 = 1/d`) or ``"gaussian"`` (circular Gaussian with :math:`E\\|s_1\\|^2 = 1`)."""
    from .theory import gaussian_moments, phase_moments

    require_positive_int(d, "d")
    if law == "phases":
        return phase_moments(d)
    if law == "gaussian":
        return gaussian_moments(1.0 / d)
    raise ValueError(f"law must be 'phases' or 'gaussian'; got {law!r}")
