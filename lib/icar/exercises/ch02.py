"""Checkers of Chapter 2's graded exercises (augmented tokens, one gradient step)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..augmented import AugmentedLinearAttention, block, shared_step
from ..data import sample_ar
from ..estimators import gd_estimates, predictions
from ..theory import gd_optimal_step, phase_moments
from . import Exercise, as_number, number_close, passed, precision_note

SLOT_NAMES = ("answer", "s_t", "s_(t-1)")


def _where(X: torch.Tensor, d: int) -> list[tuple[int, int]]:
    """Slot blocks of a (3d, 3d) matrix that hold a non-zero entry."""
    return [(a, b) for a in range(3) for b in range(3) if block(X, a, b, d).abs().max().item() > 1e-12]


def _names(blocks: list[tuple[int, int]]) -> str:
    return ", ".join(f"({SLOT_NAMES[a]}, {SLOT_NAMES[b]})" for a, b in blocks) or "none"


def check_gd_construction(fn: Callable[[int, float], tuple[torch.Tensor, torch.Tensor]], seed: int = 0) -> None:
    """Check ``fn(d, eta) -> (W_V, W_KQ)``: the layer must output one gradient step ``eta * C_t s_t``."""
    for d, eta in ((4 + 2 * (seed % 2), 0.25 + 0.05 * seed), (2, 1.5 - 0.1 * seed)):
        out = fn(d, eta)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise AssertionError(f"return a tuple (W_V, W_KQ); got {type(out).__name__}")
        W_V, W_KQ = out
        for name, X in (("W_V", W_V), ("W_KQ", W_KQ)):
            if not isinstance(X, torch.Tensor):
                raise AssertionError(f"{name} must be a torch.Tensor; got {type(X).__name__}")
            if tuple(X.shape) != (3 * d, 3 * d):
                raise AssertionError(f"{name} must have shape (3d, 3d) = {(3 * d, 3 * d)} for d={d}; got {tuple(X.shape)}")
            if X.is_complex() or X.dtype != torch.float64:
                raise AssertionError(f"{name} must be real float64; got {X.dtype}")
        # diagnose the placement of the blocks before comparing numbers
        v_blocks, kq_blocks = _where(W_V, d), _where(W_KQ, d)
        if (0, 1) not in v_blocks:
            hint = ""
            if any(a != 0 for a, _ in v_blocks):
                hint = (" Your W_V writes into a slot the loss never reads: the prediction is the answer slot "
                        "(rows 0..d-1) of the output.")
            raise AssertionError(f"W_V must move the s_j slot of each token into the answer slot: block "
                                 f"(answer, s_t) should be the identity; your non-zero blocks: {_names(v_blocks)}.{hint}")
        if (2, 1) not in kq_blocks:
            hint = ""
            if (1, 2) in kq_blocks:
                hint = (" You put it at (key s_t, query s_(t-1)), which scores s_j^* s_(t-1): the transpose of "
                        "the right block. The score must pair the key's previous state s_(j-1) with the query's "
                        "current state s_t, so that s_j s_(j-1)^* s_t appears.")
            raise AssertionError(f"W_KQ must hold eta*I in block (key s_(t-1), query s_t) = rows 2d..3d-1, columns "
                                 f"d..2d-1; your non-zero blocks: {_names(kq_blocks)}.{hint}")
        extra = [b for b in v_blocks if b != (0, 1) and b[0] == 0 and b[1] != 0]
        extra_kq = [b for b in kq_blocks if b != (2, 1) and b[0] != 0 and b[1] != 0]
        if extra or extra_kq:
            raise AssertionError(f"only one block of each matrix may act on the prediction; extra non-zero live "
                                 f"blocks: W_V {_names(extra)}; W_KQ {_names(extra_kq)}")
        # the numbers: real and complex data
        for law in ("commuting", "unitary"):
            batch = sample_ar(law, 6, d, 7, seed=11 + seed, init="gaussian")
            dtype = batch.states.dtype
            model = AugmentedLinearAttention.from_parameters(W_V.to(dtype), W_KQ.to(dtype))
            got = model.predict(batch.states)[0]
            want = predictions(gd_estimates(batch.states, eta), batch.states)
            err = (got - want).abs().max().item()
            if err > 1e-10:
                ratio = (got.abs().sum() / want.abs().sum()).item()
                if (got + want).abs().max().item() < 1e-10:
                    hint = " The output is -eta * C_t s_t: the sign is flipped (the step goes down the gradient)."
                elif abs(ratio - eta) < 1e-6 * max(1.0, eta):
                    hint = " The output is eta times too large: eta appears twice (in W_V and W_KQ); the step is the product of the two blocks."
                elif abs(ratio - 1 / eta) < 1e-6 * max(1.0, 1 / eta):
                    hint = " The output is C_t s_t without the factor eta: put eta in one of the two blocks."
                else:
                    hint = f" (the output is {ratio:.4g} times the one-step prediction in size)"
                raise AssertionError(f"on {law} data (d={d}, eta={eta}) the layer does not output eta * C_t s_t "
                                     f"(max difference {err:.3e}).{hint}")
    passed("check_gd_construction")


def _sums(N: int) -> tuple[int, int]:
    return N * (N + 1) // 2, N * (N + 1) * (2 * N + 1) // 6


def check_shared_step_gaussian(fn: Callable[[int, int, float], float], seed: int = 0) -> None:
    r"""Check ``fn(n_max, d, sigma2)``: the best single step shared by the prefixes with :math:`n = 0..n_{\max}`
    pairs when :math:`s_1` is a circular complex Gaussian with :math:`E|x_k|^2 = \sigma^2` (independent
    coordinates). Numpy and torch scalars are accepted; a float32 answer is compared with a float32 tolerance."""
    from ..theory import gaussian_moments
    cases = [(1, 2, 1.0), (4, 3, 0.5), (10, 5, 2.0), (49, 5, 1.0 / 5), (7, 1, 3.0)]
    if seed:
        cases = [(n + 3 * seed, d + seed % 4, s2 * (1 + 0.37 * seed)) for n, d, s2 in cases]
    for n_max, d, s2 in cases:
        m = gaussian_moments(s2)
        got, low = as_number(fn(n_max, d, s2), f"n_max={n_max}, d={d}, sigma2={s2}")
        want = shared_step(n_max, d, m)
        if number_close(got, want, low):
            continue
        s1, sq = _sums(n_max)
        wrong = {
            "that is the best step for the longest prefix alone (n = n_max); one step must serve every prefix "
            "n = 0..n_max": gd_optimal_step(n_max, d, m),
            "that is the unit-modulus (random phases) answer 3d/(2N+3d-2): the Gaussian moments are mu4 = 2 sigma^4, "
            "mu6 = 6 sigma^6, mu24 = 2 sigma^6": shared_step(n_max, d, phase_moments(d)),
            "off by one: the prefixes hold n = 0..n_max pairs (the longest has n_max, not n_max+1)":
                shared_step(n_max + 1, d, m),
            "off by one: the prefixes hold n = 0..n_max pairs (the longest has n_max, not n_max-1)":
                shared_step(n_max - 1, d, m) if n_max > 1 else float("nan"),
            "the Gram-noise term has d-1 off-diagonal coordinates, not d": m.mu4 * s1 / (m.mu6 * sq + d * m.mu24 * s1),
            "sigma2 is missing: the step scales like 1/sigma^2 (mu4 / mu6 = 1/(3 sigma^2))":
                shared_step(n_max, d, gaussian_moments(1.0)) if s2 != 1.0 else float("nan"),
            "the step scales like 1/sigma^2, not sigma^2": shared_step(n_max, d, gaussian_moments(1.0)) * s2
                if s2 != 1.0 else float("nan"),
            "the gaussian moments are those of |x|^2 exponential: E|x|^4 = 2 sigma^4, E|x|^6 = 6 sigma^6 (you used the "
            "real-Gaussian 3 sigma^4, 15 sigma^6)": m.mu2**2 * 3 * s1 / (15 * m.mu2**3 * sq + (d - 1) * 3 * m.mu2**3 * s1),
            "the sign is flipped: the step is positive": -want,
        }
        hint = next((h for h, v in wrong.items() if number_close(got, v, low)), "")
        raise AssertionError(f"n_max={n_max}, d={d}, sigma2={s2}: expected {want:.10g}, got {got:.10g}"
                             f"{precision_note(low)}" + (f"\n  hint: {hint}" if hint else ""))
    passed("check_shared_step_gaussian")


def check_shared_step(fn: Callable[[int, int], float]) -> None:
    """Check ``fn(n_max, d)``: the best single step for prefixes with 0..n_max pairs, unit-norm random phases."""
    for n_max, d in ((1, 2), (4, 3), (10, 5), (49, 5), (7, 1)):
        got, low = as_number(fn(n_max, d), f"n_max={n_max}, d={d}")
        want = shared_step(n_max, d, phase_moments(d))
        if not number_close(got, want, low):
            hint = ""
            if math.isclose(got, gd_optimal_step(n_max, d, phase_moments(d)), rel_tol=1e-9):
                hint = " That is the best step for the longest prefix alone; one step must serve every prefix."
            elif math.isclose(got, shared_step(n_max + 1, d, phase_moments(d)), rel_tol=1e-9):
                hint = " Off by one: the prefixes hold n = 0..n_max pairs (the empty one does not count)."
            raise AssertionError(f"n_max={n_max}, d={d}: expected {want:.6g}, got {got:.6g}.{hint}")
    passed("check_shared_step")


EXERCISES = (
    Exercise("ch02-gd-construction-test", "gd_construction", check_gd_construction, 6),
    Exercise("ch02-shared-step-gaussian-test", "shared_step_gaussian", check_shared_step_gaussian, 4),
)
