"""Assert a numerical claim in a notebook, and record it for the claims ledger.

Every chapter states what theory predicts and checks it on the numbers it just computed::

    from icar.claims import claim
    claim("ch01.ols-exact", "OLS recovers W once the prefix spans R^d",
          source="course derivation", measured=err.max(), upper=1e-10,
          justification="float64 rounding of a well-conditioned solve is ~1e-14")

A failing claim raises :class:`ClaimError` (an ``AssertionError``), so nbval and the book build fail when a claim
stops holding. Each record is kept in memory (:func:`records`) and, once :func:`start_chapter` has named the chapter,
appended as one JSON line to ``$ICAR_CLAIMS_DIR/<chapter>.jsonl`` (default ``_claims/`` in the working directory),
from which the ledger page is generated.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


class ClaimError(AssertionError):
    """A numerical claim did not hold."""


@dataclass(frozen=True)
class Claim:
    """One checked claim: what was stated, where it comes from, what was expected and what was measured."""

    id: str
    statement: str
    source: str
    measured: float
    expected: float | None
    formula: str | None
    relation: str  # "close", "<=", ">="
    tolerance: str
    justification: str | None
    passed: bool

    def _ipython_display_(self) -> None:
        """A claim left as a cell's last value shows nothing: :func:`claim` has already printed its line."""

    def line(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        exp = "" if self.expected is None else f" expected {self.expected:.6g}"
        return f"[{mark}] {self.id}: measured {self.measured:.6g}{exp} ({self.tolerance}) - {self.statement}"


_RECORDS: list[Claim] = []
_CHAPTER: dict[str, str | None] = {"name": None}


def _as_float(x: Any, name: str, *, finite: bool = False) -> float:
    """``x`` as a Python float: a real number, or a one-element real tensor/array; ``finite`` also refuses NaN/inf.

    Refused with ``TypeError``: ``bool`` (``True <= 1`` would hold), ``str`` (``float("1e-3")`` would parse), ``None``,
    complex numbers and tensors/arrays of bool or complex dtype. Refused with ``ValueError``: tensors/arrays with
    more than one element, ``meta`` tensors (no value), and, with ``finite``, NaN and infinities.
    """
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"{name} must be a single number; got a tensor of shape {tuple(x.shape)} (reduce it first)")
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name} must be a real number; got a tensor of dtype {x.dtype}")
        if x.device.type == "meta":
            raise ValueError(f"{name} must hold a value; got a tensor on the 'meta' device (it has no data)")
        x = x.detach().cpu().item()
    elif isinstance(x, np.ndarray):
        if x.size != 1:
            raise ValueError(f"{name} must be a single number; got an array of shape {x.shape} (reduce it first)")
        if x.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a real number; got an array of dtype {x.dtype}")
        x = x.item()
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, not a bool; got {x!r} (claim the number the bool was made from)")
    if isinstance(x, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be real; got the complex number {x!r} (take .abs() or .real first)")
    if not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number (int, float or a one-element real tensor/array); "
                        f"got {type(x).__name__} {x!r}")
    value = float(x)
    if finite and not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value} (a claim against a NaN or infinite {name} cannot "
                         "hold or cannot fail, so it checks nothing)")
    return value


def claims_dir() -> Path:
    """Folder of the JSON-lines records: ``$ICAR_CLAIMS_DIR`` or ``./_claims``."""
    return Path(os.environ.get("ICAR_CLAIMS_DIR", "_claims"))


def start_chapter(name: str) -> None:
    """Name the chapter whose claims follow and clear its previous records (re-running a notebook starts fresh)."""
    if not isinstance(name, str):
        raise TypeError(f"chapter name must be a string like 'ch01'; got {name!r}")
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"chapter name must be a short identifier like 'ch01'; got {name!r}")
    _CHAPTER["name"] = name
    _RECORDS[:] = [r for r in _RECORDS if not r.id.startswith(name + ".")]
    path = claims_dir() / f"{name}.jsonl"
    if path.exists():
        path.unlink()


def claim(id: str, statement: str, *, measured: Any, source: str, expected: Any = None, formula: str | None = None,
          atol: float = 0.0, rtol: float = 0.0, upper: Any = None, lower: Any = None,
          justification: str | None = None, quiet: bool = False) -> Claim:
    """Check one numerical claim and record it.

    Exactly one form must be used:

    * ``expected`` with ``atol`` and/or ``rtol``: ``|measured - expected| <= atol + rtol * |expected|``;
    * ``upper``: ``measured <= upper``;
    * ``lower``: ``measured >= lower``.

    ``source`` says where the statement comes from (a paper and section, or "course derivation following ...");
    ``formula`` gives the expected value's formula as text; ``justification`` says why the tolerance is what it is.
    Raises :class:`ClaimError` when the claim fails (after recording it); a NaN or infinite ``measured`` always
    fails. A claim that could not fail is refused before anything is recorded: ``TypeError`` when ``measured``,
    a bound or a tolerance is not a real number (``bool``, ``str``, ``None``, complex, a bool/complex tensor),
    ``ValueError`` for a NaN or infinite bound or tolerance, a tensor of more than one element, or ``atol``/``rtol``
    given with ``upper=``/``lower=``.
    """
    if not id or not statement or not source:
        raise ValueError("claim needs a non-empty id, statement and source")
    m = _as_float(measured, "measured")
    forms = [expected is not None, upper is not None, lower is not None]
    if sum(forms) != 1:
        raise ValueError("claim takes exactly one of expected= (with atol/rtol), upper= or lower=")
    a, r = _as_float(atol, "atol", finite=True), _as_float(rtol, "rtol", finite=True)
    exp_value: float | None = None
    if expected is not None:
        exp_value = _as_float(expected, "expected", finite=True)
        if a < 0 or r < 0 or (a == 0 and r == 0):
            raise ValueError("claim with expected= needs a positive atol or rtol (an exact float match is not a "
                             f"tolerance) and neither may be negative; got atol={a}, rtol={r}")
        bound = a + r * abs(exp_value)
        passed = math.isfinite(m) and abs(m - exp_value) <= bound
        relation, tol = "close", f"|measured - expected| <= {bound:.3g}"
    else:
        if a != 0 or r != 0:
            raise ValueError(f"atol/rtol apply only with expected=; got atol={a}, rtol={r} with "
                             f"{'upper' if upper is not None else 'lower'}= (put the margin into the bound itself)")
        if upper is not None:
            u = _as_float(upper, "upper", finite=True)
            passed = math.isfinite(m) and m <= u
            relation, tol = "<=", f"<= {u:.3g}"
        else:
            lo = _as_float(lower, "lower", finite=True)
            passed = math.isfinite(m) and m >= lo
            relation, tol = ">=", f">= {lo:.3g}"
    rec = Claim(id, statement, source, m, exp_value, formula, relation, tol, justification, bool(passed))
    _RECORDS.append(rec)
    if _CHAPTER["name"] is not None:
        folder = claims_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{_CHAPTER['name']}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(rec)) + "\n")
    if not quiet:
        print(rec.line())
    if not passed:
        why = "" if math.isfinite(m) else f"\n  the measured value is {m}: a claim never holds for a value that is not finite"
        raise ClaimError(rec.line() + why + (f"\n  tolerance rationale: {justification}" if justification else ""))
    return rec


def records() -> list[Claim]:
    """The claims checked so far in this process."""
    return list(_RECORDS)


def load_ledger(folder: str | os.PathLike | None = None) -> list[dict]:
    """Every recorded claim in ``folder`` (default :func:`claims_dir`), one dict per claim, sorted by id."""
    if folder is not None and not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike) or None; got {folder!r}")
    folder = Path(folder) if folder is not None else claims_dir()
    rows: dict[str, dict] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["id"]] = row
    return [rows[k] for k in sorted(rows)]
