"""icar.models and icar.train: batching is exact (model m only sees its own slice), determinism, optimizers."""
import pytest
import torch

from icar import data as D
from icar import models, train as tr


def _batch(d=4, T=6, B=64):
    def fn(step, gen):
        states, _ = D.sample_ar("commuting", B, d, T, seed=gen)
        return states, states[:, 1:]
    return fn


def test_batched_training_equals_separate_runs():
    # Three models trained together = the same three trained one by one (same init, same data, same steps).
    lrs = [1e-3, 1e-2, 5e-2]
    together = models.FixedLinear(3, 4, seed=7)
    init = together.A.detach().clone()
    res = tr.train(together, _batch(), steps=25, lr=lrs, seed=1, progress=False)
    for m, lr in enumerate(lrs):
        single = models.FixedLinear(1, 4, seed=0)
        with torch.no_grad():
            single.A.copy_(init[m : m + 1])
        r1 = tr.train(single, _batch(), steps=25, lr=lr, seed=1, progress=False)
        assert torch.allclose(single.A[0], together.A[m], atol=1e-12)
        assert torch.allclose(r1.losses[:, 0], res.losses[:, m], atol=1e-12)


def test_batched_adam_matches_torch_adam():
    model = models.FixedLinear(1, 4, seed=3)
    ref = torch.nn.Parameter(model.A.detach().clone())
    opt = torch.optim.Adam([ref], lr=0.01)
    batch = _batch()
    tr.train(model, batch, steps=10, lr=0.01, seed=4, progress=False)
    gen = torch.Generator().manual_seed(4)
    for step in range(10):
        x, y = batch(step, gen)
        loss = tr.per_model_mse(torch.einsum("mij,btj->mbti", ref, x[:, :-1]), y).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(ref, model.A, atol=1e-10)


def test_training_is_deterministic():
    a = tr.train(models.FixedLinear(2, 4, seed=0), _batch(), steps=15, lr=0.01, seed=5, progress=False)
    b = tr.train(models.FixedLinear(2, 4, seed=0), _batch(), steps=15, lr=0.01, seed=5, progress=False)
    assert torch.equal(a.losses, b.losses)


def test_context_free_predictor_cannot_beat_zero():
    # E[W] = 0 for uniform rotation angles: the best fixed linear predictor is 0, with loss E||s||^2 / d per coordinate.
    model = models.FixedLinear(4, 4, seed=0)
    res = tr.train(model, _batch(d=4, B=256), steps=400, lr=[3e-3, 1e-2, 3e-2, 1e-1], seed=0, progress=False)
    assert (torch.linalg.matrix_norm(model.A.detach()) < 0.15).all()
    assert (res.losses[-50:].mean(0) > 0.25 * 0.97).all()


def test_sgd_full_batch_decreases_loss_and_momentum_runs():
    states, _ = D.sample_ar("haar", 32, 3, 5, seed=0, init="gaussian")
    for momentum in (0.0, 0.9):
        model = models.FixedLinear(2, 3, seed=1)
        res = tr.train(model, tr.fixed_batch(states, states[:, 1:]), steps=50, lr=[0.05, 0.1], optimizer="sgd",
                       momentum=momentum, progress=False)
        assert (res.losses[-1] < res.losses[0]).all()


def test_linear_attention_is_causal_and_normalised():
    model = models.LinearAttention(2, 4, seed=0)
    x = torch.randn(3, 6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = model(x)
    x2 = x.clone()
    x2[:, 4:] += 1.0  # change the future
    assert torch.allclose(model(x2)[:, :, :4], y[:, :, :4], atol=1e-12)
    # direct formula for one entry
    m, b, t = 1, 2, 3
    q = model.W_Q[m] @ x[b, t]
    direct = sum(model.W_V[m] @ x[b, j] * (model.W_K[m] @ x[b, j]).dot(q) for j in range(t + 1)) / (t + 1)
    assert torch.allclose(y[m, b, t], direct, atol=1e-12)


def test_per_model_inputs_and_errors():
    model = models.FixedLinear(2, 3, seed=0)
    x = torch.zeros(2, 5, 4, 3, dtype=torch.float64)
    assert model(x).shape == (2, 5, 3, 3)
    with pytest.raises(ValueError, match=r"shared, with 3 dimensions, or per model"):
        model(torch.zeros(3, 5, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="last dimension d=3"):
        model(torch.zeros(5, 4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="one number or one per model"):
        tr.train(model, _batch(), steps=2, lr=[0.1, 0.2, 0.3], progress=False)
    with pytest.raises(ValueError, match="optimizer must be"):
        tr.train(model, _batch(), steps=2, lr=0.1, optimizer="lbfgs", progress=False)
    with pytest.raises(TypeError, match="BatchedModel"):
        tr.train(torch.nn.Linear(2, 2), _batch(), steps=2, lr=0.1, progress=False)
    with pytest.raises(ValueError, match="positive integer"):
        models.FixedLinear(0, 3)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_batched_sgd_matches_torch_sgd_with_momentum(momentum):
    # Heavy ball b <- momentum * b + g, theta <- theta - lr * b: the update of torch.optim.SGD (dampening 0).
    # Dropping the momentum, or applying it to the step instead of the buffer, changes the trajectory.
    states, _ = D.sample_ar("haar", 16, 3, 5, seed=2, init="gaussian")
    model = models.FixedLinear(1, 3, seed=4)
    ref = torch.nn.Parameter(model.A.detach().clone())
    opt = torch.optim.SGD([ref], lr=0.05, momentum=momentum)
    tr.train(model, tr.fixed_batch(states, states[:, 1:]), steps=12, lr=0.05, optimizer="sgd", momentum=momentum,
             progress=False)
    for _ in range(12):
        loss = tr.per_model_mse(torch.einsum("mij,btj->mbti", ref, states[:, :-1]), states[:, 1:]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(ref, model.A, atol=1e-12)


def test_sgd_momentum_changes_the_path_and_lr_is_per_model():
    states, _ = D.sample_ar("haar", 16, 3, 5, seed=2, init="gaussian")
    batch = tr.fixed_batch(states, states[:, 1:])
    plain = tr.train(models.FixedLinear(2, 3, seed=4), batch, steps=10, lr=[0.02, 0.05], optimizer="sgd", progress=False)
    heavy = tr.train(models.FixedLinear(2, 3, seed=4), batch, steps=10, lr=[0.02, 0.05], optimizer="sgd",
                     momentum=0.9, progress=False)
    assert (heavy.losses[-1] < plain.losses[-1]).all()          # momentum accelerates this convex problem
    # model m uses lr[m]: the second (larger) step size descends faster without momentum
    assert plain.losses[-1, 1] < plain.losses[-1, 0]
