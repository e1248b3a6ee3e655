"""Fast mirrors of Chapter 4's claims (diagonal multi-head linear attention, non-augmented tokens)."""
import itertools

import pytest
import torch

import icar.multihead as mh
from icar.exercises import ch04


def _random_CP(M=3, d=4, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(M, d, d, generator=g, dtype=torch.float64),
            torch.randn(M, t + 1, t + 1, generator=g, dtype=torch.float64))


def _mc(law, C, P, t, *, n, seed, k=15, **kw):
    """Monte-Carlo loss from ``k`` independent estimates of ``n // k`` samples each: their mean, and a standard error
    from their spread (batch means), not the one that :func:`icar.multihead.mc_position_loss` returns."""
    runs = torch.stack([mh.mc_position_loss(law, C, P, t, n=n // k, seed=1000 * seed + i, **kw).mean for i in range(k)])
    return mh.MCEstimate(runs.mean(0), runs.std(0) / k**0.5)


def _z(est, val):
    return ((est.mean - val) / est.se).abs().max().item()


# ------------------------------------------------------------------------------------------ the model
def test_forward_equals_explicit_heads():
    """The C = B^T A form of the model equals the per-head sum, loop by loop, on real and complex states."""
    model = mh.MultiHeadDiagonal(2, 3, 2, 5, heads=[1, 2], seed=3)
    A, B = (x.detach() for x in model.masked_heads())
    P = model.P_masked().detach()
    for states in (mh.rotation_sequences(2, 4, 5, seed=1)[0][..., :3], mh.eigen_sequences("unitary", 2, 3, 5, seed=2)):
        out = model(states).detach()
        for m, b, t, i in itertools.product(range(2), range(2), range(2, 5), range(3)):
            s = states[b]
            want = sum(P[m, t - 1, tp - 1] * B[m, h, i] * sum(A[m, h, k] * s[t - 2, k].conj() * s[tp - 1, k] for k in range(3))
                       * s[tp - 1, i] for tp in range(1, t + 1) for h in range(2))
            assert abs(out[m, b, t - 2, i] - want) < 1e-12


def test_switched_off_heads_do_not_count():
    model = mh.MultiHeadDiagonal(3, 4, 4, 6, heads=[1, 2, 4], seed=0)
    assert torch.linalg.matrix_rank(model.C().detach()).tolist() == [1, 2, 4]
    loss = model.population_loss("unitary").sum()
    loss.backward()
    assert model.A.grad[0, 1:].abs().max() == 0 and model.A.grad[2].abs().min() > 0


def test_batched_training_equals_separate_training():
    batch = mh.MultiHeadDiagonal(3, 4, 3, 6, seed=5)
    solo = mh.MultiHeadDiagonal(1, 4, 3, 6, seed=9)
    with torch.no_grad():
        for p_s, p_b in zip(solo.parameters(), batch.parameters()):
            p_s.copy_(p_b[1:2])
    mh.train_population(batch, "orthogonal", steps=50, lr=1e-3, momentum=0.9, progress=False)
    mh.train_population(solo, "orthogonal", steps=50, lr=1e-3, momentum=0.9, progress=False)
    assert torch.allclose(batch.C()[1], solo.C()[0], atol=1e-12)


# ------------------------------------------------------------------------------------------ closed forms (C1, C2)
def test_unitary_closed_form_matches_monte_carlo_and_released_form_overshoots():
    C, P = _random_CP(seed=1)
    est = _mc("unitary", C, P, 5, n=30_000, seed=1)
    corrected = mh.unitary_position_loss(C, P)[:, 3]
    released = mh.unitary_position_loss(C, P, "released")[:, 3]
    excess = P[:, 4, 3] ** 2 * C.pow(2).sum((-2, -1))
    assert _z(est, corrected) < 4
    assert _z(est, released - excess) < 4
    assert ((released - est.mean) / est.se).min() > 10  # the released form is many standard errors off


def test_orthogonal_closed_form_matches_monte_carlo_but_not_real_coordinates():
    C, P = _random_CP(seed=2)
    closed = mh.orthogonal_position_loss(C, P)[:, 3]
    assert _z(_mc("orthogonal", C, P, 5, n=30_000, seed=2), closed) < 4
    real = _mc("orthogonal", C, P, 5, n=30_000, seed=3, coordinates="real")
    assert ((real.mean - closed).abs() / closed - 4 * real.se / closed).min() > 0.02


def test_closed_forms_use_only_the_masked_entries():
    C, P = _random_CP(seed=4)
    noise = torch.triu(torch.ones(6, 6, dtype=torch.float64), 1) * 7.0  # entries t' > t are not used
    for law in mh.LAWS:
        assert torch.equal(mh.position_loss(law, C, P), mh.position_loss(law, C, P + noise))


# ------------------------------------------------------------------------------------------ exact identities
def test_chebyshev_identity_and_trigonometric_zero_loss():
    states, theta = mh.rotation_sequences(32, 6, 9, seed=0)
    assert (mh.chebyshev_prediction(states, theta) - states[:, 2:]).abs().max() < 1e-12
    for c, r in [(-1.3, 1.0), (0.8, 0.35), (2.0, 0.0)]:
        C, P = mh.trig_solution(6, 9, c=c, b_over_a=r)
        assert mh.orthogonal_position_loss(C, P).abs().max() < 1e-12
    C, P = mh.trig_solution(6, 9, c=-1.3)
    assert (mh.predict(states, C, P)[0] - states[:, 2:]).abs().max() < 1e-12
    kappa = mh.token_coefficients(C, P, states)
    idx = torch.arange(7)
    two_cos = (2 * torch.cos(theta)).repeat_interleave(2, -1)[:, None, :]
    assert (kappa[0, :, idx, idx + 1] - two_cos).abs().max() < 1e-12
    assert (kappa[0, :, idx, idx] + 1).abs().max() < 1e-12


def test_unitary_identity_solution_predicts_exactly():
    states = mh.eigen_sequences("unitary", 16, 4, 7, seed=0)
    C = 1.7 * torch.eye(4, dtype=torch.float64)[None]
    P = torch.diag_embed(torch.full((1, 7), 1 / 1.7, dtype=torch.float64))
    assert (mh.predict(states, C, P)[0] - states[:, 2:]).abs().max() < 1e-12
    assert mh.unitary_position_loss(C, P).abs().max() < 1e-12


# ------------------------------------------------------------------------------------------ training (C3, C4, C7)
def test_unitary_gd_reaches_cI_and_heads_follow_the_conservation_law():
    model = mh.MultiHeadDiagonal(4, 5, 5, 8, seed=0)
    A0, B0 = (x.detach().clone() for x in model.masked_heads())
    res = mh.train_population(model, "unitary", steps=300, lr=0.02, progress=False)
    assert res.final.max() < 1e-6
    C = model.C().detach()
    c = torch.diagonal(C, 0, -2, -1).mean(-1)
    assert (C - c[:, None, None] * torch.eye(5, dtype=torch.float64)).abs().max() < 1e-3 * c.abs().min()
    latest, query, rest = mh.bands(model.P_masked().detach())
    assert (c[:, None] * latest - 1).abs().max() < 1e-3 and query.abs().max() < 1e-3 and rest.max() < 1e-3
    A, B = (x.detach() for x in model.masked_heads())
    drift = torch.linalg.matrix_norm((A @ A.mT - B @ B.mT) - (A0 @ A0.mT - B0 @ B0.mT), ord=2)
    err = (A @ A.mT - mh.predicted_head_gram(A0, B0, c)).abs().flatten(1).amax(-1)
    assert (err - drift).max() < 1e-6


def test_unitary_loss_floor_is_d_minus_H():
    d, T = 5, 7
    heads = [h for h in range(1, d + 1) for _ in range(2)]
    model = mh.MultiHeadDiagonal(len(heads), d, d, T, heads=heads, seed=1)
    res = mh.train_population(model, "unitary", steps=300, lr=0.02, progress=False)
    floor = torch.tensor([mh.rank_floor("unitary", d, h) for h in heads], dtype=torch.float64)
    assert (res.final / (T - 2) - floor).abs().max() < 1e-3
    latest, _, _ = mh.bands(model.P_masked().detach())
    Mpc = latest[:, :, None, None] * model.C().detach()[:, None]
    eig = torch.linalg.eigvalsh((Mpc + Mpc.mT) / 2)
    projector = (torch.arange(d)[None, :] >= d - torch.tensor(heads)[:, None]).double()
    assert (eig - projector[:, None, :]).abs().max() < 1e-2


# ------------------------------------------------------------------------------------------ training (C5, C6)
def test_orthogonal_gd_with_fewer_heads_finds_the_trigonometric_solution():
    d, T = 4, 6
    model = mh.MultiHeadDiagonal(8, d, 3, T, seed=0)
    res = mh.train_population(model, "orthogonal", steps=2000, lr=3e-3, momentum=0.9, progress=False)
    ok = res.final < 1e-4
    assert ok.sum() >= 4  # most initialisations converge; the others sit on slow plateaus
    C, P = model.C().detach()[ok], model.P_masked().detach()[ok]
    diag, inpair, off = mh.pair_blocks(C)
    c = diag.mean(-1)
    assert (inpair / c[:, None] - 1).abs().max() < 1e-2 and (off / c.abs()).max() < 1e-2
    latest, query, rest = mh.bands(P)
    assert (c[:, None] * latest - 1).abs().max() < 1e-2 and (c[:, None] * query + 0.5).abs().max() < 1e-2


def test_orthogonal_gd_with_d_heads_lands_on_the_family():
    model = mh.MultiHeadDiagonal(3, 4, 4, 6, seed=1)
    res = mh.train_population(model, "orthogonal", steps=500, lr=2e-3, momentum=0.9, progress=False)
    assert res.final.max() < 1e-6
    diag, inpair, _ = mh.pair_blocks(model.C().detach())
    a, b = diag.mean(-1), inpair.mean(-1)
    latest, query, _ = mh.bands(model.P_masked().detach())
    assert (a[:, None] * latest - 1).abs().max() < 1e-2
    assert (query + (b / (a * (a + b)))[:, None]).abs().max() < 1e-2


# ------------------------------------------------------------------------------------------ errors
def test_bad_inputs_raise_clear_errors():
    C, P = _random_CP(d=3)
    with pytest.raises(ValueError, match="positive even integer"):
        mh.orthogonal_position_loss(C, P)
    with pytest.raises(ValueError, match="law must be one of"):
        mh.eigen_sequences("haar", 2, 4, 5, seed=0)
    with pytest.raises(TypeError, match="real floating point"):
        mh.unitary_position_loss(C.to(torch.complex128), P)
    with pytest.raises(ValueError, match=r"P must have shape \(M, T, T\)"):
        mh.unitary_position_loss(C, P[:2])
    with pytest.raises(ValueError, match="variant must be one of"):
        mh.unitary_position_loss(C, P, "paper")
    with pytest.raises(ValueError, match="T must be >= 3"):
        mh.MultiHeadDiagonal(1, 4, 2, 2)
    with pytest.raises(ValueError, match="every head count must be <= max_heads"):
        mh.MultiHeadDiagonal(2, 4, 2, 5, heads=[1, 3])
    with pytest.raises(ValueError, match="one head count per model"):
        mh.MultiHeadDiagonal(2, 4, 2, 5, heads=[1])
    with pytest.raises(TypeError, match="parameters are real"):
        mh.MultiHeadDiagonal(1, 4, 2, 5, dtype=torch.complex128)
    model = mh.MultiHeadDiagonal(2, 4, 2, 5)
    with pytest.raises(ValueError, match=r"states must have shape \(B, T, d\)"):
        model(torch.zeros(3, 6, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="t must be an integer position"):
        mh.mc_position_loss("unitary", *_random_CP(d=4), 1, n=10, seed=0)
    with pytest.raises(ValueError, match="needs law='orthogonal'"):
        mh.mc_position_loss("unitary", *_random_CP(d=4), 5, n=10, seed=0, coordinates="real")
    with pytest.raises(ValueError, match=r"theta must have shape"):
        mh.chebyshev_prediction(torch.zeros(2, 5, 4, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="real floating point"):
        mh.token_coefficients(*mh.trig_solution(4, 5), mh.eigen_sequences("orthogonal", 2, 4, 5, seed=0))
    with pytest.raises(TypeError, match="seed must be an int"):
        mh.eigen_phases("unitary", 2, 4, seed=None)


# ------------------------------------------------------------------------------------------ graded exercise
def _student_right(C, p):
    fro2 = C.pow(2).sum()
    return p.pow(2).sum() * fro2 + p[-2] ** 2 * (C.sum(1).pow(2).sum() - fro2) - 2 * p[-1] * torch.trace(C) + C.shape[0]


def test_checker_accepts_the_right_answer(capsys):
    ch04.check_unitary_position_loss(_student_right)
    assert "passed" in capsys.readouterr().out


def test_checker_explains_the_double_counting():
    released = lambda C, p: _student_right(C, p) + p[-2] ** 2 * C.pow(2).sum()  # noqa: E731
    with pytest.raises(AssertionError, match="twice"):
        ch04.check_unitary_position_loss(released)


def test_checker_explains_other_mistakes():
    with pytest.raises(AssertionError, match="constant term is missing"):
        ch04.check_unitary_position_loss(lambda C, p: _student_right(C, p) - C.shape[0])
    with pytest.raises(AssertionError, match="0-dimensional"):
        ch04.check_unitary_position_loss(lambda C, p: _student_right(C, p).reshape(1))


def test_released_form_has_the_same_minimiser():
    model = mh.MultiHeadDiagonal(2, 4, 4, 7, seed=2)
    mh.train_population(model, "unitary", steps=300, lr=0.02, variant="released", progress=False)
    assert model.population_loss("unitary").max() < 1e-6


def test_head_gram_prediction_is_exact_for_balanced_heads():
    A0 = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = torch.tensor([1.5, -0.7], dtype=torch.float64)
    gram = mh.predicted_head_gram(A0, A0.clone(), c)
    assert torch.allclose(gram, c.abs()[:, None, None] * torch.eye(4, dtype=torch.float64), atol=1e-12)
    E = A0 @ A0.mT - 0.5 * A0 @ A0.mT  # any symmetric imbalance: S - c^2 S^{-1} = E must hold
    B0 = A0 * 0.5 ** 0.5
    S = mh.predicted_head_gram(A0, B0, c)
    assert torch.allclose(S - c[:, None, None] ** 2 * torch.linalg.inv(S), E, atol=1e-10)


def _trig_right(prev, cur):
    n, d = cur.shape
    dot = (prev * cur).reshape(n, d // 2, 2).sum(-1)
    return (2 * dot / cur.reshape(n, d // 2, 2).pow(2).sum(-1)).repeat_interleave(2, -1) * cur - prev


def test_trig_checker_accepts_the_right_answer_and_explains_wrong_ones(capsys):
    ch04.check_trig_predict(_trig_right)
    assert "passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="plane by plane"):
        ch04.check_trig_predict(lambda p, c: 2 * (p * c).sum(-1, keepdim=True) / c.pow(2).sum(-1, keepdim=True) * c - p)
    with pytest.raises(AssertionError, match="divide the inner product"):
        ch04.check_trig_predict(lambda p, c: 2 * (p * c).reshape(c.shape[0], -1, 2).sum(-1).repeat_interleave(2, -1) * c - p)
    with pytest.raises(AssertionError, match="subtracts the previous state"):
        ch04.check_trig_predict(lambda p, c: _trig_right(p, c) + 2 * p)


def test_per_model_states_give_the_same_predictions_as_shared_states():
    model = mh.MultiHeadDiagonal(3, 4, 2, 6, seed=7)
    states = mh.eigen_sequences("orthogonal", 5, 4, 6, seed=1)
    shared = model(states)
    per_model = model(states.unsqueeze(0).expand(3, -1, -1, -1))
    assert torch.allclose(shared, per_model, atol=1e-13)
    assert torch.allclose(shared, mh.predict(states, model.C(), model.P), atol=1e-13)
    with pytest.raises(ValueError, match="per model"):
        model(states.unsqueeze(0).expand(2, -1, -1, -1))


def test_balanced_start_gives_orthogonal_heads():
    model = mh.MultiHeadDiagonal(3, 5, 5, 8, seed=4)
    with torch.no_grad():
        model.B.copy_(model.A)
    res = mh.train_population(model, "unitary", steps=300, lr=0.02, progress=False)
    assert res.final.max() < 1e-6
    A, B = (x.detach() for x in model.masked_heads())
    gram = A @ A.mT
    norms = torch.diagonal(gram, 0, -2, -1)
    cos = (gram / torch.sqrt(norms[:, :, None] * norms[:, None, :]))[:, ~torch.eye(5, dtype=torch.bool)].abs().amax(-1)
    bound = torch.linalg.matrix_norm(A @ A.mT - B @ B.mT, ord=2) / norms.amin(-1)
    assert (cos <= bound).all() and cos.max() < 1e-2
