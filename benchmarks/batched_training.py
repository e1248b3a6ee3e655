"""Batched training vs a Python loop over models.

Trains M = 64 small models (one causal linear-attention layer, ``icar.models.LinearAttention``) for the same number
of steps on the same data, once as one batched model (``n_models=64``) and once as 64 separate runs
(``n_models=1``), for a few problem sizes, and prints the wall-clock ratio and the peak memory of each side.
Run: ``python benchmarks/batched_training.py`` (``--device cuda`` on a GPU).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from icar import data, mesa, models, train


def make_batches(d: int, T: int, B: int, steps: int, device: str, dtype: torch.dtype):
    """Pre-drawn data, the same for both runs: augmented tokens (s_t, s_{t-1}) of commuting rotations, targets s_{t+1}."""
    states, _ = data.sample_ar("commuting", n=steps * B, d=d, T=T + 1, seed=0, init="sphere", device=device,
                               dtype=dtype)
    tokens = mesa.tokens(states)[:, :T].reshape(steps, B, T, 2 * d)   # e_t = (s_t, s_{t-1}), s_0 = 0
    targets = states[:, 1 : T + 1].reshape(steps, B, T, d)
    return lambda step, gen: (tokens[step], targets[step])


def loss_on_first_slot(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = target.shape[-1]
    return train.per_model_mse(pred[..., :d], target)


def run(M: int, n_models: int, steps: int, d: int, T: int, B: int, device: str, dtype: torch.dtype) -> dict:
    """Train M models as M // n_models runs of n_models models each: seconds, final losses."""
    batches = make_batches(d, T, B, steps, device, dtype)
    singles = [models.LinearAttention(1, 2 * d, seed=k, dtype=dtype) for k in range(M)]  # model k starts from seed k in both runs
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    finals = []
    for k in range(M // n_models):
        model = models.LinearAttention(n_models, 2 * d, seed=0, dtype=dtype)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.cat([getattr(s, name) for s in singles[k * n_models : (k + 1) * n_models]]))
        model = model.to(device)
        res = train.train(model, batches, steps=steps, lr=1e-2, loss_fn=loss_on_first_slot, seed=0, progress=False)
        finals.append(res.final)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"seconds": time.perf_counter() - t0, "peak_bytes": peak, "finals": torch.cat(finals).tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--d", type=int, default=4)
    p.add_argument("--sizes", default="8x8,16x8,32x16,64x32", help="comma-separated BATCHxT problem sizes")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", choices=["loop", "batched"], help=argparse.SUPPRESS)  # one side, in a child process
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--T", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    dtype = getattr(torch, a.dtype)
    if a.only:
        n = 1 if a.only == "loop" else a.models
        print(json.dumps(run(a.models, n, a.steps, a.d, a.T, a.batch, a.device, dtype)))
        return
    print(f"M = {a.models} one-layer linear-attention models (token dim {2 * a.d}), {a.steps} Adam steps each, "
          f"{a.dtype}, device {a.device}, torch threads {torch.get_num_threads()}")
    mem = "GPU peak" if a.device.startswith("cuda") else "peak RSS"
    print(f"{'batch x T':>10} | {'loop of 64 runs':>15} | {'one batched run':>15} | {'speed-up':>8} | "
          f"{mem + ' loop / batched':>24} | max |loss diff|")
    for size in a.sizes.split(","):
        B, T = (int(x) for x in size.split("x"))
        out = {}
        for side in ("loop", "batched"):  # each side in its own process, so that its peak memory is its own
            cmd = [sys.executable, __file__, "--only", side] + [f"--{k}={v}" for k, v in (
                ("models", a.models), ("steps", a.steps), ("d", a.d), ("T", T), ("batch", B), ("device", a.device),
                ("dtype", a.dtype))]
            out[side] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        lo, ba = out["loop"], out["batched"]
        diff = max(abs(x - y) for x, y in zip(lo["finals"], ba["finals"]))
        print(f"{size:>10} | {lo['seconds']:13.2f} s | {ba['seconds']:13.2f} s | {lo['seconds'] / ba['seconds']:7.1f}x | "
              f"{lo['peak_bytes'] / 2**20:9.0f} / {ba['peak_bytes'] / 2**20:5.0f} MiB | {diff:.1e}")
    print("Same initialisation, data and steps on both sides: the final losses agree to rounding. The loop pays the "
          "per-step overhead (Python, autograd, optimizer) once per model; the batched run pays it once.")


if __name__ == "__main__":
    main()
