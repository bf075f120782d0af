"""Damaged and hostile datasets: symlinks out of the tree, hostile ``song.json``, unreadable audio files skipped and
counted by the training datasets (at build time, mid-epoch, across DataLoader workers), and refused when too many."""
from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from msr_lib.audio import MAX_JSON_BYTES, SAMPLE_RATE
from msr_lib.data import loop_songs
from msr_lib.data.datasets import MultitrackDataset, make_dataloader, scan_dataset, scan_song_folders
from msr_lib.data.synth import batch
from msr_lib.data.restoration import RestorationDataset
from msr_lib.errors import MSRError
from tests.helpers import one_line_error
from tests.test_datasets import make_moisesdb, make_msrbench, make_musdb, make_rawstems, make_song_folders

SR = 8000
STEMS4 = ("vocals", "bass", "drums", "other")


def _paths(entries) -> set[Path]:
    found = set()
    for entry in entries:
        found.update(p for files in entry.stems.values() for p in files)
        found.update(p for p in (entry.clean_mix, entry.mastered_mix) if p is not None)
        found.update(entry.extra.get("mixtures", {}).values())
    return found


# ---------------------------------------------------------------- symlinks out of the tree

@pytest.mark.parametrize("layout, maker", [("songs", make_song_folders), ("musdb18hq", make_musdb),
                                           ("moisesdb", make_moisesdb), ("msrbench", make_msrbench),
                                           ("rawstems", make_rawstems)])
def test_a_stem_file_symlinked_out_of_the_tree_is_skipped_with_a_warning(layout, maker, tmp_path):
    root = maker(tmp_path / "dataset")
    before = _paths(scan_dataset(root, layout))
    moved = sorted(before)[0]
    outside = tmp_path / "elsewhere" / moved.name
    outside.parent.mkdir()
    shutil.move(moved, outside)
    moved.symlink_to(outside)
    with pytest.warns(UserWarning, match="outside the dataset folder") as caught:
        after = _paths(scan_dataset(root, layout))
    assert moved not in after and outside not in after
    assert after == before - {moved} or layout == "msrbench"  # an MSRBench clip without its target goes whole
    assert any(str(moved) in str(w.message) for w in caught)


def test_symlinks_inside_the_tree_are_kept_and_song_folders_linked_out_are_dropped(tmp_path):
    root = make_song_folders(tmp_path / "songs")
    (root / "song_a" / "keys.flac").symlink_to(root / "song_b" / "piano.flac")  # inside the tree: a real file
    outside = make_song_folders(tmp_path / "other")
    (root / "linked").symlink_to(outside / "song_a", target_is_directory=True)
    (root / "song_a" / "loop.flac").symlink_to(root / "song_a" / "loop.flac")  # a symlink loop: not a file
    with pytest.warns(UserWarning, match="outside the dataset folder"):
        entries = {e.name: e for e in scan_song_folders(root)}
    assert sorted(entries) == ["song_a", "song_b"]
    assert root / "song_a" / "keys.flac" in entries["song_a"].stems["keyboards"]
    assert all(root.resolve() in p.resolve().parents for p in _paths(entries.values()))

    for song in ("song_a", "song_b"):
        shutil.rmtree(root / song)
    with pytest.warns(UserWarning), pytest.raises(MSRError, match="no songs found"):
        scan_song_folders(root)


# ---------------------------------------------------------------- hostile song.json

def _write_meta(path: Path, content) -> None:
    if isinstance(content, int):  # a sparse file of that many bytes
        with open(path, "wb") as f:
            f.truncate(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@pytest.mark.parametrize("content, fragment", [
    ("[1, 2, 3]", "expected a JSON object, got list"),
    ('{"generator": 5}', "generator must be a string"),
    ('{"generator": ["msr_lib.data.loop_songs"]}', "generator must be a string"),
    ('{"tempo": NaN}', "NaN is not a JSON number"),
    ('{"tempo": -Infinity}', "-Infinity is not a JSON number"),
    ('{"tempo": 1e999}', "overflows a float"),
    ('{"tempo": 1' + "0" * 5000 + "}", "cannot read"),
    ("[" * 100_000 + "]" * 100_000, "cannot read"),
    ('{"title": "unclosed', "cannot read"),
    (b"\xff\xfe\x00garbage", "cannot read"),
    ('{"title": "' + "x" * (MAX_JSON_BYTES + 10) + '"}', "more than the 1,048,576"),
    (3 * 2**30, "3,221,225,472 bytes, more than the"),
])
def test_a_hostile_song_json_is_refused_in_one_line(content, fragment, tmp_path):
    root = make_song_folders(tmp_path / "songs")
    path = root / "song_b" / "song.json"
    _write_meta(path, content)
    start = time.perf_counter()
    one_line_error(lambda: scan_song_folders(root), path, fragment)
    assert time.perf_counter() - start < 2.0


def test_a_song_json_with_odd_but_valid_fields_is_kept_as_metadata(tmp_path):
    root = make_song_folders(tmp_path / "songs")
    meta = {"tempo": 1e300, "key": None, "stems": "not a list", "seconds": -5, "generator": "msr_lib.data.synth"}
    (root / "song_a" / "song.json").write_text(json.dumps(meta))
    entries = {e.name: e for e in scan_song_folders(root)}
    assert entries["song_a"].extra["meta"] == meta


def test_a_hostile_moisesdb_data_json_is_refused_in_one_line(tmp_path):
    root = make_moisesdb(tmp_path / "moisesdb")
    path = root / "provider0" / "0a1b2c" / "data.json"
    path.write_text('"just a string"')
    one_line_error(lambda: scan_dataset(root, "moisesdb"), path, "expected a JSON object")


# ---------------------------------------------------------------- unreadable files in the training datasets

def _tone(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([0.1 * np.sin(2 * np.pi * freq * t)] * 2, axis=1).astype(np.float32)


def _songs(root: Path, count: int = 3, sr: int = SR, seconds: float = 1.5) -> Path:
    """``count`` songs of four stems each (``4 * count`` files)."""
    for i in range(count):
        for j, stem in enumerate(STEMS4):
            (root / f"song{i}").mkdir(parents=True, exist_ok=True)
            sf.write(str(root / f"song{i}" / f"{stem}.wav"), _tone(110.0 * (j + 1) + 13 * i, seconds, sr), sr,
                     subtype="FLOAT")
    return root


def _damage(path: Path, how: str) -> None:
    if how == "text":
        path.write_text("this is a text file named .wav\n" * 20)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:30])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "nan":
        sf.write(str(path), np.full((int(1.5 * SR), 2), np.nan, np.float32), SR, subtype="FLOAT")


def _dataset(root, **options) -> MultitrackDataset:
    return MultitrackDataset(root, **{"stems": STEMS4, "chunk_seconds": 0.25, "sample_rate": SR, "length": 12,
                                      "remix_prob": 0.5, **options})


def _items(ds) -> list[dict]:
    return [ds[i] for i in range(len(ds))]


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("preload", [True, False])
@pytest.mark.parametrize("how", ["text", "truncated", "empty", "nan"])
def test_an_unreadable_file_is_skipped_and_counted_when_the_dataset_is_built(how, preload, tmp_path):
    """A damaged extra stem of song 0 (one file in 13): skipped with one warning naming it, counted, and the items
    are exactly those of the dataset without that file."""
    root = _songs(tmp_path / "songs")
    clean = _items(_dataset(root, preload=preload))
    bad = root / "song0" / "keyboards.wav"
    sf.write(str(bad), _tone(700, 1.5, SR), SR, subtype="FLOAT")
    _damage(bad, how)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = _dataset(root, preload=preload)
        items = _items(ds)
    named = [w for w in caught if str(bad) in str(w.message)]
    assert len(named) == 1 and "skipped" in str(named[0].message)
    assert ds.skipped_files == 1 and list(ds.unreadable_files) == [bad]
    assert all(_same(a, b) for a, b in zip(items, clean))


def test_a_file_deleted_after_the_dataset_was_built_reads_as_an_absent_stem(tmp_path):
    """Mid-epoch: one warning, one count; items that never read the file are unchanged, the others lose exactly
    that stem (its target row silent, not active, and the mixture still the sum of the targets)."""
    root = _songs(tmp_path / "songs")
    ds = _dataset(root, preload=False, length=24)
    before = _items(ds)
    gone = root / "song1" / "bass.wav"
    gone.unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        after = _items(ds)
    assert len([w for w in caught if str(gone) in str(w.message)]) == 1
    assert ds.skipped_files == 1 and gone in ds.unreadable_files
    bass = STEMS4.index("bass")
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if not _same(a, b)]
    assert changed and len(changed) < len(before)
    for i in changed:
        a, b = before[i], after[i]
        others = [t for t in range(len(STEMS4)) if t != bass]
        assert torch.equal(a["targets"][others], b["targets"][others])
        assert not b["targets"][bass].any() and not b["active"][bass]
        torch.testing.assert_close(b["mixture"], b["targets"].sum(0))


def test_files_found_unreadable_in_dataloader_workers_are_counted(tmp_path):
    root = _songs(tmp_path / "songs")
    ds = _dataset(root, preload=False, length=24)
    (root / "song1" / "bass.wav").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(make_dataloader(ds, batch_size=4, num_workers=2))
    assert len(batches) == 6 and batches[0]["targets"].shape == (4, 4, 2, int(0.25 * SR))
    assert ds.unreadable_files == {}  # the main process read nothing itself ...
    assert 1 <= ds.skipped_files <= 2  # ... but each worker that met the file counted it once


def test_too_many_unreadable_files_are_refused_in_one_line(tmp_path):
    root = _songs(tmp_path / "songs")
    for path in (root / "song0" / "bass.wav", root / "song2" / "drums.wav"):  # 2 of 12: over a tenth
        _damage(path, "text")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_line_error(lambda: _dataset(root), "2 of the 12 audio files of this dataset are unreadable",
                        "more than 10%")
        for path in root.glob("*/*.wav"):
            _damage(path, "empty")
        one_line_error(lambda: _dataset(root, preload=False), "12 of the 12 audio files")


def test_too_many_files_vanishing_mid_epoch_stop_with_one_line(tmp_path):
    root = _songs(tmp_path / "songs")
    ds = _dataset(root, preload=False, length=48, remix_prob=1.0)
    shutil.rmtree(root / "song1")  # 4 of 12 files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_line_error(lambda: _items(ds), "of the 12 audio files of this dataset are unreadable", root / "song1")


def test_the_restoration_dataset_skips_and_counts_unreadable_files(tmp_path):
    """Degraded pairs from 5 songs with one text-as-audio file at build time and one file deleted afterwards
    (drawn by these items): the pairs are still drawn (a silent chunk is drawn again), the count is 2."""
    root = _songs(tmp_path / "songs", count=5, sr=SAMPLE_RATE, seconds=1.0)
    _damage(root / "song0" / "bass.wav", "text")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = RestorationDataset(root, stems=["vocals"], chunk_seconds=0.25, length=12, seed=1)
        assert ds.skipped_files == 1
        (root / "song2" / "vocals.wav").unlink()
        items = _items(ds)
    assert ds.skipped_files == 2
    for item in items:
        assert item["input"].shape == item["target"].shape == (2, round(0.25 * SAMPLE_RATE))
        assert torch.isfinite(item["input"]).all() and item["target"].abs().max() > 0


# ---------------------------------------------------------------- a hostile song.json where a run skips songs it wrote

#: song.json contents the skip checks of ``msr synth`` / the loop songs must take for "not written" (a list made them
#: raise AttributeError, a gigabyte was read whole)
HOSTILE_SONG_JSON = ["[1, 2]", '{"seconds": NaN}', 3 * 2**30]


@pytest.mark.parametrize("content", HOSTILE_SONG_JSON, ids=["list", "nan", "3GiB"])
def test_synth_skip_existing_renders_again_a_song_whose_song_json_is_hostile(content, tmp_path):
    folder = tmp_path / batch.song_id(7, 0)
    folder.mkdir()
    (folder / batch.CLEAN_MIX_FILE).write_bytes(b"")
    pool = ["procedural"]
    (folder / "song.json").write_text(json.dumps({"seconds": 2.0, "source": "procedural", "sound_source_pool": pool,
                                                  "pinned_soundfont": None}))
    assert batch._already_written(tmp_path, 7, 0, 2.0, "procedural", pool, None) == folder  # kept as it is
    _write_meta(folder / "song.json", content)
    start = time.perf_counter()
    assert batch._already_written(tmp_path, 7, 0, 2.0, "procedural", pool, None) is None
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("content", HOSTILE_SONG_JSON, ids=["list", "nan", "3GiB"])
def test_loop_songs_skip_existing_renders_again_a_song_whose_song_json_is_hostile(content, tmp_path, monkeypatch):
    rendered = []

    def render(seed, seconds, samples):
        rendered.append(seed)
        audio = np.full((2, 64), 0.1, np.float32)
        return {"bass": audio}, audio, {"seconds": seconds}

    monkeypatch.setattr(loop_songs, "catalogue", lambda samples_dir: [])
    monkeypatch.setattr(loop_songs, "render_loop_song", render)
    out = tmp_path / "dev"
    [folder] = loop_songs.build_loop_songs(out, songs=1, seconds=2.0, seed=5, skip_existing=True)
    assert loop_songs.build_loop_songs(out, songs=1, seconds=2.0, seed=5, skip_existing=True) == [folder]
    assert len(rendered) == 1  # the second call kept the song
    _write_meta(folder / "song.json", content)
    assert loop_songs.build_loop_songs(out, songs=1, seconds=2.0, seed=5, skip_existing=True) == [folder]
    assert len(rendered) == 2 and json.loads((folder / "song.json").read_text())["seconds"] == 2.0
