"""Self-checking exercises: a lesson cell compares the student's answer with the truth and says why."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Verdict:
    """Outcome of one check; prints as one friendly line."""

    passed: bool
    message: str

    def __repr__(self) -> str:
        return ("✅ " if self.passed else "❌ ") + self.message

    def __bool__(self) -> bool:
        return self.passed


def check_choice(answer, truth, *, explanation: str = "") -> Verdict:
    """Compare a chosen name (case-insensitive) with the true one."""
    if answer is None or answer == "":
        return Verdict(False, "no answer yet — fill it in and run the cell again")
    ok = str(answer).strip().lower() == str(truth).strip().lower()
    text = f"{answer!r} is right." if ok else f"{answer!r} is not it — the answer is {truth!r}."
    return Verdict(ok, f"{text} {explanation}".strip())


def check_close(value: float, target: float, tolerance: float, *, what: str = "value", unit: str = "") -> Verdict:
    """Is ``value`` within ``tolerance`` of ``target``?"""
    off = float(value) - float(target)
    ok = abs(off) <= tolerance
    direction = "too high" if off > 0 else "too low"
    msg = (f"{what} = {value:.2f}{unit}, target {target:.2f}{unit} ± {tolerance:g}{unit}"
           + ("" if ok else f": {abs(off):.2f}{unit} {direction}"))
    return Verdict(ok, msg)
