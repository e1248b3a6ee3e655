"""Behaviour that mutation testing (``.ci/mutation``) found unchecked in the core modules: boundaries of a claim,
what a record keeps, dtype tolerances of the orthogonality check, small validators, roll-out lengths."""
import json

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
