"""Every lesson runs top to bottom in the quick preset, and is stored without outputs."""
import json
import os
from pathlib import Path
from queue import Empty
from time import monotonic

import nbformat
import pytest
from nbclient import NotebookClient

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


def poll_shell_in_short_steps(kernel_client, step: float = 0.5) -> None:
    """Work around nbclient/jupyter_client missing the execute reply of a cell with widgets (jupyter/nbclient#312).

    One long ``shell_channel.get_msg(timeout=…)`` can sleep through a reply that has arrived, so every widget cell
    would wait out the whole cell timeout; polling in short steps wakes up as soon as the reply is there.
    """
    channel = kernel_client.shell_channel
    original = channel.get_msg

    async def get_msg(timeout=None):
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            wait = step if deadline is None else min(step, max(0.0, deadline - monotonic()))
            try:
                return await original(timeout=wait)
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_runs_in_quick_preset(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MSR_PRESET", "quick")
    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=int(os.environ.get("MSR_CELL_TIMEOUT", "300")), kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        poll_shell_in_short_steps(client.kc)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "Traceback" not in text
    assert "✅" in text or "❌" in text  # the self-check exercise gave its verdict
    nbformat.write(nb, tmp_path / path.name)  # executed copy, for inspection when a test fails
