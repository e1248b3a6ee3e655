"""icar.setup chooses the CPU thread count once for every chapter (ICAR_THREADS), and no chapter does it itself."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import icar
from icar import runtime

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    """Each test starts from 3 threads (not 1, so that a change is visible) and gets the original count back."""
    before = torch.get_num_threads()
    monkeypatch.delenv("ICAR_THREADS", raising=False)
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("value, expected", [(None, 1), ("", 1), ("  ", 1), ("1", 1), ("4", 4), (" 2 ", 2),
                                             ("auto", None), ("AUTO", None)])
def test_cpu_threads_parses_the_variable(monkeypatch, value, expected):
    if value is not None:
        monkeypatch.setenv("ICAR_THREADS", value)
    assert runtime.cpu_threads() == expected
    assert runtime.cpu_threads(value if value is not None else "") == expected


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "+2", "two", "2 3", "\u00b2", "none"])
def test_bad_thread_values_get_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("ICAR_THREADS", value)
    with pytest.raises(ValueError, match=r"ICAR_THREADS must be a positive integer .* or 'auto'.*got"):
        runtime.cpu_threads()
    with pytest.raises(ValueError, match="ICAR_THREADS"):
        icar.setup(seed=0, device="cpu")
    assert torch.get_num_threads() == 3   # nothing changed on the way to the error


def test_setup_uses_one_thread_on_the_cpu_by_default():
    assert icar.setup(seed=0, device="cpu") == torch.device("cpu")
    assert torch.get_num_threads() == 1


def test_setup_honours_an_explicit_count_and_auto(monkeypatch):
    monkeypatch.setenv("ICAR_THREADS", "2")
    icar.setup(seed=0, device="cpu")
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("ICAR_THREADS", "auto")
    torch.set_num_threads(3)
    icar.setup(seed=0, device="cpu")
    assert torch.get_num_threads() == 3   # auto: torch's own count is left alone


def test_other_devices_keep_their_count_unless_a_number_is_given(monkeypatch):
    meta = torch.device("meta")   # stands in for CUDA/MPS: not the CPU
    assert runtime.apply_threads(meta) == 3 and torch.get_num_threads() == 3
    monkeypatch.setenv("ICAR_THREADS", "2")
    assert runtime.apply_threads(meta) == 3 and torch.get_num_threads() == 2


def test_setup_still_seeds():
    icar.setup(seed=5, device="cpu")
    a = torch.rand(3)
    icar.setup(seed=5, device="cpu")
    assert torch.equal(a, torch.rand(3))


def test_course_threads_restores_the_count(monkeypatch):
    with runtime.course_threads(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    monkeypatch.setenv("ICAR_THREADS", "2")
    with runtime.course_threads(torch.device("cpu")):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 3


def test_multihead_training_follows_the_same_policy(monkeypatch):
    import icar.multihead as mh
    seen = []
    real_train = mh.train

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    monkeypatch.setattr(mh, "train", spy)
    model = mh.MultiHeadDiagonal(n_models=2, d=2, n_heads=1, T=4, seed=0)
    mh.train_population(model, "unitary", steps=2, lr=1e-3, progress=False)
    monkeypatch.setenv("ICAR_THREADS", "2")
    mh.train_population(model, "unitary", steps=2, lr=1e-3, progress=False)
    assert seen == [1, 2] and torch.get_num_threads() == 3


def test_a_fresh_kernel_gets_one_thread():
    """What a chapter sees: a new process whose first cell calls icar.setup, whatever the machine's core count."""
    env = {k: v for k, v in os.environ.items() if k not in ("ICAR_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT / "lib")
    code = "import icar, torch; icar.setup(seed=0, device='cpu'); print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_chapter_sets_threads_itself(path):
    text = path.read_text(encoding="utf-8")
    for word in ("set_num_threads", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "prefer_one_thread", "one_thread"):
        assert word not in text, f"{path.name} mentions {word}: the thread count is icar.setup's job (ICAR_THREADS)"
