"""Stems taxonomy, audio I/O with its documented conversions and refusals, presets."""
import numpy as np
import pytest
import soundfile as sf

from msr_lib import audio, presets, stems
from msr_lib.errors import AudioError, MSRError
from tests.conftest import tone


def test_canonical_order_and_sets():
    assert stems.STEMS[-1] == "other" and len(stems.STEMS) == 9
    assert stems.INSTRUMENT_STEMS == stems.STEMS[:8]
    assert set(stems.FOUR_STEMS) <= set(stems.STEMS)
    assert stems.sort_stems(["other", "bass", "vocals"]) == ["vocals", "bass", "other"]


@pytest.mark.parametrize("name,expected", [("Vocals", "vocals"), ("piano", "keyboards"), ("Guitar", "guitars"),
                                           ("synth", "synthesizers"), ("OTHER", "other")])
def test_aliases(name, expected):
    assert stems.canonical_stem(name) == expected


@pytest.mark.parametrize("name,expected", [("piano", "keyboards"), ("Voc_LV", "vocals"), ("Misc_FX", "other"),
                                           ("kazoo", None), ("clean_mix", None)])
def test_known_stem(name, expected):
    assert stems.known_stem(name) == expected


def test_unknown_stem_is_error_or_other():
    with pytest.raises(MSRError, match="unknown stem"):
        stems.canonical_stem("kazoo")
    assert stems.canonical_stem("kazoo", strict=False) == "other"


@pytest.mark.parametrize("group,expected", [("Voc_LV", "vocals"), ("Rhy_DK", "drums"), ("Rhy_PERC", "percussion"),
                                            ("Rhy", "other"), ("Misc", "other"), ("Orch_STR", "orchestral"),
                                            ("Synth", "synthesizers"), ("Kbs_PN", "keyboards")])
def test_rawstems_mapping(group, expected):
    assert stems.rawstems_group_to_stem(group) == expected


def test_roundtrip_wav_is_lossless(tmp_path):
    x = tone(seconds=0.3)
    audio.save_audio(tmp_path / "a.wav", x)
    y = audio.load_audio(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(x, y)


def test_flac_is_24_bit_accurate(tmp_path):
    x = tone(seconds=0.3)
    audio.save_audio(tmp_path / "a.flac", x)
    assert np.max(np.abs(audio.load_audio(tmp_path / "a.flac") - x)) < 2 ** -22


def test_mono_is_duplicated_and_multichannel_folded(tmp_path):
    mono = tone(seconds=0.2, channels=1)[0]
    sf.write(tmp_path / "m.wav", mono, 44100, subtype="FLOAT")
    y = audio.load_audio(tmp_path / "m.wav")
    assert y.shape == (2, mono.size)
    np.testing.assert_array_equal(y[0], y[1])
    four = np.stack([mono, 0 * mono, mono, 0 * mono])  # even channels → left, odd → right
    folded = audio.to_stereo(four)
    np.testing.assert_allclose(folded[0], mono)
    np.testing.assert_allclose(folded[1], 0)


def test_resampled_on_load(tmp_path):
    sf.write(tmp_path / "r.wav", tone(seconds=1.0, sample_rate=22050).T, 22050, subtype="FLOAT")
    y = audio.load_audio(tmp_path / "r.wav", 44100)
    assert y.shape == (2, 44100)
    # still a 440 Hz tone after resampling
    assert abs(audio.spectral_centroid_hz(y) - 440) < 5


def test_bad_files_give_one_line_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.flac").write_bytes(b"not audio at all" * 10)
    sf.write(tmp_path / "nan.wav", np.full((100, 2), np.nan, dtype=np.float32), 44100, subtype="FLOAT")
    sf.write(tmp_path / "zero.wav", np.zeros((0, 2), dtype=np.float32), 44100, subtype="FLOAT")
    for name, pattern in [("missing.wav", "no such file"), ("empty.wav", "empty"), ("junk.flac", "cannot read"),
                          ("nan.wav", "NaN"), ("zero.wav", "no samples")]:
        with pytest.raises(AudioError, match=pattern) as info:
            audio.load_audio(tmp_path / name)
        assert "\n" not in str(info.value)


def test_save_is_atomic_on_failure(tmp_path):
    target = tmp_path / "keep.wav"
    audio.save_audio(target, tone(seconds=0.1))
    before = target.read_bytes()
    with pytest.raises(AudioError):
        audio.save_audio(target, np.full((2, 10), np.nan))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


def test_atomic_output_dir_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with audio.atomic_output_dir(tmp_path / "out") as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with audio.atomic_output_dir(tmp_path / "out") as tmp:
        (tmp / "done.txt").write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (tmp_path / "out" / "done.txt").exists()


def test_outputs_get_normal_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        audio.save_audio(tmp_path / "p.flac", tone(seconds=0.1))
        with audio.atomic_output_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "p.flac").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_song_folder_reading(tmp_path):
    audio.save_audio(tmp_path / "Bass.wav", tone(55, seconds=0.5))
    audio.save_audio(tmp_path / "vocals.flac", tone(440, seconds=0.3))
    audio.save_audio(tmp_path / "clean_mix.flac", tone(440, seconds=0.3))
    (tmp_path / "song.json").write_text("{}")
    loaded = audio.load_song_stems(tmp_path)
    assert list(loaded) == ["vocals", "bass"]  # canonical order, the mix is no stem
    assert loaded["vocals"].shape == loaded["bass"].shape == (2, 22050)  # zero-padded to the longest
    assert np.all(loaded["vocals"][:, 13230:] == 0)


@pytest.mark.parametrize("name,kind", [("clean_mix", "clean_mix"), ("mastered_mix", "mastered_mix"),
                                       ("mixture", "mastered_mix"), ("Mix", "mastered_mix"),
                                       ("master", "mastered_mix"), ("mastered", "mastered_mix")])
def test_song_files_mix_names(tmp_path, name, kind):
    audio.save_audio(tmp_path / "drums.wav", tone(seconds=0.1))
    audio.save_audio(tmp_path / f"{name}.flac", tone(seconds=0.1))
    files = audio.song_files(tmp_path)
    assert getattr(files, kind) == tmp_path / f"{name}.flac"
    other = {"clean_mix": "mastered_mix", "mastered_mix": "clean_mix"}[kind]
    assert getattr(files, other) is None
    assert files.stems == {"drums": (tmp_path / "drums.wav",)} and files.unknown == ()


def test_song_files_both_mixes_and_ambiguous_mix(tmp_path):
    for name in ("vocals", "clean_mix", "mastered_mix"):
        audio.save_audio(tmp_path / f"{name}.flac", tone(seconds=0.1))
    files = audio.song_files(tmp_path)
    assert (files.clean_mix.name, files.mastered_mix.name) == ("clean_mix.flac", "mastered_mix.flac")
    audio.save_audio(tmp_path / "mixture.wav", tone(seconds=0.1))
    with pytest.raises(AudioError, match="two files for the mastered mix: mastered_mix.flac and mixture.wav"):
        audio.song_files(tmp_path)


def test_song_files_unknown_names(tmp_path):
    audio.save_audio(tmp_path / "vocals.flac", tone(seconds=0.1))
    audio.save_audio(tmp_path / "kazoo.wav", tone(seconds=0.1))
    with pytest.raises(AudioError, match="kazoo.wav: unknown stem name 'kazoo'"):
        audio.song_files(tmp_path)
    with pytest.raises(AudioError, match="unknown stem name"):
        audio.load_song_stems(tmp_path)
    kept = audio.song_files(tmp_path, unknown="keep")
    assert list(kept.stems) == ["vocals"] and kept.unknown == (tmp_path / "kazoo.wav",)
    folded = audio.song_files(tmp_path, unknown="other")
    assert folded.stems == {"vocals": (tmp_path / "vocals.flac",), "other": (tmp_path / "kazoo.wav",)}
    assert folded.unknown == (tmp_path / "kazoo.wav",)
    with pytest.raises(MSRError, match="unknown=.ignore."):
        audio.song_files(tmp_path, unknown="ignore")


def test_song_files_aliases_and_duplicates_are_summed(tmp_path):
    audio.save_audio(tmp_path / "guitar.wav", tone(220, seconds=0.2, amplitude=0.25))
    audio.save_audio(tmp_path / "Guitars.flac", tone(330, seconds=0.1, amplitude=0.25))
    audio.save_audio(tmp_path / "Voc_LV.wav", tone(440, seconds=0.2))
    audio.save_audio(tmp_path / ".hidden.wav", tone(seconds=0.1))
    files = audio.song_files(tmp_path)
    assert list(files.stems) == ["vocals", "guitars"]
    assert [p.name for p in files.stems["guitars"]] == ["Guitars.flac", "guitar.wav"]
    loaded = audio.load_song_stems(tmp_path)
    short = audio.fit_length(tone(330, seconds=0.1, amplitude=0.25), 8820)
    np.testing.assert_allclose(loaded["guitars"], tone(220, seconds=0.2, amplitude=0.25) + short, atol=1e-4)


def test_song_folder_errors(tmp_path):
    with pytest.raises(AudioError, match="no such folder"):
        audio.song_files(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(AudioError, match="is not a folder"):
        audio.song_files(tmp_path / "f.txt")
    assert audio.song_files(tmp_path).stems == {}  # probing an empty folder is no error
    with pytest.raises(AudioError, match="no stem audio"):
        audio.load_song_stems(tmp_path)


def test_levels():
    x = tone(1000, seconds=1.0, amplitude=0.5)
    assert abs(audio.peak_dbfs(x) - 20 * np.log10(0.5)) < 0.01
    assert abs(audio.crest_factor_db(x) - 3.01) < 0.05  # a sine's crest factor is √2
    assert abs(audio.spectral_centroid_hz(x) - 1000) < 2
    # BS.1770: a full-scale 997 Hz sine in both channels reads 0 LUFS, so half amplitude reads -6.02 LUFS
    assert abs(audio.loudness_lufs(tone(997, seconds=2, amplitude=0.5)) + 6.02) < 0.2


def test_presets(monkeypatch):
    assert set(presets.PRESETS) == {"quick", "laptop", "gpu", "paper", "bundled"}
    monkeypatch.delenv("MSR_PRESET", raising=False)
    assert presets.get_preset().name == "laptop"
    monkeypatch.setenv("MSR_PRESET", "quick")
    assert presets.get_preset().name == "quick"
    with pytest.raises(MSRError, match="unknown preset"):
        presets.get_preset("huge")


def test_largest_band_change_finds_a_boost():
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal((2, 44100))).astype(np.float32)
    spectrum = np.fft.rfft(noise, axis=1)
    freqs = np.fft.rfftfreq(noise.shape[1], 1 / 44100)
    spectrum[:, (freqs > 2800) & (freqs < 3600)] *= 10 ** (9 / 20)  # +9 dB inside the 3.15 kHz third-octave band
    boosted = np.fft.irfft(spectrum, n=noise.shape[1], axis=1).astype(np.float32)
    centre, change = audio.largest_band_change(noise, boosted)
    assert abs(centre - 3150) < 100 and abs(change - 9) < 0.5


def test_console_script_reports_bad_input_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    msr = Path(sys.executable).parent / "msr"
    assert msr.exists(), "the msr console script is not installed next to this Python"
    ok = subprocess.run([str(msr), "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("msr ")
    bad = subprocess.run([str(msr), "degrade", str(tmp_path / "missing"), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("msr: error:")
    assert "Traceback" not in bad.stderr and not (tmp_path / "out").exists()
