"""icar.data: shapes, dtypes, determinism, commuting, orthogonality, roll-outs, error messages."""
import math

import numpy as np
import pytest
import torch

from icar import data as D
from icar.runtime import DeviceUnavailableError


def test_rotation_and_blocks():
    th = torch.tensor([0.3, -1.2], dtype=torch.float64)
    R = D.rotation(th)
    assert R.shape == (2, 2, 2)
    assert torch.allclose(R[0], torch.tensor([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]], dtype=torch.float64))
    B = D.block_rotation(torch.rand(5, 3, dtype=torch.float64))
    assert B.shape == (5, 6, 6)
    mask = torch.block_diag(*[torch.ones(2, 2)] * 3).bool()
    assert B[:, ~mask].abs().max() == 0


@pytest.mark.parametrize("d", [2, 4, 6])
def test_commuting_orthogonal_commute_and_are_orthogonal(d):
    W = D.commuting_orthogonal(8, d, seed=0)
    assert W.shape == (8, d, d) and W.dtype == torch.float64
    eye = torch.eye(d, dtype=torch.float64)
    assert (W.mT @ W - eye).abs().max() < 1e-12
    comm = W[:, None] @ W[None] - W[None] @ W[:, None]
    assert comm.abs().max() < 1e-12


def test_haar_does_not_commute_and_is_orthogonal():
    W = D.haar_orthogonal(6, 5, seed=1)
    assert (W.mT @ W - torch.eye(5, dtype=torch.float64)).abs().max() < 1e-12
    assert (W[0] @ W[1] - W[1] @ W[0]).abs().max() > 1e-2


def test_haar_is_haar_first_moment():
    # Under Haar measure E[W] = 0 and E[W_11^2] = 1/d; QR without sign correction fails the first test.
    W = D.haar_orthogonal(20000, 3, seed=2)
    assert W.mean(0).abs().max() < 0.03
    assert abs(W[:, 0, 0].pow(2).mean().item() - 1 / 3) < 0.01


def test_unitary_diagonal():
    W = D.unitary_diagonal(4, 3, seed=0)
    assert W.dtype == torch.complex128 and W.shape == (4, 3, 3)
    assert torch.allclose(torch.diagonal(W, dim1=-2, dim2=-1).abs(), torch.ones(4, 3, dtype=torch.float64))
    assert (W - torch.diag_embed(torch.diagonal(W, dim1=-2, dim2=-1))).abs().max() == 0


def test_determinism_same_seed_same_tensor():
    a = D.sample_ar("commuting", 5, 4, 7, seed=123)
    b = D.sample_ar("commuting", 5, 4, 7, seed=123)
    c = D.sample_ar("commuting", 5, 4, 7, seed=124)
    assert torch.equal(a.states, b.states) and torch.equal(a.W, b.W)
    assert not torch.equal(a.states, c.states)


@pytest.mark.parametrize("law", ["commuting", "unitary", "haar"])
def test_sample_ar_follows_recursion(law):
    states, W = D.sample_ar(law, 6, 4, 9, seed=3, init="gaussian")
    assert states.shape == (6, 9, 4)
    nxt = torch.einsum("nij,ntj->nti", W, states[:, :-1])
    assert (nxt - states[:, 1:]).abs().max() < 1e-12
    norms = torch.linalg.vector_norm(states, dim=-1)
    assert (norms - norms[:, :1]).abs().max() < 1e-12  # orthogonal/unitary: the norm is conserved


def test_rollout_matches_numpy_loop():
    W = D.haar_orthogonal(3, 4, seed=0)
    s1 = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    states = D.rollout(W, s1, 11).numpy()
    Wn, s = W.numpy(), s1.numpy()
    for t in range(11):
        np.testing.assert_allclose(states[:, t], s, atol=1e-12)
        s = np.einsum("nij,nj->ni", Wn, s)


def test_matrix_powers():
    W = D.haar_orthogonal(2, 3, seed=5)
    P = D.matrix_powers(W, 6)
    for k in range(6):
        assert torch.allclose(P[:, k], torch.linalg.matrix_power(W, k), atol=1e-12)


def test_rollout_map_nonlinear():
    s1 = torch.ones(2, 3, dtype=torch.float64)
    out = D.rollout_map(lambda s: s / 2, s1, 4)
    assert torch.allclose(out[:, 3], s1 / 8)


def test_initial_state_laws():
    n, d = 4000, 5
    x = D.initial_states("sphere", n, d, seed=0)
    assert torch.allclose(torch.linalg.vector_norm(x, dim=-1), torch.ones(n, dtype=torch.float64))
    x = D.initial_states("sparse", n, d, seed=0, scale=2.0)
    assert ((x != 0).sum(-1) == 1).all() and set(x[x != 0].tolist()) == {-2.0, 2.0}
    x = D.initial_states("ones", 3, d, seed=0)
    assert torch.equal(x, torch.ones(3, d, dtype=torch.float64))
    x = D.initial_states("phases", n, d, seed=0, dtype=torch.complex128)
    assert torch.allclose(x.abs(), torch.full((n, d), 1 / math.sqrt(d), dtype=torch.float64))
    x = D.initial_states("gaussian", n, d, seed=0, dtype=torch.complex128)
    assert abs(x.abs().pow(2).mean().item() - 1.0) < 0.05
    assert abs(x.real.pow(2).mean().item() - 0.5) < 0.05


def test_user_given_W_shared_and_batched():
    R = D.rotation(torch.tensor(0.7, dtype=torch.float64))
    states, W = D.sample_ar(R, 3, 2, 5, seed=0)
    assert W.shape == (3, 2, 2) and torch.equal(W[0], R)


# ------------------------------------------------------------------ error messages
def test_odd_dimension_is_refused():
    with pytest.raises(ValueError, match="even"):
        D.commuting_orthogonal(3, 5, seed=0)


def test_non_orthogonal_W_is_refused():
    with pytest.raises(ValueError, match="must be orthogonal.*max"):
        D.sample_ar(2 * torch.eye(3, dtype=torch.float64), 2, 3, 4, seed=0)


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match=r"W must be square"):
        D.sample_ar(torch.ones(3, 2, dtype=torch.float64), 2, 3, 4, seed=0)
    with pytest.raises(ValueError, match=r"W must have shape \(n, d, d\)"):
        D.sample_ar(torch.eye(3, dtype=torch.float64), 2, 4, 4, seed=0)
    with pytest.raises(ValueError, match=r"s1 must have shape \(n, d\)"):
        D.rollout(torch.eye(3, dtype=torch.float64).expand(2, 3, 3), torch.ones(2, 4, dtype=torch.float64), 3)


def test_complex_vs_real_is_refused():
    with pytest.raises(TypeError, match="real.*complex|complex.*real"):
        D.rollout(D.unitary_diagonal(2, 3, seed=0), torch.ones(2, 3, dtype=torch.float64), 3)
    with pytest.raises(TypeError, match="complex"):
        D.unitary_diagonal(2, 3, seed=0, dtype=torch.float64)


def test_unknown_laws_and_seed():
    with pytest.raises(ValueError, match="context law must be one of"):
        D.sample_ar("gaussian", 2, 2, 3, seed=0)
    with pytest.raises(ValueError, match=r"^init must be one of"):
        D.sample_ar("haar", 2, 2, 3, seed=0, init="cube")
    with pytest.raises(ValueError, match="initial-state law must be one of"):
        D.initial_states("cube", 2, 2, seed=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        D.sample_ar("haar", 2, 2, 3, seed=None)


def test_missing_device_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        D.sample_ar("haar", 2, 2, 3, seed=0, device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        D.sample_ar("haar", 2, 2, 3, seed=0, device="tpu")


# ------------------------------------------------------------------ laws: moments, not only supports
def _mc_close(samples: torch.Tensor, expected, k: float = 5.0) -> None:
    """Monte-Carlo check: the mean of ``samples`` (over dim 0) is within ``k`` standard errors of ``expected``.

    The standard error is computed here, from the samples (sd / sqrt(n)), never taken from the code under test."""
    n = samples.shape[0]
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(n)
    exp = torch.as_tensor(expected, dtype=mean.dtype).expand_as(mean)
    assert ((mean - exp).abs() <= k * se + 1e-12).all(), (mean, exp, se)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_sphere_law_is_isotropic(dtype):
    # Uniform on the unit sphere: E x = 0 and E x x^* = I/d (and E x x^T = 0 if complex). A fixed unit vector, or a
    # law that favours some coordinates, has unit norm too but fails these moments.
    n, d = 8000, 4
    x = D.initial_states("sphere", n, d, seed=1, dtype=dtype)
    assert torch.allclose(torch.linalg.vector_norm(x, dim=-1), torch.ones(n, dtype=torch.float64))
    _mc_close(torch.view_as_real(x).reshape(n, -1) if x.is_complex() else x, 0.0)
    outer = x[:, :, None] * x[:, None, :].conj()
    eye = torch.eye(d, dtype=torch.float64) / d
    _mc_close(outer.real.reshape(n, -1), eye.reshape(-1))
    if x.is_complex():
        _mc_close(outer.imag.reshape(n, -1), 0.0)
        _mc_close(torch.view_as_real(x[:, :, None] * x[:, None, :]).reshape(n, -1), 0.0)
    assert (torch.linalg.vector_norm(D.initial_states("sphere", 50, d, seed=2, scale=3.0), dim=-1) - 3.0).abs().max() < 1e-12


def test_gaussian_law_moments_and_scale():
    n, d, c = 8000, 3, 2.0
    x = D.initial_states("gaussian", n, d, seed=3, scale=c)
    assert x.dtype == torch.float64
    _mc_close(x, 0.0)
    _mc_close((x[:, :, None] * x[:, None, :]).reshape(n, -1), (c**2 * torch.eye(d, dtype=torch.float64)).reshape(-1))
    z = D.initial_states("gaussian", n, d, seed=3, scale=c, dtype=torch.complex128)
    assert z.dtype == torch.complex128
    _mc_close(z.abs().pow(2), c**2)                       # E|x_k|^2 = c^2
    _mc_close(z.abs().pow(4), 2 * c**4)                   # circular complex Gaussian: E|x|^4 = 2 c^4
    _mc_close(z.real * z.imag, 0.0)
    _mc_close(z.real.pow(2) - z.imag.pow(2), 0.0)         # real and imaginary parts have equal variance


def test_sparse_law_index_and_sign_are_uniform():
    n, d, c = 6000, 4, 1.5
    x = D.initial_states("sparse", n, d, seed=4, scale=c)
    assert ((x != 0).sum(-1) == 1).all() and set(x[x != 0].tolist()) == {-c, c}
    _mc_close((x != 0).double(), 1.0 / d)                 # the index J is uniform
    _mc_close(x.sum(-1, keepdim=True), 0.0)               # the sign is symmetric


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_phases_law(dtype):
    n, d, c = 6000, 4, 2.0
    x = D.initial_states("phases", n, d, seed=5, scale=c, dtype=dtype)
    assert x.dtype == dtype
    assert torch.allclose(x.abs(), torch.full((n, d), c / math.sqrt(d), dtype=torch.float64))
    _mc_close(torch.view_as_real(x).reshape(n, -1) if x.is_complex() else x, 0.0)   # random phases / signs
    if x.is_complex():
        _mc_close(torch.view_as_real(x.pow(2)).reshape(n, -1), 0.0)                 # phases uniform, not +-1 only
    ones = D.initial_states("ones", 2, d, seed=0, scale=c, dtype=dtype)
    assert ones.dtype == dtype and torch.equal(ones, torch.full((2, d), c, dtype=dtype))
