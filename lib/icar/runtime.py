"""Where and how the course runs: device choice, CPU thread count, seeded generators, quick mode.

Every random draw in the library goes through a ``torch.Generator`` that lives on the CPU, so a seed gives the same
numbers on every machine (CPU, CUDA or MPS); tensors are moved to the requested device afterwards.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, TypeVar

import torch

T = TypeVar("T")

DeviceLike = str | torch.device | None


class DeviceUnavailableError(RuntimeError):
    """A device was requested that this machine does not have."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: DeviceLike = "auto") -> torch.device:
    """Turn ``"auto"`` / ``None`` / ``"cpu"`` / ``"cuda[:k]"`` / ``"mps"`` into a ``torch.device`` that exists here.

    ``"auto"`` (or ``None``) picks CUDA, then MPS, then the CPU. Asking for a device that is not available raises
    :class:`DeviceUnavailableError` instead of failing later inside a kernel.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:<k>' or 'mps'; got {device!r}"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {str(device)!r} was requested but CUDA is not available on this machine "
                "(torch.cuda.is_available() is False); use device='cpu' or device='auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {str(device)!r} was requested but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not _mps_available():
        raise DeviceUnavailableError(
            f"device {str(device)!r} was requested but MPS is not available on this machine; use 'cpu' or 'auto'"
        )
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'mps'; got {device!r}")
    return dev


def make_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (an existing generator is returned as it is).

    ``None`` is refused on purpose: every draw in the course is seeded.
    """
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None or isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator (every draw is seeded); got {seed!r}")
    return torch.Generator(device="cpu").manual_seed(seed)


SCALES = ("quick", "full", "paper")
_UNSET = object()


def scale() -> str:
    """The size every chapter runs at: ``"quick"``, ``"full"`` (the default) or ``"paper"`` (the papers' own sizes).

    ``ICAR_SCALE=quick|full|paper`` sets it; when ``ICAR_SCALE`` is unset or empty, ``ICAR_QUICK=1`` means quick
    (the test command sets it) and anything else full. ``ICAR_SCALE``, when set, wins over ``ICAR_QUICK``.
    """
    value = os.environ.get("ICAR_SCALE", "").strip().lower()
    if value:
        if value not in SCALES:
            raise ValueError(f"ICAR_SCALE must be one of {', '.join(SCALES)}; got {value!r}")
        return value
    quick = os.environ.get("ICAR_QUICK", "0").strip().lower()
    if quick not in ("", "0", "1", "false", "true", "no", "yes"):
        raise ValueError(f"ICAR_QUICK must be 0 or 1; got {quick!r}")
    return "quick" if quick in ("1", "true", "yes") else "full"


def quick_mode() -> bool:
    """True in quick mode (``ICAR_QUICK=1`` or ``ICAR_SCALE=quick``): chapters shrink their sizes."""
    return scale() == "quick"


def paper_mode() -> bool:
    """True when ``ICAR_SCALE=paper``: chapters run their experiments at the papers' sizes."""
    return scale() == "paper"


def pick(quick: T, full: T, paper: T = _UNSET) -> T:  # type: ignore[assignment]
    """The value for the current :func:`scale`: ``n_steps = pick(quick=200, full=3000, paper=10_000)``.

    ``paper`` defaults to ``full`` (an experiment whose full size already is the paper's)."""
    mode = scale()
    if mode == "quick":
        return quick
    if mode == "paper" and paper is not _UNSET:
        return paper
    return full


def progress_enabled() -> bool:
    """Progress bars are on unless ``ICAR_PROGRESS=0`` (the tests turn them off)."""
    return os.environ.get("ICAR_PROGRESS", "1").strip() not in ("0", "false", "no")


def setup(seed: int = 0, device: DeviceLike = "auto") -> torch.device:
    """One call at the top of a chapter: seed torch's global generator, choose the CPU threads, return the device.

    On the CPU, torch is set to the intra-op thread count of :func:`cpu_threads` (one thread unless the reader
    opts out with ``ICAR_THREADS``), so every chapter runs the same way on an idle and on a busy machine. On CUDA
    and MPS the count is changed only when ``ICAR_THREADS`` names a number. On the CPU it also lets the C allocator
    keep freed memory for the next training step (:func:`icar.train.retain_cpu_memory`, glibc only): without it,
    every step whose temporaries pass 32 MiB pays a page fault per 4 KiB page (chapter 5's figure-5 step at the
    paper's size: ~300 ms instead of ~200). The process then keeps its peak memory.

    Environment variable ``ICAR_THREADS``:

    * unset or empty: one intra-op thread on the CPU (the course's tensors hold ~10^3-10^5 numbers, so splitting
      them costs more in synchronisation than it saves, and contending threads on a loaded machine cost far more);
    * ``N`` (a positive integer): ``N`` threads, on every device;
    * ``auto``: leave torch's own default (one thread per core, or what ``OMP_NUM_THREADS`` says).
    """
    make_generator(seed)  # the same check as every other seed: an int (or a generator), not None or a bool
    torch.manual_seed(seed)
    dev = resolve_device(device)
    apply_threads(dev)
    if dev.type == "cpu":
        from .train import retain_cpu_memory  # train imports this module

        retain_cpu_memory()
    return dev


def _require_device(device: object) -> torch.device:
    if not isinstance(device, torch.device):
        raise TypeError(f"device must be a torch.device (from icar.resolve_device); got {device!r}")
    return device


def float64_device(device: torch.device) -> torch.device:
    """The device to use for float64/complex128 work: ``device`` itself, or the CPU on MPS (which has neither)."""
    _require_device(device)
    return torch.device("cpu") if device.type == "mps" else device


def training_dtype(device: torch.device, *, exact: bool = False, is_complex: bool = False) -> torch.dtype:
    """The dtype to train in on ``device``: float32 (complex64) on CUDA and MPS, where float64 runs 32-64 times
    slower on consumer GPUs (and not at all on MPS); float64 (complex128) on the CPU, and wherever ``exact=True``
    because a claim checks an exact identity to ~1e-12."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a torch.device or a device name; got {device!r}")
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:<k>' or 'mps'; got {device!r}") from err
    for flag, name in ((exact, "exact"), (is_complex, "is_complex")):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False; got {flag!r}")
    wide = exact or torch.device(device).type == "cpu"
    if is_complex:
        return torch.complex128 if wide else torch.complex64
    return torch.float64 if wide else torch.float32


THREADS_ENV = "ICAR_THREADS"


def cpu_threads(value: str | None = None) -> int | None:
    """The intra-op thread count the course asks for: ``ICAR_THREADS`` parsed (``value`` overrides the variable).

    Unset or empty gives 1, a positive integer ``N`` gives ``N``, ``"auto"`` gives ``None`` (keep torch's default).
    Anything else raises ``ValueError`` naming the variable and what it may hold.
    """
    raw = os.environ.get(THREADS_ENV, "") if value is None else value
    text = raw.strip().lower()
    if text == "":
        return 1
    if text == "auto":
        return None
    if text.isascii() and text.isdigit() and int(text) >= 1:   # refuses "-1", "1.5", "+2", "2 3", "0"
        return int(text)
    raise ValueError(f"{THREADS_ENV} must be a positive integer (the torch intra-op thread count) or 'auto' "
                     f"(torch's default); got {raw!r}")


def apply_threads(device: torch.device) -> int:
    """Set torch's intra-op thread count as :func:`cpu_threads` says; return the count it had before.

    The default (one thread) applies on the CPU only; an explicit ``ICAR_THREADS=N`` applies on every device;
    ``ICAR_THREADS=auto`` changes nothing.
    """
    _require_device(device)
    before = torch.get_num_threads()
    wanted = cpu_threads()
    explicit = os.environ.get(THREADS_ENV, "").strip() != ""
    if wanted is not None and (device.type == "cpu" or explicit):
        torch.set_num_threads(wanted)
    return before


@contextmanager
def course_threads(device: torch.device) -> Iterator[None]:
    """:func:`apply_threads` for a block of library code only; the previous thread count is restored on exit."""
    before = apply_threads(device)
    try:
        yield
    finally:
        torch.set_num_threads(before)
