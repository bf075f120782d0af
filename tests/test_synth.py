"""The offline song generator: determinism, exact mixes, song facts, instrument roles, the voice, CLI errors.

The sound sources themselves (registry, choice, drum-kit sampler, synthesizers) are tested in test_sounds.py."""
from __future__ import annotations

import json

import numpy as np
import pytest

from msr_lib.audio import SAMPLE_RATE, load_audio, spectral_centroid_hz
from msr_lib.cli import main
from msr_lib.data import synth
from msr_lib.data.synth.arrangement import Note, compose
from msr_lib.data.synth.render import bundled_soundfont, find_soundfont
from msr_lib.data.synth.styles import KIT_NOTES, PERCUSSION_NOTES, PROGRAM_FAMILIES
from msr_lib.data.synth.voice import sing
from msr_lib.errors import MSRError
from msr_lib.stems import INSTRUMENT_STEMS, STEMS

SMALL_FONT = str(bundled_soundfont())        # loads in 20 ms; FluidR3 takes ~1 s


def _plain_lead(seed: int) -> bool:
    """The song has vocals, bass and drums, and its voice sings one line (no harmony part)."""
    parts = compose(seed, 3.0).parts
    return {"vocals", "bass", "drums"} <= set(parts) and not parts["vocals"].voice.get("harmony")


SONG_SEED = next(s for s in range(11, 200) if _plain_lead(s))


@pytest.fixture(scope="module")
def song():
    return synth.render_song(SONG_SEED, 3.0, soundfont=SMALL_FONT)


def test_same_seed_gives_bit_identical_audio_and_other_seeds_differ(song):
    again = synth.render_song(SONG_SEED, 3.0, soundfont=SMALL_FONT)
    assert list(again.stems) == list(song.stems)
    for name in song.stems:
        assert np.array_equal(again.stems[name], song.stems[name]), name
    assert again.info == song.info
    other = synth.render_song(SONG_SEED + 1, 3.0, soundfont=SMALL_FONT)
    assert other.info["seed"] != song.info["seed"]
    assert not np.array_equal(other.clean_mix, song.clean_mix)


def test_stems_are_canonical_nonsilent_and_sum_exactly_to_the_mix(song):
    assert set(song.stems) <= set(STEMS)
    assert list(song.stems) == [s for s in STEMS if s in song.stems]
    assert len(song.stems) >= 3
    for name, audio in song.stems.items():
        assert audio.dtype == np.float32 and audio.shape == (2, 3 * SAMPLE_RATE), name
        assert np.sqrt(np.mean(audio ** 2)) > 1e-3, f"{name} is silent"
        assert np.array_equal(np.round(audio.astype(np.float64) * 2 ** 23), audio.astype(np.float64) * 2 ** 23)
    total = np.sum([a.astype(np.float64) for a in song.stems.values()], axis=0)
    assert np.array_equal(total.astype(np.float32), song.clean_mix)
    assert 20 * np.log10(np.abs(song.clean_mix).max()) <= -1.0 + 1e-4


def test_arrangements_follow_the_style_rules_across_many_seeds():
    seen_styles, omitted, tempos = set(), set(), []
    for seed in range(40):
        arr = compose(seed, 20.0)
        seen_styles.add(arr.style)
        tempos.append(arr.tempo)
        assert len(arr.parts) >= 3 and any(s in arr.parts for s in ("guitars", "keyboards", "synthesizers",
                                                                      "orchestral"))
        omitted |= set(INSTRUMENT_STEMS) - set(arr.parts)
        tonic, mode = arr.key.split()
        assert mode in ("major", "minor", "dorian", "mixolydian")
        assert {s["name"] for s in arr.sections} <= {"intro", "verse", "chorus", "bridge", "outro"}
        for stem, part in arr.parts.items():
            assert part.notes, stem
            if stem in PROGRAM_FAMILIES:
                assert part.program in PROGRAM_FAMILIES[stem], (stem, part.program)
        if "drums" in arr.parts:
            assert {n.pitch for n in arr.parts["drums"].notes} <= set(KIT_NOTES.values())
            assert arr.parts["drums"].is_drums
        if "percussion" in arr.parts:
            assert {n.pitch for n in arr.parts["percussion"].notes} <= set(PERCUSSION_NOTES.values())
        if "bass" in arr.parts:
            assert max(n.pitch for n in arr.parts["bass"].notes) < 60
    assert len(seen_styles) >= 6
    assert {"guitars", "synthesizers", "percussion", "orchestral"} <= omitted
    assert 66 <= min(tempos) and max(tempos) <= 160 and max(tempos) - min(tempos) > 40


def test_bass_is_darker_than_keys_and_drums():
    for seed in range(30):
        arr = compose(seed, 4.0)
        if {"bass", "drums", "keyboards"} <= set(arr.parts):
            break
    song = synth.render_song(seed, 4.0, soundfont=SMALL_FONT)
    bass = spectral_centroid_hz(song.stems["bass"])
    assert bass < 400
    assert bass < spectral_centroid_hz(song.stems["keyboards"])
    assert bass < spectral_centroid_hz(song.stems["drums"])


def _f0_track(x: np.ndarray, hop: int = 256, frame: int = 2048) -> np.ndarray:
    """Autocorrelation pitch per frame (Hz), 80–1000 Hz."""
    f0 = []
    for start in range(0, x.size - frame, hop):
        seg = x[start:start + frame] * np.hanning(frame)
        ac = np.fft.irfft(np.abs(np.fft.rfft(seg, 2 * frame)) ** 2)[:frame]
        lo, hi = SAMPLE_RATE // 1000, SAMPLE_RATE // 80
        lag = lo + int(np.argmax(ac[lo:hi]))
        a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
        denominator = a - 2 * b + c
        f0.append(SAMPLE_RATE / (lag + (0.5 * (a - c) / denominator if denominator else 0.0)))
    return np.array(f0)


def test_the_voice_sings_the_note_with_vibrato_and_vowel_formants():
    rng = np.random.default_rng(0)
    note = [Note(0.05, 1.95, 57, 100, "la")]                     # A3 = 220 Hz
    x = sing(note, 2 * SAMPLE_RATE, rng, vibrato_hz=5.5, vibrato_cents=40)
    f0 = _f0_track(x)
    cents = 1200 * np.log2(f0 / 220.0)
    steady = cents[int(0.6 * SAMPLE_RATE / 256):int(1.7 * SAMPLE_RATE / 256)]
    assert abs(np.median(steady)) < 30                             # on pitch
    assert 15 < np.std(steady) < 60                                 # vibrato …
    spectrum = np.abs(np.fft.rfft(steady - steady.mean(), 4096))
    rate = np.fft.rfftfreq(4096, 256 / SAMPLE_RATE)[np.argmax(spectrum)]
    assert 4.5 < rate < 6.5                                         # … at ~5.5 Hz
    early = cents[int(0.06 * SAMPLE_RATE / 256):int(0.16 * SAMPLE_RATE / 256)]
    assert np.std(early) < np.std(steady)                           # vibrato fades in after the onset

    def band_ratio_db(vowel: str) -> float:
        y = sing([Note(0.0, 1.0, 50, 100, vowel)], SAMPLE_RATE, np.random.default_rng(1))
        spec = np.abs(np.fft.rfft(y[4410:-4410])) ** 2
        f = np.fft.rfftfreq(y.size - 8820, 1 / SAMPLE_RATE)
        return 10 * np.log10(spec[(f > 1900) & (f < 2500)].sum() / spec[(f > 550) & (f < 900)].sum())

    assert band_ratio_db("i") > band_ratio_db("a") + 10           # /i/ has F2 ≈ 2.2 kHz, /a/ has F1 ≈ 730 Hz
    assert band_ratio_db("i") > band_ratio_db("u") + 10


def test_the_vocal_stem_follows_the_melody(song):
    assert "vocals" in song.stems and song.info["melody"]
    x = song.stems["vocals"].mean(axis=0)
    start, end, pitch, syllable = max(song.info["melody"], key=lambda m: m[1] - m[0])
    assert end - start > 0.25 and syllable[-1] in "aeiou"
    a, b = int((start + 0.08) * SAMPLE_RATE), int(min(end - 0.05, 3.0) * SAMPLE_RATE)
    segment = x[a:b] * np.hanning(b - a)
    power = np.abs(np.fft.rfft(segment, 1 << 16)) ** 2
    freqs = np.fft.rfftfreq(1 << 16, 1 / SAMPLE_RATE)
    expected = 440 * 2 ** ((pitch - 69) / 12)

    def band_db(ratio: float) -> float:
        band = (freqs > expected * ratio * 0.97) & (freqs < expected * ratio * 1.03)
        return 10 * np.log10(power[band].sum() + 1e-20)

    # sung at the melody's pitch: a partial at f0, none half an octave's worth between (an octave lower would put
    # partials at f0/2 and 3f0/2; an octave higher leaves f0 empty). Autocorrelation is fooled by voices whose
    # second partial is the strongest, so the test reads the spectrum.
    assert band_db(1.0) > band_db(0.5) + 12
    assert band_db(1.0) > band_db(1.5) + 12


def test_corpus_source_arranges_a_real_piece():
    song = synth.render_song(4, 3.0, source="corpus", soundfont=SMALL_FONT)
    assert song.info["source"] == "corpus"
    assert song.info["piece"].split("/")[0] in ("bach", "haydn", "mozart")
    assert song.info["melody"] and "vocals" in song.stems
    total = np.sum([a.astype(np.float64) for a in song.stems.values()], axis=0)
    assert np.array_equal(total.astype(np.float32), song.clean_mix)


def test_corpus_source_draws_again_when_the_piece_has_fewer_than_four_voices():
    song = synth.render_song(9, 2.0, source="corpus", soundfont=SMALL_FONT)  # seed 9 first draws a two-part prelude
    assert song.info["source"] == "corpus" and "bwv846" not in song.info["piece"]


def test_synthesize_songs_writes_folders_whose_mix_is_the_sum(tmp_path):
    paths = synth.synthesize_songs(tmp_path, songs=2, seconds=2.0, seed=5, source="mixed", soundfont=SMALL_FONT,
                                   workers=1, progress=False)
    assert [p.name for p in paths] == [synth.song_id(5, 0), synth.song_id(5, 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]      # no temp folders left
    for path in paths:
        info = json.loads((path / "song.json").read_text())
        files = sorted(f.stem for f in path.glob("*.flac"))
        assert files == sorted(info["stems"] + ["clean_mix"])
        assert info["sample_rate"] == SAMPLE_RATE and info["seconds"] == 2.0 and info["seed"] == synth.song_seed(5, info["index"])
        assert 60 <= info["tempo"] <= 160 and info["key"].split()[1] in ("major", "minor", "dorian", "mixolydian")
        assert info["pinned_soundfont"] == SMALL_FONT and info["library_version"]
        assert set(info["sound_sources"]) == set(info["stems"]) == set(info["instruments"])
        for stem, inst in info["instruments"].items():
            assert inst["sound_source"] == info["sound_sources"][stem]
            if inst["sound_source"] in ("fluidr3_gm", "musescore_general", "timgm6mb"):
                raise AssertionError(f"{stem}: a sampled GM set was drawn although {SMALL_FONT} is pinned")
        for stem, program in info["programs"].items():
            if stem in PROGRAM_FAMILIES:
                assert program in PROGRAM_FAMILIES[stem]
        stems = [load_audio(path / f"{s}.flac") for s in info["stems"]]
        clean_mix = load_audio(path / "clean_mix.flac")
        assert np.max(np.abs(np.sum(stems, axis=0) - clean_mix)) < 1e-6
    assert json.loads((paths[1] / "song.json").read_text())["source"] == "corpus"


def test_parallel_workers_render_the_same_songs(tmp_path):
    one = synth.synthesize_songs(tmp_path / "a", songs=2, seconds=1.5, seed=2, soundfont=SMALL_FONT, workers=1,
                                 progress=False)
    two = synth.synthesize_songs(tmp_path / "b", songs=2, seconds=1.5, seed=2, soundfont=SMALL_FONT, workers=2,
                                 progress=False)
    for a, b in zip(one, two):
        assert (a / "clean_mix.flac").read_bytes() == (b / "clean_mix.flac").read_bytes()


def test_an_interrupted_song_leaves_no_folder(tmp_path, monkeypatch):
    from msr_lib.data.synth import batch

    calls = []

    def failing_save(path, audio, sample_rate):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return batch_save(path, audio, sample_rate)

    batch_save = batch.save_audio
    monkeypatch.setattr(batch, "save_audio", failing_save)
    with pytest.raises(KeyboardInterrupt):
        synth.synthesize_songs(tmp_path, songs=1, seconds=1.0, seed=0, soundfont=SMALL_FONT, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_soundfonts_past_the_cache_budget_are_dropped_and_reload_to_the_same_sound(tmp_path, monkeypatch):
    import shutil

    from msr_lib.data.synth import render

    monkeypatch.setattr(render, "_LOADED", {})
    monkeypatch.setattr(render, "SOUNDFONT_CACHE_MB", 1.2 * render._decoded_mb(str(bundled_soundfont())))
    other = tmp_path / "copy.sf2"
    shutil.copy(bundled_soundfont(), other)
    part = next(p for p in compose(3, 2.0).parts.values() if not p.is_drums and p.notes)
    first, _, _ = render.render_part(part, SAMPLE_RATE, bundled_soundfont())
    render.render_part(part, SAMPLE_RATE, other)                    # no room for both: the first is dropped
    assert list(render._LOADED) == [str(other.resolve())]
    again, _, _ = render.render_part(part, SAMPLE_RATE, bundled_soundfont())
    assert list(render._LOADED) == [str(bundled_soundfont().resolve())]
    assert np.abs(first).max() > 1e-3 and np.array_equal(first, again)


def test_find_soundfont_prefers_explicit_then_installed(tmp_path):
    assert find_soundfont(SMALL_FONT) == bundled_soundfont()
    assert find_soundfont().is_file()
    with pytest.raises(MSRError, match="no such SoundFont"):
        find_soundfont(tmp_path / "missing.sf2")
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"RIFF0000not a soundfont")
    with pytest.raises(MSRError, match="cannot load SoundFont|SoundFont has no preset"):
        synth.render_song(0, 1.0, soundfont=bad)


def test_cli_writes_the_layout(tmp_path, capsys):
    out = tmp_path / "songs"
    rc = main(["synth", "--songs", "1", "--seconds", "1.5", "--seed", "3", "--out", str(out), "--workers", "1",
               "--soundfont", SMALL_FONT])
    assert rc == 0
    folder = out / synth.song_id(3, 0)
    assert (folder / "clean_mix.flac").is_file() and (folder / "song.json").is_file()
    assert (folder / "vocals.flac").exists() or len(list(folder.glob("*.flac"))) >= 4


@pytest.mark.parametrize("args, message", [
    (["--songs", "0"], "songs"),
    (["--seconds", "0"], "seconds"),
    (["--soundfont", "/nonexistent/font.sf2"], "SoundFont"),
    (["--out-is-file"], "not a folder"),
])
def test_cli_bad_input_is_one_error_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    if args == ["--out-is-file"]:
        out.write_text("x")
        args = []
    argv = ["synth", "--out", str(out), "--seconds", "1", "--workers", "1", *args]
    if "--soundfont" not in args:
        argv += ["--soundfont", SMALL_FONT]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("msr: error: ") and message in err[0]
    assert not out.is_dir()


def test_summarize_song_lists_stems_and_chords():
    from msr_lib.data.synth import render_song, summarize_song

    song = render_song(seed=3, seconds=3.0)
    text = summarize_song(song.info)
    assert str(int(round(song.info["tempo"]))) in text.splitlines()[0] and song.info["key"] in text
    for stem in song.stems:
        assert any(line.strip().startswith(stem) for line in text.splitlines())
    assert song.info["chords"][0]["chord"] in text


def test_skip_existing_resumes_without_rewriting(tmp_path):
    first = synth.synthesize_songs(tmp_path, songs=1, seconds=1.0, seed=4, soundfont=SMALL_FONT, workers=1,
                                   progress=False)
    stamp = (first[0] / "clean_mix.flac").stat().st_mtime_ns
    again = synth.synthesize_songs(tmp_path, songs=2, seconds=1.0, seed=4, soundfont=SMALL_FONT, workers=1,
                                   progress=False, skip_existing=True)
    assert [p.name for p in again] == [synth.song_id(4, 0), synth.song_id(4, 1)]
    assert (first[0] / "clean_mix.flac").stat().st_mtime_ns == stamp    # kept, not rendered again
    assert (again[1] / "song.json").exists()                            # the missing one was rendered
    longer = synth.synthesize_songs(tmp_path, songs=1, seconds=1.5, seed=4, soundfont=SMALL_FONT, workers=1,
                                    progress=False, skip_existing=True)
    assert json.loads((longer[0] / "song.json").read_text())["seconds"] == 1.5  # a different request re-renders
    stamp = (longer[0] / "clean_mix.flac").stat().st_mtime_ns
    fewer = synth.synthesize_songs(tmp_path, songs=1, seconds=1.5, seed=4, soundfont=SMALL_FONT,
                                   sound_sources=["timgm6mb"], workers=1, progress=False, skip_existing=True)
    info = json.loads((fewer[0] / "song.json").read_text())                 # so does another sound-source pool
    assert info["sound_source_pool"] == ["timgm6mb", "msr_voice"] and set(info["sound_sources"].values()) <= {
        "soundfont_file", "msr_voice"}
    assert (fewer[0] / "clean_mix.flac").stat().st_mtime_ns != stamp


def test_skip_existing_renders_a_song_folder_of_the_old_layout_again(tmp_path):
    (folder,) = synth.synthesize_songs(tmp_path, songs=1, seconds=1.0, seed=4, soundfont=SMALL_FONT, workers=1,
                                       progress=False)
    (folder / "clean_mix.flac").rename(folder / "mix.flac")              # what msr synth wrote before
    (again,) = synth.synthesize_songs(tmp_path, songs=1, seconds=1.0, seed=4, soundfont=SMALL_FONT, workers=1,
                                      progress=False, skip_existing=True)
    assert again == folder
    assert (folder / "clean_mix.flac").is_file() and not (folder / "mix.flac").exists()
