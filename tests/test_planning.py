"""Fast mirrors of the claims of Chapter 8 (planning as path-finding) and the error messages of icar.planning."""
from __future__ import annotations

import pytest
import torch

import icar
import icar.exercises.ch08 as ex08
import icar.planning as pl


@pytest.fixture(scope="module")
def trained():
    data = pl.make_data(2, 40, 0.15, train_frac=0.2, n_paths=20, seed=0)
    run = pl.train_planner(data.counts, steps=300, lr=300.0, n_snapshots=5, progress=False)
    return data, run


# ----------------------------------------------------------------------------------------------- data
def test_reachability_matches_a_depth_first_search():
    A = pl.random_dag(3, 15, 0.2, seed=4)
    R = pl.reachability(A)
    for g in range(3):
        for k in range(15):
            seen, stack = {k}, [k]
            while stack:
                u = stack.pop()
                for v in torch.nonzero(A[g, u]).flatten().tolist():
                    if v not in seen:
                        seen.add(v)
                        stack.append(v)
            for t in range(15):
                assert bool(R[g, t, k]) == (t in seen)


def test_generator_is_a_seeded_dag_with_the_right_density():
    A = pl.random_dag(4, 60, 0.1, seed=1)
    assert torch.equal(A, pl.random_dag(4, 60, 0.1, seed=1))
    assert not torch.equal(A, pl.random_dag(4, 60, 0.1, seed=2))
    assert not bool(A.tril().any())
    n_pairs = 4 * 60 * 59 / 2
    rate = A.sum().item() / n_pairs  # binomial: standard error sqrt(0.09 / 7080) = 0.0036
    assert abs(rate - 0.1) < 4 * (0.09 / n_pairs) ** 0.5


def test_paths_are_valid_and_every_edge_is_observed(trained):
    data, _ = trained
    P = data.paths
    cur, nxt = P[:, :-1], P[:, 1:]
    step = (cur >= 0) & (nxt >= 0)
    g = data.graph[:, None].expand_as(cur)
    assert bool(data.A[g[step], cur[step], nxt[step]].all())
    last = torch.where(P >= 0, P, torch.full_like(P, -10)).gather(1, ((P >= 0).sum(1) - 1)[:, None]).squeeze(1)
    assert torch.equal(last, data.target) and torch.equal(P[:, 0], data.source)
    A_obs, _ = pl.observed_matrices(data.counts)
    assert torch.equal(A_obs, data.A)  # design: every edge is a training pair with its one-edge path


def test_split_covers_every_reachable_pair_once_and_every_target(trained):
    data, _ = trained
    n = data.n
    reach = data.R.transpose(1, 2) & ~torch.eye(n, dtype=torch.bool)
    assert torch.equal(data.train | data.test, reach) and not bool((data.train & data.test).any())
    has_source = reach.any(1)
    assert torch.equal(data.train.any(1), has_source)
    assert bool(data.train[data.A].all())


# ----------------------------------------------------------------------------------------------- theory
def test_closed_form_gradients_match_autograd():
    data = pl.make_data(2, 15, 0.25, train_frac=0.5, n_paths=4, seed=3)
    model = pl.SimplifiedPlanner(2, 15, init_scale=1.0, seed=4)
    pairs, counts = pl.training_batch(data.counts)
    pl.count_cross_entropy(model(pairs), counts).sum().backward()
    gM, gV = pl.gradients(model.W_M.detach(), model.W_V.detach(), data.counts)
    assert (gM - model.W_M.grad).abs().max() < 1e-13
    assert (gV - model.W_V.grad).abs().max() < 1e-13
    assert gM.abs().max() > 1e-3  # not vacuous


def test_unobserved_entries_have_positive_gradient_at_any_parameters():
    data = pl.make_data(2, 20, 0.2, train_frac=0.3, n_paths=5, seed=8)
    gr = pl.entry_groups(data)
    g = torch.Generator().manual_seed(0)
    for scale in (0.1, 1.0, 5.0):
        W_M = scale * torch.randn(2, 20, 21, generator=g, dtype=torch.float64)
        W_V = scale * torch.randn(2, 20, 21, generator=g, dtype=torch.float64)
        gM, gV = pl.gradients(W_M, W_V, data.counts)
        assert gM[..., :20][gr["edge_non"]].min() > 0
        unobs_V = gr["reach_unobs"] | gr["unreach"]
        assert gV[..., :20][unobs_V].min() > 0
        assert gM.sum(-1).abs().max() < 1e-14 and gV.sum(-1).abs().max() < 1e-14


def test_training_monotone_conserved_and_sign_pattern(trained):
    data, run = trained
    gr = pl.entry_groups(data)
    n = data.n
    non_M = gr["edge_non"][None].expand(run.W_M.shape[0], -1, -1, -1)
    dM = (run.W_M[1:, ..., :n] - run.W_M[:-1, ..., :n])[non_M[1:]]
    unobs_V = (gr["reach_unobs"] | gr["unreach"])[None].expand(run.W_V.shape[0], -1, -1, -1)
    dV = (run.W_V[1:, ..., :n] - run.W_V[:-1, ..., :n])[unobs_V[1:]]
    assert dM.max() < 0 and dV.max() < 0
    assert run.W_M.sum(-1).abs().max() < 1e-10 and run.W_V.sum(-1).abs().max() < 1e-10
    WM, WV = run.W_M[-1, ..., :n], run.W_V[-1, ..., :n]
    assert WM[gr["edge_non"]].max() < 0 and WV[gr["reach_unobs"]].max() < 0
    assert min(pl.auc(WM[g], gr["edge_obs"][g], gr["edge_non"][g]) for g in range(2)) >= 0.95


def test_training_equals_hand_written_gradient_descent():
    data = pl.make_data(1, 12, 0.3, train_frac=0.5, n_paths=3, seed=2)
    run = pl.train_planner(data.counts, steps=4, lr=50.0, n_snapshots=2, progress=False)
    W_M = torch.zeros(1, 12, 13, dtype=torch.float64)
    W_V = torch.zeros_like(W_M)
    for _ in range(4):
        gM, gV = pl.gradients(W_M, W_V, data.counts)
        W_M, W_V = W_M - 50.0 * gM, W_V - 50.0 * gV
    assert (run.W_M[-1] - W_M).abs().max() < 1e-12 and (run.W_V[-1] - W_V).abs().max() < 1e-12
    assert run.steps == [0, 2, 4]


# ----------------------------------------------------------------------------------------------- planning
def test_algorithm1_true_matrices_always_succeed_and_observed_fail_exactly_at_degree_zero(trained):
    data, _ = trained
    A_obs, R_obs = pl.observed_matrices(data.counts)
    S, T, V = pl.pairs_of(data.test)
    g = torch.arange(S.shape[0])[:, None].expand_as(S)
    deg = pl.first_step_degree(A_obs, R_obs)[g, S, T]
    assert bool(pl.algorithm1(data.A, data.R, S, T, seed=1)[V].all())
    ok = pl.algorithm1(A_obs, R_obs, S, T, seed=1)
    assert bool(ok[V & (deg > 0)].all()) and not bool(ok[V & (deg == 0)].any())
    assert int((V & (deg == 0)).sum()) >= 20  # the transitive group is not empty


def test_trained_planner_solves_observed_pairs_and_fails_more_on_transitive(trained):
    data, run = trained
    greedy = pl.accuracy_by_group(run.W_M[-1], run.W_V[-1], data, greedy=True)
    sampled = pl.accuracy_by_group(run.W_M[-1], run.W_V[-1], data, greedy=False, seed=3)
    assert greedy["observed"][0] >= 0.95
    assert sampled["observed"][0] - sampled["transitive"][0] >= 0.1


def test_decode_flags_invalid_paths():
    A = torch.zeros(1, 3, 3, dtype=torch.bool)
    A[0, 0, 1] = A[0, 1, 2] = True
    W_M = torch.full((1, 3, 4), -10.0, dtype=torch.float64)
    W_V = torch.zeros_like(W_M)
    W_M[0, 0, 1] = W_M[0, 1, 2] = W_M[0, 2, 3] = 10.0  # 0 -> 1 -> 2 -> EOS
    s, t = torch.tensor([[0, 0, 1]]), torch.tensor([[2, 1, 2]])
    assert pl.decode(W_M, W_V, A, s, t).tolist() == [[True, False, True]]  # (0, 1) walks past its target


# ----------------------------------------------------------------------------------------------- errors
def test_error_messages():
    with pytest.raises(ValueError, match="shape \\(G, n, n\\)"):
        pl.reachability(torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="entries in \\{0, 1\\}"):
        pl.reachability(torch.full((1, 3, 3), 0.5))
    with pytest.raises(TypeError, match="complex"):
        pl.reachability(torch.zeros(1, 3, 3, dtype=torch.complex64))
    cyc = torch.zeros(1, 3, 3, dtype=torch.bool)
    cyc[0, 0, 1] = cyc[0, 1, 2] = cyc[0, 2, 0] = True
    with pytest.raises(ValueError, match="acyclic"):
        pl.require_dag(cyc)
    with pytest.raises(ValueError, match="acyclic"):
        pl.sample_paths(cyc, pl.reachability(cyc), cyc, 2)
    with pytest.raises(ValueError, match="W_V must have shape"):
        pl.decode(torch.zeros(1, 3, 4), torch.zeros(1, 3, 3), cyc, torch.zeros(1, 2, dtype=torch.long),
                  torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="probability"):
        pl.random_dag(1, 5, 1.5)
    with pytest.raises(TypeError, match="seeded"):
        pl.random_dag(1, 5, 0.1, seed=None)
    with pytest.raises(ValueError, match="\\(G, n, n, n\\+1\\)"):
        pl.observed_matrices(torch.zeros(1, 4, 4, 4))
    model = pl.SimplifiedPlanner(2, 5)
    with pytest.raises(ValueError, match="long \\(current, target\\)"):
        model(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="node ids must lie in 0..4"):
        model(torch.tensor([[0, 7]]))


# ----------------------------------------------------------------------------------------------- exercise
def test_checker_accepts_the_reference_and_explains_wrong_answers():
    ex08.check_gradients(pl.gradients)
    with pytest.raises(AssertionError, match="sign is flipped"):
        ex08.check_gradients(lambda a, b, N: tuple(-g for g in pl.gradients(a, b, N)))
    with pytest.raises(AssertionError, match="wrong axis"):
        ex08.check_gradients(lambda a, b, N: pl.gradients(a, b, N)[::-1])
    with pytest.raises(AssertionError, match="1/Z"):
        ex08.check_gradients(lambda a, b, N: tuple(g * N.sum((1, 2, 3))[:, None, None] for g in pl.gradients(a, b, N)))
    with pytest.raises(AssertionError, match="pair"):
        ex08.check_gradients(lambda a, b, N: a)


# ----------------------------------------------------------------------------------------------- composition test
@pytest.fixture(scope="module")
def tree_run():
    tree = pl.horizon_data(pl.binary_tree(4), max_train_dist=2)
    run = pl.train_planner(tree.counts, steps=200, lr=300.0, n_snapshots=1, progress=False)
    return tree, run


def test_tree_and_distances():
    A = pl.binary_tree(3)
    assert A.shape == (1, 15, 15) and int(A.sum()) == 14
    D = pl.distances(A)[0]
    assert D[0, 14].item() == 3 and D[1, 4].item() == 1 and D[1, 2].item() == -1 and D[5, 5].item() == 0
    tree = pl.horizon_data(A, 2)
    assert int(tree.train.sum()) == 14 + 12 and int(tree.test.sum()) == 8
    A_obs, _ = pl.observed_matrices(tree.counts)
    assert torch.equal(A_obs, A)


def test_tree_children_tie_in_W_M_and_share_is_one_half_on_unobserved_pairs(tree_run):
    tree, run = tree_run
    W_M, W_V = run.W_M[-1], run.W_V[-1]
    parents = torch.arange(7)
    assert (W_M[0, parents, 2 * parents + 1] - W_M[0, parents, 2 * parents + 2]).abs().max() < 1e-12  # symmetry
    S, T, V = pl.pairs_of(tree.test)
    share = pl.first_step_share(W_M, W_V, tree.A, tree.R, S, T)[V]
    assert (share - 0.5).abs().max() < 0.01
    S, T, V = pl.pairs_of(tree.train)
    assert pl.first_step_share(W_M, W_V, tree.A, tree.R, S, T)[V].min() > 0.99


def test_tree_sampled_accuracy_is_no_better_than_guessing(tree_run):
    tree, run = tree_run
    dist, acc, cnt = pl.accuracy_by_distance(run.W_M[-1], run.W_V[-1], tree, n_samples=100, seed=1,
                                             mask=tree.train | tree.test)
    assert dist.tolist() == [1, 2, 3, 4]
    guess = torch.tensor([1.0, 1.0, 0.5, 0.25], dtype=torch.float64)
    assert bool((acc[2:] <= guess[2:] + 3 * (0.25 / cnt[2:]) ** 0.5).all())
    assert bool((acc[:2] >= 0.95).all())
    assert acc[2] > 0.3  # the last, observed steps still work: the drop is the guessed step, not a broken model


def test_count_loss_equals_the_token_level_loss_of_the_training_lines():
    data = pl.make_data(1, 14, 0.3, train_frac=0.5, n_paths=3, seed=6)
    model = pl.SimplifiedPlanner(1, 14, init_scale=0.7, seed=1)
    P = data.paths
    nxt = torch.cat([P[:, 1:], torch.full((P.shape[0], 1), -1)], 1)
    valid = P >= 0
    nxt = torch.where(valid & (nxt < 0), torch.full_like(nxt, 14), nxt)  # <eos> right after the target
    ctx = torch.stack([P[valid], data.target[:, None].expand_as(P)[valid]], -1)  # (current, target) per token
    token_loss = torch.nn.functional.cross_entropy(model(ctx)[0], nxt[valid])  # mean over every predicted token
    pairs, counts = pl.training_batch(data.counts)
    assert abs(token_loss.item() - pl.count_cross_entropy(model(pairs), counts).item()) < 1e-12


def test_checker_flags_unweighted_probabilities():
    def unweighted(W_M, W_V, N):
        p = torch.softmax(W_M[:, :, None, :] + W_V[:, None, :, :], -1)
        Z = N.sum((1, 2, 3))[:, None, None]
        return (p - N).sum(2) / Z, (p - N).sum(1) / Z
    with pytest.raises(AssertionError, match="weighted by how often"):
        ex08.check_gradients(unweighted)
