r"""Autoregressive sequences :math:`s_{t+1} = W s_t` with a context matrix :math:`W` drawn per sequence.

Shapes: ``n`` sequences (the batch), length ``T`` (states :math:`s_1, \dots, s_T`), dimension ``d``.
``states`` is ``(n, T, d)`` and ``W`` is ``(n, d, d)``; ``states[:, t-1]`` is :math:`s_t`.

Context laws
------------
* ``"commuting"``: :math:`W = P\,\mathrm{blockdiag}(R(\theta_1), \dots, R(\theta_{d/2}))\,P^\top` with one orthogonal
  :math:`P` shared by the whole batch and i.i.d. angles :math:`\theta_m \sim U[0, 2\pi)`: all draws commute.
* ``"unitary"``: :math:`W = \mathrm{diag}(e^{i\theta_1}, \dots, e^{i\theta_d})`, complex states.
* ``"haar"``: :math:`W` Haar-distributed on :math:`O(d)` (no two draws commute).
* a user-given tensor ``W`` of shape ``(d, d)`` or ``(n, d, d)``.

Every draw uses a CPU ``torch.Generator`` (see :func:`icar.runtime.make_generator`): same seed, same numbers, on
every device.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from .runtime import DeviceLike, make_generator, resolve_device
from .validate import (
    require_callable,
    require_choice,
    require_dtype,
    require_even,
    require_finite,
    require_floating,
    require_ndim,
    require_orthogonal,
    require_positive,
    require_positive_int,
    require_real,
    require_same_kind,
    require_shape,
    require_square,
)

Seed = int | torch.Generator

CONTEXT_LAWS = ("commuting", "unitary", "haar")
INITIAL_LAWS = ("gaussian", "sphere", "sparse", "ones", "phases")


class ARBatch(NamedTuple):
    """A batch of AR sequences: ``states`` ``(n, T, d)`` and the context matrices ``W`` ``(n, d, d)``."""

    states: torch.Tensor
    W: torch.Tensor


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return {torch.float32: torch.complex64, torch.float64: torch.complex128}.get(dtype, dtype)


def _real_of(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


# ----------------------------------------------------------------------------------------------- context matrices
def rotation(theta: torch.Tensor) -> torch.Tensor:
    r"""2-D rotations :math:`R(\theta) = \begin{pmatrix}\cos\theta & -\sin\theta\\ \sin\theta & \cos\theta\end{pmatrix}`.

    ``theta``: any shape ``S`` (real). Returns ``S + (2, 2)``.
    """
    require_real(theta, "theta")
    require_finite(theta, "theta")
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def block_rotation(theta: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{blockdiag}(R(\theta_1), \dots, R(\theta_m))`. ``theta``: ``(..., m)`` -> ``(..., 2m, 2m)``."""
    require_real(theta, "theta")
    require_finite(theta, "theta")
    m = theta.shape[-1]
    eye = torch.eye(m, dtype=theta.dtype, device=theta.device)
    out = torch.einsum("...mab,mn->...manb", rotation(theta), eye)  # block (m, n) is delta_mn R(theta_m)
    return out.reshape(*theta.shape[:-1], 2 * m, 2 * m)


def haar_orthogonal(n: int, d: int, *, seed: Seed, dtype: torch.dtype = torch.float64,
                    device: DeviceLike = "cpu") -> torch.Tensor:
    r"""``n`` Haar-random orthogonal matrices ``(n, d, d)``: QR of a Gaussian matrix with the signs of
    :math:`\mathrm{diag}(R)` moved into :math:`Q` (Mezzadri's correction, without which the law is not Haar)."""
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_dtype(dtype)
    g = make_generator(seed)
    Z = torch.randn(n, d, d, generator=g, dtype=torch.float64)
    Q, R = torch.linalg.qr(Z)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
    return Q.to(dtype=dtype, device=resolve_device(device))


def commuting_orthogonal(n: int, d: int, *, seed: Seed, basis: torch.Tensor | None = None,
                         dtype: torch.dtype = torch.float64, device: DeviceLike = "cpu") -> torch.Tensor:
    r"""``n`` commuting orthogonal matrices :math:`W_i = P\,\mathrm{blockdiag}(R(\theta_{i,1}),\dots)\,P^\top`.

    ``basis`` (``(d, d)``, orthogonal) is :math:`P`; when ``None`` it is drawn Haar from the same seed. ``d`` must be
    even. Returns ``(n, d, d)``.
    """
    require_positive_int(n, "n")
    require_even(d, "d")
    require_dtype(dtype)
    g = make_generator(seed)
    if basis is None:
        basis = haar_orthogonal(1, d, seed=g)[0]
    else:
        require_shape(basis, "basis", (d, d), "(d, d)")
        if basis.is_complex():
            raise TypeError(f"basis must be a real orthogonal matrix; got dtype {basis.dtype}")
        require_orthogonal(basis, "basis")  # at the tolerance of basis's own dtype
        basis = basis.to(dtype=torch.float64, device="cpu")
    theta = 2 * math.pi * torch.rand(n, d // 2, generator=g, dtype=torch.float64)
    W = basis @ block_rotation(theta) @ basis.T
    return W.to(dtype=dtype, device=resolve_device(device))


def unitary_diagonal(n: int, d: int, *, seed: Seed, dtype: torch.dtype = torch.complex128,
                     device: DeviceLike = "cpu") -> torch.Tensor:
    r"""``n`` diagonal unitary matrices :math:`\mathrm{diag}(e^{i\theta_1}, \dots, e^{i\theta_d})`,
    :math:`\theta_k \sim U[0, 2\pi)` i.i.d. Returns complex ``(n, d, d)``."""
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_dtype(dtype)
    if not dtype.is_complex:
        raise TypeError(f"unitary_diagonal returns complex matrices: dtype must be complex64/complex128; got {dtype}")
    g = make_generator(seed)
    theta = 2 * math.pi * torch.rand(n, d, generator=g, dtype=torch.float64)
    W = torch.diag_embed(torch.polar(torch.ones_like(theta), theta))
    return W.to(dtype=dtype, device=resolve_device(device))


def sample_contexts(law: str, n: int, d: int, *, seed: Seed, dtype: torch.dtype = torch.float64,
                    device: DeviceLike = "cpu", basis: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` context matrices ``(n, d, d)`` from one of :data:`CONTEXT_LAWS`."""
    if law == "commuting":
        return commuting_orthogonal(n, d, seed=seed, basis=basis, dtype=dtype, device=device)
    if law == "unitary":
        return unitary_diagonal(n, d, seed=seed, dtype=_complex_of(dtype), device=device)
    if law == "haar":
        return haar_orthogonal(n, d, seed=seed, dtype=dtype, device=device)
    raise ValueError(f"context law must be one of {CONTEXT_LAWS}; got {law!r}")


# ----------------------------------------------------------------------------------------------- initial states
def initial_states(law: str, n: int, d: int, *, seed: Seed, scale: float = 1.0, dtype: torch.dtype = torch.float64,
                   device: DeviceLike = "cpu") -> torch.Tensor:
    r"""``n`` initial states :math:`s_1` ``(n, d)`` from one of :data:`INITIAL_LAWS` (``c`` = ``scale``):

    * ``"gaussian"``: i.i.d. :math:`N(0, c^2)` entries (circular complex Gaussian with :math:`E|x_k|^2 = c^2` if complex);
    * ``"sphere"``: uniform on the sphere of radius :math:`c`;
    * ``"sparse"``: :math:`\pm c\, e_J`, with a random sign and a uniform index :math:`J`;
    * ``"ones"``: :math:`c \mathbf{1}` (deterministic);
    * ``"phases"``: :math:`x_k = c\, e^{i\phi_k}/\sqrt{d}` (random signs :math:`\pm c/\sqrt d` if real): unit norm
      for :math:`c = 1`, every coordinate of the same modulus.
    """
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_positive(scale, "scale")
    require_dtype(dtype)
    g = make_generator(seed)
    cplx = dtype.is_complex
    real = _real_of(dtype) if cplx else torch.float64
    if law == "gaussian":
        if cplx:
            x = torch.complex(torch.randn(n, d, generator=g, dtype=real), torch.randn(n, d, generator=g, dtype=real))
            x = x / math.sqrt(2)
        else:
            x = torch.randn(n, d, generator=g, dtype=real)
    elif law == "sphere":
        if cplx:
            x = torch.complex(torch.randn(n, d, generator=g, dtype=real), torch.randn(n, d, generator=g, dtype=real))
        else:
            x = torch.randn(n, d, generator=g, dtype=real)
        x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    elif law == "sparse":
        J = torch.randint(d, (n,), generator=g)
        sign = 2.0 * torch.randint(2, (n,), generator=g, dtype=real) - 1.0
        x = torch.zeros(n, d, dtype=real)
        x[torch.arange(n), J] = sign
    elif law == "ones":
        x = torch.ones(n, d, dtype=real)
    elif law == "phases":
        if cplx:
            phi = 2 * math.pi * torch.rand(n, d, generator=g, dtype=real)
            x = torch.polar(torch.ones_like(phi), phi) / math.sqrt(d)
        else:
            x = (2.0 * torch.randint(2, (n, d), generator=g, dtype=real) - 1.0) / math.sqrt(d)
    else:
        raise ValueError(f"initial-state law must be one of {INITIAL_LAWS}; got {law!r}")
    return (scale * x).to(dtype=dtype, device=resolve_device(device))


# ----------------------------------------------------------------------------------------------- roll-outs
def matrix_powers(W: torch.Tensor, T: int) -> torch.Tensor:
    r""":math:`(W^0, W^1, \dots, W^{T-1})` for a batch ``W`` ``(..., d, d)``: returns ``(..., T, d, d)``.

    Computed by doubling, :math:`[W^0..W^{2k-1}] = [W^0..W^{k-1}] \cup [W^0..W^{k-1}]\,W^k`, so it takes
    :math:`\lceil\log_2 T\rceil` batched matrix products instead of a loop over time.
    """
    require_square(W, "W")
    require_floating(W, "W")
    require_finite(W, "W")
    require_positive_int(T, "T")
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device).expand(W.shape)
    P = eye.unsqueeze(-3)  # (..., 1, d, d)
    Wk = W  # W^{k} with k = current number of powers
    while P.shape[-3] < T:
        P = torch.cat([P, P @ Wk.unsqueeze(-3)], dim=-3)
        Wk = Wk @ Wk
    return P[..., :T, :, :]


def rollout(W: torch.Tensor, s1: torch.Tensor, T: int) -> torch.Tensor:
    r"""States :math:`s_t = W^{t-1} s_1`, :math:`t = 1..T`. ``W`` ``(n, d, d)``, ``s1`` ``(n, d)`` -> ``(n, T, d)``."""
    require_ndim(W, "W", (3,), "(n, d, d)")
    require_square(W, "W")
    n, d, _ = W.shape
    require_shape(s1, "s1", (n, d), "(n, d)")
    require_floating(s1, "s1")
    require_finite(s1, "s1")
    require_same_kind(W, s1, "W", "s1")
    return torch.einsum("ntij,nj->nti", matrix_powers(W, T), s1)


def rollout_map(f: Callable[[torch.Tensor], torch.Tensor], s1: torch.Tensor, T: int) -> torch.Tensor:
    r"""States :math:`s_{t+1} = f(s_t)` for a (batched, possibly non-linear) map ``f``: ``(n, d)`` -> ``(n, d)``.

    A non-linear recursion is sequential by nature, so this is the one roll-out with a loop over time; ``f`` itself
    acts on the whole batch at once. Returns ``(n, T, d)``.
    """
    require_callable(f, "f")
    require_ndim(s1, "s1", (2,), "(n, d)")
    require_floating(s1, "s1")
    require_finite(s1, "s1")
    require_positive_int(T, "T")
    out = [s1]
    for _ in range(T - 1):
        nxt = f(out[-1])
        if nxt.shape != s1.shape:
            raise ValueError(f"f must map (n, d) = {tuple(s1.shape)} to the same shape; got {tuple(nxt.shape)}")
        out.append(nxt)
    return torch.stack(out, dim=1)


def sample_ar(law: str | torch.Tensor, n: int, d: int, T: int, *, seed: Seed, init: str = "sphere",
              scale: float = 1.0, dtype: torch.dtype = torch.float64, device: DeviceLike = "cpu",
              basis: torch.Tensor | None = None, orthogonal: bool = True) -> ARBatch:
    r"""``n`` sequences :math:`s_1..s_T` of :math:`s_{t+1} = W s_t`. Returns :class:`ARBatch` ``(states, W)``.

    ``law`` is one of :data:`CONTEXT_LAWS` or a user tensor ``W`` (``(d, d)``, shared, or ``(n, d, d)``); a user ``W``
    is checked to be orthogonal/unitary unless ``orthogonal=False``. ``init`` is one of :data:`INITIAL_LAWS`. With
    ``law="unitary"`` the states are complex (``dtype`` is promoted). One generator seeded with ``seed`` draws the
    contexts, then the initial states.
    """
    require_positive_int(n, "n")
    require_positive_int(d, "d")
    require_positive_int(T, "T")
    require_positive(scale, "scale")
    require_dtype(dtype)
    if not isinstance(law, (str, torch.Tensor)):
        raise TypeError(f"law must be one of {CONTEXT_LAWS} or a tensor W; got {type(law).__name__}")
    require_choice(init, "init", INITIAL_LAWS)
    g = make_generator(seed)
    dev = resolve_device(device)
    if isinstance(law, torch.Tensor):
        W = law
        require_square(W, "W")
        require_floating(W, "W")
        require_finite(W, "W")
        if W.dim() == 2:
            W = W.unsqueeze(0).expand(n, -1, -1)
        require_shape(W, "W", (n, d, d), "(n, d, d) or (d, d)")
        if orthogonal:
            require_orthogonal(W, "W")  # at the tolerance of W's own dtype (see "dtype policy")
        dtype = _complex_of(dtype) if W.is_complex() else dtype
        W = W.to(dtype=dtype, device=dev)
    else:
        if law == "unitary":
            dtype = _complex_of(dtype)
        W = sample_contexts(law, n, d, seed=g, dtype=dtype, device=dev, basis=basis)
    s1 = initial_states(init, n, d, seed=g, scale=scale, dtype=dtype, device=dev)
    return ARBatch(rollout(W, s1, T), W)
