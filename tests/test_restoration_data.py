"""The restorer's training pairs: degraded and separated sources, determinism, the level convention, the cache."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from msr_lib.audio import ACTIVE_STEM_RMS, SAMPLE_RATE, group_stems, load_song_stems
from msr_lib.data.restoration import PAIRS_FILE, RestorationDataset, cache_separated_stems
from msr_lib.errors import MSRError
from msr_lib.evaluate import song_mixture
from msr_lib.stems import FOUR_STEMS, STEMS
from tests.helpers import tiny_separator_checkpoint

SECONDS = 2.0
CHUNK = 0.5
S = round(CHUNK * SAMPLE_RATE)
#: song → stem → fundamental (Hz); song_a's bass plays only in the second half, so chunks of it must be redrawn
SONGS = {"song_a": {"vocals": 440.0, "bass": 55.0, "drums": None, "guitars": 330.0},
         "song_b": {"vocals": 523.0, "keyboards": 262.0, "other": 700.0}}


def stem_audio(freq: float | None, rng: np.random.Generator) -> np.ndarray:
    """A stereo stem (2, samples): a tone with two harmonics, or noise bursts for ``None`` (drums)."""
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    if freq is None:
        wave = 0.3 * rng.standard_normal(t.size) * (np.mod(t, 0.25) < 0.05)
    else:
        wave = sum(0.2 / k * np.sin(2 * np.pi * k * freq * t) for k in (1, 2, 3))
    return np.stack([wave, 0.6 * wave]).astype(np.float32)


def rms(audio) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(audio, dtype=np.float64)))))


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(0)
    for name, stems in SONGS.items():
        (root / name).mkdir()
        for stem, freq in stems.items():
            audio = stem_audio(freq, rng)
            if (name, stem) == ("song_a", "bass"):
                audio[:, : audio.shape[1] // 2] = 0.0
            sf.write(str(root / name / f"{stem}.flac"), audio.T, SAMPLE_RATE, subtype="PCM_24")
    return root


@pytest.fixture(scope="module")
def separator(tmp_path_factory) -> Path:
    return tiny_separator_checkpoint(tmp_path_factory.mktemp("separator") / "tiny", FOUR_STEMS)


@pytest.fixture(scope="module")
def cache(songs, separator, tmp_path_factory) -> Path:
    return cache_separated_stems(separator, songs, tmp_path_factory.mktemp("cache") / "pairs", progress=False)


def assert_pair(item: dict, channels: int = 2, samples: int = S) -> None:
    """Shapes and dtypes, a playing target, and the level convention (target at the input's RMS)."""
    assert item["input"].shape == item["target"].shape == (channels, samples)
    assert item["input"].dtype == item["target"].dtype == torch.float32
    assert rms(item["target"]) >= ACTIVE_STEM_RMS
    assert abs(20 * np.log10(rms(item["target"]) / rms(item["input"]))) < 0.1


# ---------------------------------------------------------------- degraded pairs

def test_degraded_pairs_are_processed_stems_at_the_input_level(songs):
    dataset = RestorationDataset(songs, chunk_seconds=CHUNK, length=6, seed=3)
    assert len(dataset) == 6
    assert dataset.stems == ("vocals", "bass", "drums", "guitars", "keyboards", "other")
    for i in range(len(dataset)):
        item = dataset[i]
        assert_pair(item)
        assert STEMS[item["stem"]] in dataset.stems
        assert float((item["input"] - item["target"]).abs().max()) > 1e-3  # the chains changed it
    whole = RestorationDataset(songs, chunk_seconds=SECONDS, length=1)[0]
    assert_pair(whole, samples=round(SECONDS * SAMPLE_RATE))
    with pytest.raises(IndexError):
        dataset[6]


def test_items_depend_only_on_seed_and_index(songs):
    first, again = (RestorationDataset(songs, chunk_seconds=CHUNK, length=4, seed=7) for _ in range(2))
    for i in (2, 0):  # order does not matter
        assert torch.equal(first[i]["input"], again[i]["input"])
        assert torch.equal(first[i]["target"], again[i]["target"])
        assert first[i]["stem"] == again[i]["stem"]
    assert not torch.equal(first[0]["input"], first[1]["input"])
    other_seed = RestorationDataset(songs, chunk_seconds=CHUNK, length=4, seed=8)[0]
    assert not torch.equal(first[0]["input"], other_seed["input"])


def test_bass_only_pairs_hold_the_playing_bass(songs):
    dataset = RestorationDataset(songs, stems=["bass"], chunk_seconds=CHUNK, length=6)
    assert dataset.stems == ("bass",)
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["stem"] == STEMS.index("bass")
        assert_pair(item)  # song_a's bass is silent in its first half: those chunks were drawn again
        spectrum = np.abs(np.fft.rfft(item["target"][0].numpy()))
        assert abs(np.argmax(spectrum) * SAMPLE_RATE / S - 55.0) <= 2.0


def test_mono_items_have_one_channel(songs):
    item = RestorationDataset(songs, chunk_seconds=CHUNK, length=1, mono=True)[0]
    assert_pair(item, channels=1)


def test_bad_arguments_give_one_line_errors(songs, tmp_path):
    (tmp_path / "empty").mkdir()
    cases = [
        (tmp_path / "empty", {}),
        ([], {}),
        (songs, {"stems": ["kazoo"]}),
        (songs, {"stems": ["orchestral"]}),
        (songs, {"stems": []}),
        (songs, {"source": "mastered"}),
        (songs, {"source": "separated"}),
        (songs, {"cache_dir": tmp_path}),
        (songs, {"source": "separated", "cache_dir": tmp_path / "missing"}),
        (songs, {"source": "separated", "cache_dir": tmp_path / "empty"}),
        (songs, {"length": 0}),
        (songs, {"chunk_seconds": 0}),
    ]
    for folder, options in cases:
        with pytest.raises(MSRError) as error:
            RestorationDataset(folder, **options)
        assert "\n" not in str(error.value), options
    with pytest.raises(MSRError, match="orchestral"):
        RestorationDataset(songs, stems=["bass", "orchestral"])


# ---------------------------------------------------------------- separated pairs

def test_cache_is_written_once_with_its_record(songs, separator, cache):
    folders = sorted(p.name for p in cache.iterdir())
    assert folders == ["song_a_v0", "song_b_v0"]
    for folder in folders:
        assert sorted(p.name for p in (cache / folder).iterdir()) == sorted(
            [PAIRS_FILE] + [f"{stem}.flac" for stem in FOUR_STEMS])
    record = json.loads((cache / "song_a_v0" / PAIRS_FILE).read_text())
    assert record["song"] == str((songs / "song_a").resolve())
    assert record["separator"] == str(separator) and record["stems"] == list(FOUR_STEMS)
    stems = load_song_stems(songs / "song_a")
    mastered = song_mixture(stems, mix="mastered", seed=record["version_seed"])
    assert record["mix_level_gain"] == pytest.approx(rms(mastered) / rms(sum(stems.values())), rel=1e-5)

    mtimes = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    cache_separated_stems(separator, [songs / "song_b", songs / "song_a"], cache, progress=False)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == mtimes
    with pytest.raises(MSRError, match="other settings"):
        cache_separated_stems(separator, songs, cache, seed=1, progress=False)


def test_separated_pairs_read_the_cached_estimates(songs, cache, tmp_path):
    """Estimates replaced by a ramp (left) and a per-file constant (right) tell which file and sample each input
    came from; the target must be that song's grouped clean stem at those samples, at the input's level."""
    marked = shutil.copytree(cache, tmp_path / "cache")
    length = round(SECONDS * SAMPLE_RATE)
    ramp = 0.1 + 0.8 * np.arange(length) / length
    constants = {}
    for i, (song, stem) in enumerate((song, stem) for song in SONGS for stem in FOUR_STEMS):
        constants[song, stem] = 0.05 * (i + 1)
        sf.write(str(marked / f"{song}_v0" / f"{stem}.flac"),
                 np.stack([ramp, np.full(length, constants[song, stem])]).T, SAMPLE_RATE, subtype="PCM_24")
    dataset = RestorationDataset(songs, source="separated", cache_dir=marked, chunk_seconds=CHUNK, length=8)
    assert dataset.stems == FOUR_STEMS
    seen = set()
    for i in range(len(dataset)):
        item = dataset[i]
        assert_pair(item)
        stem = STEMS[item["stem"]]
        song = next(s for (s, st), c in constants.items() if st == stem and abs(item["input"][1, 0] - c) < 1e-4)
        start = round((float(item["input"][0, 0]) - 0.1) * length / 0.8)
        np.testing.assert_allclose(item["input"][0].numpy(), ramp[start:start + S], atol=1e-6)
        clean = group_stems(load_song_stems(songs / song), FOUR_STEMS)[stem][:, start:start + S]
        np.testing.assert_allclose(item["target"].numpy(), clean * rms(item["input"]) / rms(clean), atol=1e-5)
        seen.add((song, stem))
    assert len(seen) > 2

    bass = RestorationDataset(songs, source="separated", cache_dir=marked, stems=["bass"], chunk_seconds=CHUNK,
                              length=3)
    assert {bass[i]["stem"] for i in range(3)} == {STEMS.index("bass")}


def test_separated_source_refuses_what_the_cache_lacks(songs, cache, tmp_path):
    with pytest.raises(MSRError, match="gives no guitars"):
        RestorationDataset(songs, source="separated", cache_dir=cache, stems=["guitars"])
    uncached = shutil.copytree(songs / "song_a", tmp_path / "song_c")
    with pytest.raises(MSRError, match="no separated pairs of song_c"):
        RestorationDataset([songs / "song_a", uncached], source="separated", cache_dir=cache)
    moved = shutil.copytree(songs / "song_a", tmp_path / "elsewhere" / "song_a")
    with pytest.raises(MSRError, match="holds pairs of"):  # the same name, another song folder
        RestorationDataset([moved], source="separated", cache_dir=cache)
