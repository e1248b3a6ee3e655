"""Valid calls of the public functions of ``icar``, and the ways to corrupt one of their arguments.

A :class:`Case` is a function with a builder of *valid* keyword arguments and, for the arguments under test, a
*kind* that says which corruptions apply (see :data:`KINDS`). ``tests/test_bad_input.py`` draws a case, an argument,
a corruption (and, for NaN/inf injection, an index) and checks that the call raises a ``ValueError``/``TypeError``
from ``icar`` whose message names the argument. Every kind of bad input of issue 9 is one corruption here.
"""
from __future__ import annotations

import inspect
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import icar

ICAR_DIR = str(Path(icar.__file__).resolve().parent)


# ----------------------------------------------------------------------------------------------- corruptions
def _inject(x: torch.Tensor, value: float, index: int) -> torch.Tensor:
    """A copy of ``x`` with ``value`` at flat position ``index % numel``."""
    y = x.detach().clone(memory_format=torch.contiguous_format)
    flat = y.view(-1)
    flat[index % flat.numel()] = value
    return y


def _to_int(x: torch.Tensor) -> torch.Tensor:
    return (x.real if x.is_complex() else x).to(torch.int64)


# name -> function(value, index) -> corrupted value. Tensor corruptions first.
TENSOR = {
    "nan": lambda x, i: _inject(x, float("nan"), i),
    "inf": lambda x, i: _inject(x, float("inf") if i % 2 else -float("inf"), i),
    "int dtype": lambda x, i: _to_int(x),
    "meta": lambda x, i: x.detach().to("meta"),
    "numpy": lambda x, i: x.detach().numpy(),
    "list": lambda x, i: x.detach().tolist(),
    "None": lambda x, i: None,
    "string": lambda x, i: "states",
}
REAL_ONLY = {"complex": lambda x, i: x.detach().to(torch.complex128)}
COMPLEX_ONLY = {"real": lambda x, i: x.detach().real.clone()}
FIXED_RANK = {"rank+1": lambda x, i: x.detach().unsqueeze(0).clone(), "rank-1": lambda x, i: x.detach()[0].clone()}
SHORT = {  # prompts of length 1 and 0 along the time axis (dimension 1)
    "length 1": lambda x, i: x.detach()[:, :1].clone(),
    "length 0": lambda x, i: x.detach()[:, :0].clone(),
}
POS_INT = {"zero": lambda v, i: 0, "negative": lambda v, i: -2, "bool": lambda v, i: True, "float": lambda v, i: 2.5,
           "string": lambda v, i: "3", "None": lambda v, i: None}
NONNEG_INT = {"negative": lambda v, i: -1, "bool": lambda v, i: True, "float": lambda v, i: 1.5,
              "string": lambda v, i: "3", "None": lambda v, i: None}
POS_FLOAT = {"nan": lambda v, i: float("nan"), "inf": lambda v, i: float("inf"), "zero": lambda v, i: 0.0,
             "negative": lambda v, i: -0.5, "string": lambda v, i: "1", "None": lambda v, i: None,
             "bool": lambda v, i: True, "complex": lambda v, i: 1j}
NONNEG_FLOAT = {k: f for k, f in POS_FLOAT.items() if k != "zero"}
FINITE_FLOAT = {k: POS_FLOAT[k] for k in ("nan", "inf", "string", "None", "bool", "complex")}
PROB = {"nan": lambda v, i: float("nan"), "negative": lambda v, i: -0.1, "above 1": lambda v, i: 1.5,
        "string": lambda v, i: "0.5", "None": lambda v, i: None}
DTYPE = {"int dtype": lambda v, i: torch.int64, "string": lambda v, i: "float64", "bool dtype": lambda v, i: torch.bool}
CHOICE = {"unknown": lambda v, i: "no-such-choice", "None": lambda v, i: None, "int": lambda v, i: 3}
SEED = {"None": lambda v, i: None, "float": lambda v, i: 1.5, "string": lambda v, i: "0", "bool": lambda v, i: True}
DEVICE = {"unknown": lambda v, i: "gpu0", "int": lambda v, i: 3.5}


def tensor_kind(*extra: dict) -> dict:
    out = dict(TENSOR)
    for e in extra:
        out.update(e)
    return out


KINDS: dict[str, dict[str, Callable[[Any, int], Any]]] = {
    "tensor": tensor_kind(),                                  # real or complex data, any rank
    "tensor!": tensor_kind(FIXED_RANK),                       # real or complex, one rank
    "real": tensor_kind(REAL_ONLY),                           # real data, any rank
    "real!": tensor_kind(REAL_ONLY, FIXED_RANK),              # real data, one rank
    "complex!": tensor_kind(COMPLEX_ONLY, FIXED_RANK),        # complex data, one rank
    "states": tensor_kind(FIXED_RANK, SHORT),                 # (n, T, d), real or complex, T >= 2
    "real states": tensor_kind(REAL_ONLY, FIXED_RANK, SHORT),
    "complex states": tensor_kind(COMPLEX_ONLY, FIXED_RANK, SHORT),
    "int": POS_INT,
    "int>=0": NONNEG_INT,
    "float>0": POS_FLOAT,
    "float>=0": NONNEG_FLOAT,
    "float": FINITE_FLOAT,
    "prob": PROB,
    "dtype": DTYPE,
    "choice": CHOICE,
    "seed": SEED,
    "device": DEVICE,
}


@dataclass
class Case:
    """``fn(**build())`` is a valid call; ``kinds`` maps argument names to a key of :data:`KINDS`; ``alias`` gives
    the name an argument's error message uses when it differs from the argument's name; ``extra`` adds corruptions
    of one argument (name -> {label: function(value, index)})."""

    fn: Callable[..., Any]
    build: Callable[[], dict]
    kinds: dict[str, str]
    alias: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extra: dict[str, dict[str, Callable[[Any, int], Any]]] = field(default_factory=dict)
    label: str | None = None
    skip: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.label or f"{self.fn.__module__.removeprefix('icar.')}.{self.fn.__qualname__}"

    def valid(self, arg: str) -> tuple[dict, Any]:
        """Fresh valid keyword arguments and the valid value of ``arg`` (its default when the builder omits it)."""
        kwargs = self.build()
        if arg in kwargs:
            return kwargs, kwargs[arg]
        return kwargs, inspect.signature(self.fn).parameters[arg].default

    def corruptions(self, arg: str) -> dict[str, Callable[[Any, int], Any]]:
        out = {**KINDS.get(self.kinds.get(arg, ""), {}), **self.extra.get(arg, {})}
        return {k: f for k, f in out.items() if k not in self.skip.get(arg, ())}

    @property
    def args(self) -> list[str]:
        return list(dict.fromkeys([*self.kinds, *self.extra]))

    def all_corruptions(self) -> list[tuple[str, str]]:
        return [(a, c) for a in self.args for c in self.corruptions(a)]


def _names(name: str, msg: str) -> bool:
    """``msg`` names the argument ``name`` as a word of its own (so ``"XXnXX"`` or ``"N"`` does not name ``n``)."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", msg) is not None


def outcome(case: Case, arg: str, corruption: str, index: int = 0) -> tuple[str, str]:
    """Call ``case`` with ``arg`` corrupted: ``("clean", msg)`` for a ``ValueError``/``TypeError`` raised by ``icar``
    whose message says what was expected ("must") and names the argument; ``("silent", ...)`` when the call returns;
    ``("raw", ...)`` for any other error (from torch, Python, or an icar message that does not name the argument)."""
    kwargs, value = case.valid(arg)
    kwargs[arg] = case.corruptions(arg)[corruption](value, index)
    try:
        case.fn(**kwargs)
    except (ValueError, TypeError) as err:
        frames = traceback.extract_tb(err.__traceback__)
        msg = str(err)
        inside = bool(frames) and str(Path(frames[-1].filename).resolve()).startswith(ICAR_DIR)
        names = (arg, *case.alias.get(arg, ()))
        if inside and "must" in msg and any(_names(n, msg) for n in names):
            return "clean", msg
        return "raw", f"{type(err).__name__}: {msg}"
    except Exception as err:  # noqa: BLE001 - classifying every other failure is the point
        return "raw", f"{type(err).__name__}: {err}"
    return "silent", "returned a result"


# ----------------------------------------------------------------------------------------------- valid inputs
def _ar(law: str = "haar", n: int = 3, d: int = 2, T: int = 5):
    return icar.data.sample_ar(law, n, d, T, seed=0, init="gaussian")


def real_states(n: int = 3, T: int = 5, d: int = 2) -> torch.Tensor:
    return _ar("haar", n, d, T).states


def complex_states(n: int = 3, T: int = 5, d: int = 2) -> torch.Tensor:
    return _ar("unitary", n, d, T).states


CASES: list[Case] = []


def case(fn, build, kinds, **kw) -> None:
    CASES.append(Case(fn, build, kinds, **kw))


# data
from icar import data as D  # noqa: E402

case(D.rotation, lambda: dict(theta=torch.tensor([0.3, 1.0], dtype=torch.float64)), {"theta": "real"})
case(D.block_rotation, lambda: dict(theta=torch.tensor([[0.3, 1.0]], dtype=torch.float64)), {"theta": "real"})
case(D.haar_orthogonal, lambda: dict(n=2, d=3, seed=0), {"n": "int", "d": "int", "seed": "seed", "dtype": "dtype",
                                                        "device": "device"})
case(D.commuting_orthogonal, lambda: dict(n=2, d=4, seed=0, basis=D.haar_orthogonal(1, 4, seed=1)[0]),
     {"n": "int", "d": "int", "basis": "real!", "dtype": "dtype"}, skip={"basis": ("None",)})
case(D.unitary_diagonal, lambda: dict(n=2, d=3, seed=0), {"n": "int", "d": "int", "dtype": "dtype"})
case(D.sample_contexts, lambda: dict(law="haar", n=2, d=2, seed=0), {"law": "choice", "n": "int", "d": "int"})
case(D.initial_states, lambda: dict(law="gaussian", n=2, d=3, seed=0, scale=1.0),
     {"law": "choice", "n": "int", "d": "int", "scale": "float>0", "dtype": "dtype"})
case(D.matrix_powers, lambda: dict(W=D.haar_orthogonal(2, 3, seed=0), T=4), {"W": "tensor", "T": "int"})
case(D.rollout, lambda: dict(W=D.haar_orthogonal(2, 3, seed=0), s1=torch.randn(2, 3, dtype=torch.float64), T=4),
     {"W": "tensor!", "s1": "tensor!", "T": "int"})
case(D.rollout_map, lambda: dict(f=lambda x: 0.5 * x, s1=torch.randn(2, 3, dtype=torch.float64), T=4),
     {"s1": "tensor!", "T": "int"}, extra={"f": {"None": lambda v, i: None, "tensor": lambda v, i: torch.ones(2)}})
case(D.sample_ar, lambda: dict(law="haar", n=2, d=2, T=4, seed=0, init="gaussian", scale=1.0),
     {"law": "choice", "n": "int", "d": "int", "T": "int", "init": "choice", "scale": "float>0", "dtype": "dtype"})
case(D.sample_ar, lambda: dict(law=D.haar_orthogonal(2, 3, seed=0), n=2, d=3, T=4, seed=0),
     {"law": "tensor!"}, alias={"law": ("W",)}, skip={"law": ("rank-1",)})

# estimators
from icar import estimators as E  # noqa: E402

for _f in (E.cross_moments, E.gram_moments, E.ols_estimates):
    case(_f, lambda: dict(states=real_states()), {"states": "states"})
case(E.gd_estimates, lambda: dict(states=complex_states(), eta=0.3), {"states": "states", "eta": "float>0"})
case(E.gd_estimates, lambda: dict(states=real_states(), eta=torch.full((5,), 0.3, dtype=torch.float64)),
     {"eta": "real!"})
for _f in (E.predictions, E.next_token_errors):
    case(_f, lambda: dict(estimates=E.ols_estimates(real_states()), states=real_states()),
         {"estimates": "tensor!", "states": "states"})
case(E.estimation_errors, lambda: dict(estimates=E.ols_estimates(real_states()), W=_ar().W),
     {"estimates": "tensor!", "W": "tensor!"})

# theory
from icar import theory as TH  # noqa: E402

case(TH.Moments, lambda: dict(mu2=1.0, mu4=1.0, mu6=1.0, mu24=1.0),
     {"mu2": "float>0", "mu4": "float>0", "mu6": "float>0", "mu24": "float>=0"})
case(TH.phase_moments, lambda: dict(d=3, norm=1.0), {"d": "int", "norm": "float>0"})
case(TH.gaussian_moments, lambda: dict(sigma2=1.0), {"sigma2": "float>0"})
case(TH.gd_error, lambda: dict(gamma=0.1, n_pairs=4, d=3, m=TH.phase_moments(3)),
     {"gamma": "float>=0", "n_pairs": "int", "d": "int"}, extra={"m": {"None": lambda v, i: None, "tuple": lambda v, i: (1, 1, 1, 1)}})
case(TH.check_moments, lambda: dict(m=TH.phase_moments(3)), {},
     extra={"m": {"None": lambda v, i: None, "tuple": lambda v, i: (1, 1, 1, 1), "dict": lambda v, i: {"mu2": 1.0}}})
for _f in (TH.gd_optimal_step, TH.gd_optimal_error):
    case(_f, lambda: dict(n_pairs=4, d=3, m=TH.phase_moments(3)), {"n_pairs": "int", "d": "int"},
         extra={"m": {"None": lambda v, i: None, "tuple": lambda v, i: (1, 1, 1, 1)}})

# models
from icar import models as MO  # noqa: E402

case(MO.BatchedModel, lambda: dict(n_models=2), {"n_models": "int"})
case(MO.FixedLinear, lambda: dict(n_models=2, d=3, seed=0, init_scale=0.1),
     {"n_models": "int", "d": "int", "seed": "seed", "init_scale": "float>=0", "dtype": "dtype"})
case(MO.LinearAttention, lambda: dict(n_models=2, dim=3, init_scale=0.1),
     {"n_models": "int", "dim": "int", "init_scale": "float>=0", "dtype": "dtype"})
case(lambda states: MO.FixedLinear(2, 2)(states), lambda: dict(states=real_states()), {"states": "states"},
     label="models.FixedLinear.forward")
case(lambda tokens: MO.LinearAttention(2, 2)(tokens), lambda: dict(tokens=real_states()), {"tokens": "tensor"},
     label="models.LinearAttention.forward")

# train
from icar import train as TR  # noqa: E402


def _pred_target():
    return dict(pred=torch.randn(2, 3, 4, dtype=torch.float64), target=torch.randn(3, 4, dtype=torch.float64))


# a loss sees the model's output at every step: a diverging model may give NaN, and integer targets are counts
_no_values = {"pred": ("nan", "inf"), "target": ("nan", "inf", "int dtype")}
case(TR.per_model_mse, _pred_target, {"pred": "tensor", "target": "tensor"}, skip=_no_values)
case(TR.per_model_sum_mse, _pred_target, {"pred": "tensor", "target": "tensor"}, skip=_no_values)


def _train_args():
    model = MO.FixedLinear(2, 2)
    st = real_states()
    return dict(model=model, batch_fn=TR.fixed_batch(st, st[:, 1:]), steps=2, lr=0.01, optimizer="sgd", momentum=0.5)


case(TR.train, _train_args, {"steps": "int", "lr": "float>0", "optimizer": "choice", "momentum": "float>=0",
                             "seed": "seed"},
     extra={"model": {"None": lambda v, i: None, "nn.Linear": lambda v, i: torch.nn.Linear(2, 2)},
            "batch_fn": {"None": lambda v, i: None, "tensor": lambda v, i: torch.ones(2)},
            "lr": {"nan in a list": lambda v, i: [0.1, float("nan")], "nan in numpy": lambda v, i: np.array([0.1, np.nan]),
                   "zero in a tensor": lambda v, i: torch.tensor([0.1, 0.0])},
            "momentum": {"one": lambda v, i: 1.0}})
case(TR.fixed_batch, lambda: dict(inputs=real_states(), targets=real_states()), {"inputs": "tensor", "targets": "tensor"},
     skip={"inputs": ("int dtype",), "targets": ("int dtype",)})  # token ids and counts are integers
case(TR.BatchedSGD, lambda: dict(params=[torch.nn.Parameter(torch.zeros(2, 3))], lr=torch.full((2,), 0.1), momentum=0.5),
     {"lr": "real!", "momentum": "float>=0"}, extra={"params": {"None": lambda v, i: None}})
case(TR.BatchedAdam, lambda: dict(params=[torch.nn.Parameter(torch.zeros(2, 3))], lr=torch.full((2,), 0.1), eps=1e-8),
     {"lr": "real!", "eps": "float>0"},
     extra={"params": {"None": lambda v, i: None}, "betas": {"one": lambda v, i: (1.0, 0.999), "nan": lambda v, i: (float("nan"), 0.9)}})

# runtime
from icar import runtime as RT  # noqa: E402

case(RT.resolve_device, lambda: dict(device="cpu"), {"device": "device"})
case(RT.make_generator, lambda: dict(seed=0), {"seed": "seed"})
case(RT.setup, lambda: dict(seed=0, device="cpu"), {"seed": "seed", "device": "device"})
case(RT.float64_device, lambda: dict(device=torch.device("cpu")), {},
     extra={"device": {"string": lambda v, i: "cpu", "None": lambda v, i: None}})
case(RT.apply_threads, lambda: dict(device=torch.device("cpu")), {},
     extra={"device": {"string": lambda v, i: "cpu", "None": lambda v, i: None}})
case(RT.training_dtype, lambda: dict(device=torch.device("cpu")), {"device": "device"},
     extra={"device": {"None": lambda v, i: None}, "exact": {"None": lambda v, i: None, "int": lambda v, i: 1},
            "is_complex": {"string": lambda v, i: "yes"}})
case(RT.cpu_threads, lambda: dict(value="1"), {},
     extra={"value": {"zero": lambda v, i: "0", "negative": lambda v, i: "-1", "float": lambda v, i: "1.5",
                      "word": lambda v, i: "many"}}, alias={"value": ("ICAR_THREADS",)})

# kernels
from icar import kernels as KE  # noqa: E402
from icar import kernel_transformer as KT  # noqa: E402


def sphere_states(n: int = 2, T: int = 5, d: int = 3) -> torch.Tensor:
    return KE.sample_linear(n, d, T, seed=0)[0]


_kern = {"kernel": "choice", "beta": "float>0"}
case(KE.check_states, lambda: dict(states=sphere_states()), {"states": "real states"})
case(KE.kernel_matrix, lambda: dict(queries=sphere_states(), keys=sphere_states(), kernel="exp", beta=1.0),
     {"queries": "real", "keys": "real", **_kern})
case(KE.previous_tokens, lambda: dict(states=sphere_states()), {"states": "real!"})
case(KE.ckd_operators, lambda: dict(states=sphere_states(), kernel="exp"),
     {"states": "real states", **_kern, "normalization": "choice"}, skip={"normalization": ("None",)})
case(KE.ckd, lambda: dict(states=sphere_states(), n_layers=2, kernel="exp", eta=0.5),
     {"states": "real states", "n_layers": "int", **_kern, "eta": "float>0"},
     extra={"eta": {"nan tensor": lambda v, i: torch.tensor([0.5, float("nan")]), "zero tensor": lambda v, i: torch.zeros(2)}})
case(KE.ckd_flow, lambda: dict(states=sphere_states(), tau=1.0), {"states": "real states", "tau": "float>0", **_kern})
case(KE.ckd_limit, lambda: dict(states=sphere_states()), {"states": "real states", **_kern})
case(KE.kaczmarz, lambda: dict(states=sphere_states(), kernel="exp"), {"states": "real states", **_kern})
case(KE.interpolation_predictions, lambda: dict(states=sphere_states()), {"states": "real states"})
case(KE.prediction_errors, lambda: dict(u=sphere_states(), states=sphere_states()), {"u": "real!", "states": "real states"},
     skip={"u": ("nan", "inf")})  # a diverging estimate is a result


def _W_x1():
    _, W, x1 = KE.sample_linear(2, 3, 4, seed=0)
    return dict(W=W, x1=x1)


_Wx = {"W": "real!", "x1": "real!"}
case(KE.projected_map, _W_x1, _Wx)
case(KE.spectral_radius, _W_x1, _Wx)
case(KE.linear_closed_form_errors, lambda: dict(**_W_x1(), T=5), {**_Wx, "T": "int"},
     extra={"T": {"one": lambda v, i: 1}})
case(KE.sample_linear, lambda: dict(n=2, d=3, T=4, seed=0), {"n": "int", "d": "int", "T": "int", "dtype": "dtype"})
case(KE.sample_periodic, lambda: dict(n=2, d=3, p=3, T=7, seed=0),
     {"n": "int", "d": "int", "p": "int", "T": "int", "dtype": "dtype"})
case(KE.sample_nonlinear, lambda: dict(n=2, d=3, T=4, eps=0.5, seed=0),
     {"n": "int", "d": "int", "T": "int", "eps": "float>=0", "dtype": "dtype"})
case(KE.rkhs_norm2, lambda: dict(centers=sphere_states(), coefs=sphere_states(), kernel="exp"),
     {"centers": "real!", "coefs": "real!", **_kern})
case(KE.linear_map_as_kernel_expansion, lambda: dict(W=_W_x1()["W"]), {"W": "real!"})
case(KE.min_norm_periodic_map, lambda: dict(Z=KE.sample_periodic(2, 3, 3, 4, seed=0)[1]), {"Z": "real!", **_kern})


def _energy():
    _, W, x1 = KE.sample_linear(2, 3, 5, seed=0)
    c, a = KE.linear_map_as_kernel_expansion(W)
    return dict(states=KE.sample_linear(2, 3, 5, seed=0)[0], f_centers=c, f_coefs=a)


case(KE.energy_balance, _energy, {"states": "real states", "f_centers": "real!", "f_coefs": "real!", **_kern})
for _f in (KE.loglog_slope, KE.log_slope):
    case(_f, lambda: dict(t=torch.arange(1, 6), err=torch.rand(2, 5, dtype=torch.float64) + 0.1),
         {"err": "real"}, extra={"t": {"None": lambda v, i: None, "constant": lambda v, i: torch.ones(5),
                                       "one point": lambda v, i: torch.ones(1), "complex": lambda v, i: v * 1j,
                                       "nan": lambda v, i: _inject(v.double(), float("nan"), i)},
                                 "err": {"zero": lambda v, i: _inject(v, 0.0, i), "negative": lambda v, i: -v}})

case(KT.KernelDescentTransformer, lambda: dict(n_models=2, d=2, max_len=6, n_layers=2, attention="exp", eta=0.5, beta=1.0),
     {"n_models": "int", "d": "int", "max_len": "int", "n_layers": "int", "attention": "choice", "init": "choice",
      "eta": "float>0", "beta": "float>0", "copy_scale": "float>0", "mask_bias": "float>=0", "init_scale": "float>=0",
      "dtype": "dtype"},
     extra={"eta": {"nan tensor": lambda v, i: torch.tensor([0.5, float("nan")]), "zero tensor": lambda v, i: torch.zeros(2),
                    "complex tensor": lambda v, i: torch.ones(2, dtype=torch.complex128)}})
case(lambda states: KT.KernelDescentTransformer(2, 3, 6, 1)(states), lambda: dict(states=sphere_states()),
     {"states": "real states"}, label="kernel_transformer.KernelDescentTransformer.forward")

# softmax_icl
from icar import softmax_icl as SI  # noqa: E402

_p = lambda: SI.feature_probs(3, "imbalanced", 0.5)  # noqa: E731
_probs = {"nan": lambda v, i: _inject(v, float("nan"), i), "negative": lambda v, i: _inject(v, -0.5, i),
          "not summing to 1": lambda v, i: 2 * v, "complex": lambda v, i: v.to(torch.complex128),
          "None": lambda v, i: None, "numpy": lambda v, i: v.numpy(), "meta": lambda v, i: v.to("meta")}
_counts = {"nan": lambda v, i: _inject(v, float("nan"), i), "inf": lambda v, i: _inject(v, float("inf"), i),
           "negative": lambda v, i: _inject(v, -1.0, i), "None": lambda v, i: None, "list": lambda v, i: v.tolist(),
           "complex": lambda v, i: v.to(torch.complex128), "meta": lambda v, i: v.to("meta")}
_tokens = {"float": lambda v, i: v.double(), "out of range": lambda v, i: v + 10, "negative": lambda v, i: v - 10,
           "None": lambda v, i: None, "numpy": lambda v, i: v.numpy(), "length 0": lambda v, i: v[:, :0],
           "meta": lambda v, i: v.to("meta")}
_counts3 = lambda: SI.sample_counts(_p().expand(2, 3), 4, 5, seed=0)  # noqa: E731
case(SI.feature_probs, lambda: dict(K=3, kind="imbalanced", p1=0.5), {"K": "int", "kind": "choice", "p1": "prob",
                                                                       "dtype": "dtype"})
case(SI.orthonormal_features, lambda: dict(K=2, d=3), {"K": "int", "d": "int", "dtype": "dtype"})
case(SI.sample_counts, lambda: dict(p=_p(), N=4, n_prompts=3), {"N": "int", "n_prompts": "int", "seed": "seed"},
     extra={"p": _probs})
case(SI.mean_field_counts, lambda: dict(p=_p(), N=4), {"N": "int"}, extra={"p": _probs})
case(SI.sample_prompts, lambda: dict(V=SI.orthonormal_features(3, 3), p=_p(), N=4, n_prompts=3),
     {"V": "real!", "N": "int", "n_prompts": "int"}, extra={"p": _probs})
case(SI.sample_prompts, lambda: dict(V=SI.orthonormal_features(3, 3), p=_p(), N=4, n_prompts=3,
                                     w=SI.quadrature_tasks(3, 3)), {"w": "real!"}, skip={"w": ("None",)})
case(SI.quadrature_tasks, lambda: dict(n_prompts=6, d=3), {"n_prompts": "int", "d": "int", "dtype": "dtype"})
case(SI.sample_tokens, lambda: dict(p=_p(), N=4, n_prompts=3), {"N": "int", "n_prompts": "int"}, extra={"p": _probs})
case(SI.design_prompts, lambda: dict(V=SI.orthonormal_features(3, 3), tokens=SI.sample_tokens(_p(), 4, 2), p=_p()),
     {"V": "real!"}, extra={"p": _probs, "tokens": _tokens})
case(SI.counts_of, lambda: dict(tokens=SI.sample_tokens(_p(), 4, 2), K=3), {"K": "int"}, extra={"tokens": _tokens})
for _f in (SI.feature_attention, SI.per_feature_loss):
    case(_f, lambda: dict(Z=torch.zeros(2, 3, 3, dtype=torch.float64), counts=_counts3()), {"Z": "real!"},
         extra={"counts": _counts}, skip={"Z": ("rank-1",)})  # one Z (K, K) shared by the models is valid
for _f in (SI.reduced_loss, SI.reduced_grad):
    case(_f, lambda: dict(Z=torch.zeros(2, 3, 3, dtype=torch.float64), counts=_counts3(), p=_p().expand(2, 3)),
         {"Z": "real!"}, extra={"counts": _counts, "p": _probs}, skip={"Z": ("rank-1",)})
case(SI.reduced_gd, lambda: dict(counts=_counts3(), p=_p().expand(2, 3).clone(), lr=0.5, steps=3),
     {"lr": "float>0", "steps": "int", "record_every": "int", "device": "device"},
     extra={"counts": _counts, "p": _probs, "lr": {"nan tensor": lambda v, i: torch.tensor([0.5, float("nan")])}})
case(SI.reduced_gd, lambda: dict(counts=_counts3(), p=_p().expand(2, 3).clone(), lr=0.5, steps=3,
                                 Z0=torch.zeros(2, 3, 3, dtype=torch.float64)), {"Z0": "real!"}, skip={"Z0": ("None",)})
case(SI.SoftmaxICL, lambda: dict(n_models=2, d=3, init_scale=0.1),
     {"n_models": "int", "d": "int", "init_scale": "float>=0", "dtype": "dtype", "seed": "seed"})
case(lambda E: SI.SoftmaxICL(2, 3)(E), lambda: dict(E=SI.sample_prompts(SI.orthonormal_features(3, 3), _p(), 4, 3)[0]),
     {"E": "real"}, label="softmax_icl.SoftmaxICL.forward")
case(SI.raw_loss, lambda: dict(pred=torch.zeros(2, 3, dtype=torch.float64), target=torch.ones(3, dtype=torch.float64),
                               weights=torch.ones(3, dtype=torch.float64)),
     {"pred": "real", "target": "real", "weights": "real"}, skip={"pred": ("nan", "inf"), "weights": ("None",)})
case(SI.initial_loss, lambda: dict(p=_p(), N=4), {"N": "int"}, extra={"p": _probs})
case(SI.balanced_time_to_share, lambda: dict(r=0.5, K=3, lr=1.0), {"r": "prob", "K": "int", "lr": "float>0"},
     extra={"r": {"nan tensor": lambda v, i: torch.tensor([0.5, float("nan")])}})
case(SI.balanced_phase_time, lambda: dict(K=3, lr=1.0), {"K": "int", "lr": "float>0"})
case(SI.balanced_late_constant, lambda: dict(K=3, lr=1.0), {"K": "int", "lr": "float>0"})
case(SI.linear_attention_floor, lambda: dict(counts=_counts3(), p=_p(), N=4), {"N": "int"},
     extra={"counts": _counts, "p": _probs})
case(SI.linear_attention_gd, lambda: dict(counts=_counts3(), p=_p().expand(2, 3), N=4, lr=0.5,
                                          steps=torch.arange(4)),
     {"N": "int", "lr": "float>0"}, extra={"counts": _counts, "p": _probs,
                                           "steps": {"nan": lambda v, i: _inject(v.double(), float("nan"), i),
                                                     "negative": lambda v, i: v - 5, "None": lambda v, i: None}})
for _f in (SI.first_time_below, SI.first_time_above):
    case(_f, lambda: dict(steps=torch.arange(4), curve=torch.rand(4, 2, dtype=torch.float64), level=0.5),
         {"curve": "real", "level": "float"}, skip={"curve": ("nan", "inf")},
         extra={"steps": {"None": lambda v, i: None, "wrong length": lambda v, i: v[:2], "list": lambda v, i: v.tolist()}})
case(SI.integrated_row_loss, lambda: dict(Z=torch.zeros(3, 3, dtype=torch.float64),
                                          idx=SI.sample_tokens(_p(), 5, 2)), {"Z": "real!"}, extra={"idx": _tokens})

# planning
from icar import planning as PL  # noqa: E402


def _cyclic(A: torch.Tensor, i: int = 0) -> torch.Tensor:
    C = A.clone()
    C[:, 0, 1] = C[:, 1, 0] = True
    return C


_DATA = PL.make_data(2, 6, 0.4, n_paths=2, seed=0)
_adj = {"cyclic": lambda v, i: _cyclic(v), "not 0/1": lambda v, i: v.double() * 2, "nan": lambda v, i: _inject(v.double(), float("nan"), i),
        "complex": lambda v, i: v.to(torch.complex64), "None": lambda v, i: None, "numpy": lambda v, i: v.numpy(),
        "rank-1": lambda v, i: v[0], "meta": lambda v, i: v.to("meta")}
_adj_any = {k: f for k, f in _adj.items() if k != "cyclic"}
_nodes = {"out of range": lambda v, i: v + 100, "negative": lambda v, i: v - 100, "float": lambda v, i: v.double(),
          "None": lambda v, i: None, "list": lambda v, i: v.tolist()}
_cnt4 = {"nan": lambda v, i: _inject(v, float("nan"), i), "negative": lambda v, i: _inject(v, -1.0, i),
         "None": lambda v, i: None, "rank-1": lambda v, i: v[0], "complex": lambda v, i: v.to(torch.complex128),
         "meta": lambda v, i: v.to("meta")}
_pathdata = {"None": lambda v, i: None, "dict": lambda v, i: dict(vars(v))}


def _weights():
    G, n = _DATA.n_graphs, _DATA.n
    return dict(W_M=torch.zeros(G, n, n + 1, dtype=torch.float64), W_V=torch.zeros(G, n, n + 1, dtype=torch.float64))


def _test_pairs():
    S, T, _ = PL.pairs_of(_DATA.test)
    return dict(source=S, target=T)


_W = {"W_M": "real!", "W_V": "real!"}
case(PL.require_adjacency, lambda: dict(A=_DATA.A), {}, extra={"A": _adj_any})
case(PL.require_dag, lambda: dict(A=_DATA.A), {}, extra={"A": _adj})
case(PL.random_dag, lambda: dict(n_graphs=2, n=5, p=0.3), {"n_graphs": "int", "n": "int", "p": "prob", "seed": "seed"})
case(PL.reachability, lambda: dict(A=_DATA.A), {}, extra={"A": _adj_any})
case(PL.split_pairs, lambda: dict(A=_DATA.A, R=_DATA.R, train_frac=0.5), {"train_frac": "prob"},
     extra={"A": _adj_any, "R": _adj_any})
case(PL.sample_paths, lambda: dict(A=_DATA.A, R=_DATA.R, pairs=_DATA.train, n_paths=2), {"n_paths": "int"},
     extra={"A": _adj, "R": _adj_any, "pairs": _adj_any})
case(PL.count_triples, lambda: dict(paths=_DATA.paths, graph=_DATA.graph, target=_DATA.target, n_graphs=2, n=6),
     {"n_graphs": "int", "n": "int"}, extra={"paths": {**_nodes, "rank-1": lambda v, i: v[0]},
                                             "graph": _nodes, "target": _nodes})
case(PL.make_data, lambda: dict(n_graphs=2, n=5, p=0.3, n_paths=2), {"n_graphs": "int", "n": "int", "p": "prob",
                                                                     "train_frac": "prob", "n_paths": "int", "seed": "seed"})
for _f in (PL.observed_matrices, PL.require_ndim4, PL.training_batch):
    case(_f, lambda: dict(N=_DATA.counts), {}, extra={"N": _cnt4})
case(PL.first_step_degree, lambda: dict(zip(("A_obs", "R_obs"), PL.observed_matrices(_DATA.counts))), {},
     extra={"A_obs": _adj_any, "R_obs": _adj_any})
case(PL.SimplifiedPlanner, lambda: dict(n_models=2, n=5, init_scale=0.1),
     {"n_models": "int", "n": "int", "init_scale": "float>=0", "dtype": "dtype", "seed": "seed", "device": "device"})
case(lambda pairs: PL.SimplifiedPlanner(2, 6)(pairs), lambda: dict(pairs=PL.training_batch(_DATA.counts)[0]), {},
     extra={"pairs": {**_nodes, "meta": lambda v, i: v.to("meta"), "rank+1": lambda v, i: v[None, None]}},
     label="planning.SimplifiedPlanner.forward", alias={"pairs": ("node ids",)})
case(PL.count_cross_entropy, lambda: dict(zip(("logits", "counts"), (torch.zeros(2, 3, 7, dtype=torch.float64),
                                                                       torch.ones(2, 3, 7, dtype=torch.float64)))),
     {"logits": "real!", "counts": "real!"}, skip={"logits": ("nan", "inf"), "counts": ("nan", "inf", "int dtype")},
     extra={"counts": {"all zero": lambda v, i: torch.zeros_like(v)}})
case(PL.gradients, lambda: dict(**_weights(), N=_DATA.counts), _W,
     extra={"N": {**_cnt4, "all zero": lambda v, i: torch.zeros_like(v)}})
case(PL.train_planner, lambda: dict(N=_DATA.counts, steps=2, lr=1.0, n_snapshots=2),
     {"steps": "int", "lr": "float>0", "n_snapshots": "int", "init_scale": "float>=0", "seed": "seed", "device": "device"},
     extra={"N": _cnt4})
case(PL.decode, lambda: dict(**_weights(), A=_DATA.A, **_test_pairs()), _W,
     extra={"A": _adj, "source": _nodes, "target": _nodes}, skip={"A": ("rank-1",)})
case(PL.algorithm1, lambda: dict(A=_DATA.A, R=_DATA.R, **_test_pairs()), {"seed": "seed"},
     extra={"A": _adj, "R": _adj_any, "source": _nodes, "target": _nodes})
case(PL.pairs_of, lambda: dict(mask=_DATA.test), {}, extra={"mask": _adj_any})
case(PL.accuracy_by_group, lambda: dict(**_weights(), data=_DATA), _W, extra={"data": _pathdata})
case(PL.auc, lambda: dict(scores=torch.arange(6.0), positive=torch.arange(6) < 3, negative=torch.arange(6) >= 3),
     {"scores": "real"}, extra={"positive": {"int": lambda v, i: v.long(), "None": lambda v, i: None,
                                             "wrong shape": lambda v, i: v[:2]},
                                "negative": {"int": lambda v, i: v.long(), "empty": lambda v, i: torch.zeros_like(v)}},
     skip={"scores": ("rank+1", "rank-1")})
case(PL.entry_groups, lambda: dict(data=_DATA), {}, extra={"data": _pathdata})
case(PL.binary_tree, lambda: dict(depth=2), {"depth": "int", "device": "device"})
case(PL.distances, lambda: dict(A=_DATA.A), {}, extra={"A": _adj_any})
case(PL.horizon_data, lambda: dict(A=PL.binary_tree(3), max_train_dist=1), {"max_train_dist": "int", "n_paths": "int"},
     extra={"A": _adj})
case(PL.accuracy_by_distance, lambda: dict(**_weights(), data=_DATA, n_samples=2), {**_W, "n_samples": "int"},
     extra={"data": _pathdata})
case(PL.first_step_share, lambda: dict(**_weights(), A=_DATA.A, R=_DATA.R, **_test_pairs()), _W,
     extra={"A": _adj_any, "R": _adj_any, "source": _nodes, "target": _nodes})

# multihead
from icar import multihead as MH  # noqa: E402

_CP = lambda: dict(zip(("C", "P"), MH.trig_solution(4, 5)))  # noqa: E731
_rot = lambda: dict(zip(("states", "theta"), MH.rotation_sequences(2, 4, 5, seed=0)))  # noqa: E731
_CPk = {"C": "real!", "P": "real!"}
case(MH.eigen_phases, lambda: dict(law="orthogonal", n=2, d=4, seed=0), {"law": "choice", "n": "int", "d": "int",
                                                                         "seed": "seed"})
case(MH.eigen_sequences, lambda: dict(law="unitary", n=2, d=3, T=5, seed=0),
     {"law": "choice", "n": "int", "d": "int", "T": "int", "device": "device"})
case(MH.rotation_sequences, lambda: dict(n=2, d=4, T=5, seed=0), {"n": "int", "d": "int", "T": "int"})
case(MH.chebyshev_prediction, _rot, {"states": "real states", "theta": "real!"})
case(MH.position_mask, lambda: dict(T=5), {"T": "int", "device": "device"})
case(MH.head_mask, lambda: dict(heads=[1, 2], max_heads=2), {"max_heads": "int"}, skip={"max_heads": ("None",)},
     extra={"heads": {"None": lambda v, i: None, "zero": lambda v, i: [0, 1], "bool": lambda v, i: [True, 1],
                      "float": lambda v, i: [1.5, 1], "empty": lambda v, i: [], "string": lambda v, i: "12"}})
case(MH.unitary_position_loss, _CP, {**_CPk, "variant": "choice"})
case(MH.orthogonal_position_loss, _CP, _CPk)
case(MH.position_loss, lambda: dict(law="orthogonal", **_CP()), {"law": "choice", **_CPk})
case(MH.predict, lambda: dict(states=_rot()["states"], **_CP()), {"states": "tensor", **_CPk},
     extra={"states": {"length 1": lambda v, i: v[:, :1]}})
case(MH.MultiHeadDiagonal, lambda: dict(n_models=2, d=4, n_heads=2, T=5, init_scale=0.1),
     {"n_models": "int", "d": "int", "n_heads": "int", "T": "int", "init_scale": "float>=0", "dtype": "dtype",
      "seed": "seed", "device": "device"}, extra={"T": {"two": lambda v, i: 2}})
case(lambda states: MH.MultiHeadDiagonal(2, 4, 2, 5)(states), lambda: dict(states=_rot()["states"]),
     {"states": "tensor"}, extra={"states": {"length 1": lambda v, i: v[:, :1]}}, label="multihead.MultiHeadDiagonal.forward")
case(MH.mc_position_loss, lambda: dict(law="orthogonal", **_CP(), t=2, n=8, seed=0),
     {"law": "choice", **_CPk, "n": "int", "seed": "seed", "coordinates": "choice"},
     extra={"t": {"bool": lambda v, i: True, "float": lambda v, i: 2.0, "too large": lambda v, i: 5, "one": lambda v, i: 1}})
case(MH.train_population, lambda: dict(model=MH.MultiHeadDiagonal(2, 4, 2, 5), law="unitary", steps=2, lr=0.01),
     {"law": "choice", "steps": "int", "lr": "float>0", "variant": "choice", "momentum": "float>=0"},
     extra={"model": {"None": lambda v, i: None, "other model": lambda v, i: MO.FixedLinear(2, 4)}})
case(MH.rank_floor, lambda: dict(law="unitary", d=4, heads=2), {"law": "choice", "d": "int", "heads": "int"})
case(MH.trig_solution, lambda: dict(d=4, T=5, c=1.0, b_over_a=0.5), {"d": "int", "T": "int", "c": "float",
                                                                      "b_over_a": "float"},
     extra={"c": {"zero": lambda v, i: 0.0}, "b_over_a": {"minus one": lambda v, i: -1.0}})
case(MH.bands, lambda: dict(P=_CP()["P"]), {"P": "real!"})
case(MH.pair_blocks, lambda: dict(C=_CP()["C"]), {"C": "real!"})
case(MH.predicted_head_gram, lambda: dict(A0=torch.randn(2, 3, 3, dtype=torch.float64), B0=torch.randn(2, 3, 3, dtype=torch.float64),
                                          c=torch.ones(2, dtype=torch.float64)), {"A0": "real!", "B0": "real!", "c": "real!"})
case(MH.token_coefficients, lambda: dict(**_CP(), states=_rot()["states"]), {**_CPk, "states": "real states"})

# mesa
from icar import mesa as ME  # noqa: E402

_mx = lambda: ME.sample("gaussian", 3, 2, 5, seed=0)  # noqa: E731
_KP = lambda: dict(zip(("K", "P"), ME.diagonal_init([0.5, 0.4], [0.5, 0.6], 2)))  # noqa: E731
_KPk = {"K": "tensor!", "P": "tensor!"}
_prep = lambda: ME.prepare(*_mx())  # noqa: E731
_prepared = {"None": lambda v, i: None, "tuple": lambda v, i: (1, 2)}
_im = {"None": lambda v, i: None, "tuple": lambda v, i: (1.0, 1.0, 1.0, 1.0)}
_moments = lambda: ME.init_moments("gaussian", 2)  # noqa: E731
_ms = {"float": lambda v, i: float("nan"), "string": lambda v, i: "1", "None": lambda v, i: None}
case(ME.check_diagonal_unitary, lambda: dict(W=_mx()[1]), {"W": "complex!", "atol": "float>0"})
case(ME.tokens, lambda: dict(states=_mx()[0]), {"states": "tensor!"})
case(ME.sample, lambda: dict(law="gaussian", n=2, d=2, T=5, seed=0, scale=1.0),
     {"law": "choice", "n": "int", "d": "int", "T": "int", "scale": "float>0", "seed": "seed", "device": "device"})
case(ME.sign_patterns, lambda: dict(d=3), {"d": "int"})
case(ME.symmetrize, lambda: dict(states=_mx()[0], W=_mx()[1], phases=2), {"states": "complex states", "W": "complex!",
                                                                          "phases": "int"})
case(ME.exact_population, lambda: dict(support=torch.ones(1, 2, dtype=torch.complex128), T=3, n_roots=7),
     {"support": "tensor!", "T": "int", "n_roots": "int"})
case(ME.diagonal_init, lambda: dict(a0=0.5, b0=0.5, d=2), {"a0": "float", "b0": "float", "d": "int", "device": "device"},
     extra={"a0": {"nan in a list": lambda v, i: [0.5, float("nan")], "empty": lambda v, i: []}})
for _f in (ME.relevant_blocks, ME.diagonals, ME.step_size, ME.structure_report):  # any leading dimensions
    case(_f, _KP, _KPk, skip={"K": ("rank+1", "rank-1"), "P": ("rank+1", "rank-1")},
         extra={"K": {"odd size": lambda v, i: v[..., :3, :3]}, "P": {"wrong width": lambda v, i: v[..., :3]}})
case(ME.attention, lambda: dict(**_KP(), states=_mx()[0]), {**_KPk, "states": "complex states"})
case(ME.MesaAttention, _KP, _KPk)
case(lambda states: ME.MesaAttention(**_KP())(states), lambda: dict(states=_mx()[0]), {"states": "complex states"},
     label="mesa.MesaAttention.forward")
case(ME.one_step_gd_predictions, lambda: dict(states=_mx()[0], p=0.5), {"states": "complex states", "p": "float"})
case(ME.prepare, lambda: dict(states=_mx()[0], W=_mx()[1]), {"states": "complex states", "W": "complex!", "chunk": "int"},
     skip={"chunk": ("None",)})
case(ME.loss_and_grad, lambda: dict(**_KP(), data=_prep()), _KPk, extra={"data": _prepared})
case(ME.evaluate_loss, lambda: dict(**_KP(), data=_prep()), _KPk, extra={"data": _prepared})
case(ME.gd, lambda: dict(K0=_KP()["K"], P0=_KP()["P"], data=_prep(), steps=2, lr=0.1),
     {"K0": "tensor!", "P0": "tensor!", "steps": "int", "lr": "float>0", "record_every": "int"},
     extra={"data": _prepared}, alias={"K0": ("K",), "P0": ("P",)})
case(ME.reduced_terms, lambda: dict(states=_mx()[0]), {"states": "complex states", "chunk": "int"})
case(ME.reduced_coefficients, lambda: dict(states=_mx()[0]), {"states": "complex states"})
case(ME.ratio_estimate, lambda: dict(terms=ME.reduced_terms(_mx()[0])), {"terms": "real!"})
case(ME.position_errors, lambda: dict(states=_mx()[0], p=0.5), {"states": "complex states", "p": "float", "chunk": "int"})
case(ME.stable_lr, lambda: dict(M=1.0, a0=[0.5], b0=[0.5], p_hat=0.3, d=2),
     {"M": "float>0", "p_hat": "float", "d": "int", "fraction": "float>0"}, extra={"a0": _ms, "b0": _ms})
case(ME.reduced_gd, lambda: dict(a0=0.5, b0=0.5, M=1.0, N=0.5, d=2, lr=0.1, steps=3),
     {"a0": "float", "b0": "float", "M": "float>0", "N": "float", "d": "int", "lr": "float>0", "steps": "int"})
case(ME.reduced_flow, lambda: dict(a0=0.5, b0=0.5, M=1.0, N=0.5, d=2, times=torch.linspace(0, 1, 4, dtype=torch.float64)),
     {"a0": "float", "b0": "float", "M": "float>0", "N": "float", "d": "int", "times": "real!", "substeps": "int"},
     extra={"times": {"decreasing": lambda v, i: v.flip(0)}})
case(ME.logistic_step, lambda: dict(p0=0.1, p_star=0.5, N=1.0, d=2, tau=torch.linspace(0, 1, 4, dtype=torch.float64)),
     {"p0": "float>0", "p_star": "float>0", "N": "float>0", "d": "int", "tau": "real"})
case(ME.limit_parameters, lambda: dict(a0=0.5, b0=0.4, p_star=0.3), {"a0": "float>0", "b0": "float>0", "p_star": "float>0"},
     alias={"a0": ("a0 b0",), "b0": ("a0 b0",)})
case(ME.init_moments, lambda: dict(law="gaussian", d=2, scale=1.0), {"law": "choice", "d": "int", "scale": "float>0"})
case(ME.harmonic, lambda: dict(n=3), {"n": "int>=0"})
case(ME.p_star, lambda: dict(m=_moments(), d=2, T=5), {"d": "int", "T": "int"}, extra={"m": _im})
case(ME.population_coefficients, lambda: dict(m=_moments(), d=2, T=5), {"d": "int", "T": "int"}, extra={"m": _im})
case(ME.reduced_loss_per_position, lambda: dict(p=0.3, t=3, A=1.0, B=1.0, C=1.0, D=1.0),
     {"p": "float", "t": "int", "A": "float", "B": "float", "C": "float", "D": "float"})
case(ME.support_coefficients, lambda: dict(support=torch.ones(2, 2, dtype=torch.complex128)), {"support": "tensor!"})
case(ME.asymptotic_error, lambda: dict(m=_moments(), d=2), {"d": "int"}, extra={"m": _im})
case(ME.prediction_ratios, lambda: dict(states=_mx()[0], p=0.5), {"states": "complex states", "p": "float"})
case(ME.exact_gradient, lambda: dict(support=torch.ones(1, 2, dtype=torch.complex128), a=0.5, b=0.5, T=3),
     {"support": "tensor!", "a": "float", "b": "float", "T": "int"})
case(ME.uniform_init_states, lambda: dict(n=2, d=2, seed=0, scale=1.0), {"n": "int", "d": "int", "scale": "float>0"})
case(ME.uniform_moments, lambda: dict(scale=1.0), {"scale": "float>0"})
case(ME.loss_from_predictions, lambda: dict(pred=ME.one_step_gd_predictions(_mx()[0], 0.5), states=_mx()[0],
                                            weights=torch.full((3,), 1 / 3, dtype=torch.float64)),
     {"pred": "tensor!", "states": "complex states", "weights": "real!"},
     skip={"pred": ("nan", "inf"), "weights": ("None",)})
case(ME.train_symmetrized, lambda: dict(law="gaussian", base=2, d=2, T=4, a0=[0.5], b0=[0.5], steps=1, seed=0, phases=1),
     {"law": "choice", "base": "int", "d": "int", "T": "int", "steps": "int", "seed": "seed", "scale": "float>0",
      "phases": "int", "fraction": "float>0"}, extra={"a0": _ms, "b0": _ms}, alias={"base": ("n",)})

# augmented
from icar import augmented as AU  # noqa: E402

_ALA = lambda: AU.AugmentedLinearAttention(2, 2, dtype=torch.complex128)  # noqa: E731
_model_bad = {"None": lambda v, i: None, "other model": lambda v, i: MO.FixedLinear(2, 2)}
_m3 = {"None": lambda v, i: None, "tuple": lambda v, i: (1.0, 1.0, 1.0, 1.0)}
case(AU.augment, lambda: dict(states=complex_states()), {"states": "tensor!"})
case(AU.prefix_gram, lambda: dict(tokens=AU.augment(complex_states())), {"tokens": "tensor"})
case(AU.block, lambda: dict(X=torch.zeros(6, 6), a=0, b=1, d=2), {"X": "tensor", "d": "int"},
     extra={"a": {"three": lambda v, i: 3, "bool": lambda v, i: True, "float": lambda v, i: 1.0},
            "b": {"negative": lambda v, i: -1, "None": lambda v, i: None}},
     alias={"a": ("slot indices",), "b": ("slot indices",), "d": ("X",)}, skip={"X": ("nan", "inf", "int dtype")})
case(AU.live_mask, lambda: dict(d=2), {"d": "int"})
case(AU.gd_construction, lambda: dict(d=2, eta=0.3), {"d": "int", "eta": "float", "dtype": "dtype"})
case(AU.AugmentedLinearAttention, lambda: dict(n_models=2, d=2, init_scale=0.1, dtype=torch.complex128),
     {"n_models": "int", "d": "int", "init_scale": "float>=0", "dtype": "dtype", "seed": "seed", "device": "device"})
case(lambda tokens: _ALA()(tokens), lambda: dict(tokens=AU.augment(complex_states())), {"tokens": "complex!"},
     skip={"tokens": ("rank+1",)}, label="augmented.AugmentedLinearAttention.forward")
case(lambda states: _ALA().predict(states), lambda: dict(states=complex_states()), {"states": "complex states"},
     skip={"states": ("length 1", "rank+1")}, alias={"states": ("tokens",)}, label="augmented.AugmentedLinearAttention.predict")
case(AU.next_token_loss, lambda: dict(pred=_ALA().predict(complex_states()), target=complex_states()),
     {"pred": "tensor", "target": "tensor"}, skip={"pred": ("nan", "inf")})
case(AU.ar_batches, lambda: dict(d=2, T=4, batch=3), {"d": "int", "T": "int", "batch": "int", "dtype": "dtype"},
     extra={"scales": {"zero": lambda v, i: (0.0,), "nan": lambda v, i: (float("nan"),)},
            "inits": {"empty": lambda v, i: ()}})
case(AU.train_augmented, lambda: dict(d=2, T=4, n_seeds=1, batch=2, schedule=((1, 0.01),)),
     {"n_seeds": "int", "batch": "int", "init_scale": "float>=0"},
     extra={"schedule": {"empty": lambda v, i: (), "nan lr": lambda v, i: ((1, float("nan")),),
                         "zero steps": lambda v, i: ((0, 0.01),), "None": lambda v, i: None}})
case(AU.read_structure, lambda: dict(model=_ALA()), {}, extra={"model": _model_bad})
case(AU.per_position_errors, lambda: dict(model=_ALA(), states=complex_states()), {"states": "complex states"},
     extra={"model": _model_bad}, skip={"states": ("rank+1",)}, alias={"states": ("tokens",)})  # (G, B, T, d) valid
case(AU.held_out_loss, lambda: dict(model=_ALA(), states=complex_states()), {"states": "complex states"},
     extra={"model": _model_bad}, skip={"states": ("rank+1",)}, alias={"states": ("tokens",)})
case(AU.shared_step, lambda: dict(n_max=4, d=3, m=TH.phase_moments(3)), {"n_max": "int", "d": "int"}, extra={"m": _m3})
case(AU.error_curve, lambda: dict(eta=0.3, n_max=4, d=3, m=TH.phase_moments(3)),
     {"eta": "float>=0", "n_max": "int", "d": "int"}, extra={"m": _m3})
case(AU.per_prefix_steps, lambda: dict(T=4, d=3, m=TH.phase_moments(3)), {"T": "int", "d": "int"}, extra={"m": _m3})
case(AU.shared_loss, lambda: dict(n_max=4, d=3, m=TH.phase_moments(3)), {"n_max": "int", "d": "int"}, extra={"m": _m3})
case(AU.error_split, lambda: dict(eta=0.3, n=4, d=3, m=TH.phase_moments(3)), {"eta": "float>=0", "n": "int", "d": "int"},
     extra={"m": _m3})
case(AU.empirical_error_split, lambda: dict(states=complex_states(), eta=0.3), {"states": "states", "eta": "float>=0"})
case(AU.inner_gradient_step, lambda: dict(states=complex_states(), eta=0.3), {"states": "states", "eta": "float>0"})
case(AU.moments_of, lambda: dict(law="phases", d=3), {"law": "choice", "d": "int"})

# noncommuting
from icar import noncommuting as NC  # noqa: E402

_hs = lambda: NC.haar_sequences(3, 2, 5, seed=0).states  # noqa: E731
_mus = lambda: torch.tensor([1.0, 2.0], dtype=torch.float64)  # noqa: E731
_pe = lambda: NC.pe_sequences(_mus(), 3, 5, seed=0)  # noqa: E731
_ids = {"float": lambda v, i: v.double(), "None": lambda v, i: None, "numpy": lambda v, i: v.numpy(),
        "rank+1": lambda v, i: v[None]}
case(NC.haar_sequences, lambda: dict(n=2, d=2, T=4, seed=0), {"n": "int", "d": "int", "T": "int", "start": "choice",
                                                              "dtype": "dtype", "seed": "seed"})
case(NC.augment, lambda: dict(states=_hs()), {"states": "tensor"})
case(NC.split_inputs_targets, lambda: dict(states=_hs(), augmented=True), {"states": "states"})
case(NC.AugmentedAttention, lambda: dict(n_models=2, d=2, init_scale=0.1),
     {"n_models": "int", "d": "int", "attention": "choice", "init_scale": "float>=0", "dtype": "dtype", "seed": "seed"},
     skip={"init_scale": ("None",)})
case(lambda tokens: NC.AugmentedAttention(2, 2)(tokens), lambda: dict(tokens=NC.augment(_hs())), {"tokens": "real"},
     label="noncommuting.AugmentedAttention.forward")
case(NC.PositionalTokenAttention, lambda: dict(n_models=2, d=2, heads=2, max_len=8),
     {"n_models": "int", "d": "int", "heads": "int", "max_len": "int", "dtype": "dtype", "form": "choice"})
case(NC.kq_blocks, lambda: dict(Q=torch.randn(2, 6, 6, dtype=torch.float64), d=2), {"Q": "tensor!", "d": "int"},
     alias={"d": ("Q",)})
case(NC.relative_distance_to_scalar, lambda: dict(X=torch.randn(2, 3, 3, dtype=torch.float64)), {"X": "tensor"},
     extra={"X": {"zero": lambda v, i: torch.zeros_like(v)}})
case(NC.gd_features, lambda: dict(states=_hs()), {"states": "real states"})
case(NC.one_step_gd_baselines, lambda: dict(train_states=_hs(), test_states=_hs()),
     {"train_states": "real states", "test_states": "real states"}, alias={"train_states": ("states",), "test_states": ("states",)})
case(NC.position_mass, lambda: dict(attn=torch.full((2, 5, 5), 0.2, dtype=torch.float64), position=0, first_row=2),
     {"attn": "real"}, extra={"position": {"bool": lambda v, i: True, "negative": lambda v, i: -1},
                              "first_row": {"too large": lambda v, i: 9, "float": lambda v, i: 2.0}},
     skip={"attn": ("rank-1",)})
case(NC.uniform_mass, lambda: dict(T=5, first_row=2), {"T": "int"},
     extra={"first_row": {"equal to T": lambda v, i: 5, "negative": lambda v, i: -1, "bool": lambda v, i: True}})
case(NC.trig_prediction, lambda: dict(states=_hs()), {"states": "real states"})
case(NC.pe_sequences, lambda: dict(mus=_mus(), n=2, T=4, seed=0), {"mus": "real!", "n": "int", "T": "int"},
     extra={"mus": {"zero": lambda v, i: torch.zeros_like(v)}}, alias={"mus": ("mu",)})
case(NC.PEOnly, lambda: dict(n_models=2, T=4), {"n_models": "int", "T": "int"})
case(NC.pe_gram, lambda: dict(mus=_mus(), t=3), {"mus": "real!", "t": "int"},
     extra={"mus": {"zero": lambda v, i: torch.zeros_like(v)}}, alias={"mus": ("mu",)})
case(NC.pe_empirical_gram, lambda: dict(states=_pe(), t=3), {"states": "complex!", "t": "int"},
     extra={"t": {"too large": lambda v, i: 9}})
case(NC.pe_gd_closed_form, lambda: dict(G=NC.pe_gram(_mus(), 3), alpha=0.2, steps=torch.arange(4)),
     {"G": "real!", "alpha": "float>0"}, extra={"steps": {"float": lambda v, i: v.double(), "negative": lambda v, i: v - 5,
                                                          "None": lambda v, i: None}})
case(NC.window_ar_errors, lambda: dict(windows=torch.randn(2, 4, 3, dtype=torch.float64)), {"windows": "real states"})
case(NC.window_has_repeat, lambda: dict(ids=torch.tensor([[1, 2, 1], [3, 4, 5]])), {}, extra={"ids": _ids})
case(NC.make_windows, lambda: dict(ids=torch.arange(12), L=4), {"L": "int"}, extra={"ids": _ids})
case(NC.random_unit_vectors, lambda: dict(V=4, d=3, seed=0), {"V": "int", "d": "int", "seed": "seed"})
case(NC.check_orthogonal_contexts, lambda: dict(W=D.haar_orthogonal(2, 3, seed=0)), {"W": "real!"})
case(NC.minibatches, lambda: dict(inputs=_hs(), targets=_hs(), batch_size=2),
     {"inputs": "tensor", "targets": "tensor", "batch_size": "int"}, skip={"inputs": ("int dtype",), "targets": ("int dtype",)})
case(NC.per_position_mse, lambda: dict(pred=_hs()[None], target=_hs()), {"pred": "tensor!", "target": "tensor"},
     skip={"pred": ("nan", "inf", "rank-1"), "target": ("nan", "inf", "int dtype")})
case(NC.mse_standard_error, lambda: dict(pred=_hs()[None], target=_hs()), {"pred": "tensor!", "target": "tensor"},
     skip={"pred": ("nan", "inf", "rank-1"), "target": ("nan", "inf", "int dtype")})
case(NC.pe_early_stopping, lambda: dict(mus=_mus(), T=4, max_steps=10),
     {"mus": "real!", "T": "int", "lr": "float>0", "threshold": "float>0", "max_steps": "int"}, alias={"mus": ("mu",)})
case(NC.pe_targets, lambda: dict(states=_pe()), {},
     extra={"states": {"None": lambda v, i: None, "numpy": lambda v, i: v.numpy(), "length 2": lambda v, i: v[..., :2, :],
                       "rank-2": lambda v, i: v[0, 0]}})

# claims (claim() itself has its own tests)
from icar import claims as CL  # noqa: E402


def _start_chapter(name):
    before = CL._CHAPTER["name"]
    try:
        return CL.start_chapter(name)
    finally:
        CL._CHAPTER["name"] = before


case(_start_chapter, lambda: dict(name="chbadinput"), {},
     extra={"name": {"None": lambda v, i: None, "int": lambda v, i: 3, "empty": lambda v, i: "",
                     "path": lambda v, i: "../ch01", "space": lambda v, i: "ch 1"}},
     alias={"name": ("chapter name",)}, label="claims.start_chapter")
case(CL.load_ledger, lambda: dict(folder=None), {}, extra={"folder": {"int": lambda v, i: 3, "list": lambda v, i: ["a"]}})

# tokens
from icar import tokens as TK  # noqa: E402

_tok_extra = {"rank 1": lambda v, i: v.detach()[0, 0].clone(), "length 0": SHORT["length 0"]}
case(TK.previous, lambda: dict(states=real_states()), {"states": "tensor"}, extra={"states": _tok_extra})
case(TK.augment, lambda: dict(states=complex_states()), {"states": "tensor"},
     extra={"states": _tok_extra, "answer_slot": {"None": lambda v, i: None, "int": lambda v, i: 1,
                                                   "string": lambda v, i: "yes"}})

# lens
from icar import lens as LE  # noqa: E402

_sp = lambda: LE.shared_prompts(3, 2, 5, seed=0)  # noqa: E731
_rv = lambda: LE.real_view(_sp().states)  # noqa: E731
_err = lambda: LE.ols_errors(LE.shared_prompts(4, 2, 6, seed=1).states)  # noqa: E731  (4, 4)
_T2 = {"T": {"two": lambda v, i: 2}}   # no pair in the prompt: n = 1..T-2 is empty
_T3 = {"T": {"three": lambda v, i: 3}}  # shared prompts need T >= 4
_cstates = {"states": "complex states"}
_rstates = {"real_states": "real states"}
_odd = {"real_states": {"odd width": lambda v, i: v.detach()[..., :-1].clone()}}
_one_prompt = {"one prompt": lambda v, i: v.detach()[:1].clone()}
case(LE.shared_prompts, lambda: dict(n=2, d=2, T=5, seed=0),
     {"n": "int", "d": "int", "T": "int", "seed": "seed", "device": "device"}, extra=_T3)
case(LE.real_view, lambda: dict(states=_sp().states), _cstates)
case(LE.real_context, lambda: dict(W=_sp().W), {"W": "complex!"})
case(LE.ols_errors, lambda: dict(states=_sp().states), _cstates)
case(LE.gd_errors, lambda: dict(states=_sp().states, eta=0.3), {**_cstates, "eta": "float>0"})
case(LE.gd_errors, lambda: dict(states=_sp().states, eta=LE.optimal_steps(5, 2)), {"eta": "real!"})
case(LE.optimal_steps, lambda: dict(T=5, d=2), {"T": "int", "d": "int"}, extra=_T2)
case(LE.shared_step, lambda: dict(T=5, d=2), {"T": "int", "d": "int"}, extra=_T2)
case(LE.augmented_layer_errors, lambda: dict(states=_sp().states, eta=0.3), {**_cstates, "eta": "float>0"})
case(LE.mesa_step, lambda: dict(T=5, d=2), {"T": "int", "d": "int"}, extra=_T2)
case(LE.mesa_errors, lambda: dict(states=_sp().states, p=0.5), {**_cstates, "p": "float>0"})
case(LE.multihead_unitary, lambda: dict(d=2, T=5, heads=2, modulus2=0.5),
     {"d": "int", "T": "int", "heads": "int", "modulus2": "float>0"}, extra=_T2)
case(LE.multihead_errors, lambda: dict(states=_sp().states, heads=2, chunk=2),
     {**_cstates, "heads": "int", "chunk": "int"})
case(LE.trig_errors, lambda: dict(real_states=_rv(), chunk=2), {**_rstates, "chunk": "int"}, extra=_odd)
case(LE.ckd_errors, lambda: dict(real_states=_rv(), depth=2, eta=0.5),
     {**_rstates, "depth": "int", "eta": "float>0"})
case(LE.kaczmarz_errors, lambda: dict(real_states=_rv()), _rstates)
case(LE.kaczmarz_closed_form, lambda: dict(W_real=LE.real_context(_sp().W), x1_real=_rv()[:, 0], T=5),
     {"W_real": "real!", "x1_real": "real!", "T": "int"}, extra=_T2)
case(LE.softmax_errors, lambda: dict(real_states=_rv(), beta=3.0, depth=1),
     {**_rstates, "beta": "float>0", "depth": "int"}, skip={"depth": ("None",)})  # depth=None: infinite depth
case(LE.pairs_axis, lambda: dict(T=5), {"T": "int"}, extra=_T2)
case(LE.gd_optimal_curve, lambda: dict(T=5, d=2), {"T": "int", "d": "int"}, extra=_T2)
case(LE.shared_step_curve, lambda: dict(T=5, d=2, eta=0.3), {"T": "int", "d": "int", "eta": "float>=0"}, extra=_T2)
case(LE.mesa_curve, lambda: dict(T=5, d=2, p=0.5), {"T": "int", "d": "int", "p": "float>0"}, extra=_T2)
case(LE.summarize, lambda: dict(err=_err()), {"err": "real!"}, extra={"err": _one_prompt})
case(LE.max_z, lambda: dict(err=_err(), expected=LE.gd_optimal_curve(6, 2)), {"err": "real!", "expected": "real!"},
     extra={"err": _one_prompt})
case(LE.paired_min_z, lambda: dict(err=_err(), reference=2 * _err()), {"err": "real!", "reference": "real!"},
     extra={"err": _one_prompt})
case(LE.mechanism_errors, lambda: dict(batch=_sp(), ckd_depth=2, ckd_eta=0.25, beta=3.0),
     {"ckd_depth": "int", "ckd_eta": "float>0", "beta": "float>0"},
     extra={"batch": {"None": lambda v, i: None, "tuple": lambda v, i: (1, 2), "real": lambda v, i: _ar(),
                      "nan states": lambda v, i: v._replace(states=_inject(v.states, float("nan"), i)),
                      "states only": lambda v, i: v.states}})
