"""Sound sources of the synthetic songs: the registry, the seeded and recorded choice, every built-in source on
every stem it claims, the Hydrogen drum-kit sampler and the SoundFont path on fixtures built here, missing sources,
the synthesizer voices and the `other` stem."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from msr_lib.audio import SAMPLE_RATE
from msr_lib.data import synth
from msr_lib.data.synth import arrangement, sounds
from msr_lib.data.synth.arrangement import Note, Part, compose
from msr_lib.data.synth.drumkit import read_drumkit, render_drumkit_part
from msr_lib.data.synth.render import bundled_soundfont
from msr_lib.data.synth.sounds import (SOUND_SOURCES, HydrogenSource, choose_sources, pinned_soundfont_source,
                                       render_with_source, require_sound_sources)
from msr_lib.data.synth.styles import KIT_NOTES, PERCUSSION_NOTES
from msr_lib.data.synth.synthesizer import FM_PATCHES, SUBTRACTIVE_PATCHES, render_synth_part, wavetable
from msr_lib.data.synth.theory import scale_pitch_classes
from msr_lib.errors import MSRError
from msr_lib.stems import STEMS

BUILT_IN = [name for name, source in SOUND_SOURCES.items() if source.package is None]
#: The built-in sources and those whose Debian package this machine has (CI: the built-in ones).
AVAILABLE = [name for name, source in SOUND_SOURCES.items() if source.package is None or source.available()]
SMALL_FONT = str(bundled_soundfont())
FIRST_NOTE = 1.0                 # seconds of silence before the test parts start


def _dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def _test_part(stem: str) -> Part:
    """Two bars from FIRST_NOTE on: a C-major line (pitched stems), a beat (drums), a pattern (percussion)."""
    if stem == "drums":
        hits = [KIT_NOTES["kick"], KIT_NOTES["closed_hat"], KIT_NOTES["snare"], KIT_NOTES["closed_hat"]] * 4
    elif stem == "percussion":
        hits = [PERCUSSION_NOTES["shaker"], PERCUSSION_NOTES["tambourine"], PERCUSSION_NOTES["cowbell"],
                PERCUSSION_NOTES["open_conga"]] * 4
    else:
        base = {"bass": 36, "vocals": 57}.get(stem, 60)
        hits = [base + step for step in (0, 2, 4, 5, 7, 5, 4, 2)] * 2
    beat = 0.25
    notes = [Note(FIRST_NOTE + k * beat, FIRST_NOTE + (k + 0.9) * beat, p, 100, "la") for k, p in enumerate(hits)]
    program = {"bass": 33, "guitars": 25, "keyboards": 0, "synthesizers": 81, "orchestral": 48, "other": 107}
    part = Part(stem, program.get(stem), stem in ("drums", "percussion"), "lead melody", notes)
    if stem == "vocals":
        from msr_lib.data.synth.voice import choose_voice

        part.voice = choose_voice(np.random.default_rng(0), high=False)
    return part


@pytest.mark.parametrize("name, stem", [(n, s) for n in AVAILABLE for s in SOUND_SOURCES[n].stems])
def test_every_available_source_plays_every_stem_it_claims(name, stem):
    source = SOUND_SOURCES[name]
    assert source.available()
    n = int(3.5 * SAMPLE_RATE)
    audio, facts = source.render(_test_part(stem), n, np.random.default_rng(1), style="pop")
    assert audio.shape == (2, n) and audio.dtype == np.float32 and np.isfinite(audio).all()
    playing = audio[:, int((FIRST_NOTE + 0.05) * SAMPLE_RATE):int((FIRST_NOTE + 2.0) * SAMPLE_RATE)]
    before = audio[:, :int((FIRST_NOTE - 0.3) * SAMPLE_RATE)]
    assert _dbfs(playing) > -50, f"{name} on {stem} is not audible"
    assert _dbfs(before) < _dbfs(playing) - 30, f"{name} on {stem} sounds before its first note"
    assert facts["patch"]


def test_choice_is_seeded_recorded_and_varies_across_songs():
    present = list(STEMS)
    assert choose_sources(7, present) == choose_sources(7, present)
    for stem in STEMS:                     # over 40 songs every available source of a stem gets drawn
        drawn = {choose_sources(seed, present)[stem] for seed in range(40)}
        assert drawn == {n for n in sounds.available_sources() if stem in SOUND_SOURCES[n].stems}, stem
    assert len({choose_sources(seed, present)["bass"] for seed in range(40)}) >= 3     # built-in: 3 for bass
    restricted = choose_sources(7, present, allowed=["timgm6mb", "msr_fm"])
    assert set(restricted.values()) <= {"timgm6mb", "msr_fm", "msr_voice"} and restricted["vocals"] == "msr_voice"
    assert restricted["keyboards"] in ("timgm6mb", "msr_fm") and restricted["drums"] == "timgm6mb"
    # one draw per canonical stem: a stem's source does not move when another stem is left out
    assert choose_sources(7, ["bass", "drums"])["drums"] == choose_sources(7, present)["drums"]


def test_a_song_records_its_sources_and_renders_the_same_samples_again():
    seed = next(s for s in range(40) if len(compose(s, 2.0).parts) >= 4)
    song = synth.render_song(seed, 2.0, sound_sources=BUILT_IN)
    again = synth.render_song(seed, 2.0, sound_sources=BUILT_IN)
    assert song.info == again.info
    for stem in song.stems:
        assert np.array_equal(song.stems[stem], again.stems[stem]), stem
    chosen = choose_sources(seed, list(compose(seed, 2.0).parts), allowed=BUILT_IN)
    for stem, inst in song.info["instruments"].items():
        assert inst["sound_source"] == chosen[stem] == song.info["sound_sources"][stem] and inst["program_name"]
    lines = synth.summarize_song(song.info).splitlines()
    for stem in song.stems:
        assert any(line.split()[:2] == [stem, chosen[stem]] for line in lines), stem
    # the notes do not depend on the sources
    only_gm = synth.render_song(seed, 2.0, sound_sources=["timgm6mb"])
    assert only_gm.info["melody"] == song.info["melody"] and only_gm.info["chords"] == song.info["chords"]
    assert set(only_gm.info["sound_sources"].values()) <= {"timgm6mb", "msr_voice"}


def test_songs_across_seeds_use_different_sources():
    used = {synth.render_song(seed, 1.0, sound_sources=BUILT_IN).info["sound_sources"].get("bass") for seed in
            range(12)}
    assert len(used - {None}) >= 2


def _write_tone(path, freq: float, seconds: float, amplitude: float, sample_rate: int = 22050) -> None:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sf.write(str(path), (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), sample_rate)


def _fixture_kit(root):
    """A Hydrogen kit in both formats: layered instruments (namespaced XML) and an old one-file instrument."""
    kit = root / "TestKit"
    kit.mkdir(parents=True)
    _write_tone(kit / "kick_soft.wav", 60, 0.3, 0.3)
    _write_tone(kit / "kick_hard.wav", 90, 0.3, 0.9)
    _write_tone(kit / "snare.wav", 200, 0.2, 0.5)
    _write_tone(kit / "hat_closed.wav", 7000, 0.05, 0.5)
    _write_tone(kit / "hat_open.wav", 3000, 1.0, 0.5)
    _write_tone(kit / "cowbell.flac", 800, 0.2, 0.5)

    def layered(name, *layers):
        body = "".join(f"<layer><filename>{f}</filename><min>{lo}</min><max>{hi}</max><gain>1</gain></layer>"
                       for f, lo, hi in layers)
        return f"<instrument><id>0</id><name>{name}</name><volume>1</volume><gain>1</gain>{body}</instrument>"

    (kit / "drumkit.xml").write_text(
        '<?xml version="1.0"?><drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><name>Test Kit</name>'
        "<instrumentList>"
        + layered("Kick", ("kick_soft.wav", 0, 0.5), ("kick_hard.wav", 0.5, 1))
        + layered("Snare", ("snare.wav", 0, 1)) + layered("Closed HH", ("hat_closed.wav", 0, 1))
        + layered("Open HH", ("hat_open.wav", 0, 1))
        + "<instrument><filename>cowbell.flac</filename><name>Cowbell</name></instrument>"
        + layered("Missing", ("not_there.wav", 0, 1)) + "</instrumentList></drumkit_info>")
    return kit


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=0) * np.hanning(x.shape[1])))
    return float(np.fft.rfftfreq(x.shape[1], 1 / SAMPLE_RATE)[np.argmax(spectrum)])


def test_hydrogen_sampler_maps_names_layers_and_chokes_the_hihat(tmp_path):
    kit = read_drumkit(_fixture_kit(tmp_path))
    assert kit.name == "Test Kit" and [i.name for i in kit.instruments] == ["Kick", "Snare", "Closed HH", "Open HH",
                                                                           "Cowbell"]
    mapping = {note: kit.instruments[i].name for note, i in kit.note_map().items()}
    assert mapping[36] == "Kick" and mapping[38] == "Snare" and mapping[42] == "Closed HH"
    assert mapping[46] == "Open HH" and mapping[56] == "Cowbell" and 49 not in mapping and kit.is_drum_kit()
    n = 2 * SAMPLE_RATE
    notes = [Note(0.1, 0.2, 36, 30), Note(0.5, 0.6, 36, 120), Note(1.0, 1.1, 46, 100), Note(1.2, 1.3, 42, 100),
             Note(1.5, 1.6, 49, 100)]
    out = render_drumkit_part(notes, n, kit)
    assert out.shape == (2, n) and out.dtype == np.float32
    first = int(0.1 * SAMPLE_RATE)
    assert not out[:, :first].any() and out[:, first:first + 50].any()           # on its sample
    assert abs(_peak_hz(out[:, first:first + 8000]) - 60) < 10                   # soft hit: soft layer
    loud = int(0.5 * SAMPLE_RATE)
    assert abs(_peak_hz(out[:, loud:loud + 8000]) - 90) < 10                     # hard hit: hard layer
    assert np.abs(out[:, loud:loud + 8000]).max() > 3 * np.abs(out[:, first:first + 8000]).max()
    open_hat = out[:, int(1.05 * SAMPLE_RATE):int(1.2 * SAMPLE_RATE)]
    assert abs(_peak_hz(open_hat) - 3000) < 20
    after = out[:, int(1.26 * SAMPLE_RATE):int(1.5 * SAMPLE_RATE)]
    assert not after.any()                  # the closed hat choked the open one, and has ended itself; no crash
    source = HydrogenSource(name="kit", kind="drumkit", package=None, stems=("drums",), description="",
                            files=(str(tmp_path),))
    assert source.available()
    audio, facts = source.render(_test_part("drums"), n, np.random.default_rng(0), style="rock")
    assert facts["kit"] == "TestKit" and _dbfs(audio[:, SAMPLE_RATE:]) > -40 and facts["unplayed_notes"] == []
    with_crash = _test_part("drums")
    with_crash.notes.append(Note(2.0, 2.1, KIT_NOTES["crash"], 100))
    assert source.render(with_crash, n, np.random.default_rng(0), style="rock")[1]["unplayed_notes"] == [49]


def test_soundfont_sources_play_the_program_and_pinned_file_replaces_the_gm_sets():
    source = pinned_soundfont_source(SMALL_FONT)
    n = int(3.5 * SAMPLE_RATE)
    audio, facts = source.render(_test_part("bass"), n, np.random.default_rng(0), style="pop")
    assert facts["program"] == 33 and "bass" in facts["patch"].lower() and facts["soundfont"] == SMALL_FONT
    assert _peak_hz(audio[:, int(FIRST_NOTE * SAMPLE_RATE):int((FIRST_NOTE + 0.25) * SAMPLE_RATE)]) < 200
    kit, facts = source.render(_test_part("drums"), n, np.random.default_rng(0), style="electronic")
    assert facts["program"] in (24, 25) and _dbfs(kit[:, SAMPLE_RATE:]) > -40     # the style's electronic kit
    song = synth.render_song(3, 1.0, soundfont=SMALL_FONT)
    assert song.info["pinned_soundfont"] == SMALL_FONT
    for inst in song.info["instruments"].values():
        assert inst["sound_source"] not in ("fluidr3_gm", "musescore_general", "timgm6mb")
        assert inst["sound_source"] != "soundfont_file" or inst["soundfont"] == SMALL_FONT


def test_a_missing_source_fails_with_one_line_naming_its_package(monkeypatch, tmp_path):
    fake = sounds.SoundFontSource(name="fake_gm", kind="soundfont", package="fake-soundfont-gm",
                                  stems=("keyboards",), description="", files=(str(tmp_path / "none.sf2"),))
    monkeypatch.setitem(SOUND_SOURCES, "fake_gm", fake)
    for call in (lambda: require_sound_sources(["timgm6mb", "fake_gm"], install=False),
                 lambda: synth.render_song(0, 1.0, sound_sources=["fake_gm"]),
                 lambda: synth.synthesize_songs(tmp_path / "out", songs=1, seconds=1.0, seed=0,
                                                sound_sources=["fake_gm"], workers=1, progress=False)):
        with pytest.raises(MSRError) as error:
            call()
        message = str(error.value)
        assert "\n" not in message and "fake_gm" in message and "apt-get install fake-soundfont-gm" in message
    assert not (tmp_path / "out").exists()
    with pytest.raises(MSRError, match="plays drums, guitars, percussion, orchestral, other; add"):
        synth.render_song(0, 1.0, sound_sources=["msr_fm"])            # a list must cover every stem
    with pytest.raises(MSRError, match="unknown sound source 'nope'"):
        require_sound_sources(["nope"], install=False)
    for name, source in SOUND_SOURCES.items():          # the real ones missing on this machine say the same
        if not source.available():
            with pytest.raises(MSRError, match=f"apt-get install {source.package}"):
                require_sound_sources([name], install=False)


def test_install_asks_apt_for_the_missing_packages(monkeypatch, tmp_path):
    fake = sounds.SoundFontSource(name="fake_gm", kind="soundfont", package="fake-soundfont-gm",
                                  stems=("keyboards",), description="", files=(str(tmp_path / "none.sf2"),))
    monkeypatch.setitem(SOUND_SOURCES, "fake_gm", fake)
    calls = []
    monkeypatch.setattr(sounds.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sounds.shutil, "which", lambda cmd: "/usr/bin/apt-get")
    monkeypatch.setattr(sounds.subprocess, "run", lambda args, **kw: calls.append(args))
    with pytest.raises(MSRError, match="fake-soundfont-gm"):          # apt "ran" but the file did not appear
        require_sound_sources(["fake_gm"], install=True)
    assert calls == [["apt-get", "install", "-y", "--no-install-recommends", "fake-soundfont-gm"]]
    calls.clear()
    require_sound_sources(["timgm6mb"], install=True)                  # nothing missing: apt is not asked
    assert calls == []


def test_wavetables_hold_no_partials_above_nyquist_and_patches_sound_at_pitch():
    for wave in ("saw", "square", "pulse", "triangle"):
        table = wavetable(wave, 5000.0)
        spectrum = np.abs(np.fft.rfft(table))
        assert spectrum[5:].max() < 1e-9 * spectrum.max()               # 4 partials of 5 kHz fit below 22.05 kHz
    assert np.abs(np.fft.rfft(wavetable("square", 100.0)))[2] < 1e-9   # a square has odd partials only
    note = [Note(0.0, 0.9, 69, 100)]
    for patch in SUBTRACTIVE_PATCHES + FM_PATCHES:
        audio = render_synth_part(note, SAMPLE_RATE, patch, np.random.default_rng(0))
        assert audio.shape == (2, SAMPLE_RATE) and np.isfinite(audio).all() and _dbfs(audio) > -40, patch.name
        body = audio[:, int(0.2 * SAMPLE_RATE):int(0.8 * SAMPLE_RATE)]
        if patch.name not in ("fm bell", "fm tine piano", "fm pluck", "pulse pluck"):
            assert abs(_peak_hz(body) / 440 - round(_peak_hz(body) / 440)) < 0.02, patch.name   # harmonic of A4
    held = render_synth_part([Note(0.0, 0.3, 57, 100)], SAMPLE_RATE, SUBTRACTIVE_PATCHES[0], np.random.default_rng(0))
    assert _dbfs(held[:, int(0.7 * SAMPLE_RATE):]) < _dbfs(held[:, :int(0.3 * SAMPLE_RATE)]) - 40   # released


def test_render_with_source_plays_one_melody_on_each_source():
    melody = [Note(0.1 + 0.3 * k, 0.35 + 0.3 * k, p, 96) for k, p in enumerate((60, 64, 67, 72))]
    bars = {name: render_with_source(name, melody, 1.5, stem="synthesizers", program=80)
            for name in ("timgm6mb", "msr_subtractive", "msr_fm")}
    for name, audio in bars.items():
        assert audio.shape == (2, int(1.5 * SAMPLE_RATE)) and abs(20 * np.log10(np.abs(audio).max()) + 1) < 1e-3
    assert not np.allclose(bars["msr_subtractive"], bars["msr_fm"])


def test_some_songs_carry_an_other_part_in_key_and_write_it(tmp_path, monkeypatch):
    from msr_lib.data.synth.theory import NOTE_NAMES

    others = [s for s in range(30) if "other" in compose(s, 8.0).parts]
    assert 4 <= len(others) <= 18
    kinds = set()
    for seed in others:
        arr = compose(seed, 8.0)
        part = arr.parts["other"]
        kinds.add(part.role)
        assert part.notes and not part.is_drums and 104 <= part.program <= 127
        if part.role == "ethnic riff":
            tonic, mode = arr.key.split()
            scale = scale_pitch_classes(NOTE_NAMES.index(tonic), mode)
            assert all(n.pitch % 12 in scale for n in part.notes)
            assert part.program in arrangement.ETHNIC_LOW_NOTES
    assert len(kinds) >= 2
    with_other = compose(others[0], 8.0).parts
    monkeypatch.setattr(arrangement, "OTHER_PROBABILITY", 0.0)
    without = compose(others[0], 8.0).parts
    assert "other" not in without                        # its own random stream: the other parts stay the same
    assert {k: v.notes for k, v in with_other.items() if k != "other"} == {k: v.notes for k, v in without.items()}
    monkeypatch.undo()
    def other_starts_early(base: int) -> bool:
        other = compose(synth.song_seed(base, 0), 1.5).parts.get("other")
        return other is not None and any(n.start < 1.0 for n in other.notes)

    base = next(b for b in range(100) if other_starts_early(b))
    (folder,) = synth.synthesize_songs(tmp_path, songs=1, seconds=1.5, seed=base, soundfont=SMALL_FONT, workers=1,
                                       progress=False)
    info = json.loads((folder / "song.json").read_text())
    assert "other" in info["stems"] and (folder / "other.flac").is_file()
    assert info["instruments"]["other"]["program"] >= 104
