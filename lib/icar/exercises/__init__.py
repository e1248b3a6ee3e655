"""Graded-exercise checkers, ARENA-style: one module per chapter (``icar.exercises.ch01``, ...).

Each ``check_*`` function takes the student's function, runs it on fixed inputs against the reference
implementation, and raises an ``AssertionError`` that names the likely mistake (a transpose, a sign, a missing
normalisation, a prefix off by one, the use of a future token), or prints that every check passed. A ``seed``
argument draws other inputs: the hidden tests of the nbgrader assignments call the same checkers with other seeds.

Each chapter module lists its graded exercises in ``EXERCISES`` (grade id, function name, checker, points), and
:func:`scoreboard` runs them on a notebook's namespace, so that a student on Colab sees the points so far without
nbgrader.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

#: relative tolerance used when the student's answer is float32 / complex64 (about 100 float32 ulps)
FLOAT32_RTOL = 1e-5
#: absolute tolerance used when the student's answer is float32 / complex64, relative to the reference's size
FLOAT32_ATOL = 1e-6


def passed(name: str) -> None:
    """Print the success line of a checker."""
    print(f"All checks of {name} passed.")


def is_low_precision(x: object) -> bool:
    """True for float32/float16/bfloat16/complex64 tensors and numpy arrays or scalars."""
    dtype = getattr(x, "dtype", None)
    return str(dtype).split(".")[-1] in ("float32", "float16", "bfloat16", "complex64")


def as_number(got: object, what: str) -> tuple[float, bool]:
    """The student's scalar answer as a Python float, and whether it was computed in low precision.

    Accepts Python numbers, numpy scalars and 0-dimensional (or one-element) torch tensors and numpy arrays."""
    low = is_low_precision(got)
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise AssertionError(f"{what}: expected a number, got a tensor of shape {tuple(got.shape)}")
        if got.is_complex():
            raise AssertionError(f"{what}: expected a real number, got a complex tensor ({got.dtype})")
        return float(got.detach().cpu().item()), low
    if hasattr(got, "item") and hasattr(got, "dtype"):               # numpy scalar or array
        if getattr(got, "size", 1) != 1:
            raise AssertionError(f"{what}: expected a number, got an array of shape {getattr(got, 'shape', '?')}")
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise AssertionError(f"{what}: expected a number, got {type(got).__name__}")
    return float(got), low


def number_close(got: float, want: float, low: bool, rel_tol: float = 1e-9) -> bool:
    """Compare two numbers with ``rel_tol`` (float64 answers) or :data:`FLOAT32_RTOL` (float32 answers)."""
    tol = max(rel_tol, FLOAT32_RTOL) if low else rel_tol
    return math.isclose(got, want, rel_tol=tol, abs_tol=1e-300)


def precision_note(low: bool) -> str:
    return (f" (your answer is float32: it was compared with a float32 tolerance, rtol={FLOAT32_RTOL:g}; compute in "
            "float64 for the exact check)") if low else ""


def as_tensor(got: object, what: str) -> torch.Tensor:
    """The student's answer as a torch tensor (numpy arrays are converted), or an error that says what came."""
    if isinstance(got, torch.Tensor):
        return got
    if type(got).__module__.startswith("numpy") and hasattr(got, "shape"):
        raise AssertionError(f"{what}: expected a torch.Tensor, got a numpy array; convert it with torch.from_numpy "
                             "(or stay in torch throughout)")
    raise AssertionError(f"{what}: expected a torch.Tensor, got {type(got).__name__}")


def matches(got: object, wrong: torch.Tensor, atol: float = 1e-9) -> bool:
    """True if ``got`` is a tensor of ``wrong``'s shape that equals it (used to recognise a known mistake)."""
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(wrong.shape) or got.is_complex() != wrong.is_complex():
        return False
    g = got.detach().cpu().to(wrong.dtype)
    w = wrong.detach().cpu()
    tol = atol + (FLOAT32_RTOL * w.abs() if is_low_precision(got) else 0 * w.abs())
    same = ((g - w).abs() <= tol) | (g.isnan() & w.isnan())          # a NaN where the known mistake has one
    return bool(same.all())


def assert_close(got: object, want: torch.Tensor, what: str, *, atol: float = 1e-10, rtol: float = 1e-8,
                 hint: str = "") -> None:
    """Compare a student's tensor with the reference and explain the first difference found.

    A float32 (or complex64) answer is compared with a float32 tolerance (``rtol`` :data:`FLOAT32_RTOL`, ``atol``
    :data:`FLOAT32_ATOL` times the reference's largest entry), and the message says so."""
    got = as_tensor(got, what)
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if got.is_complex() != want.is_complex():
        raise AssertionError(f"{what}: expected a {'complex' if want.is_complex() else 'real'} tensor, got dtype {got.dtype}")
    low = is_low_precision(got)
    if low:
        scale = want.abs().max().item() if want.numel() else 1.0
        atol, rtol = max(atol, FLOAT32_ATOL * max(scale, 1.0)), max(rtol, FLOAT32_RTOL)
    got = got.detach().cpu().to(want.dtype)
    want = want.cpu()
    if not bool(torch.isfinite(got).all()):
        idx = tuple(int(i) for i in torch.nonzero(~torch.isfinite(got))[0])
        raise AssertionError(f"{what}: your answer has a non-finite value (nan or inf) at index {idx}"
                             + (f"\n  hint: {hint}" if hint else ""))
    err = (got - want).abs()
    bound = atol + rtol * want.abs()
    if not bool((err <= bound).all()):
        idx = tuple(int(i) for i in torch.nonzero(err > bound)[0])
        msg = (f"{what}: values differ from the reference (max |difference| {err.max().item():.3e}); first at index "
               f"{idx}: got {got[idx].item():.10g}, expected {want[idx].item():.10g}{precision_note(low)}")
        raise AssertionError(msg + (f"\n  hint: {hint}" if hint else ""))


# ------------------------------------------------------------------------------------------------ the scoreboard
@dataclass(frozen=True)
class Exercise:
    """One graded exercise: the nbgrader ``grade_id`` of its test cell, the function the student writes, the checker
    that grades it and its points."""

    grade_id: str
    function: str
    checker: Callable[[Callable], None]
    points: int


@dataclass(frozen=True)
class Score:
    """What :func:`scoreboard` found: ``rows`` of ``(function, points, status, detail)``, the points earned and the
    total."""

    rows: tuple[tuple[str, int, str, str], ...]
    earned: int
    total: int


def exercises_of(chapter: str) -> tuple[Exercise, ...]:
    """The graded exercises of ``chapter`` (``"ch01"``..``"ch08"``)."""
    try:
        module = importlib.import_module(f"{__name__}.{chapter}")
    except ModuleNotFoundError:
        raise ValueError(f"chapter must be one of 'ch01'..'ch08'; got {chapter!r}") from None
    return tuple(module.EXERCISES)


def scoreboard(chapter: str, namespace: Mapping[str, object], *, show: bool = True) -> Score:
    """Run every graded checker of ``chapter`` on the functions found in ``namespace`` (pass ``globals()``).

    Prints one line per exercise (passes, fails with the first line of the checker's message, not attempted) and the
    points so far. These are the public checks; the instructor's grading adds hidden cases of the same checkers.
    """
    rows, earned, total = [], 0, 0
    for ex in exercises_of(chapter):
        total += ex.points
        fn = namespace.get(ex.function)
        if not callable(fn):
            rows.append((ex.function, ex.points, "missing", f"no function named {ex.function} in this notebook"))
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                ex.checker(fn)
        except NotImplementedError:
            rows.append((ex.function, ex.points, "not attempted", "the stub still raises NotImplementedError"))
        except AssertionError as err:
            rows.append((ex.function, ex.points, "fails", str(err).splitlines()[0] if str(err) else "AssertionError"))
        except Exception as err:  # noqa: BLE001 -- a student's code may raise anything; report it, do not stop
            rows.append((ex.function, ex.points, "error", f"{type(err).__name__}: {err}".splitlines()[0]))
        else:
            rows.append((ex.function, ex.points, "passes", ""))
            earned += ex.points
    score = Score(tuple(rows), earned, total)
    if show:
        width = max(len(r[0]) for r in rows)
        for name, pts, status, detail in rows:
            got = pts if status == "passes" else 0
            line = f"{name:<{width}}  {got:>2}/{pts:<2}  {status}"
            print(line + (f": {detail}" if detail else ""))
        print(f"Points so far: {earned} / {total} (public checks; the graded version adds hidden cases)")
    return score
