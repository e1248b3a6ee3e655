"""Batched training vs a Python loop over models.

Trains M = 64 small models (one causal linear-attention layer, the model of chapters 2-5) for the same number of
steps on the same data, once as one batched model (``n_models=64``) and once as 64 separate runs (``n_models=1``),
and prints the wall-clock ratio and the peak memory of each. Run: ``python benchmarks/batched_training.py``.
"""
from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import torch

from icar import data, models, train


def make_batches(d: int, T: int, B: int):
    """Augmented tokens (s_t, s_{t-1}) of commuting rotations; targets s_{t+1}."""
    def batch(step: int, gen: torch.Generator):
        states, _ = data.sample_ar("commuting", n=B, d=d, T=T + 1, seed=gen, init="sphere")
        prev = torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1]], dim=1)
        tokens = torch.cat([states, prev], dim=-1)[:, :T]
        return tokens, states[:, 1 : T + 1]
    return batch


def loss_on_first_slot(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = target.shape[-1]
    return train.per_model_mse(pred[..., :d], target)


def run(M: int, n_models: int, steps: int, d: int, T: int, B: int, device: str) -> tuple[float, int, torch.Tensor]:
    """Train M models as M // n_models runs of n_models models each; return seconds, peak bytes, final losses."""
    torch.manual_seed(0)
    tracemalloc.start()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    finals = []
    singles = [models.LinearAttention(1, 2 * d, seed=k) for k in range(M)]  # model k starts from seed k in both runs
    for k in range(M // n_models):
        model = models.LinearAttention(n_models, 2 * d, seed=0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.cat([getattr(s, name) for s in singles[k * n_models : (k + 1) * n_models]]))
        model = model.to(device)
        res = train.train(model, make_batches(d, T, B), steps=steps, lr=1e-2, loss_fn=loss_on_first_slot,
                          seed=0, progress=False)
        finals.append(res.final)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
    return seconds, peak, torch.cat(finals)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--d", type=int, default=4)
    p.add_argument("--T", type=int, default=16)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    print(f"M = {a.models} models, {a.steps} Adam steps, d = {a.d}, T = {a.T}, batch {a.batch}, device {a.device}, "
          f"torch threads {torch.get_num_threads()}")
    t_loop, m_loop, f_loop = run(a.models, 1, a.steps, a.d, a.T, a.batch, a.device)
    t_bat, m_bat, f_bat = run(a.models, a.models, a.steps, a.d, a.T, a.batch, a.device)
    print(f"python loop over {a.models} single-model runs: {t_loop:8.2f} s   peak memory {m_loop / 2**20:7.1f} MiB")
    print(f"one batched run of {a.models} models:           {t_bat:8.2f} s   peak memory {m_bat / 2**20:7.1f} MiB")
    print(f"speed-up (loop / batched): {t_loop / t_bat:.1f}x")
    print(f"final losses agree: max |loop - batched| = {(f_loop - f_bat).abs().max().item():.2e} "
          "(same initialisation and data, so the runs are the same up to rounding)")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
