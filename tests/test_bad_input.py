"""Bad input, every `msr` command (issue 13): each case converts as documented (`msr --help`, msr_lib.audio) or fails
with one `msr: error:` line and exit status 2; never a traceback, NaN/inf or a sample beyond ±1 in an output, never a
half-written or clobbered output folder."""
import errno
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

import msr_lib.audio
from msr_lib.audio import atomic_output_dir
from msr_lib.cli import main
from msr_lib.errors import MSRError
from msr_lib.models import HiFiPlusPlus, Separator, load_restorer, load_separator
from msr_lib.models.checkpoint import save_restorer, save_restorer_adapter, save_separator
from msr_lib.presets import PRESETS
from msr_lib.train.curriculum import train_separator
from msr_lib.train.restorer import train_restorer
from msr_lib.pipeline import READ_SECONDS, RECORD_NAME, restore_file
from msr_lib.stems import STEMS
from tests.helpers import tiny_separator_checkpoint

RATE = 44100
QUICK = ["--preset", "quick", "--device", "cpu"]
#: what each refused kind of file says
REFUSED = {
    "missing": "no such file",
    "empty": "file is empty",
    "text": "cannot read audio",
    "truncated": "truncated",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
}


def tone(seconds, rate=RATE, channels=2, amplitude=0.3):
    t = np.arange(max(1, round(seconds * rate))) / rate
    return np.stack([amplitude * np.sin(2 * np.pi * (220 + 110 * c) * t + 0.3) for c in range(channels)])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One set of good and bad audio files, shared by every test here: ``{kind: path}``."""
    root = tmp_path_factory.mktemp("audio")
    paths = {}

    def write(kind, audio, rate=RATE, subtype="FLOAT", name=None):
        paths[kind] = root / (name or f"{kind}.wav")
        paths[kind].parent.mkdir(parents=True, exist_ok=True)
        sf.write(paths[kind], np.asarray(audio).T, rate, subtype=subtype)

    write("good", tone(0.5), subtype="PCM_16")
    paths["missing"] = root / "missing.wav"
    (root / "empty.wav").write_bytes(b"")
    paths["empty"] = root / "empty.wav"
    (root / "text.wav").write_text("these are words, not audio\n" * 20)
    paths["text"] = root / "text.wav"
    whole = paths["good"].read_bytes()
    (root / "truncated.wav").write_bytes(whole[:len(whole) // 2])
    paths["truncated"] = root / "truncated.wav"
    for kind, value in (("nan", np.nan), ("inf", np.inf)):
        audio = tone(0.5)
        audio[0, 100] = value
        write(kind, audio)
    write("mono", tone(0.5, channels=1))
    for rate in (8000, 22050, 96000):
        write(f"{rate}hz", tone(0.5, rate=rate), rate=rate)
    write("6ch", tone(0.5, channels=6))
    write("pcm_u8", tone(0.5), subtype="PCM_U8")
    write("float64", tone(0.5), subtype="DOUBLE")
    write("zeros", np.zeros((2, RATE // 2)))
    write("0.1s", tone(0.1))
    write("1sample", tone(1 / RATE))
    write("loud", tone(0.5, amplitude=3.0))
    write("non-ascii", tone(0.5), name="Björk – Jóga/mix.wav")
    return paths


@pytest.fixture(scope="module")
def separator_dir(tmp_path_factory):
    """A tiny untrained 2-stem separator checkpoint for `msr separate`."""
    return tiny_separator_checkpoint(tmp_path_factory.mktemp("model") / "sep", ["vocals", "other"])


def song_folder(root: Path, name: str, vocals: Path, **more) -> Path:
    """A song folder: a good bass stem, a copy of ``vocals`` and of ``more`` (file name → file)."""
    folder = root / name
    folder.mkdir(parents=True)
    sf.write(folder / "bass.wav", tone(0.5).T, RATE)
    for target, source in {"vocals.wav": vocals, **more}.items():
        shutil.copyfile(source, folder / target)
    return folder


def run(capsys, argv) -> tuple[int, str]:
    """``msr argv`` in this process: (exit status, stderr)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def assert_one_error_line(code, err, match):
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # tqdm bars aside
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("msr: error: "), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err


def assert_clean_stems(folder: Path, frames: int, rate: int, channels: int, stems=STEMS):
    """Every stem file: the input's rate, length and channels; finite; within ±1."""
    assert sorted(p.name for p in folder.glob("*.wav")) == sorted(f"{s}.wav" for s in stems)
    for stem in stems:
        audio, file_rate = sf.read(folder / f"{stem}.wav", dtype="float32", always_2d=True)
        assert file_rate == rate and audio.shape == (frames, channels)
        assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0


def no_leftovers(parent: Path, *keep: str):
    """Nothing in ``parent`` but ``keep``: no temporary folder, no lock file."""
    assert sorted(p.name for p in parent.iterdir()) == sorted(keep)


# ---------------------------------------------------------------- refused files, every command that reads audio

@pytest.mark.parametrize("kind", sorted(REFUSED))
@pytest.mark.parametrize("command", ["restore", "separate", "degrade", "evaluate", "baselines"])
def test_bad_audio_is_one_line_and_writes_nothing(tmp_path, capsys, files, separator_dir, kind, command):
    out = tmp_path / "out"
    if command in ("restore", "separate"):
        model = QUICK if command == "restore" else ["--model", separator_dir, "--device", "cpu"]
        code, err = run(capsys, [command, files[kind], "--out", out, *model])
    else:
        song = tmp_path / "no such song" if kind == "missing" else song_folder(tmp_path / "songs", "song", files[kind])
        if command == "degrade":
            code, err = run(capsys, ["degrade", song, "--out", out, "--no-codec"])
        elif command == "evaluate":
            reference = song_folder(tmp_path / "refs", "song", files["good"])
            code, err = run(capsys, ["evaluate", "--estimates", song, "--references", reference, "--json",
                                     out / "scores.json"])
        else:
            code, err = run(capsys, ["evaluate", "--baselines", "--references", song.parent if song.exists() else song,
                                     "--no-codec", "--json", out / "scores.json"])
    folder_missing = {"degrade": "no such folder", "evaluate": "no such folder", "baselines": "no such"}
    assert_one_error_line(code, err, folder_missing.get(command, REFUSED[kind]) if kind == "missing" else REFUSED[kind])
    assert not out.exists()


def test_truncated_files_of_every_container_are_refused(tmp_path):
    """A file cut in half: WAV/AIFF (whose header gives the data size) and FLAC/OGG/MP3 (which decode short or fail)
    are all refused, never read short (`msr_lib.audio.open_audio`, `read_audio_blocks`)."""
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, (22050, 2))
    for ext, subtype in (("wav", "PCM_16"), ("wav", "FLOAT"), ("aiff", "PCM_24"), ("flac", "PCM_16"),
                         ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")):
        whole, cut = tmp_path / f"whole.{ext}", tmp_path / f"cut-{subtype}.{ext}"
        sf.write(whole, audio, RATE, subtype=subtype)
        cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
        assert msr_lib.audio.load_audio(whole).shape == (2, 22050)
        with pytest.raises(msr_lib.audio.AudioError, match="truncated|no samples|cannot read audio") as info:
            msr_lib.audio.load_audio(cut)
        assert "\n" not in str(info.value), ext


# ---------------------------------------------------------------- converted files

CONVERTED = {  # kind → (rate, frames, channels) of the stems written
    "mono": (RATE, RATE // 2, 1), "8000hz": (8000, 4000, 2), "22050hz": (22050, 11025, 2),
    "96000hz": (96000, 48000, 2), "6ch": (RATE, RATE // 2, 2), "pcm_u8": (RATE, RATE // 2, 2),
    "float64": (RATE, RATE // 2, 2), "zeros": (RATE, RATE // 2, 2), "0.1s": (RATE, 4410, 2),
    "1sample": (RATE, 1, 2), "non-ascii": (RATE, RATE // 2, 2),
}


@pytest.mark.parametrize("kind", sorted(CONVERTED))
def test_restore_converts_rates_channels_widths_and_lengths(tmp_path, capsys, files, kind):
    """Stems have the input's rate, length and channels (mono stays mono, 6 channels fold to stereo); the quick
    preset's untrained models (identity restorer, residual `other`) add up to the input at 44.1 kHz."""
    rate, frames, channels = CONVERTED[kind]
    out = tmp_path / "Stems – out"
    code, err = run(capsys, ["restore", files[kind], "--out", out, *QUICK])
    assert code == 0 and "Traceback" not in err and "warning" not in err, err
    assert_clean_stems(out, frames, rate, channels)
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["sample_rate"] == rate and record["channels"] == channels
    assert record["clipped_samples"] == dict.fromkeys(STEMS, 0)
    if rate == RATE and frames > 1:
        mix = msr_lib.audio.load_audio(files[kind], stereo=False)
        mix = msr_lib.audio.to_stereo(mix) if mix.shape[0] > 2 else mix
        total = sum(sf.read(out / f"{s}.wav", dtype="float32", always_2d=True)[0].T for s in STEMS)
        np.testing.assert_allclose(total, mix, atol=2e-3)


@pytest.mark.parametrize("kind", ["mono", "96000hz", "6ch", "1sample"])
def test_separate_converts_like_restore(tmp_path, capsys, files, separator_dir, kind):
    rate, frames, channels = CONVERTED[kind]
    out = tmp_path / "out"
    code, err = run(capsys, ["separate", files[kind], "--out", out, "--model", separator_dir, "--device", "cpu"])
    assert code == 0 and "Traceback" not in err, err
    assert_clean_stems(out, frames, rate, channels, stems=("vocals", "other"))


def test_loud_float_input_is_clipped_counted_and_warned(tmp_path, capsys, files):
    out = tmp_path / "out"
    code, err = run(capsys, ["restore", files["loud"], "--out", out, *QUICK])
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("msr: warning: ")]
    assert len(warnings) == 1 and "clipped" in warnings[0] and "other" in warnings[0]
    assert_clean_stems(out, RATE // 2, RATE, 2)
    clipped = json.loads((out / RECORD_NAME).read_text())["clipped_samples"]
    assert clipped["other"] > 1000 and clipped["vocals"] == 0  # the residual `other` is the input: peak 3


def test_degrade_converts_every_stem_to_one_44k_stereo_master(tmp_path, capsys, files):
    """Stems at 8/22.05/96 kHz, mono, 6-channel, 8-bit, float64, all-zero, 0.1 s and 1 sample long: resampled to
    44.1 kHz, folded to stereo, zero-padded to the longest; the master is finite and under the −1 dBTP ceiling."""
    song = tmp_path / "Björk – Jóga"
    song.mkdir()
    for stem, kind in (("vocals", "96000hz"), ("bass", "mono"), ("drums", "6ch"), ("guitars", "pcm_u8"),
                       ("keyboards", "float64"), ("synth", "8000hz"), ("percussion", "0.1s"),
                       ("orchestral", "1sample"), ("other", "zeros"), ("strings", "22050hz")):
        shutil.copyfile(files[kind], song / f"{stem}.wav")
    code, err = run(capsys, ["degrade", song, "--out", tmp_path / "out master", "--no-codec"])
    assert code == 0, err
    master, rate = sf.read(tmp_path / "out master" / "mastered_mix.flac", always_2d=True)
    assert rate == RATE and master.shape == (RATE // 2, 2)
    assert np.all(np.isfinite(master)) and 0.05 < np.abs(master).max() <= 10 ** (-1 / 20) + 1e-3


def test_evaluate_converts_rates_and_channels_of_estimates(tmp_path, capsys, files):
    estimates = song_folder(tmp_path / "est", "song", files["mono"])
    shutil.copyfile(files["96000hz"], estimates / "bass.wav")
    references = song_folder(tmp_path / "ref", "song", files["good"])
    code, err = run(capsys, ["evaluate", "--estimates", estimates, "--references", references, "--json",
                             tmp_path / "s.json"])
    assert code == 0, err
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["counts"]["scored"] == 2
    assert all(np.isfinite(v) for stem in scores["per_song"]["song"].values() for v in stem.values())


def test_evaluate_a_one_sample_estimate_is_one_line(tmp_path, capsys, files):
    estimates = song_folder(tmp_path / "est", "song", files["1sample"])
    references = song_folder(tmp_path / "ref", "song", files["good"])
    code, err = run(capsys, ["evaluate", "--estimates", estimates, "--references", references])
    assert_one_error_line(code, err, "needs at least")


# ---------------------------------------------------------------- song folders

def test_unknown_stem_name(tmp_path, capsys, files):
    """degrade refuses a file that names no stem; evaluate lists it as an extra estimate."""
    song = song_folder(tmp_path / "s", "song", files["good"], **{"kazoo.wav": files["good"]})
    assert_one_error_line(*run(capsys, ["degrade", song, "--out", tmp_path / "out"]), "unknown stem name 'kazoo'")
    references = song_folder(tmp_path / "r", "song", files["good"])
    code, _ = run(capsys, ["evaluate", "--estimates", song, "--references", references, "--json",
                           tmp_path / "s.json"])
    assert code == 0
    assert json.loads((tmp_path / "s.json").read_text())["extra"] == [{"song": "song", "stem": "kazoo.wav"}]


def test_duplicate_stems_are_summed_and_two_mixes_refused(tmp_path, capsys, files):
    reference = tone(0.5)
    references = tmp_path / "ref" / "song"
    references.mkdir(parents=True)
    sf.write(references / "bass.wav", reference.T, RATE, subtype="FLOAT")
    estimates = tmp_path / "est" / "song"
    estimates.mkdir(parents=True)
    sf.write(estimates / "bass.wav", 0.5 * reference.T, RATE, subtype="FLOAT")   # two files of one stem …
    sf.write(estimates / "Bass.flac", 0.5 * reference.T, RATE, subtype="PCM_24")  # … add up to the reference
    code, err = run(capsys, ["evaluate", "--estimates", estimates, "--references", references, "--metrics", "si_snr",
                             "--json", tmp_path / "s.json"])
    assert code == 0, err
    (scores,) = json.loads((tmp_path / "s.json").read_text())["per_song"].values()
    assert scores["bass"]["si_snr"] > 60
    song = song_folder(tmp_path / "s", "song", files["good"], **{"mix.wav": files["good"],
                                                                  "mixture.wav": files["good"]})
    for argv in (["restore", song, "--out", tmp_path / "out", *QUICK], ["degrade", song, "--out", tmp_path / "out"]):
        assert_one_error_line(*run(capsys, argv), "two files for the mastered mix")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- output folders

def test_a_non_empty_output_folder_keeps_its_files(tmp_path, capsys, files, separator_dir):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("do not lose me")
    song = song_folder(tmp_path / "s", "song", files["good"])
    for argv in (["restore", files["good"], "--out", out, *QUICK],
                 ["separate", files["good"], "--out", out, "--model", separator_dir],
                 ["degrade", song, "--out", out, "--no-codec"],
                 ["export", separator_dir, "--out", out]):
        assert_one_error_line(*run(capsys, argv), "holds other files (thesis.txt)")
        assert [p.name for p in out.iterdir()] == ["thesis.txt"]
        assert (out / "thesis.txt").read_text() == "do not lose me"
    no_leftovers(tmp_path, "mine", "s")


def test_a_previous_output_is_replaced_as_documented(tmp_path, capsys, files):
    """An output folder holding only a previous run's output is replaced whole (restore, degrade)."""
    out = tmp_path / "out"
    assert run(capsys, ["restore", files["good"], "--out", out, "--stems", "vocals,bass", *QUICK])[0] == 0
    assert run(capsys, ["restore", files["mono"], "--out", out, "--stems", "vocals", *QUICK])[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["restore.json", "vocals.wav"]
    assert sf.info(out / "vocals.wav").channels == 1
    song = song_folder(tmp_path / "s", "song", files["good"])
    for seed in (0, 1):
        assert run(capsys, ["degrade", song, "--out", tmp_path / "m", "--no-codec", "--seed", seed])[0] == 0
    assert json.loads((tmp_path / "m" / "degradation.json").read_text())["seed"] == 1
    no_leftovers(tmp_path, "out", "s", "m")


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys, files, separator_dir):
    taken = tmp_path / "taken.wav"
    shutil.copyfile(files["good"], taken)
    before = taken.read_bytes()
    song = song_folder(tmp_path / "s", "song", files["good"])
    for argv in (["restore", files["good"], "--out", taken, *QUICK],
                 ["separate", files["good"], "--out", taken, "--model", separator_dir],
                 ["degrade", song, "--out", taken],
                 ["export", separator_dir, "--out", taken],
                 ["synth", "--songs", 1, "--seconds", 1, "--out", taken],
                 ["workshop", "--preset", "quick", "--lessons", "00", "--out", taken]):
        assert_one_error_line(*run(capsys, argv), "exists and is not a folder")
    assert_one_error_line(*run(capsys, ["evaluate", "--estimates", song, "--references", song, "--json",
                                        taken / "scores.json"]), "a folder on its path is a file")
    assert taken.read_bytes() == before


def _mount_tmpfs(folder: Path, options: str) -> bool:
    """Mount a tmpfs on ``folder`` (root, where mounting is permitted); whether it worked."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A read-only folder, holding ``keep.txt``: a read-only tmpfs as root (root ignores permission bits),
    ``chmod 0o555`` otherwise; where neither works, folder creation in it fails with EROFS (monkeypatched)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = _mount_tmpfs(folder, "size=64k")
    (folder / "keep.txt").write_text("x")
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    elif os.geteuid() != 0:
        folder.chmod(0o555)
    else:
        def refuse(real):
            def make(*args, dir=None, **kwargs):
                if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
                    raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
                return real(*args, dir=dir, **kwargs)
            return make
        monkeypatch.setattr(msr_lib.audio.tempfile, "mkdtemp", refuse(msr_lib.audio.tempfile.mkdtemp))
        monkeypatch.setattr(msr_lib.audio.tempfile, "mkstemp", refuse(msr_lib.audio.tempfile.mkstemp))
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and not (
            mode & os.W_OK and Path(path).resolve().is_relative_to(folder.resolve())))
    yield folder
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)
    else:
        folder.chmod(0o755)


def test_a_read_only_output_folder_is_one_line(tmp_path, capsys, files, separator_dir, read_only):
    song = song_folder(tmp_path / "s", "song", files["good"])
    for argv in (["restore", files["good"], "--out", read_only / "out", *QUICK],
                 ["separate", files["good"], "--out", read_only / "out", "--model", separator_dir],
                 ["degrade", song, "--out", read_only / "out", "--no-codec"],
                 ["export", separator_dir, "--out", read_only / "out"],
                 ["evaluate", "--estimates", song, "--references", song, "--json", read_only / "s.json"],
                 ["synth", "--songs", 1, "--seconds", 1, "--workers", 1, "--out", read_only / "songs"]):
        code, err = run(capsys, argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert any(why in err for why in ("Read-only file system", "Permission denied", "not writable")), err
    assert [p.name for p in read_only.iterdir()] == ["keep.txt"]


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A 256 kB tmpfs as root; where mounting is not permitted, writes under the folder fail with ENOSPC
    (soundfile's writer and msr_lib.audio's file writes, monkeypatched) — the same test either way."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = _mount_tmpfs(folder, "size=256k")

    def fill():
        """Call once the test's setup is written: from then on the folder is full."""
        if mounted:
            return
        def inside(path) -> bool:  # a path (not an in-memory file) under the folder
            return isinstance(path, (str, os.PathLike)) and Path(path).resolve().is_relative_to(folder.resolve())
        write, opener = sf.SoundFile.write, open

        def sound_write(self, data):
            if inside(self.name):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
            return write(self, data)

        def file_open(path, mode="r", *args, **kwargs):
            if "w" in mode and inside(path):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return opener(path, mode, *args, **kwargs)

        monkeypatch.setattr(sf.SoundFile, "write", sound_write)
        monkeypatch.setattr(msr_lib.audio, "open", file_open, raising=False)

    yield folder, fill
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_full_disk_is_one_line_and_keeps_the_previous_output(tmp_path, capsys, files, full_disk):
    folder, fill = full_disk
    out = folder / "out"
    assert run(capsys, ["restore", files["0.1s"], "--out", out, "--stems", "vocals", *QUICK])[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fill()
    assert_one_error_line(*run(capsys, ["restore", files["good"], "--out", out, *QUICK]),
                          "cannot write (No space left on device)")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    song = tmp_path / "loud song"  # 5 s of noise: its master does not fit in what is left
    song.mkdir()
    sf.write(song / "vocals.wav", np.random.default_rng(0).uniform(-0.5, 0.5, (5 * RATE, 2)), RATE)
    assert_one_error_line(*run(capsys, ["degrade", song, "--out", folder / "master", "--no-codec"]),
                          "No space left on device")
    no_leftovers(folder, "out")


# ---------------------------------------------------------------- two commands, one output folder

def test_a_second_writer_of_the_same_folder_is_refused(tmp_path, capsys, files):
    """While one command writes a folder (here: this test, holding it), another writing it says so in one line
    and leaves it alone; the first one's output is then complete."""
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        (tmp / "vocals.wav").write_bytes(files["good"].read_bytes())
        assert_one_error_line(*run(capsys, ["restore", files["good"], "--out", out, *QUICK]),
                              "another command is writing this folder now")
        song = song_folder(tmp_path / "s", "song", files["good"])
        assert_one_error_line(*run(capsys, ["degrade", song, "--out", out, "--no-codec"]),
                              "another command is writing")
        assert not out.exists()
    assert [p.name for p in out.iterdir()] == ["vocals.wav"]
    no_leftovers(tmp_path, "out", "s")


def test_two_processes_restoring_into_one_folder(tmp_path, files):
    """Two real `msr restore` processes at once into one --out: each exits 0 or 2 (2 with one line saying another
    command is writing), at least one wins, and the folder holds one complete output."""
    song = tmp_path / "song.wav"
    sf.write(song, tone(1.5).T, RATE, subtype="FLOAT")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "msr_lib.cli", "restore", str(song), "--out", str(out), *QUICK]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()
    assert 0 in [code for code, _ in results], results
    for code, err in results:
        assert "Traceback" not in err and code in (0, 2), err
        if code == 2:
            assert_one_error_line(code, err, "another command is writing this folder now")
    assert_clean_stems(out, 3 * RATE // 2, RATE, 2)
    assert json.loads((out / RECORD_NAME).read_text())["seconds"] == pytest.approx(1.5)
    no_leftovers(tmp_path, "song.wav", "out")


# ---------------------------------------------------------------- real processes

@pytest.mark.parametrize("kind,argv", [
    ("text", ["restore", "{file}", "--out", "{out}", *QUICK]),
    ("truncated", ["separate", "{file}", "--out", "{out}", "--model", "bundled:nonexistent"]),
    ("good", ["train", "separator", "--stage", "kazoo", "--out", "{out}"]),
])
def test_real_processes_print_one_line_and_exit_2(tmp_path, files, kind, argv):
    argv = [a.format(file=files[kind], out=tmp_path / "out") for a in argv]
    done = subprocess.run([sys.executable, "-m", "msr_lib.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("msr"), done.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- long inputs

class Gain(nn.Module):
    """A 2-stem fake separator: the input times 0.25 and 0.75."""

    audio_channels = 2

    def forward(self, x):
        return x[:, None] * torch.tensor([0.25, 0.75])[None, :, None, None]


def test_an_hour_long_input_is_streamed_in_blocks(tmp_path, monkeypatch):
    """An hour at 1 kHz (3.6 M frames) streamed through a 1 kHz separator: every read is one block of
    READ_SECONDS, the peak of numpy memory stays far below one stem of the song, and the stems are exact."""
    rate, seconds = 1000, 3600
    song = tmp_path / "hour.wav"
    with sf.SoundFile(song, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for minute in range(seconds // 60):
            f.write(tone(60, rate=rate, channels=1, amplitude=0.01 * (1 + minute % 50)).T)
    reads, read = [], sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    tracemalloc.start()
    restore_file(song, tmp_path / "out", separator=Separator(Gain(), ("vocals", "other"), rate), restorers=None,
                 chunk_seconds=20.0, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert set(reads) == {round(READ_SECONDS * rate)} and len(reads) == seconds / READ_SECONDS + 1  # + the last, empty
    one_stem = seconds * rate * 4  # float32 mono
    assert peak < one_stem / 4, peak
    other, file_rate = sf.read(tmp_path / "out" / "other.wav", dtype="float32")
    mix, _ = sf.read(song, dtype="float32")
    assert file_rate == rate and other.shape == mix.shape == (seconds * rate,)
    np.testing.assert_allclose(other, 0.75 * mix, atol=1e-6)


def test_a_folder_of_songs_is_checked_before_anything_is_written(tmp_path, capsys, files):
    """`msr restore DIR`: one bad file among the songs fails in one line before the models load and before any
    song's folder is written."""
    songs = tmp_path / "songs"
    songs.mkdir()
    for name in ("a good one.wav", "b-mono.wav"):
        shutil.copyfile(files["good" if name.startswith("a") else "mono"], songs / name)
    shutil.copyfile(files["truncated"], songs / "c cut.wav")
    assert_one_error_line(*run(capsys, ["restore", songs, "--out", tmp_path / "out", *QUICK]), "c cut.wav: truncated")
    assert not (tmp_path / "out").exists()
    (songs / "c cut.wav").unlink()
    assert run(capsys, ["restore", songs, "--out", tmp_path / "out", *QUICK])[0] == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a good one", "b-mono"]
    assert_clean_stems(tmp_path / "out" / "b-mono", RATE // 2, RATE, 1)


def test_the_conversions_are_documented_in_msr_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    for documented in ("1 kHz to 768 kHz", "mono (processed as dual mono", "folded to", "8/16/24/32-bit PCM and float",
                       "truncated", "NaN or infinite", "clip samples beyond [-1, 1] and warn",
                       "holding other files is refused", "writing the same folder at once is refused"):
        assert documented in " ".join(out.split()), documented


@pytest.mark.parametrize("argv,match", [
    (["synth", "--songs", 1, "--seconds", 1e12, "--out", "{tmp}/s"], "seconds must be at most 600"),
    (["degrade", "{song}", "--out", "{tmp}/d", "--target-lufs", "nan"], "between -60 and 0 LUFS"),
    (["degrade", "{song}", "--out", "{tmp}/d", "--target-lufs", 100], "between -60 and 0 LUFS"),
    (["separate", "{good}", "--out", "{tmp}/o", "--model", "{model}", "--batch-size", 0], "batch_size must be"),
    (["restore", "{good}", "--out", "{tmp}/o", *QUICK, "--batch-size", 0], "batch_size must be"),
    (["restore", "{good}", "--out", "{tmp}/o", *QUICK, "--chunk-seconds", "inf"], "chunk_seconds must be"),
])
def test_absurd_option_values_are_one_line(tmp_path, capsys, files, separator_dir, argv, match):
    song = song_folder(tmp_path / "songs", "song", files["good"])
    fill = dict(tmp=tmp_path, song=song, good=files["good"], model=separator_dir)
    assert_one_error_line(*run(capsys, [str(a).format(**fill) for a in argv]), match)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["songs"]


@pytest.mark.parametrize("argv,match", [
    (["train", "separator", "--stage", "pretrain", "--out", "o", "--lr", "nan"], "argument --lr: must be > 0"),
    (["train", "separator", "--stage", "pretrain", "--out", "o", "--steps", "0"], "argument --steps: must be ≥ 1"),
    (["train", "separator", "--stage", "pretrain", "--out", "o", "--num-workers", "-1"], "--num-workers: must be ≥ 0"),
    (["train", "restorer", "--stem", "all", "--out", "o", "--batch-size", "x"], "--batch-size: expected an integer"),
    (["workshop", "--out", "o", "--cell-timeout", "0"], "argument --cell-timeout: must be ≥ 1"),
])
def test_absurd_training_and_workshop_options_are_usage_errors(capsys, argv, match):
    """Refused by argparse before anything runs (usage line + one error line, exit 2)."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and "Traceback" not in err
    assert match in err.strip().splitlines()[-1]


# ---------------------------------------------------------------- a writer killed between its two renames

def _dead_pid() -> int:
    """The id of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _plant(folder: Path, content: str, mtime: float | None = None) -> Path:
    folder.mkdir()
    (folder / "vocals.wav").write_text(content)
    if mtime is not None:
        os.utime(folder, (mtime, mtime))
    return folder


def test_the_old_folder_a_killed_swap_left_is_put_back_before_anything_else(tmp_path, capsys):
    """Killed between ``os.replace(path, old)`` and ``os.replace(tmp, path)``: no ``out``, the complete old one as
    ``.out.old-PID`` (two here: the newest is the last version), an unfinished ``.out.tmp-PID-…``. The next writer
    finds ``out`` back (one warning line), removes the leftovers, and a failure keeps that version."""
    dead, also_dead = _dead_pid(), _dead_pid()
    _plant(tmp_path / f".out.old-{dead}", "older", mtime=1_000_000)
    _plant(tmp_path / f".out.old-{also_dead}", "newest", mtime=2_000_000)
    _plant(tmp_path / f".out.tmp-{dead}-k3x9", "half")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            assert (out / "vocals.wav").read_text() == "newest"
            (tmp / "vocals.wav").write_text("new, then failed")
            raise RuntimeError
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"msr: warning: {out} was missing after an interrupted write; put back its previous version "
                     f"from .out.old-{also_dead}"]
    assert (out / "vocals.wav").read_text() == "newest"
    no_leftovers(tmp_path, "out")
    with atomic_output_dir(out) as tmp:
        (tmp / "vocals.wav").write_text("new")
    assert (out / "vocals.wav").read_text() == "new" and capsys.readouterr().err == ""
    no_leftovers(tmp_path, "out")


def test_the_folders_of_a_writer_that_still_runs_are_left_alone(tmp_path, capsys):
    """A ``.out.old-PID`` / ``.out.tmp-PID-…`` of a live process (this one: a writer mid-swap) is not taken, nor
    one whose number no process can have."""
    alive, impossible = os.getpid(), 10**20
    _plant(tmp_path / f".out.old-{alive}", "old")
    _plant(tmp_path / f".out.tmp-{alive}-k3x9", "half")
    _plant(tmp_path / f".out.old-{impossible}", "not ours")
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        assert not out.exists()
        (tmp / "vocals.wav").write_text("new")
    assert (out / "vocals.wav").read_text() == "new" and capsys.readouterr().err == ""
    no_leftovers(tmp_path, "out", f".out.old-{alive}", f".out.tmp-{alive}-k3x9", f".out.old-{impossible}")


# ---------------------------------------------------------------- saving a model over a folder

SAVERS = {
    "separator": lambda model, folder: save_separator(model, folder, stems=["vocals", "other"]),
    "restorer": lambda model, folder: save_restorer(model, folder, stem="bass"),
    "adapter": lambda model, folder: save_restorer_adapter(model, folder, stem="bass", base="bundled:generalist",
                                                           lora_config={"r": 1}),
}


@pytest.mark.parametrize("kind", sorted(SAVERS))
def test_saving_a_model_over_a_folder_of_other_files_is_refused_and_keeps_them(kind, tmp_path):
    folder = tmp_path / "my work"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "config.json").write_text("{}")
    with pytest.raises(MSRError) as refused:
        SAVERS[kind](None, folder)  # refused before the model is looked at
    assert str(refused.value) == f"{folder}: exists and holds other files (notes.txt); choose a new output folder"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "config.json").read_text() == "{}"
    no_leftovers(tmp_path, "my work")


def test_saving_a_model_over_a_model_folder_replaces_it(tmp_path, separator_dir):
    separator = load_separator(separator_dir)
    folder = save_separator(separator, tmp_path / "sep", stems=["vocals", "other"])
    with torch.no_grad():
        next(separator.model.parameters()).add_(1.0)
    save_separator(separator, folder, stems=["vocals", "other"])
    assert torch.equal(next(load_separator(folder).model.parameters()), next(separator.model.parameters()))
    restorer = HiFiPlusPlus(**PRESETS["quick"].restorer["model"])
    save_restorer(restorer, tmp_path / "res", stem="bass")
    save_restorer(restorer, tmp_path / "res", stem="drums")
    assert load_restorer(tmp_path / "res").stem == "drums"
    no_leftovers(tmp_path, "sep", "res")


# ---------------------------------------------------------------- training numbers from a notebook

@pytest.mark.parametrize("train, arguments, message", [
    ("separator", {"steps": 0}, "steps must be a whole number ≥ 1, got 0"),
    ("separator", {"lr": float("nan")}, "lr must be a finite number > 0, got nan"),
    ("separator", {"batch_size": -1}, "batch_size must be a whole number ≥ 1, got -1"),
    ("separator", {"num_workers": 1.5}, "num_workers must be a whole number ≥ 0, got 1.5"),
    ("separator", {"steps": True}, "steps must be a whole number ≥ 1, got True"),
    ("restorer", {"lr": float("inf")}, "lr must be a finite number > 0, got inf"),
    ("restorer", {"steps": 0}, "steps must be a whole number ≥ 1, got 0"),
    ("restorer", {"num_workers": -1}, "num_workers must be a whole number ≥ 0, got -1"),
    ("restorer", {"versions": 0}, "versions must be a whole number ≥ 1, got 0"),
    ("restorer", {"adversarial_from": -5}, "adversarial_from must be a whole number ≥ 0, got -5"),
])
def test_training_numbers_are_checked_before_anything_is_built_or_written(train, arguments, message, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(MSRError) as refused:
        if train == "separator":
            train_separator("pretrain", out, preset="quick", device="cpu", progress=False, **arguments)
        else:
            train_restorer("all", out, preset="quick", device="cpu", progress=False, **arguments)
    assert str(refused.value) == message
    assert list(tmp_path.iterdir()) == []
