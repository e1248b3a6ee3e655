"""Input checks with messages that say what was expected and what came.

Every public function of the library validates its inputs with these helpers, so a wrong shape or a
non-orthogonal matrix fails at the call, with a sentence a student can act on.
"""
from __future__ import annotations

from typing import Sequence

import torch


def require_tensor(x: object, name: str) -> torch.Tensor:
    """``x`` must be a ``torch.Tensor``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    return x


def require_shape(x: torch.Tensor, name: str, shape: Sequence[int | None], labels: str) -> torch.Tensor:
    """``x.shape`` must match ``shape`` (``None`` = any size); ``labels`` names the axes, e.g. ``"(batch, T, d)"``."""
    require_tensor(x, name)
    ok = x.dim() == len(shape) and all(s is None or s == n for s, n in zip(shape, x.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {labels} = {want}; got {tuple(x.shape)}")
    return x


def require_ndim(x: torch.Tensor, name: str, ndims: Sequence[int], labels: str) -> torch.Tensor:
    """``x`` must have one of the numbers of dimensions in ``ndims``."""
    require_tensor(x, name)
    if x.dim() not in ndims:
        raise ValueError(f"{name} must have shape {labels}; got {tuple(x.shape)} ({x.dim()} dimensions)")
    return x


def require_square(W: torch.Tensor, name: str = "W") -> torch.Tensor:
    """``W`` must be a (batch of) square matrices: shape ``(..., d, d)``."""
    require_tensor(W, name)
    if W.dim() < 2 or W.shape[-1] != W.shape[-2]:
        raise ValueError(f"{name} must be square, shape (..., d, d); got {tuple(W.shape)}")
    return W


def require_even(d: int, name: str = "d") -> int:
    """``d`` must be a positive even integer (2x2 rotation blocks)."""
    if not isinstance(d, int) or isinstance(d, bool) or d <= 0 or d % 2:
        raise ValueError(f"{name} must be a positive even integer (the matrix is made of 2x2 rotation blocks); got {d!r}")
    return d


def require_positive_int(n: int, name: str) -> int:
    """``n`` must be an integer >= 1."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} must be a positive integer; got {n!r}")
    return n


def _default_atol(W: torch.Tensor) -> float:
    return 1e-10 if W.dtype in (torch.float64, torch.complex128) else 1e-4


def require_orthogonal(W: torch.Tensor, name: str = "W", atol: float | None = None) -> torch.Tensor:
    """``W`` must satisfy ``W^* W = I`` (orthogonal if real, unitary if complex) up to ``atol`` (max entry)."""
    require_square(W, name)
    atol = _default_atol(W) if atol is None else atol
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    dev = (W.mH @ W - eye).abs().amax().item()
    if dev > atol:
        kind = "unitary" if W.is_complex() else "orthogonal"
        raise ValueError(
            f"{name} must be {kind} (W^* W = I); got max |W^* W - I| = {dev:.2e} > tolerance {atol:.0e}"
        )
    return W


def require_real(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` must have a real floating dtype."""
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"{name} must be real floating point (float32/float64); got dtype {x.dtype}")
    return x


def require_floating(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` must be floating point, real or complex."""
    if not (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{name} must be a floating-point or complex tensor; got dtype {x.dtype}")
    return x


def require_same_kind(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """``a`` and ``b`` must be both real or both complex, and on the same device."""
    if a.is_complex() != b.is_complex():
        kinds = lambda t: "complex" if t.is_complex() else "real"  # noqa: E731
        raise TypeError(f"{name_a} is {kinds(a)} ({a.dtype}) but {name_b} is {kinds(b)} ({b.dtype}); both must be real or both complex")
    if a.device != b.device:
        raise ValueError(f"{name_a} is on {a.device} but {name_b} is on {b.device}; move both to one device")
