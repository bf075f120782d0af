"""Untrusted files: a pickle payload planted in every loadable format is refused without running, configs with
absurd or ill-typed sizes are refused before anything is read or built, and ``make lab`` serves on loopback with a
token."""
import contextlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf
import torch
import yaml

from msr_lib import challenges, widgets
from msr_lib.audio import save_audio
from msr_lib.cli import main
from msr_lib.models import BSRoformer, HiFiPlusPlus, load_restorer, load_separator, model_size, save_restorer
from msr_lib.models import checkpoint as ckpt_mod
from msr_lib.models.checkpoint import MAX_MODEL_TENSORS, MAX_MODEL_WEIGHTS
from msr_lib.presets import PRESETS
from tests.conftest import MSST_FIXTURES
from tests.helpers import one_line_error, tiny_separator_checkpoint

REPO = Path(__file__).resolve().parent.parent
MSST_STEMS = ["drums", "bass", "other", "vocals"]
FOUR_STEMS = ("vocals", "bass", "drums", "other")


class Payload:
    """Unpickled, it would create the file ``marker`` (what a hostile checkpoint could do with any code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "payload-ran"


@pytest.fixture
def separator_folder(tmp_path):
    return tiny_separator_checkpoint(tmp_path / "separator", FOUR_STEMS)


@pytest.fixture
def restorer_folder(tmp_path):
    torch.manual_seed(0)
    return save_restorer(HiFiPlusPlus(**PRESETS["quick"].restorer["model"]), tmp_path / "restorer", stem="bass")


def _msst_folder(folder: Path, weights_file: str) -> Path:
    folder.mkdir(parents=True)
    config = {"audio": {"sample_rate": 44100}, "training": {"instruments": MSST_STEMS},
              "model": json.loads((MSST_FIXTURES / "tiny_config.json").read_text())}
    (folder / Path(weights_file).with_suffix(".yaml")).write_text(yaml.safe_dump(config))
    return folder / weights_file


# ---------------------------------------------------------------- pickle payloads

@pytest.mark.parametrize("loader, folder", [(load_separator, "separator_folder"), (load_restorer, "restorer_folder")])
def test_weights_that_are_a_pickle_are_refused_without_running(loader, folder, marker, request):
    folder = request.getfixturevalue(folder)
    (folder / "model.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    one_line_error(lambda: loader(folder), folder / "model.safetensors")
    assert not marker.exists()


@pytest.mark.parametrize("loader, folder", [(load_separator, "separator_folder"), (load_restorer, "restorer_folder")])
def test_a_config_json_that_is_a_pickle_is_refused_without_running(loader, folder, marker, request):
    folder = request.getfixturevalue(folder)
    (folder / "config.json").write_bytes(pickle.dumps(Payload(marker)))
    one_line_error(lambda: loader(folder), "cannot read", folder / "config.json")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.ckpt", "model.pt", "model.pth"])
@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_msst_torch_checkpoint_with_a_pickle_payload_is_refused(name, how, marker, tmp_path):
    """``torch.save`` of a state dict hiding the payload, and a bare pickle: weights_only refuses both unbuilt."""
    path = _msst_folder(tmp_path / "msst", name)
    if how == "torch.save":
        torch.save({"state_dict": {"band_split.weight": torch.zeros(2), "payload": Payload(marker)}}, path)
    else:
        path.write_bytes(pickle.dumps({"state_dict": Payload(marker)}))
    message = one_line_error(lambda: load_separator(path), path, "refused", "could run code")
    assert "weights_only" not in message  # no advice to load it the unsafe way
    assert not marker.exists()


def test_msst_safetensors_that_is_a_pickle_is_refused(marker, tmp_path):
    path = _msst_folder(tmp_path / "msst", "model.safetensors")
    path.write_bytes(pickle.dumps(Payload(marker)))
    one_line_error(lambda: load_separator(path), "cannot read weights", path)
    assert not marker.exists()


def test_msst_yaml_that_asks_to_call_a_function_is_refused(marker, tmp_path):
    path = _msst_folder(tmp_path / "msst", "model.ckpt")
    torch.save({}, path)
    path.with_suffix(".yaml").write_text(f"model: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    one_line_error(lambda: load_separator(path), "cannot read", path.with_suffix(".yaml"))
    assert not marker.exists()


def test_a_lora_adapter_that_is_a_pickle_is_refused(restorer_folder, marker, tmp_path):
    adapter = tmp_path / "expert"
    adapter.mkdir()
    config = json.loads((restorer_folder / "config.json").read_text())
    config["lora"] = {"base": os.path.relpath(restorer_folder, adapter), "r": 4, "target_modules": ".*plain.*"}
    (adapter / "config.json").write_text(json.dumps(config))
    (adapter / "lora_adapter.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    one_line_error(lambda: load_restorer(adapter), "cannot read weights", adapter / "lora_adapter.safetensors")
    assert not marker.exists()


def _tiny_songs(root: Path, count: int) -> Path:
    for i in range(count):
        for j, stem in enumerate(("vocals", "bass", "drums", "other")):
            t = np.arange(int(1.5 * 44100)) / 44100
            wave = 0.1 * np.sin(2 * np.pi * (110 * (j + 1) + 7 * i) * t)
            (root / f"song{i}").mkdir(parents=True, exist_ok=True)
            sf.write(str(root / f"song{i}" / f"{stem}.wav"), np.stack([wave, wave], 1).astype(np.float32), 44100)
    return root


def test_resume_from_a_train_state_with_a_pickle_payload_is_refused(marker, tmp_path):
    """``msr train separator --resume`` on a run whose ``train_state.pt`` hides the payload: one line, exit 2."""
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"stage": "pretrain", "method": "lora", "init": None}))
    state = run / "checkpoint" / "train_state.pt"
    torch.save({"step": 2, "config": {}, "model": Payload(marker)}, state)
    songs = _tiny_songs(tmp_path / "songs", 2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MSR_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "msr_lib.cli", "train", "separator", "--stage", "pretrain", "--preset", "quick",
         "--steps", "4", "--resume", "--out", str(run), "--data", str(songs), "--valid-data", str(songs),
         "--device", "cpu"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("msr: error:")]
    assert len(errors) == 1 and str(state) in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def _lesson_state(tmp_path, monkeypatch, marker) -> Path:
    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    run = tmp_path / "data" / "runs" / "quick" / "pretrain"
    (run / "checkpoint").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"stage": "pretrain", "init": None}))
    torch.save({"step": 99, "payload": Payload(marker)}, run / "checkpoint" / "train_state.pt")
    return run / "checkpoint" / "train_state.pt"


def test_a_lesson_run_state_with_a_pickle_payload_never_runs_it(marker, tmp_path, monkeypatch):
    from msr_lib.lessons import lesson_run

    _lesson_state(tmp_path, monkeypatch, marker)
    with pytest.raises(Exception):
        lesson_run("pretrain", preset="quick", progress=False)
    assert not marker.exists()


def test_a_lesson_run_state_with_a_pickle_payload_is_one_msr_error_line(marker, tmp_path, monkeypatch):
    from msr_lib.lessons import lesson_run

    state = _lesson_state(tmp_path, monkeypatch, marker)
    one_line_error(lambda: lesson_run("pretrain", preset="quick", progress=False), state)


# ---------------------------------------------------------------- config sizes

def _size_of_built(model) -> tuple[int, int]:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() for t in tensors), len(tensors)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_model_size_counts_what_the_constructors_build(preset, tiny_config):
    """The estimate from the config alone equals the built models' numbers and tensors (separators on the meta
    device), so the limits below measure what loading would allocate."""
    for config in ({**PRESETS[preset].model, "num_stems": 9}, {**PRESETS[preset].model, "num_stems": 1,
                                                                "residual_stem": False}, tiny_config):
        with torch.device("meta"):
            built = BSRoformer(**config)
        assert model_size(BSRoformer, config) == _size_of_built(built), config
    restorer = PRESETS[preset].restorer["model"]
    assert model_size(HiFiPlusPlus, restorer) == _size_of_built(HiFiPlusPlus(**restorer))
    odd = {**restorer, "cond_dim": 3, "spectral_unet_depth": 0, "mask_bands": 0, "resblock_kernels": []}
    assert model_size(HiFiPlusPlus, odd) == _size_of_built(HiFiPlusPlus(**odd))


def test_the_paper_preset_fits_the_limits():
    numbers, tensors = model_size(BSRoformer, {**PRESETS["paper"].model, "num_stems": 9})
    assert 4e8 < numbers < MAX_MODEL_WEIGHTS / 4 and tensors < MAX_MODEL_TENSORS / 10
    ckpt_mod._check_model_size(BSRoformer, {**PRESETS["paper"].model, "num_stems": 9}, "paper")
    ckpt_mod._check_model_size(HiFiPlusPlus, PRESETS["paper"].restorer["model"], "paper")


def _never(*args, **kwargs):
    raise AssertionError("the model was built or its weights read before the config was checked")


def _config_refused_quickly(monkeypatch, folder, loader, model_class, changes, *fragments) -> str:
    config = json.loads((folder / "config.json").read_text())
    config["model"].update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(model_class, "__init__", _never)
    monkeypatch.setattr(ckpt_mod, "_read_weights", _never)
    rss = psutil.Process().memory_info().rss
    start = time.perf_counter()
    message = one_line_error(lambda: loader(folder), folder / "config.json", *fragments)
    assert time.perf_counter() - start < 2.0
    assert psutil.Process().memory_info().rss - rss < 50 * 2**20
    return message


@pytest.mark.parametrize("changes", [
    {"dim": 10**6}, {"depth": 10**4}, {"num_stems": 10**6}, {"heads": 10**4, "dim_head": 10**4},
    {"mask_estimator_depth": 10**6}, {"freqs_per_bands": [1] * 40_000}, {"stft_win_length": MAX_MODEL_WEIGHTS},
])
def test_absurd_separator_sizes_are_refused_before_building(changes, separator_folder, monkeypatch):
    _config_refused_quickly(monkeypatch, separator_folder, load_separator, BSRoformer, changes,
                            "over the limit", "refused before building it")


@pytest.mark.parametrize("changes", [
    {"upsampler_channels": 10**6}, {"n_mels": 10**7}, {"mask_n_fft": 10**9}, {"spectral_unet_depth": 10**5},
    {"resblock_kernels": [3] * 10_000, "resblock_dilations": [1] * 100},
])
def test_absurd_restorer_sizes_are_refused_before_building(changes, restorer_folder, monkeypatch):
    _config_refused_quickly(monkeypatch, restorer_folder, load_restorer, HiFiPlusPlus, changes, "over the limit")


@pytest.mark.parametrize("key, value, fragment", [
    ("dim", "16", "model.dim must be an integer"), ("dim", 16.0, "model.dim must be an integer"),
    ("dim", -16, "model.dim must be an integer"), ("dim", True, "model.dim must be an integer"),
    ("dim", 10**30, "from 0 to 2,000,000,000"), ("depth", None, "model.depth must be an integer"),
    ("stereo", "yes", "model.stereo must be true or false"), ("freqs_per_bands", "2,2", "model.freqs_per_bands"),
    ("freqs_per_bands", [2, -1], "model.freqs_per_bands"), ("attn_dropout", "0.1", "a finite number"),
])
def test_ill_typed_separator_sizes_are_refused_before_building(key, value, fragment, separator_folder, monkeypatch):
    _config_refused_quickly(monkeypatch, separator_folder, load_separator, BSRoformer, {key: value}, fragment)


def test_other_hostile_separator_configs_are_one_line(separator_folder, monkeypatch):
    path = separator_folder / "config.json"
    config = json.loads(path.read_text())
    for hostile, fragment in [({**config, "model": [16, 1]}, "must be a mapping"),
                              ({**config, "model": {k: v for k, v in config["model"].items() if k != "dim"}},
                               "has no dim"),
                              ({**config, "sample_rate": "44100"}, "sample_rate must be an integer"),
                              ({**config, "sample_rate": 0}, "sample_rate must be an integer")]:
        path.write_text(json.dumps(hostile))
        one_line_error(lambda: load_separator(separator_folder), path, fragment)
    path.write_text(json.dumps(config).replace('"dim": 16', '"dim": NaN'))
    one_line_error(lambda: load_separator(separator_folder), path, "NaN")
    path.write_text('{"model_type": "bs_roformer", "n": 1' + "0" * 5000 + "}")  # past Python's int-parsing limit
    one_line_error(lambda: load_separator(separator_folder), path, "cannot read")
    path.write_text("[" * 100_000 + "]" * 100_000)  # nesting past the recursion limit
    one_line_error(lambda: load_separator(separator_folder), path, "cannot read")


def test_ill_typed_restorer_sizes_and_lora_ranks_are_refused(restorer_folder, monkeypatch, tmp_path):
    _config_refused_quickly(monkeypatch, restorer_folder, load_restorer, HiFiPlusPlus,
                            {"spectral_unet_widths": []}, "at least one width")
    _config_refused_quickly(monkeypatch, restorer_folder, load_restorer, HiFiPlusPlus, {"hop": "256"},
                            "model.hop must be an integer")
    monkeypatch.undo()
    adapter = tmp_path / "expert"
    adapter.mkdir()
    config = json.loads((restorer_folder / "config.json").read_text())
    config["model"] = HiFiPlusPlus(**PRESETS["quick"].restorer["model"]).config
    config["lora"] = {"base": "../restorer", "r": 10**6}
    (adapter / "config.json").write_text(json.dumps(config))
    one_line_error(lambda: load_restorer(adapter), "lora.r must be an integer from 1 to")


@pytest.mark.parametrize("name", ["config.json", "model.yaml"])
def test_a_gigabyte_config_is_refused_unread(name, separator_folder, tmp_path):
    """A sparse 4 GiB config file: refused by its size before a byte of it is read."""
    if name == "config.json":
        path, target = separator_folder / name, separator_folder
    else:
        target = _msst_folder(tmp_path / "msst", "model.ckpt")
        torch.save({}, target)
        path = target.with_suffix(".yaml")
    with open(path, "wb") as f:
        f.truncate(4 * 2**30)
    rss = psutil.Process().memory_info().rss
    start = time.perf_counter()
    one_line_error(lambda: load_separator(target), path, "4,294,967,296 bytes, more than the")
    assert time.perf_counter() - start < 2.0 and psutil.Process().memory_info().rss - rss < 50 * 2**20


# ---------------------------------------------------------------- other JSON files read: one line, never read whole

def _write_json_file(path: Path, content) -> None:
    if isinstance(content, int):  # a sparse file of that many bytes
        with open(path, "wb") as f:
            f.truncate(content)
    else:
        path.write_text(content)


@pytest.mark.parametrize("content, fragment", [
    ("[1, 2]", "expected a JSON object, got list"),
    ('{"model_type": NaN}', "NaN is not a JSON number"),
    (4 * 2**30, "4,294,967,296 bytes, more than the"),
], ids=["list", "nan", "4GiB"])
def test_msr_export_of_a_hostile_config_json_is_one_line(content, fragment, separator_folder, tmp_path, capsys):
    path = separator_folder / "config.json"
    _write_json_file(path, content)
    out = tmp_path / "exported"
    start = time.perf_counter()
    code = main(["export", str(separator_folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert time.perf_counter() - start < 5.0
    assert code == 2 and err.count("\n") == 1 and err.startswith("msr: error: "), err
    assert str(path) in err and fragment in err and not out.exists()


def _leaderboard(path: Path) -> "challenges.Leaderboard":
    board = challenges.Leaderboard.__new__(challenges.Leaderboard)  # the file alone: no songs needed
    board.path, board.key = path, "vocals/k"
    return board


@pytest.mark.parametrize("content, fragment", [
    ("[1, 2]", "expected a JSON object, got list"),
    (f'{{"format": "{challenges.LEADERBOARD_FORMAT}", "rows": [1, 2]}}', "rows is not a list of objects"),
    (f'{{"format": "{challenges.LEADERBOARD_FORMAT}", "rows": [{{"score": NaN}}]}}', "NaN is not a JSON number"),
    (challenges.MAX_LEADERBOARD_BYTES + 1, "more than the 16,777,216"),
], ids=["list", "rows-of-numbers", "nan", "huge"])
def test_a_hostile_leaderboard_file_is_one_line(content, fragment, tmp_path):
    path = tmp_path / "leaderboard.json"
    _write_json_file(path, content)
    start = time.perf_counter()
    one_line_error(_leaderboard(path).rows, path, "is not a leaderboard file", fragment, "$MSR_LEADERBOARD")
    assert time.perf_counter() - start < 2.0


def test_a_score_that_is_not_a_number_is_not_written_to_the_leaderboard(tmp_path, capsys):
    board = _leaderboard(tmp_path / "leaderboard.json")
    board.score = lambda estimates, stem=None: [3.0, float("nan")]
    assert board.submit("ada", []) is None
    assert capsys.readouterr().out == "⛔ not scored: a song's score is not a number ([3.0, nan])\n"
    assert not board.path.exists()


@pytest.mark.parametrize("content, fragment", [
    ('{"input": NaN}', "NaN is not a JSON number"),
    (3 * 2**30, "3,221,225,472 bytes, more than the"),
], ids=["nan", "3GiB"])
def test_desk_song_of_a_folder_with_a_hostile_restore_json_is_one_line(content, fragment, tmp_path):
    folder = tmp_path / "restored"
    save_audio(folder / "bass.wav", np.full((2, 441), 0.1, np.float32), 44100)
    _write_json_file(folder / "restore.json", content)
    start = time.perf_counter()
    one_line_error(lambda: widgets.desk_song(folder), f"{folder / 'restore.json'}: cannot read it", fragment)
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------- make lab

def _lab_command() -> str:
    # the venv running these tests: a checkout's own .venv under `make test`, another one elsewhere
    printed = subprocess.run(["make", "-n", "lab", f"VENV={sys.prefix}"], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
    assert printed.returncode == 0, printed.stderr
    lines = [line for line in printed.stdout.replace("\\\n", " ").splitlines() if "jupyter lab" in line]
    assert len(lines) == 1, printed.stdout
    return lines[0]


def test_make_lab_serves_on_loopback_only_with_a_token(tmp_path):
    """``make lab``'s own command (as ``make -n`` prints it; ``--no-browser`` and a free port added): it listens on
    127.0.0.1 only, refuses the contents API without its token and serves it with the token it generated."""
    command = _lab_command()
    assert "--ServerApp.ip=127.0.0.1" in command and "JUPYTER_TOKEN=" in command
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runtime = tmp_path / "runtime"
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTER_RUNTIME_DIR=str(runtime), OMP_NUM_THREADS="1")
    lab = subprocess.Popen(["bash", "-c", f"{command} --no-browser --port={port}"], cwd=REPO, env=env,
                           stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 90
        while not list(runtime.glob("jpserver-*.json")):
            assert time.time() < deadline and lab.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(0.5)  # the server file is written once the server listens
        token = json.loads(next(runtime.glob("jpserver-*.json")).read_text())["token"]
        assert len(token) >= 32
        url = f"http://127.0.0.1:{port}/api/contents"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code in (401, 403)
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"token {token}"}),
                                    timeout=10) as served:
            assert served.status == 200 and any(
                item["name"] == "00_welcome.ipynb" for item in json.loads(served.read())["content"])
        processes = [psutil.Process(lab.pid), *psutil.Process(lab.pid).children(recursive=True)]
        listening = {c.laddr.ip for p in processes for c in p.net_connections(kind="inet") if c.status == "LISTEN"}
        assert listening == {"127.0.0.1"}
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have failed to start
            os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
