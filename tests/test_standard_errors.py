"""Standard errors returned by the library, checked against a computation done here.

Several chapters (2, 3, 4, 5) state claims in Monte-Carlo standard errors returned by the function that computes
the mean. A standard error that forgot its 1/sqrt(n) would make those claims pass whatever the mean is, so every
such function is pinned here: against numpy on the same samples, and by its 1/sqrt(n) scaling.
"""
import math

import numpy as np
import torch

import icar.augmented as A
import icar.mesa as mesa
import icar.multihead as mh
import icar.noncommuting as nc
from icar.data import sample_ar


def _mean_se(x: np.ndarray, axis: int):
    """Sample mean and its standard error sd / sqrt(n) (n - 1 in the variance) along ``axis``."""
    n = x.shape[axis]
    return x.mean(axis), x.std(axis, ddof=1) / math.sqrt(n)


def test_held_out_loss_and_per_position_errors():
    model = A.AugmentedLinearAttention(4, 2, seed=3, init_scale=0.5, dtype=torch.complex128)
    states = sample_ar("unitary", 300, 2, 6, seed=4, init="phases").states
    sq = (model.predict(states)[..., :-1, :] - states[None, :, 1:]).abs().pow(2).sum(-1).detach().numpy()  # (M, B, T-1)
    loss, se = A.held_out_loss(model, states)
    want_loss, want_se = _mean_se(sq.mean(-1), axis=1)
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-12)
    np.testing.assert_allclose(se.numpy(), want_se, rtol=1e-10)
    err, se_pos = A.per_position_errors(model, states)
    want_err, want_se_pos = _mean_se(sq, axis=1)
    np.testing.assert_allclose(err.numpy(), want_err, rtol=1e-12)
    np.testing.assert_allclose(se_pos.numpy(), want_se_pos, rtol=1e-10)
    # one set of states per group of models: (G, B, T, d) with G = 2, models 0-1 see set 0, models 2-3 set 1
    grouped = torch.stack([states, sample_ar("unitary", 300, 2, 6, seed=5, init="phases").states])
    sq_g = (model.predict(grouped)[..., :-1, :] - grouped.repeat_interleave(2, 0)[:, :, 1:]).abs().pow(2).sum(-1)
    loss_g, se_g = A.held_out_loss(model, grouped)
    want_loss, want_se = _mean_se(sq_g.detach().mean(-1).numpy(), axis=1)
    np.testing.assert_allclose(loss_g.numpy(), want_loss, rtol=1e-12)
    np.testing.assert_allclose(se_g.numpy(), want_se, rtol=1e-10)


def test_ratio_estimate_delta_method():
    terms = mesa.reduced_terms(mesa.sample("gaussian", 400, 3, 8, seed=6)[0])
    p, se = mesa.ratio_estimate(terms)
    Mi, Ni = terms[:, 0].numpy(), terms[:, 1].numpy()
    p_np = Ni.mean() / Mi.mean()
    se_np = (Ni - p_np * Mi).std(ddof=1) / (math.sqrt(len(Mi)) * Mi.mean())
    assert abs(p - p_np) < 1e-12 * abs(p_np) and abs(se - se_np) < 1e-10 * se_np
    # 1/sqrt(n): sixteen times the data, a quarter of the standard error (the uniform law has light tails, so the
    # estimated spread is stable; measured ratios 3.6-4.8 over seeds)
    _, se_1 = mesa.ratio_estimate(mesa.reduced_terms(mesa.sample("uniform", 400, 3, 8, seed=6)[0]))
    _, se_16 = mesa.ratio_estimate(mesa.reduced_terms(mesa.sample("uniform", 6400, 3, 8, seed=7)[0]))
    assert 3.0 < se_1 / se_16 < 5.3


def test_position_errors_mean_and_se_over_chunks():
    states = mesa.sample("uniform", 50, 3, 9, seed=8)[0]
    mean, se = mesa.position_errors(states, 0.4, chunk=7)  # uneven chunks on purpose
    sq = (mesa.one_step_gd_predictions(states, 0.4)[0] - states[:, 2:]).abs().pow(2).sum(-1).numpy()  # (n, T-2)
    want_mean, want_se = _mean_se(sq, axis=0)
    np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-12)
    np.testing.assert_allclose(se.numpy(), want_se, rtol=1e-10)


def test_mse_standard_error():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 40, 5, 2, generator=g, dtype=torch.float64)
    target = torch.randn(40, 5, 2, generator=g, dtype=torch.float64)
    per_seq = (pred - target[None]).pow(2).mean((2, 3)).numpy()  # (M, B)
    np.testing.assert_allclose(nc.mse_standard_error(pred, target).numpy(), _mean_se(per_seq, axis=1)[1], rtol=1e-10)
    np.testing.assert_allclose(nc.mse_standard_error(pred, target.expand(3, -1, -1, -1)).numpy(),
                               _mean_se(per_seq, axis=1)[1], rtol=1e-10)


def test_mc_position_loss_se_is_the_spread_of_independent_estimates():
    # The returned s.e. is a running-moment formula over chunks: compare it with the spread of 16 independent
    # estimates (batch means) and check the 1/sqrt(n) scaling across chunk boundaries.
    g = torch.Generator().manual_seed(3)
    C = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    P = torch.randn(2, 5, 5, generator=g, dtype=torch.float64)
    runs = [mh.mc_position_loss("unitary", C, P, 3, n=500, seed=100 + k) for k in range(16)]
    means = torch.stack([r.mean for r in runs])            # (16, M)
    se = torch.stack([r.se for r in runs]).mean(0)         # (M,)
    ratio = means.std(0) / se                              # ~1 +- 0.18 (chi with 15 degrees of freedom)
    assert ((ratio > 0.55) & (ratio < 1.6)).all(), ratio
    big = mh.mc_position_loss("unitary", C, P, 3, n=8000, seed=7, chunk=3000)
    assert ((se / big.se > 3.4) & (se / big.se < 4.6)).all()   # sqrt(8000 / 500) = 4
