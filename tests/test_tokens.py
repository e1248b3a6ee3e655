"""Augmented tokens are built in one place (icar.tokens); the chapters' entry points agree with it."""
import pytest
import torch

from icar import augmented, mesa, noncommuting, tokens


def _states(*shape):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_slots_hold_zero_current_previous():
    s = _states(2, 5, 3)
    e = tokens.augment(s)
    assert e.shape == (2, 5, 9)
    assert torch.equal(e[..., :3], torch.zeros_like(s))
    assert torch.equal(e[..., 3:6], s)
    assert torch.equal(e[:, 0, 6:], torch.zeros(2, 3, dtype=s.dtype))   # s_0 = 0
    assert torch.equal(e[:, 1:, 6:], s[:, :-1])


def test_chapter_entry_points_use_the_same_tokens():
    s = _states(4, 6, 2)
    e = tokens.augment(s)
    assert torch.equal(augmented.augment(s), e)
    assert torch.equal(noncommuting.augment(s), e)
    assert torch.equal(mesa.tokens(s), e[..., 2:])                      # chapter 3: no answer slot
    assert torch.equal(tokens.augment(s, answer_slot=False), e[..., 2:])
    s4 = _states(3, 4, 6, 2)                                              # leading dimensions broadcast
    assert torch.equal(noncommuting.augment(s4)[1], tokens.augment(s4[1]))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(\.\.\., T, d\)"):
        tokens.augment(torch.zeros(3))
    with pytest.raises(ValueError, match="states"):
        mesa.tokens(torch.zeros(2, 3, 4, 5))
