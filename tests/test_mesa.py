"""Fast mirrors of the claims of Chapter 3 (the mesa-optimizer) and the error messages of icar.mesa."""
from __future__ import annotations

import math

import pytest
import torch

import icar
import icar.exercises.ch03 as ex03
import icar.mesa as mesa

BASE = torch.tensor([[1.0, 1.0, 2.0], [1.0, 2.0, 1.0], [2.0, 1.0, 1.0]])
SIGNS = torch.tensor([[s1, s2, s3] for s1 in (1.0, -1.0) for s2 in (1.0, -1.0) for s3 in (1.0, -1.0)])
SYM = (BASE[:, None] * SIGNS[None]).reshape(-1, 3)


# ----------------------------------------------------------------------------------------------- the layer
def test_mesa_identity_matches_one_step_gd():
    states, _ = mesa.sample("gaussian", 16, 4, 9, seed=0)
    K, P = mesa.diagonal_init([0.3, -1.2], [0.7, 0.4], 4)
    layer = mesa.attention(K, P, states)
    ref = mesa.one_step_gd_predictions(states, mesa.step_size(K, P))
    assert (layer - ref).abs().max() < 1e-10


def test_closed_form_gradient_matches_autograd_on_the_literal_layer():
    states, W = mesa.sample("uniform", 20, 3, 7, seed=1)
    g = torch.Generator().manual_seed(2)
    K = 0.3 * torch.randn(2, 6, 6, dtype=torch.complex128, generator=g)
    P = 0.3 * torch.randn(2, 3, 6, dtype=torch.complex128, generator=g)
    loss, dK, dP = mesa.loss_and_grad(K, P, mesa.prepare(states, W, chunk=7))  # uneven chunks on purpose
    model = mesa.MesaAttention(K, P)
    ref = mesa.loss_from_predictions(model(states), states)
    ref.sum().backward()
    assert (loss - ref.detach()).abs().max() < 1e-10
    assert (dK - model.W_KQ.grad).abs().max() < 1e-10 * dK.abs().max()
    assert (dP - model.W_PV.grad).abs().max() < 1e-10 * dP.abs().max()


def test_gd_equals_the_library_trainer_with_sgd():
    states, W = mesa.sample("gaussian", 12, 3, 6, seed=3)
    K, P = mesa.diagonal_init([0.2, 0.5], [0.3, 1.0], 3)
    run = mesa.gd(K, P, mesa.prepare(states, W), steps=3, lr=[0.01, 0.02], progress=False)
    model = mesa.MesaAttention(K, P)
    icar.train.train(model, icar.train.fixed_batch(states, states), steps=3, lr=[0.01, 0.02], optimizer="sgd",
                     loss_fn=lambda pred, x: mesa.loss_from_predictions(pred, x), progress=False)
    assert (run.K[-1] - model.W_KQ.detach()).abs().max() < 1e-12
    assert (run.P[-1] - model.W_PV.detach()).abs().max() < 1e-12


# ----------------------------------------------------------------------------------------------- invariance
def test_exact_gradient_stays_in_the_family_for_a_symmetric_law():
    _, dK, dP = mesa.exact_gradient(SYM, a=0.5, b=0.7, T=4)
    rep = mesa.structure_report(dK, dP)
    scale = max(dK.abs().max().item(), dP.abs().max().item())
    assert max(rep["offdiag"].item(), rep["other"].item(), rep["spread"].item()) < 1e-12 * scale
    assert scale > 0.1  # the family's own gradient is not zero, so the check is not vacuous


@pytest.mark.parametrize("support", [BASE, torch.ones(1, 3)], ids=["no-signs", "all-ones"])
def test_without_sign_symmetry_the_leak_is_only_in_the_relevant_off_diagonals(support):
    _, dK, dP = mesa.exact_gradient(support, a=0.5, b=0.7, T=4)
    rep = mesa.structure_report(dK, dP)
    assert rep["offdiag"].item() > 0.1
    assert rep["other"].item() < 1e-12 * dK.abs().max().item()


def test_reduced_loss_formula_is_exact_for_any_law():
    p = 0.35
    for support in (SYM, BASE):
        X, W, w = mesa.exact_population(support, 4, 10)
        K, P = mesa.diagonal_init(0.5, 0.7, 3)
        loss = mesa.loss_and_grad(K, P, mesa.prepare(X, W, w))[0].item()
        A, B, C, D = mesa.support_coefficients(support)
        formula = sum(mesa.reduced_loss_per_position(p, t, A, B, C, D) for t in range(2, 4))
        assert abs(loss - formula) < 1e-12 * formula


def test_reduced_loss_reproduces_an_independent_reference_value():
    # i.i.d. coordinates in {+-1, +-2}, d = 3, T = 8, p = 0.35: an independently computed reference value
    vals = torch.tensor([1.0, -1.0, 2.0, -2.0])
    support = torch.cartesian_prod(vals, vals, vals)
    A, B, C, D = mesa.support_coefficients(support)
    total = sum(mesa.reduced_loss_per_position(0.35, t, A, B, C, D) for t in range(2, 8))
    assert abs(total - 23.91421875) < 1e-10


def test_training_on_a_symmetrized_sample_stays_in_the_family_and_follows_two_scalars():
    ex = mesa.train_symmetrized("gaussian", 1, 3, 8, a0=[0.1, 0.5], b0=[0.1, 1.5], steps=60, seed=4)
    rep = mesa.structure_report(ex.run.K, ex.run.P)
    assert max(rep["offdiag"].max().item(), rep["other"].max().item(), rep["spread"].max().item()) < 1e-12
    a_r, b_r = ex.reduced()
    assert (a_r * b_r - ex.run.ab).abs().max() < 1e-8
    assert (ex.run.ab[-1] - ex.p_hat).abs().max() < 1e-3 * ex.p_hat
    a, b = mesa.diagonals(ex.run.K, ex.run.P)
    c = (a**2 - b**2).mean(-1)
    assert (c - c[0]).abs().max() < 0.02 * 2.0  # |a0^2 - b0^2| = 2 for the second model


# ----------------------------------------------------------------------------------------------- theory
def test_p_star_closed_forms():
    d, T = 5, 100
    assert abs(mesa.p_star(mesa.init_moments("gaussian", d), d, T) - 0.19191) < 1e-4
    assert abs(mesa.p_star(mesa.init_moments("ones", d), d, T) - 0.8258) < 1e-4
    assert mesa.p_star(mesa.init_moments("sparse", d, 0.5), d, T) == pytest.approx(4.0, abs=1e-12)
    assert mesa.p_star(mesa.init_moments("gaussian", d, 2.0), d, T) == pytest.approx(0.19191 / 4, abs=1e-4)
    M, N, _ = mesa.population_coefficients(mesa.init_moments("gaussian", d), d, T)
    assert N / M == pytest.approx(mesa.p_star(mesa.init_moments("gaussian", d), d, T), rel=1e-12)


def test_monte_carlo_optimum_matches_p_star():
    d, T = 4, 10
    for law in ("gaussian", "ones"):
        terms = mesa.reduced_terms(mesa.sample(law, 2000, d, T, seed=5)[0])
        p, _ = mesa.ratio_estimate(terms)
        Mi, Ni = terms[:, 0], terms[:, 1]   # delta-method standard error, computed here
        se = ((Ni - p * Mi).std() / (math.sqrt(len(Mi)) * Mi.mean())).item()
        assert abs(p - mesa.p_star(mesa.init_moments(law, d), d, T)) < 4 * se + 1e-12


def test_gaussian_ratio_is_p_star_not_one():
    d, T = 4, 10
    p = mesa.p_star(mesa.init_moments("gaussian", d), d, T)
    r = mesa.prediction_ratios(mesa.sample("gaussian", 2000, d, T, seed=6)[0], p)
    assert abs(r.mean() - p) < 4 * r.std() / math.sqrt(r.numel())
    assert r.mean() < 0.5


def test_sparse_layer_outputs_ab_times_target():
    states, _ = mesa.sample("sparse", 30, 4, 9, seed=7)
    K, P = mesa.diagonal_init([0.9, 1.0], [1.0, 1.0], 4)
    pred = mesa.attention(K, P, states)
    ab = mesa.step_size(K, P)
    assert (pred - ab[:, None, None, None] * states[None, :, 2:]).abs().max() < 1e-12
    assert (pred[1] - states[:, 2:]).abs().max() < 1e-12


def test_position_errors_match_formula():
    d, T = 3, 12
    for law in ("gaussian", "rademacher", "uniform"):
        m = mesa.init_moments(law, d)
        p = m.kappa1 / m.kappa2
        states = mesa.sample(law, 3000, d, T, seed=8)[0]
        mean, _ = mesa.position_errors(states, p)
        sq = (mesa.one_step_gd_predictions(states, p)[0] - states[:, 2:]).abs().pow(2).sum(-1)
        se = sq.std(0) / math.sqrt(sq.shape[0])   # computed here, not taken from position_errors
        A, B, C, D = d * m.kappa2, d * (d - 1) * m.kappa3, d * m.kappa1, d * m.m2
        formula = torch.tensor([2 * mesa.reduced_loss_per_position(p, t, A, B, C, D) for t in range(2, T)])
        assert ((mean - formula).abs() / (se + 1e-12)).max() < 4.5


def test_asymptotic_error_is_zero_iff_equal_moduli():
    d = 5
    assert abs(mesa.asymptotic_error(mesa.init_moments("sparse", d, 1.3), d)) < 1e-12
    assert abs(mesa.asymptotic_error(mesa.init_moments("rademacher", d, 0.7), d)) < 1e-12
    assert mesa.asymptotic_error(mesa.init_moments("gaussian", d), d) == pytest.approx(2.0)
    assert mesa.asymptotic_error(mesa.init_moments("uniform", d), d) == pytest.approx(d * (1 / 3 - 7 / 25))


def test_uniform_moments_by_monte_carlo():
    x = mesa.uniform_init_states(100000, 2, seed=9).real
    m = mesa.uniform_moments()
    assert abs((x[:, 0] ** 4).mean().item() - m.kappa1) < 0.01
    assert abs((x[:, 0] ** 2 * x[:, 1] ** 4).mean().item() - m.kappa3) < 0.01


def test_flow_logistic_and_limits():
    M, N, d = 50.0, 20.0, 3
    tau = torch.linspace(0, 2.0, 11, dtype=torch.float64)
    a, b = mesa.reduced_flow(0.1, 0.1, M, N, d, times=tau)
    assert ((a * b)[:, 0] - mesa.logistic_step(0.01, N / M, N, d, tau)).abs().max() < 1e-6  # RK4 error ~1e-7
    a, b = mesa.reduced_flow(0.5, 1.5, M, N, d, times=torch.linspace(0, 10.0, 201, dtype=torch.float64))
    a_lim, b_lim = mesa.limit_parameters(0.5, 1.5, N / M)
    assert abs(a[-1, 0] - a_lim) < 1e-6 and abs(b[-1, 0] - b_lim) < 1e-6
    assert abs((a**2 - b**2)[-1, 0] - (0.25 - 2.25)) < 1e-6  # conserved up to the RK4 error


def test_a0_equal_minus_b0_stalls_at_the_saddle():
    a, b = mesa.reduced_flow(0.5, -0.5, 50.0, 20.0, 3, times=torch.linspace(0, 50.0, 501, dtype=torch.float64),
                             substeps=4)
    assert abs((a * b)[-1, 0]) < 1e-2


# ----------------------------------------------------------------------------------------------- beyond the condition
def test_vanilla_point_is_not_stationary_for_all_ones():
    sup = torch.ones(1, 3)
    A, B, C, _ = mesa.support_coefficients(sup)
    M = sum(A + B / (t - 1) for t in range(2, 5))
    a = math.sqrt(3 * C / M)
    _, dK, dP = mesa.exact_gradient(sup, a=a, b=a, T=5)
    gK, gP = mesa.relevant_blocks(dK[0], dP[0])
    off = ~torch.eye(3, dtype=torch.bool)
    assert gK.real[off].min() > 0.01 and gP.real[off].min() > 0.01
    assert torch.diagonal(gK).abs().max() < 1e-12  # the diagonal is at its (masked) optimum


def test_all_ones_training_beats_vanilla_gd():
    ex = mesa.train_symmetrized("ones", 4, 3, 12, a0=[0.1], b0=[0.1], signs=False, steps=150, seed=10, fraction=0.25)
    Kb, Pb = mesa.relevant_blocks(ex.run.K[-1, 0], ex.run.P[-1, 0])
    off = ~torch.eye(3, dtype=torch.bool)
    assert Kb.real[off].mean() < -1e-3 and Pb.real[off].mean() < -1e-3
    assert mesa.structure_report(ex.run.K, ex.run.P)["other"].max() < 1e-12
    test, W = mesa.sample("ones", 300, 3, 12, seed=11)
    loss = mesa.evaluate_loss(ex.run.K[-1], ex.run.P[-1], mesa.prepare(test, W)).item()
    Mt, Nt, Dt = mesa.reduced_coefficients(test)
    assert loss < 0.99 * 0.5 * (Dt - Nt**2 / Mt)


# ----------------------------------------------------------------------------------------------- symmetries of a sample
def test_sign_patterns_decorrelate_every_pair():
    for d in (2, 3, 5, 8):
        S = mesa.sign_patterns(d)
        G = S.T @ S / S.shape[0]
        assert torch.allclose(G, torch.eye(d, dtype=torch.float64))
        prods = (S[:, None, :] * S[None, :, :]).reshape(-1, d)  # closed under products
        assert {tuple(r.tolist()) for r in prods} == {tuple(r.tolist()) for r in S}


def test_symmetrize_gives_valid_sequences():
    states, W = mesa.sample("gaussian", 2, 5, 6, seed=12)
    X, Ws = mesa.symmetrize(states, W)
    assert X.shape == (2 * 8 * 3 * 5, 6, 5)
    mesa.prepare(X, Ws)  # raises if a sequence does not follow its W


# ----------------------------------------------------------------------------------------------- errors
def test_error_messages():
    states, W = mesa.sample("gaussian", 4, 3, 6, seed=13)
    with pytest.raises(TypeError, match="must be complex"):
        mesa.attention(*mesa.diagonal_init(0.1, 0.1, 3), states.real)
    with pytest.raises(ValueError, match="T >= 3"):
        mesa.attention(*mesa.diagonal_init(0.1, 0.1, 3), states[:, :2])
    with pytest.raises(ValueError, match="last dimension d=4"):
        mesa.attention(*mesa.diagonal_init(0.1, 0.1, 4), states)
    with pytest.raises(ValueError, match="must be diagonal"):
        mesa.prepare(states, W + 0.1)
    with pytest.raises(ValueError, match="unitary"):
        mesa.prepare(states, 2 * W)
    with pytest.raises(TypeError, match="must be complex"):
        mesa.check_diagonal_unitary(W.real)
    with pytest.raises(ValueError, match="do not follow"):
        mesa.prepare(states, torch.flip(W, dims=[0]))
    with pytest.raises(ValueError, match="same number of models"):
        mesa.diagonal_init([0.1, 0.2], [0.1, 0.2, 0.3], 3)
    with pytest.raises(ValueError, match="n_roots must exceed"):
        mesa.exact_population(SYM, 5, 10)
    with pytest.raises(ValueError, match="law must be one of"):
        mesa.init_moments("cauchy", 3)
    with pytest.raises(ValueError, match="law must be one of"):
        mesa.sample("cauchy", 2, 3, 5, seed=0)
    with pytest.raises(ValueError, match="T must be an integer >= 3"):
        mesa.p_star(mesa.init_moments("gaussian", 3), 3, 2)
    with pytest.raises(ValueError, match="one per model"):
        mesa.gd(*mesa.diagonal_init([0.1, 0.2], [0.1, 0.2], 3), mesa.prepare(states, W), steps=1, lr=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="K \\(W\\^KQ\\) must have shape"):
        mesa.attention(torch.zeros(1, 5, 5, dtype=torch.complex128), torch.zeros(1, 2, 5, dtype=torch.complex128),
                       states)
    with pytest.raises(ValueError, match="a0 b0 > 0"):
        mesa.limit_parameters(0.5, -0.5, 0.2)
    with pytest.raises(ValueError, match="non-zero targets"):
        mesa.prediction_ratios(mesa.sample("sparse", 4, 3, 6, seed=0)[0], 1.0)


# ----------------------------------------------------------------------------------------------- exercise checkers
def test_check_mesa_prediction():
    ex03.check_mesa_prediction(lambda states, p: mesa.one_step_gd_predictions(states, p)[0])

    def no_conj(states, p):
        T = states.shape[1]
        outer = states[:, 1:, :, None] * states[:, :-1, None, :]
        C = torch.cumsum(outer, dim=1)[:, :T - 2]
        t = torch.arange(2, T, dtype=torch.float64)
        return p * torch.einsum("ntij,ntj->nti", C, states[:, 1:T - 1]) / (t - 1)[None, :, None]

    with pytest.raises(AssertionError, match="conjugated"):
        ex03.check_mesa_prediction(no_conj)

    def by_t(states, p):
        T = states.shape[1]
        t = torch.arange(2, T, dtype=torch.float64)[None, :, None]
        return mesa.one_step_gd_predictions(states, p)[0] * (t - 1) / t

    with pytest.raises(AssertionError, match="normalise by t-1"):
        ex03.check_mesa_prediction(by_t)
    with pytest.raises(AssertionError, match="expected shape"):
        ex03.check_mesa_prediction(lambda states, p: mesa.one_step_gd_predictions(states, p)[0][:, :-1])
