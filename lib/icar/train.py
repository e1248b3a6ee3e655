r"""Train ``M`` independent models at once.

A model is a :class:`icar.models.BatchedModel`: every parameter has a leading dimension ``M``. The loss of model
``m`` depends only on slice ``m``, so one backward pass of :math:`\sum_m L_m` gives every model its own gradient, and
one optimizer step updates all of them. Learning rates can differ per model (a hyper-parameter sweep is just a batch
dimension): :class:`BatchedAdam` and :class:`BatchedSGD` take ``lr`` of shape ``(M,)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from .models import BatchedModel
from .runtime import make_generator, progress_enabled
from .validate import (
    require_callable,
    require_choice,
    require_finite,
    require_floating,
    require_in_range,
    require_positive,
    require_positive_int,
    require_positive_tensor,
    require_tensor,
)

Batch = tuple[torch.Tensor, torch.Tensor]
BatchFn = Callable[[int, torch.Generator], Batch]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def per_model_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Mean squared error of each model: pred ``(M, B, ...)``, target ``(B, ...)`` or ``(M, B, ...)`` -> ``(M,)``.

    The mean runs over batch, positions and coordinates (:math:`|\cdot|^2` for complex values).
    """
    require_floating(pred, "pred")
    require_tensor(target, "target")
    if target.dim() == pred.dim() - 1:
        target = target.unsqueeze(0)
    if pred.shape[1:] != target.shape[1:]:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} do not match after the model dimension")
    return (pred - target).abs().pow(2).flatten(1).mean(1)


def per_model_sum_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Squared error summed over coordinates, averaged over batch and positions: ``(M,)``. This is the
    :math:`E\|\hat s_{t+1} - s_{t+1}\|^2` of the theory (``d`` times :func:`per_model_mse`)."""
    return per_model_mse(pred, target) * pred.shape[-1]


def _lr_tensor(lr: float | Sequence[float] | torch.Tensor, M: int) -> torch.Tensor:
    if isinstance(lr, torch.Tensor):
        require_finite(lr, "lr")
    elif isinstance(lr, (list, tuple)):
        for v in lr:
            require_positive(v, "lr")
    elif type(lr).__module__ != "numpy":
        require_positive(lr, "lr")
    if isinstance(lr, torch.Tensor) and (lr.is_complex() or lr.dtype == torch.bool):
        raise TypeError(f"lr must be real; got dtype {lr.dtype}")
    lr_t = torch.as_tensor(lr, dtype=torch.float64).flatten()
    if lr_t.numel() == 1:
        lr_t = lr_t.expand(M).clone()
    if lr_t.numel() != M:
        raise ValueError(f"lr must be one number or one per model (M={M}); got {lr_t.numel()} values")
    if not bool((lr_t > 0).all()):
        raise ValueError(f"lr (learning rates) must be positive and finite; got {lr_t.tolist()}")
    return lr_t


def _check_params_lr(params: Sequence[torch.nn.Parameter], lr: torch.Tensor) -> None:
    """``params`` must be a sequence of tensors and ``lr`` a positive ``(M,)`` tensor, ``M`` their first dimension."""
    if isinstance(params, torch.Tensor) or not isinstance(params, (list, tuple)) or not params:
        raise TypeError(f"params must be a non-empty list of parameters; got {type(params).__name__}")
    for i, p in enumerate(params):
        require_floating(p, f"params[{i}]")
    require_positive_tensor(lr, "lr")
    if lr.dim() != 1 or any(p.dim() == 0 or p.shape[0] != lr.shape[0] for p in params):
        raise ValueError(f"lr must have shape (M,), one rate per model, M the first dimension of every parameter; "
                         f"got lr {tuple(lr.shape)} and parameters {[tuple(p.shape) for p in params]}")


def _per_model_lr(lr: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The ``(M,)`` learning rates as ``(M, 1, ..., 1)`` tensors in each parameter's real dtype and device (made once,
    not at every step)."""
    return [lr.to(device=p.device, dtype=p.real.dtype).view(-1, *([1] * (p.dim() - 1))) for p in params]


def _square_modulus(g: torch.Tensor) -> torch.Tensor:
    r""":math:`|g|^2` elementwise, real (without the square root of ``abs`` for complex ``g``)."""
    if g.is_complex():
        r = torch.view_as_real(g)
        return r.square().sum(-1)
    return g.square()


class BatchedSGD:
    r"""Gradient descent with a per-model step: :math:`\theta_m \leftarrow \theta_m - \eta_m (g_m + \beta b_m)` (heavy ball).

    The per-model steps are broadcast once at construction; each step is a handful of fused in-place
    (``torch._foreach_*``) operations over all parameters."""

    def __init__(self, params: Sequence[torch.nn.Parameter], lr: torch.Tensor, momentum: float = 0.0):
        _check_params_lr(params, lr)
        require_in_range(momentum, "momentum", 0.0, 1.0 - 1e-12, closed=True)
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.buf = [torch.zeros_like(p) for p in self.params] if momentum else []
        self._lr = _per_model_lr(lr, self.params)

    @torch.no_grad()
    def step(self) -> None:
        live = [k for k, p in enumerate(self.params) if p.grad is not None]
        params = [self.params[k] for k in live]
        grads = [self.params[k].grad for k in live]
        if self.momentum:
            bufs = [self.buf[k] for k in live]
            torch._foreach_mul_(bufs, self.momentum)
            torch._foreach_add_(bufs, grads)
            grads = bufs
        torch._foreach_sub_(params, torch._foreach_mul(grads, [self._lr[k] for k in live]))


class BatchedAdam:
    r"""Adam (Kingma & Ba) with a per-model learning rate; otherwise the same update as ``torch.optim.Adam``:

    .. math:: m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2)|g|^2,\quad
              \theta_m \leftarrow \theta_m - \frac{\eta_m}{1-\beta_1^t}\,\frac{m}{\sqrt{v/(1-\beta_2^t)} + \epsilon}.

    The per-model learning rates are broadcast once at construction, in each parameter's dtype; a step is about ten
    fused in-place (``torch._foreach_*``) operations over all parameters, whatever their number."""

    def __init__(self, params: Sequence[torch.nn.Parameter], lr: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        _check_params_lr(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2); got {betas!r}")
        for b, name in zip(betas, ("betas[0]", "betas[1]")):
            require_in_range(b, name, 0.0, 1.0 - 1e-12, closed=True)
        require_positive(eps, "eps")
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p.real) for p in self.params]
        self._lr = _per_model_lr(lr, self.params)
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        live = [k for k, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[k] for k in live]
        grads = [self.params[k].grad for k in live]
        m, v = [self.m[k] for k in live], [self.v[k] for k in live]
        torch._foreach_lerp_(m, grads, 1 - b1)                              # m = b1 m + (1 - b1) g
        torch._foreach_mul_(v, b2)
        torch._foreach_add_(v, [_square_modulus(g) for g in grads], alpha=1 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, c2**0.5)                                  # sqrt(v / c2)
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_div(m, denom)
        torch._foreach_mul_(update, [self._lr[k] for k in live])
        torch._foreach_add_(params, update, alpha=-1 / c1)


def retain_cpu_memory() -> bool:
    """Let the C allocator keep freed CPU memory for the next step (Linux/glibc only); returns whether it applied.

    PyTorch's CPU tensors come from ``malloc``. glibc serves blocks above 32 MiB with fresh ``mmap`` pages and
    returns them on free, so every training step whose activations pass that size pays a page fault per 4 KiB
    page (system time of the same order as the arithmetic for the batched models of chapters 5 and 6). This turns
    ``mmap`` off for ``malloc`` (``M_MMAP_MAX = 0``), keeps freed memory in the heap (``M_TRIM_THRESHOLD``) and
    grows it 256 MiB at a time (``M_TOP_PAD``): the process keeps its peak memory, and later steps
    reuse it. Process-wide and not undone; it changes no result, and GPU memory (PyTorch's caching allocator) is
    not affected. Elsewhere (macOS, Windows, musl) it does nothing and returns ``False``.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
    return bool(mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
                and mallopt(M_TOP_PAD, 256 * 2**20))


@dataclass
class TrainResult:
    """Loss history ``losses`` ``(steps, M)`` (on the CPU) and the trained model."""

    losses: torch.Tensor
    model: BatchedModel

    @property
    def final(self) -> torch.Tensor:
        """Last recorded loss of each model, ``(M,)``."""
        return self.losses[-1]


def fixed_batch(inputs: torch.Tensor, targets: torch.Tensor) -> BatchFn:
    """A batch function that always returns the same data (full-batch gradient descent on a fixed set)."""
    require_finite(inputs, "inputs")
    require_finite(targets, "targets")
    return lambda step, gen: (inputs, targets)


def train(model: BatchedModel, batch_fn: BatchFn, *, steps: int, lr: float | Sequence[float] | torch.Tensor,
          optimizer: str = "adam", momentum: float = 0.0, loss_fn: LossFn = per_model_mse, seed: int = 0,
          progress: bool | None = None, desc: str = "training") -> TrainResult:
    """Train the ``M`` models of ``model`` together for ``steps`` steps.

    ``batch_fn(step, generator)`` returns ``(inputs, targets)`` (shared ``(B, ...)`` or per model ``(M, B, ...)``);
    ``generator`` is a CPU generator seeded with ``seed``, so fresh batches are reproducible. ``loss_fn(pred, target)``
    returns the ``(M,)`` per-model losses. ``optimizer`` is ``"adam"`` or ``"sgd"`` (plain or heavy-ball GD).

    The loss history is one ``(steps, M)`` tensor written in place: a small tensor kept per step would sit between
    the step's large freed temporaries in glibc's heap and keep it from reusing them (chapter 5's paper run grew by
    ~3 MB per step that way; ``tests/test_memory.py``).
    """
    if not isinstance(model, BatchedModel):
        raise TypeError(f"model must be an icar.models.BatchedModel (parameters with a leading model dimension); got {type(model).__name__}")
    require_positive_int(steps, "steps")
    require_callable(batch_fn, "batch_fn")
    require_callable(loss_fn, "loss_fn")
    require_choice(optimizer, "optimizer", ("adam", "sgd"))
    require_in_range(momentum, "momentum", 0.0, 1.0 - 1e-12, closed=True)
    model.check_batched()
    M = model.n_models
    lr_t = _lr_tensor(lr, M)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt: BatchedAdam | BatchedSGD = BatchedAdam(params, lr_t)
    elif optimizer == "sgd":
        opt = BatchedSGD(params, lr_t, momentum=momentum)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
    gen = make_generator(seed)
    show = progress_enabled() if progress is None else progress
    history: torch.Tensor | None = None   # (steps, M), allocated at the first step
    bar = tqdm(range(steps), desc=desc, disable=not show, leave=False)
    for step in bar:
        inputs, targets = batch_fn(step, gen)
        per_model = loss_fn(model(inputs), targets)
        if per_model.shape != (M,):
            raise ValueError(f"loss_fn must return one loss per model, shape ({M},); got {tuple(per_model.shape)}")
        for p in params:
            p.grad = None
        per_model.sum().backward()
        opt.step()
        if history is None:
            history = per_model.new_empty(steps, M)
        history[step] = per_model.detach()
        if show and (step % max(1, steps // 20) == 0 or step == steps - 1):
            bar.set_postfix(loss=f"{per_model.detach().min().item():.3g}..{per_model.detach().max().item():.3g}")
    bar.close()
    return TrainResult(history.cpu(), model)
