"""Fast mirrors of chapter 5's claims (beyond commuting matrices), and the error messages of icar.noncommuting."""
import math

import pytest
import torch

import icar.noncommuting as nc
from icar.data import block_rotation
from icar.exercises import ch05
from icar.train import fixed_batch, per_model_mse, train


# ------------------------------------------------------------------------------------------------ data
def test_haar_sequences_fixed_and_random_start():
    fixed = nc.haar_sequences(64, 5, 8, seed=0, start="fixed")
    assert torch.allclose(fixed.states[:, 0], torch.full((64, 5), 1 / math.sqrt(5), dtype=torch.float64))
    norms = fixed.states.norm(dim=-1)
    assert (norms - 1).abs().max() < 1e-12  # orthogonal W keeps the norm
    rnd = nc.haar_sequences(64, 5, 8, seed=0, start="random")
    assert rnd.states[:, 0].std(0).min() > 0.1  # the start varies from sequence to sequence
    assert torch.allclose(rnd.states[:, 1], torch.einsum("nij,nj->ni", rnd.W, rnd.states[:, 0]))


def test_augment_slots():
    s = torch.randn(2, 4, 3, dtype=torch.float64)
    e = nc.augment(s)
    assert e.shape == (2, 4, 9)
    assert (e[..., :3] == 0).all() and torch.equal(e[..., 3:6], s)
    assert (e[:, 0, 6:] == 0).all() and torch.equal(e[:, 1:, 6:], s[:, :-1])


# ------------------------------------------------------------------------------------------------ trigonometric identity
def test_trig_identity_exact_for_rotations_not_for_haar():
    theta = torch.rand(50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 * math.pi
    W = block_rotation(theta)
    s1 = torch.randn(50, 2, dtype=torch.float64)
    from icar.data import rollout
    states = rollout(W, s1, 12)
    assert (nc.trig_prediction(states) - states[:, 2:]).abs().max() < 1e-12
    haar = nc.haar_sequences(200, 5, 12, seed=1, start="random").states
    rel = (nc.trig_prediction(haar) - haar[:, 2:]).pow(2).sum(-1).mean()
    assert rel > 0.1  # a non-commuting W is not a two-term recursion with a scalar coefficient


# ------------------------------------------------------------------------------------------------ one GD step
def test_gd_features_match_explicit_sum():
    s = torch.randn(3, 6, 4, dtype=torch.float64)
    f = nc.gd_features(s)
    for t in range(1, 6):  # 1-based query index t: f_t = sum_{j=2}^t s_j s_{j-1}^T s_t
        C = sum((torch.outer(s[0, j - 1], s[0, j - 2]) for j in range(2, t + 1)), torch.zeros(4, 4, dtype=torch.float64))
        assert torch.allclose(f[0, t - 1], C @ s[0, t - 1], atol=1e-12)


def test_linear_attention_with_gd_weights_is_one_gd_step():
    d, eta = 3, 0.37
    states = nc.haar_sequences(16, d, 9, seed=2, start="random").states
    X, _ = nc.split_inputs_targets(states, True)
    m = nc.AugmentedAttention(1, d, paper=False, init_scale=0.0)
    with torch.no_grad():
        eye = torch.eye(d, dtype=torch.float64)
        m.W_Q[0, :d, d:2 * d] = eye  # query reads s_t
        m.W_K[0, :d, 2 * d:] = eye  # key reads s_{j-1}
        m.W_V[0, :d, d:2 * d] = eta * math.sqrt(3 * d) * eye  # value writes s_j into the answer slot
    pred = m(X)[0]
    assert (pred - eta * nc.gd_features(states)).abs().max() < 1e-12


def test_zero_baseline_is_one_over_d():
    tr = nc.haar_sequences(256, 5, 11, seed=3).states
    te = nc.haar_sequences(128, 5, 11, seed=4).states
    b = nc.one_step_gd_baselines(tr, te)
    assert abs(b.zero - 1 / 5) < 1e-12  # unit-norm states: mean square coordinate is exactly 1/d
    assert b.gd_normalized < b.gd_per_position < b.gd_shared < b.zero


# ------------------------------------------------------------------------------------------------ models
@pytest.mark.parametrize("kind", ["linear", "softmax"])
def test_augmented_attention_is_causal(kind):
    d = 2
    s = nc.haar_sequences(4, d, 7, seed=5).states
    X, _ = nc.split_inputs_targets(s, True)
    m = nc.AugmentedAttention(2, d, attention=kind, paper=True, seed=1)
    X2 = X.clone()
    X2[:, -1] += 1.0
    with torch.no_grad():
        assert torch.allclose(m(X)[:, :, :-1], m(X2)[:, :, :-1], atol=1e-12)
        if kind == "softmax":
            assert torch.allclose(m.scores(X).sum(-1), torch.ones(2, 4, 6, dtype=torch.float64))


def test_mixed_attention_batch_equals_separate_models():
    d = 2
    X, _ = nc.split_inputs_targets(nc.haar_sequences(4, d, 6, seed=6).states, True)
    mixed = nc.AugmentedAttention(2, d, attention=["linear", "softmax"], paper=False, seed=3)
    soft = nc.AugmentedAttention(2, d, attention="softmax", paper=False, seed=3)
    with torch.no_grad():
        assert torch.allclose(mixed(X)[1], soft(X)[1], atol=1e-12)


def test_positional_token_attention_shapes_and_causality():
    m = nc.PositionalTokenAttention(3, 2, heads=2, max_len=8, seed=0)
    s = nc.haar_sequences(5, 2, 6, seed=7).states
    A = m.positional_attention(6)
    assert A.shape == (3, 2, 6, 6)
    assert torch.allclose(A.sum(-1), torch.ones(3, 2, 6, dtype=torch.float64))
    assert (A.triu(1) == 0).all()
    s2 = s.clone()
    s2[:, -1] += 1.0
    with torch.no_grad():
        assert torch.allclose(m(s)[:, :, :-1], m(s2)[:, :, :-1], atol=1e-12)


def test_fixed_start_leak_draws_attention_to_second_token():
    """Mirror of ch05.leak-mass: with a fixed s_1 the positional attention piles up on s_2 = W s_1."""
    torch.manual_seed(0)
    d, T, n, B = 3, 10, 512, 64
    starts = ["fixed", "random"]
    seqs = [nc.split_inputs_targets(nc.haar_sequences(n, d, T + 1, seed=10, start=st, dtype=torch.float32).states,
                                    False) for st in starts]
    X = torch.stack([x for x, _ in seqs])
    Y = torch.stack([y for _, y in seqs])
    m = nc.PositionalTokenAttention(2, d, heads=2, max_len=T, seed=0, dtype=torch.float32)
    train(m, lambda step, g: (lambda i: (X[:, i], Y[:, i]))(torch.randint(n, (B,), generator=g)),
          steps=150, lr=1e-2, progress=False)
    with torch.no_grad():
        mass = nc.position_mass(m.positional_attention(T).mean(1), 1, 4)
    assert mass[0] > 2 * mass[1]


def test_augmented_training_beats_one_step_gd_and_random_start_restores_symmetry():
    """Mirror of ch05.aug-*: at a tiny size, the trained layer beats one GD step, behaves like a normalised GD step, and
    its (key s_{j-1}, query s_t) block is closer to c I with a random start than with a fixed one."""
    d, T, n = 3, 10, 1024
    data = {st: [nc.haar_sequences(m, d, T + 1, seed=s, start=st, dtype=torch.float32).states
                 for m, s in ((n, 11), (512, 12))] for st in ("fixed", "random")}
    X = torch.stack([nc.split_inputs_targets(data[st][0], True)[0] for st in data])
    Y = torch.stack([nc.split_inputs_targets(data[st][0], True)[1] for st in data])
    m = nc.AugmentedAttention(2, d, paper=True, seed=0, dtype=torch.float32)
    train(m, nc.minibatches(X, Y, 128), steps=300, lr=3e-2, progress=False)
    for k, st in enumerate(data):
        Xt, Yt = nc.split_inputs_targets(data[st][1], True)
        with torch.no_grad():
            mse = per_model_mse(m(Xt), Yt)[k].item()
        base = nc.one_step_gd_baselines(data[st][0].double(), data[st][1].double())
        assert mse < base.gd_per_position
        assert abs(mse - base.gd_normalized) < 0.25 * base.gd_normalized  # it behaves like a normalised GD step
    _, dist = nc.relative_distance_to_scalar(m.key_query().double()[:, 2 * d:, d:2 * d])
    assert dist[1] < dist[0]


def test_kq_blocks_and_scalar_distance():
    d = 2
    Q = torch.zeros(1, 6, 6, dtype=torch.float64)
    Q[0, 4:, 2:4] = 3 * torch.eye(2, dtype=torch.float64)
    B = nc.kq_blocks(Q, d)
    assert B[0, 2, 1] == pytest.approx(3 * math.sqrt(2)) and B.sum() == pytest.approx(3 * math.sqrt(2))
    c, dist = nc.relative_distance_to_scalar(Q[:, 4:, 2:4])
    assert c.item() == pytest.approx(3.0) and dist.item() < 1e-15


# ------------------------------------------------------------------------------------------------ PE-only model
def test_pe_gram_identity_at_mu_one_and_monte_carlo():
    assert torch.allclose(nc.pe_gram(torch.tensor([1.0]), 6)[0], torch.eye(6, dtype=torch.float64), atol=1e-12)
    S = nc.pe_sequences(torch.tensor([50.0]), 20000, 8, seed=0)
    Ge = nc.pe_empirical_gram(S, 6)
    G = nc.pe_gram(torch.tensor([50.0]), 6)
    assert (Ge - G).abs().max() < 4 / math.sqrt(20000)  # |entries| <= 1: MC standard error <= 1/sqrt(n)


def test_pe_training_matches_closed_form_gd():
    mus, T, eta, K = torch.tensor([1.0, 50.0, 300.0]), 12, 0.5, 40
    S = nc.pe_sequences(mus, 200, T, seed=1)
    m = nc.PEOnly(3, T)
    train(m, fixed_batch(S, nc.pe_targets(S)), steps=K, lr=eta, optimizer="sgd", progress=False)
    alpha = 2 * eta / (T - 2)
    for t in (3, T - 1):
        p, _ = nc.pe_gd_closed_form(nc.pe_empirical_gram(S, t), alpha, torch.tensor([K]))
        assert (m.weights().detach()[:, t - 2, :t] - p[0]).abs().max() < 1e-10


def test_pe_early_stopped_profiles():
    """Mirror of ch05.pe-*: mu = 1 learns the latest token alone; the weight spreads as mu grows; rows sum to ~1."""
    mus, T = torch.tensor([1.0, 50.0, 300.0]), 31
    kstar, P, L = nc.pe_early_stopping(mus, T, lr=0.5, threshold=1e-3, max_steps=2000)
    assert (L[kstar, torch.arange(3)] < 1e-3).all() and (kstar < 2000).all()
    rows = P[:, -1, : T - 1]
    alpha = 2 * 0.5 / (T - 2)
    p, _ = nc.pe_gd_closed_form(nc.pe_gram(mus, T - 1), alpha, torch.arange(0, 2001))
    assert torch.allclose(rows, p[kstar, torch.arange(3)], atol=1e-12)
    assert rows[0, -1] > 0.9 and rows[0, :-1].abs().max() < 0.02
    assert rows[0, -1] > rows[1, -1] > rows[2, -1]
    assert ((rows.sum(-1) > 0.9) & (rows.sum(-1) < 1.05)).all()


# ------------------------------------------------------------------------------------------------ token windows
def test_window_fit_interpolates_independent_tokens():
    V = nc.random_unit_vectors(50, 100, seed=0)
    ids = torch.stack([torch.randperm(50, generator=torch.Generator().manual_seed(i))[:5] for i in range(20)])
    assert nc.window_ar_errors(V[ids]).max() < 1e-12
    rep = torch.tensor([[0, 1, 0, 2, 3]])  # token 0 followed once by 1 and once by 2
    assert nc.window_ar_errors(V[rep]).item() > 1e-4
    assert nc.window_has_repeat(rep).item() and not nc.window_has_repeat(ids).any()


def test_polarity_corpus_loads_and_only_repeats_fail():
    corpus = nc.load_polarity_corpus()
    assert corpus.vectors.shape[1] == 100 and len(corpus.words) == corpus.vectors.shape[0]
    assert torch.allclose(corpus.vectors.norm(dim=-1), torch.ones(corpus.vectors.shape[0], dtype=torch.float64))
    win = nc.make_windows(corpus.ids, 5)
    err = nc.window_ar_errors(corpus.vectors[win])
    fails = err > 1e-12
    assert fails.any() and nc.window_has_repeat(win)[fails].all()


# ------------------------------------------------------------------------------------------------ checkers
def test_checkers_accept_reference_and_reject_wrong_answers():
    ch05.check_pe_gram(lambda mu, t: nc.pe_gram(torch.tensor([mu]), t)[0])
    ch05.check_gd_features(nc.gd_features)

    def nan_diag(mu, t):
        m = torch.arange(t, dtype=torch.float64)
        x = 4 * math.pi * (m[:, None] - m[None, :]) / mu
        return torch.sin(x) / x

    with pytest.raises(AssertionError, match="NaN"):
        ch05.check_pe_gram(nan_diag)

    def two_pi(mu, t):
        m = torch.arange(t, dtype=torch.float64)
        return torch.sinc(2 * (m[:, None] - m[None, :]) / mu)

    with pytest.raises(AssertionError, match="4 pi"):
        ch05.check_pe_gram(two_pi)

    def peeks(s):  # includes the pair (s_{t+1}, s_t)
        C = torch.cumsum(s[:, 1:, :, None] * s[:, :-1, None, :], 1)
        return torch.einsum("ntij,ntj->nti", C, s[:, :-1])

    with pytest.raises(AssertionError, match="last state"):
        ch05.check_gd_features(peeks)

    def swapped(s):
        out = nc.gd_features(s.clone())
        C = torch.cumsum(s[:, :-1, :, None] * s[:, 1:, None, :], 1)[:, :-1]
        out[:, 1:] = torch.einsum("ntij,ntj->nti", C, s[:, 1:-1])
        return out

    with pytest.raises(AssertionError, match="instead of"):
        ch05.check_gd_features(swapped)


# ------------------------------------------------------------------------------------------------ bad input
def test_error_messages():
    with pytest.raises(ValueError, match="start must be one of"):
        nc.haar_sequences(2, 3, 4, seed=0, start="zeros")
    with pytest.raises(TypeError, match="real"):
        nc.haar_sequences(2, 3, 4, seed=0, dtype=torch.complex128)
    with pytest.raises(ValueError, match="augmented, last dimension 3d = 6"):
        nc.AugmentedAttention(1, 2)(torch.zeros(1, 3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="one entry per model"):
        nc.AugmentedAttention(2, 2, attention=["linear"])
    with pytest.raises(ValueError, match="attention must be one of"):
        nc.AugmentedAttention(1, 2, attention="relu")
    with pytest.raises(TypeError, match="real floating point"):
        nc.trig_prediction(torch.zeros(1, 4, 2, dtype=torch.complex128))
    with pytest.raises(ValueError, match="T >= 3"):
        nc.trig_prediction(torch.zeros(1, 2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="real floating point"):
        nc.window_ar_errors(torch.zeros(1, 5, 3, dtype=torch.complex128))
    with pytest.raises(ValueError, match="every mu must be positive"):
        nc.pe_sequences(torch.tensor([-1.0]), 2, 4, seed=0)
    with pytest.raises(ValueError, match="must be complex"):
        nc.PEOnly(1, 4)(torch.zeros(2, 4, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="must be orthogonal"):
        nc.check_orthogonal_contexts(2 * torch.eye(3, dtype=torch.float64)[None])
    with pytest.raises(ValueError, match="exceeds the position table"):
        nc.PositionalTokenAttention(1, 2, max_len=4).positional_attention(5)
    with pytest.raises(ValueError, match="first_row"):
        nc.position_mass(torch.ones(3, 3), 2, 1)
    with pytest.raises(ValueError, match="fewer than one window"):
        nc.make_windows(torch.arange(3), 5)
    with pytest.raises(ValueError, match="inputs hold 4 sequences but targets hold 3"):
        nc.minibatches(torch.zeros(4, 5, 6), torch.zeros(3, 5, 2), 2)
    with pytest.raises(ValueError, match="do not match"):
        nc.per_position_mse(torch.zeros(1, 2, 3, 4), torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="must be square"):
        nc.relative_distance_to_scalar(torch.zeros(2, 3, 4))


def test_minibatches_per_model_and_per_position_mse():
    X, Y = torch.randn(2, 10, 4, 6), torch.randn(2, 10, 4, 2)
    x, y = nc.minibatches(X, Y, 3)(0, torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 4, 6) and y.shape == (2, 3, 4, 2)
    idx = [int((X[0] == x[0, k]).all(-1).all(-1).nonzero()[0]) for k in range(3)]
    assert torch.equal(y[1], Y[1, idx])  # the same sequences for every model, inputs and targets aligned
    pred = torch.zeros(2, 5, 4, 3)
    target = torch.ones(5, 4, 3)
    assert torch.equal(nc.per_position_mse(pred, target), torch.ones(2, 4))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("contiguous", [True, False])
def test_layernorm_matches_torch_layernorm_values_and_gradients(dtype, tol, contiguous):
    """The course LayerNorm (row statistics as products with ones, torch's backward) is torch.nn.LayerNorm: per-model
    weight and bias, values and the gradients of input, weight and bias; rows of 15 as in chapter 5."""
    g = torch.Generator().manual_seed(0)
    M, D = 3, 15
    x = (2 * torch.randn(M, 7, 11, D, generator=g, dtype=torch.float64) + 3).to(dtype)
    if not contiguous:
        x = x.transpose(1, 2).contiguous().transpose(1, 2)          # same values, strides of a transposed view
    w = (1 + 0.3 * torch.randn(M, D, generator=g, dtype=torch.float64)).to(dtype)
    b = (0.3 * torch.randn(M, D, generator=g, dtype=torch.float64)).to(dtype)
    grad = torch.randn(M, 7, 11, D, generator=g, dtype=torch.float64).to(dtype)
    ours = [t.clone().requires_grad_() for t in (x, w, b)]
    ref = [t.clone().requires_grad_() for t in (x, w, b)]
    y = nc._layernorm(*ours)
    y_ref = torch.stack([torch.nn.functional.layer_norm(ref[0][m], (D,), ref[1][m], ref[2][m]) for m in range(M)])
    assert (y - y_ref).abs().max() < tol
    for a, r in zip(torch.autograd.grad(y, ours, grad), torch.autograd.grad(y_ref, ref, grad)):
        assert (a - r).abs().max() < tol * max(1.0, r.abs().max().item())


@pytest.mark.parametrize("paper", [True, False])
def test_linear_prefix_gram_path_equals_score_matrix_form(paper):
    """The O(T D^2) prefix-Gram forward of all-linear models equals the T x T score form, biases and LayerNorm included."""
    d, M = 3, 4
    m = nc.AugmentedAttention(M, d, paper=paper, seed=1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))   # biases and LN away from 0 and 1
    X, _ = nc.split_inputs_targets(nc.haar_sequences(5, d, 8, seed=2, start="random").states, True)
    e = m._tokens(X)
    v = nc._bmm(m.W_V, e, getattr(m, "b_V", None))
    o = torch.einsum("mbts,mbsi->mbti", m.scores(e), v)
    if paper:
        h = e + nc._layernorm(nc._bmm(m.W_O, o, m.b_O), m.ln_w, m.ln_b)
        o = nc._bmm(m.W_F, h, m.b_F)
    with torch.no_grad():
        assert (m(X) - o[..., :d]).abs().max() < 1e-12                 # shared tokens: the prefix-Gram route
        assert (m(X.expand(M, *X.shape)) - o[..., :d]).abs().max() < 1e-12   # per-model tokens: the score route


def _perturbed(m, scale=0.2):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


@pytest.mark.parametrize("paper", [True, False])
@pytest.mark.parametrize("T", [6, 2 * nc.GROUPED_BLOCK + 3])
def test_grouped_inputs_equal_per_model_inputs_and_the_score_form(paper, T):
    """Tokens given once per group of models (G = 2 groups of 2) give each model the score-form output on its group's
    tokens, for linear and softmax models in one batch (one block of query positions, and three with a short last
    one)."""
    d, M = 2, 4
    m = _perturbed(nc.AugmentedAttention(M, d, attention=["linear", "softmax", "softmax", "linear"], paper=paper,
                                         seed=1))
    X = torch.stack([nc.split_inputs_targets(nc.haar_sequences(3, d, T + 1, seed=s, start="random").states, True)[0]
                     for s in (2, 3)])                                              # (2, B, T, D)
    e = X.repeat_interleave(2, 0)                                                   # the same tokens, per model
    v = nc._bmm(m.W_V, e, getattr(m, "b_V", None))
    o = torch.einsum("mbts,mbsi->mbti", m.scores(e), v)
    if paper:
        o = nc._bmm(m.W_F, e + nc._layernorm(nc._bmm(m.W_O, o, m.b_O), m.ln_w, m.ln_b), m.b_F)
    with torch.no_grad():
        assert (m(X) - o[..., :d]).abs().max() < 1e-12
        assert (m(e) - o[..., :d]).abs().max() < 1e-12
    with pytest.raises(ValueError, match="G dividing n_models=4"):
        m(torch.cat([X, X[:1]]))                                                    # 3 groups for 4 models


@pytest.mark.parametrize("form", ["scores", "contracted"])
def test_positional_token_attention_equals_its_definition_for_every_input_layout(form):
    """Both forms of the figure-7 model (scores per head; heads summed out first) equal the head-by-head definition
    (q, k, v of x = (s, s), token score times positional softmax, W_1, LayerNorm, W_2), for shared, grouped and
    per-model states."""
    d, M, H, T = 2, 4, 3, 6
    m = _perturbed(nc.PositionalTokenAttention(M, d, heads=H, max_len=8, seed=0, form=form))
    S = torch.stack([nc.haar_sequences(5, d, T, seed=s, start="random").states for s in (4, 5)])   # (2, B, T, d)
    s = S.repeat_interleave(2, 0)
    x = torch.cat([s, s], -1)
    q, k, v = (nc._bmm(W, x, b).unflatten(-1, (H, 2 * d)) for W, b in ((m.W_Q, m.b_Q), (m.W_K, m.b_K), (m.W_V, m.b_V)))
    alpha = torch.einsum("mbthi,mbshi->mbhts", q, k) / math.sqrt(2 * d) * m.positional_attention(T)[:, None]
    o = torch.einsum("mbhts,mbshi->mbti", alpha, v)
    ref = nc._bmm(m.W_2, nc._layernorm(nc._bmm(m.W_1, o, m.b_1), m.ln_w, m.ln_b), m.b_2)
    with torch.no_grad():
        assert (m(S) - ref).abs().max() < 1e-12
        assert (m(s) - ref).abs().max() < 1e-12
        shared = m(S[0])
        assert shared.shape == (M, 5, T, d)
        assert (shared[:2] - ref[:2]).abs().max() < 1e-12                          # models 0, 1 read group 0


@pytest.mark.parametrize("T", [1, 7, 2 * nc.CONTRACTED_BLOCK + 3])
def test_positional_token_attention_forms_agree_in_value_and_gradient(T):
    """The contracted form gives the score form's predictions and parameter gradients (float64, 3 states, 16 heads,
    grouped input; one block of query positions, and three with a short last one), and ``form="auto"`` takes it
    from CONTRACTED_MIN_HEADS heads on."""
    d, M, H = 3, 4, 16
    S = torch.stack([nc.haar_sequences(5, d, T, seed=s, start="random").states for s in (1, 2)])
    grads = {}
    for form in ("scores", "contracted"):
        m = _perturbed(nc.PositionalTokenAttention(M, d, heads=H, max_len=T, seed=4, form=form))
        out = m(S)
        (out * torch.linspace(-1, 2, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads[form] = out.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}
    (a, ga), (b, gb) = grads["scores"], grads["contracted"]
    assert (a - b).abs().max() < 1e-12 * a.abs().max()
    for name in ga:
        assert (ga[name] - gb[name]).abs().max() <= 1e-10 * (1 + ga[name].abs().max()), name
    auto = nc.PositionalTokenAttention(1, d, heads=nc.CONTRACTED_MIN_HEADS, max_len=T)
    calls = []
    auto._forward_contracted = lambda s: calls.append(s) or auto._forward_scores(s)
    auto(S[0])
    assert len(calls) == 1
    small = nc.PositionalTokenAttention(1, d, heads=nc.CONTRACTED_MIN_HEADS - 1, max_len=T)
    small._forward_contracted = lambda s: (_ for _ in ()).throw(AssertionError("contracted form below the threshold"))
    small(S[0])
    with pytest.raises(ValueError, match="form must be one of"):
        nc.PositionalTokenAttention(1, d, form="fast")
