"""Every checker accepts the instructor's solution (also in float32 and as numpy/torch scalars) and rejects plausible
wrong answers with a message that names the mistake.

The right answers are read from the solution cells of the assignments (``book/assignments/chNN``), so the tests
and the notebooks cannot drift apart. ``WRONG`` lists, per checker, the wrong answers and the words their message
must contain; ``test_every_checker_meets_five_wrong_answers`` keeps at least five per checker.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from icar.exercises import exercises_of, scoreboard
from icar.exercises import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [f"ch{n:02d}" for n in range(1, 9)]


def solutions(chapter: str) -> dict:
    """Execute the solution cells of an assignment; return the functions they define."""
    nb = json.loads((ROOT / "book" / "assignments" / chapter / f"{chapter}_assignment.ipynb").read_text())
    ns = {"torch": torch, "math": math}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
            exec("".join(cell["source"]), ns)
    return ns


S = {ch: solutions(ch) for ch in CHAPTERS}


def f32(fn):
    """The same answer computed and returned in float32 (complex64)."""
    def low(*args):
        args = [a.to(torch.complex64 if a.is_complex() else torch.float32) if isinstance(a, torch.Tensor)
                and a.is_floating_point() or (isinstance(a, torch.Tensor) and a.is_complex()) else a for a in args]
        out = fn(*args)

        def cast(o):
            return o.to(torch.complex64 if o.is_complex() else torch.float32)
        return tuple(cast(o) for o in out) if isinstance(out, tuple) else cast(out)
    return low


def scaled(fn, factor):
    def wrong(*args):
        out = fn(*args)
        return tuple(o * factor for o in out) if isinstance(out, tuple) else out * factor
    return wrong


# ------------------------------------------------------------------------------------------------ wrong answers
s1, s2, s3, s4, s5, s6, s7, s8 = (S[c] for c in CHAPTERS)


def _gd_noconj(s, t, e):
    return e * torch.einsum("nti,ntj->nij", s[:, 1:t], s[:, : t - 1])


def _kz(**kw):
    return lambda states: ch06._sweep(states, **kw)


def _fa(Z, c):
    return s7["feature_attention_weights"](Z, c)


def _trig(prev, cur, *, per_plane=True, normalise=True, sign=-1.0):
    n, d = cur.shape
    if per_plane:
        dot = (prev * cur).reshape(n, d // 2, 2).sum(-1)
        norm2 = cur.reshape(n, d // 2, 2).pow(2).sum(-1)
        c = (2 * dot / (norm2 if normalise else 1)).repeat_interleave(2, -1)
    else:
        c = 2 * (prev * cur).sum(-1, keepdim=True) / cur.pow(2).sum(-1, keepdim=True)
    return c * cur + sign * prev


def _grads_variant(kind):
    def g(W_M, W_V, N):
        p = torch.softmax(W_M[:, :, None, :] + W_V[:, None, :, :], -1)
        weight = torch.ones_like(N.sum(-1, keepdim=True)) if kind == "unweighted" else N.sum(-1, keepdim=True)
        resid = weight * p - N
        Z = N.sum((1, 2, 3))[:, None, None]
        gM, gV = resid.sum(2) / Z, resid.sum(1) / Z
        if kind == "sign":
            return -gM, -gV
        if kind == "noZ":
            return gM * Z, gV * Z
        if kind == "axes":
            return gV, gM
        return gM, gV
    return g


def _reach_squarings(r):
    def reach(A):
        C = A | torch.eye(A.shape[-1], dtype=torch.bool)
        for _ in range(r):
            C = (C.double() @ C.double()) > 0
        return C
    return reach


WRONG = {
    ch01.check_gd_estimate: [
        (lambda s, t, e: s1["gd_estimate"](s, t, e).mT, "transpose"),
        (_gd_noconj, "conjugate"),
        (lambda s, t, e: s1["gd_estimate"](s, t + 1, e), r"\(s_t, s_\(t\+1\)\)"),
        (lambda s, t, e: s1["gd_estimate"](s, s.shape[1], e), "whole sequence"),
        (lambda s, t, e: s1["gd_estimate"](s, t - 1, e) if t > 1 else s1["gd_estimate"](s, t, e), "one pair short"),
        (lambda s, t, e: -s1["gd_estimate"](s, t, e), "sign"),
        (lambda s, t, e: s1["gd_estimate"](s, t, 1.0), "eta is missing"),
        (lambda s, t, e: s1["gd_estimate"](s, t, e) / max(t - 1, 1), "averaged"),
        (lambda s, t, e: s1["gd_estimate"](s, t, e).numpy(), "numpy array"),
    ],
    ch01.check_ols_estimate: [
        (lambda s, t: s1["ols_estimate"](s, t).mT, "transpose"),
        (lambda s, t: s1["ols_estimate"](s, t + 1), r"\(s_t, s_\(t\+1\)\)"),
        (lambda s, t: s1["ols_estimate"](s, s.shape[1]), "whole sequence"),
        (lambda s, t: s1["ols_estimate"](s, t - 1), "one pair short"),
        (lambda s, t: torch.linalg.lstsq(s[:, 1:t], s[:, : t - 1]).solution.mT, "swapped"),
        (lambda s, t: s1["ols_estimate"](s, t)[0], "expected shape"),
        (lambda s, t: torch.einsum("nti,ntj->nij", s[:, 1:t], s[:, : t - 1]), "least squares, not one gradient step"),
    ],
    ch02.check_gd_construction: [
        (lambda d, e: (s2["gd_construction"](d, e)[0], s2["gd_construction"](d, e)[1].T), "transpose"),
        (lambda d, e: (s2["gd_construction"](d, e)[0] * e, s2["gd_construction"](d, e)[1]), "eta appears twice"),
        (lambda d, e: (s2["gd_construction"](d, e)[0], s2["gd_construction"](d, e)[1] / e), "without the factor eta"),
        (lambda d, e: (-s2["gd_construction"](d, e)[0], s2["gd_construction"](d, e)[1]), "sign is flipped"),
        (lambda d, e: tuple(x.float() for x in s2["gd_construction"](d, e)), "float64"),
        (lambda d, e: s2["gd_construction"](d, e)[0], "tuple"),
        (lambda d, e: (s2["gd_construction"](d, e)[0].roll(d, 0), s2["gd_construction"](d, e)[1]), "answer slot"),
    ],
    ch02.check_shared_step_gaussian: [
        (lambda N, d, v: 1 / (v * (3 * N + d - 1)), "longest prefix alone"),
        (lambda N, d, v: 3 * d / (2 * N + 3 * d - 2), "unit-modulus"),
        (lambda N, d, v: 1 / (v * (2 * (N + 1) + d)), "off by one"),
        (lambda N, d, v: 1 / (2 * N + d), "sigma2 is missing"),
        (lambda N, d, v: v / (2 * N + d), "not sigma\\^2"),
        (lambda N, d, v: -1 / (v * (2 * N + d)), "sign"),
        (lambda N, d, v: np.float32(1 / (v * (2 * N + d)) * 1.001), "float32 tolerance"),
        (lambda N, d, v: torch.ones(2), "expected a number"),
    ],
    ch03.check_p_star_gaussian: [
        (lambda c, d, T: 1 / (5 * c**2), "T -> infinity"),
        (lambda c, d, T: 1 / (c**2 * (5 + (d - 1) * sum(1 / s for s in range(1, T)) / (T - 2))), "T-2 terms"),
        (lambda c, d, T: 1 / (c**2 * (5 + d * sum(1 / s for s in range(1, T - 1)) / (T - 2))), "d-1"),
        (lambda c, d, T: 1 / (c**2 * (3 + (d - 1) * sum(1 / s for s in range(1, T - 1)) / (T - 2))), "complex Gaussian"),
        (lambda c, d, T: 1 / (c**2 * (1 + (d - 1) * sum(1 / s for s in range(1, T - 1)) / (T - 2))), "Rademacher"),
        (lambda c, d, T: 1 / (c * (5 + (d - 1) * sum(1 / s for s in range(1, T - 1)) / (T - 2))), "1/sigma\\^2"),
        (lambda c, d, T: 1 / (c**2 * (5 + (d - 1) * sum(1 / s for s in range(1, T - 1)) / (3 * (T - 2)))), "kappa3"),
        (lambda c, d, T: "0.2", "expected a number"),
    ],
    ch03.check_mesa_prediction: [
        (lambda s, p: ch03._mesa_variant(s, p, norm="t"), r"\(t-1\)/t"),
        (lambda s, p: ch03._mesa_variant(s, p, norm="none"), "normalisation"),
        (lambda s, p: ch03._mesa_variant(s, p, conj=False), "conjugated"),
        (lambda s, p: ch03._mesa_variant(s, p, shift=1), "contains the state to predict"),
        (lambda s, p: ch03._mesa_variant(s, p, shift=-1), "one pair early"),
        (lambda s, p: -s3["mesa_prediction"](s, p), "sign"),
        (lambda s, p: s[:, 2:], "true next states"),
        (lambda s, p: s3["mesa_prediction"](s, p).real, "complex"),
    ],
    ch04.check_unitary_position_loss: [
        (lambda C, p: s4["unitary_loss"](C, p) - C.shape[0], "constant term"),
        (lambda C, p: s4["unitary_loss"](C, p) + 4 * p[-1] * torch.trace(C), "sign of the cross term"),
        (lambda C, p: s4["unitary_loss"](C, p) - p[-2] ** 2 * (C.sum(1).pow(2).sum() - C.pow(2).sum()), "query-token"),
        (lambda C, p: s4["unitary_loss"](C.T, p), "C\\^T"),
        (lambda C, p: s4["unitary_loss"](C, p) / C.shape[0], "averaged over the d"),
        (lambda C, p: s4["unitary_loss"](C, p).reshape(1, 1), "0-dimensional"),
        (lambda C, p: s4["unitary_loss"](C, p) - p[-2] ** 2 * (C.sum(1).pow(2).sum() - C.pow(2).sum())
         + p[-1] ** 2 * (C.sum(1).pow(2).sum() - C.pow(2).sum()), "p\\[-2\\]"),
    ],
    ch04.check_trig_predict: [
        (lambda a, b: _trig(a, b, normalise=False), "squared norm"),
        (lambda a, b: _trig(a, b, per_plane=False), "its own angle"),
        (lambda a, b: _trig(a, b, sign=1.0), "subtracts the previous state"),
        (lambda a, b: _trig(a, b, sign=0.0), "subtracts the previous state"),
        (lambda a, b: _trig(b, a), "swapped"),
        (lambda a, b: _trig(a, b)[:, :2], "expected shape"),
    ],
    ch05.check_pe_gram: [
        (lambda mu, t: torch.sinc(4 * torch.pi * (torch.arange(t)[:, None] - torch.arange(t)[None, :]).double() / mu),
         "NORMALISED sinc"),
        (lambda mu, t: torch.sinc(2 * (torch.arange(t)[:, None] - torch.arange(t)[None, :]).double() / mu), "4 pi"),
        (lambda mu, t: torch.cos(4 * torch.pi * (torch.arange(t)[:, None] - torch.arange(t)[None, :]).double() / mu),
         "ONE frequency"),
        (lambda mu, t: (lambda x: torch.sin(x) / x)(4 * torch.pi * (torch.arange(t)[:, None]
                                                                     - torch.arange(t)[None, :]).double() / mu), "NaN"),
        (lambda mu, t: s5["pe_gram"](mu, t).to(torch.complex128), "complex"),
        (lambda mu, t: s5["pe_gram"](mu, t + 1), "expected shape"),
    ],
    ch05.check_gd_features: [
        (lambda s: torch.einsum("ntij,ntj->nti", torch.cumsum(s[:, 1:, :, None] * s[:, :-1, None, :], 1), s[:, :-1]),
         "last state"),
        (lambda s: -s5["gd_features"](s), "sign"),
        (lambda s: torch.cat([torch.zeros_like(s[:, :1]), s5["gd_features"](s)[:, :-1]], 1), "one step late"),
        (lambda s: s5["gd_features"](s) + 1e-3, "f_1 must be 0"),
        (lambda s: torch.cat([torch.zeros_like(s[:, :1]), torch.einsum(
            "ntij,ntj->nti", torch.cumsum(s[:, :-1, :, None] * s[:, 1:, None, :], 1)[:, :-1], s[:, 1:-1])], 1),
         "s_\\{j-1\\} s_j\\^T"),
        (lambda s: s5["gd_features"](s)[:, :-1], "expected shape"),
    ],
    ch06.check_kaczmarz_linear: [
        (_kz(divide=False), "squared norm"),
        (_kz(residual=False), "residual"),
        (_kz(transpose=True), "transposed"),
        (_kz(sign=-1.0), "sign"),
        (lambda s: torch.cat([s[:, 1:], s[:, -1:]], 1), "next tokens"),
        (lambda s: torch.cat([torch.zeros_like(s[:, :1]), s6["kaczmarz_linear"](s)[:, :-1]], 1), "one step late"),
        (lambda s: s6["kaczmarz_linear"](s) + 1.0, "position 1"),
        (lambda s: s6["kaczmarz_linear"](s)[:, 1:], "shape"),
    ],
    ch06.check_causal_exp_scores: [
        (lambda s, b: s6["causal_exp_scores"](s, b).T if s.dim() == 2 else
         torch.exp(b * s @ torch.cat([torch.zeros_like(s[:, :1]), s[:, :-1]], 1).mT), "not causal"),
        (lambda s, b: s6["causal_exp_scores"](s, b).tril(-1), "diagonal"),
        (lambda s, b: torch.exp(b * s @ s.mT).tril(), "previous tokens"),
        (lambda s, b: s6["causal_exp_scores"](s, b).mT, "transpose"),
        (lambda s, b: (s @ torch.cat([torch.zeros_like(s[:, :1]), s[:, :-1]], 1).mT).tril(), "linear kernel"),
        (lambda s, b: s6["causal_exp_scores"](s, 1.0), "beta is missing"),
        (lambda s, b: torch.softmax((b * s @ torch.cat([torch.zeros_like(s[:, :1]), s[:, :-1]], 1).mT)
                                    .masked_fill(~torch.ones(s.shape[1], s.shape[1], dtype=torch.bool).tril(),
                                                 float("-inf")), -1), "softmax"),
    ],
    ch07.check_feature_attention: [
        (lambda Z, c: _fa(Z.T.contiguous(), c), "COLUMN"),
        (lambda Z, c: _fa(Z, c).transpose(1, 2), "swapped"),
        (lambda Z, c: torch.softmax(Z.T, -1).expand(c.shape[0], -1, -1), "ignores the counts"),
        (lambda Z, c: torch.softmax(Z.T[None] + c[:, None, :], -1), "log n_m"),
        (lambda Z, c: c[:, None, :] * torch.softmax(Z.T, -1)[None], "renormalise"),
        (lambda Z, c: torch.softmax(Z.T[None] + torch.log(c)[:, None, :], -2), "last axis"),
    ],
    ch07.check_per_query_loss: [
        (lambda Z, c: 2 * s7["per_query_loss"](Z, c), "factor 1/2"),
        (lambda Z, c: s7["per_query_loss"](Z.T.contiguous(), c), "COLUMN"),
        (lambda Z, c: s7["per_query_loss"](Z, torch.ones_like(c)), "ignores the counts"),
        (lambda Z, c: s7["per_query_loss"](Z, c) * c.shape[0], "summed over the prompts"),
        (lambda Z, c: s7["per_query_loss"](Z, c) / Z.shape[0], "averaged over the K features"),
        (lambda Z, c: s7["per_query_loss"](Z, c).sum(), "shape"),
    ],
    ch08.check_reach: [
        (lambda A: s8["reach"](A).transpose(-1, -2), "transpose"),
        (lambda A: A | torch.eye(A.shape[-1], dtype=torch.bool), "single edges"),
        (_reach_squarings(1), "one squaring"),
        (_reach_squarings(2), "two squarings"),
        (lambda A: s8["reach"](A) & ~torch.eye(A.shape[-1], dtype=torch.bool), "length 0"),
        (lambda A: s8["reach"](A).double(), "bool"),
        (lambda A: A.double().matrix_power(A.shape[-1] - 1).gt(0) | torch.eye(A.shape[-1], dtype=torch.bool),
         "exactly n-1"),
    ],
    ch08.check_gradients: [
        (_grads_variant("sign"), "sign"),
        (_grads_variant("noZ"), "1/Z"),
        (_grads_variant("axes"), "wrong axis"),
        (_grads_variant("unweighted"), "weighted"),
        (lambda W_M, W_V, N: s8["planner_gradients"](W_M, W_V, N)[0], "pair"),
        (scaled(s8["planner_gradients"], 1.01), "differ"),
    ],
}

CHECKERS = [(ex.checker, S[ch][ex.function], ch) for ch in CHAPTERS for ex in exercises_of(ch)]
ID = {c: c.__name__ for c, _, _ in CHECKERS}


def test_every_graded_checker_is_tested():
    assert set(WRONG) == {c for c, _, _ in CHECKERS}


def test_every_checker_meets_five_wrong_answers():
    counts = {c.__name__: len(w) for c, w in WRONG.items()}
    assert min(counts.values()) >= 5, counts
    print(counts, sum(counts.values()))


@pytest.mark.parametrize("checker,right,chapter", CHECKERS, ids=lambda x: getattr(x, "__name__", str(x)))
def test_right_answer_passes_on_every_seed(checker, right, chapter, capsys):
    for seed in (0, 1, 2, 3):
        checker(right, seed=seed)
    assert capsys.readouterr().out.count("passed") == 4


FLOAT32_OK = [c for c, _, _ in CHECKERS if c not in (ch08.check_reach, ch02.check_gd_construction)]


@pytest.mark.parametrize("checker", FLOAT32_OK, ids=lambda c: c.__name__)
def test_float32_answer_of_the_right_value_passes(checker):
    right = next(r for c, r, _ in CHECKERS if c is checker)
    if checker in (ch02.check_shared_step_gaussian, ch03.check_p_star_gaussian):
        checker(lambda *a: np.float32(right(*a)))        # numpy float32 scalar
        checker(lambda *a: torch.tensor(right(*a)))      # 0-d torch tensor
        checker(lambda *a: np.float64(right(*a)))        # numpy float64 scalar
    else:
        checker(f32(right))


CASES = [(c, w, m) for c, ws in WRONG.items() for w, m in ws]


@pytest.mark.parametrize("checker,wrong,message", CASES, ids=[f"{c.__name__}-{i}" for c, ws in WRONG.items()
                                                              for i in range(len(ws))])
def test_wrong_answer_is_rejected_with_the_mistake_named(checker, wrong, message):
    with pytest.raises(AssertionError, match=message):
        checker(wrong)


def test_float32_message_says_float32_tolerance():
    with pytest.raises(AssertionError, match="float32 tolerance"):
        ch01.check_ols_estimate(lambda s, t: scaled(f32(s1["ols_estimate"]), 1.001)(s, t))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_scoreboard_counts_points(chapter, capsys):
    full = scoreboard(chapter, S[chapter])
    assert full.earned == full.total == 10
    first = exercises_of(chapter)[0]
    stub = dict(S[chapter])
    stub[first.function] = lambda *a, **k: (_ for _ in ()).throw(NotImplementedError())
    part = scoreboard(chapter, stub)
    assert part.earned == 10 - first.points
    assert part.rows[0][2] == "not attempted"
    wrong = dict(S[chapter])
    wrong[first.function] = scaled(S[chapter][first.function], 1.5)
    assert scoreboard(chapter, wrong).rows[0][2] == "fails"
    assert "Points so far" in capsys.readouterr().out
    assert scoreboard(chapter, {}, show=False).earned == 0


def test_scoreboard_rejects_unknown_chapter():
    with pytest.raises(ValueError, match="ch01"):
        scoreboard("ch99", {})
