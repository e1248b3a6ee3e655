"""Fast mirrors of Chapter 2's claims (augmented tokens: one gradient step) and of its error messages."""
import math

import pytest
import torch

from icar import augmented as A
from icar.data import sample_ar
from icar.estimators import gd_estimates, ols_estimates, predictions, next_token_errors
from icar.exercises import ch02
from icar.theory import gaussian_moments, gd_error, gd_optimal_step, phase_moments


@pytest.fixture(autouse=True)
def one_thread():
    """The tensors here are tiny: one intra-op thread avoids the cost of splitting them (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("law", ["commuting", "unitary", "haar"])
def test_identity_one_gradient_step(law):
    """ch02.identity: the structured layer outputs eta * C_t s_t = (0 - eta grad L_t(0)) s_t to float64 rounding."""
    batch = sample_ar(law, 9, 4, 11, seed=3, init="gaussian")
    W_V, W_KQ = A.gd_construction(4, 0.37, dtype=batch.states.dtype)
    model = A.AugmentedLinearAttention.from_parameters(W_V, W_KQ)
    got = model.predict(batch.states)[0]
    closed = predictions(gd_estimates(batch.states, 0.37), batch.states)
    autograd = predictions(A.inner_gradient_step(batch.states, 0.37), batch.states)
    assert (got - closed).abs().max().item() < 1e-10
    assert (got - autograd).abs().max().item() < 1e-10
    # the in-context matrix of the layer is eta * C_t itself
    G = model.in_context_matrix(batch.states)[0]
    assert (G - gd_estimates(batch.states, 0.37)).abs().max().item() < 1e-10


def test_shortcut_and_causality():
    """The live-block shortcut equals the full layer; position t never sees tokens after t."""
    model = A.AugmentedLinearAttention(3, 2, seed=5, init_scale=0.5, dtype=torch.complex128)
    states = sample_ar("unitary", 4, 2, 6, seed=1, init="gaussian").states
    tokens = A.augment(states)
    full = model.layer_output(tokens)
    assert full.shape == (3, 4, 6, 6)
    assert (model(tokens) - full[..., :2]).abs().max().item() < 1e-12
    later = states.clone()
    later[:, 4:] += 1.0
    diff = (model.predict(later) - model.predict(states)).abs()
    assert diff[:, :, :4].max().item() < 1e-12 and diff[:, :, 4:].max().item() > 1e-3


def test_grouped_inputs_match_per_model():
    model = A.AugmentedLinearAttention(4, 2, seed=2, dtype=torch.complex128)
    fn = A.ar_batches(2, 5, 3, inits=("phases", "ones"))
    tokens, states = fn(0, torch.Generator().manual_seed(0))
    assert tokens.shape == (2, 3, 5, 6)
    out = model(tokens)
    per_model = model(tokens.repeat_interleave(2, dim=0))
    assert (out - per_model).abs().max().item() < 1e-12
    assert A.next_token_loss(out, states).shape == (4,)


def test_flat_valley_only_first_pair():
    """Q_ss = D, Q_pp = -D (D diagonal) changes the prediction of diagonal unitary data only through the pair j = 1."""
    d, eta = 3, 0.4
    states = sample_ar("unitary", 5, d, 8, seed=4, init="phases").states
    W_V, W_KQ = A.gd_construction(d, eta, dtype=torch.complex128)
    D = torch.diag(torch.tensor([0.3 + 0.1j, -0.2j, 0.5], dtype=torch.complex128))
    W_KQ2 = W_KQ.clone()
    W_KQ2[d:2 * d, d:2 * d] = D
    W_KQ2[2 * d:, 2 * d:] = -D
    base = A.AugmentedLinearAttention.from_parameters(W_V, W_KQ).predict(states)[0]
    moved = A.AugmentedLinearAttention.from_parameters(W_V, W_KQ2).predict(states)[0]
    s1 = states[:, 0]
    first_pair = s1[:, None, :] * torch.einsum("bi,ij,btj->bt", s1.conj(), D, states)[..., None]
    assert (moved - base - first_pair).abs().max().item() < 1e-12
    assert first_pair.abs().max().item() > 1e-2


def test_step_size_formulas():
    """ch02 closed forms: per-prefix and shared steps, Gaussian case, and the shrinkage + Gram-noise split."""
    for d in (1, 3, 5):
        m = phase_moments(d)
        for n_max in (1, 6, 49):
            assert math.isclose(A.shared_step(n_max, d, m), 3 * d / (2 * n_max + 3 * d - 2), rel_tol=1e-12)
            # the shared step minimises the mean error over positions: zero derivative
            eta = A.shared_step(n_max, d, m)
            f = lambda x: float(A.error_curve(x, n_max, d, m).mean())  # noqa: E731
            h = 1e-6 * eta
            assert abs(f(eta + h) - f(eta - h)) / (2 * h) < 1e-7
            assert f(eta) < min(f(1.01 * eta), f(0.99 * eta))
    assert math.isclose(gd_optimal_step(7, 4, gaussian_moments(2.0)), 1 / (2.0 * (3 * 7 + 4 - 1)), rel_tol=1e-12)
    shrink, noise = A.error_split(0.3, 5, 4, phase_moments(4))
    assert math.isclose(shrink + noise, gd_error(0.3, 5, 4, phase_moments(4)), rel_tol=1e-12)
    assert math.isclose(shrink, (0.3 * 5 / 4 - 1) ** 2, rel_tol=1e-12)
    # vectorised forms agree with the scalar ones
    sv, nv = A.error_split(0.3, torch.arange(1, 6), 4, phase_moments(4))
    assert abs(sv[4].item() - shrink) < 1e-12 and abs(nv[4].item() - noise) < 1e-12
    curve = A.error_curve(0.3, 5, 4, phase_moments(4))
    assert abs(curve[5].item() - gd_error(0.3, 5, 4, phase_moments(4))) < 1e-12 and curve[0].item() == 4 * 0.25
    steps = A.per_prefix_steps(8, 4, phase_moments(4))
    assert all(abs(steps[n].item() - gd_optimal_step(n, 4, phase_moments(4))) < 1e-12 for n in range(1, 8))
    with pytest.raises(ValueError, match="positive numbers of pairs"):
        A.error_split(0.3, torch.arange(0, 3), 4, phase_moments(4))


def test_error_split_monte_carlo():
    """ch02.split: Monte-Carlo shrinkage and Gram noise match the formulas within 5 standard errors."""
    d, T, n_seq = 3, 6, 4000
    states = sample_ar("unitary", n_seq, d, T, seed=8, init="phases").states
    eta = 0.3
    shrink, noise, total = A.empirical_error_split(states, eta)
    errs = next_token_errors(gd_estimates(states, eta), states)
    assert (total[:, :-1] - errs).abs().max().item() < 1e-12
    for n in range(1, T - 1):
        s_th, v_th = A.error_split(eta, n, d, phase_moments(d))
        assert abs(shrink[:, n].mean().item() - s_th) < 1e-12  # shrinkage is deterministic for |x_k|^2 = 1/d
        se = noise[:, n].std().item() / math.sqrt(n_seq)
        assert abs(noise[:, n].mean().item() - v_th) < 5 * se


def test_ols_exact_after_d_pairs():
    states = sample_ar("unitary", 50, 3, 8, seed=2, init="phases").states
    errs = next_token_errors(ols_estimates(states), states)
    assert errs[:, 3:].max().item() < 1e-10


def test_training_learns_the_shared_step():
    """ch02.step + ch02.off-structure in miniature: 4 seeds, d = 2, T = 8."""
    d, T = 2, 8
    model, losses = A.train_augmented(d, T, n_seeds=4, batch=64, schedule=((150, 1e-2), (100, 1e-3)), progress=False)
    st = A.read_structure(model)
    target = A.shared_step(T - 2, d, phase_moments(d))
    assert ((st.eta - target).abs() / target).max().item() < 0.05
    assert st.off.max().item() < 0.1
    assert st.valley.max().item() < 0.1
    assert st.product_dev.max().item() < 0.05
    assert losses.shape == (250, 4)
    # ch02.loss / ch02.curve in miniature: held-out loss at L* within 4 Monte-Carlo standard errors
    # (standard errors computed here from the per-sequence errors, not taken from the functions under test)
    states = sample_ar("unitary", 4096, d, T, seed=99, init="phases").states
    sq = (model.predict(states)[..., :-1, :] - states[None, :, 1:]).abs().pow(2).sum(-1).detach()  # (M, B, T-1)
    loss, _ = A.held_out_loss(model, states)
    se = sq.mean(-1).std(1) / math.sqrt(sq.shape[1])
    assert (((loss - A.shared_loss(T - 2, d, phase_moments(d))) / se).abs() < 4).all()
    err, _ = A.per_position_errors(model, states)
    se_pos = sq.std(1) / math.sqrt(sq.shape[1])
    theory = A.error_curve(A.shared_step(T - 2, d, phase_moments(d)), T - 2, d, phase_moments(d))
    assert (((err - theory)[:, 1:].abs() / se_pos[:, 1:]) < 5).all()


def test_fixed_initial_state_beats_one_step():
    """ch02.leak in miniature: with s_1 fixed, training goes below the best one-step loss."""
    d, T = 2, 4
    model, _ = A.train_augmented(d, T, n_seeds=2, inits=("phases", "ones"), batch=256,
                                 schedule=((200, 1e-2), (100, 1e-3)), progress=False)
    tokens, states = A.ar_batches(d, T, 4096, inits=("phases", "ones"))(0, torch.Generator().manual_seed(9))
    with torch.no_grad():
        loss = A.next_token_loss(model(tokens), states)
    best = A.shared_loss(T - 2, d, phase_moments(d))
    assert loss[:2].min().item() > 0.97 * best  # the phase-invariant models cannot beat one step
    assert loss[2:].max().item() < 0.95 * best
    st = A.read_structure(model)
    assert st.off[:2].max().item() < 0.1 and st.off_pair[2:].min().item() > 0.1  # ch02.leak-structure
    assert st.off_blocks[2:].max().item() < 0.1  # ch02.leak-blocks: part 1 of the theorem survives a fixed s_1


def test_read_structure_real_and_complex():
    for dtype in (torch.float64, torch.complex128):
        W_V, W_KQ = A.gd_construction(3, 0.25, dtype=dtype)
        st = A.read_structure(A.AugmentedLinearAttention.from_parameters(W_V, W_KQ))
        assert abs(st.eta.item() - 0.25) < 1e-12 and st.off.item() == 0 and st.eta_imag.item() == 0
        assert st.product_dev.item() < 1e-12 and st.valley.item() == 0


def test_error_messages():
    with pytest.raises(ValueError, match=r"states must have shape \(n, T, d\)"):
        A.augment(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="floating-point or complex"):
        A.augment(torch.zeros(2, 3, 4, dtype=torch.int64))
    model = A.AugmentedLinearAttention(2, 3)
    with pytest.raises(ValueError, match=r"last dimension 3d = 9"):
        model(torch.zeros(4, 5, 6, dtype=torch.float64))
    with pytest.raises(TypeError, match="this model is real"):
        model(torch.zeros(4, 5, 9, dtype=torch.complex128))
    with pytest.raises(ValueError, match="G dividing n_models=2"):
        model(torch.zeros(3, 4, 5, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        A.AugmentedLinearAttention.from_parameters(torch.zeros(6, 6), torch.zeros(9, 9))
    with pytest.raises(ValueError, match="three slots"):
        A.AugmentedLinearAttention.from_parameters(torch.zeros(4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="slot indices"):
        A.block(torch.zeros(6, 6), 3, 0, 2)
    with pytest.raises(ValueError, match="one scale per law"):
        A.ar_batches(2, 4, 8, inits=("phases", "ones"), scales=(1.0,))
    with pytest.raises(ValueError, match="positive integer"):
        A.shared_step(0, 3, phase_moments(3))
    with pytest.raises(TypeError, match="AugmentedLinearAttention"):
        A.read_structure(torch.nn.Linear(2, 2))


def _right(d, eta):
    return A.gd_construction(d, eta)


def _transposed(d, eta):
    W_V, W_KQ = A.gd_construction(d, eta)
    return W_V, W_KQ.T.contiguous()


def _eta_twice(d, eta):
    W_V, W_KQ = A.gd_construction(d, eta)
    return eta * W_V, W_KQ


def test_checker_gd_construction():
    ch02.check_gd_construction(_right)
    with pytest.raises(AssertionError, match="transpose of the right block"):
        ch02.check_gd_construction(_transposed)
    with pytest.raises(AssertionError, match="eta appears twice"):
        ch02.check_gd_construction(_eta_twice)
    with pytest.raises(AssertionError, match="shape"):
        ch02.check_gd_construction(lambda d, eta: (torch.zeros(d, d, dtype=torch.float64),) * 2)


def test_checker_shared_step():
    ch02.check_shared_step(lambda n, d: 3 * d / (2 * n + 3 * d - 2))
    with pytest.raises(AssertionError, match="longest prefix alone"):
        ch02.check_shared_step(lambda n, d: d / (n + d - 1))
