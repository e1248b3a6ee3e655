r"""In-context estimators of :math:`W` from a prefix :math:`s_1..s_t` (the in-context mapping :math:`\Gamma`),
and the prediction they make (the prediction mapping :math:`\psi(\Gamma, s_t) = \Gamma s_t`).

All estimators are computed for every prefix length at once. With ``states`` of shape ``(n, T, d)``, they return
``(n, T, d, d)``, where index ``t-1`` holds the estimate built from :math:`s_1..s_t`, i.e. from the ``t-1`` pairs
:math:`(s_i, s_{i+1})`, :math:`i < t`. The inner least-squares objective is

.. math:: L_t(W) = \sum_{i<t} \|s_{i+1} - W s_i\|^2 .

Complex states use conjugate transposes (:math:`s_i^*`).
"""
from __future__ import annotations

import torch

from .validate import (
    require_finite,
    require_floating,
    require_ndim,
    require_positive,
    require_real,
    require_shape,
    require_square,
)


def _check_states(states: torch.Tensor) -> torch.Tensor:
    require_ndim(states, "states", (3,), "(n, T, d)")
    require_floating(states, "states")
    require_finite(states, "states")
    if states.shape[1] < 2:
        raise ValueError(f"states must hold at least 2 time steps (T >= 2); got shape {tuple(states.shape)}")
    return states


def _exclusive_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Running sum that starts at 0: out[k] = sum_{j<k} x[j] (along ``dim``, same length as ``x``)."""
    c = torch.cumsum(x, dim=dim)
    return torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c.narrow(dim, 0, c.shape[dim] - 1)], dim=dim)


def cross_moments(states: torch.Tensor) -> torch.Tensor:
    r""":math:`C_t = \sum_{i<t} s_{i+1} s_i^*` for :math:`t = 1..T` (``C_1 = 0``). ``(n, T, d)`` -> ``(n, T, d, d)``."""
    _check_states(states)
    outer = states[:, 1:, :, None] * states[:, :-1, None, :].conj()  # (n, T-1, d, d): s_{i+1} s_i^*
    return _exclusive_cumsum(torch.cat([outer, torch.zeros_like(outer[:, :1])], dim=1), dim=1)


def gram_moments(states: torch.Tensor) -> torch.Tensor:
    r""":math:`G_t = \sum_{i<t} s_i s_i^*` for :math:`t = 1..T` (``G_1 = 0``). ``(n, T, d)`` -> ``(n, T, d, d)``."""
    _check_states(states)
    outer = states[:, :, :, None] * states[:, :, None, :].conj()
    return _exclusive_cumsum(outer, dim=1)


def ols_estimates(states: torch.Tensor) -> torch.Tensor:
    r"""Least squares :math:`\hat W_t = C_t G_t^{+}` (minimum-norm solution of :math:`\min_W L_t(W)`).

    Once :math:`s_1..s_{t-1}` span the whole space, :math:`G_t` is invertible and :math:`\hat W_t = W` exactly (the
    data satisfy :math:`C_t = W G_t`). ``(n, T, d)`` -> ``(n, T, d, d)``.
    """
    G = gram_moments(states)
    return cross_moments(states) @ torch.linalg.pinv(G, hermitian=True)


def gd_estimates(states: torch.Tensor, eta: float | torch.Tensor) -> torch.Tensor:
    r"""One gradient step from :math:`W_0 = 0` on :math:`\tfrac12 L_t`: :math:`\hat W_t = \eta\, C_t`.

    The gradient of :math:`\tfrac12 L_t` at 0 is :math:`-C_t`. ``eta`` is a float or a ``(T,)`` tensor of per-prefix
    step sizes (index ``t-1`` for the prefix :math:`s_1..s_t`). Returns ``(n, T, d, d)``.
    """
    C = cross_moments(states)
    if isinstance(eta, torch.Tensor):
        require_shape(eta, "eta", (states.shape[1],), "(T,)")
        require_real(eta, "eta")
        require_finite(eta, "eta")
        if bool((eta < 0).any()):
            raise ValueError(f"eta (per-prefix step sizes) must be >= 0; got {eta.tolist()}")
        eta = eta.to(dtype=C.real.dtype, device=C.device)[:, None, None]
    else:
        eta = require_positive(eta, "eta")
    return eta * C


def predictions(estimates: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    r"""Prediction mapping :math:`\psi(\hat W_t, s_t) = \hat W_t s_t` for :math:`t = 1..T`. Returns ``(n, T, d)``:
    index ``t-1`` predicts :math:`s_{t+1}`."""
    _check_states(states)
    require_shape(estimates, "estimates", (*states.shape, states.shape[-1]), "(n, T, d, d)")
    require_floating(estimates, "estimates")
    require_finite(estimates, "estimates")
    return torch.einsum("ntij,ntj->nti", estimates, states)


def next_token_errors(estimates: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    r"""Squared next-token errors :math:`\|\hat W_t s_t - s_{t+1}\|^2` for :math:`t = 1..T-1`: ``(n, T-1)``."""
    pred = predictions(estimates, states)[:, :-1]
    return (pred - states[:, 1:]).abs().pow(2).sum(-1)


def estimation_errors(estimates: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    r"""Frobenius distance :math:`\|\hat W_t - W\|_F` for every prefix: ``(n, T)``."""
    require_square(W, "W")
    require_ndim(estimates, "estimates", (4,), "(n, T, d, d)")
    require_square(estimates, "estimates")
    require_shape(W, "W", (estimates.shape[0], estimates.shape[-1], estimates.shape[-1]), "(n, d, d)")
    for x, name in ((estimates, "estimates"), (W, "W")):
        require_floating(x, name)
        require_finite(x, name)
    return torch.linalg.matrix_norm(estimates - W[:, None])
