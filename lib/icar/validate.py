"""Input checks with messages that say what was expected and what came.

Every public function of the library validates its inputs with these helpers, so a wrong shape, a NaN, a
non-positive step or a non-orthogonal matrix fails at the call, with a sentence a student can act on: what was
expected and what came. Wrong types raise ``TypeError``, wrong values ``ValueError``.

Which dtypes a function accepts, when it promotes to float64 and which tolerance a check uses is the *dtype policy*,
written down once in ``CONTRIBUTING.md`` (section "dtype policy"); :func:`require_orthogonal` follows it.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch


def _describe(x: object) -> str:
    """A short description of what came: the type, and the value when it is small."""
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}, dtype {x.dtype}, on {x.device}"
    if x is None or isinstance(x, (bool, numbers.Number, str)):
        return repr(x)
    return type(x).__name__


def require_tensor(x: object, name: str) -> torch.Tensor:
    """``x`` must be a ``torch.Tensor`` that holds data (a ``meta`` tensor has none: its values are undefined)."""
    if not isinstance(x, torch.Tensor):
        hint = " (convert it with torch.as_tensor)" if type(x).__module__.startswith("numpy") or isinstance(x, (list, tuple)) else ""
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}{hint}")
    if x.is_meta:
        raise ValueError(f"{name} must hold data; got a tensor on the 'meta' device (shape only, no values)")
    return x


def require_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Every entry of the tensor ``x`` must be finite (no NaN, no +-inf); the message gives the first bad index."""
    require_tensor(x, name)
    if x.is_floating_point() or x.is_complex():
        # one reduction first: a NaN or an infinity makes the sum non-finite, so a finite sum proves every entry
        # finite (one pass over x, against five for isfinite); only a non-finite sum (or an overflow of large
        # finite entries) goes on to the entry-wise search
        if x.numel() and bool(torch.isfinite(x.sum())):
            return x
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(f"{name} must be finite; got {x[idx].item()} at index {idx} ({int(bad.sum())} non-finite entries)")
    return x


def require_number(x: object, name: str) -> float:
    """``x`` must be a finite real number (an int, a float or a one-element real tensor; not a bool)."""
    if isinstance(x, torch.Tensor) and x.numel() == 1 and not x.is_complex() and not x.is_meta and x.dtype != torch.bool:
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {_describe(x)}")
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number; got {x!r}")
    return float(x)


def require_positive(x: object, name: str) -> float:
    """``x`` must be a finite number > 0 (a step size, a learning rate, a temperature, a scale)."""
    v = require_number(x, name)
    if not v > 0:
        raise ValueError(f"{name} must be positive; got {x!r}")
    return v


def require_nonnegative(x: object, name: str) -> float:
    """``x`` must be a finite number >= 0."""
    v = require_number(x, name)
    if not v >= 0:
        raise ValueError(f"{name} must be >= 0; got {x!r}")
    return v



def require_step(eta: object, name: str, *, positive: bool = True) -> object:
    """A step size given as a number (finite, > 0, or >= 0 when ``positive=False``) or as a real, finite tensor
    (its shape is the caller's to check). Returns ``eta`` unchanged."""
    if isinstance(eta, torch.Tensor):
        require_real(eta, name)
        require_finite(eta, name)
    elif positive:
        require_positive(eta, name)
    else:
        require_nonnegative(eta, name)
    return eta

def require_in_range(x: object, name: str, low: float, high: float, *, closed: bool = False) -> float:
    """``x`` must be a number in the open interval ``(low, high)`` (``[low, high]`` when ``closed``)."""
    v = require_number(x, name)
    ok = low <= v <= high if closed else low < v < high
    if not ok:
        interval = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g})"
        raise ValueError(f"{name} must lie in {interval}; got {x!r}")
    return v


def require_positive_tensor(x: object, name: str) -> torch.Tensor:
    """``x`` must be a real tensor whose entries are all finite and > 0 (per-model steps or learning rates)."""
    require_tensor(x, name)
    require_real(x, name)
    require_finite(x, name)
    if not bool((x > 0).all()):
        raise ValueError(f"{name} must be positive; got {x.flatten().tolist()[:8]}")
    return x


def require_int(n: object, name: str, minimum: int | None = None) -> int:
    """``n`` must be an integer (not a bool, not a float), at least ``minimum`` when given."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {_describe(n)}")
    if minimum is not None and n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {n!r}")
    return int(n)


def require_choice(x: object, name: str, choices: Sequence[object]) -> object:
    """``x`` must be one of ``choices``."""
    if isinstance(x, torch.Tensor) or x not in tuple(choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {x!r}")
    return x


def require_callable(f: object, name: str) -> object:
    """``f`` must be callable (a function or a module)."""
    if not callable(f):
        raise TypeError(f"{name} must be callable; got {_describe(f)}")
    return f


def require_min_length(x: torch.Tensor, name: str, dim: int, minimum: int, what: str) -> torch.Tensor:
    """``x.shape[dim]`` must be at least ``minimum``; ``what`` names that axis, e.g. ``"time steps (T)"``."""
    if x.shape[dim] < minimum:
        raise ValueError(f"{name} must hold at least {minimum} {what}; got shape {tuple(x.shape)}")
    return x


def require_dtype(dtype: object, name: str = "dtype", *, complex_ok: bool = True, real_ok: bool = True) -> torch.dtype:
    """``dtype`` must be a floating (and/or complex) ``torch.dtype``: an integer dtype would round everything to 0."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype such as torch.float64; got {_describe(dtype)}")
    ok = (dtype.is_complex and complex_ok) or (dtype.is_floating_point and real_ok)
    if not ok:
        want = " or ".join(k for k, on in (("real floating", real_ok), ("complex", complex_ok)) if on)
        raise TypeError(f"{name} must be a {want} dtype; got {dtype}")
    return dtype


def require_float64(x: torch.Tensor, name: str, why: str) -> torch.Tensor:
    """``x`` must be float64 or complex128: for functions whose exactness claim holds only in double precision."""
    require_tensor(x, name)
    if x.dtype not in (torch.float64, torch.complex128):
        raise TypeError(f"{name} must be float64 or complex128 ({why}); got {x.dtype} (cast it with .double())")
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
    """``n`` must be an integer >= 1 (a bool, a float or a numpy array is refused, with a ``ValueError``)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} must be a positive integer; got {_describe(n)}")
    return n


def _default_atol(W: torch.Tensor) -> float:
    """Tolerance of ``W^* W = I`` for the dtype of ``W`` (see "dtype policy" in CONTRIBUTING.md)."""
    return 1e-10 if W.dtype in (torch.float64, torch.complex128) else 1e-4


def require_orthogonal(W: torch.Tensor, name: str = "W", atol: float | None = None) -> torch.Tensor:
    """``W`` must satisfy ``W^* W = I`` (orthogonal if real, unitary if complex) up to ``atol`` (max entry).

    The default ``atol`` follows the dtype of ``W`` as given: 1e-10 in double, 1e-4 in single precision. Do not cast
    ``W`` to float64 before calling it: that would hold a float32 matrix to the float64 tolerance.
    """
    require_square(W, name)
    require_floating(W, name)
    require_finite(W, name)
    atol = _default_atol(W) if atol is None else atol
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    dev = (W.mH @ W - eye).abs().amax().item()
    if not dev <= atol:  # written so that a NaN deviation fails too
        kind = "unitary" if W.is_complex() else "orthogonal"
        raise ValueError(
            f"{name} must be {kind} (W^* W = I); got max |W^* W - I| = {dev:.2e} > tolerance {atol:.0e}"
        )
    return W


def require_real(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` must be a tensor with a real floating dtype."""
    require_tensor(x, name)
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"{name} must be real floating point (float32/float64); got dtype {x.dtype}")
    return x


def require_floating(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` must be a floating-point tensor, real or complex (an integer tensor would round results to 0)."""
    require_tensor(x, name)
    if not (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{name} must be a floating-point or complex tensor; got dtype {x.dtype}")
    return x


def require_same_kind(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """``a`` and ``b`` must be both real or both complex, and on the same device."""
    require_tensor(a, name_a)
    require_tensor(b, name_b)
    if a.is_complex() != b.is_complex():
        kinds = lambda t: "complex" if t.is_complex() else "real"  # noqa: E731
        raise TypeError(f"{name_a} is {kinds(a)} ({a.dtype}) but {name_b} is {kinds(b)} ({b.dtype}); both must be real or both complex")
    if a.device != b.device:
        raise ValueError(f"{name_a} is on {a.device} but {name_b} is on {b.device}; move both to one device")
