"""The mastering simulator, judged on the audio: levels, crest factor, band energies, alignment, determinism."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from msr_lib import degrade
from msr_lib.audio import (
    SAMPLE_RATE, SILENT_PEAK, band_energy_db, crest_factor_db, load_audio, loudness_lufs, peak_dbfs, rms_dbfs,
    true_peak_dbtp,
)
from msr_lib.cli import main
from msr_lib.errors import MSRError

SR = SAMPLE_RATE


def sine(freq, seconds=1.0, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x, x]).astype(np.float32)


def noise(seconds=1.0, amp=0.1, seed=0):
    return (amp * np.random.default_rng(seed).standard_normal((2, int(seconds * SR)))).astype(np.float32)


def plucks(seconds=2.0, every=0.25, freq=220.0, decay=8.0, amp=0.8, seed=0):
    """Decaying harmonic notes with sharp onsets: a high crest factor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros(n)
    for onset in np.arange(0, seconds, every):
        i = int(onset * SR)
        env = np.exp(-decay * t[: n - i])
        x[i:] += env * (np.sin(2 * np.pi * freq * t[: n - i]) + 0.3 * rng.standard_normal(n - i) * env)
    x *= amp / np.abs(x).max()
    return np.stack([x, np.roll(x, 3)]).astype(np.float32)


def tail_energy_db(audio, start_s):
    return float(10 * np.log10(np.mean(np.square(audio[:, int(start_s * SR):], dtype=np.float64)) + 1e-20))


def song_stems(seconds=2.0):
    return {"vocals": plucks(seconds, freq=440.0, seed=1), "bass": plucks(seconds, every=0.5, freq=55.0, seed=2),
            "drums": noise(seconds, 0.05) * plucks(seconds, every=0.125, decay=30.0, seed=3) * 8,
            "guitars": plucks(seconds, every=0.33, freq=330.0, seed=4)}


# ---------------------------------------------------------------- single effects

def swelling_tone(seconds=2.0):
    """A 220 Hz tone swelling between -26 and -1 dBFS twice a second (a transient's overshoot would dominate a
    crest factor, so the level moves smoothly)."""
    x = sine(220, seconds, amp=0.9)
    t = np.arange(x.shape[1]) / SR
    return (x * (0.05 + 0.95 * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) ** 2)).astype(np.float32)


def test_compressor_lowers_crest_factor():
    x = swelling_tone()
    y = degrade.compress(x, SR, threshold_db=-30.0, ratio=8.0, attack_ms=1.0, release_ms=100.0)
    assert y.shape == x.shape and y.dtype == np.float32
    settled = slice(SR // 10, None)  # the detector starts from rest: skip the first attack
    assert crest_factor_db(y[:, settled]) < crest_factor_db(x[:, settled]) - 3.0
    made_up = degrade.compress(x, SR, threshold_db=-30.0, ratio=8.0, attack_ms=1.0, release_ms=100.0, makeup_db=6.0)
    np.testing.assert_allclose(made_up, y * 10 ** (6 / 20), rtol=1e-5, atol=1e-7)


def test_limiter_holds_true_peak_ceiling_and_leaves_quiet_audio_alone():
    loud = plucks(2.0, amp=1.0) * 4.0  # +12 dBFS
    y = degrade.limit_true_peak(loud, SR, ceiling_dbtp=-1.0)
    assert y.shape == loud.shape
    assert -1.15 <= true_peak_dbtp(y, SR) <= -1.0 + 1e-3
    # a dense signal whose inter-sample peaks exceed the sample peaks
    fs4 = sine(SR / 4 - 30, amp=1.0) * 1.2
    assert true_peak_dbtp(degrade.limit_true_peak(fs4, SR, ceiling_dbtp=-1.0), SR) <= -1.0 + 1e-3
    quiet = sine(1000, amp=0.1)
    np.testing.assert_array_equal(degrade.limit_true_peak(quiet, SR), quiet)


def test_limiter_changes_only_the_loud_burst_and_its_release():
    x = sine(440, 2.0, amp=0.5)
    x[:, SR: SR + SR // 100] *= 3.0  # a 10 ms burst at 1 s, +9.5 dB over the ceiling
    for input_gain_db in (0.0, 3.0):
        y = degrade.limit_true_peak(x, SR, release_ms=50.0, input_gain_db=input_gain_db)
        assert true_peak_dbtp(y, SR) <= -1.0 + 1e-3
        untouched = np.r_[0:int(0.9 * SR), int(1.3 * SR):2 * SR]  # well before the burst, well after its release
        gain = y[0, 1000] / x[0, 1000]  # one static gain there: the input gain (and the ceiling trim, if any)
        assert abs(20 * np.log10(gain) - input_gain_db) < 0.05
        np.testing.assert_allclose(y[:, untouched], gain * x[:, untouched], rtol=2e-7, atol=0)
        assert np.abs(y[:, SR: SR + SR // 100]).max() < 0.9 * gain * np.abs(x[:, SR: SR + SR // 100]).max()


def test_limiter_input_gain_and_short_chunk():
    x = noise(0.05, 0.3)
    y = degrade.limit_true_peak(x, SR, input_gain_db=20.0)
    assert y.shape == x.shape and true_peak_dbtp(y, SR) <= -1.0 + 1e-3


def test_fast_true_peak_equals_full_oversampling():
    fs4 = sine(SR / 4 - 30, amp=1.0)  # inter-sample peaks up to 3 dB over the sample peaks
    for audio in (plucks(2.0), fs4, noise(1.5, 0.2), noise(0.01, 0.2), plucks(1.0) * np.float32(1e-3)):
        # never under the sample peak (full soxr oversampling of a very short signal can be)
        expected = max(true_peak_dbtp(audio, SR), peak_dbfs(audio))
        assert abs(degrade.true_peak_db(audio, SR) - expected) < 1e-4
    assert degrade.true_peak_db(np.zeros((2, 100), np.float32), SR) == float("-inf")


@pytest.mark.parametrize("seconds", [3.0, 0.2])
def test_loudness_normalisation_hits_target(seconds):
    y = degrade.normalize_loudness(noise(seconds, 0.01), SR, -14.0)
    assert abs(degrade.measure_loudness_lufs(y, SR) - (-14.0)) < 0.1
    if seconds >= 0.4:
        assert abs(loudness_lufs(y, SR) - (-14.0)) < 0.1


def test_fast_loudness_equals_pyloudnorm():
    for audio in (noise(2.5, 0.1), plucks(1.3), noise(1.0, 0.1) * np.linspace(0, 1, SR, dtype=np.float32) ** 4):
        assert abs(degrade.measure_loudness_lufs(audio, SR) - loudness_lufs(audio, SR)) < 1e-3


def test_loudness_normalisation_of_silence_and_near_silence():
    silent = np.zeros((2, SR), np.float32)
    y = degrade.normalize_loudness(silent, SR, -14.0)
    assert np.array_equal(y, silent)
    faint = noise(1.0, 5e-4)  # about -63 LUFS: would need 49 dB, gets the capped 40

    gain = degrade.loudness_gain_db(faint, SR, -14.0)
    assert gain == degrade.MAX_LOUDNESS_GAIN_DB
    assert np.all(np.isfinite(degrade.normalize_loudness(faint, SR, -14.0)))


def test_eq_moves_the_asked_band_by_about_the_asked_amount():
    x = noise(2.0, 0.1)
    y = degrade.equalize(x, SR, bands=[{"kind": "peak", "freq_hz": 1000.0, "gain_db": 9.0, "q": 1.0},
                                       {"kind": "peak", "freq_hz": 8000.0, "gain_db": -9.0, "q": 1.0}])
    moved = lambda lo, hi: band_energy_db(y, SR, lo, hi) - band_energy_db(x, SR, lo, hi)  # noqa: E731
    assert 7.5 < moved(900, 1100) < 9.5
    assert -9.5 < moved(7200, 8800) < -7.5
    assert abs(moved(100, 200)) < 0.5 and abs(moved(3000, 3500)) < 1.0
    shelves = degrade.equalize(x, SR, bands=[{"kind": "low_shelf", "freq_hz": 200.0, "gain_db": 6.0, "q": 0.707},
                                             {"kind": "high_shelf", "freq_hz": 6000.0, "gain_db": -6.0, "q": 0.707}])
    assert 5.0 < band_energy_db(shelves, SR, 20, 80) - band_energy_db(x, SR, 20, 80) < 6.5
    assert -6.5 < band_energy_db(shelves, SR, 14000, 20000) - band_energy_db(x, SR, 14000, 20000) < -5.0


def test_high_pass_removes_lows_without_shifting_time():
    x = sine(40, 2.0) + sine(2000, 2.0)  # whole periods in 2 s: no spectral leakage between the two
    y = degrade.high_pass(x, SR, cutoff_hz=200.0)
    assert band_energy_db(y, SR, 30, 50) < band_energy_db(x, SR, 30, 50) - 40
    assert abs(band_energy_db(y, SR, 1900, 2100) - band_energy_db(x, SR, 1900, 2100)) < 0.1
    mid = slice(SR // 2, SR)  # zero phase: the 2 kHz tone is not delayed
    np.testing.assert_allclose(y[:, mid], sine(2000, 2.0)[:, mid], atol=0.01)


def _best_lag(a, b, max_lag=200):
    lags = range(-max_lag, max_lag + 1)
    scores = [np.dot(a[max_lag:-max_lag], np.roll(b, -lag)[max_lag:-max_lag]) for lag in lags]
    return list(lags)[int(np.argmax(scores))]


def test_mp3_removes_high_band_and_stays_aligned():
    x = noise(2.0, 0.1)
    y = degrade.mp3_codec(x, SR, vbr_quality=6.0)
    assert y.shape == x.shape
    assert band_energy_db(y, SR, 17000, 20000) < band_energy_db(x, SR, 17000, 20000) - 20
    low_x = degrade.equalize(x, SR, bands=[{"kind": "low_pass", "freq_hz": 4000.0, "q": 0.707}] * 4)
    low_y = degrade.mp3_codec(low_x, SR, vbr_quality=2.0)
    assert _best_lag(low_x[0], low_y[0]) == 0
    assert np.corrcoef(low_x[0], low_y[0])[0, 1] > 0.95


def test_band_limit_removes_energy_above_cutoff_and_keeps_the_rest():
    x = noise(1.0, 0.1)
    y = degrade.band_limit(x, SR, cutoff_hz=4000.0)
    assert y.shape == x.shape
    assert band_energy_db(y, SR, 5000, 20000) < band_energy_db(x, SR, 5000, 20000) - 40
    assert abs(band_energy_db(y, SR, 500, 3000) - band_energy_db(x, SR, 500, 3000)) < 0.3
    assert _best_lag(x[0], y[0]) == 0
    np.testing.assert_array_equal(degrade.band_limit(x, SR, rate=8000), y)  # rate = 2 × cutoff
    with pytest.raises(MSRError):
        degrade.band_limit(x, SR)


def test_reverb_lengthens_the_decay_tail():
    x = np.zeros((2, 2 * SR), np.float32)
    x[:, : SR // 10] = plucks(0.1, every=1.0, decay=40.0)
    y = degrade.add_reverb(x, SR, room_size=0.9, damping=0.3, wet=0.4)
    assert y.shape == x.shape
    assert tail_energy_db(y, 0.5) > tail_energy_db(x, 0.5) + 60
    dry = degrade.add_reverb(x, SR, room_size=0.9, damping=0.3, wet=0.0)
    np.testing.assert_allclose(dry, x, atol=1e-6)


def test_reverb_equals_pedalboards_freeverb():
    import pedalboard

    x = noise(1.0, 0.3)
    for room_size, damping, wet, width in [(0.1, 0.9, 0.1, 0.1), (1.0, 0.1, 0.5, 1.0)]:
        ours = degrade.add_reverb(x, SR, room_size=room_size, damping=damping, wet=wet, width=width)
        theirs = pedalboard.Reverb(room_size=room_size, damping=damping, wet_level=wet, dry_level=0.5,
                                   width=width)(x, SR)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    mono = degrade.add_reverb(x[:1], SR, room_size=0.5, damping=0.5, wet=0.3)
    assert mono.shape == (1, SR) and tail_energy_db(mono, 0.0) > tail_energy_db(x[:1], 0.0)


def test_saturation_adds_harmonics():
    x = sine(1000, 1.0, amp=0.9)
    y = degrade.saturate(x, drive_db=12.0)

    def thd(a):
        spec = np.abs(np.fft.rfft(a[0] * np.hanning(a.shape[1])))
        freqs = np.fft.rfftfreq(a.shape[1], 1 / SR)
        level = lambda f: spec[np.abs(freqs - f) < 20].max()  # noqa: E731
        return np.sqrt(sum(level(k * 1000) ** 2 for k in range(2, 10))) / level(1000)

    assert thd(x) < 1e-3 and thd(y) > 0.1
    quiet = sine(1000, 1.0, amp=0.001)
    np.testing.assert_allclose(degrade.saturate(quiet, drive_db=12.0), quiet, atol=1e-6)  # unity for small signals


# ---------------------------------------------------------------- chains, records, determinism

def test_chains_are_seeded_json_records_that_replay_exactly():
    stems = song_stems()
    result = degrade.degrade_mix(stems, SR, seed=7)
    again = degrade.degrade_mix(stems, SR, seed=7)
    other = degrade.degrade_mix(stems, SR, seed=8)
    assert np.array_equal(result.mastered_mix, again.mastered_mix)
    assert not np.array_equal(result.mastered_mix, other.mastered_mix)
    assert result.mastered_mix.shape == (2, 2 * SR) and result.mastered_mix.dtype == np.float32

    record = json.loads(json.dumps(result.record, allow_nan=False))
    assert record == result.record and record["seed"] == 7
    assert list(record["stems"]) == ["vocals", "bass", "drums", "guitars"]
    replayed = {s: degrade.apply_stem_chain(stems[s], SR, record["stems"][s]) for s in stems}
    for s in stems:
        assert np.array_equal(replayed[s], result.processed_stems[s])
    mix = np.sum(list(replayed.values()), axis=0, dtype=np.float32)
    mastered = degrade.apply_master_chain(mix, SR, record["master"])
    assert np.array_equal(mastered.audio, result.mastered_mix)
    assert mastered.applied == record["master"]["applied"]
    assert mastered.measured["premaster_mix_lufs"] == record["levels"]["premaster_mix"]["lufs"]


def test_degraded_mixture_meets_loudness_and_true_peak():
    for seed, codec in [(0, False), (1, True), (2, True)]:
        result = degrade.degrade_mix(song_stems(3.0), SR, seed=seed, codec=codec)
        assert abs(loudness_lufs(result.mastered_mix, SR) - (-14.0)) < 0.5
        assert true_peak_dbtp(result.mastered_mix, SR) <= -1.0 + 1e-3
        levels = result.record["levels"]["mastered_mix"]
        assert levels["true_peak_dbtp"] <= -1.0 + 1e-3
        assert levels["lufs"] == pytest.approx(loudness_lufs(result.mastered_mix, SR), abs=0.01)
        assert (result.record["master"]["mp3"] is not None) == codec


def test_every_stem_effect_can_be_drawn_and_applied():
    rng = np.random.default_rng(0)
    seen = set()
    x = plucks(0.5)
    for _ in range(40):
        chain = degrade.sample_stem_chain(rng, "vocals")
        seen |= {step["effect"] for step in chain["effects"]}
        y = degrade.apply_stem_chain(x, SR, chain)
        assert y.shape == x.shape and np.all(np.isfinite(y))
    assert seen == {"equalize", "band_limit", "compress", "saturate", "add_reverb"}
    with pytest.raises(MSRError):
        degrade.sample_stem_chain(rng, "kazoo")


def test_short_and_silent_chunks_stay_finite():
    stems = {"vocals": np.zeros((2, 4410), np.float32), "bass": noise(0.1, 1e-3)}
    result = degrade.degrade_mix(stems, SR, seed=0)
    assert result.mastered_mix.shape == (2, 4410) and np.all(np.isfinite(result.mastered_mix))
    assert np.array_equal(result.processed_stems["vocals"], stems["vocals"])
    silent = degrade.degrade_mix({"drums": np.zeros((2, SR), np.float32)}, SR, seed=0)
    assert np.all(silent.mastered_mix == 0)
    assert json.dumps(silent.record, allow_nan=False)


def test_a_stem_at_digital_silence_passes_its_chain_untouched():
    chain = {"stem": "vocals", "effects": [{"effect": "saturate", "params": {"drive_db": 5.0}}], "fader_db": -6.0}
    at_silence = sine(440, 0.1, amp=SILENT_PEAK)
    assert np.array_equal(degrade.apply_stem_chain(at_silence, SR, chain), at_silence)
    audible = sine(440, 0.1, amp=10 * SILENT_PEAK)
    processed = degrade.apply_stem_chain(audible, SR, chain)  # saturated, back at its RMS, then the fader
    assert crest_factor_db(processed) < crest_factor_db(audible) - 0.5
    assert abs(rms_dbfs(processed) - (rms_dbfs(audible) - 6.0)) < 0.01


def test_degrade_mix_rejects_bad_input():
    with pytest.raises(MSRError):
        degrade.degrade_mix({}, SR, seed=0)
    with pytest.raises(MSRError):
        degrade.degrade_mix({"vocals": noise(1.0), "bass": noise(0.5)}, SR, seed=0)
    with pytest.raises(MSRError):
        degrade.degrade_mix({"vocals": np.full((2, 100), np.nan, np.float32)}, SR, seed=0)
    with pytest.raises(MSRError):
        degrade.degrade_mix({"vocals": noise(0.1)}, SR, seed=0, rng=np.random.default_rng(0))


# ---------------------------------------------------------------- folders and the CLI

def write_song(folder, stems, subtype="PCM_24"):
    folder.mkdir(parents=True, exist_ok=True)
    for name, audio in stems.items():
        sf.write(folder / f"{name}.flac", audio.T, SR, subtype=subtype)
    return folder


def test_cli_degrade_writes_mastered_mix_and_record(tmp_path, capsys):
    song = write_song(tmp_path / "song", song_stems(1.0))
    out = tmp_path / "out"
    assert main(["degrade", str(song), "--out", str(out), "--seed", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["degradation.json", "mastered_mix.flac"]
    mastered_mix = load_audio(out / "mastered_mix.flac")
    assert mastered_mix.shape == (2, SR) and sf.info(out / "mastered_mix.flac").subtype == "PCM_24"
    record = json.loads((out / "degradation.json").read_text())
    assert record["seed"] == 3 and record["source"] == str(song.resolve())
    assert record["mastered_mix_file"] == "mastered_mix.flac"
    assert set(record["stems"]) == {"vocals", "bass", "drums", "guitars"}
    assert "levels" in record["stems"]["bass"] and record["master"]["mp3"] is not None
    assert abs(loudness_lufs(mastered_mix, SR) - (-14.0)) < 0.5
    assert str(out) in capsys.readouterr().out
    assert main(["degrade", str(song), "--out", str(tmp_path / "dry"), "--no-codec"]) == 0
    assert json.loads((tmp_path / "dry" / "degradation.json").read_text())["master"]["mp3"] is None


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "unknown_stem"])
def test_cli_degrade_bad_input_is_one_error_line_and_no_output(tmp_path, capsys, case):
    song = tmp_path / "song"
    if case == "empty":
        song.mkdir()
    elif case == "corrupt":
        write_song(song, {"bass": noise(0.2)})
        (song / "vocals.flac").write_bytes(b"not audio at all")
    elif case == "unknown_stem":
        write_song(song, {"bass": noise(0.2), "kazoo": noise(0.2)})
    out = tmp_path / "out"
    assert main(["degrade", str(song), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("msr: error:")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_summarize_record_names_every_stem_and_the_master():
    from msr_lib.degrade import degrade_mix, summarize_record

    rng = np.random.default_rng(5)
    stems = {name: (0.1 * rng.standard_normal((2, 22050))).astype(np.float32) for name in ("vocals", "bass", "drums")}
    record = degrade_mix(stems, SR, seed=3).record
    text = summarize_record(record)
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["vocals", "bass", "drums"]
    assert lines[3].startswith("master bus") and "-14 LUFS" in lines[3] and "MP3" in lines[3]
    fader = record["stems"]["bass"]["fader_db"]
    assert f"{fader:+5.1f} dB" in lines[1]
    assert "finished song" in lines[-1]


@pytest.mark.parametrize("sections,channels", [(1, 2), (3, 1), (16, 2), (16, 1)])
def test_numba_biquads_match_scipy(sections, channels):
    """The numba cascade (plain and wavefront loops) and zero-phase high-pass compute what scipy does."""
    import scipy.signal

    from msr_lib.degrade.effects import biquad_sos, high_pass, sos_filter

    rng = np.random.default_rng(sections)
    audio = (0.3 * rng.standard_normal((channels, 20000))).astype(np.float32)
    freqs = np.geomspace(40, 16000, sections)
    sos = np.stack([biquad_sos("peak", f, SR, gain_db=float(g), q=2.0)
                    for f, g in zip(freqs, rng.uniform(-6, 6, sections))])
    expected = scipy.signal.sosfilt(sos, audio.astype(np.float64), axis=-1)
    np.testing.assert_allclose(sos_filter(sos, audio), expected, atol=2e-6)
    hp = scipy.signal.butter(2, 25.0, btype="highpass", fs=SR, output="sos")
    np.testing.assert_allclose(high_pass(audio, SR, cutoff_hz=25.0),
                               scipy.signal.sosfiltfilt(hp, audio.astype(np.float64), axis=-1), atol=2e-6)
