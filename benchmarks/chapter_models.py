"""Batched training step of every chapter's main model: time per model against M, and the roofline of this machine.

For each model and each number of models ``M`` (1, 8, 64, 256, 1024; sizes whose activations would pass a memory
cap are skipped) the script times one training step (forward, backward, optimizer; median of several repeats, one
thread) and prints

* ``ms/step`` and ``us/model``: the time of one step, and that time divided by ``M``;
* ``gain``: per-model throughput relative to ``M = 1`` (``M * t(1) / t(M)``, the batching speed-up over a loop);
* ``GFLOP/s`` and ``roofline``: the achieved matmul rate and its fraction of the roofline bound, the lesser of the
  measured matmul rate (same dtype) and the measured memory bandwidth times the step's arithmetic intensity.
  Flops are those of the matrix products (``torch.utils.flop_counter``); bytes assume that every operation reads its
  inputs and writes its output once (no reuse across operations), an upper bound on the memory traffic;
* CPU memory is kept by the allocator between steps (``icar.train.retain_cpu_memory``; ``--system-allocator`` to
  measure without it): otherwise every step maps activations above 32 MiB afresh and pays page faults;
* peak memory: the largest block of live activations allocated during the step (``torch.cuda.max_memory_allocated``
  on a GPU; on the CPU, the sum of the outputs of the step's operations, an upper bound).

Run: ``python benchmarks/chapter_models.py`` (``--quick`` for fewer sizes and repeats, ``--models fig5,ch2`` for a
subset, ``--device cuda`` on a GPU). Timings on a shared machine are only meaningful as ratios within one run.
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from icar import augmented, kernel_transformer, mesa, models, multihead, noncommuting, train

Step = Callable[[], None]


# ----------------------------------------------------------------------------------------------- machine
def matmul_rate(dtype: torch.dtype, device: str, n: int = 512, reps: int = 5) -> float:
    """Measured matmul rate in GFLOP/s (2 n^3 per product, the flop counter's convention also for complex)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times) / 1e9


def bandwidth(device: str, mib: int = 256, reps: int = 5) -> float:
    """Measured memory bandwidth in GB/s: a copy of ``mib`` MiB reads and writes it once."""
    x = torch.empty(mib * 2**20 // 4, dtype=torch.float32, device=device).fill_(1.0)
    y = torch.empty_like(x)
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        y.copy_(x)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * x.numel() * 4 / min(times) / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _Bytes(TorchDispatchMode):
    """Counts the bytes every operation reads (tensor inputs) and writes (outputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.moved = 0
        self.written = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func._overloadpacket in (torch.ops.aten.detach, torch.ops.aten.view, torch.ops.aten._unsafe_view,
                                    torch.ops.aten.t, torch.ops.aten.transpose, torch.ops.aten.permute,
                                    torch.ops.aten.expand, torch.ops.aten.unsqueeze, torch.ops.aten.squeeze,
                                    torch.ops.aten.select, torch.ops.aten.slice, torch.ops.aten.alias,
                                    torch.ops.aten.as_strided, torch.ops.aten._reshape_alias, torch.ops.aten.unbind,
                                    torch.ops.aten.split, torch.ops.aten.view_as_real, torch.ops.aten.view_as_complex,
                                    torch.ops.aten.diagonal, torch.ops.aten.unfold, torch.ops.aten.lift_fresh):
            return out  # views move no data
        flat = torch.utils._pytree.tree_leaves((args, kwargs))
        read = sum(t.numel() * t.element_size() for t in flat if isinstance(t, torch.Tensor))
        written = sum(t.numel() * t.element_size() for t in torch.utils._pytree.tree_leaves(out)
                      if isinstance(t, torch.Tensor))
        self.moved += read + written
        self.written += written
        return out


def count(step: Step) -> tuple[float, float, float]:
    """Flops (matrix products), bytes moved and bytes written by one call of ``step``."""
    flops = FlopCounterMode(display=False)
    with flops:
        step()
    b = _Bytes()
    with b:
        step()
    return float(flops.get_total_flops()), float(b.moved), float(b.written)


def timed(step: Step, device: str, reps: int, inner: int) -> float:
    """Median seconds of one step over ``reps`` repeats of ``inner`` steps (after two warm-up steps)."""
    step(), step()
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            step()
        _sync(device)
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


# ----------------------------------------------------------------------------------------------- models
@dataclass
class Case:
    name: str
    what: str
    build: Callable[[int, int, str], tuple[Step, torch.dtype]]   # (M, T, device) -> (step, dtype)
    lengths: tuple[int, int]
    floats_per_model: Callable[[int], int]                        # activation numbers per model at length T


def _autograd_step(model: models.BatchedModel, inputs, targets, loss_fn, lr: float = 1e-3) -> Step:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = train.BatchedAdam(params, train._lr_tensor(lr, model.n_models))

    def step() -> None:
        for p in params:
            p.grad = None
        loss_fn(model(inputs), targets).sum().backward()
        opt.step()
    return step


def linear_attention(M: int, T: int, device: str) -> tuple[Step, torch.dtype]:
    B, d = 64, 4
    states, _ = mesa_free_states(B, T + 1, d, device)
    tokens = torch.cat([states[:, :T], torch.cat([torch.zeros_like(states[:, :1]), states[:, :T - 1]], 1)], -1)
    model = models.LinearAttention(M, 2 * d, dtype=torch.float32).to(device)
    loss = lambda pred, tgt: train.per_model_mse(pred[..., :d], tgt)  # noqa: E731
    return _autograd_step(model, tokens, states[:, 1:T + 1], loss), torch.float32


def mesa_free_states(B: int, T: int, d: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    from icar import data
    return data.sample_ar("commuting", n=B, d=d, T=T, seed=0, init="sphere", device=device, dtype=torch.float32)


def ch2(M: int, T: int, device: str) -> tuple[Step, torch.dtype]:
    d, B = 5, 64
    batches = augmented.ar_batches(d, T, B, device=device)
    tokens, states = batches(0, torch.Generator().manual_seed(0))
    model = augmented.AugmentedLinearAttention(M, d, dtype=torch.complex128, device=device)
    return _autograd_step(model, tokens, states, augmented.next_token_loss), torch.complex128


def ch3(M: int, T: int, device: str) -> tuple[Step, torch.dtype]:
    d, base = 5, 8   # 8 draws x 120 symmetric copies = 960 sequences (the chapter's full mode: 84 draws)
    X, W = mesa.sample("gaussian", base, d, T, seed=0, device=device)
    X, W = mesa.symmetrize(X, W)
    data = mesa.prepare(X, W)
    a = torch.linspace(0.1, 1.0, M, dtype=torch.float64)
    K, P = mesa.diagonal_init(a, a, d, device=device)
    lr = torch.full((M, 1, 1), 1e-3, dtype=torch.float64, device=device)
    state = {"K": K, "P": P}

    def step() -> None:
        _, dK, dP = mesa.loss_and_grad(state["K"], state["P"], data)
        state["K"] = state["K"] - lr * dK
        state["P"] = state["P"] - lr * dP
    return step, torch.complex128


def ch4(M: int, T: int, device: str) -> tuple[Step, torch.dtype]:
    d = 10
    model = multihead.MultiHeadDiagonal(M, d, n_heads=8, T=T, seed=0, device=device)
    objective = multihead._PopulationObjective(model, "orthogonal", "corrected")
    params = list(model.parameters())
    opt = train.BatchedSGD(params, train._lr_tensor(1e-3, M), momentum=0.9)

    def step() -> None:
        for p in params:
            p.grad = None
        objective(None).sum().backward()
        opt.step()
    return step, torch.float64


def fig5(M: int, T: int, device: str) -> tuple[Step, torch.dtype]:
    d, B = 5, 128
    states = noncommuting.haar_sequences(B, d, T + 1, seed=0, dtype=torch.float32, device=device).states
    X, Y = noncommuting.split_inputs_targets(states, augmented=True)
    model = noncommuting.AugmentedAttention(M, d, attention="linear", paper=True, dtype=torch.float32).to(device)
    return _autograd_step(model, X, Y, train.per_model_mse, 1e-2), torch.float32


def fig7(M: int, T: int, device: str) -> tuple[Step, torch.dtype]:
    d, B = 5, 32
    states = noncommuting.haar_sequences(B, d, T + 1, seed=0, dtype=torch.float32, device=device).states
    X, Y = noncommuting.split_inputs_targets(states, augmented=False)
    model = noncommuting.PositionalTokenAttention(M, d, heads=64, max_len=T, dtype=torch.float32).to(device)
    return _autograd_step(model, X, Y, train.per_model_mse, 1e-2), torch.float32


def ch6(M: int, T: int, device: str) -> tuple[Step, torch.dtype]:
    from icar import kernels
    d, B = 5, 32
    X, _, _ = kernels.sample_linear(B, d, T, seed=0)
    X = X.to(device)
    model = kernel_transformer.KernelDescentTransformer(M, d, T, 3, init="random", init_scale=0.1, seed=0).to(device)
    loss = lambda pred, tgt: train.per_model_mse(pred[:, :, :-1], tgt)  # noqa: E731
    return _autograd_step(model, X, X[:, 1:], loss), torch.float64


CASES = [
    Case("linattn", "LinearAttention (models.py), D = 8, batch 64, float32", linear_attention, (16, 64),
         lambda T: 64 * T * 8 * 6),
    Case("ch2", "ch. 2 AugmentedLinearAttention, d = 5, batch 64, complex128", ch2, (12, 51),
         lambda T: 64 * T * 10 * 8 * 2),
    Case("ch3", "ch. 3 mesa layer, closed-form GD, d = 5, 960 sequences, complex128", ch3, (20, 100),
         lambda T: 960 * T * 5 * 5 * 8 * 2),
    Case("ch4", "ch. 4 MultiHeadDiagonal, population loss, d = 10, H = 8, float64", ch4, (6, 21),
         lambda T: 10 * 10 * T * T),
    Case("fig5", "ch. 5 fig. 5: augmented attention + biases + LayerNorm, d = 5, batch 128, float32", fig5, (20, 50),
         lambda T: 128 * T * (T + 15 * 12)),
    Case("fig7", "ch. 5 fig. 7: token x positional attention, 64 heads (contracted form), d = 5, batch 32, float32",
         fig7, (20, 50), lambda T: 64 * T * T * 3 + T * T * 21 * 60 * 2 + 32 * T * 60 * 3),
    Case("ch6", "ch. 6 KernelDescentTransformer, 3 layers, d = 5, batch 32, float64", ch6, (20, 40),
         lambda T: 32 * 3 * T * (3 * T + 22 * 6)),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="M = 1, 8, 64 and fewer repeats")
    p.add_argument("--models", default=",".join(c.name for c in CASES))
    p.add_argument("--M", default=None, help="comma-separated numbers of models (default 1,8,64,256,1024)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cap-mib", type=float, default=1500, help="skip sizes whose activations exceed this")
    p.add_argument("--short", action="store_true", help="only the first (shorter) context length")
    p.add_argument("--system-allocator", action="store_true",
                   help="leave malloc as it is (default: icar.train.retain_cpu_memory, no page faults per step)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    retained = False if a.system_allocator else train.retain_cpu_memory()
    Ms = [int(x) for x in a.M.split(",")] if a.M else ([1, 8, 64] if a.quick else [1, 8, 64, 256, 1024])
    reps = 3 if a.quick else 5
    bw = bandwidth(a.device)
    rates = {dt: matmul_rate(dt, a.device) for dt in (torch.float32, torch.float64, torch.complex128)}
    print(f"device {a.device}, {torch.get_num_threads()} thread(s), torch {torch.__version__}; measured: memory "
          f"bandwidth {bw:.1f} GB/s, matmul " + ", ".join(f"{str(k).split('.')[-1]} {v:.1f}" for k, v in rates.items())
          + f" GFLOP/s; freed CPU memory retained: {retained}")
    wanted = a.models.split(",")
    summary = []
    for case in (c for c in CASES if c.name in wanted):
        print(f"\n{case.name}: {case.what}")
        print(f"{'T':>4} {'M':>5} | {'ms/step':>9} {'us/model':>9} {'gain':>6} | {'GFLOP/s':>8} {'flop/B':>6} "
              f"{'bound':>7} {'roofline':>8} | {'peak MiB':>8}")
        for T in case.lengths[:1] if a.short else case.lengths:
            base = None
            for M in Ms:
                est = M * case.floats_per_model(T) * 8 / 2**20
                if est > a.cap_mib:
                    print(f"{T:>4} {M:>5} | skipped (about {est:.0f} MiB of activations > --cap-mib)")
                    continue
                step, dtype = case.build(M, T, a.device)
                flops, moved, written = count(step)
                t = timed(step, a.device, reps, inner=max(1, min(20, int(0.05 / max(1e-5, _once(step, a.device))))))
                base = t if M == 1 else base
                gain = M * base / t if base else float("nan")
                rate = flops / t / 1e9
                intensity = flops / moved if moved else 0.0
                bound = min(rates[dtype], bw * intensity)
                peak = (torch.cuda.max_memory_allocated() if a.device.startswith("cuda") else written) / 2**20
                print(f"{T:>4} {M:>5} | {t * 1e3:9.3f} {t / M * 1e6:9.1f} {gain:6.1f} | {rate:8.2f} {intensity:6.2f} "
                      f"{bound:7.2f} {rate / bound:8.2f} | {peak:8.1f}")
                if M == 64:
                    summary.append((case.name, T, gain, rate / bound))
    print("\nsummary at M = 64: model, T, per-model throughput vs M = 1, fraction of roofline")
    for name, T, gain, frac in summary:
        print(f"  {name:8s} T = {T:>3}: {gain:6.1f}x  {frac:5.2f}")


def _once(step: Step, device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
