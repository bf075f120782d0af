"""One song in memory: arrange, draw a sound source per stem, render every stem, set levels and pans, normalise,
quantise, sum.

The clean mix is the exact sum of the stems even after a 24-bit FLAC round trip: the song is scaled so that the
clean mix and every stem peak at or below −1 dBFS, every stem is rounded to the 24-bit grid, and only then summed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from msr_lib.audio import SAMPLE_RATE, SILENT_PEAK
from msr_lib.errors import MSRError
from msr_lib.stems import INSTRUMENT_STEMS, STEMS

SOURCES = ("procedural", "corpus", "mixed")
#: the longest song rendered (seconds): a song is rendered whole in memory, every stem and mix at once
MAX_SECONDS = 600.0
PEAK_DBFS = -1.0
#: environment variable: the sound sources songs draw from when a caller names none (the test suite pins the
#: built-in ones, so its songs are the same on every machine)
SOUND_SOURCES_ENV = "MSR_SOUND_SOURCES"
REFERENCE_RMS = 0.1          # RMS of a stem at level 0 dB, before the song is normalised
FADE_OUT_SECONDS = 0.05


@dataclass(kw_only=True)
class Song:
    """A rendered song: stems in canonical order (float32, ``(2, samples)``), their exact sum (the clean mix) and
    the facts."""

    stems: dict[str, np.ndarray]
    clean_mix: np.ndarray
    info: dict
    sample_rate: int = SAMPLE_RATE


def check_request(seconds: float, source: str) -> None:
    if not isinstance(seconds, (int, float)) or not np.isfinite(seconds) or seconds <= 0:
        raise MSRError(f"seconds must be a positive number, got {seconds!r}")
    if seconds > MAX_SECONDS:
        raise MSRError(f"seconds must be at most {MAX_SECONDS:g} (a song is rendered in memory), got {seconds!r}")
    if source not in SOURCES:
        raise MSRError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")


def arrange(seed: int, seconds: float, source: str):
    """The arrangement for a seed: procedural, from the music21 corpus, or (``mixed``) either by seed parity."""
    if source == "mixed":
        source = "corpus" if seed % 2 else "procedural"
    rng = np.random.default_rng(seed)
    if source == "corpus":
        from msr_lib.data.synth.corpus import arrange_corpus_piece

        return arrange_corpus_piece(seed, seconds, rng)
    from msr_lib.data.synth.arrangement import compose

    return compose(seed, seconds, rng)


def render_song(seed: int, seconds: float, *, source: str = "procedural", soundfont=None,
                sound_sources=None) -> Song:
    """Compose and render one song in memory (for notebooks); the same seed always gives the same samples on a
    machine with the same sound sources.

    ``sound_sources``: names in :data:`~msr_lib.data.synth.sounds.SOUND_SOURCES` to draw from (``None``: those in
    ``$MSR_SOUND_SOURCES``, comma-separated, else every available one); a named source that is missing is one
    clear error. ``soundfont`` (or ``$MSR_SOUNDFONT``)
    pins one SoundFont file in place of every sampled GM set drawn.
    """
    check_request(seconds, source)
    pinned, allowed = prepare_sound_sources(soundfont, sound_sources)
    return render_arrangement(arrange(int(seed), float(seconds), source), pinned=pinned, allowed=allowed)


def prepare_sound_sources(soundfont=None, sound_sources=None):
    """``(pinned SoundFont or None, allowed source names or None)``, checked (missing sources fail in one line,
    a bad pinned SoundFont fails on loading) before any rendering."""
    from msr_lib.data.synth.render import load_soundfont, pinned_soundfont
    from msr_lib.data.synth.sounds import check_stems_covered, require_sound_sources

    pinned = pinned_soundfont(soundfont)
    if pinned is not None:
        load_soundfont(pinned)
    if sound_sources is None and os.environ.get(SOUND_SOURCES_ENV, "").strip():
        sound_sources = [name.strip() for name in os.environ[SOUND_SOURCES_ENV].split(",") if name.strip()]
    allowed = None
    if sound_sources is not None:
        allowed = tuple(sound_sources)
        require_sound_sources(allowed, install=False)
        check_stems_covered(allowed)
    return pinned, allowed


def pan_gains(pan: float) -> np.ndarray:
    """Constant-power pan law (``pan`` from −1 left to +1 right), unity gain in the centre: a ``(2, 1)`` column of
    float32 channel gains."""
    angle = (pan + 1.0) * np.pi / 4.0
    return np.array([[np.cos(angle)], [np.sin(angle)]], np.float32) * np.float32(np.sqrt(2.0))


def exact_mix(stems: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    """Scale ``stems`` so that every stem and their sum peak at or below :data:`PEAK_DBFS`, round each to the 24-bit
    grid, then sum: ``(stems, clean_mix, scale)``; the clean mix stays the exact sum of the stems after a 24-bit
    FLAC round trip."""
    clean_mix = np.sum([s.astype(np.float64) for s in stems.values()], axis=0)
    peak = max(np.abs(clean_mix).max(), max(np.abs(s).max() for s in stems.values()))
    scale = 10 ** (PEAK_DBFS / 20) * (1 - 1e-5) / peak
    grid = 2.0 ** 23
    stems = {k: (np.round(v.astype(np.float64) * scale * grid) / grid).astype(np.float32) for k, v in stems.items()}
    clean_mix = np.sum([s.astype(np.float64) for s in stems.values()], axis=0).astype(np.float32)
    return stems, clean_mix, float(scale)


def active_rms(audio: np.ndarray) -> float:
    """RMS over the 50 ms frames where the stem plays (so sparse parts are not pushed up)."""
    mono = audio.mean(axis=0)
    frame = SAMPLE_RATE // 20
    n = mono.size // frame
    if n == 0:
        return float(np.sqrt(np.mean(mono ** 2)))
    power = (mono[: n * frame].reshape(n, frame).astype(np.float64) ** 2).mean(axis=1)
    active = power[power > power.max() * 1e-3]
    return float(np.sqrt(active.mean())) if active.size else 0.0


def render_arrangement(arr, *, pinned=None, allowed=None) -> Song:
    """Render an :class:`~msr_lib.data.synth.arrangement.Arrangement` to stems and their clean mix, each stem on
    the sound source :func:`~msr_lib.data.synth.sounds.choose_sources` draws for it."""
    from msr_lib import __version__
    from msr_lib.data.synth.sounds import (RENDER_STREAM, SOUND_SOURCES, choose_sources, pinned_soundfont_source,
                                           source_pool)

    n = int(round(arr.seconds * SAMPLE_RATE))
    chosen = choose_sources(arr.seed, list(arr.parts), allowed=allowed)
    pinned_source = pinned_soundfont_source(pinned) if pinned is not None else None
    stems: dict[str, np.ndarray] = {}
    played: dict[str, dict] = {}
    fade = np.linspace(1.0, 0.0, min(int(FADE_OUT_SECONDS * SAMPLE_RATE), n), dtype=np.float32)
    for index, stem in enumerate(STEMS):
        part = arr.parts.get(stem)
        if part is None:
            continue
        sound = SOUND_SOURCES[chosen[stem]]
        if pinned_source is not None and sound.kind == "soundfont":
            sound = pinned_source
        rng = np.random.default_rng([arr.seed, RENDER_STREAM, index])
        audio, facts = sound.render(part, n, rng, style=arr.style)
        played[stem] = {"sound_source": sound.name, **facts}
        audio[:, n - fade.size:] *= fade
        rms = active_rms(audio)
        if rms <= SILENT_PEAK:
            continue                                    # digital silence inside the song: the stem is omitted
        gain = REFERENCE_RMS * 10 ** (part.level_db / 20) / rms
        stems[stem] = (audio * pan_gains(part.pan) * np.float32(gain)).astype(np.float32)
    if not stems:
        raise MSRError(f"seed {arr.seed}: the arrangement produced no audible stem")

    stems, clean_mix, _ = exact_mix(stems)

    instruments = {}
    for stem in stems:
        part, facts = arr.parts[stem], played[stem]
        instruments[stem] = {"sound_source": facts["sound_source"],
                             "program": facts["program"] if facts["program"] is not None else part.program,
                             "program_name": facts["patch"], "is_drums": part.is_drums, "role": part.role,
                             "level_db": round(part.level_db, 2), "pan": round(part.pan, 3),
                             "notes": sum(1 for x in part.notes if x.start < arr.seconds),
                             **{k: v for k, v in facts.items() if k in ("kit", "soundfont", "voice", "unplayed_notes")}}
    drum_notes = {stem: sorted({x.pitch for x in arr.parts[stem].notes if x.start < arr.seconds})
                  for stem in ("drums", "percussion") if stem in stems}
    info = {
        "generator": "msr_lib.data.synth", "library_version": __version__, "seed": arr.seed, "source": arr.source,
        "piece": arr.piece, "style": arr.style, "tempo": arr.tempo, "key": arr.key,
        "meter": f"{arr.beats_per_bar}/4", "seconds": arr.seconds, "sample_rate": SAMPLE_RATE,
        "stems": list(stems), "omitted": [s for s in INSTRUMENT_STEMS if s not in stems],
        "chords": arr.chords, "sections": arr.sections, "instruments": instruments,
        "programs": {s: v["program"] for s, v in instruments.items()}, "drum_notes": drum_notes,
        "melody": [[round(x.start, 4), round(x.end, 4), x.pitch, x.syllable] for x in arr.parts["vocals"].notes
                   if x.start < arr.seconds] if "vocals" in stems else [],
        "voice": arr.parts["vocals"].voice if "vocals" in stems else None,
        "sound_sources": {s: v["sound_source"] for s, v in instruments.items()},
        "sound_source_pool": source_pool(allowed), "pinned_soundfont": str(pinned) if pinned is not None else None,
        "peak_dbfs": round(float(20 * np.log10(max(np.abs(clean_mix).max(), 1e-12))), 3),
    }
    return Song(stems=stems, clean_mix=clean_mix, info=info)


def summarize_song(info: dict) -> str:
    """Human-readable lines for a song's facts (``Song.info`` / ``song.json``)."""
    lines = [f"{info.get('style', '?')} in {info.get('key', '?')}, {info.get('tempo', 0):.0f} BPM, {info.get('meter', '?')}"
             + (f" — {info['piece']}" if info.get("piece") else "")]
    sections = info.get("sections") or []
    if sections:
        lines.append("sections: " + " · ".join(f"{s['name']} ({s['bars']} bars)" for s in sections))
    chords = info.get("chords") or []
    if chords:
        lines.append("chords:   " + " ".join(c["chord"] for c in chords))
    for stem, inst in (info.get("instruments") or {}).items():
        lines.append(f"  {stem:<13} {inst.get('sound_source', ''):<18} {inst.get('program_name', ''):<30} "
                     f"{inst.get('role', ''):<18} level {inst.get('level_db', 0):+5.1f} dB, "
                     f"pan {inst.get('pan', 0):+.2f}")
    if info.get("omitted"):
        lines.append("left out: " + ", ".join(info["omitted"]))
    return "\n".join(lines)
