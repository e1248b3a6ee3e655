"""Quick, full and paper mode (``ICAR_SCALE``), and the training dtype per device."""
import pytest
import torch

from icar import runtime


@pytest.mark.parametrize("env, expected", [
    ({"ICAR_QUICK": "1"}, "quick"), ({"ICAR_QUICK": "0"}, "full"), ({}, "full"),
    ({"ICAR_SCALE": "paper"}, "paper"), ({"ICAR_SCALE": "paper", "ICAR_QUICK": "1"}, "paper"),
    ({"ICAR_SCALE": "FULL", "ICAR_QUICK": "1"}, "full"), ({"ICAR_SCALE": "quick"}, "quick"),
    ({"ICAR_SCALE": " ", "ICAR_QUICK": "1"}, "quick"),
])
def test_scale_from_environment(monkeypatch, env, expected):
    monkeypatch.delenv("ICAR_SCALE", raising=False)
    monkeypatch.delenv("ICAR_QUICK", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert runtime.scale() == expected
    assert runtime.quick_mode() == (expected == "quick")
    assert runtime.paper_mode() == (expected == "paper")
    assert runtime.pick(quick=1, full=2, paper=3) == {"quick": 1, "full": 2, "paper": 3}[expected]
    assert runtime.pick(quick=1, full=2) == (1 if expected == "quick" else 2)   # paper falls back to full


def test_bad_scale_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("ICAR_SCALE", "huge")
    with pytest.raises(ValueError, match="ICAR_SCALE must be one of quick, full, paper; got 'huge'"):
        runtime.scale()
    with pytest.raises(ValueError, match="ICAR_SCALE"):
        runtime.pick(1, 2, 3)


def test_training_dtype_is_float32_on_gpus_and_float64_for_exact_claims():
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert runtime.training_dtype(cpu) == torch.float64
    assert runtime.training_dtype(cuda) == torch.float32 and runtime.training_dtype(mps) == torch.float32
    assert runtime.training_dtype(cuda, exact=True) == torch.float64
    assert runtime.training_dtype(cuda, is_complex=True) == torch.complex64
    assert runtime.training_dtype(cpu, is_complex=True) == torch.complex128
