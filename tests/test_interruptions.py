"""Interrupted and damaged training runs (issue 13): SIGINT and SIGTERM, ``kill -9`` while a checkpoint is
written, damaged checkpoints, two commands on one run folder. Every interrupted run is resumed to the end and
compared with an uninterrupted one, tensor for tensor (weights, EMA, optimizer state, model file) and loss for loss.

Runs that are killed or signalled are subprocesses (``OMP_NUM_THREADS=1``, so their numbers agree with each other):
the CLI on the quick preset, or :func:`drive`, a tiny direct :func:`~msr_lib.train.loop.train` run that can kill
itself (SIGKILL) at an exact moment of the checkpoint write. The damaged-checkpoint cases run in this process.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from msr_lib.errors import MSRError
from msr_lib.models import BSRoformer
from msr_lib.models.checkpoint import write_separator_files
from msr_lib.presets import get_preset
from msr_lib.stems import FOUR_STEMS
from msr_lib.train import loop
from msr_lib.train.loop import CHECKPOINT, PREVIOUS_CHECKPOINT, TRAIN_STATE, read_log, recorded_run

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
QUICK = get_preset("quick")
STEPS = 6  # of the tiny run; a checkpoint every 2 steps
INTERRUPTED = "msr: interrupted (stopped after step {step}); continue with the same command plus --resume"
PROGRESS = re.compile(r"^(pretrain|restorer all): +\d+%\|")  # tqdm's lines on stderr


# ---------------------------------------------------------------- the tiny run and how to compare runs

def tiny_run(out_dir, songs_dir, *, steps=STEPS, resume=False, on_log=None, save_model=None):
    """4 stems, quick-size BS-RoFormer, one item of 0.25 s per step, EMA on, a checkpoint every 2 steps."""
    from msr_lib.data.datasets import MultitrackDataset
    from msr_lib.train.curriculum import separation_batch_loss

    torch.manual_seed(0)
    model = BSRoformer(**{**QUICK.model, "num_stems": len(FOUR_STEMS)})
    data = MultitrackDataset(songs_dir, stems=FOUR_STEMS, chunk_seconds=0.25, length=steps, seed=0)
    config = loop.TrainConfig(steps=steps, batch_size=1, lr=1e-3, warmup_steps=1, checkpoint_every=2,
                              validate_every=100)
    return loop.train(model, data, config=config, out_dir=out_dir, device="cpu", progress=False, resume=resume,
                      loss_fn=lambda m, b: separation_batch_loss(m, b, mastered=False),
                      save_model=save_model or (lambda m, folder: write_separator_files(m, folder, stems=FOUR_STEMS)),
                      on_log=on_log)


def drive(out_dir, songs_dir, resume, kill):
    """Subprocess entry: :func:`tiny_run`, killed by itself (SIGKILL) at the moments ``kill`` names
    (comma-separated, or ``none``): ``mid-write:N`` (checkpoint N's model files written, its train state not yet),
    ``mid-swap:N`` (the latest renamed to the previous, checkpoint N not yet in place); ``pause:N`` waits after
    logging step N until ``OUT.go`` exists (``OUT.paused`` says it waits)."""
    moments = {moment: int(step) for moment, step in (part.split(":") for part in kill.split(",") if part != "none")}
    logged = {"step": 0}
    out = Path(out_dir)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def on_log(row):
        if "loss" in row:
            logged["step"] = row["step"]
            if row["step"] == moments.get("pause"):
                out.with_suffix(".paused").touch()
                while not out.with_suffix(".go").exists():
                    time.sleep(0.02)

    def save_model(model, folder):
        write_separator_files(model, folder, stems=FOUR_STEMS)
        if logged["step"] == moments.get("mid-write"):
            die()

    replace = os.replace

    def replacing(source, target):
        replace(source, target)
        if logged["step"] == moments.get("mid-swap") and Path(source).name == CHECKPOINT:
            die()

    os.replace = replacing
    tiny_run(out, songs_dir, resume=resume == "resume", on_log=on_log, save_model=save_model)


def _drive(out_dir, songs_dir, *, resume: bool, kill: str = "none", **popen):
    code = "import sys; from tests.test_interruptions import drive; drive(*sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, str(out_dir), str(songs_dir),
                             "resume" if resume else "fresh", kill], cwd=ROOT, env=ENV, **popen)


def _finish(process, timeout=300) -> int:
    process.wait(timeout=timeout)
    return process.returncode


def _step(folder: Path) -> int:
    return int(torch.load(folder / TRAIN_STATE, map_location="cpu", weights_only=True)["step"])


def _final_tensors(run: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the run's final checkpoint: weights, EMA, optimizer state, and the saved model file."""
    from safetensors.torch import load_file

    state = torch.load(run / CHECKPOINT / TRAIN_STATE, map_location="cpu", weights_only=True)
    tensors = {f"model/{k}": v for k, v in state["model"].items()}
    tensors.update({f"ema/{k}": v for k, v in state["ema"].items()})
    for index, values in state["optimizer"]["state"].items():
        tensors.update({f"adam/{index}/{k}": v for k, v in values.items()})
    tensors.update({f"file/{k}": v for k, v in load_file(run / CHECKPOINT / "model.safetensors").items()})
    return tensors


def _losses(run: Path) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in read_log(run) if "loss" in row}


def assert_same_run(run: Path, reference: Path, steps: int):
    mine, theirs = _final_tensors(run), _final_tensors(reference)
    assert _step(run / CHECKPOINT) == _step(reference / CHECKPOINT) == steps
    assert mine.keys() == theirs.keys() and len(mine) > 50
    different = [k for k in theirs if not torch.equal(mine[k], theirs[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert _losses(run) == _losses(reference) and sorted(_losses(run)) == list(range(1, steps + 1))


def _messages(stderr: str) -> list[str]:
    """stderr without the progress bars."""
    return [line.strip() for line in re.split(r"[\r\n]+", stderr) if line.strip() and not PROGRESS.match(line.strip())]


def _wait_for(predicate, process, what: str, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the run ended (rc {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.02)


# ---------------------------------------------------------------- SIGINT and SIGTERM through the CLI

def _default_sigint() -> None:
    """A shell starts background jobs with SIGINT ignored, and training keeps an ignored SIGINT ignored: the child
    gets the default handling, as a command typed at a terminal has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


SIGNAL_STEPS = 12  # the signal comes after step 1: enough steps left that a busy machine cannot finish them first


def _cli(kind: str, songs) -> list[str]:
    command = ["separator", "--stage", "pretrain"] if kind == "separator" else ["restorer", "--stem", "all"]
    return [sys.executable, "-m", "msr_lib.cli", "train", *command, "--preset", "quick", "--steps", str(SIGNAL_STEPS),
            "--batch-size", "1", "--data", str(songs[0]), "--valid-data", str(songs[1])]


@pytest.mark.parametrize("kind, number", [("separator", signal.SIGINT), ("restorer", signal.SIGTERM)])
def test_a_signal_saves_the_last_step_and_the_resumed_run_is_exact(kind, number, songs, tmp_path):
    """`msr train separator` gets SIGINT, `msr train restorer` SIGTERM, after its first step: it finishes the step
    in progress, checkpoints it, says one line and exits 130; `--resume` then ends where an uninterrupted run
    ends."""
    env = {**ENV, "MSR_DATA_DIR": str(tmp_path / "data")}
    args = _cli(kind, songs)
    whole_err = tmp_path / "whole.err"
    with open(whole_err, "w") as err:
        whole = subprocess.Popen(args + ["--out", str(tmp_path / "whole")], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=err)
    parts = tmp_path / "parts"
    run = subprocess.Popen(args + ["--out", str(parts)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    _wait_for(lambda: any("loss" in row for row in read_log(parts)), run, "first step")
    run.send_signal(number)
    _, stderr = run.communicate(timeout=240)
    assert run.returncode == 130, stderr[-2000:]
    logged = max(_losses(parts))
    assert "Traceback" not in stderr and _messages(stderr) == [INTERRUPTED.format(step=logged)], stderr[-2000:]
    assert 1 <= logged < SIGNAL_STEPS and _step(parts / CHECKPOINT) == logged  # the checkpoint is the last step logged
    resumed = subprocess.run(args + ["--out", str(parts), "--resume"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _finish(whole) == 0, whole_err.read_text()[-2000:]
    assert_same_run(parts, tmp_path / "whole", SIGNAL_STEPS)


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler, as in a terminal (pytest run as a background job starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_signal_handlers_are_installed_only_while_training(songs, tmp_path, python_sigint):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    seen = []
    tiny_run(tmp_path / "run", songs[0], steps=1,
             on_log=lambda row: seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert seen and all(s is not before[0] and t is not before[1] for s, t in seen)


# ---------------------------------------------------------------- kill -9, and a second command on the folder

def test_kill_9_while_a_checkpoint_is_written_resumes_to_the_same_weights(songs, tmp_path):
    """One run killed twice: while checkpoint 4 is written (before that, waiting after step 3, it holds the folder:
    a second command is refused), and between the two renames that put checkpoint 6 in place; each time it
    resumes, and it ends with the weights of an uninterrupted run."""
    train_songs = songs[0]
    reference = _drive(tmp_path / "whole", train_songs, resume=False)
    run = tmp_path / "run"
    killed = -signal.SIGKILL

    first = _drive(run, train_songs, resume=False, kill="pause:3,mid-write:4")
    _wait_for(run.with_suffix(".paused").exists, first, "step 3")
    second = subprocess.run(_cli("separator", songs) + ["--out", str(run), "--resume"], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert _messages(second.stderr) == [f"msr: error: {run} is in use by another msr command (it holds "
                                        f"{run / '.lock'}); wait for it to finish or choose another --out"]
    run.with_suffix(".go").touch()
    assert _finish(first) == killed
    unfinished = list(run.glob("..checkpoint.new.tmp-*"))
    assert len(unfinished) == 1 and (unfinished[0] / "model.safetensors").is_file()
    assert not (unfinished[0] / TRAIN_STATE).exists()
    assert _step(run / CHECKPOINT) == 2 and not (run / PREVIOUS_CHECKPOINT).exists()

    assert _finish(_drive(run, train_songs, resume=True, kill="mid-swap:6")) == killed  # the lock died with it
    assert not (run / CHECKPOINT).exists() and _step(run / PREVIOUS_CHECKPOINT) == 4   # the window of the swap
    assert _step(run / ".checkpoint.new") == 6 and not list(run.glob("..checkpoint.new.tmp-*"))
    with pytest.raises(MSRError, match="already holds a run"):  # a fresh start does not take it for empty
        recorded_run(run, resume=False, identity={})

    last = _drive(run, train_songs, resume=True, stderr=subprocess.PIPE, text=True)
    _, stderr = last.communicate(timeout=300)
    assert last.returncode == 0, stderr[-2000:]
    assert _messages(stderr) == [f"msr: warning: {run / CHECKPOINT / TRAIN_STATE} does not exist; resuming from "
                                 f"{run / PREVIOUS_CHECKPOINT} at step 4"]
    assert _finish(reference) == 0
    assert_same_run(run, tmp_path / "whole", STEPS)
    assert sorted(p.name for p in run.iterdir()) == [".lock", CHECKPOINT, PREVIOUS_CHECKPOINT, "log.jsonl"]
    assert _step(run / PREVIOUS_CHECKPOINT) == STEPS - 2


def test_a_command_that_fails_on_a_new_folder_leaves_no_folder(tmp_path):
    """The lock of a folder a command had to create goes with it when the command fails before writing."""
    with pytest.raises(MSRError, match="does not exist"):
        with loop.run_folder_lock(tmp_path / "new"):
            recorded_run(tmp_path / "new", resume=True, identity={})
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- a damaged latest checkpoint

@pytest.fixture(scope="module")
def finished_run(songs, tmp_path_factory):
    """A 3-step tiny run: checkpoint 3 (the last step), previous checkpoint 2."""
    run = tmp_path_factory.mktemp("finished") / "run"
    tiny_run(run, songs[0], steps=3)
    assert _step(run / CHECKPOINT) == 3 and _step(run / PREVIOUS_CHECKPOINT) == 2
    return run


def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


DAMAGES = {
    "train state truncated": (TRAIN_STATE, _truncate),
    "train state garbled": (TRAIN_STATE, _garble),          # loads without error: its checksum tells
    "train state missing": (TRAIN_STATE, Path.unlink),
    "model truncated": ("model.safetensors", _truncate),
    "model garbled": ("model.safetensors", _garble),
    "config not JSON": ("config.json", lambda path: path.write_text("{not json")),
    "config missing": ("config.json", Path.unlink),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(damage, finished_run, songs, tmp_path, capsys):
    name, spoil = DAMAGES[damage]
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    spoil(run / CHECKPOINT / name)
    capsys.readouterr()
    tiny_run(run, songs[0], steps=3, resume=True)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("msr: warning: ") and str(run / CHECKPOINT / name) in warning[0]
    assert warning[0].endswith(f"; resuming from {run / PREVIOUS_CHECKPOINT} at step 2")
    assert_same_run(run, finished_run, 3)
    assert _step(run / PREVIOUS_CHECKPOINT) == 2  # the damaged checkpoint was dropped, not kept as the previous


def test_both_checkpoints_damaged_is_one_line(finished_run, songs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _truncate(run / CHECKPOINT / TRAIN_STATE)
    _garble(run / PREVIOUS_CHECKPOINT / "model.safetensors")
    with pytest.raises(MSRError) as error:
        tiny_run(run, songs[0], steps=3, resume=True)
    message = str(error.value)
    assert "\n" not in message and message.startswith("cannot resume: ")
    assert str(run / CHECKPOINT / TRAIN_STATE) in message.split(", and ")[0]
    assert message.endswith(f", and {run / PREVIOUS_CHECKPOINT / 'model.safetensors'} is damaged "
                            "(it does not match its checksum)")


def test_a_checkpoint_from_before_the_checksums_resumes_exactly(finished_run, songs, tmp_path, capsys):
    """The layout of runs written before this change: `checkpoint/` alone (here: checkpoint 2), no checksums in
    its train state."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / CHECKPOINT)
    (run / PREVIOUS_CHECKPOINT).rename(run / CHECKPOINT)
    path = run / CHECKPOINT / TRAIN_STATE
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {"digest", "files"} <= set(state)
    torch.save({k: v for k, v in state.items() if k not in ("digest", "files")}, path)
    capsys.readouterr()
    tiny_run(run, songs[0], steps=3, resume=True)
    assert "warning" not in capsys.readouterr().err
    assert_same_run(run, finished_run, 3)
    assert json.loads((run / CHECKPOINT / "config.json").read_text())["stems"] == list(FOUR_STEMS)


def test_an_error_raised_in_a_dataloader_worker_reaches_the_user_as_one_line():
    """A worker's MSRError comes back wrapped in the worker's traceback; the loop passes on its last line only."""
    from msr_lib.train.loop import _one_line

    wrapped = MSRError("Caught MSRError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                       '  File "x.py", line 1, in f\nmsr_lib.errors.MSRError: 3 of 12 files are unreadable (a.wav)\n')
    assert str(_one_line(wrapped)) == "3 of 12 files are unreadable (a.wav)"
    plain = MSRError("one line")
    assert _one_line(plain) is plain
