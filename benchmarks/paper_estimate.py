"""Paper mode on this machine, estimated: time a few training steps of each paper-size experiment and extrapolate.

The longest paper-mode runs (figure 5 and 7 of Sander et al. 2024 at 3,200 Adam steps, figure 3 right at 100,000
GD steps, the mesa layer at 200 epochs) take from minutes to hours on a CPU. This script builds each of them at the
size the chapter uses in paper mode (``ICAR_SCALE=paper``), times ``--steps`` steps (median of three repeats, after
two warm-up steps), multiplies by the paper's step count, and prints the estimate next to the time of the authors'
script, run once per seed for the seeds the chapter batches (measured on this 2-core machine, single-threaded).
Figure 7 (64 heads) runs in the contracted form of ``PositionalTokenAttention`` (heads summed out first), whose
activations are a few hundred MB for 4 models at batch 1024, so it is timed at its paper size like the others.

Run: ``python benchmarks/paper_estimate.py`` (``--device cuda`` on a GPU).
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch

from icar import mesa, multihead, noncommuting as nc, train

from chapter_models import timed  # benchmarks/ is on sys.path when a script here runs

Step = Callable[[], None]

# Authors' released scripts on this machine, single-threaded, one seed (issue 11): seconds per seed.
AUTHORS = {"fig5": 248.0, "fig3-right": 16 * 60.0, "mesa": 72 * 60.0}


def per_step(step: Step, n: int, device: str) -> float:
    """Median seconds of one step over 3 repeats of ``n`` steps (the timer of ``chapter_models.py``)."""
    return timed(step, device, reps=3, inner=n)


def trainer_step(model, batch_fn, lr: float, loss_fn=train.per_model_mse, optimizer: str = "adam",
                 momentum: float = 0.0) -> Step:
    params = [p for p in model.parameters() if p.requires_grad]
    lr_t = train._lr_tensor(lr, model.n_models)
    opt = train.BatchedAdam(params, lr_t) if optimizer == "adam" else train.BatchedSGD(params, lr_t, momentum)
    gen = torch.Generator().manual_seed(0)
    state = {"k": 0}

    def step() -> None:
        x, y = batch_fn(state["k"], gen)
        state["k"] += 1
        for p in params:
            p.grad = None
        loss_fn(model(x), y).sum().backward()
        opt.step()
    return step


def fig5(device: str, dtype: torch.dtype) -> Step:
    """Chapter 5, figure 5: 2 seeds x 2 start laws, 2^14 sequences of 50 tokens each, batch 1024."""
    sets = [nc.split_inputs_targets(nc.haar_sequences(16384, 5, 51, seed=10, start=st, dtype=dtype,
                                                      device=device).states, True) for st in ("fixed", "random")]
    X = torch.stack([sets[0][0], sets[1][0]])            # inputs per group: the 2 seeds of a start law share one
    Y = torch.stack([sets[0][1]] * 2 + [sets[1][1]] * 2)
    model = nc.AugmentedAttention(4, 5, attention="linear", paper=True, seed=0, dtype=dtype).to(device)
    return trainer_step(model, nc.minibatches(X, Y, 1024), 1e-2)


def linear_vs_softmax(device: str, dtype: torch.dtype) -> Step:
    """Chapter 5, section on softmax: 2 linear + 2 softmax layers on the fixed-start set, batch 1024."""
    X, Y = nc.split_inputs_targets(nc.haar_sequences(16384, 5, 51, seed=10, dtype=dtype, device=device).states, True)
    model = nc.AugmentedAttention(4, 5, attention=["linear"] * 2 + ["softmax"] * 2, paper=False, seed=1,
                                  dtype=dtype).to(device)
    return trainer_step(model, nc.minibatches(X, Y, 1024), 1e-2)


def fig7(device: str, dtype: torch.dtype) -> Step:
    """Chapter 5, figure 7: token x positional attention with 64 heads, 2 seeds x 2 starts, 2^14 x 50 tokens."""
    sets = [nc.split_inputs_targets(nc.haar_sequences(16384, 5, 51, seed=20, start=st, dtype=dtype,
                                                      device=device).states, False) for st in ("fixed", "random")]
    X = torch.stack([sets[0][0], sets[1][0]])
    Y = torch.stack([sets[0][1]] * 2 + [sets[1][1]] * 2)
    model = nc.PositionalTokenAttention(4, 5, heads=64, max_len=50, seed=2, dtype=dtype).to(device)
    return trainer_step(model, nc.minibatches(X, Y, 1024), 1e-2)


def fig3_right(device: str, M: int, heads: list[int] | None = None) -> Step:
    """Chapter 4, figure 3 right: closed-form GD with momentum, d = 10, H = 8 (or the H sweep), T = 21."""
    model = multihead.MultiHeadDiagonal(M, 10, n_heads=8 if heads is None else 10, T=21, heads=heads, seed=0,
                                        device=device)
    objective = multihead._PopulationObjective(model, "orthogonal", "corrected")
    return trainer_step(objective, lambda k, g: (None, None), 1e-3, loss_fn=lambda losses, _t: losses,
                        optimizer="sgd", momentum=0.9)


def mesa_gaussian(device: str, base: int) -> Step:
    """Chapter 3: full-batch closed-form GD of 3 initialisations on base x 120 symmetric Gaussian sequences, T = 100."""
    X, W = mesa.symmetrize(*mesa.sample("gaussian", base, 5, 100, seed=10, device=device))
    data = mesa.prepare(X, W)
    K, P = mesa.diagonal_init(torch.tensor([0.1, 0.5, 1.0]), torch.tensor([0.1, 1.5, 1.0]), 5, device=device)
    state = {"K": K, "P": P}

    def step() -> None:
        _, dK, dP = mesa.loss_and_grad(state["K"], state["P"], data)
        state["K"], state["P"] = state["K"] - 1e-4 * dK, state["P"] - 1e-4 * dP
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=3, help="timed steps per repeat (x 50 for the tiny figure-3 steps)")
    p.add_argument("--chapters", default="ch3,ch4,ch5", help="comma-separated subset of ch3, ch4, ch5")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads (default 1, as the chapters run; 2 = both cores of this machine)")
    p.add_argument("--system-allocator", action="store_true",
                   help="leave malloc as it is (default: icar.train.retain_cpu_memory, no page faults per step)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    retained = False if a.system_allocator else train.retain_cpu_memory()
    dev, f32 = a.device, torch.float32
    rows = []

    def line(chapter: str, what: str, t_step: float, steps: int, authors: float | None, seeds: int) -> None:
        total = t_step * steps
        ref = f"{authors * seeds:8.0f} s ({seeds} x {authors:.0f} s)" if authors else "      -"
        ratio = f"{authors * seeds / total:6.1f}x" if authors else "     -"
        rows.append(total)
        print(f"{chapter:4s} {what:58s} {t_step * 1e3:9.1f} ms x {steps:>6} = {total:8.0f} s | authors {ref} | {ratio}",
              flush=True)

    print(f"device {dev}, {a.threads} thread(s), freed CPU memory retained: {retained}; estimate = time per step "
          f"(median of 3 x {a.steps} steps) x paper step count")
    want = a.chapters.split(",")
    if "ch3" in want:
        line("ch3", "mesa, Gaussian, 10,080 sequences, 3 inits, 200 epochs",
             per_step(mesa_gaussian(dev, 84), a.steps, dev), 200, AUTHORS["mesa"], 3)
        line("ch3", "mesa, sparse, 120 sequences, 3 inits, 200 epochs",
             per_step(mesa_gaussian(dev, 1), a.steps, dev), 200, None, 3)
    if "ch4" in want:
        line("ch4", "figure 3 right, 8 seeds, 100,000 GD steps",
             per_step(fig3_right(dev, 8), 50 * a.steps, dev), 100_000, AUTHORS["fig3-right"], 8)
        heads = [h for h in range(1, 11) for _ in range(3)]
        line("ch4", "H sweep, orthogonal, 30 models, 10,000 GD steps (a course experiment: its full size)",
             per_step(fig3_right(dev, 30, heads), 50 * a.steps, dev), 10_000, None, 30)
    if "ch5" in want:
        line("ch5", "figure 5, 2 seeds x 2 starts, 2^14 x 50 tokens, 3,200 steps",
             per_step(fig5(dev, f32), a.steps, dev), 3200, AUTHORS["fig5"], 4)
        line("ch5", "linear vs softmax, 4 models, batch 1024, 3,200 steps",
             per_step(linear_vs_softmax(dev, f32), a.steps, dev), 3200, None, 4)
        line("ch5", "figure 7, 64 heads, 2 seeds x 2 starts, batch 1024, 3,200 steps",
             per_step(fig7(dev, f32), a.steps, dev), 3200, None, 4)
    print(f"total of the estimated paper-mode training: {sum(rows) / 60:.0f} min")


if __name__ == "__main__":
    main()
