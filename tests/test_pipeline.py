"""The full pipeline (msr_lib.pipeline) and `msr restore`."""
import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from msr_lib.cli import main
from msr_lib.errors import MSRError
from msr_lib.models import HiFiPlusPlus, Restorer, Separator, save_restorer
from msr_lib.pipeline import load_restorers, restore, restore_file, song_inputs
from msr_lib.presets import get_preset
from msr_lib.stems import STEMS

GAINS = (0.3, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.1)  # add up to 1


class GainSeparator(nn.Module):
    """Pointwise fake separator: stem k is the input times GAINS[k] (what chunking cannot change)."""

    audio_channels = 2

    def forward(self, x):  # (b, 2, s) → (b, 9, 2, s)
        return x[:, None] * torch.tensor(GAINS)[None, :, None, None]


class Doubler(nn.Module):
    """Pointwise fake restorer: twice its input."""

    sample_rate = 44100

    def forward(self, x, cond=None):
        return 2 * x


class Failing(Doubler):
    def forward(self, x, cond=None):
        raise MSRError("boom")


def gain_separator():
    return Separator(GainSeparator(), STEMS, 44100)


def noise(rng, channels, samples, amplitude=0.2):
    return (amplitude * rng.standard_normal((channels, samples))).astype(np.float32)


@pytest.fixture(scope="module")
def quick_song(tmp_path_factory):
    """A synthetic song folder: its stems and clean mix."""
    from msr_lib.data.synth import synthesize_songs

    folders = synthesize_songs(tmp_path_factory.mktemp("song"), songs=1, seconds=3.0, seed=11, progress=False,
                               workers=1)
    return folders[0]


# ---------------------------------------------------------------- in memory

def test_quick_pipeline_gives_nine_finite_stems_that_add_up_to_the_song(quick_song):
    """Tiny untrained models (an identity restorer, a residual `other`): the 9 stems add up to the input."""
    mix, rate = sf.read(quick_song / "clean_mix.flac", dtype="float32", always_2d=True)
    restored, separated = restore(mix.T, sample_rate=rate, preset="quick", keep_separated=True, progress=False)
    assert list(restored) == list(separated) == list(STEMS)
    for stem in STEMS:
        assert restored[stem].shape == mix.T.shape and restored[stem].dtype == np.float32
        assert np.all(np.isfinite(restored[stem]))
    assert max(np.abs(restored[s]).max() for s in STEMS) > 1e-3  # not silence
    np.testing.assert_allclose(sum(separated.values()), mix.T, atol=1e-4)
    np.testing.assert_allclose(sum(restored.values()), mix.T, atol=1e-3)


@pytest.mark.parametrize("rate,channels", [(44100, 2), (22050, 1), (48000, 2)])
def test_pointwise_models_come_out_exact_at_the_inputs_rate_and_length(rng, rate, channels):
    t = np.arange(rate * 2 + 123) / rate  # tones: the resampling filters pass them untouched
    mix = np.stack([0.3 * np.sin(2 * np.pi * f * t + c) for c, f in enumerate((440.0, 3150.0)[:channels])])
    mix = mix.astype(np.float32) if rate != 44100 else noise(rng, channels, t.size)
    out = restore(mix, sample_rate=rate, separator=gain_separator(), restorers=Restorer(Doubler(), stem="all"),
                  chunk_seconds=0.3, overlap=0.5, batch_size=2, progress=False)
    for stem, gain in zip(STEMS, GAINS):
        assert out[stem].shape == mix.shape
        edge = 0 if rate == 44100 else 200  # resampling there and back: filter edges
        np.testing.assert_allclose(out[stem][:, edge:mix.shape[1] - edge], 2 * gain * mix[:, edge:mix.shape[1] - edge],
                                   atol=2e-3 if edge else 1e-5)


def test_chunked_equals_unchunked_away_from_the_edges_no_seams(rng):
    """The streamed file through small chunks and many blocks equals one chunk over the whole song in memory."""
    mix = noise(rng, 2, 44100 * 3 + 17)
    whole = restore(mix, separator=gain_separator(), restorers=Restorer(Doubler(), stem="all"), chunk_seconds=4.0,
                    progress=False)
    chunked = restore(mix, separator=gain_separator(), restorers=Restorer(Doubler(), stem="all"),
                      chunk_seconds=0.25, overlap=0.25, progress=False)
    for stem in STEMS:
        np.testing.assert_allclose(chunked[stem], whole[stem], atol=1e-6)


def test_streamed_file_equals_in_memory_result_with_real_tiny_models(tmp_path, rng):
    """Real (tiny, random) models: streaming to disk block by block gives what the in-memory run gives."""
    torch.manual_seed(1)
    preset = get_preset("quick")
    generalist = HiFiPlusPlus(**preset.restorer["model"])
    with torch.no_grad():
        for p in generalist.parameters():
            p.add_(0.05 * torch.randn_like(p))  # away from the identity it starts as
    restorer = Restorer(generalist.eval(), stem="all")
    mix = noise(rng, 2, int(44100 * 5.3))
    src = tmp_path / "song.wav"
    sf.write(src, mix.T, 44100, subtype="FLOAT")
    kwargs = dict(preset="quick", restorers={"vocals": restorer, "bass": restorer}, stems="vocals,bass,other",
                  chunk_seconds=1.0, overlap=0.25, progress=False)
    memory = restore(mix, **kwargs)
    paths = restore_file(src, tmp_path / "out", **kwargs)
    assert list(paths) == ["vocals", "bass", "other"]
    for stem, path in paths.items():
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        assert rate == 44100 and audio.shape == mix.T.shape
        np.testing.assert_allclose(audio.T, memory[stem], atol=1e-5)
    record = json.loads((tmp_path / "out" / "restore.json").read_text())
    assert record["restorers"].keys() == {"vocals", "bass"}  # `other` is not in the mapping: not restored
    assert record["real_time_factor"] > 0 and record["seconds"] == pytest.approx(5.3, abs=1e-3)


# ---------------------------------------------------------------- files

def test_memory_stays_flat_with_song_length(tmp_path, rng):
    """Peak traced memory (numpy buffers) of a 60 s song is within 1.3× that of a 10 s song."""
    peaks = {}
    for seconds in (10, 60):
        src = tmp_path / f"s{seconds}.wav"
        with sf.SoundFile(src, "w", samplerate=44100, channels=2, subtype="FLOAT") as f:
            for _ in range(seconds):
                f.write(noise(rng, 2, 44100).T)
        tracemalloc.start()
        restore_file(src, tmp_path / f"out{seconds}", separator=gain_separator(),
                     restorers=Restorer(Doubler(), stem="all"), chunk_seconds=2.0, progress=False)
        peaks[seconds] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert sf.info(tmp_path / f"out{seconds}" / "vocals.wav").frames == seconds * 44100
    assert peaks[60] <= 1.3 * peaks[10], peaks
    # against holding the song's nine stems: 60 s × 9 stems × 2 channels × 4 bytes = 190 MB (the stages hold
    # ~7 s per stem: each restorer's 4 s chunk and the hops around it)
    assert peaks[60] < 60 * 44100 * 9 * 2 * 4 / 2


def test_failed_run_leaves_nothing_half_written(tmp_path, rng):
    src = tmp_path / "song.wav"
    sf.write(src, noise(rng, 2, 44100).T, 44100)
    out = tmp_path / "out"
    restore_file(src, out, separator=gain_separator(), restorers=None, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(MSRError, match="boom"):
        restore_file(src, out, separator=gain_separator(), restorers=Restorer(Failing(), stem="all"),
                     progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "song.wav"]


@pytest.mark.parametrize("make,match", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: p.write_text("not audio at all\n" * 50), "cannot read audio"),
])
def test_bad_input_is_one_line_error_and_writes_nothing(tmp_path, make, match):
    src = tmp_path / "song.wav"
    make(src)
    with pytest.raises(MSRError, match=match) as info:
        restore_file(src, tmp_path / "out", separator=gain_separator(), restorers=None, progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_restorer_choice_follows_the_bundled_rule(tmp_path):
    """A folder of restorer folders: each stem's expert, else the generalist (`other` always the generalist)."""
    preset = get_preset("quick")
    save_restorer(HiFiPlusPlus(**preset.restorer["model"]), tmp_path / "r" / "generalist", stem="all")
    save_restorer(HiFiPlusPlus(**preset.restorer["model"]), tmp_path / "r" / "bass", stem="bass")
    save_restorer(HiFiPlusPlus(**preset.restorer["model"]), tmp_path / "r" / "other", stem="other")
    chosen = load_restorers(tmp_path / "r", ["vocals", "bass", "other"])
    assert {stem: r.stem for stem, r in chosen.items()} == {"vocals": "all", "bass": "bass", "other": "all"}
    assert chosen["vocals"] is chosen["other"]  # loaded once
    save_restorer(HiFiPlusPlus(**preset.restorer["model"]), tmp_path / "only" / "bass", stem="bass")
    with pytest.raises(MSRError, match="no restorer for vocals"):
        load_restorers(tmp_path / "only", ["vocals"])
    assert load_restorers(None, STEMS) == {}


def test_song_inputs_of_files_song_folders_and_folders(tmp_path, quick_song):
    (tmp_path / "in").mkdir()
    for name in ("a.wav", "b.flac"):
        sf.write(tmp_path / "in" / name, np.zeros((100, 2), np.float32), 8000)
    (tmp_path / "in" / "notes.txt").write_text("skip me")
    inputs = song_inputs(tmp_path / "in", tmp_path / "out")
    assert [(i.name, o.name) for i, o in inputs] == [("a.wav", "a"), ("b.flac", "b")]
    assert song_inputs(quick_song, tmp_path / "o") == [(quick_song / "clean_mix.flac", tmp_path / "o")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MSRError, match="no audio files or song folders"):
        song_inputs(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(MSRError, match="no such file or folder"):
        song_inputs(tmp_path / "missing", tmp_path / "o")


# ---------------------------------------------------------------- msr restore

def test_cli_restore_a_folder_of_inputs_in_the_quick_preset(tmp_path, rng, capsys):
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "one.wav", noise(rng, 2, 30000).T, 22050)
    sf.write(tmp_path / "in" / "two.wav", noise(rng, 1, 20000).T, 48000)
    code = main(["restore", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--preset", "quick",
                 "--stems", "vocals,drums", "--format", "flac", "--keep-separated", "--device", "cpu"])
    assert code == 0
    assert "[2/2] wrote 2 stems (vocals, drums) of two.wav" in capsys.readouterr().out
    for song, rate, frames, channels in (("one", 22050, 30000, 2), ("two", 48000, 20000, 1)):
        folder = tmp_path / "out" / song
        assert sorted(p.name for p in folder.iterdir()) == ["drums.flac", "restore.json", "separated",
                                                            "vocals.flac"]
        for path in (folder / "vocals.flac", folder / "separated" / "drums.flac"):
            info = sf.info(path)
            assert (info.samplerate, info.frames, info.channels, info.subtype) == (rate, frames, channels, "PCM_24")
        assert json.loads((folder / "restore.json").read_text())["preset"] == "quick"


def test_cli_no_restore_writes_the_separators_stems(tmp_path, rng, capsys):
    src = tmp_path / "song.wav"
    mix = noise(rng, 2, 44100)
    sf.write(src, mix.T, 44100, subtype="FLOAT")
    assert main(["restore", str(src), "--out", str(tmp_path / "a"), "--preset", "quick", "--no-restore",
                 "--device", "cpu"]) == 0
    assert main(["restore", str(src), "--out", str(tmp_path / "b"), "--preset", "quick", "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "a" / "restore.json").read_text())
    assert record["restorers"] == {} and record["separator"] == "untrained (quick preset)"
    assert len(json.loads((tmp_path / "b" / "restore.json").read_text())["restorers"]) == 9
    total = sum(sf.read(tmp_path / "a" / f"{s}.wav", dtype="float32")[0] for s in STEMS)
    np.testing.assert_allclose(total, mix.T, atol=1e-4)  # the 9 separated stems add up to the song
    assert main(["restore", str(tmp_path / "nothing.wav"), "--out", str(tmp_path / "c"), "--preset", "quick"]) == 2
    assert "no such file" in capsys.readouterr().err
