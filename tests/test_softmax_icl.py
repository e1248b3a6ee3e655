"""Fast mirrors of the Chapter 7 claims (training dynamics of softmax attention on feature prompts)."""
import math

import pytest
import torch

import icar.softmax_icl as S
from icar.exercises import ch07
from icar.train import train


def _raw_vs_reduced(K=3, d=5, N=12, B0=8, steps=15, lr=2.0):
    V = S.orthonormal_features(K, d, seed=1)
    laws = torch.stack([S.feature_probs(K), S.feature_probs(K, "imbalanced", 0.6)])
    tokens = [S.sample_tokens(p, N, B0, seed=2 + i) for i, p in enumerate(laws)]
    designs = [S.design_prompts(V, t, p) for t, p in zip(tokens, laws)]
    E, target, weight = (torch.stack([x[j] for x in designs]) for j in range(3))
    raw = S.SoftmaxICL(2, d)
    train(raw, lambda s, g: (E, target), steps=steps, lr=lr, optimizer="sgd",
          loss_fn=lambda pr, tg: S.raw_loss(pr, tg, weight), progress=False)
    red = S.reduced_gd(torch.stack([S.counts_of(t, K) for t in tokens]), laws, lr, steps, progress=False)
    return V, raw.Q.detach(), red


def test_raw_model_equals_reduced_dynamics_and_stays_in_span():
    V, Q, red = _raw_vs_reduced()
    P = V @ V.T
    assert (Q - P @ Q @ P).abs().max() < 1e-12
    assert (V.T @ Q @ V - red.Z[-1]).abs().max() < 1e-10
    assert red.Z[-1].abs().max() > 0.05          # training moved the logits: the comparison is not of zeros


def test_reduced_grad_matches_autograd_and_conserves_columns():
    g = torch.Generator().manual_seed(0)
    K = 5
    p = S.feature_probs(K, "imbalanced", 0.4)
    counts = S.sample_counts(p, 8, 30, seed=1)
    Z = torch.randn(2, K, K, generator=g, dtype=torch.float64, requires_grad=True)
    S.reduced_loss(Z, counts, p).sum().backward()
    G = S.reduced_grad(Z.detach(), counts, p)
    assert (G - Z.grad).abs().max() < 1e-12
    assert G.sum(-2).abs().max() < 1e-14


def test_w_integration_monte_carlo():
    K, d, N = 3, 4, 10
    V = S.orthonormal_features(K, d, seed=3)
    p = S.feature_probs(K, "imbalanced", 0.5)
    Z = torch.tensor([[1.0, -0.3, 0.2], [-0.5, 0.8, -0.1], [-0.5, -0.5, -0.1]], dtype=torch.float64)
    Q = V @ Z @ V.T
    model = S.SoftmaxICL(1, d)
    with torch.no_grad():
        model.Q.copy_(Q[None])
    E, y, idx, _ = S.sample_prompts(V, p, N, 20000, seed=4)
    with torch.no_grad():
        sq = 0.5 * (model(E)[0] - y) ** 2
    diff = sq - S.integrated_row_loss(Z, idx)
    assert abs(diff.mean() / (diff.std() / math.sqrt(len(diff)))) < 4
    # a wrong reduction (no factor 1/2) would be far off
    diff_bad = sq - 2 * S.integrated_row_loss(Z, idx)
    assert abs(diff_bad.mean() / (diff_bad.std() / math.sqrt(len(diff)))) > 10


def test_initial_loss_closed_form():
    p = S.feature_probs(4, "imbalanced", 0.6)
    counts = S.sample_counts(p, 20, 20000, seed=6)
    mc = S.reduced_loss(torch.zeros(4, 4, dtype=torch.float64), counts, p)
    assert abs(mc.item() - S.initial_loss(p, 20).item()) < 0.01 * S.initial_loss(p, 20).item()
    assert abs(S.initial_loss(S.feature_probs(10), 10**9).item() - 0.45) < 1e-8   # (K-1)/(2K)


def test_balanced_phase_one_matches_closed_form_in_mean_field():
    Ks = [5, 10]
    Kmax = max(Ks)
    laws = torch.stack([torch.cat([S.feature_probs(k), torch.zeros(Kmax - k, dtype=torch.float64)]) for k in Ks])
    counts = torch.stack([S.mean_field_counts(laws[i], 20 * k) for i, k in enumerate(Ks)])
    run = S.reduced_gd(counts, laws, 1.0, 160, progress=False)
    for i, k in enumerate(Ks):
        tI = S.first_time_above(run.steps, run.attention[:, i, 0, 0], 0.5).item()
        assert abs(tI - S.balanced_phase_time(k)) / S.balanced_phase_time(k) < 0.03
    assert (run.alpha[:-1] - run.alpha[1:]).max() < 1e-12
    assert run.Z.sum(-2).abs().max() < 1e-10
    assert abs(S.balanced_phase_time(10) - 143.79) < 0.01
    assert S.balanced_late_constant(10) == 2.25


def test_imbalanced_stagewise_order_and_competition():
    K = 8
    p = S.feature_probs(K, "imbalanced", 0.5)[None]
    run = S.reduced_gd(S.mean_field_counts(p, 20 * K), p, 1.0, 700, progress=False)
    t_dom = S.first_time_below(run.steps, run.per_feature[:, 0, 0], 0.01).item()
    t_rare = S.first_time_below(run.steps, run.per_feature[:, 0, 1], 0.01).item()
    assert t_dom * 3 < t_rare < math.inf
    Zk = run.Z[:, 0, :, 1]                       # rare query 1
    beta_dom, beta_oth = Zk[:, 0], Zk[:, 2]
    assert beta_oth.max() > 0.005 and beta_oth[-1] < -0.05
    assert (beta_dom[1:] - beta_dom[:-1]).max() <= 0
    A = run.attention[:, 0, 1]
    marks = [run.steps[beta_oth.argmax()].item(),
             S.first_time_above(run.steps, A[:, 1] - A[:, 0], 0.0).item(),
             S.first_time_above(run.steps, A[:, 1], 0.5).item(), t_rare]
    assert all(a < b for a, b in zip(marks, marks[1:]))


def test_linear_attention_floor_and_closed_form_gd():
    K, N = 6, 30
    p = S.feature_probs(K, "imbalanced", 0.5)
    counts = S.sample_counts(p, N, 4000, seed=7)[None]
    floor = S.linear_attention_floor(counts, p[None], N)[0]
    want = 0.5 * (1 - p) / (N * p + 1 - p)
    assert ((floor - want) / want).abs().max() < 0.1
    # explicit GD on the linear-attention reduced loss with autograd vs the closed form
    f = counts[0] / N
    G = torch.zeros(K, K, dtype=torch.float64, requires_grad=True)
    lr = 3.0
    for _ in range(25):
        L = (p * 0.5 * ((f[:, :, None] * G[None] - torch.eye(K, dtype=torch.float64)) ** 2).sum(1).mean(0)).sum()
        (grad,) = torch.autograd.grad(L, G)
        G = (G - lr * grad).detach().requires_grad_(True)
    gamma, Lk = S.linear_attention_gd(counts, p[None], N, lr, torch.tensor([25.0]))
    assert (torch.diagonal(G.detach()) - gamma[0, 0]).abs().max() < 1e-12
    assert (G.detach() - torch.diag(torch.diagonal(G.detach()))).abs().max() == 0
    # the softmax model reaches below that floor on the same kind of data
    run = S.reduced_gd(S.mean_field_counts(p[None], N), p[None], 1.0, 400, progress=False)
    assert run.per_feature[-1, 0, 1] < 0.5 * want[1]


def test_query_in_softmax_shrinks_prediction():
    V = torch.eye(2, dtype=torch.float64)
    E, y, _, _ = S.sample_prompts(V, S.feature_probs(2), 4, 50, seed=0)
    m_in, m_out = S.SoftmaxICL(1, 2, include_query=True), S.SoftmaxICL(1, 2)
    with torch.no_grad():
        for m in (m_in, m_out):
            m.Q.copy_(40.0 * torch.eye(2, dtype=torch.float64)[None])
        out_in, out_out = m_in(E)[0], m_out(E)[0]
    present = (E[:, :2, :-1] * E[:, :2, -1:]).sum(1).max(-1).values > 0.5     # query feature in the prompt
    assert (out_out - y)[present].abs().max() < 1e-10
    assert (out_in - y)[present].abs().max() > 0.1


def test_feature_probs_and_counts():
    p = S.feature_probs(5, "imbalanced", 0.6)
    assert torch.allclose(p, torch.tensor([0.6, 0.1, 0.1, 0.1, 0.1], dtype=torch.float64))
    c = S.sample_counts(torch.stack([p, S.feature_probs(5)]), 17, 9, seed=0)
    assert c.shape == (2, 9, 5) and (c.sum(-1) == 17).all()
    assert torch.equal(c, S.sample_counts(torch.stack([p, S.feature_probs(5)]), 17, 9, seed=0))
    V = S.orthonormal_features(3, 6, seed=0)
    assert torch.allclose(V.T @ V, torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_error_messages():
    with pytest.raises(ValueError, match="kind must be 'balanced' or 'imbalanced'"):
        S.feature_probs(4, "skewed")
    with pytest.raises(ValueError, match=r"p1 .* must lie in \(0, 1\)"):
        S.feature_probs(4, "imbalanced", 1.2)
    with pytest.raises(ValueError, match="do not fit in dimension"):
        S.orthonormal_features(5, 3)
    with pytest.raises(ValueError, match="sum to 1"):
        S.sample_counts(torch.tensor([0.5, 0.6], dtype=torch.float64), 5, 2)
    with pytest.raises(ValueError, match=r"E must have shape \(B, d\+1, N\+1\)"):
        S.SoftmaxICL(1, 3)(torch.zeros(2, 3, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="real floating point"):
        S.SoftmaxICL(1, 3)(torch.zeros(2, 4, 5, dtype=torch.complex128))
    with pytest.raises(ValueError, match=r"counts must have shape \(P, K\)"):
        S.feature_attention(torch.zeros(3, 3, dtype=torch.float64), torch.ones(4, 2))
    with pytest.raises(ValueError, match="Z must have shape"):
        S.feature_attention(torch.zeros(3, 2, dtype=torch.float64), torch.ones(4, 2))
    with pytest.raises(ValueError, match="feature indices"):
        S.design_prompts(torch.eye(3, dtype=torch.float64), torch.full((2, 4), 3), S.feature_probs(3))
    with pytest.raises(ValueError, match=r"r must lie in \(1/K, 1\)"):
        S.balanced_time_to_share(0.05, 10)
    with pytest.raises(ValueError, match=r"p must have shape \(M, K\)"):
        S.reduced_gd(torch.ones(2, 3, 4), S.feature_probs(4), 1.0, 5)
    with pytest.raises(ValueError, match="lr too large"):
        S.linear_attention_gd(torch.full((1, 2, 2), 5.0), S.feature_probs(2)[None], 10, 100.0, torch.arange(3))


def _student_right(Z, counts):
    a = torch.softmax(Z.T.unsqueeze(0) + torch.log(counts).unsqueeze(1), dim=-1)
    return 0.5 * (a - torch.eye(Z.shape[0], dtype=Z.dtype)).pow(2).sum(-1).mean(0)


def test_checker_accepts_the_right_answer(capsys):
    ch07.check_per_query_loss(_student_right)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda Z, c: 2 * _student_right(Z, c), "factor 1/2"),
    (lambda Z, c: _student_right(Z.T.contiguous(), c), "COLUMN"),
    (lambda Z, c: _student_right(Z, torch.ones_like(c)), "ignores the counts"),
    (lambda Z, c: _student_right(Z, c) * c.shape[0], "summed over the prompts"),
    (lambda Z, c: _student_right(Z, c)[:-1], "shape"),
    (lambda Z, c: _student_right(Z, c) + 0.01, "differ from the reference"),
])
def test_checker_explains_wrong_answers(wrong, message):
    with pytest.raises(AssertionError, match=message):
        ch07.check_per_query_loss(wrong)


def test_query_in_softmax_has_a_floor_after_training():
    # with the query in the softmax, the target tokens get at most n_k / (n_k + 1) of the attention, so
    # L >= 1/2 sum_k p_k E[1 / (n_k + 1)^2] whatever Q is; check it on a trained model (quadrature design)
    K, d, N, B0 = 3, 4, 6, 10
    V = S.orthonormal_features(K, d, seed=0)
    p = S.feature_probs(K)
    tokens = S.sample_tokens(p, N, B0, seed=1)
    E, y, w = S.design_prompts(V, tokens, p)
    model = S.SoftmaxICL(1, d, include_query=True)
    res = train(model, lambda s, g: (E, y), steps=200, lr=5.0, optimizer="sgd",
                loss_fn=lambda pr, tg: S.raw_loss(pr, tg, w), progress=False)
    n = S.counts_of(tokens, K)
    bound = 0.5 * (p * (1.0 / (n + 1) ** 2).mean(0)).sum()
    assert res.final.item() >= bound.item() - 1e-12
    assert res.final.item() < 2 * bound.item()        # training gets close to it: the bound is the real floor


def test_reduced_gd_rejects_empty_prompts():
    with pytest.raises(ValueError, match="at least one token per prompt"):
        S.reduced_gd(torch.zeros(1, 2, 3, dtype=torch.float64), S.feature_probs(3)[None], 1.0, 3)


def test_step_size_only_rescales_time():
    etas = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    p = torch.stack([S.feature_probs(6)] * 3)
    run = S.reduced_gd(S.mean_field_counts(p, 120), p, etas, 500, progress=False)
    scaled = S.first_time_below(run.steps, run.loss, 0.02) * etas
    assert torch.isfinite(scaled).all()
    assert scaled.max() / scaled.min() - 1 < 0.02
