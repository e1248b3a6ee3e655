r"""One lens over the course: every mechanism as an in-context map :math:`\Gamma` and a prediction :math:`\psi`,
measured on one shared set of prompts.

The shared task is the course's central one: unitary commuting contexts :math:`W = \mathrm{diag}(e^{i\theta_k})`
with i.i.d. uniform phases, and a unit-norm initial state with random phases, :math:`x_k = e^{i\phi_k}/\sqrt d`
(``data.sample_ar("unitary", ..., init="phases")``). The same prompts, read in real coordinates
:math:`(\mathrm{Re}\,x_1, \mathrm{Im}\,x_1, \mathrm{Re}\,x_2, \dots) \in \mathbb R^{2d}`, are trajectories of the
real block rotation :math:`\mathrm{blockdiag}(R(\theta_1), \dots, R(\theta_d))` (:func:`real_view`), which is the
setting of the real-valued mechanisms (the trigonometric recursion, causal kernel descent).

Every ``*_errors`` function returns the squared next-token errors :math:`\|\hat s_{t+1} - s_{t+1}\|^2` of one
mechanism for :math:`t = 2, \dots, T-1`, i.e. for :math:`n = t - 1 = 1, \dots, T-2` pairs in the prompt:
shape ``(B, T-2)``. Every mechanism is built from the library function of its own chapter; nothing is re-derived
here. ``*_curve`` functions give the closed forms the chapters prove, aligned with the same ``n``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from . import augmented as aug
from . import estimators, kernels, mesa, theory
from . import multihead as mh
from .data import ARBatch, block_rotation, sample_ar
from .runtime import DeviceLike
from .validate import (require_finite, require_int, require_min_length, require_ndim, require_positive,
                       require_positive_int, require_real, require_shape, require_square)

Seed = int | torch.Generator


# ----------------------------------------------------------------------------------------------- the shared prompts
def shared_prompts(n: int, d: int, T: int, *, seed: Seed, device: DeviceLike = "cpu") -> ARBatch:
    r"""``n`` prompts of the shared task: unitary diagonal :math:`W`, :math:`x_k = e^{i\phi_k}/\sqrt d`.

    Returns :class:`icar.data.ARBatch` with complex128 ``states`` ``(n, T, d)`` and ``W`` ``(n, d, d)``. ``T >= 4``
    so that every mechanism (the one-layer models predict from :math:`t = 2` on) has at least two positions."""
    require_positive_int(T, "T")
    if T < 4:
        raise ValueError(f"T must be at least 4 (positions t = 2..T-1 are compared); got {T}")
    return sample_ar("unitary", n, d, T, seed=seed, init="phases", device=device)


def _check_complex_states(states: torch.Tensor, name: str = "states") -> torch.Tensor:
    require_ndim(states, name, (3,), "(B, T, d)")
    if not states.is_complex():
        raise TypeError(f"{name} must be the complex prompts of shared_prompts (dtype complex); got {states.dtype}")
    require_min_length(states, name, 1, 4, "time steps (T >= 4)")
    return require_finite(states, name)


def _check_real_states(real_states: torch.Tensor) -> torch.Tensor:
    kernels.check_states(real_states, "real_states")  # real (B, T, 2d), finite
    return require_min_length(real_states, "real_states", 1, 4, "time steps (T >= 4)")


def _require_pairs(T: int) -> int:
    """``T >= 3``: at least one pair, :math:`n = 1, \\dots, T-2`."""
    return require_int(T, "T", 3)


def _check_errors(err: torch.Tensor, name: str) -> torch.Tensor:
    require_ndim(err, name, (2,), "(B, T-2)")
    require_real(err, name)
    require_min_length(err, name, 0, 2, "prompts (B >= 2, for a standard error)")
    return require_finite(err, name)


def real_view(states: torch.Tensor) -> torch.Tensor:
    r"""The prompts in real coordinates: :math:`x \in \mathbb C^d \mapsto (\mathrm{Re}\,x_1, \mathrm{Im}\,x_1, \dots)
    \in \mathbb R^{2d}`. ``(B, T, d)`` complex -> ``(B, T, 2d)`` real. Multiplication by :math:`e^{i\theta}` becomes
    the rotation :math:`R(\theta)` of each 2-plane, and squared norms are unchanged."""
    _check_complex_states(states)
    return torch.view_as_real(states.resolve_conj()).flatten(-2)


def real_context(W: torch.Tensor) -> torch.Tensor:
    r"""The real block rotation :math:`\mathrm{blockdiag}(R(\arg\lambda_1), \dots)` of a diagonal unitary ``W``
    ``(B, d, d)`` -> ``(B, 2d, 2d)``: the context of :func:`real_view`."""
    mesa.check_diagonal_unitary(W)
    return block_rotation(torch.angle(torch.diagonal(W, dim1=-2, dim2=-1)))


# ----------------------------------------------------------------------------------------------- errors
def _sq_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().pow(2).sum(-1)


def ols_errors(states: torch.Tensor) -> torch.Tensor:
    r"""Least squares (chapter 1): :math:`\Gamma = C_tG_t^+`, :math:`\psi = \Gamma s_t`. Returns ``(B, T-2)``."""
    _check_complex_states(states)
    return estimators.next_token_errors(estimators.ols_estimates(states), states)[:, 1:]


def gd_errors(states: torch.Tensor, eta: float | torch.Tensor) -> torch.Tensor:
    r"""One gradient step from 0 (chapter 1): :math:`\Gamma = \eta\,C_t`; ``eta`` a number or per-prefix ``(T,)``.
    Returns ``(B, T-2)``."""
    _check_complex_states(states)
    return estimators.next_token_errors(estimators.gd_estimates(states, eta), states)[:, 1:]


def optimal_steps(T: int, d: int) -> torch.Tensor:
    r"""The best step for each prefix, :math:`\gamma_n = d/(n+d-1)` (chapter 1), as the ``(T,)`` tensor of
    :func:`gd_errors`."""
    _require_pairs(T)
    return aug.per_prefix_steps(T, d, theory.phase_moments(d))


def shared_step(T: int, d: int) -> float:
    r"""The step :math:`\eta^\star = 3d/(2N+3d-2)`, :math:`N = T-2`, that the trained augmented layer reaches
    (chapter 2)."""
    _require_pairs(T)
    return aug.shared_step(T - 2, d, theory.phase_moments(d))


def augmented_layer_errors(states: torch.Tensor, eta: float) -> torch.Tensor:
    r"""The augmented-token linear-attention layer at its one-step point (chapter 2, constructed with
    :func:`icar.augmented.gd_construction`), run as a layer on the tokens :math:`(0, s_t, s_{t-1})`.
    Returns ``(B, T-2)``."""
    _check_complex_states(states)
    eta = require_positive(eta, "eta")
    layer = aug.AugmentedLinearAttention.from_parameters(*aug.gd_construction(states.shape[-1], eta,
                                                                               dtype=states.dtype))
    with torch.no_grad():
        pred = layer.predict(states)[0]  # (B, T, d): index t-1 predicts s_{t+1}
    return _sq_errors(pred[:, 1:-1], states[:, 2:])


def mesa_step(T: int, d: int) -> float:
    r"""The step :math:`p^* = \kappa_1/(\kappa_2 + \kappa_3(d-1)H_{T-2}/(T-2))` that training reaches (chapter 3),
    for :math:`|x_k|^2 = 1/d` (the Rademacher moments with :math:`c = 1/\sqrt d`): :math:`d/(1 + (d-1)H_{T-2}/(T-2))`."""
    require_positive_int(d, "d")
    return mesa.p_star(mesa.init_moments("rademacher", d, scale=1 / math.sqrt(d)), d, T)


def mesa_errors(states: torch.Tensor, p: float) -> torch.Tensor:
    r"""The mesa-optimizer of chapter 3 at its limit point :math:`a = b = \sqrt p`, run as the literal layer
    (:func:`icar.mesa.attention`): :math:`\Gamma = \frac{p}{t-1}C_t`. Returns ``(B, T-2)``."""
    _check_complex_states(states)
    p = require_positive(p, "p")  # the learned step ab
    K, P = mesa.diagonal_init(math.sqrt(p), math.sqrt(p), states.shape[-1], device=states.device)
    return _sq_errors(mesa.attention(K, P, states)[0], states[:, 2:])


def _chunked_predict(states: torch.Tensor, C: torch.Tensor, P: torch.Tensor, chunk: int) -> torch.Tensor:
    parts = [mh.predict(states[s:s + chunk], C, P)[0] for s in range(0, states.shape[0], chunk)]
    return torch.cat(parts)


def multihead_unitary(d: int, T: int, heads: int, modulus2: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A global minimum of the diagonal multi-head model for unitary contexts (chapter 4) with ``heads`` heads,
    when every eigen-coordinate has squared modulus ``modulus2``: :math:`C` the projector on the first
    :math:`\min(H, d)` coordinates and :math:`p_{t,t} = 1/\mathrm{modulus2}`, every other weight 0 (for
    :math:`H \ge d`, :math:`C = I` and :math:`\Gamma = \mathrm{diag}(\bar s_{t-1}\odot s_t)/|x|^2 = W`).
    Returns ``C`` ``(1, d, d)`` and ``P`` ``(1, T, T)``."""
    require_positive_int(d, "d")
    _require_pairs(T)
    require_positive_int(heads, "heads")
    modulus2 = require_positive(modulus2, "modulus2")
    C = torch.diag((torch.arange(d) < heads).to(torch.float64))[None]
    P = torch.zeros(1, T, T, dtype=torch.float64)
    idx = torch.arange(1, T - 1)
    P[0, idx, idx] = 1.0 / modulus2
    return C, P


def multihead_errors(states: torch.Tensor, heads: int, *, chunk: int = 256) -> torch.Tensor:
    r"""The multi-head model of chapter 4 at its unitary global minimum with ``heads`` heads (:func:`multihead_unitary`,
    run by :func:`icar.multihead.predict`). The initial moduli must be equal (they are, :math:`1/d`, on the
    shared prompts). Returns ``(B, T-2)``."""
    _check_complex_states(states)
    require_positive_int(chunk, "chunk")
    B, T, d = states.shape
    m2 = states[:, 0].abs().pow(2)
    if (m2 - m2[:1, :1]).abs().max() > 1e-12:
        raise ValueError("states must be prompts whose eigen-coordinates all have the same modulus "
                         "(multihead_errors runs one global minimum for every prompt)")
    C, P = multihead_unitary(d, T, heads, float(m2[0, 0]))
    return _sq_errors(_chunked_predict(states, C, P, chunk), states[:, 2:])


def trig_errors(real_states: torch.Tensor, *, chunk: int = 256) -> torch.Tensor:
    r"""The trigonometric point of chapter 4 (:func:`icar.multihead.trig_solution`, :math:`d` heads for the
    :math:`2d` real coordinates), on prompts in real coordinates whose 2-planes have equal squared norm
    :math:`\nu`: its positional weights are rescaled from the chapter's :math:`\nu = 2` to :math:`\nu`, so that
    :math:`\psi = 2\cos\theta\, s_t - s_{t-1}` in every plane. Returns ``(B, T-2)``."""
    _check_real_states(real_states)
    require_positive_int(chunk, "chunk")
    B, T, D = real_states.shape
    if D % 2:
        raise ValueError(f"real_states must have an even last dimension 2d (the real view of complex prompts); "
                         f"got shape {tuple(real_states.shape)}")
    plane = real_states[:, 0].pow(2).unflatten(-1, (D // 2, 2)).sum(-1)
    if (plane - plane[:1, :1]).abs().max() > 1e-12:
        raise ValueError("real_states must be prompts whose 2-planes all have the same norm (trig_errors runs one "
                         "rescaled trigonometric point for every prompt)")
    C, P = mh.trig_solution(D, T, c=1.0)
    P = P * 2.0 / float(plane[0, 0])
    return _sq_errors(_chunked_predict(real_states, C, P, chunk), real_states[:, 2:])


def ckd_errors(real_states: torch.Tensor, depth: int, eta: float = 1.0) -> torch.Tensor:
    r"""Causal kernel descent with the linear kernel at depth ``depth`` (chapter 6, :func:`icar.kernels.ckd`).
    Returns ``(B, T-2)``."""
    _check_real_states(real_states)
    require_positive_int(depth, "depth")
    require_positive(eta, "eta")
    u = kernels.ckd(real_states, depth, eta=eta).u
    return kernels.prediction_errors(u, real_states)[:, 1:].pow(2)


def kaczmarz_errors(real_states: torch.Tensor) -> torch.Tensor:
    r"""Infinitely deep CKD, the time-ordered Kaczmarz sweep (chapter 6, :func:`icar.kernels.kaczmarz`).
    Returns ``(B, T-2)``."""
    _check_real_states(real_states)
    u = kernels.kaczmarz(real_states).u
    return kernels.prediction_errors(u, real_states)[:, 1:].pow(2)


def kaczmarz_closed_form(W_real: torch.Tensor, x1_real: torch.Tensor, T: int) -> torch.Tensor:
    r"""Chapter 6's closed form :math:`\mathrm{err}_t^2 = \|(\Pi_1 W)^{t-1}x_1\|^2`, ``(B, T-2)``, for the real
    context ``W_real`` ``(B, 2d, 2d)`` and initial state ``x1_real`` ``(B, 2d)`` (from :func:`real_context` and
    :func:`real_view`)."""
    for x, name, ndim, labels in ((W_real, "W_real", 3, "(B, 2d, 2d)"), (x1_real, "x1_real", 2, "(B, 2d)")):
        require_ndim(x, name, (ndim,), labels)
        require_real(x, name)
        require_finite(x, name)
    require_square(W_real, "W_real")
    _require_pairs(T)
    return kernels.linear_closed_form_errors(W_real, x1_real, T)[:, 1:].pow(2)


def softmax_errors(real_states: torch.Tensor, beta: float, depth: int | None = None) -> torch.Tensor:
    r"""Softmax-attention CKD (chapter 6): depth 1 is the feature-wise (kernel-weighted) average of the successors,
    :math:`\hat s_{t+1} = \sum_{s\le t}\mathrm{softmax}_s(\beta\langle s_t, s_{s-1}\rangle)\, s_s` (the mechanism of
    chapter 7 on this task); ``depth=None`` is the infinite-depth limit (:func:`icar.kernels.ckd_limit`).
    Returns ``(B, T-2)``."""
    _check_real_states(real_states)
    require_positive(beta, "beta")
    if depth is not None:
        require_positive_int(depth, "depth")
    if depth is None:
        u = kernels.ckd_limit(real_states, kernel="softmax", beta=beta)
    else:
        u = kernels.ckd(real_states, depth, kernel="softmax", beta=beta, eta=1.0).u
    return kernels.prediction_errors(u, real_states)[:, 1:].pow(2)


# ----------------------------------------------------------------------------------------------- closed forms
def pairs_axis(T: int) -> torch.Tensor:
    """The numbers of pairs :math:`n = 1, \\dots, T-2` of the ``(B, T-2)`` error arrays."""
    _require_pairs(T)
    return torch.arange(1, T - 1)


def gd_optimal_curve(T: int, d: int) -> torch.Tensor:
    r"""Chapter 1: :math:`(d-1)/(n+d-1)`, the error of one step with the best step for each :math:`n`. ``(T-2,)``."""
    _require_pairs(T)
    m = theory.phase_moments(d)
    return torch.tensor([theory.gd_optimal_error(int(n), d, m) for n in pairs_axis(T)], dtype=torch.float64)


def shared_step_curve(T: int, d: int, eta: float) -> torch.Tensor:
    r"""Chapter 2: :math:`e_n(\eta)` for :math:`n = 1..T-2`. ``(T-2,)``."""
    _require_pairs(T)
    return aug.error_curve(eta, T - 2, d, theory.phase_moments(d))[1:]


def mesa_curve(T: int, d: int, p: float) -> torch.Tensor:
    r"""Chapter 3: :math:`p^2(A + B/n) - 2pC + D` with the moments of :math:`|x_k|^2 = 1/d`. ``(T-2,)``."""
    _require_pairs(T)
    require_positive_int(d, "d")
    p = require_positive(p, "p")
    m = mesa.init_moments("rademacher", d, scale=1 / math.sqrt(d))
    A, B, C, D = d * m.kappa2, d * (d - 1) * m.kappa3, d * m.kappa1, d * m.m2
    return torch.tensor([2 * mesa.reduced_loss_per_position(p, int(t), A, B, C, D) for t in pairs_axis(T) + 1],
                        dtype=torch.float64)


# ----------------------------------------------------------------------------------------------- statistics
class Curve(NamedTuple):
    """Mean over prompts and its Monte-Carlo standard error, each ``(T-2,)``."""

    mean: torch.Tensor
    se: torch.Tensor


def summarize(err: torch.Tensor) -> Curve:
    """Mean and standard error over the prompts of a ``(B, T-2)`` error array."""
    _check_errors(err, "err")
    return Curve(err.mean(0), err.std(0) / math.sqrt(err.shape[0]))


def max_z(err: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    r"""Largest :math:`|\bar e_n - e_n|/\mathrm{se}_n` over :math:`n` of a Monte-Carlo curve against a closed form."""
    c = summarize(err)
    require_shape(expected, "expected", (c.mean.shape[0],), "(T-2,)")
    require_real(expected, "expected")
    require_finite(expected, "expected")
    return ((c.mean - expected.to(c.mean)).abs() / c.se).max()


def paired_min_z(err: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    r"""Smallest, over :math:`n`, of the paired difference of two error arrays on the same prompts, in standard
    errors of that difference: :math:`\min_n \overline{(e - r)}_n / \mathrm{se}_n` (``>= -4`` says ``err`` is not
    below ``reference`` anywhere, beyond Monte-Carlo error)."""
    _check_errors(err, "err")
    require_shape(reference, "reference", tuple(err.shape), "(B, T-2)")
    _check_errors(reference, "reference")
    c = summarize(err - reference)
    return (c.mean / c.se.clamp_min(torch.finfo(c.se.dtype).tiny)).min()


# ----------------------------------------------------------------------------------------------- all mechanisms
EXACT = ("ols", "multihead", "trig")
APPROXIMATE = ("gd_optimal", "augmented", "mesa", "multihead_half", "ckd", "kaczmarz", "softmax_1", "softmax_inf")


def mechanism_errors(batch: ARBatch, *, ckd_depth: int = 4, ckd_eta: float = 0.25,
                     beta: float = 3.0) -> dict[str, torch.Tensor]:
    r"""Squared next-token errors ``(B, T-2)`` of every mechanism of the course on the same prompts ``batch``
    (from :func:`shared_prompts`), keyed by :data:`EXACT` and :data:`APPROXIMATE`:

    * ``ols`` (ch. 1), ``gd_optimal`` (ch. 1, :math:`\gamma_n = d/(n+d-1)`), ``augmented`` (ch. 2, :math:`\eta^\star`),
      ``mesa`` (ch. 3, :math:`p^*`);
    * ``multihead`` (:math:`H = d`) and ``multihead_half`` (:math:`H = d/2`, unitary minima, ch. 4), ``trig``
      (the trigonometric point of ch. 4 on the real view);
    * ``ckd`` (depth ``ckd_depth``, step ``ckd_eta``),
      ``kaczmarz`` (infinite depth), ``softmax_1`` / ``softmax_inf`` (softmax CKD, depth 1 and infinite; ch. 6-7).
    """
    if not isinstance(batch, ARBatch):
        raise TypeError(f"batch must be the ARBatch of shared_prompts; got {type(batch).__name__}")
    states = _check_complex_states(batch.states, "batch.states")
    require_positive_int(ckd_depth, "ckd_depth")
    require_positive(ckd_eta, "ckd_eta")
    require_positive(beta, "beta")
    T, d = states.shape[1], states.shape[2]
    real = real_view(states)
    return {
        "ols": ols_errors(states),
        "gd_optimal": gd_errors(states, optimal_steps(T, d)),
        "augmented": augmented_layer_errors(states, shared_step(T, d)),
        "mesa": mesa_errors(states, mesa_step(T, d)),
        "multihead": multihead_errors(states, d),
        "multihead_half": multihead_errors(states, max(d // 2, 1)),
        "trig": trig_errors(real),
        "ckd": ckd_errors(real, ckd_depth, ckd_eta),
        "kaczmarz": kaczmarz_errors(real),
        "softmax_1": softmax_errors(real, beta, depth=1),
        "softmax_inf": softmax_errors(real, beta),
    }
