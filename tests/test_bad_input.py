"""Bad input gets a clear error, everywhere: the hostile sweep of issue 9 as tests.

``bad_input_cases.CASES`` holds one valid call per public function or class of ``icar`` and, per argument, the
corruptions that apply (NaN/inf at an index, integer dtypes, ``meta`` tensors, numpy arrays, lists, strings,
``None``, wrong rank, prompts of length 0 or 1, complex for real and the reverse, zero/negative/NaN/inf numbers,
``bool`` for ``int``, cyclic graphs ...). Every corrupted call must raise a ``ValueError``/``TypeError`` from
``icar`` whose message says what was expected ("must") and names the argument: neither a silent result nor a raw
error from inside torch. Hypothesis generates the cases (which call, which argument, which corruption, where the NaN
goes); the sweep over every corruption of every argument runs as well, at one fixed index.
"""
from __future__ import annotations

import inspect
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import icar
import icar.augmented
import icar.kernel_transformer
import icar.kernels
import icar.lens
import icar.mesa
import icar.multihead
import icar.noncommuting
import icar.planning
import icar.softmax_icl
import icar.tokens
from icar import validate as V
from bad_input_cases import CASES, KINDS, Case, outcome

FAST = settings(max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_corruption_of_every_argument_is_refused_clearly(case: Case):
    bad = []
    for arg, corruption in case.all_corruptions():
        result, msg = outcome(case, arg, corruption, index=1)
        if result != "clean":
            bad.append(f"{arg}={corruption}: {result} ({msg[:120]})")
    assert not bad, f"{case.id}: " + "; ".join(bad)


@st.composite
def corrupted_calls(draw):
    case = draw(st.sampled_from(CASES))
    arg = draw(st.sampled_from(case.args))
    corruption = draw(st.sampled_from(sorted(case.corruptions(arg))))
    return case, arg, corruption, draw(st.integers(0, 10_000))


@settings(max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_calls())
def test_generated_corruptions_are_refused_clearly(call):
    case, arg, corruption, index = call
    result, msg = outcome(case, arg, corruption, index)
    assert result == "clean", f"{case.id}({arg}={corruption}, index {index}): {result}: {msg}"


def test_the_sweep_covers_every_kind_of_bad_input_of_the_issue():
    labels = {c for case in CASES for a in case.args for c in case.corruptions(a)}
    wanted = {"nan", "inf", "int dtype", "meta", "numpy", "list", "string", "None", "zero", "negative", "bool",
              "length 0", "length 1", "complex", "rank+1", "rank-1", "cyclic"}
    assert wanted <= labels, f"kinds without a case: {sorted(wanted - labels)}"


def test_the_corrupted_valid_calls_are_valid():
    # a corruption only means something if the uncorrupted call works
    for case in CASES:
        case.fn(**case.build())


# ----------------------------------------------------------------------------------------------- the helpers
@FAST
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(0, 10_000),
       st.sampled_from([float("nan"), float("inf"), -float("inf")]), st.sampled_from([torch.float32, torch.float64,
                                                                                       torch.complex128]))
def test_require_finite_reports_the_first_bad_index(shape, index, value, dtype):
    x = torch.zeros(shape, dtype=dtype)
    x.view(-1)[index % x.numel()] = value
    where = tuple(int(i) for i in torch.nonzero(~torch.isfinite(x))[0])
    with pytest.raises(ValueError, match=rf"x must be finite; got .* at index {re_tuple(where)}"):
        V.require_finite(x, "x")
    V.require_finite(torch.zeros(shape, dtype=dtype), "x")


def test_require_finite_with_cancelling_infinities_and_overflowing_sums():
    """The one-reduction fast path: +inf and -inf that cancel still fail (their sum is NaN); finite entries whose sum
    overflows to inf still pass (the entry-wise search finds nothing)."""
    with pytest.raises(ValueError, match=r"x must be finite; got inf at index \(1,\) \(2 non-finite entries\)"):
        V.require_finite(torch.tensor([0.0, float("inf"), -float("inf")]), "x")
    big = torch.full((4,), 3e38, dtype=torch.float32)
    assert not torch.isfinite(big.sum())
    assert V.require_finite(big, "x") is big
    assert V.require_finite(torch.zeros(0), "x").numel() == 0


def re_tuple(t: tuple[int, ...]) -> str:
    return r"\(" + ", ".join(str(i) for i in t) + ("," if len(t) == 1 else "") + r"\)"


@FAST
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_require_positive_accepts_exactly_the_finite_positive_numbers(x):
    if math.isfinite(x) and x > 0:
        assert V.require_positive(x, "lr") == x
    else:
        with pytest.raises(ValueError, match="lr must be"):
            V.require_positive(x, "lr")


@FAST
@given(st.one_of(st.booleans(), st.floats(), st.text(max_size=3), st.none(), st.complex_numbers()))
def test_require_number_refuses_what_is_not_a_real_number(x):
    if isinstance(x, float) and not isinstance(x, bool):
        if math.isfinite(x):
            assert V.require_number(x, "c") == x
        else:
            with pytest.raises(ValueError, match="c must be a finite number"):
                V.require_number(x, "c")
    else:
        with pytest.raises(TypeError, match="c must be a real number"):
            V.require_number(x, "c")


@FAST
@given(st.one_of(st.integers(-5, 5), st.booleans(), st.floats(-5, 5), st.none()), st.integers(0, 2))
def test_require_int_refuses_bool_and_float_and_small_values(n, minimum):
    if isinstance(n, bool) or not isinstance(n, int):
        with pytest.raises(TypeError, match="k must be an integer"):
            V.require_int(n, "k", minimum)
    elif n < minimum:
        with pytest.raises(ValueError, match=f"k must be an integer >= {minimum}"):
            V.require_int(n, "k", minimum)
    else:
        assert V.require_int(n, "k", minimum) == n


def test_meta_tensors_and_non_tensors_are_refused():
    with pytest.raises(ValueError, match="'meta' device"):
        V.require_tensor(torch.zeros(2, device="meta"), "x")
    with pytest.raises(TypeError, match="torch.as_tensor"):
        V.require_tensor([1.0, 2.0], "x")
    with pytest.raises(TypeError, match="x must be a torch.Tensor; got NoneType"):
        V.require_real(None, "x")


# ----------------------------------------------------------------------------------------------- dtype policy
@FAST
@given(st.integers(1, 6), st.integers(0, 2**31 - 1), st.sampled_from([torch.float32, torch.float64,
                                                                   torch.complex64, torch.complex128]))
def test_require_orthogonal_uses_the_tolerance_of_the_dtype_it_is_given(d, seed, dtype):
    W = icar.data.haar_orthogonal(2, d, seed=seed).to(dtype)
    V.require_orthogonal(W, "W")  # float32 rounding (~1e-7) passes the float32 tolerance
    nan_W = W.clone()
    nan_W[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="W must be finite"):
        V.require_orthogonal(nan_W, "W")
    off = W * (1 + 1e-6)  # |W^T W - I| ~ 2e-6: fine in single precision, far too much in double
    if dtype in (torch.float32, torch.complex64):
        V.require_orthogonal(off, "W")
    else:
        with pytest.raises(ValueError, match="must be (orthogonal|unitary)"):
            V.require_orthogonal(off, "W")


def test_float32_contexts_are_checked_in_float32():
    W32 = icar.data.haar_orthogonal(3, 4, seed=0, dtype=torch.float32)
    batch = icar.data.sample_ar(W32, 3, 4, 6, seed=0, dtype=torch.float32)
    assert batch.states.dtype == torch.float32
    basis = icar.data.haar_orthogonal(1, 4, seed=1, dtype=torch.float32)[0]
    icar.data.commuting_orthogonal(2, 4, seed=0, basis=basis)
    assert icar.noncommuting.check_orthogonal_contexts(W32).dtype == torch.float32


def test_an_exact_identity_refuses_float32():
    states, W, _ = icar.kernels.sample_linear(2, 3, 5, seed=0, dtype=torch.float32)
    centers, coefs = icar.kernels.linear_map_as_kernel_expansion(W)
    with pytest.raises(TypeError, match=r"states must be float64 or complex128 \(the energy identity"):
        icar.kernels.energy_balance(states, centers, coefs)


def test_an_integer_dtype_is_refused_where_it_would_round_to_zero():
    with pytest.raises(TypeError, match="dtype must be a real floating or complex dtype; got torch.int64"):
        icar.data.initial_states("gaussian", 2, 3, seed=0, dtype=torch.int64)
    with pytest.raises(TypeError, match="dtype must be"):
        icar.models.FixedLinear(2, 3, dtype=torch.int32)


def test_every_public_function_has_a_bad_input_case():
    covered = {c.fn for c in CASES} | {icar.claims.start_chapter}
    missing = []
    for mod in MODULES:
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or name.startswith(EXCLUDED_PREFIXES):
                continue
            if issubclass_safe(obj, BaseException) or _no_input(obj) or f"{mod.__name__}.{name}" in EXCLUDED:
                continue
            if obj not in covered:
                missing.append(f"{mod.__name__}.{name}")
    assert not missing, f"public functions without a bad-input case: {missing}"


MODULES = [icar.claims, icar.data, icar.estimators, icar.theory, icar.models, icar.train, icar.runtime, icar.kernels,
           icar.kernel_transformer, icar.softmax_icl, icar.planning,
           icar.multihead, icar.mesa, icar.augmented, icar.noncommuting, icar.tokens, icar.lens]
EXCLUDED_PREFIXES = ("plot", "explore", "show_")
EXCLUDED = {
    # inner products of the batched attention layers, called with inputs their models have validated (a finiteness
    # scan per call would cost a pass over the largest tensors of a step); the models' bad-input cases cover them
    "icar.models.bilinear_scores", "icar.models.bilinear_mix",
    "icar.runtime.quick_mode", "icar.runtime.progress_enabled",  # no arguments (environment variables)
    "icar.runtime.pick",  # returns one of two arbitrary values: any value is valid
    "icar.runtime.course_threads",  # a context manager over apply_threads, which has its case
    "icar.train.TrainResult",  # a record the trainer returns
    "icar.data.ARBatch",  # a record
    "icar.claims.claim",  # hardened and tested on its own (tests/test_claims_runtime.py)
    "icar.claims.Claim",  # the record claim() returns
    "icar.kernels.CKDResult", "icar.kernels.KaczmarzResult", "icar.kernels.EnergyBalance",  # records
    "icar.softmax_icl.ReducedRun", "icar.planning.PathData", "icar.planning.PlannerRun",  # records
    "icar.multihead.MCEstimate",  # a record
    "icar.mesa.Prepared", "icar.mesa.GDRun", "icar.mesa.Experiment", "icar.mesa.InitMoments",  # records
    "icar.augmented.Structure",  # a record
    "icar.noncommuting.Baselines", "icar.noncommuting.Corpus",  # records
    "icar.noncommuting.load_polarity_corpus",  # no arguments (reads the packaged corpus)
    "icar.lens.Curve",  # the record summarize() returns
}


def issubclass_safe(obj, cls) -> bool:
    return inspect.isclass(obj) and issubclass(obj, cls)


def _no_input(obj) -> bool:
    try:
        return not inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return True
