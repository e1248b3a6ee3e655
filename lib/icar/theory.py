r"""Closed forms used across chapters.

One-step gradient descent on unitary commuting contexts (a course derivation following Sander et al., 2024,
arXiv 2402.05787). Setting: :math:`W = U\mathrm{diag}(\lambda)U^*` with i.i.d. uniform phases :math:`\lambda_k`,
:math:`x = U^* s_1` with exchangeable, phase-invariant coordinates and moments
:math:`\mu_2 = E|x_i|^2`, :math:`\mu_4 = E|x_i|^4`, :math:`\mu_6 = E|x_i|^6`, :math:`\mu_{24} = E|x_i|^2|x_k|^4`
(:math:`i \ne k`). With :math:`n` pairs in the prefix, the one-step estimator
:math:`\gamma \sum_{i\le n} s_{i+1}s_i^*` predicts :math:`s_{n+2}` from :math:`s_{n+1}` with expected squared error,
per coordinate,

.. math:: e(\gamma) = \gamma^2 n^2 \mu_6 - 2\gamma n \mu_4 + \mu_2 + \gamma^2 n (d-1) \mu_{24},

minimised at :math:`\gamma_n = \mu_4 / (n\mu_6 + (d-1)\mu_{24})`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .validate import require_nonnegative, require_positive, require_positive_int


@dataclass(frozen=True)
class Moments:
    r"""Moments of one eigen-coordinate of the initial state: :math:`\mu_2, \mu_4, \mu_6, \mu_{24}`."""

    mu2: float
    mu4: float
    mu6: float
    mu24: float

    def __post_init__(self) -> None:
        for name in ("mu2", "mu4", "mu6"):
            require_positive(getattr(self, name), name)
        require_nonnegative(self.mu24, "mu24")  # 0 for a sparse state (one non-zero coordinate)


def check_moments(m: object) -> Moments:
    """``m`` must be a :class:`Moments` (e.g. ``phase_moments(d)``)."""
    if not isinstance(m, Moments):
        raise TypeError(f"m must be icar.theory.Moments (e.g. phase_moments(d)); got {type(m).__name__}")
    return m


def phase_moments(d: int, norm: float = 1.0) -> Moments:
    r"""Moments for :math:`|x_k| = \mathrm{norm}/\sqrt d` (law ``"phases"``): :math:`\mu_{2k} = (\mathrm{norm}^2/d)^k`."""
    require_positive_int(d, "d")
    require_positive(norm, "norm")
    m = norm**2 / d
    return Moments(m, m**2, m**3, m**3)


def gaussian_moments(sigma2: float = 1.0) -> Moments:
    r"""Moments of a circular complex Gaussian with :math:`E|x|^2 = \sigma^2`: :math:`\mu_4 = 2\sigma^4`,
    :math:`\mu_6 = 6\sigma^6`, :math:`\mu_{24} = 2\sigma^6`."""
    require_positive(sigma2, "sigma2")
    return Moments(sigma2, 2 * sigma2**2, 6 * sigma2**3, 2 * sigma2**3)


def gd_error(gamma: float, n_pairs: int, d: int, m: Moments) -> float:
    r"""Expected squared next-token error of one GD step with step ``gamma``, summed over the ``d`` coordinates."""
    require_nonnegative(gamma, "gamma")
    require_positive_int(n_pairs, "n_pairs")
    require_positive_int(d, "d")
    check_moments(m)
    n = n_pairs
    per_coord = gamma**2 * n**2 * m.mu6 - 2 * gamma * n * m.mu4 + m.mu2 + gamma**2 * n * (d - 1) * m.mu24
    return d * per_coord


def gd_optimal_step(n_pairs: int, d: int, m: Moments) -> float:
    r""":math:`\gamma_n = \mu_4 / (n\mu_6 + (d-1)\mu_{24})`; for law ``"phases"`` with unit norm, :math:`d/(n+d-1)`."""
    require_positive_int(n_pairs, "n_pairs")
    require_positive_int(d, "d")
    check_moments(m)
    return m.mu4 / (n_pairs * m.mu6 + (d - 1) * m.mu24)


def gd_optimal_error(n_pairs: int, d: int, m: Moments) -> float:
    r"""Minimal error :math:`d\,(\mu_2 - n\mu_4^2/(n\mu_6 + (d-1)\mu_{24}))`; :math:`(d-1)/(n+d-1)` for unit phases."""
    require_positive_int(n_pairs, "n_pairs")
    require_positive_int(d, "d")
    check_moments(m)
    return d * (m.mu2 - n_pairs * m.mu4**2 / (n_pairs * m.mu6 + (d - 1) * m.mu24))
