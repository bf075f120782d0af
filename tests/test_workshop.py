"""msr workshop (msr_lib.workshop) executes lessons in a fresh kernel each and reports wall time, the slowest cell,
the peak RSS and PSS of the kernel's process tree and the executed size, as a markdown table and JSON, with the
executed notebooks and their HTML; a failing lesson exits 1."""
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from msr_lib import workshop
from msr_lib.cli import main
from msr_lib.errors import MSRError

MB = 2**20
CHILD = ("import numpy as np, pathlib, sys; held = np.ones(300 * 2**20 // 8); "
         "pathlib.Path(sys.argv[1]).write_text('ready'); sys.stdin.read()")  # lives until the kernel exits


def write_lesson(folder: Path, name: str, cells) -> Path:
    path = folder / name
    nbformat.write(new_notebook(cells=cells), path)
    return path


@pytest.mark.notebook
def test_table_and_json_of_a_tiny_lesson(tmp_path, capsys):
    flag = tmp_path / "child_ready"
    lesson = write_lesson(tmp_path, "90_tiny.ipynb", [
        new_markdown_cell("# tiny"),
        new_code_cell("import os; print('preset', os.environ['MSR_PRESET'])"),
        new_code_cell("import numpy as np; held = np.ones(200 * 2**20 // 8)  # 200 MB in the kernel"),
        new_code_cell(f"import subprocess, sys, time, pathlib\n"
                      f"child = subprocess.Popen([sys.executable, '-c', {CHILD!r}, {str(flag)!r}], stdin=subprocess.PIPE)\n"
                      f"while not pathlib.Path({str(flag)!r}).exists(): time.sleep(0.1)"),
        new_code_cell("import ipywidgets; ipywidgets.Audio(value=bytes(range(256)) * 4096, format='flac')  # 1 MB"),
    ])
    out = tmp_path / "executed"
    assert main(["workshop", "--lessons", str(lesson), "--preset", "quick", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    (result,) = json.loads((out / "timings.json").read_text())
    assert (out / "90_tiny.html").read_text().count("preset quick") >= 1  # the HTML copy, with the outputs
    assert "| 90_tiny | " in (out / "timings.md").read_text()
    assert result["lesson"] == "90_tiny" and result["preset"] == "quick" and result["ok"] and result["error"] is None
    assert result["slowest_cell"]["index"] in (1, 2, 3, 4) and result["slowest_cell"]["seconds"] >= 0
    assert result["wall_s"] >= result["slowest_cell"]["seconds"]
    assert result["peak_rss_mb"] >= 200 + 300  # the kernel's array and its child's, summed over the process tree
    assert 200 + 300 <= result["peak_pss_mb"] <= result["peak_rss_mb"]
    executed = nbformat.read(out / "90_tiny.ipynb", as_version=4)
    assert "preset quick" in executed.cells[1].outputs[0]["text"]  # the kernel ran in the asked preset
    assert result["executed_mb"] == round((out / "90_tiny.ipynb").stat().st_size / MB, 1)
    assert result["executed_mb"] >= 1.3  # the player's megabyte, base64 in the stored widget state
    assert "application/vnd.jupyter.widget-state+json" in executed.metadata["widgets"]
    header, rule, row = table.splitlines()[:3]
    assert header == "| lesson | wall | slowest cell | peak RSS | peak PSS | executed size |"
    assert rule == "|---|---|---|---|---|---|" and row.startswith("| 90_tiny | ")
    assert f"| {result['peak_rss_mb'] / 1024:.2f} GB | {result['peak_pss_mb'] / 1024:.2f} GB |" in row
    assert f"cell {result['slowest_cell']['index']}: " in row and row.endswith(" MB |")


@pytest.mark.notebook
def test_a_failing_lesson_exits_1_and_says_where(tmp_path, capsys):
    broken = write_lesson(tmp_path, "91_broken.ipynb", [new_code_cell("x = 1"), new_code_cell("raise ValueError('no')"),
                                                        new_code_cell("print('never')")])
    assert main(["workshop", "--lessons", str(broken), "--preset", "quick", "--out", str(tmp_path),
                 "--no-html"]) == 1
    (result,) = json.loads((tmp_path / "timings.json").read_text())
    assert not (tmp_path / "91_broken.html").exists()
    assert not result["ok"] and result["error"] == "cell 1: ValueError: no"
    assert "failed: cell 1" in capsys.readouterr().out
    assert nbformat.read(tmp_path / "91_broken.ipynb", as_version=4).cells[2].outputs == []  # stopped at the error


def test_lessons_by_number_and_name():
    by_number = workshop.lesson_paths(["00", "02_measuring_restoration"])
    assert [p.name for p in by_number] == ["00_welcome.ipynb", "02_measuring_restoration.ipynb"]
    assert len(workshop.lesson_paths([])) >= 5
    with pytest.raises(MSRError, match="no lesson '77'"):
        workshop.lesson_paths(["77"])
