"""icar.claims and icar.runtime."""
import json

import numpy as np
import pytest
import torch

from icar import claims, runtime


def test_claim_passes_records_and_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(tmp_path))
    claims.start_chapter("chtest")
    rec = claims.claim("chtest.a", "two plus two", measured=torch.tensor(4.0), expected=4.0, atol=1e-12,
                       source="arithmetic", justification="exact")
    assert rec.passed and rec.relation == "close"
    claims.claim("chtest.b", "small", measured=np.float64(1e-14), upper=1e-10, source="rounding")
    claims.claim("chtest.c", "big", measured=3, lower=2, source="x", formula="3 >= 2")
    rows = [json.loads(l) for l in (tmp_path / "chtest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["chtest.a", "chtest.b", "chtest.c"]
    assert {r["id"] for r in claims.load_ledger(tmp_path)} == {"chtest.a", "chtest.b", "chtest.c"}
    claims.start_chapter("chtest")  # re-running a chapter starts its file afresh
    assert not (tmp_path / "chtest.jsonl").exists()


def test_claim_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(tmp_path))
    with pytest.raises(claims.ClaimError, match="FAIL.*measured 0.2"):
        claims.claim("x.fail", "too far", measured=0.2, expected=0.1, rtol=0.5, source="s", justification="why")
    with pytest.raises(AssertionError):
        claims.claim("x.nan", "nan never passes", measured=float("nan"), upper=1.0, source="s")
    with pytest.raises(claims.ClaimError):
        claims.claim("x.low", "below", measured=0.5, lower=1.0, source="s")


def test_claim_refuses_bad_use():
    with pytest.raises(ValueError, match="exactly one of"):
        claims.claim("x", "s", measured=1.0, source="s")
    with pytest.raises(ValueError, match="exactly one of"):
        claims.claim("x", "s", measured=1.0, upper=2.0, lower=0.0, source="s")
    with pytest.raises(ValueError, match="positive atol or rtol"):
        claims.claim("x", "s", measured=1.0, expected=1.0, source="s")
    with pytest.raises(ValueError, match="single number"):
        claims.claim("x", "s", measured=torch.ones(3), upper=2.0, source="s")
    with pytest.raises(ValueError, match="non-empty"):
        claims.claim("", "s", measured=1.0, upper=2.0, source="s")
    with pytest.raises(ValueError, match="short identifier"):
        claims.start_chapter("a/b")


def test_runtime(monkeypatch):
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device("auto").type in ("cpu", "cuda", "mps")
    monkeypatch.setenv("ICAR_QUICK", "1")
    assert runtime.quick_mode() and runtime.pick(1, 2) == 1
    monkeypatch.setenv("ICAR_QUICK", "0")
    assert not runtime.quick_mode() and runtime.pick(1, 2) == 2
    monkeypatch.setenv("ICAR_QUICK", "maybe")
    with pytest.raises(ValueError, match="ICAR_QUICK must be 0 or 1"):
        runtime.quick_mode()
    g1, g2 = runtime.make_generator(3), runtime.make_generator(3)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    with pytest.raises(TypeError, match="every draw is seeded"):
        runtime.make_generator(None)
    if not torch.cuda.is_available():
        with pytest.raises(runtime.DeviceUnavailableError, match="CUDA is not available"):
            runtime.resolve_device("cuda")
    if not runtime._mps_available():
        with pytest.raises(runtime.DeviceUnavailableError, match="MPS is not available"):
            runtime.resolve_device("mps")


def test_ledger_markdown(tmp_path, monkeypatch):
    from icar.sphinx_ledger import ledger_markdown
    assert "No claim" in ledger_markdown(tmp_path / "missing")
    monkeypatch.setenv("ICAR_CLAIMS_DIR", str(tmp_path))
    claims.start_chapter("ch09")
    claims.claim("ch09.a", "a | b", measured=1.0, expected=1.0, atol=0.1, source="s", formula="1", quiet=True)
    md = ledger_markdown(tmp_path)
    assert "1 of 1 claims hold" in md and "## Chapter 9" in md and "a \\| b" in md and "`ch09.a`" in md


def test_thread_and_float64_helpers():
    before = torch.get_num_threads()
    with runtime.one_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with runtime.one_thread(torch.device("meta")):   # not the CPU: left alone
        assert torch.get_num_threads() == before
    assert runtime.float64_device(torch.device("mps")) == torch.device("cpu")
    assert runtime.float64_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    # "auto" (and None) must pick CUDA when present, else MPS, else the CPU: each branch is forced here.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("cuda")
    assert runtime.resolve_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    assert runtime.resolve_device("auto") == torch.device("cpu")
    assert runtime.resolve_device() == torch.device("cpu")
