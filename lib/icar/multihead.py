r"""One-layer *diagonal* multi-head linear attention with a learned positional encoding (non-augmented tokens).

This is the model of Chapter 4, a course implementation following Sander et al. (2024, arXiv 2402.05787). The
tokens are the states themselves, :math:`e_t = s_t`. Head :math:`h` has a diagonal key-query matrix
:math:`\mathrm{diag}(a_h)` and a diagonal value matrix :math:`\mathrm{diag}(b_h)`; the rows of
:math:`A, B \in \mathbb R^{H\times d}` hold them. A positional encoding :math:`P = (p_{t,t'})` multiplies the
attention score entry by entry. The **previous** token :math:`s_{t-1}` is the query. The prediction of
:math:`s_{t+1}` from :math:`s_1, \dots, s_t` (:math:`t = 2, \dots, T-1`) is

.. math::

    \hat s_{t+1,i} = \sum_{t' \le t} p_{t,t'} \sum_{h=1}^H b_{h,i}
        \Big(\sum_k a_{h,k}\, \overline{s_{t-1,k}}\, s_{t',k}\Big) s_{t',i}
      = \sum_{t' \le t} p_{t,t'} \sum_k C_{ik}\, \overline{s_{t-1,k}}\, s_{t',k}\, s_{t',i},
    \qquad C = B^\top A .

Only :math:`C` (rank :math:`\le \min(H, d)`) and :math:`P` enter the prediction.

Shapes: ``M`` models (seeds x head counts), ``H`` heads (the largest head count; a per-model ``head_mask``
switches heads off), ``d`` the state dimension, ``T`` tokens. ``A, B`` are ``(M, H, d)`` and ``P`` is
``(M, T, T)``, with ``P[m, t-1, t'-1]`` :math:`= p_{t,t'}`; only rows :math:`t = 2..T-1` and columns
:math:`t' \le t` are used (the others are masked to 0 and never move).

Two context laws, written in the eigenbasis of :math:`W` with :math:`s_1 = \mathbf 1` there (every
eigen-coordinate of modulus 1):

* ``"unitary"``: :math:`\lambda_k = e^{i\theta_k}`, i.i.d. uniform phases, :math:`s_t = \lambda^{t-1}`;
* ``"orthogonal"``: conjugate pairs :math:`(\lambda_{2m}, \lambda_{2m+1}) = (e^{i\theta_m}, e^{-i\theta_m})`, the
  eigen-coordinates of a real block rotation :math:`\mathrm{blockdiag}(R(\theta_1), \dots, R(\theta_{d/2}))`.

The population losses of both laws have closed forms (:func:`unitary_position_loss`,
:func:`orthogonal_position_loss`), checked against Monte-Carlo by :func:`mc_position_loss`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import block_rotation, rollout
from .models import BatchedModel
from .runtime import DeviceLike, course_threads, make_generator, progress_enabled, resolve_device
from .train import TrainResult, train
from .validate import (require_dtype, require_even, require_finite, require_floating, require_ndim, require_nonnegative,
                       require_number, require_positive_int, require_real, require_same_kind, require_shape,
                       require_tensor)

Seed = int | torch.Generator
LAWS = ("unitary", "orthogonal")
VARIANTS = ("corrected", "released")


def _check_law(law: str, d: int) -> None:
    if law not in LAWS:
        raise ValueError(f"law must be one of {LAWS}; got {law!r}")
    if law == "orthogonal":
        require_even(d, "d")


# ----------------------------------------------------------------------------------------------- data
def eigen_phases(law: str, n: int, d: int, *, seed: Seed) -> torch.Tensor:
    r"""Eigenvalue phases :math:`\theta` ``(n, d)`` (float64): i.i.d. uniform for ``"unitary"``; conjugate pairs
    :math:`(\theta_m, -\theta_m)` on coordinates ``(2m, 2m+1)`` for ``"orthogonal"``."""
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    _check_law(law, d)
    g = make_generator(seed)
    if law == "unitary":
        return 2 * math.pi * torch.rand(n, d, generator=g, dtype=torch.float64)
    half = 2 * math.pi * torch.rand(n, d // 2, generator=g, dtype=torch.float64)
    return torch.stack([half, -half], dim=-1).reshape(n, d)


def eigen_sequences(law: str, n: int, d: int, T: int, *, seed: Seed, device: DeviceLike = "cpu") -> torch.Tensor:
    r"""``n`` sequences :math:`s_t = \lambda^{t-1}` (coordinate-wise), :math:`t = 1..T`, in the eigenbasis of
    :math:`W` with :math:`s_1 = \mathbf 1`. Complex128 ``(n, T, d)``. No loop over time: one outer product of the
    phases with :math:`0, \dots, T-1`."""
    require_positive_int(T, "T")
    theta = eigen_phases(law, n, d, seed=seed)
    steps = torch.arange(T, dtype=torch.float64)
    angles = steps[None, :, None] * theta[:, None, :]
    return torch.polar(torch.ones_like(angles), angles).to(resolve_device(device))


def rotation_sequences(n: int, d: int, T: int, *, seed: Seed, device: DeviceLike = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    r"""Real sequences :math:`s_{t+1} = W s_t` with :math:`W = \mathrm{blockdiag}(R(\theta_1), \dots, R(\theta_{d/2}))`,
    :math:`\theta_m` i.i.d. uniform, and :math:`s_1 = \mathbf 1` (every 2-block of squared norm 2). Returns
    ``(states (n, T, d), theta (n, d/2))``, float64."""
    require_positive_int(n, "n")
    require_even(d, "d")
    require_positive_int(T, "T")
    g = make_generator(seed)
    theta = 2 * math.pi * torch.rand(n, d // 2, generator=g, dtype=torch.float64)
    W = block_rotation(theta)
    states = rollout(W, torch.ones(n, d, dtype=torch.float64), T)
    return states.to(resolve_device(device)), theta


def chebyshev_prediction(states: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    r"""The trigonometric recursion :math:`\hat s_{t+1} = 2\cos\theta_m\, s_t - s_{t-1}` in each 2-block, for
    :math:`t = 2..T-1`. ``states`` ``(n, T, d)`` real, ``theta`` ``(n, d/2)``. Returns ``(n, T-2, d)``."""
    require_ndim(states, "states", (3,), "(n, T, d)")
    require_real(states, "states")
    require_finite(states, "states")
    require_real(theta, "theta")
    require_finite(theta, "theta")
    n, T, d = states.shape
    require_even(d, "d")
    require_shape(theta, "theta", (n, d // 2), "(n, d/2)")
    if T < 3:
        raise ValueError(f"states must hold at least 3 time steps; got T = {T}")
    two_cos = (2 * torch.cos(theta)).repeat_interleave(2, dim=-1).to(states)  # (n, d)
    return two_cos[:, None, :] * states[:, 1:-1] - states[:, :-2]


# ----------------------------------------------------------------------------------------------- masks
def position_mask(T: int, *, device: DeviceLike = "cpu") -> torch.Tensor:
    r"""Boolean ``(T, T)``: entry ``(t-1, t'-1)`` is used iff :math:`2 \le t \le T-1` and :math:`t' \le t`."""
    require_positive_int(T, "T")
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    mask[0] = False
    mask[-1] = False
    return mask.to(resolve_device(device))


def head_mask(heads: Sequence[int], max_heads: int | None = None) -> torch.Tensor:
    """``(M, H_max)`` float mask: model ``m`` uses its first ``heads[m]`` heads."""
    if isinstance(heads, (str, torch.Tensor)) or not hasattr(heads, "__len__") or len(heads) == 0:
        raise TypeError(f"heads must be a non-empty sequence of head counts; got {heads!r}")
    heads = [require_positive_int(h, "heads") for h in heads]
    H = max(heads) if max_heads is None else require_positive_int(max_heads, "max_heads")
    if max(heads) > H:
        raise ValueError(f"every head count must be <= max_heads = {H}; got {max(heads)}")
    return (torch.arange(H)[None, :] < torch.tensor(heads)[:, None]).to(torch.float64)


# ----------------------------------------------------------------------------------------------- closed forms
def _rows(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(latest, query, row sum, row sum of squares) for rows t = 2..T-1 of a masked P ``(M, T, T)``."""
    T = P.shape[-1]
    latest = torch.diagonal(P, 0, -2, -1)[..., 1:T - 1]  # p_{t,t}
    query = torch.diagonal(P, -1, -2, -1)[..., 0:T - 2]  # p_{t,t-1}
    rows = P[..., 1:T - 1, :]
    return latest, query, rows.sum(-1), rows.pow(2).sum(-1)


def _check_CP(C: torch.Tensor, P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    require_ndim(C, "C", (3,), "(M, d, d)")
    require_ndim(P, "P", (3,), "(M, T, T)")
    require_real(C, "C")
    require_real(P, "P")
    require_finite(C, "C")
    require_finite(P, "P")
    require_same_kind(C, P, "C", "P")
    M, d, d2 = C.shape
    if d != d2:
        raise ValueError(f"C must be square, shape (M, d, d); got {tuple(C.shape)}")
    if P.shape[0] != M or P.shape[1] != P.shape[2] or P.shape[1] < 3:
        raise ValueError(f"P must have shape (M, T, T) = ({M}, T, T) with T >= 3; got {tuple(P.shape)}")
    return C, P * position_mask(P.shape[-1], device=P.device).to(P.dtype)


def unitary_position_loss(C: torch.Tensor, P: torch.Tensor, variant: str = "corrected") -> torch.Tensor:
    r"""Population loss :math:`E\|\hat s_{t+1} - s_{t+1}\|^2` of every position, unitary law (Lemma B1).

    With :math:`p = p_{t,\cdot}`, :math:`p_t` the weight on the latest token and :math:`p_{t-1}` on the query token:

    .. math:: \ell_t = \|p\|^2\|C\|_F^2 + p_{t-1}^2\big(\mathbf 1^\top C^\top C \mathbf 1 - \|C\|_F^2\big)
              - 2 p_t \operatorname{tr} C + d .

    ``variant="released"`` is the form in the authors' released code, which counts the
    :math:`(t' = t-1, k = k')` terms twice: :math:`+p_{t-1}^2\|C\|_F^2`. ``C`` ``(M, d, d)``, ``P`` ``(M, T, T)``
    (masked inside). Returns ``(M, T-2)`` for :math:`t = 2..T-1`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
    C, P = _check_CP(C, P)
    d = C.shape[-1]
    latest, query, _, rowsq = _rows(P)
    fro2 = C.pow(2).sum((-2, -1))[:, None]
    c1 = C.sum(-1).pow(2).sum(-1)[:, None]  # ||C 1||^2
    tr = torch.diagonal(C, 0, -2, -1).sum(-1)[:, None]
    loss = rowsq * fro2 + query.pow(2) * (c1 - fro2) - 2 * latest * tr + d
    if variant == "released":
        loss = loss + query.pow(2) * fro2
    return loss


def orthogonal_position_loss(C: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    r"""Population loss of every position, conjugate-pair ("orthogonal") law (Lemma B2).

    With :math:`q = p_{t-1}`, :math:`S' = \sum_{t' \ne t-1} p_{t'}`, :math:`S_2' = \sum_{t'\ne t-1} p_{t'}^2`,

    .. math:: \ell_t = q^2\|C\mathbf 1\|^2 + S_2'\|C\|_F^2 + 2\tau_3 q S' + \tau_4 (S'^2 - S_2')
              - 2 p_t \operatorname{tr} C + d,

    :math:`\tau_3 = \sum_m (C\mathbf 1)_{2m} C_{2m,2m+1} + (C\mathbf 1)_{2m+1} C_{2m+1,2m}`,
    :math:`\tau_4 = \sum_m C_{2m,2m+1}^2 + C_{2m+1,2m}^2`. ``d`` must be even. Returns ``(M, T-2)``.
    """
    C, P = _check_CP(C, P)
    d = require_even(C.shape[-1], "d")
    latest, query, rowsum, rowsq = _rows(P)
    fro2 = C.pow(2).sum((-2, -1))[:, None]
    C1 = C.sum(-1)
    c1 = C1.pow(2).sum(-1)[:, None]
    tr = torch.diagonal(C, 0, -2, -1).sum(-1)[:, None]
    up, lo = C[:, 0::2, 1::2].diagonal(0, -2, -1), C[:, 1::2, 0::2].diagonal(0, -2, -1)  # C_{2m,2m+1}, C_{2m+1,2m}
    tau3 = (C1[:, 0::2] * up + C1[:, 1::2] * lo).sum(-1)[:, None]
    tau4 = (up.pow(2) + lo.pow(2)).sum(-1)[:, None]
    s1 = rowsum - query
    s2 = rowsq - query.pow(2)
    return (query.pow(2) * c1 + s2 * fro2 + 2 * tau3 * query * s1 + tau4 * (s1.pow(2) - s2)
            - 2 * latest * tr + d)


def position_loss(law: str, C: torch.Tensor, P: torch.Tensor, variant: str = "corrected") -> torch.Tensor:
    """:func:`unitary_position_loss` or :func:`orthogonal_position_loss` by ``law``: ``(M, T-2)``."""
    _check_law(law, C.shape[-1] if isinstance(C, torch.Tensor) and C.dim() == 3 else 2)
    if law == "unitary":
        return unitary_position_loss(C, P, variant)
    if variant != "corrected":
        raise ValueError("variant='released' only exists for the unitary law")
    return orthogonal_position_loss(C, P)


# ----------------------------------------------------------------------------------------------- the model
def _predict(states: torch.Tensor, C: torch.Tensor, P: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    r"""Predictions for the positions ``rows`` (1-indexed :math:`t`): ``states`` ``(B, T, d)`` shared or
    ``(M, B, T, d)``, ``C`` ``(M, d, d)``, ``P`` ``(M, T, T)`` masked. Returns ``(M, B, R, d)``."""
    dtype = states.dtype
    C, P = C.to(dtype), P.to(dtype)
    P_rows = P[:, rows - 1]  # (M, R, T)
    if states.dim() == 3:
        query = states[:, rows - 2].conj()  # (B, R, d): s_{t-1}
        X = query[:, :, None, :] * states[:, None, :, :]  # (B, R, T, d): conj(s_{t-1,k}) s_{t',k}
        Y = torch.einsum("mik,brtk->mbrti", C, X)
        return torch.einsum("mrt,bti,mbrti->mbri", P_rows, states, Y)
    query = states[:, :, rows - 2].conj()
    X = query[:, :, :, None, :] * states[:, :, None, :, :]
    Y = torch.einsum("mik,mbrtk->mbrti", C, X)
    return torch.einsum("mrt,mbti,mbrti->mbri", P_rows, states, Y)


def predict(states: torch.Tensor, C: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    r"""Predictions of :math:`s_3, \dots, s_T` for given ``C`` ``(M, d, d)`` and ``P`` ``(M, T, T)`` (masked inside),
    without building heads: ``states`` ``(B, T, d)`` or ``(M, B, T, d)``, real or complex. Returns ``(M, B, T-2, d)``."""
    C, P = _check_CP(C, P)
    require_ndim(states, "states", (3, 4), "(B, T, d) or (M, B, T, d)")
    require_floating(states, "states")
    require_finite(states, "states")
    T, d = P.shape[-1], C.shape[-1]
    if states.shape[-2:] != (T, d) or (states.dim() == 4 and states.shape[0] != C.shape[0]):
        raise ValueError(f"states must have shape (B, T, d) = (*, {T}, {d}) or (M, B, T, d) with M = {C.shape[0]}; "
                         f"got {tuple(states.shape)}")
    return _predict(states, C.to(states.device), P.to(states.device), torch.arange(2, T, device=states.device))


class MultiHeadDiagonal(BatchedModel):
    r"""``M`` one-layer diagonal multi-head linear-attention models with positional encoding (module docstring).

    Parameters ``A``, ``B`` ``(M, H, d)`` (rows: the diagonals of the heads' key-query and value matrices) and
    ``P`` ``(M, T, T)``, initialised :math:`\mathrm{init\_scale}\cdot N(0, 1)` (the unused entries of ``P`` at 0).
    ``heads`` (a list of ``M`` head counts, each :math:`\le H`) switches the extra heads off per model, so models
    with different head counts train in one batch. Input states ``(B, T, d)`` or ``(M, B, T, d)``, real or complex;
    output ``(M, B, T-2, d)``: the predictions of :math:`s_3, \dots, s_T`.
    """

    def __init__(self, n_models: int, d: int, n_heads: int, T: int, *, heads: Sequence[int] | None = None,
                 seed: Seed = 0, init_scale: float = 0.1, dtype: torch.dtype = torch.float64,
                 device: DeviceLike = "cpu"):
        super().__init__(n_models)
        self.d = require_positive_int(d, "d")
        self.n_heads = require_positive_int(n_heads, "n_heads")
        self.T = require_positive_int(T, "T")
        if T < 3:
            raise ValueError(f"T must be >= 3 (the query is the previous token and there is a next token); got {T}")
        require_dtype(dtype)
        require_nonnegative(init_scale, "init_scale")
        if dtype.is_complex:
            raise TypeError(f"the parameters are real; dtype must be float32/float64, got {dtype}")
        heads = [n_heads] * n_models if heads is None else list(heads)
        if len(heads) != n_models:
            raise ValueError(f"heads must give one head count per model ({n_models}); got {len(heads)}")
        dev = resolve_device(device)
        g = make_generator(seed)
        draw = lambda *shape: init_scale * torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
        mask = position_mask(T)
        self.register_buffer("pos_mask", mask.to(dtype=dtype, device=dev))
        self.register_buffer("head_mask", head_mask(heads, n_heads).to(dtype=dtype, device=dev))
        self.heads = heads
        self.A = nn.Parameter(draw(n_models, n_heads, d).to(dtype=dtype, device=dev))
        self.B = nn.Parameter(draw(n_models, n_heads, d).to(dtype=dtype, device=dev))
        self.P = nn.Parameter((draw(n_models, T, T) * mask).to(dtype=dtype, device=dev))

    def masked_heads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``A``, ``B`` with the switched-off heads set to 0: ``(M, H, d)`` each."""
        m = self.head_mask[:, :, None]
        return self.A * m, self.B * m

    def C(self) -> torch.Tensor:
        r""":math:`C = B^\top A` ``(M, d, d)``: :math:`C_{ik} = \sum_h b_{h,i} a_{h,k}`."""
        A, B = self.masked_heads()
        return torch.einsum("mhi,mhk->mik", B, A)

    def P_masked(self) -> torch.Tensor:
        """``P`` with the unused entries at 0: ``(M, T, T)``."""
        return self.P * self.pos_mask

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        require_tensor(states, "states")
        require_floating(states, "states")
        require_finite(states, "states")
        s = states if states.dim() == 3 else self.per_model(states, 3, "states")
        if s.shape[-1] != self.d or s.shape[-2] != self.T:
            raise ValueError(f"states must have shape (B, T, d) = (*, {self.T}, {self.d}) or (M, B, T, d); got {tuple(states.shape)}")
        rows = torch.arange(2, self.T, device=s.device)
        return _predict(s, self.C(), self.P_masked(), rows)

    def targets(self, states: torch.Tensor) -> torch.Tensor:
        """The states the outputs predict: :math:`s_3, \\dots, s_T`, ``(..., T-2, d)``."""
        return states[..., 2:, :]

    def population_loss(self, law: str, variant: str = "corrected") -> torch.Tensor:
        """Closed-form population loss of every model, summed over the ``T-2`` positions: ``(M,)``."""
        return position_loss(law, self.C(), self.P_masked(), variant).sum(-1)


# ----------------------------------------------------------------------------------------------- Monte-Carlo
@dataclass(frozen=True)
class MCEstimate:
    """Monte-Carlo mean of a loss and its standard error, per model: ``(M,)`` each."""

    mean: torch.Tensor
    se: torch.Tensor


def mc_position_loss(law: str, C: torch.Tensor, P: torch.Tensor, t: int, *, n: int, seed: Seed,
                     coordinates: str = "eigen", chunk: int = 20_000) -> MCEstimate:
    r"""Monte-Carlo estimate of :math:`E\|\hat s_{t+1} - s_{t+1}\|^2` at position ``t`` for the parameters
    ``C`` ``(M, d, d)`` and ``P`` ``(M, T, T)`` (only row ``t`` is used; ``3 <= t+1 <= T``).

    ``coordinates="eigen"``: states in the eigenbasis with :math:`s_1 = \mathbf 1` (the closed forms' setting);
    ``coordinates="real"`` (orthogonal law only): real block-rotation states with :math:`s_1 = \mathbf 1`. The
    ``n`` samples are drawn in chunks of ``chunk`` (memory), all from one seeded generator.
    """
    require_positive_int(n, "n")
    C, P = _check_CP(C, P)
    M, d, _ = C.shape
    _check_law(law, d)
    T = P.shape[-1]
    if not isinstance(t, int) or isinstance(t, bool) or not 2 <= t <= T - 1:
        raise ValueError(f"t must be an integer position in 2..T-1 = 2..{T - 1}; got {t!r}")
    if coordinates not in ("eigen", "real"):
        raise ValueError(f"coordinates must be 'eigen' or 'real'; got {coordinates!r}")
    if coordinates == "real" and law != "orthogonal":
        raise ValueError("coordinates='real' is the real block-rotation model: it needs law='orthogonal'")
    g = make_generator(seed)
    total, total_sq = torch.zeros(M, dtype=torch.float64), torch.zeros(M, dtype=torch.float64)
    rows = torch.tensor([t])
    done = 0
    bar = tqdm(total=n, desc=f"Monte-Carlo ({law})", disable=not progress_enabled(), leave=False)
    while done < n:
        b = min(chunk, n - done)
        if coordinates == "eigen":
            s = eigen_sequences(law, b, d, t + 1, seed=g)
        else:
            s, _ = rotation_sequences(b, d, t + 1, seed=g)
        pred = _predict(s.to(C.device), C, P[:, : t + 1, : t + 1], rows.to(C.device))[:, :, 0]  # (M, b, d)
        err = (pred - s[None, :, t].to(C.device)).abs().pow(2).sum(-1).double().cpu()  # (M, b)
        total += err.sum(-1)
        total_sq += err.pow(2).sum(-1)
        done += b
        bar.update(b)
    bar.close()
    mean = total / n
    var = (total_sq / n - mean.pow(2)).clamp_min(0) * n / max(n - 1, 1)
    return MCEstimate(mean, (var / n).sqrt())


# ----------------------------------------------------------------------------------------------- training
class _PopulationObjective(BatchedModel):
    """Wraps a :class:`MultiHeadDiagonal`: its forward returns the closed-form losses ``(M,)`` (inputs ignored)."""

    def __init__(self, model: MultiHeadDiagonal, law: str, variant: str):
        super().__init__(model.n_models)
        self.model, self.law, self.variant = model, law, variant

    def forward(self, _inputs: object) -> torch.Tensor:
        return self.model.population_loss(self.law, self.variant)


def train_population(model: MultiHeadDiagonal, law: str, *, steps: int, lr: float | Sequence[float] | torch.Tensor,
                     optimizer: str = "sgd", momentum: float = 0.0, variant: str = "corrected",
                     progress: bool | None = None, desc: str | None = None) -> TrainResult:
    """Full-batch gradient descent on the closed-form population loss (summed over positions) of all ``M``
    models at once, with :func:`icar.train.train`. ``losses`` in the result are the summed losses ``(steps, M)``."""
    if not isinstance(model, MultiHeadDiagonal):
        raise TypeError(f"model must be an icar.multihead.MultiHeadDiagonal; got {type(model).__name__}")
    _check_law(law, model.d)
    if variant not in VARIANTS or (law == "orthogonal" and variant != "corrected"):
        raise ValueError(f"variant must be 'corrected' (or 'released' for the unitary law); got {variant!r}")
    objective = _PopulationObjective(model, law, variant)
    with course_threads(model.A.device):
        res = train(objective, lambda step, gen: (None, None), steps=steps, lr=lr, optimizer=optimizer,
                    momentum=momentum, loss_fn=lambda losses, _target: losses, progress=progress,
                    desc=desc or f"{law} closed-form GD")
    return TrainResult(res.losses, model)




# ----------------------------------------------------------------------------------------------- theory and readouts
def rank_floor(law: str, d: int, heads: int) -> float:
    r"""Smallest population loss per position with ``heads`` heads, unitary law: :math:`\max(d - H, 0)`
    (Eckart-Young on :math:`\|p_t C - I\|_F^2`, :math:`\operatorname{rank} C \le H`). For the orthogonal law the
    course proves only that 0 is reachable iff :math:`H \ge d/2`; it returns 0 there and ``nan`` below."""
    require_positive_int(d, "d")
    require_positive_int(heads, "heads")
    _check_law(law, d)
    if law == "unitary":
        return float(max(d - heads, 0))
    return 0.0 if heads >= d // 2 else float("nan")


def trig_solution(d: int, T: int, c: float = 1.0, b_over_a: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A zero-loss point of the orthogonal law: :math:`C = \mathrm{blockdiag}([[a, b], [b, a]])`, :math:`a = c`,
    :math:`p_{t,t} = 1/a`, :math:`p_{t,t-1} = -b/(a(a+b))`, every other :math:`p = 0`. Returns ``C`` ``(1, d, d)``
    and ``P`` ``(1, T, T)``, float64. ``b_over_a = 1`` is the rank-:math:`d/2` trigonometric solution."""
    require_even(d, "d")
    require_positive_int(T, "T")
    a, b = require_number(c, "c"), require_number(c, "c") * require_number(b_over_a, "b_over_a")
    if a == 0 or a + b == 0:
        raise ValueError(f"c must be non-zero and b_over_a must differ from -1 (need a != 0 and a + b != 0); "
                         f"got a = {a}, b = {b}")
    block = torch.tensor([[a, b], [b, a]], dtype=torch.float64)
    C = torch.block_diag(*[block] * (d // 2))[None]
    P = torch.zeros(1, T, T, dtype=torch.float64)
    idx = torch.arange(1, T - 1)
    P[0, idx, idx] = 1 / a
    P[0, idx, idx - 1] = -b / (a * (a + b))
    return C, P


def bands(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Readout of a positional encoding ``(M, T, T)``: the weights on the latest token :math:`p_{t,t}` and on the
    query token :math:`p_{t,t-1}`, ``(M, T-2)`` each, and the largest :math:`|p_{t,t'}|` elsewhere, ``(M,)``."""
    require_ndim(P, "P", (3,), "(M, T, T)")
    require_real(P, "P")
    require_finite(P, "P")
    T = P.shape[-1]
    P = P * position_mask(T, device=P.device).to(P.dtype)
    latest, query, _, _ = _rows(P)
    rest = P.clone()
    idx = torch.arange(1, T - 1, device=P.device)
    rest[:, idx, idx] = 0
    rest[:, idx, idx - 1] = 0
    return latest, query, rest.abs().flatten(1).amax(-1)


def pair_blocks(C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Readout of ``C`` ``(M, d, d)`` in 2x2 blocks: diagonal entries :math:`C_{ii}` ``(M, d)``, in-pair entries
    :math:`C_{2m,2m+1}, C_{2m+1,2m}` ``(M, d)``, and the largest off-block :math:`|C_{ik}|` ``(M,)``."""
    require_ndim(C, "C", (3,), "(M, d, d)")
    require_real(C, "C")
    require_finite(C, "C")
    d = require_even(C.shape[-1], "d")
    diag = torch.diagonal(C, 0, -2, -1)
    up, lo = C[:, 0::2, 1::2].diagonal(0, -2, -1), C[:, 1::2, 0::2].diagonal(0, -2, -1)
    inpair = torch.stack([up, lo], -1).reshape(C.shape[0], d)
    block = torch.block_diag(*[torch.ones(2, 2, dtype=torch.bool)] * (d // 2)).to(C.device)
    off = C.masked_fill(block, 0).abs().flatten(1).amax(-1)
    return diag, inpair, off


def predicted_head_gram(A0: torch.Tensor, B0: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    r"""Head Gram matrix :math:`AA^\top` predicted at a zero-loss point :math:`B^\top A = cI` (``H = d``) from the
    quantity :math:`E = AA^\top - BB^\top` that gradient flow conserves, evaluated at the initialisation:
    :math:`AA^\top = E/2 + (E^2/4 + c^2 I)^{1/2}`. ``A0, B0`` ``(M, H, d)``, ``c`` ``(M,)``. Returns ``(M, H, H)``."""
    require_ndim(A0, "A0", (3,), "(M, H, d)")
    require_shape(B0, "B0", tuple(A0.shape), "(M, H, d)")
    require_shape(c, "c", (A0.shape[0],), "(M,)")
    for x, name in ((A0, "A0"), (B0, "B0"), (c, "c")):
        require_real(x, name)
        require_finite(x, name)
    E = A0 @ A0.mT - B0 @ B0.mT
    eye = torch.eye(E.shape[-1], dtype=E.dtype, device=E.device)
    evals, evecs = torch.linalg.eigh(E @ E / 4 + c[:, None, None] ** 2 * eye)
    root = evecs @ torch.diag_embed(evals.clamp_min(0).sqrt()) @ evecs.mT
    return E / 2 + root


def token_coefficients(C: torch.Tensor, P: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    r"""Coefficient of each context token in the prediction, for real states: the model predicts
    :math:`\hat s_{t+1,i} = \sum_{t'} \kappa_{t,t',i}\, s_{t',i}` with
    :math:`\kappa_{t,t',i} = p_{t,t'} \sum_k C_{ik}\, s_{t-1,k} s_{t',k}`.

    For the trigonometric solution, :math:`\kappa_{t,t} = 2\cos\theta` (per 2-block), :math:`\kappa_{t,t-1} = -1` and
    every other coefficient is 0. ``C`` ``(M, d, d)``, ``P`` ``(M, T, T)``, ``states`` ``(B, T, d)`` real.
    Returns ``(M, B, T-2, T, d)`` (rows :math:`t = 2..T-1`).
    """
    C, P = _check_CP(C, P)
    require_ndim(states, "states", (3,), "(B, T, d)")
    require_real(states, "states")
    require_finite(states, "states")
    T = P.shape[-1]
    if states.shape[1:] != (T, C.shape[-1]):
        raise ValueError(f"states must have shape (B, T, d) = (*, {T}, {C.shape[-1]}); got {tuple(states.shape)}")
    rows = torch.arange(2, T, device=states.device)
    X = states[:, rows - 2, None, :] * states[:, None, :, :]  # (B, R, T, d)
    P = P.to(states)
    return P[:, rows - 1][:, None, :, :, None] * torch.einsum("mik,brtk->mbrti", C.to(states), X)
