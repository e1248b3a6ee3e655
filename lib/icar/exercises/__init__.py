"""Graded-exercise checkers, ARENA-style: one module per chapter (``icar.exercises.ch01``, ...).

Each ``check_*`` function takes the student's function, runs it on fixed inputs against the reference
implementation, and raises an ``AssertionError`` that says what is wrong (shape, dtype, value, a missing conjugate),
or prints that every check passed.
"""
from __future__ import annotations

import torch


def passed(name: str) -> None:
    """Print the success line of a checker."""
    print(f"All checks of {name} passed.")


def assert_close(got: object, want: torch.Tensor, what: str, *, atol: float = 1e-10, rtol: float = 1e-8,
                 hint: str = "") -> None:
    """Compare a student's tensor with the reference and explain the first difference found."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if got.is_complex() != want.is_complex():
        raise AssertionError(f"{what}: expected a {'complex' if want.is_complex() else 'real'} tensor, got dtype {got.dtype}")
    got = got.detach().to(want.dtype).cpu()
    err = (got - want.cpu()).abs()
    bound = atol + rtol * want.abs().cpu()
    if not bool((err <= bound).all()):
        idx = tuple(int(i) for i in torch.nonzero(err > bound)[0])
        msg = (f"{what}: values differ from the reference (max |difference| {err.max().item():.3e}); first at index "
               f"{idx}: got {got[idx].item():.6g}, expected {want[idx].item():.6g}")
        raise AssertionError(msg + (f"\n  hint: {hint}" if hint else ""))
