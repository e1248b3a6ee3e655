r"""Planning as path-finding: random DAGs, path data, and the simplified one-layer Transformer of the ALPINE analysis.

The task (Wang et al., 2024): a directed graph :math:`G` on nodes :math:`0..n-1`; given a source :math:`s` and a
target :math:`t` that :math:`s` can reach, output a path :math:`s \to \dots \to t`. A training line is
``s t s u_1 ... t <eos>``.

Conventions (every function is batched over a leading *graph* dimension ``G``):

* ``A[g, i, k] = 1`` iff the edge :math:`i \to k` exists (``(G, n, n)``, bool). The generator draws each edge
  :math:`i \to j`, :math:`i < j`, with probability ``p``, so node ids are a topological order.
* ``R[g, t, k] = 1`` iff :math:`k` can reach :math:`t` (**target first**), with :math:`t` reaching itself.
* The next-token vocabulary is the ``n`` nodes plus ``EOS = n``.
* Counts ``N[g, i, j, k]`` (``(G, n, n, n+1)``): how often the training paths of graph ``g`` contain the prediction
  "current node :math:`i`, target :math:`j`, next token :math:`k`". A path :math:`s=v_0, \dots, v_m=t` gives the
  triples :math:`(v_r, t, v_{r+1})` and :math:`(t, t, \mathrm{EOS})`.
* Observed matrices: :math:`A^{obs}[i,k] = 1` iff :math:`\sum_j N[i,j,k] > 0`; :math:`R^{obs}[j,k] = 1` iff
  :math:`\sum_i N[i,j,k] > 0` (``k`` appeared *after the source* on a training path to ``j``).

The simplified model predicts the next token from the current node :math:`i` and the target :math:`j` only
(attention fixed on the target): :math:`z_{i,j}(k) = W^M[i,k] + W^V[j,k]`, :math:`p_{i,j} = \mathrm{softmax}(z_{i,j})`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .models import BatchedModel
from .runtime import DeviceLike, make_generator, resolve_device
from .train import TrainResult, fixed_batch, train
from .validate import (
    require_dtype,
    require_finite,
    require_nonnegative,
    require_positive,
    require_positive_int,
    require_real,
    require_shape,
    require_tensor,
)


# ------------------------------------------------------------------------------------------------ input checks
def _require_prob(p: float, name: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]; got {p!r}")
    return float(p)


def _require_nodes(x: torch.Tensor, name: str, n: int) -> torch.Tensor:
    """``x`` must be an integer tensor of node ids in ``0..n-1``."""
    require_tensor(x, name)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of node ids; got dtype {x.dtype}")
    if x.numel() and (bool((x < 0).any()) or bool((x >= n).any())):
        raise ValueError(f"{name} must hold node ids in 0..{n - 1}; got values in {x.min().item()}..{x.max().item()}")
    return x


def _require_weights(W_M: torch.Tensor, W_V: torch.Tensor) -> None:
    """The planner's weights must be finite real tensors ``(M, n, n+1)`` of the same shape."""
    for W, name in ((W_M, "W_M"), (W_V, "W_V")):
        require_real(W, name)
        require_finite(W, name)
        if W.dim() != 3 or W.shape[-1] != W.shape[-2] + 1:
            raise ValueError(f"{name} must have shape (M, n, n+1); got {tuple(W.shape)}")
    if W_M.shape != W_V.shape:
        raise ValueError(f"W_M and W_V must have the same shape (M, n, n+1); got {tuple(W_M.shape)} and {tuple(W_V.shape)}")


def _require_path_data(data: object) -> "PathData":
    if not isinstance(data, PathData):
        raise TypeError(f"data must be an icar.planning.PathData (from make_data or horizon_data); got {type(data).__name__}")
    return data


def require_adjacency(A: torch.Tensor, name: str = "A") -> torch.Tensor:
    """``A`` must be a batch of square 0/1 matrices ``(G, n, n)`` (bool or with entries in {0, 1})."""
    require_tensor(A, name)
    if A.is_complex():
        raise TypeError(f"{name} must be a real 0/1 (or bool) adjacency matrix; got complex dtype {A.dtype}")
    if A.dim() != 3 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{name} must have shape (G, n, n) (a batch of square adjacency matrices); got {tuple(A.shape)}")
    if A.dtype != torch.bool:
        if not bool(((A == 0) | (A == 1)).all()):
            raise ValueError(f"{name} must have entries in {{0, 1}}; got values such as {A[(A != 0) & (A != 1)][0].item()!r}")
        A = A != 0
    return A


def require_dag(A: torch.Tensor, name: str = "A") -> torch.Tensor:
    """``A`` must be an adjacency batch whose graphs have no directed cycle (checked through the closure)."""
    A = require_adjacency(A, name)
    C = _closure(A, strict=True)
    if bool(C.diagonal(dim1=-2, dim2=-1).any()):
        g, i = [int(x) for x in torch.nonzero(C.diagonal(dim1=-2, dim2=-1))[0]]
        raise ValueError(f"{name} must be acyclic (a DAG); graph {g} has a directed cycle through node {i}")
    return A


# ------------------------------------------------------------------------------------------------ graphs
def random_dag(n_graphs: int, n: int, p: float, *, seed: int | torch.Generator = 0,
               device: DeviceLike = "cpu") -> torch.Tensor:
    r"""``n_graphs`` random DAGs on ``n`` nodes: each edge :math:`i \to j` with :math:`i < j` independently with
    probability ``p``. Returns ``A`` ``(G, n, n)`` bool (strictly upper triangular: ids are a topological order)."""
    require_positive_int(n_graphs, "n_graphs")
    require_positive_int(n, "n")
    _require_prob(p, "p")
    g = make_generator(seed)
    U = torch.rand(n_graphs, n, n, generator=g, dtype=torch.float64)
    A = (U < p) & torch.ones(n, n, dtype=torch.bool).triu(1)
    return A.to(resolve_device(device))


def _closure(A: torch.Tensor, strict: bool = False) -> torch.Tensor:
    """``C[g, k, t] = 1`` iff a path of length >= 1 (``strict``) or >= 0 leads from ``k`` to ``t``."""
    n = A.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=A.device)
    C = A | eye
    for _ in range(max(1, int(np.ceil(np.log2(max(n, 2)))))):  # repeated squaring: paths of length <= 2^r
        Cf = C.to(torch.float32)
        C = (Cf @ Cf) > 0
    if strict:
        Af = A.to(torch.float32)
        C = (Af @ C.to(torch.float32)) > 0
    return C


def reachability(A: torch.Tensor) -> torch.Tensor:
    r"""True reachability, **target first**: ``R[g, t, k] = 1`` iff :math:`k` can reach :math:`t` (and
    :math:`R[t,t] = 1`). Computed by repeated boolean squaring of :math:`I + A` (no loop over nodes)."""
    A = require_adjacency(A)
    return _closure(A).transpose(-1, -2).contiguous()


# ------------------------------------------------------------------------------------------------ data
@dataclass
class PathData:
    r"""Training and test data of ``G`` graphs.

    ``A``, ``R`` ``(G, n, n)``: true adjacency and reachability; ``train``, ``test`` ``(G, n, n)`` bool masks over
    pairs ``[s, t]``; ``paths`` ``(P, L)`` long, node ids padded with ``-1`` after the target; ``graph``, ``source``,
    ``target`` ``(P,)``: the graph and pair of each path; ``counts`` ``N`` ``(G, n, n, n+1)`` float64.
    """

    A: torch.Tensor
    R: torch.Tensor
    train: torch.Tensor
    test: torch.Tensor
    paths: torch.Tensor
    graph: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    counts: torch.Tensor

    @property
    def n(self) -> int:
        return self.A.shape[-1]

    @property
    def n_graphs(self) -> int:
        return self.A.shape[0]


def split_pairs(A: torch.Tensor, R: torch.Tensor, train_frac: float, *, seed: int | torch.Generator = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Split the reachable pairs :math:`(s, t)`, :math:`s \ne t`, into train and test masks ``[g, s, t]``.

    A pair is in training if :math:`s \to t` is an edge, or a coin with probability ``train_frac`` says so, or
    :math:`s` is the smallest source that reaches :math:`t` (every target is seen in training); otherwise in test.
    """
    A = require_adjacency(A)
    require_shape(R, "R", tuple(A.shape), "(G, n, n)")
    R = require_adjacency(R, "R")
    _require_prob(train_frac, "train_frac")
    G, n, _ = A.shape
    eye = torch.eye(n, dtype=torch.bool, device=A.device)
    reach = R.transpose(-1, -2).bool() & ~eye  # [g, s, t]
    coin = (torch.rand(G, n, n, generator=make_generator(seed), dtype=torch.float64) < train_frac).to(A.device)
    first_s = reach.to(torch.int8).argmax(dim=1)  # smallest s that reaches t, (G, n)
    first = torch.zeros_like(reach).scatter_(1, first_s[:, None, :], True) & reach
    train_mask = reach & (A | coin | first)
    return train_mask, reach & ~train_mask


def sample_paths(A: torch.Tensor, R: torch.Tensor, pairs: torch.Tensor, n_paths: int, *,
                 seed: int | torch.Generator = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""``n_paths`` random paths for every pair of the mask ``pairs`` ``[g, s, t]``, all walks at once.

    A walk starts at :math:`s` and moves to a successor chosen uniformly among those that can reach :math:`t` (or
    are :math:`t`); a pair with a direct edge also gets the one-edge path :math:`s \to t`. Returns
    ``paths`` ``(P, n)`` (padded with ``-1``), ``graph``, ``source``, ``target`` ``(P,)``.
    """
    A = require_dag(A)  # a walk in a DAG ends within n-1 steps
    require_shape(R, "R", tuple(A.shape), "(G, n, n)")
    require_adjacency(R, "R")
    require_shape(pairs, "pairs", tuple(A.shape), "(G, n, n)")
    require_adjacency(pairs, "pairs")
    require_positive_int(n_paths, "n_paths")
    G, n, _ = A.shape
    gen = make_generator(seed)
    A, R, pairs = A.cpu(), R.cpu().bool(), pairs.cpu().bool()
    g, s, t = torch.nonzero(pairs, as_tuple=True)
    g, s, t = g.repeat_interleave(n_paths), s.repeat_interleave(n_paths), t.repeat_interleave(n_paths)
    paths = torch.full((g.numel(), n), -1, dtype=torch.long)
    paths[:, 0] = s
    cur = s.clone()
    for step in range(1, n):  # a walk in a DAG has at most n-1 edges; every walk moves forward at once
        active = cur != t
        if not bool(active.any()):
            break
        allowed = (A[g, cur] & R[g, t]).to(torch.float64)  # successors of cur that reach t
        allowed[~active] = 1.0  # finished walks: dummy weights, result discarded
        nxt = torch.multinomial(allowed, 1, generator=gen).squeeze(1)
        cur = torch.where(active, nxt, cur)
        paths[:, step] = torch.where(active, nxt, torch.full_like(nxt, -1))
    # the direct one-edge path of every pair with an edge (so that every edge is observed)
    ge, se, te = torch.nonzero(pairs & A, as_tuple=True)
    direct = torch.full((ge.numel(), n), -1, dtype=torch.long)
    direct[:, 0], direct[:, 1] = se, te
    return torch.cat([paths, direct]), torch.cat([g, ge]), torch.cat([s, se]), torch.cat([t, te])


def count_triples(paths: torch.Tensor, graph: torch.Tensor, target: torch.Tensor, n_graphs: int, n: int
                  ) -> torch.Tensor:
    r"""Counts ``N[g, i, j, k]`` ``(G, n, n, n+1)`` float64 of (current :math:`i`, target :math:`j`, next :math:`k`)
    over the paths (``k = n`` is EOS, predicted once the current node is the target)."""
    require_positive_int(n_graphs, "n_graphs")
    require_positive_int(n, "n")
    require_shape(paths, "paths", (None, n), "(P, n)")
    P = paths.shape[0]
    _require_nodes(paths.clamp_min(0), "paths", n)  # -1 pads a path
    if bool((paths < -1).any()):
        raise ValueError(f"paths must hold node ids in 0..{n - 1}, padded with -1; got {paths.min().item()}")
    require_shape(graph, "graph", (P,), "(P,)")
    require_shape(target, "target", (P,), "(P,)")
    _require_nodes(graph, "graph", n_graphs)
    _require_nodes(target, "target", n)
    nxt = torch.cat([paths[:, 1:], torch.full((P, 1), -1, dtype=paths.dtype)], dim=1)
    cur_ok = paths >= 0
    nxt = torch.where(cur_ok & (nxt < 0), torch.full_like(nxt, n), nxt)  # the step after the target is EOS
    gg = graph[:, None].expand_as(paths)[cur_ok]
    jj = target[:, None].expand_as(paths)[cur_ok]
    flat = ((gg * n + paths[cur_ok]) * n + jj) * (n + 1) + nxt[cur_ok]
    N = torch.bincount(flat, minlength=n_graphs * n * n * (n + 1)).to(torch.float64)
    return N.reshape(n_graphs, n, n, n + 1)


def make_data(n_graphs: int, n: int, p: float = 0.1, *, train_frac: float = 0.5, n_paths: int = 20,
              seed: int = 0) -> PathData:
    """Graphs, split, paths and counts in one call (graph ``seed``, split ``seed+1``, paths ``seed+2``)."""
    A = random_dag(n_graphs, n, p, seed=seed)
    R = reachability(A)
    tr, te = split_pairs(A, R, train_frac, seed=seed + 1)
    paths, g, s, t = sample_paths(A, R, tr, n_paths, seed=seed + 2)
    return PathData(A, R, tr, te, paths, g, s, t, count_triples(paths, g, t, n_graphs, n))


def observed_matrices(N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``A_obs[g, i, k]`` = edge :math:`i \to k` used by a training path; ``R_obs[g, j, k]`` = node :math:`k`
    appeared after the source on a training path to :math:`j`. Both ``(G, n, n)`` bool (EOS column dropped)."""
    require_ndim4(N)
    n = N.shape[1]
    return N.sum(2)[..., :n] > 0, N.sum(1)[..., :n] > 0


def require_ndim4(N: torch.Tensor) -> torch.Tensor:
    """``N`` must be finite non-negative counts ``(G, n, n, n+1)``."""
    require_real(N, "N")
    require_finite(N, "N")
    if bool((N < 0).any()):
        raise ValueError("counts N must be non-negative")
    if N.dim() != 4 or N.shape[1] != N.shape[2] or N.shape[3] != N.shape[1] + 1:
        raise ValueError(f"counts N must have shape (G, n, n, n+1) = (graphs, current, target, next incl. EOS); "
                         f"got {tuple(N.shape)}")
    return N


def first_step_degree(A_obs: torch.Tensor, R_obs: torch.Tensor) -> torch.Tensor:
    r"""``deg[g, s, t]`` = number of successors :math:`k` of :math:`s` in :math:`A^{obs}` with
    :math:`R^{obs}[t,k] = 1` or :math:`k = t`: the candidates of the first step of Algorithm 1 run on the
    observed matrices. A pair with degree 0 needs a reachability that no training path showed."""
    A_obs = require_adjacency(A_obs, "A_obs")
    require_shape(R_obs, "R_obs", tuple(A_obs.shape), "(G, n, n)")
    R_obs = require_adjacency(R_obs, "R_obs")
    n = A_obs.shape[-1]
    Rt = R_obs.bool() | torch.eye(n, dtype=torch.bool, device=R_obs.device)
    return torch.einsum("gsk,gtk->gst", A_obs.double(), Rt.double()).round().long()


# ------------------------------------------------------------------------------------------------ model
class SimplifiedPlanner(BatchedModel):
    r"""One layer, one head, attention fixed on the target token, one-hot embeddings:
    :math:`z_{i,j}(k) = W^M[i,k] + W^V[j,k]` for current node :math:`i` and target :math:`j`.

    Parameters ``W_M``, ``W_V`` ``(M, n, n+1)`` (column ``n`` is EOS). Input: long ``(B, 2)`` rows
    ``(current, target)``, shared or per model ``(M, B, 2)``; output logits ``(M, B, n+1)``.
    """

    def __init__(self, n_models: int, n: int, *, init_scale: float = 0.0, seed: int | torch.Generator = 0,
                 dtype: torch.dtype = torch.float64, device: DeviceLike = "cpu"):
        super().__init__(n_models)
        self.n = require_positive_int(n, "n")
        require_nonnegative(init_scale, "init_scale")
        require_dtype(dtype, complex_ok=False)
        g = make_generator(seed)
        dev = resolve_device(device)
        shape = (n_models, n, n + 1)
        self.W_M = nn.Parameter((init_scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dev, dtype))
        self.W_V = nn.Parameter((init_scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dev, dtype))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        x = self.per_model(pairs, 2, "pairs", floating=False)
        if x.shape[-1] != 2 or x.dtype != torch.long:
            raise ValueError(f"pairs must be long (current, target) rows, shape (B, 2) or (M, B, 2); got "
                             f"{tuple(pairs.shape)} {pairs.dtype}")
        if bool((x < 0).any()) or bool((x >= self.n).any()):
            raise ValueError(f"node ids must lie in 0..{self.n - 1}; got values in {x.min().item()}..{x.max().item()}")
        m = torch.arange(self.n_models, device=x.device)[:, None]
        return self.W_M[m, x[..., 0]] + self.W_V[m, x[..., 1]]


def training_batch(N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Full-batch inputs of the count loss: the active (current, target) pairs of each graph, padded to a common
    number ``B``, as ``pairs`` ``(G, B, 2)`` and their next-token counts ``(G, B, n+1)`` (padding rows count 0)."""
    require_ndim4(N)
    G, n = N.shape[0], N.shape[1]
    active = N.sum(-1) > 0  # (G, n, n)
    B = int(active.flatten(1).sum(1).max())
    pairs = torch.zeros(G, B, 2, dtype=torch.long, device=N.device)
    counts = torch.zeros(G, B, n + 1, dtype=N.dtype, device=N.device)
    g, i, j = torch.nonzero(active, as_tuple=True)
    slot = torch.cumsum(torch.ones_like(g), 0) - 1 - torch.searchsorted(g, g)  # position within its graph
    pairs[g, slot, 0], pairs[g, slot, 1] = i, j
    counts[g, slot] = N[g, i, j]
    return pairs, counts


def count_cross_entropy(logits: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    r"""Per-model loss :math:`-\frac1Z\sum N[i,j,k]\log p_{i,j}(k)` with :math:`Z = \sum N` (the mean next-token
    cross-entropy over every prediction of the training paths). ``logits``, ``counts`` ``(M, B, n+1)`` -> ``(M,)``."""
    require_real(logits, "logits")
    require_real(counts, "counts")
    if counts.dim() != 3 or bool((counts.sum((1, 2)) <= 0).any()):
        raise ValueError(f"counts must have shape (M, B, n+1) and count at least one prediction per model (Z > 0); "
                         f"got shape {tuple(counts.shape)}")
    if logits.shape != counts.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and counts {tuple(counts.shape)} must have the same shape")
    return -(counts * torch.log_softmax(logits, -1)).sum((1, 2)) / counts.sum((1, 2))


def gradients(W_M: torch.Tensor, W_V: torch.Tensor, N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Closed-form gradients of :func:`count_cross_entropy` (per model ``g``):

    .. math:: \partial_{W^M[i,k]} = \tfrac1Z\Big(\sum_j N[i,j]\,p_{i,j}(k) - \sum_j N[i,j,k]\Big),\qquad
              \partial_{W^V[j,k]} = \tfrac1Z\Big(\sum_i N[i,j]\,p_{i,j}(k) - \sum_i N[i,j,k]\Big).

    ``W_M``, ``W_V`` ``(M, n, n+1)``, ``N`` ``(M, n, n, n+1)``; returns two ``(M, n, n+1)`` tensors.
    """
    require_ndim4(N)
    require_shape(W_M, "W_M", (N.shape[0], N.shape[1], N.shape[3]), "(M, n, n+1)")
    require_shape(W_V, "W_V", (N.shape[0], N.shape[1], N.shape[3]), "(M, n, n+1)")
    _require_weights(W_M, W_V)
    if bool((N.sum((1, 2, 3)) <= 0).any()):
        raise ValueError("counts N must count at least one prediction per model (Z = sum N > 0)")
    p = torch.softmax(W_M[:, :, None, :] + W_V[:, None, :, :], -1)  # (M, i, j, k)
    resid = N.sum(-1, keepdim=True) * p - N
    Z = N.sum((1, 2, 3))[:, None, None]
    return resid.sum(2) / Z, resid.sum(1) / Z


@dataclass
class PlannerRun:
    """A trained planner and its snapshots: ``W_M``, ``W_V`` ``(S+1, M, n, n+1)`` at ``steps`` ``(S+1,)``."""

    model: SimplifiedPlanner
    steps: list[int]
    W_M: torch.Tensor
    W_V: torch.Tensor
    losses: torch.Tensor


def train_planner(N: torch.Tensor, *, steps: int, lr: float, n_snapshots: int = 10, init_scale: float = 0.0,
                  seed: int = 0, device: DeviceLike = "cpu", progress: bool | None = None) -> PlannerRun:
    r"""Full-batch gradient descent on the count loss, one model per graph (the model dimension is the graph seed).

    Training runs in ``n_snapshots`` chunks of ``icar.train.train`` with plain SGD (stateless, so the chunks are one
    run); the weights are stored after each chunk.
    """
    require_ndim4(N)
    require_positive_int(steps, "steps")
    require_positive_int(n_snapshots, "n_snapshots")
    require_positive(lr, "lr")
    dev = resolve_device(device)
    G, n = N.shape[0], N.shape[1]
    model = SimplifiedPlanner(G, n, init_scale=init_scale, seed=seed, device=dev)
    pairs, counts = training_batch(N.to(dev))
    bounds = np.linspace(0, steps, n_snapshots + 1).round().astype(int)
    WM, WV, losses = [model.W_M.detach().clone()], [model.W_V.detach().clone()], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b == a:
            continue
        res: TrainResult = train(model, fixed_batch(pairs, counts), steps=int(b - a), lr=lr, optimizer="sgd",
                                 loss_fn=count_cross_entropy, seed=seed, progress=progress,
                                 desc=f"planner steps {a}-{b}")
        losses.append(res.losses)
        WM.append(model.W_M.detach().clone())
        WV.append(model.W_V.detach().clone())
    kept = [0] + [int(b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    return PlannerRun(model, kept, torch.stack(WM), torch.stack(WV), torch.cat(losses))


# ------------------------------------------------------------------------------------------------ decoding
def decode(W_M: torch.Tensor, W_V: torch.Tensor, A: torch.Tensor, source: torch.Tensor, target: torch.Tensor, *,
           greedy: bool = True, seed: int | torch.Generator = 0) -> torch.Tensor:
    r"""Generate a path for every pair with the simplified model and say whether it is valid.

    ``W_M``, ``W_V`` ``(M, n, n+1)``; ``A`` ``(M, n, n)`` the **true** graphs; ``source``, ``target`` ``(M, P)``
    long. Starting at :math:`s`, the next token is the argmax (``greedy``) or a sample of
    :math:`\mathrm{softmax}(W^M[u] + W^V[t])`. A path is valid iff every step is a true edge and EOS comes right
    after :math:`t`. All pairs and models move together; at most ``n`` steps. Returns ``(M, P)`` bool.
    """
    A = require_adjacency(A)
    _require_weights(W_M, W_V)
    M, n = W_M.shape[0], W_M.shape[1]
    require_shape(W_M, "W_M", (M, n, n + 1), "(M, n, n+1)")
    require_shape(W_V, "W_V", (M, n, n + 1), "(M, n, n+1)")
    require_shape(A, "A", (M, n, n), "(M, n, n)")
    require_shape(source, "source", (M, None), "(M, P)")
    require_shape(target, "target", tuple(source.shape), "(M, P)")
    require_dag(A)  # the true graphs are DAGs: a generated path then ends within n steps
    _require_nodes(source, "source", n)
    _require_nodes(target, "target", n)
    gen = make_generator(seed)
    m = torch.arange(M, device=W_M.device)[:, None]
    cur, t = source.clone(), target
    alive = torch.ones_like(cur, dtype=torch.bool)
    ok = torch.zeros_like(alive)
    for _ in range(n + 1):
        if not bool(alive.any()):
            break
        logits = W_M[m, cur] + W_V[m, t]
        if greedy:
            nxt = logits.argmax(-1)
        else:
            u = torch.rand(logits.shape, generator=gen, dtype=torch.float64).to(logits.device)
            nxt = (logits - torch.log(-torch.log(u.clamp_min(1e-300)))).argmax(-1)  # Gumbel-max sampling
        eos = nxt == n
        ok = ok | (alive & eos & (cur == t))
        edge = A[m, cur, nxt.clamp_max(n - 1)] & ~eos
        alive = alive & edge
        cur = torch.where(alive, nxt, cur)
    return ok


def algorithm1(A: torch.Tensor, R: torch.Tensor, source: torch.Tensor, target: torch.Tensor, *,
               seed: int | torch.Generator = 0) -> torch.Tensor:
    r"""The idealised planner ("Algorithm 1"), all pairs at once: from the current node :math:`u \ne t`, move to a
    node chosen uniformly in :math:`\{k : A[u,k] = 1,\ R[t,k] = 1 \text{ or } k = t\}`; fail if that set is empty.

    ``A``, ``R`` ``(G, n, n)`` (the matrices it is *given*, true or observed); ``source``, ``target`` ``(G, P)``.
    Returns ``(G, P)`` bool: reached :math:`t`.
    """
    A = require_dag(A)  # on a graph with a cycle the walk need not end, and R is no longer an order
    require_shape(R, "R", tuple(A.shape), "(G, n, n)")
    require_adjacency(R, "R")
    require_shape(source, "source", (A.shape[0], None), "(G, P)")
    require_shape(target, "target", tuple(source.shape), "(G, P)")
    _require_nodes(source, "source", A.shape[-1])
    _require_nodes(target, "target", A.shape[-1])
    G, n, _ = A.shape
    gen = make_generator(seed)
    eye = torch.eye(n, dtype=torch.bool, device=A.device)
    Rt = R.bool() | eye
    m = torch.arange(G, device=A.device)[:, None]
    cur, t = source.clone(), target
    stuck = torch.zeros_like(cur, dtype=torch.bool)
    for _ in range(n):
        active = (cur != t) & ~stuck
        if not bool(active.any()):
            break
        cand = (A[m, cur] & Rt[m, t]).to(torch.float64)  # (G, P, n)
        stuck = stuck | (active & (cand.sum(-1) == 0))
        cand[~active | stuck] = 1.0
        nxt = torch.multinomial(cand.reshape(-1, n).cpu(), 1, generator=gen).reshape(cur.shape).to(cur.device)
        cur = torch.where(active & ~stuck, nxt, cur)
    return (cur == t) & ~stuck


def pairs_of(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pairs of a mask ``[g, s, t]`` as padded ``source``, ``target`` ``(G, P)`` and a ``valid`` mask."""
    mask = require_adjacency(mask, "mask")
    G = mask.shape[0]
    g, s, t = torch.nonzero(mask, as_tuple=True)
    P = max(1, int(mask.flatten(1).sum(1).max()))
    slot = torch.arange(g.numel(), device=mask.device) - torch.searchsorted(g, g)
    S = torch.zeros(G, P, dtype=torch.long, device=mask.device)
    T = torch.zeros_like(S)
    V = torch.zeros(G, P, dtype=torch.bool, device=mask.device)
    S[g, slot], T[g, slot], V[g, slot] = s, t, True
    return S, T, V


def accuracy_by_group(W_M: torch.Tensor, W_V: torch.Tensor, data: PathData, *, greedy: bool = True,
                      seed: int = 0) -> dict[str, tuple[float, int]]:
    """Share of valid generated paths on the test pairs, overall and split by first-step degree (>= 1: solvable
    with observed matrices; 0: needs an unobserved reachability). Values: ``(accuracy, number of pairs)``."""
    _require_path_data(data)
    A_obs, R_obs = observed_matrices(data.counts)
    deg = first_step_degree(A_obs, R_obs)
    S, T, V = pairs_of(data.test)
    ok = decode(W_M, W_V, data.A, S, T, greedy=greedy, seed=seed)
    g = torch.arange(S.shape[0])[:, None].expand_as(S)
    d = deg[g, S, T]
    out = {}
    for name, sel in (("all", V), ("observed", V & (d > 0)), ("transitive", V & (d == 0))):
        k = int(sel.sum())
        out[name] = (float(ok[sel].double().mean()) if k else float("nan"), k)
    return out


# ------------------------------------------------------------------------------------------------ read-outs
def auc(scores: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties count 1/2."""
    require_real(scores, "scores")
    require_finite(scores, "scores")
    for m, name in ((positive, "positive"), (negative, "negative")):
        require_shape(m, name, tuple(scores.shape), "the shape of scores")
        if m.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool mask; got dtype {m.dtype}")
    pos, neg = scores[positive].double(), scores[negative].double()
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError("positive and negative must each select at least one entry (auc needs both); "
                         f"got {pos.numel()} positive and {neg.numel()} negative entries")
    allv = torch.cat([pos, neg])
    order = allv.argsort()
    ranks = torch.empty_like(allv)
    ranks[order] = torch.arange(1, allv.numel() + 1, dtype=torch.float64)
    # average ranks over ties
    uniq, inv = torch.unique(allv, return_inverse=True)
    mean_rank = torch.zeros_like(uniq).scatter_add_(0, inv, ranks) / torch.bincount(inv).double()
    r = mean_rank[inv][: pos.numel()].sum()
    return float((r - pos.numel() * (pos.numel() + 1) / 2) / (pos.numel() * neg.numel()))


def entry_groups(data: PathData) -> dict[str, torch.Tensor]:
    r"""Masks ``(G, n, n)`` used by the read-outs, restricted to active rows (a node that occurs as a current node,
    resp. a target): ``edge_obs`` / ``edge_non`` for :math:`W^M`; ``reach_obs``, ``reach_unobs`` (true but never
    observed) and ``unreach`` for :math:`W^V` (diagonal excluded)."""
    _require_path_data(data)
    N = data.counts
    n = data.n
    A_obs, R_obs = observed_matrices(N)
    row_M = (N.sum((2, 3)) > 0)[:, :, None].expand(-1, -1, n)
    row_V = (N.sum((1, 3)) > 0)[:, :, None].expand(-1, -1, n)
    off = ~torch.eye(n, dtype=torch.bool)
    R = data.R.bool()
    return {
        "edge_obs": row_M & A_obs, "edge_non": row_M & ~A_obs,
        "reach_obs": row_V & R_obs & off, "reach_unobs": row_V & R & ~R_obs & off, "unreach": row_V & ~R & off,
    }


# ------------------------------------------------------------------------------------------------ composition test
def binary_tree(depth: int, *, device: DeviceLike = "cpu") -> torch.Tensor:
    r"""Complete binary tree with edges parent :math:`\to` child: node :math:`i` has children :math:`2i+1, 2i+2`;
    ``depth`` levels below the root, :math:`2^{depth+1} - 1` nodes. Returns ``A`` ``(1, n, n)`` bool."""
    require_positive_int(depth, "depth")
    n = 2 ** (depth + 1) - 1
    A = torch.zeros(1, n, n, dtype=torch.bool)
    parents = torch.arange((n - 1) // 2)
    A[0, parents, 2 * parents + 1] = True
    A[0, parents, 2 * parents + 2] = True
    return A.to(resolve_device(device))


def distances(A: torch.Tensor) -> torch.Tensor:
    r"""``D[g, s, t]`` = number of edges of the shortest path :math:`s \to t` (``-1`` if none, 0 on the diagonal),
    from the boolean powers of ``A`` (one product per length, at most ``n - 1``)."""
    A = require_adjacency(A)
    n = A.shape[-1]
    D = torch.full(A.shape, -1, dtype=torch.long, device=A.device)
    D[:, torch.arange(n), torch.arange(n)] = 0
    Pk = torch.eye(n, dtype=torch.float32, device=A.device).expand_as(A).clone()
    for k in range(1, n):
        Pk = ((Pk @ A.to(torch.float32)) > 0).to(torch.float32)
        if not bool(Pk.any()):
            break
        D = torch.where((D < 0) & (Pk > 0), torch.full_like(D, k), D)
    return D


def horizon_data(A: torch.Tensor, max_train_dist: int, *, n_paths: int = 1, seed: int = 0) -> PathData:
    r"""Composition test: train on every reachable pair at distance :math:`\le` ``max_train_dist``, test on all
    longer pairs. The training data then show every edge and every *short* reachability; a long pair can only be
    solved by chaining them."""
    A = require_adjacency(A)
    require_positive_int(max_train_dist, "max_train_dist")
    require_positive_int(n_paths, "n_paths")
    R = reachability(A)
    D = distances(A)
    tr, te = (D >= 1) & (D <= max_train_dist), D > max_train_dist
    paths, g, s, t = sample_paths(A, R, tr, n_paths, seed=seed)
    return PathData(A, R, tr, te, paths, g, s, t, count_triples(paths, g, t, A.shape[0], A.shape[-1]))


def accuracy_by_distance(W_M: torch.Tensor, W_V: torch.Tensor, data: PathData, *, n_samples: int = 20,
                         seed: int = 0, mask: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampled accuracy on the pairs of ``mask`` (default: the test pairs) at each distance: every pair decoded
    ``n_samples`` times (samples stacked on the pair axis). Returns ``(distances, accuracy, number of decodes)``."""
    require_positive_int(n_samples, "n_samples")
    _require_path_data(data)
    S, T, V = pairs_of(data.test if mask is None else mask)
    D = distances(data.A)
    g = torch.arange(S.shape[0])[:, None].expand_as(S)
    d = D[g, S, T]
    rep = lambda x: x.repeat(1, n_samples)  # noqa: E731
    ok = decode(W_M, W_V, data.A, rep(S), rep(T), greedy=False, seed=seed)
    dd, vv = rep(d), rep(V)
    ds = torch.unique(dd[vv])
    acc = torch.stack([ok[vv & (dd == k)].double().mean() for k in ds])
    cnt = torch.stack([(vv & (dd == k)).sum() for k in ds])
    return ds, acc, cnt


def first_step_share(W_M: torch.Tensor, W_V: torch.Tensor, A: torch.Tensor, R: torch.Tensor, source: torch.Tensor,
                     target: torch.Tensor) -> torch.Tensor:
    r"""Probability the model gives, at the first step from :math:`s`, to the successors of :math:`s` that reach
    :math:`t`, divided by the probability of all successors of :math:`s`: the share of its next-edge mass that
    goes the right way. ``source``, ``target`` ``(M, P)``; returns ``(M, P)``."""
    A = require_adjacency(A)
    _require_weights(W_M, W_V)
    require_shape(R, "R", tuple(A.shape), "(M, n, n)")
    require_adjacency(R, "R")
    n_ = A.shape[-1]
    _require_nodes(source, "source", n_)
    _require_nodes(target, "target", n_)
    m = torch.arange(W_M.shape[0], device=W_M.device)[:, None]
    n = A.shape[-1]
    prob = torch.softmax(W_M[m, source] + W_V[m, target], -1)[..., :n]
    succ = A[m, source]
    good = succ & R.bool()[m, target]
    return (prob * good).sum(-1) / (prob * succ).sum(-1)
