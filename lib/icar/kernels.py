r"""Causal kernel descent and the Kaczmarz algorithm in a reproducing-kernel Hilbert space.

A course derivation following Sander & Peyré (2025, arXiv 2410.03011). Tokens :math:`x_1, \dots, x_T \in \mathbb R^d`
follow :math:`x_{t+1} = f(x_t)` with a map :math:`f` that changes from prompt to prompt; position :math:`t` must
predict :math:`x_{t+1}` from :math:`x_{1:t}` only. The pairs seen by position :math:`t` are
:math:`(x_{s-1}, x_s)`, :math:`2 \le s \le t`.

Shapes: ``states`` is ``(B, T, d)`` (``states[:, t-1]`` is :math:`x_t`). Every predictor returns ``u`` of shape
``(B, T, d)``, where ``u[:, t-1]`` is the estimate of :math:`x_{t+1}` built from :math:`x_{1:t}` (the last row has no
target). :func:`prediction_errors` turns it into :math:`\mathrm{err}_t = \|u_t - x_{t+1}\|`, ``(B, T-1)``.

Kernels (``q`` a query, ``kappa`` a key): ``"linear"`` :math:`\langle q, \kappa\rangle`; ``"exp"``
:math:`e^{\beta\langle q, \kappa\rangle}`; ``"softmax"``: the exponential weights divided by their sum over the causal
keys (a normalised step, not a kernel of its own).

Causal kernel descent (CKD), one layer, for every position :math:`t` in parallel (:math:`u^0 = v^0 = 0`):

.. math::
    u_t^{k+1} = u_t^k + \eta \sum_{s=2}^{t} k(x_t, x_{s-1})\,(x_s - v_s^k), \qquad
    v_t^{k+1} = v_t^k + \eta \sum_{s=2}^{t} k(x_{t-1}, x_{s-1})\,(x_s - v_s^k).

Kaczmarz (time-ordered, in the RKHS): :math:`f^{(t)} = \sum_{s \le t} \alpha_s k(x_{s-1}, \cdot)` where
:math:`G_{\mathrm{low}}\alpha = X` (forward substitution, :math:`G_{sj} = k(x_{s-1}, x_{j-1})`, :math:`j \le s`); the
prediction of position :math:`t` is :math:`f^{(t)}(x_t)`.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .data import haar_orthogonal, initial_states, matrix_powers, rollout_map
from .runtime import DeviceLike, make_generator, resolve_device
from .validate import (
    require_dtype,
    require_float64,
    require_finite,
    require_ndim,
    require_nonnegative,
    require_orthogonal,
    require_positive,
    require_positive_int,
    require_real,
    require_shape,
    require_square,
)

Seed = int | torch.Generator

KERNELS = ("linear", "exp", "softmax")
RKHS_KERNELS = ("linear", "exp")
NORMALIZATIONS = (None, "mean")


# ----------------------------------------------------------------------------------------------- checks
def _check_kernel(kernel: str, allowed: tuple[str, ...] = KERNELS) -> str:
    if kernel not in allowed:
        raise ValueError(f"kernel must be one of {allowed}; got {kernel!r}")
    return kernel


def _check_beta(beta: float) -> float:
    return require_positive(beta, "beta (inverse temperature)")


def check_states(states: torch.Tensor, name: str = "states") -> torch.Tensor:
    """``states`` must be a real floating tensor ``(B, T, d)`` with ``T >= 2``."""
    require_ndim(states, name, (3,), "(B, T, d)")
    require_real(states, name)
    require_finite(states, name)
    if states.shape[1] < 2:
        raise ValueError(f"{name} must hold at least 2 tokens (T >= 2); got shape {tuple(states.shape)}")
    return states


def _eta_tensor(eta: float | torch.Tensor, B: int, ref: torch.Tensor) -> torch.Tensor:
    if isinstance(eta, torch.Tensor):
        require_real(eta, "eta")
        require_finite(eta, "eta")
        if eta.dim() == 0:
            eta = eta.reshape(1)
        if eta.dim() != 1 or eta.shape[0] not in (1, B):
            raise ValueError(f"eta must be a number or a tensor of shape (B,) = ({B},); got {tuple(eta.shape)}")
        eta_t = eta.to(dtype=ref.dtype, device=ref.device)
    else:
        if isinstance(eta, bool) or not isinstance(eta, (int, float)):
            raise TypeError(f"eta must be a number or a tensor; got {type(eta).__name__}")
        eta_t = torch.tensor([require_positive(eta, "eta (step size)")], dtype=ref.dtype, device=ref.device)
    if not bool((eta_t > 0).all()):
        raise ValueError(f"eta (step size) must be positive; got {eta_t.tolist()}")
    return eta_t.view(-1, 1, 1)


# ----------------------------------------------------------------------------------------------- kernels
def kernel_matrix(queries: torch.Tensor, keys: torch.Tensor, kernel: str = "linear", beta: float = 1.0) -> torch.Tensor:
    r"""Kernel values :math:`k(q_i, \kappa_j)`: ``queries`` ``(..., Tq, d)``, ``keys`` ``(..., Tk, d)`` ->
    ``(..., Tq, Tk)``. ``"linear"``: :math:`\langle q, \kappa\rangle`; ``"exp"`` and ``"softmax"``:
    :math:`e^{\beta\langle q, \kappa\rangle}` (the softmax normalisation is applied by the callers)."""
    _check_kernel(kernel)
    beta = _check_beta(beta)
    for x, name in ((queries, "queries"), (keys, "keys")):
        require_real(x, name)
        require_finite(x, name)
        if x.dim() < 2:
            raise ValueError(f"{name} must have shape (..., T, d); got {tuple(x.shape)}")
    if queries.shape[-1] != keys.shape[-1]:
        raise ValueError(f"queries and keys must have the same last dimension d; got {tuple(queries.shape)} and {tuple(keys.shape)}")
    dots = queries @ keys.transpose(-1, -2)
    return dots if kernel == "linear" else torch.exp(beta * dots)


def previous_tokens(states: torch.Tensor) -> torch.Tensor:
    r""":math:`x_{t-1}` for :math:`t = 1..T`, with :math:`x_0 = 0`: ``(B, T, d)`` -> ``(B, T, d)``."""
    require_ndim(states, "states", (3,), "(B, T, d)")
    require_real(states, "states")
    require_finite(states, "states")
    return torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1]], dim=1)


def ckd_operators(states: torch.Tensor, kernel: str = "linear", beta: float = 1.0,
                  normalization: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two causal attention matrices of a CKD layer, ``(B, T, T)`` each (row = query position ``t``, column =
    pair ``s``; zero for ``s = 1`` and ``s > t``):

    * read-out head :math:`K^u_{ts} = D^u_t\, k(x_t, x_{s-1})`;
    * self head :math:`K^v_{ts} = D^v_t\, k(x_{t-1}, x_{s-1})`.

    :math:`D = 1` by default; ``normalization="mean"`` uses :math:`D_t = 1/(t-1)`; ``kernel="softmax"`` uses
    :math:`D_t = 1/\sum_{s=2}^t e^{\beta\langle q_t, x_{s-1}\rangle}` (so each row sums to 1).
    """
    check_states(states)
    _check_kernel(kernel)
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}; got {normalization!r}")
    if kernel == "softmax" and normalization is not None:
        raise ValueError("kernel='softmax' is already normalised; use normalization=None with it")
    T = states.shape[1]
    prev = previous_tokens(states)
    mask = torch.ones(T, T, dtype=torch.bool, device=states.device).tril()
    mask[:, 0] = False  # pair s = 1 does not exist (there is no x_0)
    Ku = kernel_matrix(states, prev, kernel, beta).masked_fill(~mask, 0.0)
    Kv = kernel_matrix(prev, prev, kernel, beta).masked_fill(~mask, 0.0)
    if kernel == "softmax":
        Ku = Ku / Ku.sum(-1, keepdim=True).clamp_min(torch.finfo(Ku.dtype).tiny)
        Kv = Kv / Kv.sum(-1, keepdim=True).clamp_min(torch.finfo(Kv.dtype).tiny)
    elif normalization == "mean":
        c = torch.arange(T, device=states.device, dtype=states.dtype).clamp_min(1.0)[:, None]  # t - 1 pairs
        Ku, Kv = Ku / c, Kv / c
    return Ku, Kv


class CKDResult(NamedTuple):
    """``u`` ``(B, T, d)``: the read-out estimates after the last layer; ``v`` ``(B, T, d)``: the self-estimates;
    ``peak`` ``(n_layers, B)``: :math:`\\max_t \\|u^k_t\\|_\\infty` after each layer (the transient growth);
    ``path`` ``(n_layers, B, T, d)``: ``u`` after every layer when ``keep_path=True``, else ``None``."""

    u: torch.Tensor
    v: torch.Tensor
    peak: torch.Tensor
    path: torch.Tensor | None = None


def ckd(states: torch.Tensor, n_layers: int, *, kernel: str = "linear", beta: float = 1.0,
        eta: float | torch.Tensor = 1.0, normalization: str | None = None, keep_path: bool = False) -> CKDResult:
    r"""Run ``n_layers`` layers of causal kernel descent on every sequence of ``states`` ``(B, T, d)`` at once.

    Layer :math:`k`: :math:`r^k = X - v^k` (residual of each pair, computed by its own position),
    :math:`u^{k+1} = u^k + \eta K^u r^k`, :math:`v^{k+1} = v^k + \eta K^v r^k` (see :func:`ckd_operators`).
    ``eta`` is a number or one step per sequence ``(B,)`` (a step-size sweep is a batch dimension). The loop runs
    over layers (depth is sequential); positions and sequences are tensor dimensions.
    """
    check_states(states)
    require_positive_int(n_layers, "n_layers")
    Ku, Kv = ckd_operators(states, kernel, beta, normalization)
    eta_t = _eta_tensor(eta, states.shape[0], states)
    u = torch.zeros_like(states)
    v = torch.zeros_like(states)
    peaks, path = [], []
    for _ in range(n_layers):
        r = states - v
        u = u + eta_t * (Ku @ r)
        v = v + eta_t * (Kv @ r)
        peaks.append(u.abs().amax(dim=(1, 2)))
        if keep_path:
            path.append(u)
    return CKDResult(u, v, torch.stack(peaks), torch.stack(path) if keep_path else None)


def ckd_flow(states: torch.Tensor, tau: float, *, kernel: str = "linear", beta: float = 1.0,
             normalization: str | None = None) -> torch.Tensor:
    r"""Continuous-depth CKD (the Neural-ODE view): :math:`n` layers of step :math:`\tau/n` tend, as
    :math:`n \to \infty`, to the flow :math:`\dot R = -K^v R`, :math:`\dot u = K^u R`, i.e.
    :math:`u(\tau) = K^u (K^v)^{-1} (I - e^{-\tau K^v}) X` on the pairs. Returns ``(B, T, d)``."""
    require_positive(tau, "tau (integration time)")
    Ku, Kv = ckd_operators(states, kernel, beta, normalization)
    A = Kv[:, 1:, 1:]
    R0 = states[:, 1:]
    decayed = R0 - torch.linalg.matrix_exp(-tau * A) @ R0  # (I - e^{-tau A}) X
    return Ku[:, :, 1:] @ torch.linalg.solve_triangular(A, decayed, upper=False)


def ckd_limit(states: torch.Tensor, *, kernel: str = "linear", beta: float = 1.0,
              normalization: str | None = None) -> torch.Tensor:
    r"""The infinite-depth limit of :func:`ckd` (for any admissible step, which it does not depend on).

    The residuals obey :math:`R^{k+1} = (I - \eta K^v) R^k` on the pairs, so :math:`\eta\sum_k R^k = (K^v)^{-1} X`
    (a lower-triangular solve on the pairs :math:`s \ge 2`) and :math:`u^\infty = K^u (K^v)^{-1} X`. With constant
    steps this is the Kaczmarz sweep; with ``"mean"`` or ``"softmax"`` normalisation it is a different limit.
    Returns ``(B, T, d)``.
    """
    Ku, Kv = ckd_operators(states, kernel, beta, normalization)
    Z = torch.linalg.solve_triangular(Kv[:, 1:, 1:], states[:, 1:], upper=False)
    return Ku[:, :, 1:] @ Z


class KaczmarzResult(NamedTuple):
    """``u`` ``(B, T, d)``: prediction :math:`f^{(t)}(x_t)` of each position; ``alpha`` ``(B, T, d)``: the kernel
    coefficients (``alpha[:, s-1]`` multiplies :math:`k(x_{s-1}, \\cdot)`; ``alpha[:, 0] = 0``)."""

    u: torch.Tensor
    alpha: torch.Tensor


def kaczmarz(states: torch.Tensor, *, kernel: str = "linear", beta: float = 1.0) -> KaczmarzResult:
    r"""One time-ordered Kaczmarz sweep in the RKHS of ``kernel`` (``"linear"`` or ``"exp"``).

    Starting from :math:`f^{(1)} = 0`, pair :math:`s` projects :math:`f^{(s-1)}` onto
    :math:`\{g : g(x_{s-1}) = x_s\}`: :math:`\alpha_s = (x_s - f^{(s-1)}(x_{s-1})) / k(x_{s-1}, x_{s-1})`. Stacking
    these equations gives the lower-triangular system :math:`G_{\mathrm{low}}\alpha = X`, solved here by forward
    substitution (``solve_triangular``). The prediction of position :math:`t` is
    :math:`f^{(t)}(x_t) = \sum_{s=2}^{t} \alpha_s k(x_{s-1}, x_t)`.
    """
    check_states(states)
    _check_kernel(kernel, RKHS_KERNELS)
    prev = previous_tokens(states)
    T = states.shape[1]
    G = kernel_matrix(prev[:, 1:], prev[:, 1:], kernel, beta).tril()
    alpha = torch.linalg.solve_triangular(G, states[:, 1:], upper=False)
    alpha = torch.cat([torch.zeros_like(states[:, :1]), alpha], dim=1)
    mask = torch.ones(T, T, dtype=torch.bool, device=states.device).tril()
    Kq = kernel_matrix(states, prev, kernel, beta).masked_fill(~mask, 0.0)
    return KaczmarzResult(Kq @ alpha, alpha)


def interpolation_predictions(states: torch.Tensor) -> torch.Tensor:
    r"""Non-causal baseline, linear kernel: position :math:`t` refits the minimum-norm least-squares map on all its
    pairs, :math:`\hat W_t = C_t G_t^+` (:func:`icar.estimators.ols_estimates`), and predicts :math:`\hat W_t x_t`.
    This is the limit of ordinary (non-causal) kernel gradient descent. Returns ``(B, T, d)``."""
    from .estimators import ols_estimates, predictions

    check_states(states)
    return predictions(ols_estimates(states), states)


def prediction_errors(u: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{err}_t = \|u_t - x_{t+1}\|_2` for :math:`t = 1..T-1`: ``(B, T-1)`` (index ``t-1``)."""
    check_states(states)
    require_shape(u, "u", tuple(states.shape), "(B, T, d)")
    require_real(u, "u")  # u may hold a diverging estimate (inf): that is a result, not bad input
    return torch.linalg.vector_norm(u[:, :-1] - states[:, 1:], dim=-1)


# ----------------------------------------------------------------------------------------------- linear instance
def _check_W_x1(W: torch.Tensor, x1: torch.Tensor) -> None:
    require_ndim(W, "W", (3,), "(B, d, d)")
    require_square(W, "W")
    require_real(W, "W")
    B, d, _ = W.shape
    require_shape(x1, "x1", (B, d), "(B, d)")
    require_real(x1, "x1")
    require_finite(x1, "x1")
    require_orthogonal(W, "W")  # at the tolerance of W's own dtype (see "dtype policy")
    dev = (torch.linalg.vector_norm(x1, dim=-1) - 1).abs().amax().item()
    unit_atol = 1e-8 if x1.dtype == torch.float64 else 1e-5
    if not dev <= unit_atol:
        raise ValueError(f"x1 must have unit norm (the linear instance lives on the sphere); got max | ||x1|| - 1 | = {dev:.2e}")


def projected_map(W: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    r""":math:`\Pi_1 W` with :math:`\Pi_1 = I - x_1 x_1^\top`: ``W`` ``(B, d, d)`` orthogonal, ``x1`` ``(B, d)`` unit."""
    _check_W_x1(W, x1)
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return (eye - x1[:, :, None] * x1[:, None, :]) @ W


def linear_closed_form_errors(W: torch.Tensor, x1: torch.Tensor, T: int) -> torch.Tensor:
    r"""Theorem (linear kernel, orthogonal :math:`W`): the Kaczmarz error at position :math:`t` is
    :math:`\|(\Pi_1 W)^{t-1} x_1\|`. Returns ``(B, T-1)`` for :math:`t = 1..T-1` (aligned with
    :func:`prediction_errors` of sequences of length ``T``)."""
    require_positive_int(T, "T")
    if T < 2:
        raise ValueError(f"T must be at least 2; got {T}")
    P = matrix_powers(projected_map(W, x1), T - 1)  # (B, T-1, d, d)
    return torch.linalg.vector_norm(torch.einsum("btij,bj->bti", P, x1), dim=-1)


def spectral_radius(W: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    r""":math:`\rho(\Pi_1 W)`, the asymptotic contraction factor per step of the linear-kernel Kaczmarz error: ``(B,)``."""
    return torch.linalg.eigvals(projected_map(W, x1)).abs().amax(-1)


def sample_linear(n: int, d: int, T: int, *, seed: Seed, dtype: torch.dtype = torch.float64,
                  device: DeviceLike = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``n`` linear-instance prompts: Haar :math:`W \in O(d)`, :math:`x_1` uniform on the sphere, :math:`x_t = W^{t-1}x_1`.
    Returns ``(states (n, T, d), W (n, d, d), x1 (n, d))``."""
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_positive_int(T, "T")
    require_dtype(dtype, complex_ok=False)
    g = make_generator(seed)
    W = haar_orthogonal(n, d, seed=g)
    x1 = initial_states("sphere", n, d, seed=g)
    states = torch.einsum("ntij,nj->nti", matrix_powers(W, T), x1)
    dev = resolve_device(device)
    return states.to(dtype=dtype, device=dev), W.to(dtype=dtype, device=dev), x1.to(dtype=dtype, device=dev)


# ----------------------------------------------------------------------------------------------- periodic instance
def sample_periodic(n: int, d: int, p: int, T: int, *, seed: Seed, dtype: torch.dtype = torch.float64,
                    device: DeviceLike = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    r"""``n`` periodic prompts: ``p`` points :math:`z_1..z_p` uniform on the unit sphere of :math:`\mathbb R^d`,
    visited cyclically, :math:`x_t = z_{((t-1) \bmod p) + 1}`. Returns ``(states (n, T, d), Z (n, p, d))``."""
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_positive_int(p, "p")
    require_positive_int(T, "T")
    require_dtype(dtype, complex_ok=False)
    if p < 2:
        raise ValueError(f"the period p must be at least 2; got {p}")
    Z = initial_states("sphere", n * p, d, seed=seed).reshape(n, p, d)
    states = Z[:, torch.arange(T) % p]
    dev = resolve_device(device)
    return states.to(dtype=dtype, device=dev), Z.to(dtype=dtype, device=dev)


def sample_nonlinear(n: int, d: int, T: int, *, eps: float = 1.0, seed: Seed, dtype: torch.dtype = torch.float64,
                     device: DeviceLike = "cpu") -> torch.Tensor:
    r"""``n`` prompts of a smooth non-linear map of the sphere,
    :math:`f(x) = (Wx + \varepsilon\tanh(Bx)) / \|Wx + \varepsilon\tanh(Bx)\|` with :math:`W` Haar and
    :math:`B_{ij} \sim N(0, 1/d)`, one :math:`(W, B)` per prompt. Returns ``(n, T, d)``."""
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_positive_int(T, "T")
    require_nonnegative(eps, "eps")
    require_dtype(dtype, complex_ok=False)
    g = make_generator(seed)
    W = haar_orthogonal(n, d, seed=g)
    Bm = torch.randn(n, d, d, generator=g, dtype=torch.float64) / d**0.5
    x1 = initial_states("sphere", n, d, seed=g)

    def f(x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("nij,nj->ni", W, x) + eps * torch.tanh(torch.einsum("nij,nj->ni", Bm, x))
        return y / torch.linalg.vector_norm(y, dim=-1, keepdim=True)

    return rollout_map(f, x1, T).to(dtype=dtype, device=resolve_device(device))


# ----------------------------------------------------------------------------------------------- RKHS norms
def rkhs_norm2(centers: torch.Tensor, coefs: torch.Tensor, kernel: str = "linear", beta: float = 1.0) -> torch.Tensor:
    r""":math:`\|g\|^2_{\mathcal H}` for :math:`g = \sum_j k(c_j, \cdot)\, a_j`:
    :math:`\sum_{j,l} k(c_j, c_l)\langle a_j, a_l\rangle`. ``centers`` ``(B, m, d)``, ``coefs`` ``(B, m, d')`` -> ``(B,)``."""
    _check_kernel(kernel, RKHS_KERNELS)
    for x, name in ((centers, "centers"), (coefs, "coefs")):
        require_ndim(x, name, (3,), "(B, m, d)")
        require_real(x, name)
        require_finite(x, name)
    if centers.shape[:2] != coefs.shape[:2]:
        raise ValueError(f"centers and coefs must agree on (B, m); got {tuple(centers.shape)} and {tuple(coefs.shape)}")
    K = kernel_matrix(centers, centers, kernel, beta)
    return torch.einsum("bjl,bjc,blc->b", K, coefs, coefs)


def linear_map_as_kernel_expansion(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`x \mapsto Wx` written as :math:`\sum_j k(e_j, x)\, W e_j` for the linear kernel: centers the basis
    vectors, coefficients the columns of :math:`W`. ``W`` ``(B, d, d)`` -> ``(centers, coefs)``, each ``(B, d, d)``."""
    require_ndim(W, "W", (3,), "(B, d, d)")
    require_square(W, "W")
    require_real(W, "W")
    require_finite(W, "W")
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device).expand(W.shape)
    return eye, W.transpose(-1, -2)


def min_norm_periodic_map(Z: torch.Tensor, kernel: str = "exp", beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The minimum-norm :math:`f^\star \in \mathcal H` with :math:`f^\star(z_i) = z_{i+1}` (indices mod ``p``):
    coefficients :math:`A = G_Z^{-1} Y` on the centers :math:`z_i`. Needs a strictly positive-definite Gram matrix.
    ``Z`` ``(B, p, d)`` -> ``(centers, coefs)``."""
    require_ndim(Z, "Z", (3,), "(B, p, d)")
    require_real(Z, "Z")
    require_finite(Z, "Z")
    G = kernel_matrix(Z, Z, kernel, beta)
    Y = torch.roll(Z, shifts=-1, dims=1)
    return Z, torch.linalg.solve(G, Y)


class EnergyBalance(NamedTuple):
    r"""Terms of :math:`\sum_{t<T}\mathrm{err}_t^2/k(x_t,x_t) + \|f - f^{(T)}\|^2 = \|f\|^2`, each ``(B,)``."""

    weighted_sum: torch.Tensor
    remainder: torch.Tensor
    norm2: torch.Tensor


def energy_balance(states: torch.Tensor, f_centers: torch.Tensor, f_coefs: torch.Tensor, *, kernel: str = "linear",
                   beta: float = 1.0) -> EnergyBalance:
    r"""Both sides of the energy identity of the Kaczmarz sweep for a target :math:`f = \sum_j k(c_j,\cdot)a_j`
    that generated ``states`` (:math:`x_{t+1} = f(x_t)`): the weighted squared errors, the squared RKHS distance
    :math:`\|f - f^{(T)}\|^2` left after the last pair, and :math:`\|f\|^2`. ``states`` must be float64 (the
    identity is checked to double rounding; see "dtype policy" in CONTRIBUTING.md)."""
    check_states(states)
    require_float64(states, "states", "the energy identity is checked to float64 rounding")
    B, _, d = states.shape
    require_ndim(f_centers, "f_centers", (3,), "(B, m, d)")
    require_shape(f_centers, "f_centers", (B, None, d), "(B, m, d)")
    require_shape(f_coefs, "f_coefs", (B, f_centers.shape[1], d), "(B, m, d)")
    for x, name in ((f_centers, "f_centers"), (f_coefs, "f_coefs")):
        require_real(x, name)
        require_finite(x, name)
    res = kaczmarz(states, kernel=kernel, beta=beta)
    err = prediction_errors(res.u, states)
    diag = kernel_matrix(states[:, :-1, None, :], states[:, :-1, None, :], kernel, beta)[..., 0, 0]
    weighted = (err.pow(2) / diag).sum(-1)
    centers = torch.cat([f_centers, previous_tokens(states)[:, 1:]], dim=1)
    coefs = torch.cat([f_coefs, -res.alpha[:, 1:]], dim=1)
    return EnergyBalance(weighted, rkhs_norm2(centers, coefs, kernel, beta), rkhs_norm2(f_centers, f_coefs, kernel, beta))


# ----------------------------------------------------------------------------------------------- fits
def _check_fit(t: torch.Tensor, err: torch.Tensor, *, log_t: bool) -> None:
    """``t`` ``(n,)`` (or ``err``'s shape) holds at least two distinct positions (positive for a log-log fit), and
    ``err`` holds positive finite errors: otherwise the slope is 0/0 or a log of 0."""
    require_finite(t, "t")  # integer positions are fine
    if t.is_complex():
        raise TypeError(f"t must be real; got dtype {t.dtype}")
    require_real(err, "err")
    require_finite(err, "err")
    if t.shape[-1] != err.shape[-1] or t.shape[-1] < 2:
        raise ValueError(f"t and err must share a last dimension of at least 2 points; got {tuple(t.shape)} and {tuple(err.shape)}")
    if bool((t.amax(-1) == t.amin(-1)).any()):
        raise ValueError(f"t must hold at least two distinct positions (the slope would divide by 0); got {t.tolist()}")
    if log_t and not bool((t > 0).all()):
        raise ValueError(f"t must be positive for a log-log fit; got {t.tolist()}")
    if not bool((err > 0).all()):
        raise ValueError(f"err must be positive (its log is fitted); got min {err.min().item():.3g}")


def loglog_slope(t: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    r"""Least-squares slope of :math:`\log \mathrm{err}` against :math:`\log t` (last dimension): ``(..., n)`` -> ``(...)``."""
    _check_fit(t, err, log_t=True)
    x = torch.log(t.to(err.dtype))
    y = torch.log(err)
    xc = x - x.mean(-1, keepdim=True)
    return (xc * (y - y.mean(-1, keepdim=True))).sum(-1) / xc.pow(2).sum(-1)


def log_slope(t: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    r"""Least-squares slope of :math:`\log \mathrm{err}` against :math:`t` (a geometric rate gives :math:`\log\rho`)."""
    _check_fit(t, err, log_t=False)
    x = t.to(err.dtype)
    y = torch.log(err)
    xc = x - x.mean(-1, keepdim=True)
    return (xc * (y - y.mean(-1, keepdim=True))).sum(-1) / xc.pow(2).sum(-1)


