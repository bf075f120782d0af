"""Run the workshop: every lesson in order, headless, in a preset — executed notebooks, HTML and the time of each.

    msr workshop --preset laptop --out workshop/              # every lesson
    msr workshop --preset quick --out /tmp/w --lessons 00,02   # some lessons

Each lesson runs top to bottom in a fresh kernel (nbclient), with ``MSR_PRESET`` set. Measured: wall time (kernel
start to last cell), the slowest cell (index and seconds), the peak memory of the kernel process and all its
children (polled every 0.5 s; RSS summed over the process tree, and PSS, which counts pages the processes share
once; and which cell peaks), and the size of the executed notebook with its widget state (where the players'
audio is). Written to ``--out`` (never ``notebooks/``): each executed notebook, its HTML (the widgets need
JupyterLab, or a network for the HTML widget manager, to play), ``timings.json`` and ``timings.md`` — the table of
the README and docs/INSTRUCTORS.md. A failing lesson is reported with its cell and the run goes on; the command
exits 1 if any failed.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from queue import Empty
from time import monotonic

from msr_lib.errors import MSRError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"  # the lessons, beside the package
POLL_SECONDS = 0.5
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


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


class PeakTreeMemory:
    """Polls the memory of a process and its children in a thread: ``peak_rss`` is the largest sum of their RSS
    (bytes), ``peak_pss`` the largest sum of their PSS (shared pages split among the processes sharing them, so
    forked DataLoader workers do not count the kernel's pages again)."""

    def __init__(self, pid: int, every: float = POLL_SECONDS):
        import psutil

        self.root, self.every, self.peak_rss, self.peak_pss = psutil.Process(pid), every, 0, 0
        self.cell_peak_rss = 0  # the peak since the last :meth:`start_cell`
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        import psutil

        rss = pss = 0
        try:
            processes = [self.root] + self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for process in processes:
            try:
                memory = process.memory_full_info()
            except psutil.NoSuchProcess:
                continue
            rss, pss = rss + memory.rss, pss + memory.pss
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.cell_peak_rss = max(self.cell_peak_rss, rss)

    def start_cell(self) -> None:
        self.cell_peak_rss = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()


def lesson_paths(names) -> list[Path]:
    """Lesson notebooks by number (``00``), stem (``00_welcome``) or path; every lesson for no names."""
    lessons = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return lessons
    found = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            found.append(path)
            continue
        matches = [p for p in lessons if p.stem == name or p.stem.split("_")[0] == name]
        if not matches:
            raise MSRError(f"no lesson {name!r}; lessons: {', '.join(p.stem for p in lessons)}")
        found += matches
    return found


def run_lesson(path: Path, *, preset: str, out_dir: Path, cell_timeout: int = 1800, html: bool = True) -> dict:
    """Execute one lesson in a fresh kernel into ``out_dir`` (and its HTML with ``html``); return its measurements
    (``ok`` False with ``error`` if a cell failed)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    from msr_lib.audio import atomic_file

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises NotJSONError, ValidationError, UnicodeDecodeError…
        raise MSRError(f"{path}: not a notebook ({' '.join(str(exc).split())[:200]})") from None
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    cell_seconds: list[tuple[int, float]] = []
    cell_peaks: list[tuple[int, int]] = []
    error = None
    start = monotonic()
    with client.setup_kernel(env=dict(os.environ, MSR_PRESET=preset)):
        poll_shell_in_short_steps(client.kc)
        with PeakTreeMemory(client.km.provisioner.pid) as memory:
            for index, cell in enumerate(nb.cells):
                began = monotonic()
                memory.start_cell()
                try:
                    client.execute_cell(cell, index)
                except (CellExecutionError, CellTimeoutError) as failure:
                    last_line = (ANSI_COLOUR.sub("", str(failure)).strip().splitlines() or ["failed"])[-1]
                    error = f"cell {index}: {last_line}"
                    break
                finally:
                    cell_seconds.append((index, monotonic() - began))
                    memory.sample()
                    cell_peaks.append((index, memory.cell_peak_rss))
    wall = monotonic() - start
    client.set_widgets_metadata()  # the players' audio lives in the widget state, as in a notebook saved with it
    executed = out_dir / path.name
    with atomic_file(executed) as tmp:
        nbformat.write(nb, tmp)
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nb)
        with atomic_file(executed.with_suffix(".html")) as tmp:
            Path(tmp).write_text(body)
    slowest = max(cell_seconds, key=lambda item: item[1], default=(None, 0.0))
    hungriest = max(cell_peaks, key=lambda item: item[1], default=(None, 0))
    return {"lesson": path.stem, "preset": preset, "ok": error is None, "error": error, "wall_s": round(wall, 1),
            "slowest_cell": {"index": slowest[0], "seconds": round(slowest[1], 1)},
            "peak_rss_mb": round(memory.peak_rss / 2**20), "peak_pss_mb": round(memory.peak_pss / 2**20),
            "peak_cell": {"index": hungriest[0], "rss_mb": round(hungriest[1] / 2**20)},
            "cell_peak_rss_mb": {index: round(rss / 2**20) for index, rss in cell_peaks},
            "executed_mb": round(executed.stat().st_size / 2**20, 1),
            "executed": str(executed)}


def markdown_table(results: list[dict]) -> str:
    """The lesson table: lesson | wall | slowest cell | peak RSS | peak PSS | executed size."""
    lines = ["| lesson | wall | slowest cell | peak RSS | peak PSS | executed size |", "|---|---|---|---|---|---|"]
    for r in results:
        wall = f"{r['wall_s'] / 60:.1f} min" + ("" if r["ok"] else f" (failed: {r['error']})")
        slowest = f"cell {r['slowest_cell']['index']}: {r['slowest_cell']['seconds']:.0f} s"
        lines.append(f"| {r['lesson']} | {wall} | {slowest} | {r['peak_rss_mb'] / 1024:.2f} GB | "
                     f"{r['peak_pss_mb'] / 1024:.2f} GB | {r['executed_mb']:.1f} MB |")
    return "\n".join(lines)


def run_workshop(*, preset: str, out_dir, lessons=None, cell_timeout: int = 1800, html: bool = True,
                 progress: bool = True) -> list[dict]:
    """Run ``lessons`` (numbers, names or paths; default every lesson) in order into ``out_dir``; writes
    ``timings.json`` and ``timings.md`` there and returns the measurements, one dict per lesson."""
    from msr_lib.audio import atomic_file, cannot_write, check_output_dir

    if isinstance(cell_timeout, bool) or not isinstance(cell_timeout, int) or cell_timeout < 1:
        raise MSRError(f"cell_timeout must be a positive number of seconds, got {cell_timeout!r}")
    paths = lesson_paths(lessons)
    out_dir = Path(out_dir)
    if out_dir.resolve() == NOTEBOOKS.resolve():
        raise MSRError("--out must not be notebooks/: the lessons are stored without outputs")
    check_output_dir(out_dir)  # not a file; the lessons' files are added to (or replace theirs in) a folder
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(out_dir, exc) from None
    results = []
    for number, path in enumerate(paths, 1):
        if progress:
            print(f"[{number}/{len(paths)}] {path.stem} ({preset}) …", file=sys.stderr, flush=True)
        results.append(run_lesson(path, preset=preset, out_dir=out_dir, cell_timeout=cell_timeout, html=html))
        if progress:
            r = results[-1]
            state = f"{r['wall_s'] / 60:.1f} min" if r["ok"] else f"FAILED {r['error']}"
            print(f"[{number}/{len(paths)}] {path.stem}: {state}", file=sys.stderr, flush=True)
    with atomic_file(out_dir / "timings.json") as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1) + "\n")
    with atomic_file(out_dir / "timings.md") as tmp:
        Path(tmp).write_text(f"Preset `{preset}`, {environment_line()}\n\n{markdown_table(results)}\n")
    return results


def environment_line() -> str:
    """The machine a workshop ran on, in one line (CPU cores, torch, GPU if any)."""
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}, {gpu}"
