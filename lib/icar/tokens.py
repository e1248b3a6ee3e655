r"""Augmented tokens: each token carries the current state and the previous one, so that one attention layer can
form the in-context pairs :math:`(s_{t-1}, s_t)` of least squares.

.. math:: e_t = (\underbrace{0_d}_{\text{answer}}, s_t, s_{t-1}), \qquad s_0 = 0,

with the answer slot optional (chapter 3 uses :math:`e_t = (s_t; s_{t-1})`). Chapters 2, 3 and 5 build their tokens
here (``icar.augmented.augment``, ``icar.mesa.tokens``, ``icar.noncommuting.augment`` check their own shapes and
call :func:`augment`).
"""
from __future__ import annotations

import torch

from .validate import require_finite, require_floating, require_min_length


def _check_states(states: torch.Tensor) -> torch.Tensor:
    require_floating(states, "states")
    if states.dim() < 2:
        raise ValueError(f"states must be a tensor of shape (..., T, d); got {tuple(states.shape)}")
    require_min_length(states, "states", -2, 1, "time step (T >= 1)")
    return require_finite(states, "states")


def previous(states: torch.Tensor) -> torch.Tensor:
    r"""The states shifted one step later in time, :math:`(s_0, s_1, \dots, s_{T-1})` with :math:`s_0 = 0`:
    ``(..., T, d)`` -> ``(..., T, d)``."""
    _check_states(states)
    return torch.cat([torch.zeros_like(states[..., :1, :]), states[..., :-1, :]], dim=-2)


def augment(states: torch.Tensor, *, answer_slot: bool = True) -> torch.Tensor:
    r"""Tokens :math:`e_t = (0_d, s_t, s_{t-1})` (``answer_slot=True``, ``(..., T, 3d)``) or
    :math:`e_t = (s_t, s_{t-1})` (``(..., T, 2d)``), with :math:`s_0 = 0`, from states ``(..., T, d)``."""
    if not isinstance(answer_slot, bool):
        raise TypeError(f"answer_slot must be True or False; got {answer_slot!r}")
    slots = [states, previous(states)]
    if answer_slot:
        slots.insert(0, torch.zeros_like(states))
    return torch.cat(slots, dim=-1)
