"""The singing voices: every kind and register sings the notes in tune, audibly, in stereo, seeded; vowels move,
consonants hiss at onsets, breathiness adds noise; doubles and harmonies; the choice of voices; bad settings."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from msr_lib.audio import SAMPLE_RATE, band_energy_db, rms_dbfs
from msr_lib.data.synth import voice as V
from msr_lib.data.synth.arrangement import Note
from msr_lib.data.synth.theory import midi_to_hz
from msr_lib.errors import MSRError


def plain(kind: str, register: str = "tenor", **changes) -> dict:
    """A voice without layers, vowel shades or random settings."""
    voice = {"kind": kind, "register": register, "vowels": {v: v for v in V.VOWEL_SHADES}, "vibrato_hz": 5.5,
             "vibrato_cents": 40.0, "vibrato_delay": 0.2, "breathiness": 0.05,
             "double": 0.0, "spread": 0.5, "harmony": "", "harmony_level": 0.0, "harmony_phrases": 0.0}
    voice.update({"open_quotient": 0.6, "closing": 0.3} if kind == "glottal" else {"brightness": 0.4})
    if kind == "additive":
        voice["shimmer_db"] = 1.0
    voice.update(changes)
    return voice


def seconds(a: float, b: float) -> slice:
    return slice(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE))


def f0_track(x: np.ndarray, frame: int = 2048, hop: int = 512) -> np.ndarray:
    """Frame-wise f0 (Hz) by normalised autocorrelation: the shortest lag (60–1000 Hz) whose peak is within 15 % of
    the best one (no octave errors), refined by a parabola."""
    f0 = []
    for start in range(0, x.size - frame, hop):
        seg = x[start:start + frame] * np.hanning(frame)
        ac = np.fft.irfft(np.abs(np.fft.rfft(seg, 2 * frame)) ** 2)[:frame]
        ac /= np.fft.irfft(np.abs(np.fft.rfft(np.hanning(frame), 2 * frame)) ** 2)[:frame] + 1e-12
        lo, hi = SAMPLE_RATE // 1000, SAMPLE_RATE // 60
        peaks = lo + signal.argrelmax(ac[lo:hi])[0]
        lag = int(peaks[np.argmax(ac[peaks] > 0.85 * ac[peaks].max())])     # the shortest near-best period
        a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
        f0.append(SAMPLE_RATE / (lag + 0.5 * (a - c) / (a - 2 * b + c)))
    return np.array(f0)


TWO_PHRASES = [Note(0.2, 1.2, 57, 100, "la"), Note(1.2, 2.0, 59, 90, "mo"), Note(3.0, 3.8, 60, 100, "ti")]


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_each_kind_sings_stereo_at_the_right_length_audible_in_notes_and_silent_between_phrases(kind):
    n = int(4.1 * SAMPLE_RATE)
    x = V.render_vocals(TWO_PHRASES, n, np.random.default_rng(0), plain(kind))
    assert x.shape == (2, n) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.array_equal(x[0], x[1])                                   # one take, centred
    for a, b in ((0.3, 1.1), (1.3, 1.9), (3.1, 3.7)):
        assert -40 < rms_dbfs(x[0, seconds(a, b)]) < -6                   # audible and not clipping
    assert rms_dbfs(x[0, seconds(2.15, 2.7)]) < -90                       # the rest between the phrases
    assert rms_dbfs(x[0, seconds(3.95, 4.1)]) < -90                       # after the last note
    assert rms_dbfs(x[0, seconds(2.78, 2.95)]) > -75                      # the breath before the second phrase


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
@pytest.mark.parametrize("register", list(V.REGISTERS))
def test_every_kind_and_register_sings_a_sustained_note_in_tune(kind, register):
    low, high = V.REGISTERS[register]["range"]
    pitch = (low + high) // 2
    x = V.render_vocals([Note(0.05, 2.45, pitch, 100, "a")], int(2.5 * SAMPLE_RATE), np.random.default_rng(3),
                        plain(kind, register))[0]
    steady = f0_track(x[seconds(0.6, 2.3)])
    assert abs(np.median(steady) / midi_to_hz(pitch) - 1) < 0.01
    cents = 1200 * np.log2(steady / np.median(steady))
    assert 10 < np.std(cents) < 60                                      # the vibrato is there


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_vibrato_has_its_rate_and_starts_after_its_delay(kind):
    voice = plain(kind, vibrato_hz=5.0, vibrato_cents=60.0, vibrato_delay=0.5)
    x = V.render_vocals([Note(0.0, 2.5, 55, 100, "o")], int(2.5 * SAMPLE_RATE), np.random.default_rng(1), voice)[0]
    cents = 1200 * np.log2(f0_track(x, hop=256) / midi_to_hz(55))
    rate = SAMPLE_RATE / 256
    early, late = cents[int(0.1 * rate):int(0.45 * rate)], cents[int(1.0 * rate):int(2.3 * rate)]
    assert np.std(early) < 0.5 * np.std(late)
    spectrum = np.abs(np.fft.rfft(late - late.mean(), 4096))
    assert 4.5 < np.fft.rfftfreq(4096, 1 / rate)[np.argmax(spectrum)] < 5.5


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_vowels_shape_the_spectrum_and_a_diphthong_moves_between_two(kind):
    def ratio(voice, a, b, vowel="a") -> float:                         # F2 region of /i/ against F1 region of /a/
        x = V.render_vocals([Note(0.0, 1.6, 50, 100, vowel)], int(1.6 * SAMPLE_RATE), np.random.default_rng(2),
                            voice)[0]
        part = x[seconds(a, b)]
        return band_energy_db(part, SAMPLE_RATE, 1900, 2500) - band_energy_db(part, SAMPLE_RATE, 550, 900)

    assert ratio(plain(kind, vibrato_cents=0.0), 0.2, 0.6, "i") > ratio(plain(kind, vibrato_cents=0.0), 0.2, 0.6) + 10
    gliding = plain(kind, vibrato_cents=0.0, vowels={**plain(kind)["vowels"], "a": "ai"})
    assert ratio(gliding, 1.4, 1.55) > ratio(gliding, 0.2, 0.6) + 10    # sung "a" glides to "i"


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_consonants_make_noise_at_the_onset(kind):
    def hiss_db(syllable: str) -> float:
        x = V.render_vocals([Note(0.3, 1.0, 57, 100, syllable)], SAMPLE_RATE, np.random.default_rng(4), plain(kind))
        sos = signal.butter(4, [5000, 10000], btype="band", fs=SAMPLE_RATE, output="sos")
        return rms_dbfs(signal.sosfilt(sos, x[0])[seconds(0.22, 0.35)])

    assert hiss_db("sa") > hiss_db("la") + 10


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_breathiness_fills_the_spectrum_between_the_harmonics(kind):
    def between_harmonics_db(breathiness: float) -> float:
        x = V.render_vocals([Note(0.0, 1.5, 57, 100, "a")], int(1.5 * SAMPLE_RATE), np.random.default_rng(5),
                            plain(kind, vibrato_cents=0.0, breathiness=breathiness))[0, seconds(0.3, 1.3)]
        spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
        f = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
        position = (f / midi_to_hz(57)) % 1.0
        voice_band = (f > 300) & (f < 5000)
        between = voice_band & (np.abs(position - 0.5) < 0.2)
        return float(10 * np.log10(spec[between].sum() / spec[voice_band].sum()))

    assert between_harmonics_db(0.4) > between_harmonics_db(0.02) + 6


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_a_soprano_has_higher_formants_than_a_bass_on_the_same_low_note(kind):
    def centroid(register: str) -> float:
        x = V.render_vocals([Note(0.0, 1.0, 45, 100, "a")], SAMPLE_RATE, np.random.default_rng(6),
                            plain(kind, register, vibrato_cents=0.0))[0, seconds(0.2, 0.9)]
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
        keep = (f > 400) & (f < 1800)                                   # F1 and F2 of /a/ (110 Hz apart)
        return float((f[keep] * spec[keep]).sum() / spec[keep].sum())

    assert centroid("soprano") > 1.1 * centroid("bass")


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_same_rng_seed_gives_the_same_samples_and_another_seed_differs(kind):
    voice = plain(kind, double=0.8, harmony="third", harmony_level=0.5, harmony_phrases=1.0)
    one, again, other = (V.render_vocals(TWO_PHRASES, 4 * SAMPLE_RATE, np.random.default_rng(s), voice)
                         for s in (7, 7, 8))
    assert np.array_equal(one, again)
    assert not np.allclose(one, other, atol=1e-3)


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_a_doubled_voice_differs_between_the_channels(kind):
    x = V.render_vocals(TWO_PHRASES, 4 * SAMPLE_RATE, np.random.default_rng(9), plain(kind, double=0.9, spread=0.7))
    left, right = x[0, seconds(0.3, 1.9)], x[1, seconds(0.3, 1.9)]
    assert abs(rms_dbfs(left) - rms_dbfs(right)) < 3                        # two takes of about the same level …
    assert np.corrcoef(left, right)[0, 1] < 0.9                         # … that are not the same take
    assert rms_dbfs(left - right) > rms_dbfs(left) - 6


C_MAJOR_LINE = [Note(0.1 + 0.3 * i, 0.4 + 0.3 * i, p, 90, "la") for i, p in enumerate((60, 62, 64, 65, 67, 69, 71))]


def test_harmony_lines_are_diatonic_thirds_or_sixths_in_the_melodys_scale():
    assert V.melody_scale(C_MAJOR_LINE) == [0, 2, 4, 5, 7, 9, 11]
    g_major = [Note(i, i + 1, p, 90, "la") for i, p in enumerate((67, 69, 71, 72, 74, 76, 78, 79))]
    assert sorted(V.melody_scale(g_major)) == [0, 2, 4, 6, 7, 9, 11]
    scale = V.melody_scale(C_MAJOR_LINE)
    thirds = [n.pitch for n in V.harmony_notes(C_MAJOR_LINE, "third", scale=scale)]
    assert thirds == [64, 65, 67, 69, 71, 72, 74]
    sixths = [n.pitch for n in V.harmony_notes(C_MAJOR_LINE, "sixth", scale=scale)]
    assert sixths == [69, 71, 72, 74, 76, 77, 79]
    chromatic = V.harmony_notes([Note(0, 1, 66, 90, "la")], "third", scale=scale)      # F#: G is one step up
    assert chromatic[0].pitch == 69
    lowered = V.harmony_notes(C_MAJOR_LINE, "third", scale=scale, highest=68)            # above 68: an octave down
    assert [n.pitch for n in lowered] == [64, 65, 67, 57, 59, 60, 62]
    assert [(n.start, n.end, n.syllable) for n in V.harmony_notes(C_MAJOR_LINE, "third", scale=scale)] == \
        [(n.start, n.end, n.syllable) for n in C_MAJOR_LINE]


@pytest.mark.parametrize("kind", V.VOICE_KINDS)
def test_a_harmony_voice_sings_the_harmony_pitch(kind):
    notes = C_MAJOR_LINE + [Note(2.3, 4.3, 64, 100, "a")]               # … then a long E4: a third above is G4
    n = int(4.4 * SAMPLE_RATE)

    def g4_against_e4_db(voice) -> float:
        x = V.render_vocals(notes, n, np.random.default_rng(10), voice).mean(axis=0)[seconds(2.8, 4.1)]
        spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
        f = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)

        def near(hz):
            return spec[np.abs(f - hz) < 0.01 * hz].sum()
        return float(10 * np.log10(near(midi_to_hz(67)) / near(midi_to_hz(64))))

    alone = plain(kind, vibrato_cents=0.0)
    together = {**alone, "harmony": "third", "harmony_level": 0.7, "harmony_phrases": 1.0}
    assert g4_against_e4_db(together) > g4_against_e4_db(alone) + 15


def test_choose_voice_covers_every_kind_and_register_and_is_json_and_seeded():
    voices = [V.choose_voice(np.random.default_rng(seed), high=bool(seed % 2)) for seed in range(40)]
    assert {v["kind"] for v in voices} == set(V.VOICE_KINDS)
    assert {v["register"] for v in voices[1::2]} == set(V.HIGH_REGISTERS)
    assert {v["register"] for v in voices[0::2]} == set(V.LOW_REGISTERS)
    assert any(v["double"] for v in voices) and any(v["harmony"] for v in voices)
    assert any(not v["double"] and not v["harmony"] for v in voices)
    assert any(any(w != s for w, s in v["vowels"].items()) for v in voices)
    for voice in voices:
        V.check_voice(voice)
        assert json.loads(json.dumps(voice)) == voice
    assert V.choose_voice(np.random.default_rng(3), high=True) == V.choose_voice(np.random.default_rng(3), high=True)


def test_describe_voice_is_one_line_naming_the_voice():
    voice = {**plain("formant", "tenor", vibrato_hz=5.64, breathiness=0.2, double=0.8, harmony="third"),
             "vowels": {"a": "ai", "e": "e", "i": "i", "o": "ou", "u": "u"}}
    assert V.describe_voice(voice) == ("formant tenor, vowels a→ai o→ou, vibrato 5.6 Hz ±40 ¢, breathy 0.20, "
                                       "doubled + harmony in thirds")
    assert V.describe_voice(plain("additive", "bass")) == ("additive bass, plain vowels, vibrato 5.5 Hz ±40 ¢, "
                                                           "breathy 0.05")


@pytest.mark.parametrize("change, message", [
    ({"kind": "robot"}, "unknown voice kind 'robot'"),
    ({"register": "countertenor"}, "unknown voice register 'countertenor'"),
    ({"vibrato_hz": 40.0}, "vibrato_hz=40.0 is outside [0, 12]"),
    ({"breathiness": "lots"}, "breathiness='lots' is outside [0, 1]"),
    ({"harmony": "fifth"}, "unknown harmony 'fifth'"),
    ({"vowels": {"a": "x"}}, "cannot sing 'a' as 'x'"),
    ({"vowels": "aeiou"}, "voice vowels must map written to sung vowels"),
    ({"formant_scale": 1.1}, "missing or unknown settings formant_scale"),
    ({"shimmer_db": 1.0}, "missing or unknown settings shimmer_db"),     # not a setting of the formant voice
])
def test_bad_voice_settings_are_one_line_errors(change, message):
    with pytest.raises(MSRError, match=message.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        V.render_vocals(TWO_PHRASES, SAMPLE_RATE, np.random.default_rng(0), {**plain("formant"), **change})
    voice = plain("formant")
    del voice["vibrato_hz"]
    with pytest.raises(MSRError, match="missing or unknown settings vibrato_hz"):
        V.render_vocals(TWO_PHRASES, SAMPLE_RATE, np.random.default_rng(0), voice)


def test_the_numba_kernels_match_their_plain_definitions():
    cascade, bank = V._kernels()
    rng = np.random.default_rng(11)
    hop, frames = 64, 20
    source = rng.standard_normal(hop * frames - 10)
    sos = V._resonator_sos(np.array([700.0, 1200.0]), np.array([80.0, 90.0]))
    out = cascade(source, np.ascontiguousarray(np.broadcast_to(sos, (frames, 2, 6))), np.ones(frames, bool), hop,
                  np.zeros_like(source))
    np.testing.assert_allclose(out, signal.sosfilt(sos, source), atol=1e-9)

    cycles = np.cumsum(np.full(hop * frames - 10, 220.0 / SAMPLE_RATE))
    amps = rng.random((frames + 1, 7))
    amps[5:8] = 0.0
    out = bank(cycles, amps, hop, np.zeros_like(cycles))
    t = np.arange(cycles.size)
    frame, w = t // hop, (t % hop) / hop
    gains = amps[frame] * (1 - w[:, None]) + amps[frame + 1] * w[:, None]
    expected = (gains * np.sin(2 * np.pi * np.outer(cycles, np.arange(1, 8)))).sum(axis=1)
    np.testing.assert_allclose(out, expected, atol=1e-9)


def test_plot_voices_script_draws_the_spectrograms_and_writes_the_audio(tmp_path, capsys, monkeypatch):
    import importlib.util
    from pathlib import Path

    from msr_lib.audio import load_audio

    path = Path(__file__).resolve().parent.parent / "scripts" / "plot_voices.py"
    spec = importlib.util.spec_from_file_location("plot_voices", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "MELODY", script.MELODY[:3])           # three notes: 2 s per panel
    for kind in V.VOICE_KINDS:
        V.check_voice(script.plain_voice(kind, "bass", layered=True))
    assert script.main(["--out", str(tmp_path / "v.png"), "--wav-dir", str(tmp_path / "wav"),
                        "--registers", "tenor"]) == 0
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    files = sorted(p.name for p in (tmp_path / "wav").iterdir())
    assert files == sorted(f"{kind}_{row}.flac" for kind in V.VOICE_KINDS for row in ("tenor", "tenor_doubled_harmony"))
    layered = load_audio(tmp_path / "wav" / "formant_tenor_doubled_harmony.flac")
    assert layered.shape[1] == int(2.55 * SAMPLE_RATE) and not np.allclose(layered[0], layered[1], atol=1e-3)
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path / "w.png"), "--registers", "falsetto"])
    assert "unknown register 'falsetto'" in capsys.readouterr().err


def test_rosenberg_pulses_are_a_flow_derivative_closed_after_the_open_quotient():
    cycles = np.cumsum(np.full(4 * 441, 100.0 / SAMPLE_RATE))             # 4 cycles of 100 Hz
    phase = cycles % 1.0
    pulses = V._rosenberg_pulses(phase, np.diff(cycles, prepend=0.0), 0.6, 0.3)
    assert abs(pulses.min() + 1.0) < 0.05 and 0.3 < pulses.max() < 0.6   # closing is the steep side
    assert np.all(pulses[(phase > 0.61) & (phase < 0.99)] == 0.0)        # closed
    flow = np.cumsum(pulses)
    assert abs(flow[-1]) < 0.02 * flow.max()                             # the flow returns to zero every cycle
    assert abs(np.argmax(flow[:441]) / 441 - 0.42) < 0.02                # peak flow at the end of the opening


def test_a_short_quick_closing_glottal_pulse_is_brighter_than_a_long_soft_one():
    def highs_db(open_quotient: float, closing: float) -> float:
        x = V.render_vocals([Note(0.0, 1.0, 50, 100, "a")], SAMPLE_RATE, np.random.default_rng(12),
                            plain("glottal", vibrato_cents=0.0, breathiness=0.0, open_quotient=open_quotient,
                                  closing=closing))[0, seconds(0.2, 0.9)]
        return band_energy_db(x, SAMPLE_RATE, 2000, 5000) - band_energy_db(x, SAMPLE_RATE, 80, 400)

    assert highs_db(0.45, 0.15) > highs_db(0.85, 0.5) + 6
