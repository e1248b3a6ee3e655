"""Behaviour that mutation testing (``.ci/mutation``) found unchecked in the core modules: boundaries of a claim,
what a record keeps, dtype tolerances of the orthogonality check, small validators, roll-out lengths."""
import json
import re

import pytest
import torch

from icar import claims, data as D, validate as V


# ----------------------------------------------------------------------------------------------- claims
def test_claim_bounds_are_inclusive_and_tolerances_add(tmp_path, monkeypatch):
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(tmp_path))
    q = dict(source="s", quiet=True)
    assert claims.claim("x.eq-upper", "at the bound", measured=2.0, upper=2.0, **q).passed
    assert claims.claim("x.eq-lower", "at the bound", measured=2.0, lower=2.0, **q).passed
    assert claims.claim("x.eq-close", "at the bound", measured=1.5, expected=1.0, atol=0.5, **q).passed
    # |1.25 - 1| = 0.25 <= atol + rtol |expected| = 0.1 + 0.2: holds only if the two parts add
    assert claims.claim("x.sum", "atol + rtol", measured=1.25, expected=1.0, atol=0.1, rtol=0.2, **q).passed
    with pytest.raises(claims.ClaimError):
        claims.claim("x.over", "above", measured=2.0 + 1e-9, upper=2.0, **q)
    with pytest.raises(ValueError, match="atol"):
        claims.claim("x.neg", "negative atol", measured=1.0, expected=1.0, atol=-1.0, rtol=1.0, **q)


def test_claim_record_keeps_every_field_and_prints(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "a" / "b"                       # created with its parents
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(folder))
    claims.start_chapter("chq")
    rec = claims.claim("chq.one", "stated", measured=1.0, expected=1.0, atol=0.1, source="paper",
                       formula="1", justification="why")
    assert "[PASS] chq.one" in capsys.readouterr().out   # quiet is False by default
    row = json.loads((folder / "chq.jsonl").read_text(encoding="utf-8"))
    want = {"id": "chq.one", "statement": "stated", "source": "paper", "measured": 1.0, "expected": 1.0,
            "formula": "1", "relation": "close", "tolerance": rec.tolerance, "justification": "why", "passed": True}
    assert {k: row[k] for k in want} == want
    assert rec.tolerance and "0.1" in rec.tolerance
    assert [r["id"] for r in claims.load_ledger()] == ["chq.one"]   # default folder: $ICAR_CLAIMS_DIR
    # starting another chapter keeps the records of this one
    claims.start_chapter("chr")
    claims.claim("chr.one", "s", measured=0.0, upper=1.0, source="s", quiet=True)
    ids = {r.id for r in claims.records()}
    assert {"chq.one", "chr.one"} <= ids


# ----------------------------------------------------------------------------------------------- validate
def test_orthogonality_tolerance_follows_the_dtype():
    Q = D.haar_orthogonal(1, 3, seed=0)[0]
    V.require_orthogonal(Q)
    with pytest.raises(ValueError, match="orthogonal"):
        V.require_orthogonal(Q * (1 + 1e-8))                         # float64: 1e-10
    V.require_orthogonal((Q * (1 + 1e-6)).float())                  # float32: 1e-4
    with pytest.raises(ValueError, match="orthogonal"):
        V.require_orthogonal((Q * (1 + 1e-3)).float())
    with pytest.raises(ValueError, match="unitary"):
        V.require_orthogonal(2 * torch.eye(2, dtype=torch.complex128))


def test_small_validators():
    assert V.require_even(2) == 2
    for bad in (0, -2, 3, True, 2.0):
        with pytest.raises(ValueError, match="even"):
            V.require_even(bad)
    assert V.require_positive_int(1, "n") == 1
    V.require_real(torch.zeros(2, dtype=torch.float32), "x")
    for bad in (torch.zeros(2, dtype=torch.complex64), torch.zeros(2, dtype=torch.int64)):
        with pytest.raises(TypeError, match="real floating"):
            V.require_real(bad, "x")


# ----------------------------------------------------------------------------------------------- data
def test_rollout_map_length_and_given_basis():
    out = D.rollout_map(lambda s: 2 * s, torch.ones(2, 3, dtype=torch.float64), 5)
    assert out.shape == (2, 5, 3) and torch.equal(out[:, -1], torch.full((2, 3), 16.0, dtype=torch.float64))
    P = D.haar_orthogonal(1, 4, seed=3)[0]
    W = D.commuting_orthogonal(5, 4, seed=1, basis=P.float())       # a float32 basis is accepted, used in float64
    assert W.dtype == torch.float64
    inner = P.T @ W @ P                                             # back in the basis: 2x2 rotation blocks
    mask = torch.block_diag(torch.ones(2, 2), torch.ones(2, 2)).bool()
    assert inner[:, ~mask].abs().max() < 1e-6
    assert torch.equal(D.commuting_orthogonal(5, 4, seed=1, basis=P), D.commuting_orthogonal(5, 4, seed=1, basis=P))
    with pytest.raises(ValueError, match=r"basis must have shape"):
        D.commuting_orthogonal(2, 4, seed=0, basis=torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="orthogonal"):
        D.commuting_orthogonal(2, 2, seed=0, basis=2 * torch.eye(2, dtype=torch.float64))
    a, b = D.unitary_diagonal(3, 2, seed=4), D.unitary_diagonal(3, 2, seed=4)   # seeded
    assert torch.equal(a, b) and not torch.equal(a, D.unitary_diagonal(3, 2, seed=5))


def test_claim_needs_each_of_id_statement_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(tmp_path))
    for id_, statement, source in (("", "s", "s"), ("x", "", "s"), ("x", "s", "")):
        with pytest.raises(ValueError, match="non-empty id, statement and source"):
            claims.claim(id_, statement, measured=1.0, upper=2.0, source=source, quiet=True)


def test_claim_relation_and_printed_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(tmp_path))
    q = dict(source="s", quiet=True)
    up = claims.claim("x.up", "below", measured=1.0, upper=2.0, **q)
    lo = claims.claim("x.lo", "above", measured=3.0, lower=2.0, **q)
    assert (up.relation, up.tolerance, lo.relation, lo.tolerance) == ("<=", "<= 2", ">=", ">= 2")
    assert up.line() == "[PASS] x.up: measured 1 (<= 2) - below"
    close = claims.claim("x.cl", "near", measured=1.0, expected=1.5, atol=1.0, **q)
    assert close.line() == "[PASS] x.cl: measured 1 expected 1.5 (|measured - expected| <= 1) - near"
    with pytest.raises(claims.ClaimError) as err:
        claims.claim("x.no", "too big", measured=3.0, upper=2.0, justification="why", **q)
    # a finite failure: the record's line and the rationale, nothing about non-finite values
    assert str(err.value) == "[FAIL] x.no: measured 3 (<= 2) - too big\n  tolerance rationale: why"
    with pytest.raises(claims.ClaimError) as err:
        claims.claim("x.nan", "nan", measured=float("nan"), upper=2.0, **q)
    assert "not finite" in str(err.value)


def test_claims_folder_default_and_explicit_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("ICAR_CLAIMS_DIR", raising=False)
    assert claims.claims_dir() == claims.Path("_claims")
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "c.1"}) + "\n\n", encoding="utf-8")
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(tmp_path / "elsewhere"))
    assert [r["id"] for r in claims.load_ledger(tmp_path)] == ["c.1"]   # the folder given wins over the default
    assert claims.load_ledger() == []


def test_restarting_a_chapter_clears_only_its_own_records(tmp_path, monkeypatch):
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(tmp_path))
    q = dict(source="s", quiet=True, upper=1.0, measured=0.0)
    claims.start_chapter("chX1")                        # any letter is allowed in a chapter name
    claims.claim("chX1.a", "s", **q)
    claims.start_chapter("chX10")
    claims.claim("chX10.a", "s", **q)
    claims.start_chapter("chX1")                        # re-running chX1 drops chX1.a, not chX10.a
    ids = {r.id for r in claims.records()}
    assert "chX1.a" not in ids and "chX10.a" in ids


# ----------------------------------------------------------------------------------------------- messages
# Each bad input must be refused with a message that starts with the argument's own name and, for shapes, gives the
# axes expected: a student reads "estimates must have shape (n, T, d, d)", not someone else's argument name.
from icar import estimators as E, models, theory as Th, train as tr  # noqa: E402

_m = Th.phase_moments(2)
_f64 = dict(dtype=torch.float64)
_st = torch.ones(2, 3, 2, **_f64)                      # states (n, T, d) = (2, 3, 2)
_est = torch.zeros(2, 3, 2, 2, **_f64)                 # estimates (n, T, d, d)
_nan = float("nan")
MESSAGES = [
    # theory
    (lambda: Th.gd_error(-1.0, 1, 2, _m), ValueError, r"^gamma must be >= 0"),
    (lambda: Th.gd_error(0.1, 0, 2, _m), ValueError, r"^n_pairs must be a positive integer"),
    (lambda: Th.gd_error(0.1, 1, 0, _m), ValueError, r"^d must be a positive integer"),
    (lambda: Th.gd_optimal_step(0, 2, _m), ValueError, r"^n_pairs must be a positive integer"),
    (lambda: Th.gd_optimal_step(1, 0, _m), ValueError, r"^d must be a positive integer"),
    (lambda: Th.gd_optimal_error(0, 2, _m), ValueError, r"^n_pairs must be a positive integer"),
    (lambda: Th.gd_optimal_error(1, 0, _m), ValueError, r"^d must be a positive integer"),
    (lambda: Th.phase_moments(0), ValueError, r"^d must be a positive integer"),
    (lambda: Th.phase_moments(2, norm=-1.0), ValueError, r"^norm must be positive"),
    (lambda: Th.gaussian_moments(-1.0), ValueError, r"^sigma2 must be positive"),
    # models
    (lambda: models.LinearAttention(1, 0), ValueError, r"^dim must be a positive integer"),
    (lambda: models.LinearAttention(2, 2)([1.0]), TypeError, r"^tokens must be a torch.Tensor"),
    (lambda: models.LinearAttention(2, 2)(torch.ones(1, 3, 2, dtype=torch.int64)), TypeError,
     r"^tokens must be a floating-point"),
    (lambda: models.LinearAttention(2, 2)(torch.ones(2, 1, 3, 2, dtype=torch.int64)), TypeError,
     r"^tokens must be a floating-point"),
    (lambda: models.LinearAttention(2, 2)(torch.ones(3, 1, 3, 2, **_f64)), ValueError, r"^tokens must be shared"),
    # validate
    (lambda: V.require_orthogonal(torch.ones(2, 3, **_f64)), ValueError, r"^W must be square"),
    (lambda: V.require_orthogonal(2 * torch.eye(2, **_f64)), ValueError, r"^W must be orthogonal"),
    (lambda: V.require_float64([1.0], "x", "why"), TypeError, r"^x must be a torch.Tensor"),
    (lambda: V.require_step(torch.tensor([1j]), "eta"), TypeError, r"^eta must be real floating"),
    (lambda: V.require_step(torch.tensor([_nan]), "eta"), ValueError, r"^eta must be finite"),
    (lambda: V.require_step(0.0, "eta"), ValueError, r"^eta must be positive"),   # positive by default
    # train
    (lambda: tr.fixed_batch(torch.tensor([_nan]), torch.ones(1)), ValueError, r"^inputs must be finite"),
    (lambda: tr.fixed_batch(torch.ones(1), torch.tensor([_nan])), ValueError, r"^targets must be finite"),
    (lambda: tr.BatchedSGD([torch.nn.Parameter(torch.ones(1, 2))], torch.ones(1), momentum=1.0), ValueError,
     r"^momentum must lie in \[0, 1\]"),
    # data
    (lambda: D.rollout_map(lambda s: s, torch.ones(3, **_f64), 2), ValueError, r"^s1 must have shape \(n, d\)"),
    (lambda: D.rollout_map(lambda s: s, torch.ones(1, 2, dtype=torch.int64), 2), TypeError,
     r"^s1 must be a floating-point"),
    (lambda: D.rollout_map(lambda s: s, torch.tensor([[_nan]]), 2), ValueError, r"^s1 must be finite"),
    (lambda: D.rollout_map(lambda s: s, torch.ones(1, 2, **_f64), 0), ValueError, r"^T must be a positive integer"),
    (lambda: D.rollout_map(3, torch.ones(1, 2, **_f64), 2), TypeError, r"^f must be callable"),
    # estimators
    (lambda: E.estimation_errors(_st, torch.eye(2, **_f64).expand(2, 2, 2)), ValueError,
     r"^estimates must have shape \(n, T, d, d\); got"),
    (lambda: E.estimation_errors(_est, torch.zeros(2, 3, 3, **_f64)), ValueError,
     r"^W must have shape \(n, d, d\) = \(2, 2, 2\)"),
    (lambda: E.estimation_errors(_est, torch.zeros(2, 2, 3, **_f64)), ValueError, r"^W must be square"),
    (lambda: E.estimation_errors(_est.long(), torch.zeros(2, 2, 2, **_f64)), TypeError,
     r"^estimates must be a floating-point"),
    (lambda: E.estimation_errors(_est, torch.full((2, 2, 2), _nan, **_f64)), ValueError, r"^W must be finite"),
    (lambda: E.gd_estimates(_st, torch.ones(3, dtype=torch.complex128)), TypeError, r"^eta must be real floating"),
    (lambda: E.gd_estimates(_st, torch.full((3,), _nan, **_f64)), ValueError, r"^eta must be finite"),
    (lambda: E.gd_estimates(_st, -1.0), ValueError, r"^eta must be positive"),
    (lambda: E.predictions(_est[:, :2], _st), ValueError, r"^estimates must have shape \(n, T, d, d\) = \(2, 3, 2, 2\)"),
    (lambda: E.predictions(_est.long(), _st), TypeError, r"^estimates must be a floating-point"),
    (lambda: E.predictions(torch.full_like(_est, _nan), _st), ValueError, r"^estimates must be finite"),
    (lambda: E.cross_moments(_st.long()), TypeError, r"^states must be a floating-point"),
    (lambda: E.gram_moments(torch.full_like(_st, _nan)), ValueError, r"^states must be finite"),
    (lambda: D.unitary_diagonal(0, 2, seed=0), ValueError, r"^n must be a positive integer"),
    (lambda: D.unitary_diagonal(2, 0, seed=0), ValueError, r"^d must be a positive integer"),
    (lambda: D.commuting_orthogonal(0, 2, seed=0), ValueError, r"^n must be a positive integer"),
    (lambda: D.commuting_orthogonal(2, 3, seed=0), ValueError, r"^d must be a positive even integer"),
    (lambda: D.commuting_orthogonal(2, 2, seed=0, basis=torch.eye(4, **_f64)), ValueError,
     r"^basis must have shape \(d, d\) = \(2, 2\)"),
    (lambda: D.commuting_orthogonal(2, 2, seed=0, basis=2 * torch.eye(2, **_f64)), ValueError,
     r"^basis must be orthogonal"),
    (lambda: models.FixedLinear(1, 2)(torch.ones(1, 1, 2, **_f64)), ValueError,
     r"^states must hold at least 2 time steps \(T >= 2: one to read, one to predict\)"),
    (lambda: models.FixedLinear(1, 2)(torch.ones(1, 3, 2, dtype=torch.int64)), TypeError,
     r"^states must be a floating-point"),
    (lambda: tr.BatchedSGD([torch.ones(1, 2, dtype=torch.int64)], torch.ones(1, **_f64)), TypeError,
     r"^params\[0\] must be a floating-point"),
    (lambda: tr.BatchedSGD([torch.ones(1, 2, **_f64)], -torch.ones(1, **_f64)), ValueError, r"^lr must be positive"),
    (lambda: tr.BatchedAdam([torch.ones(1, 2, **_f64)], torch.ones(1, **_f64), eps=0.0), ValueError,
     r"^eps must be positive"),
    (lambda: tr.per_model_mse(torch.ones(1, 2, dtype=torch.int64), torch.ones(2)), TypeError,
     r"^pred must be a floating-point"),
    (lambda: tr.per_model_mse(torch.ones(1, 2, **_f64), [1.0, 2.0]), TypeError, r"^target must be a torch.Tensor"),
    # what came is described: None and numbers by their value, other objects by their type
    (lambda: V.require_positive_int(None, "n"), ValueError, r"^n must be a positive integer; got None$"),
    (lambda: V.require_positive_int(2.5, "n"), ValueError, r"^n must be a positive integer; got 2\.5$"),
    (lambda: V.require_positive_int([1], "n"), ValueError, r"^n must be a positive integer; got list$"),
    (lambda: V.require_choice(torch.tensor(1), "k", (1, 2)), ValueError, r"^k must be one of \(1, 2\)"),
    (lambda: V.require_positive_tensor(torch.tensor([0.0, 1.0]), "lr"), ValueError, r"^lr must be positive"),
    (lambda: tr.BatchedSGD([], torch.ones(1, **_f64)), TypeError, r"^params must be a non-empty list"),
    (lambda: tr.BatchedSGD({"a": torch.ones(1, 2, **_f64)}, torch.ones(1, **_f64)), TypeError,
     r"^params must be a non-empty list"),
    (lambda: tr.BatchedSGD([torch.ones(3, 2, **_f64)], torch.ones(2, **_f64)), ValueError, r"one rate per model"),
    (lambda: tr.BatchedSGD([torch.tensor(1.0, **_f64)], torch.ones(1, **_f64)), ValueError, r"one rate per model"),
]


def _message_id(i: int, pattern: str) -> str:
    """A plain test id (mutmut passes test ids on a command line): number and the words of the pattern."""
    return f"{i:02d}-" + re.sub(r"[^A-Za-z0-9]+", "-", pattern).strip("-")


@pytest.mark.parametrize("call, exc, pattern", MESSAGES, ids=[_message_id(i, p) for i, (_, _, p) in enumerate(MESSAGES)])
def test_bad_input_message_names_the_argument(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ----------------------------------------------------------------------------------------------- behaviour
def test_orthogonality_check_with_a_given_tolerance():
    V.require_orthogonal(torch.eye(3, **_f64), atol=0.0)             # exactly orthogonal: deviation 0 <= 0
    Q = D.haar_orthogonal(1, 3, seed=0)[0] * (1 + 1e-3)              # deviation about 2e-3
    V.require_orthogonal(Q, atol=1e-2)                               # the given atol replaces the dtype default
    with pytest.raises(ValueError, match="orthogonal"):
        V.require_orthogonal(Q, atol=1e-4)


def test_sgd_default_is_plain_gradient_descent():
    p = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]], **_f64))
    opt = tr.BatchedSGD([p], torch.tensor([0.1, 0.2], **_f64))       # no momentum given
    for _ in range(2):
        p.grad = torch.tensor([[1.0, 1.0], [-1.0, 2.0]], **_f64)     # the same gradient twice
        opt.step()
    # plain GD: theta - 2 lr g (heavy ball would give theta - 3 lr g at the second step)
    want = torch.tensor([[1.0 - 0.2, -2.0 - 0.2], [0.5 + 0.4, 3.0 - 0.8]], **_f64)
    assert torch.allclose(p.detach(), want, atol=1e-15, rtol=0)


def test_linear_attention_default_seed_is_zero():
    a, b, c = models.LinearAttention(1, 2), models.LinearAttention(1, 2, seed=0), models.LinearAttention(1, 2, seed=1)
    assert torch.equal(a.W_Q, b.W_Q) and not torch.equal(a.W_Q, c.W_Q)


def test_gaussian_moments_default_is_unit_variance():
    assert Th.gaussian_moments() == Th.Moments(1.0, 2.0, 6.0, 2.0)    # E|x|^2 = 1: 2 sigma^4, 6 sigma^6, 2 sigma^6


def test_per_prefix_steps_take_the_dtype_of_the_states():
    states = D.sample_ar("haar", 2, 3, 4, seed=0, init="gaussian", dtype=torch.float32).states
    est = E.gd_estimates(states, torch.full((4,), 0.5, **_f64))       # float64 steps, float32 states
    assert est.dtype == torch.float32
    assert torch.equal(est, 0.5 * E.cross_moments(states))


def test_unitary_diagonal_in_single_precision():
    W = D.unitary_diagonal(2, 3, seed=0, dtype=torch.complex64)
    assert W.dtype == torch.complex64
    assert torch.allclose(W, D.unitary_diagonal(2, 3, seed=0).to(torch.complex64))


def test_adam_first_step_on_a_complex_parameter_uses_the_modulus():
    # First Adam step: m_hat = g, v_hat = |g|^2 entrywise, so theta_1 = theta_0 - lr g / (|g| + eps) (a step of length
    # lr in the direction of g, entry by entry); summing |g|^2 over entries instead would shrink every step.
    g = torch.tensor([[[3 + 4j, 1j], [-2.0, 0.5 - 0.5j]]], dtype=torch.complex128)
    p0 = torch.tensor([[[1 + 1j, 2.0], [0.0, -1j]]], dtype=torch.complex128)
    p = torch.nn.Parameter(p0.clone())
    opt = tr.BatchedAdam([p], torch.tensor([0.1], **_f64), eps=1e-8)
    p.grad = g.clone()
    opt.step()
    want = p0 - 0.1 * g / (g.abs() + 1e-8)
    assert torch.allclose(p.detach(), want, atol=1e-14, rtol=0)


def test_adam_betas_must_be_a_pair_in_range():
    params = [torch.nn.Parameter(torch.ones(1, 2, **_f64))]
    with pytest.raises(TypeError, match="pair"):
        tr.BatchedAdam(params, torch.ones(1, **_f64), betas=(0.9,))
    with pytest.raises(ValueError, match=r"^betas\[0\] must lie"):
        tr.BatchedAdam(params, torch.ones(1, **_f64), betas=(1.5, 0.9))
    with pytest.raises(ValueError, match=r"^betas\[1\] must lie"):
        tr.BatchedAdam(params, torch.ones(1, **_f64), betas=(0.9, -0.1))


def test_edge_values_that_are_allowed():
    models.FixedLinear(1, 2)(torch.ones(1, 2, 2, **_f64))                        # T = 2: one read, one predicted
    tr.BatchedAdam([torch.nn.Parameter(torch.ones(1, 2, **_f64))], torch.ones(1, **_f64), betas=(0.0, 0.0))  # closed
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0], **_f64))                    # a (M,) parameter: one scalar a model
    opt = tr.BatchedSGD([p], torch.tensor([0.5, 0.25], **_f64))
    p.grad = torch.ones(2, **_f64)
    opt.step()
    assert torch.equal(p.detach(), torch.tensor([0.5, 1.75], **_f64))
    W = D.commuting_orthogonal(2, 4, seed=0, dtype=torch.float32)
    assert W.dtype == torch.float32 and torch.allclose(W, D.commuting_orthogonal(2, 4, seed=0).float())


def test_sgd_step_in_single_precision_uses_a_single_precision_rate():
    # the per-model rate is cast to the parameter's dtype once: the step is the float32 product lr32 * g
    p0 = torch.tensor([[1.0, 1.0 / 3.0]], dtype=torch.float32)
    g = torch.tensor([[1.0 / 3.0, 0.7]], dtype=torch.float32)
    p = torch.nn.Parameter(p0.clone())
    opt = tr.BatchedSGD([p], torch.tensor([0.1], **_f64))
    p.grad = g.clone()
    opt.step()
    assert p.dtype == torch.float32 and torch.equal(p.detach(), p0 - g * torch.tensor(0.1, dtype=torch.float32))


def test_learning_rates_given_as_tensors_arrays_and_lists():
    import numpy as np
    assert torch.equal(tr._lr_tensor([0.1, 0.2], 2), torch.tensor([0.1, 0.2], dtype=torch.float64))   # kept in double
    assert torch.equal(tr._lr_tensor(np.array([0.1, 0.2]), 2), torch.tensor([0.1, 0.2], dtype=torch.float64))
    assert torch.equal(tr._lr_tensor(torch.tensor([0.5], dtype=torch.float32), 3), torch.full((3,), 0.5, **_f64))
    for bad, exc, pattern in ((torch.tensor([0.0, 1.0]), ValueError, "positive"),
                              (torch.tensor([True]), TypeError, "real"), (torch.tensor([1j]), TypeError, "real"),
                              (torch.tensor([_nan]), ValueError, r"^lr must be finite"),
                              ([0.1, -1.0], ValueError, r"^lr must be positive"), (-1.0, ValueError, r"^lr must be positive")):
        with pytest.raises(exc, match=pattern):
            tr._lr_tensor(bad, 2 if isinstance(bad, list) or (isinstance(bad, torch.Tensor) and bad.numel() == 2) else 1)


def test_train_names_its_bad_arguments():
    model, batch = models.FixedLinear(1, 2), tr.fixed_batch(torch.ones(1, 3, 2, **_f64), torch.ones(1, 2, 2, **_f64))
    for kwargs, pattern in ((dict(steps=0), r"^steps must be a positive integer"),
                            (dict(batch_fn=3), r"^batch_fn must be callable"), (dict(loss_fn=3), r"^loss_fn must be callable")):
        args = dict(batch_fn=batch, steps=1, lr=0.1, progress=False) | kwargs
        with pytest.raises((TypeError, ValueError), match=pattern):
            tr.train(model, args.pop("batch_fn"), **args)


def test_train_refuses_a_momentum_of_one_whatever_the_optimizer():
    batch = tr.fixed_batch(torch.ones(1, 3, 2, **_f64), torch.ones(1, 2, 2, **_f64))
    for optimizer in ("adam", "sgd"):
        with pytest.raises(ValueError, match=r"^momentum must lie in \[0, 1\]"):
            tr.train(models.FixedLinear(1, 2), batch, steps=1, lr=0.1, optimizer=optimizer, momentum=1.0, progress=False)


def test_in_range_interval_ends_and_message():
    """Open by default: both ends refused, with the interval in the message; ``closed=True`` takes both ends."""
    assert V.require_in_range(0.5, "p", 0.0, 1.0) == 0.5
    for end in (0.0, 1.0):
        with pytest.raises(ValueError, match=re.escape("p must lie in (0, 1); got")):
            V.require_in_range(end, "p", 0.0, 1.0)
        assert V.require_in_range(end, "p", 0.0, 1.0, closed=True) == end
    with pytest.raises(ValueError, match=re.escape("p must lie in [0, 1]; got 1.5")):
        V.require_in_range(1.5, "p", 0.0, 1.0, closed=True)


def test_validator_messages_name_the_argument_and_the_kinds():
    """The message says which argument is wrong and what each one is (real or complex, with its dtype)."""
    with pytest.raises(ValueError, match=r"^d must be a positive even integer"):
        V.require_even(3)
    with pytest.raises(ValueError, match=r"^Wx must be square"):
        V.require_orthogonal(torch.zeros(2, 3, dtype=torch.float64), "Wx")
    c, r = torch.zeros(2, dtype=torch.complex128), torch.zeros(2, dtype=torch.float64)
    with pytest.raises(TypeError, match=re.escape("u is complex (torch.complex128) but v is real (torch.float64)")):
        V.require_same_kind(c, r, "u", "v")
    with pytest.raises(TypeError, match=re.escape("u is real (torch.float64) but v is complex (torch.complex128)")):
        V.require_same_kind(r, c, "u", "v")
    for a, b, which in ((None, r, "^u must be"), (r, None, "^v must be")):
        with pytest.raises(TypeError, match=which):
            V.require_same_kind(a, b, "u", "v")


def test_sample_contexts_passes_basis_and_dtype_on():
    """The commuting law uses the basis it is given; every law returns the dtype asked for (complex for unitary)."""
    P = D.haar_orthogonal(1, 4, seed=3)[0]
    W = D.sample_contexts("commuting", 3, 4, seed=1, basis=P)
    assert torch.equal(W, D.commuting_orthogonal(3, 4, seed=1, basis=P))
    assert not torch.allclose(W, D.commuting_orthogonal(3, 4, seed=1))            # the default basis differs
    assert D.sample_contexts("commuting", 2, 4, seed=0, dtype=torch.float32).dtype == torch.float32
    assert D.sample_contexts("haar", 2, 4, seed=0, dtype=torch.float32).dtype == torch.float32
    assert D.sample_contexts("unitary", 2, 4, seed=0, dtype=torch.float32).dtype == torch.complex64


@pytest.mark.parametrize("law", ["gaussian", "sphere", "sparse", "phases"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.complex64])
def test_initial_states_draw_from_the_seeded_generator_only(law, dtype):
    """Same seed, same states, whatever the global RNG did in between; the Gaussian law is exactly ``c N(0, 1)``
    drawn from ``Generator().manual_seed(seed)`` in float64 for real states, in the real dtype of a complex one
    (real part, then imaginary part, over sqrt 2)."""
    torch.manual_seed(1)                                            # the global RNG in two different states
    a = D.initial_states(law, 6, 3, seed=7, dtype=dtype)
    torch.manual_seed(2)
    b = D.initial_states(law, 6, 3, seed=7, dtype=dtype)
    assert torch.equal(a, b) and a.dtype == dtype
    if law == "phases" and not dtype.is_complex:                 # signs / sqrt(d), computed in float64
        assert torch.equal(a.abs(), torch.full((6, 3), 1 / 3 ** 0.5, dtype=dtype))
    if law == "gaussian":
        g = torch.Generator().manual_seed(7)
        real = torch.float32 if dtype == torch.complex64 else torch.float64
        x = torch.randn(6, 3, generator=g, dtype=real)
        if dtype.is_complex:
            x = torch.complex(x, torch.randn(6, 3, generator=g, dtype=real)) / 2 ** 0.5
        assert torch.equal(D.initial_states(law, 6, 3, seed=7, scale=2.0, dtype=dtype), 2.0 * x)


def test_sample_ar_keeps_a_given_w_its_kind_and_the_scale():
    """A complex W gives complex states; a float32 W is used in the dtype asked for; ``scale`` reaches s_1."""
    U = D.unitary_diagonal(1, 3, seed=2)[0]
    out = D.sample_ar(U, 2, 3, 4, seed=0, init="gaussian")
    assert out.states.is_complex() and torch.equal(out.states[:, 1], out.states[:, 0] @ U.T)
    Q = D.haar_orthogonal(1, 3, seed=2)[0]
    out32 = D.sample_ar(Q.float(), 2, 3, 4, seed=0, init="gaussian")
    assert out32.states.dtype == torch.float64
    ref = D.rollout(Q.float().double().expand(2, 3, 3), out32.states[:, 0], 4)
    assert torch.equal(out32.states, ref)
    s1 = D.sample_ar("haar", 2, 3, 2, seed=0, init="sphere", scale=3.0).states[:, 0]
    assert torch.allclose(torch.linalg.vector_norm(s1, dim=-1), torch.full((2,), 3.0, dtype=torch.float64))


def test_shape_message_marks_free_axes():
    with pytest.raises(ValueError, match=re.escape("x must have shape (batch, d) = (*, 3); got (2, 4)")):
        V.require_shape(torch.zeros(2, 4), "x", (None, 3), "(batch, d)")
    assert V.require_shape(torch.zeros(5, 3), "x", (None, 3), "(batch, d)").shape == (5, 3)


def test_sample_ar_passes_the_basis_on():
    P = D.haar_orthogonal(1, 4, seed=5)[0]
    out = D.sample_ar("commuting", 3, 4, 3, seed=2, basis=P)
    assert torch.equal(out.W, D.sample_ar("commuting", 3, 4, 3, seed=2, basis=P).W)
    inner = P.T @ out.W @ P                                         # 2x2 rotation blocks in the given basis
    mask = torch.block_diag(torch.ones(2, 2), torch.ones(2, 2)).bool()
    assert inner[:, ~mask].abs().max() < 1e-12
    assert (P.T @ D.sample_ar("commuting", 3, 4, 3, seed=2).W @ P)[:, ~mask].abs().max() > 1e-3


def test_require_number_takes_one_element_real_tensors_only():
    assert V.require_number(torch.tensor(2.5), "x") == 2.5
    assert V.require_number(torch.tensor([3], dtype=torch.int64), "x") == 3.0
    for bad, what in ((torch.tensor([1.0, 2.0]), r"shape \(2,\)"), (torch.tensor(1 + 1j), "complex"),
                      (torch.tensor(True), "bool"), (torch.empty(1, device="meta"), "meta")):
        with pytest.raises(TypeError, match=f"^x must be a real number; got a tensor .*{what}"):
            V.require_number(bad, "x")


def test_require_tensor_hints_at_as_tensor_for_arrays_and_lists_only():
    import numpy as np
    for arr in (np.zeros(2), [0.0, 1.0], (0.0,)):
        with pytest.raises(TypeError, match=re.escape("(convert it with torch.as_tensor)")):
            V.require_tensor(arr, "x")
    with pytest.raises(TypeError) as err:
        V.require_tensor("abc", "x")
    assert str(err.value) == "x must be a torch.Tensor; got str"


def test_rollout_messages_name_w_and_s1():
    W = D.haar_orthogonal(2, 3, seed=0)
    with pytest.raises(ValueError, match=re.escape("W must have") + ".*" + re.escape("(n, d, d)")):
        D.rollout(W[0], torch.ones(2, 3, dtype=torch.float64), 4)
    with pytest.raises(ValueError, match=r"^W must be square"):
        D.rollout(torch.zeros(2, 3, 2, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64), 4)
    with pytest.raises(TypeError, match=r"^W is real \(torch.float64\) but s1 is complex"):
        D.rollout(W, torch.ones(2, 3, dtype=torch.complex128), 4)
    with pytest.raises(ValueError, match=r"^W must be square"):
        D.matrix_powers(torch.zeros(2, 3), 4)
    with pytest.raises(ValueError, match=r"^W must be orthogonal"):
        D.sample_ar(2 * torch.eye(3, dtype=torch.float64), 2, 3, 4, seed=0)
    with pytest.raises(ValueError, match=r"^W must be square"):
        D.sample_ar(torch.zeros(3, 2, dtype=torch.float64), 2, 3, 4, seed=0)
    with pytest.raises(ValueError, match=r"^d must be a positive even"):
        D.commuting_orthogonal(2, 3, seed=0)
