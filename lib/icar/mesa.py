r"""The mesa-optimizer of an autoregressively trained linear Transformer (a course derivation following
Zheng et al., 2024, arXiv 2405.16845).

Setting. States :math:`x_t \in \mathbb C^d` with :math:`x_{t+1} = W x_t`, :math:`W = \mathrm{diag}(\lambda)` unitary
(``icar.data.unitary_diagonal``); tokens :math:`e_t = (x_t; x_{t-1}) \in \mathbb C^{2d}` with :math:`x_0 = 0`; one
causal linear-attention layer normalised by :math:`t-1`,

.. math:: \hat y_t = W^{PV} \, E_t \, E_t^{*} \, W^{KQ} e_t / (t-1), \qquad E_t = (e_1, \dots, e_t),

with :math:`W^{KQ} \in \mathbb C^{2d \times 2d}` and :math:`W^{PV} \in \mathbb C^{d \times 2d}` (every entry trained),
predicting :math:`x_{t+1}` at positions :math:`t = 2..T-1`. The training loss is
:math:`L = \sum_{t=2}^{T-1} \mathrm{mean}_n \tfrac12 \|\hat y_t - x_{t+1}\|^2`.

The *relevant blocks* are :math:`W^{KQ}[d{:}2d, 0{:}d]` (``a`` on its diagonal) and :math:`W^{PV}[:, 0{:}d]` (``b``):
with only these two blocks equal to :math:`aI, bI`, the model is one gradient step from 0, with step :math:`ab`, on the
in-context least squares :math:`\frac{1}{2(t-1)}\sum_{i<t}\|x_{i+1} - \hat W x_i\|^2`.

Everything is batched over a leading model dimension ``M``: ``K`` is ``(M, 2d, 2d)`` and ``P`` is ``(M, d, 2d)``.
Two implementations of the same layer are provided: :class:`MesaAttention` (the literal formula, autograd) and
:func:`loss_and_grad` (a closed-form gradient that uses :math:`x_{t-1} = \bar\Lambda x_t`, about ten times faster;
the tests check that both agree to float64 rounding). Complex gradients follow PyTorch's convention
:math:`\partial L/\partial \mathrm{Re} + i\,\partial L/\partial \mathrm{Im}`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .data import initial_states, rollout, unitary_diagonal
from .estimators import gd_estimates, predictions
from .models import BatchedModel
from .runtime import DeviceLike, make_generator, progress_enabled, resolve_device
from .tokens import augment
from .validate import (
    require_finite,
    require_floating,
    require_nonnegative,
    require_number,
    require_positive,
    require_positive_int,
    require_ndim,
    require_real,
    require_shape,
    require_tensor,
)

Seed = int | torch.Generator
CDOUBLE = torch.complex128
SAMPLE_LAWS = ("gaussian", "sparse", "ones", "rademacher", "uniform")


# ----------------------------------------------------------------------------------------------- validation
def _numbers(x: float | Sequence[float] | torch.Tensor, name: str) -> torch.Tensor:
    """One real number or one per model, finite: ``(M,)`` float64."""
    if isinstance(x, torch.Tensor):
        require_real(x, name)
        require_finite(x, name)
        return x.detach().to(torch.float64).flatten()
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} must hold at least one number; got an empty {type(x).__name__}")
        return torch.tensor([require_number(v, name) for v in x], dtype=torch.float64)
    return torch.tensor([require_number(x, name)], dtype=torch.float64)


def _check_states(states: torch.Tensor, name: str = "states") -> torch.Tensor:
    require_ndim(states, name, (3,), "(n, T, d)")
    require_finite(states, name)
    if not states.is_complex():
        raise TypeError(f"{name} must be complex (the unitary context rotates real states into the complex plane); "
                        f"got dtype {states.dtype}")
    if states.shape[1] < 3:
        raise ValueError(f"{name} must hold T >= 3 time steps (positions t = 2..T-1 are predicted); got shape "
                         f"{tuple(states.shape)}")
    return states


def check_diagonal_unitary(W: torch.Tensor, name: str = "W", atol: float = 1e-10) -> torch.Tensor:
    """``W`` must be a complex batch ``(n, d, d)`` of *diagonal* unitary matrices; returns the eigenvalues ``(n, d)``."""
    require_ndim(W, name, (3,), "(n, d, d)")
    require_finite(W, name)
    require_positive(atol, "atol")
    if W.shape[-1] != W.shape[-2]:
        raise ValueError(f"{name} must be square, shape (n, d, d); got {tuple(W.shape)}")
    if not W.is_complex():
        raise TypeError(f"{name} must be complex (diagonal unitary, entries e^(i theta)); got dtype {W.dtype}")
    lam = torch.diagonal(W, dim1=-2, dim2=-1)
    off = (W - torch.diag_embed(lam)).abs().amax().item() if W.numel() else 0.0
    if off > atol:
        raise ValueError(f"{name} must be diagonal (this chapter's contexts are diag(e^(i theta))); got an "
                         f"off-diagonal entry of modulus {off:.2e}")
    dev = (lam.abs() - 1).abs().amax().item()
    if dev > atol:
        raise ValueError(f"{name} must be unitary: every |lambda_j| = 1; got max ||lambda_j| - 1| = {dev:.2e}")
    return lam


def _check_params(K: torch.Tensor, P: torch.Tensor) -> int:
    require_ndim(K, "K", (3,), "(M, 2d, 2d)")
    require_ndim(P, "P", (3,), "(M, d, 2d)")
    for x, name in ((K, "K"), (P, "P")):
        require_floating(x, name)
        require_finite(x, name)
    M, D, D2 = K.shape
    if D != D2 or D % 2:
        raise ValueError(f"K (W^KQ) must have shape (M, 2d, 2d); got {tuple(K.shape)}")
    require_shape(P, "P", (M, D // 2, D), f"(M, d, 2d) = ({M}, {D // 2}, {D})")
    return D // 2


# ----------------------------------------------------------------------------------------------- data
def tokens(states: torch.Tensor) -> torch.Tensor:
    r"""Tokens :math:`e_t = (x_t; x_{t-1})`, :math:`x_0 = 0`: ``(n, T, d)`` -> ``(n, T, 2d)``."""
    require_ndim(states, "states", (3,), "(n, T, d)")
    require_floating(states, "states")
    require_finite(states, "states")
    return augment(states, answer_slot=False)


def sample(law: str, n: int, d: int, T: int, *, seed: Seed, scale: float = 1.0,
           device: DeviceLike = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` sequences of the chapter's data: ``W = diag(e^{i\theta})`` and a *real* initial state from law ``law``
    (``"gaussian"``, ``"sparse"``, ``"ones"`` of :func:`icar.data.initial_states`; ``"rademacher"``: i.i.d.
    :math:`\pm c`; ``"uniform"``: i.i.d. :math:`U[-c, c]`), stored complex.
    Returns ``(states (n, T, d), W (n, d, d))`` in complex128."""
    require_positive(scale, "scale")
    g = make_generator(seed)
    W = unitary_diagonal(n, d, seed=g)
    if law == "uniform":
        x1 = uniform_init_states(n, d, seed=g, scale=scale)
    elif law == "rademacher":
        x1 = initial_states("phases", n, d, seed=g, scale=scale * math.sqrt(d), dtype=torch.float64).to(CDOUBLE)
    elif law in ("gaussian", "sparse", "ones"):
        x1 = initial_states(law, n, d, seed=g, scale=scale, dtype=torch.float64).to(CDOUBLE)
    else:
        raise ValueError(f"law must be one of {SAMPLE_LAWS}; got {law!r}")
    dev = resolve_device(device)
    return rollout(W, x1, T).to(dev), W.to(dev)


def sign_patterns(d: int) -> torch.Tensor:
    r"""A group of :math:`2^k` sign vectors (:math:`2^k \ge d`), ``(2^k, d)``: :math:`s_j(v) = (-1)^{\langle v, j\rangle}`
    for :math:`v \in \{0,1\}^k`, with the coordinate index :math:`j` written in binary.

    Two coordinates :math:`j \ne k` have different binary codes, so :math:`s_j s_k` averages to 0 over the group: a
    sample closed under these flips is sign-symmetric for every pair of coordinates (8 patterns suffice for d = 5)."""
    require_positive_int(d, "d")
    k = max(1, math.ceil(math.log2(d)))
    v = torch.arange(2 ** k)[:, None]
    j = torch.arange(d)[None, :]
    parity = torch.zeros(2 ** k, d, dtype=torch.long)
    for bit in range(k):
        parity ^= ((v >> bit) & 1) & ((j >> bit) & 1)
    return (1 - 2 * parity).to(torch.float64)


def symmetrize(states: torch.Tensor, W: torch.Tensor, *, signs: bool = True, phases: int = 3,
               shifts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Close a sample under the symmetries that the theory averages over; each sequence becomes all its images.

    * ``signs``: flip coordinate signs by every pattern of :func:`sign_patterns` (the sequence flips with :math:`x_1`);
    * ``phases``: rotate every eigenvalue by the same root of unity, :math:`\lambda 	o \omega\lambda`,
      :math:`\omega^{	ext{phases}} = 1`, i.e. :math:`x_t 	o \omega^{t-1} x_t` (``phases=1``: off);
    * ``shifts``: shift the coordinates cyclically (of :math:`x_1` and :math:`\lambda` together).

    Returns ``(states, W)`` with ``n * (#signs) * phases * (d if shifts else 1)`` sequences, images of one sequence
    adjacent."""
    _check_states(states)
    lam = check_diagonal_unitary(W)
    require_positive_int(phases, "phases")
    n, T, d = states.shape
    S = sign_patterns(d).to(states.device) if signs else torch.ones(1, d, dtype=torch.float64, device=states.device)
    x = states[:, None] * S[None, :, None, :]  # (n, s, T, d)
    l = lam[:, None].expand(n, S.shape[0], d)
    omega = torch.polar(torch.ones(phases, dtype=torch.float64), 2 * math.pi * torch.arange(phases, dtype=torch.float64)
                        / phases).to(states.device)
    tpow = omega[:, None] ** torch.arange(T, device=states.device)[None, :]  # (phases, T)
    x = x[:, :, None] * tpow[None, None, :, :, None]  # (n, s, p, T, d)
    l = l[:, :, None] * omega[None, None, :, None]  # (n, s, p, d)
    if shifts:
        x = torch.stack([torch.roll(x, k, dims=-1) for k in range(d)], dim=3)  # (n, s, p, d_shift, T, d)
        l = torch.stack([torch.roll(l, k, dims=-1) for k in range(d)], dim=3)
    return x.reshape(-1, T, d), torch.diag_embed(l.reshape(-1, d))


def exact_population(support: torch.Tensor, T: int, n_roots: int, weights: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""A weighted data set whose weighted mean *is* the population expectation over :math:`\lambda` and :math:`x_1`.

    :math:`x_1` ranges over ``support`` ``(S, d)`` (real or complex) with probabilities ``weights`` (uniform if
    ``None``); every :math:`\lambda_j` ranges over the ``n_roots``-th roots of unity. A polynomial of degree
    :math:`< n_\mathrm{roots}` in each :math:`\lambda_j, \bar\lambda_j` has the same average on the roots as on the
    circle; the loss and its gradient have degree :math:`\le 3(T-1)` in each, so ``n_roots > 3(T-1)`` makes the average
    exact. Returns ``(states (S n_roots^d, T, d), W, weights)`` in complex128."""
    require_tensor(support, "support")
    require_ndim(support, "support", (2,), "(S, d)")
    require_floating(support, "support")
    require_finite(support, "support")
    require_positive_int(T, "T")
    require_positive_int(n_roots, "n_roots")
    if n_roots <= 3 * (T - 1):
        raise ValueError(f"n_roots must exceed 3(T-1) = {3 * (T - 1)} for the root-of-unity average to be exact; "
                         f"got {n_roots}")
    S, d = support.shape
    if weights is None:
        weights = torch.full((S,), 1.0 / S, dtype=torch.float64)
    require_shape(weights, "weights", (S,), "(S,)")
    require_real(weights, "weights")
    require_finite(weights, "weights")
    if (weights < 0).any() or abs(weights.sum().item() - 1) > 1e-12:
        raise ValueError("weights must be non-negative and sum to 1")
    grid = torch.cartesian_prod(*[torch.arange(n_roots)] * d).reshape(-1, d).to(torch.float64)
    lam = torch.polar(torch.ones_like(grid), 2 * math.pi * grid / n_roots)  # (n_roots^d, d)
    G = lam.shape[0]
    lam = lam.repeat(S, 1)
    x1 = support.to(CDOUBLE).repeat_interleave(G, dim=0)
    W = torch.diag_embed(lam)
    w = weights.to(torch.float64).repeat_interleave(G) / G
    return rollout(W, x1, T), W, w


# ----------------------------------------------------------------------------------------------- parameters
def diagonal_init(a0: float | Sequence[float] | torch.Tensor, b0: float | Sequence[float] | torch.Tensor, d: int, *,
                  device: DeviceLike = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    r"""The diagonal initialisation: :math:`W^{KQ}[d{:}2d, 0{:}d] = a_0 I`, :math:`W^{PV}[:, 0{:}d] = b_0 I`, zeros
    elsewhere. ``a0``, ``b0``: one number each or one per model ``(M,)``. Returns ``(K (M, 2d, 2d), P (M, d, 2d))``."""
    require_positive_int(d, "d")
    a, b = _numbers(a0, "a0"), _numbers(b0, "b0")
    if a.numel() != b.numel():
        if a.numel() == 1:
            a = a.expand(b.numel())
        elif b.numel() == 1:
            b = b.expand(a.numel())
        else:
            raise ValueError(f"a0 and b0 must have the same number of models; got {a.numel()} and {b.numel()}")
    M = a.numel()
    eye = torch.eye(d, dtype=CDOUBLE)
    K = torch.zeros(M, 2 * d, 2 * d, dtype=CDOUBLE)
    P = torch.zeros(M, d, 2 * d, dtype=CDOUBLE)
    K[:, d:, :d] = a[:, None, None] * eye
    P[:, :, :d] = b[:, None, None] * eye
    dev = resolve_device(device)
    return K.to(dev), P.to(dev)


def _check_blocks(K: torch.Tensor, P: torch.Tensor) -> None:
    """``K`` ``(..., 2d, 2d)`` and ``P`` ``(..., d, 2d)``, finite floating tensors (any leading dimensions)."""
    for x, name in ((K, "K"), (P, "P")):
        require_floating(x, name)
        require_finite(x, name)
        if x.dim() < 2:
            raise ValueError(f"{name} must have at least 2 dimensions; got {tuple(x.shape)}")
    D = K.shape[-1]
    if K.shape[-2] != D or D % 2 or P.shape[-2:] != (D // 2, D):
        raise ValueError(f"K and P must have shapes (..., 2d, 2d) and (..., d, 2d); got {tuple(K.shape)} and {tuple(P.shape)}")


def relevant_blocks(K: torch.Tensor, P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two blocks that carry the prediction: ``K[..., d:, :d]`` and ``P[..., :, :d]``, each ``(..., d, d)``."""
    _check_blocks(K, P)
    d = P.shape[-2]
    return K[..., d:, :d], P[..., :, :d]


def diagonals(K: torch.Tensor, P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real parts of the diagonals of the relevant blocks, ``(a_j)`` and ``(b_j)``: each ``(..., d)``."""
    Kb, Pb = relevant_blocks(K, P)
    return torch.diagonal(Kb, dim1=-2, dim2=-1).real, torch.diagonal(Pb, dim1=-2, dim2=-1).real


def step_size(K: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    r"""The effective in-context step :math:`ab = \mathrm{mean}_j\, a_j b_j` (the paper's logged quantity)."""
    a, b = diagonals(K, P)
    return (a * b).mean(-1)


def structure_report(K: torch.Tensor, P: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""How far parameters are from the two-scalar family, per model (leading dimensions kept):

    * ``offdiag``: max modulus of the off-diagonal entries of the two relevant blocks;
    * ``other``: max modulus of every entry outside the two relevant blocks;
    * ``spread``: max over j of :math:`|a_j - \bar a|` and :math:`|b_j - \bar b|` (unequal diagonals);
    * ``imag``: max modulus of the imaginary parts on the two diagonals.
    """
    _check_blocks(K, P)
    d = P.shape[-2]
    Kb, Pb = relevant_blocks(K, P)
    eye = torch.eye(d, dtype=torch.bool, device=K.device)
    off = torch.maximum(Kb.abs().masked_fill(eye, 0).flatten(-2).amax(-1), Pb.abs().masked_fill(eye, 0).flatten(-2).amax(-1))
    Km = K.abs().clone()
    Km[..., d:, :d] = 0
    Pm = P.abs().clone()
    Pm[..., :, :d] = 0
    other = torch.maximum(Km.flatten(-2).amax(-1), Pm.flatten(-2).amax(-1))
    a, b = diagonals(K, P)
    spread = torch.maximum((a - a.mean(-1, keepdim=True)).abs().amax(-1), (b - b.mean(-1, keepdim=True)).abs().amax(-1))
    imag = torch.maximum(torch.diagonal(Kb, dim1=-2, dim2=-1).imag.abs().amax(-1),
                         torch.diagonal(Pb, dim1=-2, dim2=-1).imag.abs().amax(-1))
    return {"offdiag": off, "other": other, "spread": spread, "imag": imag}


# ----------------------------------------------------------------------------------------------- the layer
def _norm(T: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Weights 1/(t-1) at positions t = 2..T-1 (index t-1), 0 elsewhere: ``(T,)``."""
    t = torch.arange(1, T + 1, device=device, dtype=dtype)
    w = torch.where((t >= 2) & (t <= T - 1), 1.0 / (t - 1).clamp(min=1), torch.zeros_like(t))
    return w


def attention(K: torch.Tensor, P: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    r"""The literal layer :math:`\hat y_t = W^{PV} E_t E_t^* W^{KQ} e_t / (t-1)` for ``t = 2..T-1``.

    ``K`` ``(M, 2d, 2d)``, ``P`` ``(M, d, 2d)``, ``states`` ``(n, T, d)`` complex. Returns ``(M, n, T-2, d)``:
    index ``t-2`` is the prediction of :math:`x_{t+1}`. Cost :math:`O(M n T^2 d)`: the reference implementation."""
    d = _check_params(K, P)
    _check_states(states)
    if states.shape[-1] != d:
        raise ValueError(f"states must have last dimension d={d} (parameters are for d={d}); got {tuple(states.shape)}")
    T = states.shape[1]
    e = tokens(states)
    q = torch.einsum("mab,ntb->mnta", K, e)
    scores = torch.einsum("nic,mntc->mnti", e.conj(), q)
    mask = torch.ones(T, T, dtype=torch.bool, device=states.device).tril()
    scores = scores.masked_fill(~mask, 0) * _norm(T, torch.float64, states.device)[:, None]
    v = torch.einsum("mrc,nic->mnir", P, e)
    return torch.einsum("mnti,mnir->mntr", scores, v)[:, :, 1:T - 1]


def loss_from_predictions(pred: torch.Tensor, states: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    r""":math:`\sum_{t=2}^{T-1} \mathrm{mean}_n \tfrac12\|\hat y_t - x_{t+1}\|^2` per model: ``(M,)``. ``weights``
    ``(n,)`` (summing to 1) replaces the plain mean by a weighted one."""
    require_floating(pred, "pred")
    _check_states(states)
    if pred.dim() != 4 or pred.shape[1:] != (states.shape[0], states.shape[1] - 2, states.shape[2]):
        raise ValueError(f"pred must have shape (M, n, T-2, d) for states {tuple(states.shape)}; got {tuple(pred.shape)}")
    if weights is not None:
        require_shape(weights, "weights", (states.shape[0],), "(n,)")
        require_real(weights, "weights")
        require_finite(weights, "weights")
    err = 0.5 * (pred - states[None, :, 2:]).abs().pow(2).sum((-1, -2))  # (M, n)
    if weights is None:
        return err.mean(1)
    return err @ weights.to(err.dtype)


class MesaAttention(BatchedModel):
    r"""The chapter's layer as a :class:`icar.models.BatchedModel` (parameters ``W_KQ`` ``(M, 2d, 2d)``, ``W_PV``
    ``(M, d, 2d)``, complex128), for :func:`icar.train.train`. ``forward(states)`` -> ``(M, n, T-2, d)``."""

    def __init__(self, K: torch.Tensor, P: torch.Tensor):
        d = _check_params(K, P)
        super().__init__(K.shape[0])
        self.d = d
        self.W_KQ = torch.nn.Parameter(K.clone().to(CDOUBLE))
        self.W_PV = torch.nn.Parameter(P.clone().to(CDOUBLE))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return attention(self.W_KQ, self.W_PV, states)


def one_step_gd_predictions(states: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
    r"""Predictions of one GD step from 0, with step :math:`p`, on :math:`\frac{1}{2(t-1)}\sum_{i<t}\|x_{i+1} -
    \hat W x_i\|^2`, applied to :math:`x_t` (computed with :func:`icar.estimators.gd_estimates`).

    ``p``: a number or ``(M,)``. Returns ``(M, n, T-2, d)`` aligned with :func:`attention`."""
    _check_states(states)
    _numbers(p, "p")
    T = states.shape[1]
    p_t = torch.as_tensor(p, dtype=torch.float64).flatten()
    C = gd_estimates(states, _norm(T, torch.float64, torch.device("cpu")).to(states.device))  # C_t / (t-1)
    base = predictions(C, states)[:, 1:T - 1]
    return p_t.to(states.device)[:, None, None, None] * base[None]


# ----------------------------------------------------------------------------------------------- fast gradient
@dataclass
class Prepared:
    r"""Data pre-processed for :func:`loss_and_grad`. The sequences are cut into chunks of ``chunk`` sequences (small
    temporaries stay in cache: element-wise complex products on huge tensors are limited by memory allocation), each
    laid out with the time axis last: states ``(n_c, d, T)``, eigenvalues of W ``(n_c, d)``, running Gram matrices
    :math:`R_t = \sum_{i=2}^{t} x_i x_i^*` as ``(n_c, d, d, T)`` and sequence weights ``(n_c,)``;
    ``norm`` ``(T,)`` holds :math:`1/(t-1)` on the trained positions and 0 elsewhere."""

    chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    norm: torch.Tensor
    d: int
    n: int


def prepare(states: torch.Tensor, W: torch.Tensor, weights: torch.Tensor | None = None, *,
            chunk: int | None = None) -> Prepared:
    """Check the data (complex states ``(n, T, d)`` generated by diagonal unitary ``W`` ``(n, d, d)``, optional
    sequence weights ``(n,)`` summing to 1) and pre-compute what the closed-form gradient needs. ``chunk``: sequences
    per chunk (default: about 32,000 states per chunk)."""
    _check_states(states)
    n, T, d = states.shape
    chunk = max(16, 32000 // (T * d)) if chunk is None else require_positive_int(chunk, "chunk")
    require_shape(W, "W", (n, d, d), "(n, d, d)")
    lam = check_diagonal_unitary(W)
    err = (states[:, 1:] - lam[:, None, :] * states[:, :-1]).abs().amax().item()
    scale = max(1.0, states.abs().amax().item())
    if err > 1e-9 * scale:
        raise ValueError(f"states do not follow x_(t+1) = W x_t (max deviation {err:.2e}); pass the W that generated them")
    if weights is None:
        weights = torch.full((n,), 1.0 / n, dtype=torch.float64, device=states.device)
    require_shape(weights, "weights", (n,), "(n,)")
    require_real(weights, "weights")
    require_finite(weights, "weights")
    if (weights < 0).any() or abs(weights.sum().item() - 1) > 1e-9:
        raise ValueError("weights must be non-negative and sum to 1")
    chunks = []
    for s in range(0, n, chunk):
        Xl = states[s:s + chunk].transpose(1, 2).contiguous()  # (n_c, d, T)
        outer = Xl[:, :, None] * Xl.conj()[:, None]  # (n_c, d, d, T)
        outer[..., 0] = 0
        chunks.append((Xl, lam[s:s + chunk].contiguous(), torch.cumsum(outer, dim=-1),
                       weights[s:s + chunk].to(torch.float64)))
    return Prepared(chunks, _norm(T, torch.float64, states.device), d, n)


def loss_and_grad(K: torch.Tensor, P: torch.Tensor, data: Prepared) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Loss ``(M,)`` and its gradients ``dK`` ``(M, 2d, 2d)``, ``dP`` ``(M, d, 2d)`` (PyTorch's complex convention),
    in closed form, accumulated over the chunks of ``data``.

    Since :math:`x_{t-1} = \bar\Lambda x_t`, every token with :math:`t \ge 2` is :math:`e_t = F x_t` with
    :math:`F = (I; \bar\Lambda)`, so :math:`E_tE_t^* = F R_t F^* + e_1e_1^*` and
    :math:`\hat y_t = [\tilde P R_t \tilde K x_t + (P e_1)(e_1^* K F x_t)]/(t-1)` with :math:`\tilde P = PF`,
    :math:`\tilde K = F^* K F`: :math:`O(M n T d^2)` instead of :math:`O(M n T^2 d)`."""
    d = _check_params(K, P)
    if not isinstance(data, Prepared):
        raise TypeError(f"data must be icar.mesa.Prepared (from prepare(states, W)); got {type(data).__name__}")
    if data.d != d:
        raise ValueError(f"data have d={data.d} but the parameters are for d={d}")
    loss = torch.zeros(K.shape[0], dtype=torch.float64, device=K.device)
    dK, dP = torch.zeros_like(K), torch.zeros_like(P)
    for X, lam, R, w in data.chunks:
        lo, gK, gP = _chunk_loss_and_grad(K, P, X, lam, R, w, data.norm)
        loss += lo
        dK += gK
        dP += gP
    return loss, dK, dP


def _gram_apply(R: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r""":math:`R_t q_t` for every model, sequence and position: ``R`` ``(n, d, d, T)``, ``q`` ``(M, n, d, T)`` ->
    ``(M, n, d, T)``, as ``d`` fused multiply-adds into one buffer (no temporary per term)."""
    out = R[None, :, :, 0] * q[:, :, 0, None]
    for k in range(1, R.shape[2]):
        out.addcmul_(R[None, :, :, k], q[:, :, k, None])
    return out


def _chunk_loss_and_grad(K: torch.Tensor, P: torch.Tensor, X: torch.Tensor, lam: torch.Tensor, R: torch.Tensor,
                         w: torch.Tensor, norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # layouts: X (n, d, T), lam (n, d), R (n, d, d, T); per-model tensors (M, n, d, T); per-sequence matrices
    # (M, n, d, d) so that the products over the small axes are batched matrix products.
    d = X.shape[1]
    lc = lam.conj()
    x1 = X[:, :, 0]  # (n, d)
    K11, K12, K21, K22 = (B[:, None] for B in (K[:, :d, :d], K[:, :d, d:], K[:, d:, :d], K[:, d:, d:]))
    colc, rowl = lc[None, :, None, :], lam[None, :, :, None]
    Pt = P[:, None, :, :d] + P[:, None, :, d:] * colc  # P F : (M, n, d, d)
    KF1 = K11 + K12 * colc  # first block row of K F
    Kt = KF1 + rowl * (K21 + K22 * colc)  # F^* K F
    ke = torch.einsum("na,mnaj->mnj", x1.conj(), KF1)  # e_1^* K F : (M, n, d)
    pe = torch.einsum("mra,na->mnr", P[:, :, :d], x1)  # P e_1 : (M, n, d)
    q = torch.matmul(Kt, X)  # (M, n, d, T)
    u = _gram_apply(R, q)  # R_t q_t
    c = torch.matmul(ke[:, :, None, :], X)  # (M, n, 1, T)
    y = (torch.matmul(Pt, u) + pe[..., None] * c) * norm
    target = torch.cat([X[..., 1:], torch.zeros_like(X[..., :1])], dim=-1)  # x_{t+1} at index t-1
    r = (y - target) * (norm > 0)
    loss = 0.5 * ((r.real.square() + r.imag.square()).sum((2, 3)) @ w)
    rho = r * norm * w[:, None, None]  # weights folded in
    dPt = torch.matmul(rho, u.mH)  # sum_t rho_t u_t^* : (M, n, d, d)
    dpe = torch.matmul(rho, c.mH)[..., 0]  # (M, n, d)
    dP = torch.cat([dPt.sum(1) + torch.einsum("mnr,na->mra", dpe, x1.conj()), (dPt * lam[None, :, None, :]).sum(1)], dim=-1)
    du = torch.matmul(Pt.mH, rho)  # Pt^* rho_t
    dc = torch.matmul(pe.conj()[:, :, None, :], rho)  # (M, n, 1, T)
    dq = _gram_apply(R, du)  # R_t du_t (R_t is Hermitian)
    Xh = X.mH  # (n, T, d)
    dKt = torch.matmul(dq, Xh)  # sum_t dq_t x_t^* : (M, n, d, d)
    dke = torch.matmul(dc, Xh)[:, :, 0]  # (M, n, d)
    E1 = x1[None, :, :, None] * dke[:, :, None, :]  # x_1 dke
    colf = lam[None, :, None, :]
    top = torch.cat([(dKt + E1).sum(1), ((dKt + E1) * colf).sum(1)], dim=-1)
    bottom = torch.cat([(rowl.conj() * dKt).sum(1), (rowl.conj() * dKt * colf).sum(1)], dim=-1)
    dK = torch.cat([top, bottom], dim=-2)
    return loss, dK, dP


@dataclass
class GDRun:
    """A full-batch GD run: ``losses`` ``(steps, M)`` and parameter snapshots ``K`` ``(n_rec, M, 2d, 2d)``,
    ``P`` ``(n_rec, M, d, 2d)`` taken at the steps ``at`` ``(n_rec,)`` (0 = the initialisation)."""

    losses: torch.Tensor
    K: torch.Tensor
    P: torch.Tensor
    at: torch.Tensor

    @property
    def ab(self) -> torch.Tensor:
        """``ab`` along the run, ``(n_rec, M)``."""
        return step_size(self.K, self.P)


def gd(K0: torch.Tensor, P0: torch.Tensor, data: Prepared, *, steps: int, lr: float | Sequence[float] | torch.Tensor,
       mask_offdiag: bool = False, record_every: int = 1, progress: bool | None = None, desc: str = "full-batch GD") -> GDRun:
    r"""Full-batch gradient descent of all ``M`` models at once: :math:`\theta \leftarrow \theta - \eta_m \nabla L`.

    ``lr``: one step size or one per model. ``mask_offdiag=True`` keeps only the gradient on the diagonals of the two
    relevant blocks (the *masked* dynamics). Parameters are recorded every ``record_every`` steps and at the end."""
    _check_params(K0, P0)
    require_positive_int(steps, "steps")
    require_positive_int(record_every, "record_every")
    M = K0.shape[0]
    if not isinstance(data, Prepared):
        raise TypeError(f"data must be icar.mesa.Prepared (from prepare(states, W)); got {type(data).__name__}")
    lr_t = _numbers(lr, "lr")
    if lr_t.numel() == 1:
        lr_t = lr_t.expand(M)
    if lr_t.numel() != M or (lr_t <= 0).any():
        raise ValueError(f"lr must be one positive number or one per model (M={M}); got {lr_t.tolist()}")
    lr_t = lr_t.to(K0.device)[:, None, None]
    K, P = K0.clone(), P0.clone()
    d = P.shape[-2]
    if mask_offdiag:
        eye = torch.eye(d, dtype=torch.bool, device=K.device)
        mK = torch.zeros(2 * d, 2 * d, dtype=torch.bool, device=K.device)
        mK[d:, :d] = eye
        mP = torch.zeros(d, 2 * d, dtype=torch.bool, device=K.device)
        mP[:, :d] = eye
    Ks, Ps, at = [K.clone()], [P.clone()], [0]
    losses: torch.Tensor | None = None   # (steps, M), allocated once (see icar.train.train)
    show = progress_enabled() if progress is None else progress
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not show, leave=False):
        loss, dK, dP = loss_and_grad(K, P, data)
        if mask_offdiag:
            dK, dP = dK * mK, dP * mP
        K = K - lr_t * dK
        P = P - lr_t * dP
        if losses is None:
            losses = loss.new_empty(steps, *loss.shape)
        losses[step - 1] = loss
        if step % record_every == 0 or step == steps:
            Ks.append(K.clone())
            Ps.append(P.clone())
            at.append(step)
    return GDRun(losses.cpu(), torch.stack(Ks).cpu(), torch.stack(Ps).cpu(), torch.tensor(at))


def evaluate_loss(K: torch.Tensor, P: torch.Tensor, data: Prepared) -> torch.Tensor:
    """Loss of each model on ``data`` (no gradient step): ``(M,)``."""
    return loss_and_grad(K, P, data)[0]


# ----------------------------------------------------------------------------------------------- reduced dynamics
def reduced_terms(states: torch.Tensor, *, chunk: int = 512) -> torch.Tensor:
    r"""Per-sequence terms of the loss on the two-scalar family: ``(n, 3)`` with columns
    :math:`M_i = \sum_t \|z_t\|^2`, :math:`N_i = \sum_t \mathrm{Re}\langle z_t, x_{t+1}\rangle`,
    :math:`D_i = \sum_t \|x_{t+1}\|^2` (t = 2..T-1), where :math:`z_t` is the prediction at :math:`p = 1`. Computed
    ``chunk`` sequences at a time (memory :math:`O(\text{chunk}\, T d^2)`)."""
    _check_states(states)
    require_positive_int(chunk, "chunk")
    out = []
    for s in range(0, states.shape[0], chunk):
        x = states[s:s + chunk]
        z = one_step_gd_predictions(x, 1.0)[0]  # (n_c, T-2, d)
        y = x[:, 2:]
        out.append(torch.stack([z.abs().pow(2).sum((-1, -2)), (z.conj() * y).real.sum((-1, -2)),
                                y.abs().pow(2).sum((-1, -2))], dim=-1))
    return torch.cat(out)


def reduced_coefficients(states: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[float, float, float]:
    r"""Coefficients of the loss on the two-scalar family, :math:`L(p) = \tfrac12(\hat M p^2 - 2\hat N p + \hat D)`,
    measured on ``states`` (weighted mean of :func:`reduced_terms`; plain mean if ``weights`` is ``None``). Its
    minimiser :math:`\hat N/\hat M` is where full-batch GD on ``states`` must take :math:`ab`."""
    terms = reduced_terms(states)
    n = terms.shape[0]
    w = torch.full((n,), 1.0 / n, dtype=torch.float64, device=terms.device) if weights is None else weights
    Mh, Nh, Dh = (w @ terms).tolist()
    return Mh, Nh, Dh


def ratio_estimate(terms: torch.Tensor) -> tuple[float, float]:
    r"""Monte-Carlo estimate of :math:`p^* = E N_i / E M_i` from i.i.d. :func:`reduced_terms` and its standard error
    (delta method: :math:`\mathrm{sd}(N_i - \hat p M_i) / (\sqrt n\, \bar M)`)."""
    require_ndim(terms, "terms", (2,), "(n, 3)")
    require_real(terms, "terms")
    require_finite(terms, "terms")
    if terms.shape[0] < 2 or terms.shape[1] != 3 or not bool(terms[:, 0].mean() > 0):
        raise ValueError(f"terms must have shape (n, 3) with n >= 2 and a positive mean M_i (from reduced_terms); "
                         f"got shape {tuple(terms.shape)}")
    Mi, Ni = terms[:, 0], terms[:, 1]
    p = (Ni.mean() / Mi.mean()).item()
    se = ((Ni - p * Mi).std() / (math.sqrt(terms.shape[0]) * Mi.mean())).item()
    return p, se


def position_errors(states: torch.Tensor, p: float, *, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Squared error :math:`\|\hat y_t - x_{t+1}\|^2` of the two-scalar model with step ``p`` at every position
    t = 2..T-1: mean and standard error over the sequences, each ``(T-2,)``."""
    _check_states(states)
    require_number(p, "p")
    require_positive_int(chunk, "chunk")
    if states.shape[0] < 2:
        raise ValueError(f"states must hold n >= 2 sequences for a standard error; got shape {tuple(states.shape)}")
    parts = []
    for s in range(0, states.shape[0], chunk):
        x = states[s:s + chunk]
        parts.append((one_step_gd_predictions(x, p)[0] - x[:, 2:]).abs().pow(2).sum(-1))
    err = torch.cat(parts)
    return err.mean(0), err.std(0) / math.sqrt(err.shape[0])


def stable_lr(M: float, a0: Sequence[float] | torch.Tensor, b0: Sequence[float] | torch.Tensor, p_hat: float, d: int,
              fraction: float = 0.3) -> torch.Tensor:
    r"""One step size per model: ``fraction`` of the stability limit of the reduced dynamics,
    :math:`\eta = \text{fraction}\cdot d / (M \max(a_0^2 + b_0^2, 2\hat p))` (the curvature of the loss along the
    two scalars is at most :math:`(a^2 + b^2) M / d`, and :math:`a^2 + b^2 \ge 2ab`)."""
    require_positive(M, "M")
    require_number(p_hat, "p_hat")
    require_positive_int(d, "d")
    require_positive(fraction, "fraction")
    a, b = _numbers(a0, "a0"), _numbers(b0, "b0")
    return fraction * d / (M * torch.clamp(a**2 + b**2, min=2 * p_hat))


def reduced_gd(a0: torch.Tensor | float, b0: torch.Tensor | float, M: float, N: float, d: int, *,
               lr: float | torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""GD on the two scalars with one parameter per matrix entry:
    :math:`a \leftarrow a - \eta\,(b/d)(Mab - N)`, :math:`b \leftarrow b - \eta\,(a/d)(Mab - N)`, batched over models.
    Returns ``(a, b)``, each ``(steps+1, M)`` (row k = after k steps)."""
    require_positive_int(d, "d")
    require_positive_int(steps, "steps")
    require_positive(M, "M")
    require_number(N, "N")
    a, b = _numbers(a0, "a0").clone(), _numbers(b0, "b0").clone()
    eta = _numbers(lr, "lr")
    if not bool((eta > 0).all()):
        raise ValueError(f"lr must be positive; got {eta.tolist()}")
    A, B = [a.clone()], [b.clone()]
    for _ in range(steps):  # sequential by nature: step k+1 needs step k
        g = (M * a * b - N) / d
        a, b = a - eta * b * g, b - eta * a * g
        A.append(a.clone())
        B.append(b.clone())
    return torch.stack(A), torch.stack(B)


def reduced_flow(a0: torch.Tensor | float, b0: torch.Tensor | float, M: float, N: float, d: int, *,
                 times: torch.Tensor, substeps: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gradient flow :math:`\dot a = -(b/d)(Mab - N)`, :math:`\dot b = -(a/d)(Mab - N)` integrated with RK4 on the
    grid ``times`` (``(K,)``, increasing, starting at 0), ``substeps`` RK4 steps per interval. Returns ``(a, b)``,
    each ``(K, M)``."""
    require_ndim(times, "times", (1,), "(K,)")
    require_real(times, "times")
    require_finite(times, "times")
    if times.numel() < 1 or bool((times.diff() < 0).any()):
        raise ValueError(f"times must be a non-empty increasing grid; got {times.tolist()[:6]}")
    require_positive_int(d, "d")
    require_positive_int(substeps, "substeps")
    require_positive(M, "M")
    require_number(N, "N")
    a, b = _numbers(a0, "a0").clone(), _numbers(b0, "b0").clone()

    def f(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = (M * a * b - N) / d
        return -b * g, -a * g

    A, B = [a.clone()], [b.clone()]
    for k in range(1, times.numel()):
        h = (times[k] - times[k - 1]).item() / substeps
        for _ in range(substeps):
            k1 = f(a, b)
            k2 = f(a + h / 2 * k1[0], b + h / 2 * k1[1])
            k3 = f(a + h / 2 * k2[0], b + h / 2 * k2[1])
            k4 = f(a + h * k3[0], b + h * k3[1])
            a = a + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            b = b + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        A.append(a.clone())
        B.append(b.clone())
    return torch.stack(A), torch.stack(B)


def logistic_step(p0: float, p_star: float, N: float, d: int, tau: torch.Tensor) -> torch.Tensor:
    r"""Closed form of the balanced flow (:math:`a_0 = b_0 > 0`): :math:`p(\tau) = p^*/(1 + (p^*/p_0 - 1)
    e^{-2N\tau/d})`."""
    require_positive_int(d, "d")
    require_positive(p_star, "p_star")
    require_positive(N, "N")
    require_real(tau, "tau")
    require_finite(tau, "tau")
    if require_number(p0, "p0") <= 0:
        raise ValueError(f"p0 must be > 0 (the logistic solution needs p0 = a0 b0 > 0); got {p0}")
    return p_star / (1 + (p_star / p0 - 1) * torch.exp(-2 * N * tau / d))


def limit_parameters(a0: float, b0: float, p_star: float) -> tuple[float, float]:
    r"""Where the flow ends: :math:`\tilde a^2 = (\delta + \sqrt{\delta^2 + 4p^{*2}})/2`, :math:`\tilde b = p^*/\tilde a`,
    :math:`\delta = a_0^2 - b_0^2`, with the sign of :math:`a_0` (requires :math:`a_0 b_0 > 0`)."""
    require_positive(p_star, "p_star")
    if require_number(a0, "a0") * require_number(b0, "b0") <= 0:
        raise ValueError(f"a0 b0 must be positive (the flow converges to p* only from a0 b0 > 0); got a0={a0}, b0={b0}")
    delta = a0**2 - b0**2
    a = math.copysign(math.sqrt((delta + math.sqrt(delta**2 + 4 * p_star**2)) / 2), a0)
    return a, p_star / a


# ----------------------------------------------------------------------------------------------- population theory
@dataclass(frozen=True)
class InitMoments:
    r"""Moments of the coordinates of :math:`x_1` (exchangeable): :math:`m_2 = E|x_j|^2`, :math:`\kappa_1 = E|x_j|^4`,
    :math:`\kappa_2 = E|x_j|^6`, :math:`\kappa_3 = E|x_j|^2|x_k|^4` (:math:`j \ne k`)."""

    m2: float
    kappa1: float
    kappa2: float
    kappa3: float


INIT_LAWS = ("gaussian", "complex_gaussian", "sparse", "ones", "rademacher", "uniform")


def init_moments(law: str, d: int, scale: float = 1.0) -> InitMoments:
    r"""Closed-form moments for the laws of :math:`x_1` (``scale`` = :math:`\sigma` or :math:`c`):
    real Gaussian :math:`(\sigma^2, 3\sigma^4, 15\sigma^6, 3\sigma^6)`; complex Gaussian
    :math:`(\sigma^2, 2\sigma^4, 6\sigma^6, 2\sigma^6)`; sparse :math:`\pm c e_J`: :math:`(c^2/d, c^4/d, c^6/d, 0)`;
    all-ones :math:`c\mathbf 1`: :math:`(c^2, c^4, c^6, c^6)`; Rademacher :math:`\pm c`: the same as all-ones."""
    require_positive_int(d, "d")
    if isinstance(scale, bool) or not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number; got {scale!r}")
    s2 = float(scale) ** 2
    if law == "gaussian":
        return InitMoments(s2, 3 * s2**2, 15 * s2**3, 3 * s2**3)
    if law == "complex_gaussian":
        return InitMoments(s2, 2 * s2**2, 6 * s2**3, 2 * s2**3)
    if law == "sparse":
        return InitMoments(s2 / d, s2**2 / d, s2**3 / d, 0.0)
    if law in ("ones", "rademacher"):
        return InitMoments(s2, s2**2, s2**3, s2**3)
    if law == "uniform":
        return uniform_moments(float(scale))
    raise ValueError(f"law must be one of {INIT_LAWS}; got {law!r}")


def harmonic(n: int) -> float:
    r""":math:`H_n = \sum_{s=1}^n 1/s` (:math:`H_0 = 0`)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")
    return sum(1.0 / s for s in range(1, n + 1))


def _check_T(T: int) -> int:
    if not isinstance(T, int) or isinstance(T, bool) or T < 3:
        raise ValueError(f"T must be an integer >= 3 (positions 2..T-1 are trained); got {T!r}")
    return T


def _check_init_moments(m: object) -> "InitMoments":
    if not isinstance(m, InitMoments):
        raise TypeError(f"m must be icar.mesa.InitMoments (from init_moments(law, d)); got {type(m).__name__}")
    return m


def p_star(m: InitMoments, d: int, T: int) -> float:
    r"""The limit of :math:`ab`: :math:`p^* = \kappa_1 / (\kappa_2 + \kappa_3 (d-1) H_{T-2}/(T-2))`."""
    _check_init_moments(m)
    require_positive_int(d, "d")
    _check_T(T)
    return m.kappa1 / (m.kappa2 + m.kappa3 * (d - 1) * harmonic(T - 2) / (T - 2))


def population_coefficients(m: InitMoments, d: int, T: int) -> tuple[float, float, float]:
    r"""Population :math:`(M, N, D)` of :math:`L(p) = \tfrac12(Mp^2 - 2Np + D)`, exchangeable law:
    :math:`M = (T-2)\,d\kappa_2 + d(d-1)\kappa_3 H_{T-2}`, :math:`N = (T-2)\,d\kappa_1`, :math:`D = (T-2)\,d\,m_2`."""
    _check_init_moments(m)
    require_positive_int(d, "d")
    _check_T(T)
    M = (T - 2) * d * m.kappa2 + d * (d - 1) * m.kappa3 * harmonic(T - 2)
    return M, (T - 2) * d * m.kappa1, (T - 2) * d * m.m2


def reduced_loss_per_position(p: float, t: int, A: float, B: float, C: float, D: float) -> float:
    r"""Population loss at position :math:`t` on the two-scalar family, any law of :math:`x_1`:
    :math:`\tfrac12[p^2(A + B/(t-1)) - 2pC + D]` with :math:`A = E\sum_j|x_j|^6`,
    :math:`B = E\sum_{j \ne k}|x_j|^2|x_k|^4`, :math:`C = E\sum_j |x_j|^4`, :math:`D = E\|x\|^2`."""
    if isinstance(t, bool) or not isinstance(t, int) or t < 2:
        raise ValueError(f"t must be an integer >= 2; got {t!r}")
    for v, name in ((p, "p"), (A, "A"), (B, "B"), (C, "C"), (D, "D")):
        require_number(v, name)
    return 0.5 * (p**2 * (A + B / (t - 1)) - 2 * p * C + D)


def support_coefficients(support: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[float, float, float, float]:
    """The :math:`A, B, C, D` of :func:`reduced_loss_per_position` for a finite law of :math:`x_1` (``(S, d)``)."""
    require_ndim(support, "support", (2,), "(S, d)")
    require_floating(support, "support")
    require_finite(support, "support")
    if weights is not None:
        require_shape(weights, "weights", (support.shape[0],), "(S,)")
        require_real(weights, "weights")
        require_finite(weights, "weights")
    S = support.shape[0]
    w = torch.full((S,), 1.0 / S, dtype=torch.float64) if weights is None else weights.to(torch.float64)
    m2 = support.abs().to(torch.float64) ** 2
    A = ((m2**3).sum(1) @ w).item()
    C = ((m2**2).sum(1) @ w).item()
    D = (m2.sum(1) @ w).item()
    B = (((m2.sum(1, keepdim=True) - m2) * m2**2).sum(1) @ w).item()  # sum_j |x_j|^4 sum_{k != j} |x_k|^2
    return A, B, C, D


def asymptotic_error(m: InitMoments, d: int) -> float:
    r"""Error per position of the trained model as :math:`T \to \infty` then :math:`t \to \infty`:
    :math:`d\,(m_2 - \kappa_1^2/\kappa_2)`; zero iff every non-zero :math:`|x_{1j}|` has the same modulus."""
    _check_init_moments(m)
    require_positive_int(d, "d")
    return d * (m.m2 - m.kappa1**2 / m.kappa2)


def prediction_ratios(states: torch.Tensor, p: float) -> torch.Tensor:
    r"""Ratios :math:`\mathrm{Re}(\hat y_{t,j}/x_{t+1,j})` at the last position :math:`t = T-1` for the two-scalar
    layer with step ``p``: ``(n, d)``. Needs every :math:`x_{1j} \ne 0` (Gaussian or uniform laws)."""
    _check_states(states)
    require_number(p, "p")
    T = states.shape[1]
    x_t = states[:, T - 2]
    scores = torch.einsum("nid,nd->ni", states[:, :T - 2].conj(), x_t)  # x_i^* x_t, i = 1..t-1
    y = p / (T - 2) * torch.einsum("nid,ni->nd", states[:, 1:T - 1], scores)
    target = states[:, T - 1]
    if (target.abs() < 1e-12).any():
        raise ValueError("prediction ratios need non-zero targets in every coordinate (use a law without zeros)")
    return (y / target).real


# ----------------------------------------------------------------------------------------------- experiments
@dataclass
class Experiment:
    """A training experiment of the chapter: the run, the training set's reduced coefficients ``(M, N, D)``, the step
    sizes ``lr`` ``(M_models,)``, the initial scalars ``a0``, ``b0`` and the number of training sequences ``n``."""

    run: GDRun
    coeffs: tuple[float, float, float]
    lr: torch.Tensor
    a0: torch.Tensor
    b0: torch.Tensor
    n: int

    @property
    def p_hat(self) -> float:
        """The training set's optimum :math:`\\hat N/\\hat M`."""
        return self.coeffs[1] / self.coeffs[0]

    def reduced(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The two-scalar GD recursion with this experiment's coefficients and step sizes: ``(a, b)``."""
        M, N, _ = self.coeffs
        return reduced_gd(self.a0, self.b0, M, N, self.run.P.shape[-2], lr=self.lr, steps=self.run.losses.shape[0])


def train_symmetrized(law: str, base: int, d: int, T: int, *, a0: Sequence[float], b0: Sequence[float], steps: int,
                      seed: Seed, scale: float = 1.0, signs: bool = True, phases: int = 3, shifts: bool = True,
                      fraction: float = 0.3, mask_offdiag: bool = False, device: DeviceLike = "cpu",
                      desc: str = "full-batch GD") -> Experiment:
    r"""Draw ``base`` sequences of law ``law``, close the sample under the symmetries of :func:`symmetrize`, and train
    one model per initial pair ``(a0[m], b0[m])`` by full-batch GD on all entries, with the step sizes of
    :func:`stable_lr`."""
    require_positive_int(steps, "steps")
    _numbers(a0, "a0"), _numbers(b0, "b0")
    X, W = sample(law, base, d, T, seed=seed, scale=scale, device=device)
    X, W = symmetrize(X, W, signs=signs, phases=phases, shifts=shifts)
    coeffs = reduced_coefficients(X)
    a = torch.as_tensor(a0, dtype=torch.float64).flatten()
    b = torch.as_tensor(b0, dtype=torch.float64).flatten()
    lr = stable_lr(coeffs[0], a, b, coeffs[1] / coeffs[0], d, fraction)
    K, P = diagonal_init(a, b, d, device=device)
    run = gd(K, P, prepare(X, W), steps=steps, lr=lr, mask_offdiag=mask_offdiag, desc=desc)
    return Experiment(run, coeffs, lr, a, b, X.shape[0])


def exact_gradient(support: torch.Tensor, a: float, b: float, T: int, n_roots: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact population loss and gradient at the diagonal point ``(a, b)`` for :math:`x_1` uniform on ``support``
    ``(S, d)`` (eigenvalue phases averaged exactly on roots of unity, see :func:`exact_population`).
    Returns ``(loss (1,), dK (1, 2d, 2d), dP (1, d, 2d))``."""
    require_positive_int(T, "T")
    require_number(a, "a")
    require_number(b, "b")
    n_roots = 3 * (T - 1) + 1 if n_roots is None else n_roots
    X, W, w = exact_population(support, T, n_roots)
    K, P = diagonal_init(a, b, support.shape[1])
    return loss_and_grad(K, P, prepare(X, W, w))


def uniform_init_states(n: int, d: int, *, seed: Seed, scale: float = 1.0) -> torch.Tensor:
    r"""Real :math:`x_1` with i.i.d. :math:`U[-c, c]` coordinates, stored complex ``(n, d)``: moments
    :math:`(c^2/3, c^4/5, c^6/7, c^6/15)`, a law that satisfies the symmetry condition but not equal moduli."""
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_positive(scale, "scale")
    g = make_generator(seed)
    return (scale * (2 * torch.rand(n, d, generator=g, dtype=torch.float64) - 1)).to(CDOUBLE)


def uniform_moments(scale: float = 1.0) -> InitMoments:
    """Moments of :func:`uniform_init_states`."""
    s2 = require_positive(scale, "scale") ** 2
    return InitMoments(s2 / 3, s2**2 / 5, s2**3 / 7, s2 / 3 * s2**2 / 5)
