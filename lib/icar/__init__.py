"""icar: the shared library of the course *In-context autoregressive learning*.

Modules (one idea each): :mod:`icar.runtime` (device, seeds, quick mode), :mod:`icar.validate` (input checks),
:mod:`icar.data` (AR sequences), :mod:`icar.estimators` (in-context estimators of W), :mod:`icar.theory`
(closed forms), :mod:`icar.models` and :mod:`icar.train` (models batched over a model dimension and their trainer),
:mod:`icar.claims` (asserted, recorded claims), :mod:`icar.tokens` (augmented tokens), :mod:`icar.figures` (plots
and explorers, one module per chapter) and :mod:`icar.exercises` (graded checks).
"""
from . import claims, data, estimators, models, runtime, theory, train, validate
from .claims import claim
from .runtime import paper_mode, pick, quick_mode, resolve_device, scale, setup

__version__ = "0.1.0"
__all__ = ["claims", "data", "estimators", "models", "runtime", "theory", "train", "validate", "claim", "pick",
           "paper_mode", "quick_mode", "resolve_device", "scale", "setup", "__version__"]
