"""Lesson 00 in a real JupyterLab, driven by headless Chromium: the players render, play nothing by themselves, and
carry the whole song; no cell prints an error.

Needs Debian's ``chromium`` (``make test`` installs it when run as root with apt) and PyPI ``playwright``; on a
machine without Chromium this test is skipped with that reason.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "00_welcome.ipynb"
QUICK_SECONDS = 6.0  # presets.PRESETS["quick"].synth["lesson_seconds"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make test installs it as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a *copy* of the lesson (so autosave can never touch the repository)."""
    shutil.copy(LESSON, tmp_path / LESSON.name)
    port = free_port()
    env = dict(os.environ, MSR_PRESET="quick", MSR_DATA_DIR=str(tmp_path / "data"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={tmp_path}"],
        env=env, stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def test_lesson_00_players_in_jupyterlab(lab, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{lab}/lab/tree/{LESSON.name}?reset", timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=120_000)  # the kernel is up
        page.click("li.lm-MenuBar-item >> text=Run")
        page.click("li.lm-Menu-item >> text=Run All Cells")
        # the last code cell is the exercise check: wait for its verdict, then for the players
        page.wait_for_selector("text=is right", timeout=240_000)
        players = page.locator("audio")
        players.first.wait_for(timeout=30_000)
        states = [players.nth(i).evaluate("e => ({autoplay: e.autoplay, loop: e.loop, controls: e.controls, "
                                          "duration: e.duration, src: e.src})") for i in range(players.count())]
        errors = page.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        page.screenshot(path=str(tmp_path / "lesson00.png"))
        browser.close()
    # mix + at least 3 stems in the stem browser, plus the plain-sum/mastered pair
    assert len(states) >= 6, states
    for state in states:
        assert state["controls"] and not state["autoplay"] and not state["loop"], state
        assert state["src"].startswith("blob:")
        assert abs(state["duration"] - QUICK_SECONDS) < 0.05, state
    assert not [e for e in errors if "Error" in e or "Traceback" in e], errors
