"""The real-recordings development set builder, on a tiny samples folder in lmms-common's layout that the tests write
(a one-bar drum loop, a bass loop, two pitched one-shots of known f0), so no Debian package is needed."""
import json

import numpy as np
import pytest
import soundfile as sf

from msr_lib.audio import SAMPLE_RATE
from msr_lib.data.loop_songs import LMMS_PACKAGE, PURPOSE, build_loop_songs, loop_tempo, root_hz, shift_pitch
from msr_lib.errors import MSRError

SR = SAMPLE_RATE
BASS_HZ, PIANO_HZ, FLUTE_HZ = 110.0, 261.63, 440.0


def _tone(hz, seconds, decay):
    t = np.arange(int(seconds * SR)) / SR
    return (np.sin(2 * np.pi * hz * t) + 0.2 * np.sin(4 * np.pi * hz * t)) * np.exp(-t / decay)


def write_samples(root):
    """A samples folder in lmms-common's layout: a one-bar drum loop (120 BPM, one hit on the downbeat), a one-bar
    bass loop at 110 Hz, a piano one-shot at 261.63 Hz, a flute one-shot at 440 Hz and an unreadable file."""
    rng = np.random.default_rng(0)
    for folder in ("beats", "bassloops", "instruments"):
        (root / folder).mkdir(parents=True)
    loop = np.zeros(2 * SR)
    loop[: SR // 50] = rng.standard_normal(SR // 50) * np.exp(-np.arange(SR // 50) / 200)
    sf.write(root / "beats" / "break01.wav", 0.8 * loop, SR)
    t = np.arange(2 * SR) / SR
    bass = 0.5 * np.sin(2 * np.pi * BASS_HZ * t) * (0.6 + 0.4 * np.cos(2 * np.pi * 2 * t))  # pulses on the beats
    sf.write(root / "bassloops" / "techno_bass01.wav", bass, SR)
    sf.write(root / "instruments" / "piano01.wav", 0.5 * _tone(PIANO_HZ, 1.0, 0.3), SR)
    sf.write(root / "instruments" / "flute01.wav", 0.5 * _tone(FLUTE_HZ, 2.0, 10.0), SR)
    (root / "instruments" / "harpsichord01.ogg").write_bytes(b"RIFF0000WAVEfmt broken")
    return root


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return write_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def built(samples, tmp_path_factory):
    out = tmp_path_factory.mktemp("dev") / "loops"
    return build_loop_songs(out, songs=4, seconds=4.0, seed=4000, samples_dir=samples)


def _info(folder):
    return json.loads((folder / "song.json").read_text())


def _parts(built, stem):
    return [(folder, part) for folder in built for part in _info(folder)["parts"] if part["stem"] == stem]


def _f0(audio, start, end):
    """Fundamental of a segment (FFT peak, zero-padded to 0.3 Hz bins, parabolic interpolation)."""
    seg = audio.mean(axis=0)[int(start * SR):int(end * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n=1 << 17))
    k = int(np.argmax(spec[1:])) + 1
    a, b, c = np.log(spec[k - 1:k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / (1 << 17)


def test_same_seed_same_bytes_other_seed_other_song(samples, built, tmp_path):
    again = build_loop_songs(tmp_path / "loops", songs=4, seconds=4.0, seed=4000, samples_dir=samples)
    assert [f.name for f in again] == [f.name for f in built]
    for a, b in zip(built, again):
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir()) and "clean_mix.flac" in names
        for name in names:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    other = build_loop_songs(tmp_path / "other", songs=1, seconds=4.0, seed=4001, samples_dir=samples)
    assert (other[0] / "clean_mix.flac").read_bytes() != (built[0] / "clean_mix.flac").read_bytes()


def test_stems_add_up_to_the_clean_mix_after_flac(built):
    for folder in built:
        info = _info(folder)
        stems = [sf.read(folder / f"{stem}.flac", dtype="float64")[0] for stem in info["stems"]]
        mix, rate = sf.read(folder / "clean_mix.flac", dtype="float64")
        assert rate == SR and mix.shape == (4 * SR, 2)
        assert np.max(np.abs(np.sum(stems, axis=0) - mix)) < 1e-7
        assert -1.01 < 20 * np.log10(np.abs(mix).max()) <= -1.0
        assert "vocals" not in info["stems"] and "drums" in info["stems"]


def test_loop_tempo_rule():
    assert loop_tempo(2.0) == (1, 120.0)
    bars, bpm = loop_tempo(1.439)
    assert bars == 1 and bpm == pytest.approx(166.78, abs=0.01)
    assert loop_tempo(3.952)[0] == 2 and loop_tempo(8.0) == (4, 120.0)
    assert loop_tempo(0.5) is None                             # 480 BPM as one bar: no bar count fits 70-180 BPM


def test_loops_are_stretched_to_the_song_tempo(built):
    for folder, part in _parts(built, "drums"):
        tempo = _info(folder)["tempo"]
        assert tempo != 120.0 and 0.94 * 120 <= tempo <= 1.06 * 120
        period = part["bars"] * 4 * 60 / tempo * SR
        assert part["loop_samples"] == round(period) and part["method"] == "resample"
        drums = np.abs(sf.read(folder / "drums.flac")[0]).max(axis=1)
        loud = drums > 0.3 * drums.max()
        onsets = [i for i in np.flatnonzero(loud) if not loud[max(0, i - SR // 10):i].any()]
        assert len(onsets) == int(np.ceil(4 * SR / period))
        assert np.allclose(np.diff(onsets), period, atol=2), (np.diff(onsets), period)


def test_bass_loop_keeps_its_pitch_when_stretched(built):
    stretched = [(f, p) for f, p in _parts(built, "bass") if abs(p["stretch"] - 1) > 0.01]
    assert stretched
    for folder, part in stretched:
        assert part["method"] == "time_stretch (pitch kept)"
        bass = sf.read(folder / "bass.flac")[0].T
        assert _f0(bass, 0.5, 3.5) == pytest.approx(BASS_HZ, rel=0.01)
        assert _info(folder)["key"].startswith("A ")           # the song's tonic is the bass loop's root


def test_one_shots_land_on_the_grid(built):
    parts = _parts(built, "keyboards")
    assert parts
    for folder, part in parts:
        step = 60 / _info(folder)["tempo"] / 2 * SR             # eighth notes
        keys = sf.read(folder / "keyboards.flac")[0].mean(axis=1)
        starts = sorted({round(start * SR) for start, _, _ in part["notes"]})
        assert len(starts) >= 4
        window = SR // 100
        for start in starts:
            assert abs(start / step - round(start / step)) * step <= 2
            if not window <= start < keys.size - window:
                continue
            before, after = keys[start - window:start], keys[start:start + window]
            assert np.sqrt(np.mean(after ** 2)) > 2 * np.sqrt(np.mean(before ** 2) + 1e-12)


def test_pitch_shift_hits_the_target_note(built):
    t = np.arange(SR) / SR
    sine = np.stack([np.sin(2 * np.pi * PIANO_HZ * t)] * 2).astype(np.float32)
    shifted = shift_pitch(sine, PIANO_HZ, 392.0)
    assert shifted.shape[1] == pytest.approx(SR * PIANO_HZ / 392.0, abs=2)
    assert _f0(shifted, 0.1, 0.6) == pytest.approx(392.0, rel=0.01)
    lines = _parts(built, "orchestral")
    assert lines
    checked = 0
    for folder, part in lines:
        assert part["role"] == "line" and part["root_hz"] == pytest.approx(FLUTE_HZ, rel=0.01)
        audio = sf.read(folder / "orchestral.flac")[0].T
        for start, end, pitch in part["notes"]:
            if end - start >= 0.2 and end <= 3.9:
                target = 440.0 * 2 ** ((pitch - 69) / 12)
                assert _f0(audio, start + 0.03, end - 0.05) == pytest.approx(target, rel=0.01)
                assert -6 <= pitch - 69 <= 5                    # within half an octave of the flute's root (A4)
                checked += 1
    assert checked >= 3


def test_song_json_records_every_file_and_the_purpose(samples, built):
    for folder in built:
        info = _info(folder)
        assert info["purpose"] == PURPOSE and info["seed"] != info["base_seed"] == 4000
        assert {p["stem"] for p in info["parts"]} == set(info["stems"])
        for part in info["parts"]:
            assert (samples / part["file"]).is_file() and part["gain"] > 0
            assert part["file"] in info["instruments"][part["stem"]]["files"]
            assert -1 <= part["pan"] <= 1
        assert all(v["sound_source"] == LMMS_PACKAGE for v in info["instruments"].values())
        assert not any("harpsichord" in p["file"] for p in info["parts"])
        assert sorted(info["stems"]) == sorted(p.stem for p in folder.glob("*.flac") if p.stem != "clean_mix")


def test_root_of_a_one_shot(samples):
    assert root_hz(samples / "instruments" / "piano01.wav") == pytest.approx(PIANO_HZ, rel=0.01)


def test_missing_samples_folder_names_the_package(tmp_path):
    with pytest.raises(MSRError) as err:
        build_loop_songs(tmp_path / "out", songs=1, seconds=2.0, seed=4000, samples_dir=tmp_path / "nope")
    assert LMMS_PACKAGE in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_refuses_to_write_into_training_data(samples, tmp_path, monkeypatch):
    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path))
    with pytest.raises(MSRError, match="kept apart"):
        build_loop_songs(tmp_path / "train_laptop" / "dev", songs=1, seconds=2.0, seed=4000, samples_dir=samples)
    assert not (tmp_path / "train_laptop").exists()


def test_training_datasets_refuse_development_set_songs(built):
    from msr_lib.data.datasets import MultitrackDataset

    with pytest.raises(MSRError, match="kept apart from training"):
        MultitrackDataset(built[0].parent, length=4, preload=False)
