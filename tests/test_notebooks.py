"""Every lesson runs top to bottom in the quick preset, and is stored without outputs; its exercises ship blank and
say ✅ to the right answer and ❌ (with the explanation) to a wrong one; a false claim (❌) fails the lesson.

Exercise convention: the answer cell (tag ``exercise-answer``) assigns ``None`` to the answer variable(s), e.g.
``my_answer = None``; its metadata ``msr_exercise`` holds a ``right`` and a ``wrong`` Python expression (one value,
or a tuple when the cell has several answer variables, in their order), evaluated in the lesson's kernel after the
lesson ran. The next cell (tag ``exercise-check``) checks the answer.
"""
import ast
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from msr_lib.workshop import poll_shell_in_short_steps
NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_lessons_exist():
    names = [p.name for p in NOTEBOOKS]
    assert "00_welcome.ipynb" in names and "01_data_and_mastering.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [], f"{path.name} has stored outputs"
            assert cell.get("execution_count") is None


def answer_names(source: str) -> list[str]:
    """The variables an answer cell leaves blank (``name = None``), in order."""
    return [target.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and node.value.value is None
            for target in node.targets if isinstance(target, ast.Name)]


def output_text(cell) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


def exercises(nb) -> list[tuple[int, list[str], dict]]:
    """(index of the check cell, answer variables, msr_exercise metadata) for every exercise of a lesson."""
    found = []
    for index, cell in enumerate(nb.cells):
        if "exercise-answer" in cell.metadata.get("tags", []):
            check = nb.cells[index + 1]
            assert "exercise-check" in check.metadata.get("tags", []), f"cell {index + 1} should check cell {index}"
            names = answer_names(cell.source)
            assert names, f"answer cell {index} ships no blank answer (name = None)"
            found.append((index + 1, names, cell.metadata["msr_exercise"]))
    return found


def verdict(text: str) -> str:
    """The verdict line and what follows it."""
    starts = [text.find(mark) for mark in ("✅", "❌") if mark in text]
    return text[min(starts):] if starts else ""


def run_extra(client, source: str):
    """Execute ``source`` in the lesson's kernel as a cell of its own (the lesson's cells stay as they ran)."""
    lesson, cell = client.nb, nbformat.v4.new_code_cell(source)
    client.nb = nbformat.v4.new_notebook(cells=[cell])
    try:
        client.execute_cell(cell, 0)
    finally:
        client.nb = lesson
    return cell


def common_suffix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return a[len(a) - n:]


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_in_quick_preset(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MSR_PRESET", "quick")
    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    checks = exercises(nb)
    assert checks, f"{path.name} has no exercise"
    client = NotebookClient(nb, timeout=int(os.environ.get("MSR_CELL_TIMEOUT", "300")), kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        poll_shell_in_short_steps(client.kc)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)  # a cell that raises (a false claim: ClaimError) fails the test here
        for check_index, names, answers in checks:
            blank = output_text(nb.cells[check_index])
            assert "no answer yet" in blank and "✅" not in blank and "❌" not in blank, blank
            verdicts = {}
            for kind, mark in (("right", "✅"), ("wrong", "❌")):
                run_extra(client, f"{', '.join(names)} = {answers[kind]}")
                rerun = run_extra(client, nb.cells[check_index].source)
                verdicts[kind] = verdict(output_text(rerun))
                assert verdicts[kind].startswith(mark), f"{kind} answer to cell {check_index}: {output_text(rerun)}"
            explanation = common_suffix(verdicts["right"], verdicts["wrong"]).strip()
            assert len(explanation) >= 20, f"cell {check_index}: the wrong answer gets no explanation: {verdicts}"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "".join(output_text(c) for c in nb.cells if c.cell_type == "code")
    assert "Traceback" not in text and "❌" not in text
    nbformat.write(nb, tmp_path / path.name)  # executed copy, for inspection when a test fails
