"""Fast mirrors of the claims of Chapter 6 (causal kernel descent, Kaczmarz), plus the error messages."""
import math

import pytest
import torch

from icar import kernels as K
from icar.estimators import gd_estimates, predictions
from icar.exercises import ch06
from icar.kernel_transformer import KernelDescentTransformer


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tensors here are tiny: one thread avoids contention on a shared CPU (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def linear20():
    return K.sample_linear(16, 5, 20, seed=1)


def test_finite_depth_is_exact_with_unit_step(linear20):
    X, _, _ = linear20
    res = K.ckd(X, 19, eta=1.0)
    assert (res.u - K.kaczmarz(X).u).abs().max() < 1e-9
    # one layer fewer is not exact at the last position
    short = K.ckd(X, 18, eta=1.0)
    assert (short.u[:, -1] - K.kaczmarz(X).u[:, -1]).abs().max() > 1e-6


def test_depth_limit_is_kaczmarz_for_any_admissible_step(linear20):
    X, _, _ = linear20
    X = X[:, :12]
    kz = K.kaczmarz(X).u
    for eta in (0.3, 1.5):
        assert (K.ckd(X, 600, eta=eta).u - kz).abs().max() < 1e-8
    assert (K.ckd_limit(X) - kz).abs().max() < 1e-12


def test_single_layer_is_one_gradient_step(linear20):
    X, _, _ = linear20
    u = K.ckd(X, 1, eta=0.7).u
    # GD from 0 with the pairs s <= t: gd_estimates(t) holds pairs i < t, i.e. position t's own pairs
    ref = predictions(gd_estimates(X, 0.7), X)
    assert (u - ref).abs().max() < 1e-12


def test_linear_closed_form_and_rate():
    X, W, x1 = K.sample_linear(8, 4, 60, seed=3)
    err = K.prediction_errors(K.kaczmarz(X).u, X)
    assert (err - K.linear_closed_form_errors(W, x1, 60)).abs().max() < 1e-12
    # the rate: fit on the closed form (exact powers, no rounding floor)
    closed = K.linear_closed_form_errors(W, x1, 400)
    rho = K.spectral_radius(W, x1)
    assert bool((rho < 1).all())
    t = torch.arange(1, 400)
    slope = K.log_slope(t[199:], closed[:, 199:])
    fast = rho.log().abs() * 200 > 5
    assert fast.any()
    assert ((slope[fast] - rho.log()[fast]).abs() / rho.log()[fast].abs()).max() < 0.05


def test_periodic_exponential_converges_linear_fails():
    X, Z = K.sample_periodic(8, 8, 12, 241, seed=5)
    e_exp = K.prediction_errors(K.kaczmarz(X, kernel="exp", beta=3.0).u, X)
    e_lin = K.prediction_errors(K.kaczmarz(X, kernel="linear").u, X)
    assert e_exp[:, -12:].mean(1).median() < 1e-6
    assert e_lin[:, -12:].mean(1).min() > 0.1


def test_softmax_error_decays_like_one_over_t():
    p = 12
    X, _ = K.sample_periodic(4, 8, p, 40 * p + 1, seed=7)
    err = K.prediction_errors(K.ckd_limit(X, kernel="softmax", beta=3.0), X)
    per = err[:, 5 * p:].reshape(4, -1, p).mean(-1)
    slope = K.loglog_slope(torch.arange(6, 41) * float(p), per)
    assert bool(((slope + 1).abs() < 0.15).all())


def test_energy_identity_linear_and_periodic():
    X, W, _ = K.sample_linear(6, 4, 150, seed=4)
    c, a = K.linear_map_as_kernel_expansion(W)
    eb = K.energy_balance(X, c, a)
    assert (eb.weighted_sum + eb.remainder - eb.norm2).abs().max() < 1e-9
    assert (eb.norm2 - 4).abs().max() < 1e-12
    assert bool((eb.weighted_sum <= eb.norm2 + 1e-9).all())
    Xp, Z = K.sample_periodic(4, 4, 6, 80, seed=6)
    c, a = K.min_norm_periodic_map(Z, "exp", 1.0)
    eb = K.energy_balance(Xp, c, a, kernel="exp", beta=1.0)
    assert ((eb.weighted_sum + eb.remainder - eb.norm2).abs() / eb.norm2).max() < 1e-9


def test_transformer_equals_algorithm():
    X, _, _ = K.sample_linear(4, 3, 10, seed=8)
    for att, beta, eta in (("linear", 1.0, 0.5), ("exp", 1.0, 0.5 / math.e), ("softmax", 2.0, 1.0)):
        etas = torch.tensor([eta, eta / 2], dtype=torch.float64)
        model = KernelDescentTransformer(2, 3, 10, 6, attention=att, eta=etas, beta=beta)
        out = model(X)
        ref = torch.stack([K.ckd(X, 6, kernel=att, beta=beta, eta=float(e)).u for e in etas])
        assert (out - ref).abs().max() < 1e-10, att


def test_transformer_first_layer_copies_previous_token():
    X, _, _ = K.sample_linear(2, 3, 10, seed=9)
    model = KernelDescentTransformer(1, 3, 12, 1, copy_scale=30.0)
    e = model.first_layer(model.per_model(X, 3))
    prev = e[0, :, 1:, 3:6]
    assert (prev - K.previous_tokens(X)).abs().max() <= 2 * 10 * math.exp(-30)


def test_float32_blows_up_at_unit_step():
    X, _, _ = K.sample_linear(16, 5, 30, seed=1)
    exact = K.kaczmarz(X).u
    r64 = K.ckd(X, 29, eta=1.0)
    r32 = K.ckd(X.float(), 29, eta=1.0)
    assert r64.peak.max() > 1e5
    assert (r32.u.double() - exact).abs().max() > 1e-2


def test_trained_model_shapes_and_gradients():
    model = KernelDescentTransformer(2, 3, 8, 2, init="random", seed=0)
    X, _, _ = K.sample_linear(4, 3, 8, seed=0)
    out = model(X)
    assert out.shape == (2, 4, 8, 3)
    assert bool((out == 0).all())  # zero values at init
    (out[:, :, :-1] - X[:, 1:]).pow(2).sum().backward()
    assert model.Wv.grad is not None and model.Wv.grad.abs().sum() > 0


def test_errors():
    X, W, x1 = K.sample_linear(2, 3, 6, seed=0)
    with pytest.raises(ValueError, match=r"shape \(B, T, d\)"):
        K.ckd(X[0], 2)
    with pytest.raises(TypeError, match="real floating point"):
        K.ckd(X.to(torch.complex128), 2)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        K.kaczmarz(X[:, :1])
    with pytest.raises(ValueError, match="kernel must be one of"):
        K.ckd(X, 2, kernel="gauss")
    with pytest.raises(ValueError, match=r"kernel must be one of \('linear', 'exp'\)"):
        K.kaczmarz(X, kernel="softmax")
    with pytest.raises(ValueError, match="eta .* must be positive"):
        K.ckd(X, 2, eta=-1.0)
    with pytest.raises(ValueError, match="already normalised"):
        K.ckd(X, 2, kernel="softmax", normalization="mean")
    with pytest.raises(ValueError, match="beta"):
        K.kernel_matrix(X, X, "exp", beta=0.0)
    with pytest.raises(ValueError, match="must be orthogonal"):
        K.linear_closed_form_errors(W + 0.1, x1, 5)
    with pytest.raises(ValueError, match="unit norm"):
        K.spectral_radius(W, 2 * x1)
    with pytest.raises(ValueError, match="positive integer"):
        K.ckd(X, 0)
    with pytest.raises(ValueError, match="attention must be one of"):
        KernelDescentTransformer(1, 3, 6, 1, attention="relu")
    with pytest.raises(ValueError, match="max_len=4"):
        KernelDescentTransformer(1, 3, 4, 1)(X)
    with pytest.raises(ValueError, match="last dimension d=4"):
        KernelDescentTransformer(1, 4, 6, 1)(X)
    with pytest.raises(ValueError, match="eta .* must be positive"):
        KernelDescentTransformer(1, 3, 6, 1, eta=-0.5)
    with pytest.raises(ValueError, match="beta"):
        KernelDescentTransformer(1, 3, 6, 1, beta=0.0)
    with pytest.raises(ValueError, match="one per model"):
        KernelDescentTransformer(2, 3, 6, 1, eta=torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    c, a = K.linear_map_as_kernel_expansion(W)
    with pytest.raises(ValueError, match=r"f_coefs must have shape \(B, m, d\)"):
        K.energy_balance(X, c, a[:, :, :2])


def _kaczmarz_loop(states):
    B, T, d = states.shape
    A = torch.zeros(B, d, d, dtype=states.dtype)
    out = torch.zeros_like(states)
    for t in range(1, T):
        xp, x = states[:, t - 1], states[:, t]
        r = x - torch.einsum("bij,bj->bi", A, xp)
        A = A + r[:, :, None] * xp[:, None, :] / (xp * xp).sum(-1)[:, None, None]
        out[:, t] = torch.einsum("bij,bj->bi", A, x)
    return out


def test_checker_accepts_right_answer(capsys):
    ch06.check_kaczmarz_linear(_kaczmarz_loop)
    assert "passed" in capsys.readouterr().out


def test_checker_explains_wrong_answers():
    def leak(states):
        return torch.cat([states[:, 1:], states[:, -1:]], 1)

    with pytest.raises(AssertionError, match="cannot see"):
        ch06.check_kaczmarz_linear(leak)

    def no_normalisation(states):
        B, T, d = states.shape
        A = torch.zeros(B, d, d, dtype=states.dtype)
        out = torch.zeros_like(states)
        for t in range(1, T):
            xp, x = states[:, t - 1], states[:, t]
            A = A + 0.5 * (x - torch.einsum("bij,bj->bi", A, xp))[:, :, None] * xp[:, None, :]
            out[:, t] = torch.einsum("bij,bj->bi", A, x)
        return out

    with pytest.raises(AssertionError, match="divide by"):
        ch06.check_kaczmarz_linear(no_normalisation)
    with pytest.raises(AssertionError, match="shape"):
        ch06.check_kaczmarz_linear(lambda s: s[:, :-1])


def test_trained_transformer_matches_construction():
    from icar.train import per_model_mse, train

    d, T, n = 3, 10, 2
    X_test, _, _ = K.sample_linear(256, d, T, seed=99)

    def err(model):
        with torch.no_grad():
            return per_model_mse(model(X_test)[:, :, :-1], X_test[:, 1:]) * d

    etas = torch.linspace(0.05, 1.0, 12, dtype=torch.float64)
    best = err(KernelDescentTransformer(12, d, T, n, eta=etas)).min()

    def batch_fn(step, gen):
        X, _, _ = K.sample_linear(32, d, T, seed=gen)
        return X, X[:, 1:]

    model = KernelDescentTransformer(2, d, T, n, init="random", init_scale=0.1, seed=0)
    train(model, batch_fn, steps=150, lr=3e-3, loss_fn=lambda p, t: per_model_mse(p[:, :, :-1], t), progress=False)
    assert err(model).median() / best < 1.25


def test_noncausal_interpolation_exact_and_price_of_causality():
    X, _, _ = K.sample_linear(8, 4, 20, seed=2)
    err_ols = K.prediction_errors(K.interpolation_predictions(X), X)
    err_kz = K.prediction_errors(K.kaczmarz(X).u, X)
    assert err_ols[:, 4:].max() < 1e-9
    assert err_kz[:, 4].median() > 1e-2


def test_median_rho_grows_with_d():
    meds = [K.spectral_radius(*K.sample_linear(400, d, 2, seed=100 + d)[1:]).median() for d in (2, 5, 10)]
    assert meds[0] < meds[1] < meds[2] < 1


def test_depth_40_reaches_kaczmarz():
    X, _, _ = K.sample_linear(16, 5, 30, seed=7)
    u = K.ckd(X, 40, eta=0.25).u
    e_n = K.prediction_errors(u, X)[:, 9:29].pow(2).mean()
    e_kz = K.prediction_errors(K.kaczmarz(X).u, X)[:, 9:29].pow(2).mean()
    assert (e_n / e_kz - 1).abs() < 0.01
    path = K.ckd(X, 5, eta=0.25, keep_path=True).path
    assert path.shape == (5, 16, 30, 5)
    assert (path[-1] - K.ckd(X, 5, eta=0.25).u).abs().max() == 0


def test_flow_is_the_continuous_depth_limit():
    X, _, _ = K.sample_linear(4, 5, 20, seed=10)
    flow = K.ckd_flow(X, 8.0)
    e1 = (K.ckd(X, 500, eta=8.0 / 500).u - flow).abs().max()
    e2 = (K.ckd(X, 1000, eta=8.0 / 1000).u - flow).abs().max()
    assert abs(e1 / e2 - 2) < 0.1
    assert (K.ckd_flow(X, 200.0) - K.kaczmarz(X).u).abs().max() < 1e-9
    with pytest.raises(ValueError, match="tau"):
        K.ckd_flow(X, 0.0)


def test_nonlinear_map_is_learned_by_exponential_kernel():
    X = K.sample_nonlinear(8, 4, 300, eps=1.0, seed=9)
    assert (torch.linalg.vector_norm(X, dim=-1) - 1).abs().max() < 1e-12
    err = K.prediction_errors(K.kaczmarz(X, kernel="exp", beta=5.0).u, X)
    t = torch.arange(1, 300)
    assert K.loglog_slope(t[49:], err[:, 49:].mean(0)) < -0.5


def test_sample_periodic_is_periodic():
    X, Z = K.sample_periodic(3, 4, 5, 23, seed=0)
    assert (X[:, 5:] - X[:, :-5]).abs().max() == 0
    assert (X[:, :5] - Z).abs().max() == 0
    with pytest.raises(ValueError, match="period p must be at least 2"):
        K.sample_periodic(3, 4, 1, 10, seed=0)


@pytest.mark.parametrize("kind", ["linear", "exp", "softmax"])
def test_attend_shared_input_form_equals_head_by_head_attention(kind):
    """The heads-share-one-product form of a layer equals q, k, v per head, causal weights, summed head outputs."""
    model = KernelDescentTransformer(2, 3, 6, 1, init="random", init_scale=0.3, seed=1)
    g = torch.Generator().manual_seed(2)
    e = 0.5 * torch.randn(2, 4, 5, model.C, generator=g, dtype=torch.float64)
    Wv = 0.3 * torch.randn(model.Wv.shape, generator=g, dtype=torch.float64)
    q, k, v = (torch.einsum("mhoc,mbnc->mhbno", W, e) for W in (model.Wq, model.Wk, Wv))
    s = q @ k.mT
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    a = {"linear": lambda: s.masked_fill(~causal, 0.0), "exp": lambda: s.masked_fill(~causal, float("-inf")).exp(),
         "softmax": lambda: s.masked_fill(~causal, float("-inf")).softmax(-1)}[kind]()
    with torch.no_grad():
        assert (model._attend(e, model.Wq, model.Wk, Wv, kind) - (a @ v).sum(1)).abs().max() < 1e-12
