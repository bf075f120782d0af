"""Self-checking exercises and checked claims: a lesson cell compares a number or an answer with the truth and says so.

Lessons: notebooks/00_welcome.ipynb, notebooks/01_data_and_mastering.ipynb, notebooks/02_measuring_restoration.ipynb
(and every later lesson that checks a claim or an exercise).

An exercise's answer cell ships blank (``my_answer = None``); its check prints one line — "no answer yet" with a hint,
✅ with the explanation, or ❌ with the explanation — and ``show_solution()`` prints the solution of the exercise
checked last. ``check_claim`` is for the lesson's own statements: it prints ✅ or stops the notebook with ❌.
``check_function`` (notebooks/07_workshop_challenges.ipynb) runs a student's function on a few inputs against a
reference implementation and names the first case that fails, and how.
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


# ---------------------------------------------------------------- function exercises (lesson 07)

def _first_line(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _as_array(value):
    """A numeric value as a float64 array, or ``None`` when it is not one (torch tensors are accepted)."""
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if value is None or isinstance(value, (str, bytes, dict)):
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array


def difference(result, expected, tolerance: float = 1e-6, where: str = "") -> str | None:
    """``None`` when ``result`` matches ``expected`` (arrays and numbers within ``tolerance`` relative to the largest
    expected magnitude, at least 1; dicts key by key; tuples and lists item by item), else one short phrase saying
    how it differs: its type, its shape, or by how much its values are off and where."""
    import numpy as np

    at = f"{where}: " if where else ""
    if expected is None:
        return None if result is None else f"{at}returned {type(result).__name__}, expected None"
    if result is None:
        return f"{at}returned None (a missing `return`?)"
    if isinstance(expected, dict):
        if not isinstance(result, dict):
            return f"{at}returned a {type(result).__name__}, expected a dict with keys {list(expected)}"
        if set(result) != set(expected):
            missing, extra = [k for k in expected if k not in result], [k for k in result if k not in expected]
            return (f"{at}keys differ" + (f": missing {missing}" if missing else "")
                    + (f", extra {extra}" if extra else ""))
        for key in expected:
            problem = difference(result[key], expected[key], tolerance, f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    want = _as_array(expected)
    if isinstance(expected, (tuple, list)) and (want is None or want.dtype == object):
        if not isinstance(result, (tuple, list)) or len(result) != len(expected):
            return (f"{at}returned {type(result).__name__}, expected a {type(expected).__name__} of "
                    f"{len(expected)} items")
        for i, (r, e) in enumerate(zip(result, expected)):
            problem = difference(r, e, tolerance, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if want is None:
        return None if result == expected else f"{at}returned {result!r}, expected {expected!r}"
    got = _as_array(result)
    if got is None or got.dtype == object:
        return f"{at}returned a {type(result).__name__}, expected numbers of shape {want.shape}"
    if got.shape != want.shape:
        return f"{at}returned shape {got.shape}, expected {want.shape}"
    if not np.all(np.isfinite(got) | ~np.isfinite(want)):
        return f"{at}returned NaN or infinite values ({int(np.sum(~np.isfinite(got)))} of {got.size})"
    with np.errstate(invalid="ignore"):
        error = np.where(np.isfinite(want), np.abs(got - want), 0.0)
    scale = max(1.0, float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0)))
    if error.size == 0 or float(error.max()) <= tolerance * scale:
        return None
    if got.ndim == 0:
        return f"{at}returned {float(got):.4g}, expected {float(want):.4g}"
    index = np.unravel_index(int(np.argmax(error)), error.shape)
    return (f"{at}values off by up to {float(error.max()):.3g} (at index {tuple(int(i) for i in index)}: "
            f"{float(got[index]):.4g}, expected {float(want[index]):.4g})")


def _call(fn, args):
    """Call ``fn`` with a fresh copy of ``args``: a tuple (positional), a dict (keywords) or one value."""
    import copy

    args = copy.deepcopy(args)
    if isinstance(args, tuple):
        return fn(*args)
    if isinstance(args, dict):
        return fn(**args)
    return fn(args)


def check_function(fn, cases, reference, *, what: str, explanation: str = "", hint: str = "", solution: str = "",
                   compare=None, tolerance: float = 1e-6) -> None:
    """Run the student's function ``fn`` on every case and compare it with ``reference``; print one verdict line.

    ``cases`` maps a label to the arguments of one call: a tuple (positional), a dict (keywords) or one value;
    each call gets its own copy, so a function that changes its inputs cannot spoil the next case. The first case
    that fails is named with what went wrong — it raised (the exception's type and first line, never a
    traceback), returned None, the wrong type or shape, or values off (by how much, where). ``compare(result,
    expected, args)`` replaces the default comparison (:func:`difference` within ``tolerance``): it returns
    ``None`` when the result is right, else a short phrase. ``fn`` ``None``: no answer yet, with the hint.
    """
    passed, line = False, ""
    if fn is not None:
        if not callable(fn):
            line = f"{what} is not a function (it is {type(fn).__name__} {fn!r:.40}; write a def or a lambda)."
        else:
            for label, args in cases.items():
                expected = _call(reference, args)
                try:
                    result = _call(fn, args)
                except Exception as exc:  # the student's code: report it in one line, never a traceback
                    problem = f"it raised {type(exc).__name__}: {_first_line(exc)}"
                else:
                    try:
                        problem = (compare(result, expected, args) if compare is not None
                                   else difference(result, expected, tolerance))
                    except Exception as exc:  # a result too odd to compare
                        problem = f"its result could not be checked ({type(exc).__name__}: {_first_line(exc)})"
                if problem:
                    line = f"{what} fails on case “{label}”: {problem}."
                    break
            else:
                passed, line = True, f"{what} passes all {len(cases)} cases ({', '.join(cases)})."
    _verdict(fn, passed, line, explanation=explanation, hint=hint, solution=solution)
