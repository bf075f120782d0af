"""Dataset layouts (tiny fake trees) and the MultitrackDataset training chunks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from msr_lib.data.datasets import (
    MOISESDB_STEMS, MultitrackDataset, SongEntry, detect_layout, load_entry, make_dataloader, scan_dataset,
    scan_moisesdb, scan_msrbench, scan_musdb18hq, scan_rawstems, scan_song_folders,
)
from msr_lib.audio import ACTIVE_STEM_RMS
from msr_lib.errors import MSRError
from msr_lib.stems import FOUR_STEMS, STEMS

SR = 8000  # small rate keeps the files and the test fast


def tone(freq: float, seconds: float = 1.0, amp: float = 0.1, sr: int = SR) -> np.ndarray:
    """A stereo sine ``(samples, 2)`` as soundfile wants it."""
    t = np.arange(int(seconds * sr)) / sr
    wave = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([wave, 0.5 * wave], axis=1).astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")
    return path


# ---------------------------------------------------------------- fake trees

def make_song_folders(root: Path) -> Path:
    """Two ``msr synth``-style songs; song_b uses aliases (``vocal``, ``piano``), has a silent guitar, a stem of
    unknown name (``kazoo``) and a mastered mix named as other datasets name it (``mixture``)."""
    for name, freqs in (("song_a", {"vocals": 440, "bass": 55, "drums": 200, "guitars": 330}),
                        ("song_b", {"vocal": 523, "bass": 65, "piano": 262, "synth": 700})):
        folder = root / name
        for stem, freq in freqs.items():
            write(folder / f"{stem}.flac", tone(freq, 1.5))
        write(folder / "clean_mix.flac", tone(100, 1.5))
        (folder / "song.json").write_text(json.dumps({"key": "C", "tempo": 120}))
    write(root / "song_b" / "guitars.flac", np.zeros((int(1.5 * SR), 2), np.float32))
    write(root / "song_b" / "mixture.flac", tone(100, 1.5))  # another dataset's finished song
    write(root / "song_b" / "kazoo.flac", tone(900, 1.5))
    return root


def make_musdb(root: Path) -> Path:
    for split, songs in (("train", ["A - One", "B - Two"]), ("test", ["C - Three"])):
        for song in songs:
            for i, stem in enumerate(("mixture", "vocals", "bass", "drums", "other")):
                write(root / split / song / f"{stem}.wav", tone(100 + 50 * i, 0.5))
    return root


def make_moisesdb(root: Path) -> Path:
    """One song in ``<provider>/<uuid>/`` with two guitar tracks, piano, strings and a synth pad in other_keys."""
    song = root / "provider0" / "0a1b2c"
    layout = {"vocals": [("v1", "lead_female_singer", 440)], "guitar": [("g1", "acoustic_guitar", 330),
                                                                        ("g2", "clean_electric_guitar", 660)],
              "piano": [("p1", "grand_piano", 262)], "bowed_strings": [("s1", "violin_section", 880)],
              "other_keys": [("k1", "synth_pad", 700), ("k2", "organ_electric_organ", 150)],
              "other_plucked": [("u1", "banjo_mandolin_ukulele_harp_etc", 990)]}
    stems = []
    for stem_name, tracks in layout.items():
        for track_id, _, freq in tracks:
            write(song / stem_name / f"{track_id}.wav", tone(freq, 1.0 if track_id != "g2" else 0.75))
        stems.append({"stemName": stem_name, "tracks": [{"id": i, "trackType": t, "extension": "wav"}
                                                        for i, t, _ in tracks]})
    (song / "data.json").write_text(json.dumps({"song": "Tune", "artist": "Band", "genre": "pop", "stems": stems}))
    return root


def make_msrbench(root: Path) -> Path:
    """Bass with a mixture/ folder (two DT variants for clip 0); Vocals with mixtures next to the targets."""
    for i in range(2):
        write(root / "Bass" / "target" / f"{i}.flac", tone(55 + i, 0.5))
        write(root / "Vocals" / "target" / f"{i}.flac", tone(440 + i, 0.5))
    write(root / "Vocals" / "target" / "0_DT0.flac", tone(300, 0.5))  # clip 1 has no mixture
    write(root / "Bass" / "mixture" / "0_DT1.flac", tone(100, 0.5))
    write(root / "Bass" / "mixture" / "0_DT0.flac", tone(110, 0.5))
    write(root / "Bass" / "mixture" / "1_DT0.flac", tone(120, 0.5))
    return root


def make_rawstems(root: Path) -> Path:
    song = root / "Artist - Song"
    write(song / "Voc" / "LV" / "lead.flac", tone(440))
    write(song / "Voc" / "BV" / "backing.flac", tone(880))
    write(song / "Gtr" / "EG" / "e.flac", tone(330))
    write(song / "Gtr_AG" / "a.wav", tone(165))
    write(song / "Rhy" / "DK" / "kit.flac", tone(60))
    write(song / "Rhy" / "PERC" / "shaker.flac", tone(5000 / 2))
    write(song / "Kbs" / "PN" / "piano.flac", tone(262))
    write(song / "Synth" / "PAD" / "pad.flac", tone(700))
    write(song / "Orch" / "STR" / "strings.flac", tone(523))
    write(song / "Misc" / "FX" / "fx.flac", tone(1200))
    write(root / "Other Song" / "Bass" / "DI" / "bass.flac", tone(55))
    write(root / "Other Song" / "Voc_LV_take1.flac", tone(440))
    (root / "rms_analysis.jsonl").write_text("")
    return root


# ---------------------------------------------------------------- scanners

def test_song_folders_map_aliases_mixture_and_metadata(tmp_path):
    entries = scan_song_folders(make_song_folders(tmp_path))
    assert [e.name for e in entries] == ["song_a", "song_b"]
    a, b = entries
    assert list(a.stems) == ["vocals", "bass", "drums", "guitars"]
    assert list(b.stems) == ["vocals", "bass", "guitars", "keyboards", "synthesizers", "other"]
    assert b.stems["keyboards"] == [tmp_path / "song_b" / "piano.flac"]
    assert b.stems["other"] == [tmp_path / "song_b" / "kazoo.flac"] and b.extra["unmapped"] == ["kazoo.flac"]
    assert (a.clean_mix, a.mastered_mix) == (tmp_path / "song_a" / "clean_mix.flac", None)
    assert (b.clean_mix, b.mastered_mix) == (tmp_path / "song_b" / "clean_mix.flac",
                                             tmp_path / "song_b" / "mixture.flac")
    assert a.extra["meta"] == {"key": "C", "tempo": 120}


def test_musdb18hq_splits_and_mixture(tmp_path):
    root = make_musdb(tmp_path)
    train = scan_musdb18hq(root)
    assert [e.name for e in train] == ["A - One", "B - Two"]
    assert list(train[0].stems) == list(FOUR_STEMS)
    assert train[0].mastered_mix == root / "train" / "A - One" / "mixture.wav" and train[0].clean_mix is None
    assert all(len(files) == 1 for files in train[0].stems.values())
    assert [e.name for e in scan_musdb18hq(root, split="test")] == ["C - Three"]
    assert len(scan_musdb18hq(root, split="all")) == 3
    assert [e.name for e in scan_musdb18hq(root / "test")] == ["C - Three"]  # a split folder as root
    with pytest.raises(MSRError, match="split"):
        scan_musdb18hq(root, split="valid")


def test_moisesdb_maps_folders_and_track_types_and_sums_tracks(tmp_path):
    root = make_moisesdb(tmp_path)
    (entry,) = scan_moisesdb(root)
    song = root / "provider0" / "0a1b2c"
    assert entry.name == "0a1b2c"
    assert entry.extra["artist"] == "Band" and entry.extra["song"] == "Tune"
    assert entry.stems["guitars"] == [song / "guitar" / "g1.wav", song / "guitar" / "g2.wav"]
    assert entry.stems["keyboards"] == [song / "other_keys" / "k2.wav", song / "piano" / "p1.wav"]
    assert entry.stems["synthesizers"] == [song / "other_keys" / "k1.wav"]  # trackType synth_pad
    assert entry.stems["orchestral"] == [song / "bowed_strings" / "s1.wav"]
    assert entry.stems["other"] == [song / "other_plucked" / "u1.wav"]
    assert list(entry.stems) == ["vocals", "guitars", "keyboards", "synthesizers", "orchestral", "other"]
    assert set(MOISESDB_STEMS.values()) <= set(STEMS)

    audio = load_entry(entry, SR)
    g1, g2 = tone(330, 1.0).T, tone(660, 0.75).T
    expected = g1.copy()
    expected[:, : g2.shape[1]] += g2
    assert audio["guitars"].shape == (2, SR)
    np.testing.assert_allclose(audio["guitars"], expected, atol=1e-6)
    assert {a.shape for a in audio.values()} == {(2, SR)}


def test_msrbench_targets_and_tolerant_mixture_location(tmp_path):
    root = make_msrbench(tmp_path)
    entries = scan_msrbench(root)
    assert [e.name for e in entries] == ["Bass/0", "Bass/1", "Vocals/0", "Vocals/1"]
    bass0, _, vocals0, vocals1 = entries
    assert bass0.stems == {"bass": [root / "Bass" / "target" / "0.flac"]}
    assert list(bass0.extra["mixtures"]) == ["DT0", "DT1"]
    assert bass0.mastered_mix == root / "Bass" / "mixture" / "0_DT0.flac"
    assert vocals0.stems == {"vocals": [root / "Vocals" / "target" / "0.flac"]}  # the _DT file is not a target
    assert vocals0.mastered_mix == root / "Vocals" / "target" / "0_DT0.flac"
    assert vocals1.mastered_mix is None and vocals1.extra["mixtures"] == {}
    assert [e.name for e in scan_msrbench(root / "Bass")] == ["Bass/0", "Bass/1"]  # a stem folder as root


def test_rawstems_groups_map_and_tracks_sum(tmp_path):
    root = make_rawstems(tmp_path)
    entries = {e.name: e for e in scan_rawstems(root)}
    assert set(entries) == {"Artist - Song", "Other Song"}
    song = entries["Artist - Song"]
    assert list(song.stems) == [s for s in STEMS if s != "bass"]
    assert len(song.stems["vocals"]) == 2 and len(song.stems["guitars"]) == 2
    assert song.stems["drums"] == [root / "Artist - Song" / "Rhy" / "DK" / "kit.flac"]
    assert song.stems["percussion"] == [root / "Artist - Song" / "Rhy" / "PERC" / "shaker.flac"]
    assert song.stems["other"] == [root / "Artist - Song" / "Misc" / "FX" / "fx.flac"]
    assert song.extra["groups"]["guitars"] == ["Gtr_AG", "Gtr_EG"]
    other = entries["Other Song"]
    assert list(other.stems) == ["vocals", "bass"]
    audio = load_entry(song, SR, stems=["vocals"])
    np.testing.assert_allclose(audio["vocals"], (tone(440) + tone(880)).T, atol=1e-5)
    assert list(audio) == ["vocals"]


@pytest.mark.parametrize("maker, layout", [
    (make_song_folders, "songs"), (make_musdb, "musdb18hq"), (make_moisesdb, "moisesdb"),
    (make_msrbench, "msrbench"), (make_rawstems, "rawstems"),
])
def test_layout_detection(tmp_path, maker, layout):
    root = maker(tmp_path)
    assert detect_layout(root) == layout
    auto = scan_dataset(root)
    explicit = scan_dataset(root, layout)
    assert [e.name for e in auto] == [e.name for e in explicit] and auto


def test_errors_are_one_clear_line(tmp_path):
    with pytest.raises(MSRError, match="no such folder"):
        scan_dataset(tmp_path / "missing")
    with pytest.raises(MSRError, match="no songs found") as empty:
        scan_dataset(tmp_path)
    assert "\n" not in str(empty.value)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hi")
    for scanner in (scan_song_folders, scan_musdb18hq, scan_moisesdb, scan_msrbench, scan_rawstems):
        with pytest.raises(MSRError, match="no songs found"):
            scanner(tmp_path)
    with pytest.raises(MSRError, match="unknown dataset layout"):
        scan_dataset(tmp_path, "medleydb")
    with pytest.raises(MSRError, match="no song has any"):
        MultitrackDataset([SongEntry(name="x", stems={"guitars": [tmp_path / "g.wav"]})], stems=("vocals", "bass"))


# ---------------------------------------------------------------- training dataset

def entry_from(root: Path, name: str, signals: dict[str, np.ndarray]) -> SongEntry:
    return SongEntry(name=name, stems={stem: [write(root / name / f"{stem}.wav", audio)]
                                       for stem, audio in signals.items()})


@pytest.fixture
def songs(tmp_path):
    """Two songs with distinct tones; song ``b`` has a silent guitar and no drums."""
    rng = np.random.default_rng(0)
    noise = lambda s: (0.05 * rng.standard_normal((int(s * SR), 2))).astype(np.float32)  # noqa: E731
    a = entry_from(tmp_path, "a", {"vocals": tone(440, 2.0), "bass": tone(55, 2.0), "drums": noise(2.0),
                                   "guitars": tone(330, 2.0), "keyboards": tone(262, 2.0)})
    b = entry_from(tmp_path, "b", {"vocals": tone(523, 1.5), "bass": tone(65, 1.5),
                                   "guitars": np.zeros((int(1.5 * SR), 2), np.float32), "synthesizers": noise(1.5)})
    return [a, b]


def dataset(entries, **options):
    options = {"chunk_seconds": 0.25, "sample_rate": SR, "length": 8, **options}
    return MultitrackDataset(entries, **options)


def test_item_shapes_types_and_mixture_is_sum_of_targets(songs):
    ds = dataset(songs)
    item = ds[0]
    T = int(0.25 * SR)
    assert item["mixture"].shape == (2, T) and item["clean_mix"].shape == (2, T)
    assert item["targets"].shape == (len(STEMS), 2, T)
    assert item["active"].shape == (len(STEMS),) and item["active"].dtype == torch.bool
    assert item["targets"].dtype == torch.float32 and item["mixture"].dtype == torch.float32
    for i in range(len(ds)):
        item = ds[i]
        torch.testing.assert_close(item["mixture"], item["targets"].sum(0))
        torch.testing.assert_close(item["clean_mix"], item["mixture"])
        assert item["targets"].abs().sum() > 0


def test_active_mask_false_for_absent_and_silent_stems(songs):
    ds = dataset(songs[1:], remix_prob=0.0)  # only song b: silent guitars, no drums
    item = ds[3]
    active = dict(zip(ds.stems, item["active"].tolist()))
    assert active["vocals"] and active["bass"] and active["synthesizers"]
    assert not active["guitars"] and not active["drums"] and not active["orchestral"]
    assert torch.all(item["targets"][ds.stems.index("drums")] == 0)
    assert torch.all(item["targets"][~item["active"]].square().mean(dim=(-2, -1)).sqrt() < ACTIVE_STEM_RMS)


@pytest.mark.parametrize("rms_ratio,active", [(0.5, False), (2.0, True)])
def test_active_mask_follows_active_stem_rms(tmp_path, rms_ratio, active):
    # tone() puts amp on the left channel and amp/2 on the right: RMS = amp · sqrt(5/16)
    bass = tone(55, 1.0, amp=rms_ratio * ACTIVE_STEM_RMS / np.sqrt(5 / 16))
    quiet = entry_from(tmp_path, "q", {"vocals": tone(440, 1.0), "bass": bass})
    item = dataset([quiet], gain_db=(0.0, 0.0), remix_prob=0.0)[0]
    assert item["active"].tolist()[:2] == [True, active]


def test_unrequested_stems_fold_into_other_or_are_dropped(songs):
    a = songs[:1]
    four = dataset(a, stems=FOUR_STEMS, remix_prob=0.0, gain_db=(0.0, 0.0), chunk_seconds=2.0)
    item = four[0]
    audio = load_entry(a[0], SR)
    np.testing.assert_allclose(item["targets"][3].numpy(), audio["guitars"] + audio["keyboards"], atol=1e-6)
    np.testing.assert_allclose(item["targets"][0].numpy(), audio["vocals"], atol=1e-6)

    three = dataset(a, stems=("vocals", "bass", "drums"), remix_prob=0.0, gain_db=(0.0, 0.0), chunk_seconds=2.0)
    item = three[0]
    expected = audio["vocals"] + audio["bass"] + audio["drums"]
    np.testing.assert_allclose(item["mixture"].numpy(), expected, atol=1e-5)


def test_gains_are_applied_within_range(songs):
    ds = dataset(songs[:1], stems=("vocals",), remix_prob=0.0, gain_db=(-6.0, -6.0), chunk_seconds=2.0)
    np.testing.assert_allclose(ds[0]["targets"][0].numpy(), 10 ** (-6 / 20) * tone(440, 2.0).T, atol=1e-6)
    ranged = dataset(songs[:1], stems=("vocals",), remix_prob=0.0, gain_db=(-6.0, 3.0), chunk_seconds=2.0)
    peaks = [float(ranged[i]["targets"].abs().max()) for i in range(8)]
    assert 0.1 * 10 ** (-6 / 20) - 1e-4 <= min(peaks) < max(peaks) <= 0.1 * 10 ** (3 / 20) + 1e-4


def test_determinism_indices_and_epochs(songs):
    ds = dataset(songs)
    first, again = ds[2], ds[2]
    for key in first:
        assert torch.equal(first[key], again[key])
    assert not torch.equal(ds[2]["mixture"], ds[3]["mixture"])
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["mixture"], first["mixture"])
    ds.set_epoch(0)
    assert torch.equal(ds[2]["mixture"], first["mixture"])
    assert not torch.equal(dataset(songs, seed=1)[2]["mixture"], first["mixture"])


def test_remixing_draws_stems_from_other_songs(songs):
    same = dataset(songs, remix_prob=0.0, length=16)
    mixed = dataset(songs, remix_prob=1.0, length=16)
    # song b has no drums and song a no synthesizers: without remixing they never sound together
    d, s = same.stems.index("drums"), same.stems.index("synthesizers")
    assert not any(same[i]["active"][d] and same[i]["active"][s] for i in range(16))
    assert any(mixed[i]["active"][d] and mixed[i]["active"][s] for i in range(16))


def test_dataloader_workers_give_identical_batches(songs):
    ds = dataset(songs, length=6)
    batches = {}
    for workers in (0, 2):
        loader = make_dataloader(ds, batch_size=3, num_workers=workers)
        batches[workers] = list(loader)
    assert len(batches[0]) == 2
    assert batches[0][0]["targets"].shape == (3, len(STEMS), 2, int(0.25 * SR))
    for b0, b2 in zip(batches[0], batches[2]):
        for key in b0:
            assert torch.equal(b0[key], b2[key])
    ds.set_epoch(1)  # workers are not persistent, so the new epoch reaches them
    first = next(iter(make_dataloader(ds, batch_size=3, num_workers=2)))
    assert torch.equal(first["mixture"], torch.stack([ds[i]["mixture"] for i in range(3)]))
    assert not torch.equal(first["mixture"], batches[0][0]["mixture"])


def test_lazy_reading_matches_preloaded(songs, tmp_path):
    lazy, eager = dataset(songs, preload=False), dataset(songs, preload=True)
    for i in range(4):
        torch.testing.assert_close(lazy[i]["targets"], eager[i]["targets"], atol=1e-6, rtol=0)
    # a file at another rate is resampled per window
    hi_rate_file = write(tmp_path / "hr" / "vocals.wav", tone(440, 1.0, sr=16000), 16000)
    hi_rate = SongEntry(name="hr", stems={"vocals": [hi_rate_file]})
    item = dataset([hi_rate], stems=("vocals",), preload=False, gain_db=(0.0, 0.0))[0]
    assert item["targets"].shape == (1, 2, int(0.25 * SR))
    assert abs(float(item["targets"].abs().max()) - 0.1) < 0.01


def test_scan_root_accepted_directly(tmp_path):
    root = make_song_folders(tmp_path / "songs")
    ds = MultitrackDataset(root, chunk_seconds=0.5, sample_rate=SR, length=2)
    assert [e.name for e in ds.entries] == ["song_a", "song_b"]


def test_degrade_callable_is_applied(songs):
    calls = []

    def halve(stems, sample_rate, rng):
        calls.append((sorted(stems), sample_rate, isinstance(rng, np.random.Generator)))
        return 0.5 * sum(stems.values())

    ds = dataset(songs, degrade=halve)
    item = ds[1]
    torch.testing.assert_close(item["mixture"], 0.5 * item["clean_mix"])
    torch.testing.assert_close(item["clean_mix"], item["targets"].sum(0))
    (given, rate, seeded), = calls
    sounding = {s for s, t in zip(ds.stems, item["targets"]) if t.abs().max() > 0}
    assert sounding <= set(given) and rate == SR and seeded
    assert "orchestral" not in given  # no song has it: absent stems are not handed to the degrader
    torch.testing.assert_close(ds[1]["mixture"], item["mixture"])  # degradation randomness is seeded too


def test_degrade_true_uses_the_mastering_module(songs):
    ds = dataset(songs, degrade=True, sample_rate=44100, chunk_seconds=0.5, length=2)
    item = ds[0]
    assert item["mixture"].shape == item["clean_mix"].shape
    assert torch.isfinite(item["mixture"]).all()
    assert not torch.allclose(item["mixture"], item["clean_mix"])
    torch.testing.assert_close(ds[0]["mixture"], item["mixture"])


# ---------------------------------------------------------------- pre-rendered mastered mixes

def quarter_gain(stems, sample_rate, rng):
    """A stand-in mastering: a quarter of the sum plus a seeded offset, so versions differ."""
    return 0.25 * sum(stems.values()) + np.float32(rng.uniform(0.01, 0.02))


def test_mastered_cache_items_read_the_cache_files(songs, tmp_path):
    cache = tmp_path / "cache"
    one = dataset(songs[:1], degrade=quarter_gain, mastered_cache=cache, mastered_versions=1, chunk_seconds=2.0,
                  remix_prob=0.0)
    (cached,) = sorted((cache / "a").glob("mastered_*.flac"))
    assert cached.name == "mastered_0.flac"
    item = one[0]
    from_file = sf.read(str(cached), dtype="float32", always_2d=True)[0].T
    np.testing.assert_allclose(item["mixture"].numpy(), from_file, atol=1e-6)
    gains = 10.0 ** (np.array(json.loads((cache / "a" / "mastered.json").read_text())["gains_db"][0]) / 20.0)
    audio = load_entry(songs[0], SR)
    np.testing.assert_allclose(item["targets"][0].numpy(), gains[0] * audio["vocals"], atol=1e-6)
    torch.testing.assert_close(item["clean_mix"], item["targets"].sum(0))
    # the cached mix is the (stand-in) mastering of the gained stems of the whole song: a quarter of their sum
    offset = item["mixture"] - 0.25 * item["clean_mix"]
    assert float(offset.std()) < 1e-5 and 0.01 <= float(offset.mean()) <= 0.02


def test_mastered_cache_is_deterministic_and_keeps_the_item_layout(songs, tmp_path):
    options = dict(degrade=quarter_gain, mastered_versions=3, length=6)
    first = dataset(songs, mastered_cache=tmp_path / "c1", **options)
    again = dataset(songs, mastered_cache=tmp_path / "c2", preload=False, **options)
    reused = dataset(songs, mastered_cache=tmp_path / "c1", **options)  # reads what is there
    on_the_fly = dataset(songs, degrade=quarter_gain, length=6)
    assert sorted(p.name for p in (tmp_path / "c1" / "b").iterdir()) == [
        "mastered.json", "mastered_0.flac", "mastered_1.flac", "mastered_2.flac"]
    for i in range(6):
        items = [first[i], again[i], reused[i]]
        assert {k: (v.shape, v.dtype) for k, v in items[0].items()} == {
            k: (v.shape, v.dtype) for k, v in on_the_fly[i].items()}
        for other in items[1:]:
            for key in items[0]:
                torch.testing.assert_close(other[key], items[0][key], atol=1e-6, rtol=0)
    mixtures = {tuple(first[i]["mixture"][0, :4].tolist()) for i in range(6)}
    assert len(mixtures) > 1


def test_mastered_cache_refuses_other_settings_and_needs_degrade(songs, tmp_path):
    dataset(songs, degrade=quarter_gain, mastered_cache=tmp_path / "c", mastered_versions=2)
    with pytest.raises(MSRError, match="mastered with other settings .*versions"):
        dataset(songs, degrade=quarter_gain, mastered_cache=tmp_path / "c", mastered_versions=3)
    with pytest.raises(MSRError, match="mastered with other settings .*gain_db"):
        dataset(songs, degrade=quarter_gain, mastered_cache=tmp_path / "c", mastered_versions=2, gain_db=(0, 0))
    with pytest.raises(MSRError, match="needs degrade"):
        dataset(songs, mastered_cache=tmp_path / "c")


# ---------------------------------------------------------------- chunk length schedule

def test_chunk_schedule_gives_the_scheduled_lengths_at_the_scheduled_steps(songs):
    from msr_lib.train.loop import StepBatches

    ds = dataset(songs, chunk_seconds=[(0, 0.25), (2, 0.5), (3, 1.0)], items_per_step=3, length=15)
    lengths = [[ds[i]["mixture"].shape[-1] for i in batch] for batch in StepBatches(len(ds), 3, 0, 5)]
    quarter, half, whole = int(0.25 * SR), int(0.5 * SR), SR
    assert lengths == [[quarter] * 3, [quarter] * 3, [half] * 3, [whole] * 3, [whole] * 3]
    item = ds[9]
    assert item["targets"].shape == (len(STEMS), 2, SR) and item["clean_mix"].shape == (2, SR)
    torch.testing.assert_close(item["mixture"], item["targets"].sum(0))
    # the first step's items are those of a dataset with its fixed length
    fixed = dataset(songs, chunk_seconds=0.25, length=15)
    for i in range(3):
        assert torch.equal(ds[i]["targets"], fixed[i]["targets"])
    cached = dataset(songs, chunk_seconds=[(0, 0.25), (1, 0.5)], items_per_step=2, degrade=quarter_gain,
                     mastered_cache=songs[0].stems["vocals"][0].parent.parent / "cache", mastered_versions=1)
    assert [cached[i]["mixture"].shape[-1] for i in (1, 2)] == [quarter, half]


@pytest.mark.parametrize("schedule,message", [
    ([(0, 0.25), (2, 0.5)], "needs items_per_step"),
    ([(1, 0.25)], "starts at step 0"),
    ([(0, 0.25), (0, 0.5)], "steps increase"),
    ([(0, -1.0)], "positive"),
    ("long", "seconds or"),
])
def test_bad_chunk_schedules_are_refused(songs, schedule, message):
    options = {} if message == "needs items_per_step" else {"items_per_step": 2}
    with pytest.raises(MSRError, match=message):
        dataset(songs, chunk_seconds=schedule, **options)
