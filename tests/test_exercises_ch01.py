"""The chapter-1 checkers accept the right answer and explain a wrong one."""
import pytest
import torch

from icar.exercises import ch01


def gd_right(states, t, eta):
    prefix = states[:, :t]
    return eta * torch.einsum("nti,ntj->nij", prefix[:, 1:], prefix[:, :-1].conj())


def ols_right(states, t):
    return torch.linalg.lstsq(states[:, : t - 1], states[:, 1:t]).solution.mT


def test_right_answers_pass(capsys):
    ch01.check_gd_estimate(gd_right)
    ch01.check_ols_estimate(ols_right)
    assert "passed" in capsys.readouterr().out


def test_wrong_answers_are_explained():
    with pytest.raises(AssertionError, match="transpose"):
        ch01.check_gd_estimate(lambda s, t, e: gd_right(s, t, e).mT)
    with pytest.raises(AssertionError, match="conjugate"):
        ch01.check_gd_estimate(lambda s, t, e: e * torch.einsum("nti,ntj->nij", s[:, 1:t], s[:, : t - 1]))
    with pytest.raises(AssertionError, match="i < t"):
        ch01.check_gd_estimate(lambda s, t, e: gd_right(s, t + 1, e))
    with pytest.raises(AssertionError, match="W_hat\\^T"):
        ch01.check_ols_estimate(lambda s, t: ols_right(s, t).mT)
    with pytest.raises(AssertionError, match="expected shape"):
        ch01.check_ols_estimate(lambda s, t: ols_right(s, t)[0])
    with pytest.raises(AssertionError, match="torch.Tensor"):
        ch01.check_ols_estimate(lambda s, t: ols_right(s, t).numpy())
