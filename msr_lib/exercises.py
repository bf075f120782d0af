"""Self-checking exercises and checked claims: a lesson cell compares a number or an answer with the truth and says so.

Lessons: notebooks/00_welcome.ipynb, notebooks/01_data_and_mastering.ipynb, notebooks/02_measuring_restoration.ipynb
(and every later lesson that checks a claim or an exercise).

An exercise's answer cell ships blank (``my_answer = None``); its check prints one line — "no answer yet" with a hint,
✅ with the explanation, or ❌ with the explanation — and ``show_solution()`` prints the solution of the exercise
checked last. ``check_claim`` is for the lesson's own statements: it prints ✅ or stops the notebook with ❌.
"""
from __future__ import annotations

NO_ANSWER = "✍️ no answer yet"

_last_solution = {"text": ""}


class ClaimError(AssertionError):
    """A lesson's claim about its own output is false: the notebook stops here."""


def check_claim(condition: bool, message: str) -> None:
    """Print ``✅ message`` when ``condition`` holds, else raise :class:`ClaimError` ``❌ message``."""
    if not condition:
        raise ClaimError(f"❌ {message}")
    print(f"✅ {message}")


def _verdict(answer, passed: bool, line: str, *, explanation: str, hint: str, solution: str) -> None:
    _last_solution["text"] = solution
    if answer is None:
        print(NO_ANSWER + (f" — {hint}" if hint else "") + ("\n(stuck? show_solution())" if solution else ""))
        return
    print(("✅ " if passed else "❌ ") + f"{line} {explanation}".strip())


def check_choice(answer, truth, *, explanation: str = "", hint: str = "", solution: str = "") -> None:
    """Compare a chosen name (case-insensitive) with the true one and print the verdict (``None``: no answer yet)."""
    passed = answer is not None and str(answer).strip().lower() == str(truth).strip().lower()
    line = f"{answer!r} is right." if passed else f"{answer!r} is not it."
    _verdict(answer, passed, line, explanation=explanation, hint=hint, solution=solution)


def check_close(value, target: float, tolerance: float, *, what: str, unit: str = "", explanation: str = "",
                hint: str = "", solution: str = "") -> None:
    """Is ``value`` within ``tolerance`` of ``target``? Print the verdict with both numbers (``None``: no answer yet)."""
    passed, line = False, ""
    if value is not None:
        off = float(value) - float(target)
        passed = abs(off) <= tolerance
        line = f"{what} = {float(value):.2f}{unit}, target {target:.2f}{unit} ± {tolerance:g}{unit}"
        line += "." if passed else f": {abs(off):.2f}{unit} too {'high' if off > 0 else 'low'}."
    _verdict(value, passed, line, explanation=explanation, hint=hint, solution=solution)


def show_solution() -> None:
    """Print the solution of the exercise checked last."""
    print(_last_solution["text"] or "no solution: run an exercise's check cell first")
