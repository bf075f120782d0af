"""Real composed note material: music21 corpus pieces (Bach chorales, Haydn/Mozart string quartets) on stems.

Soprano (or first violin) → vocals melody, bass (or cello) → bass, the inner voices → keyboards, orchestral or
guitars; a drum and percussion groove in the piece's metre is added at the chosen tempo, and sometimes an `other`
part in the piece's key. The piece loops if the song is longer than it.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from msr_lib.data.synth.arrangement import (CONSONANTS, VOWELS, Arrangement, Bar, Chord, Grid, Note, Part,
                                            add_other_part, choose_stems, drum_part, percussion_part, place_in_mix)
from msr_lib.data.synth.styles import STYLES
from msr_lib.data.synth.theory import NOTE_NAMES, chord_name, scale_pitch_classes
from msr_lib.data.synth.voice import choose_voice
from msr_lib.errors import MSRError

QUARTET_COMPOSERS = ("haydn", "mozart")
INNER_PROGRAMS = {"keyboards": (0, 1, 4, 19, 6), "orchestral": (40, 41, 42, 48, 68, 71, 73, 60),
                  "guitars": (24, 25, 26)}


@functools.lru_cache(maxsize=None)
def piece_paths(kind: str) -> tuple[str, ...]:
    """Sorted corpus paths: ``"chorale"`` (Bach, MusicXML) or ``"quartet"`` (Haydn, Mozart movements)."""
    from music21 import corpus

    if kind == "chorale":
        paths = [p for p in corpus.getComposer("bach") if p.suffix == ".mxl" and p.name.startswith("bwv")]
    else:
        paths = [p for c in QUARTET_COMPOSERS for p in corpus.getComposer(c) if p.suffix == ".mxl"]
    return tuple(sorted(str(p) for p in paths))


@functools.lru_cache(maxsize=16)
def _read_piece(path: str) -> tuple:
    """(voices as lists of (onset, length, midi) in quarter notes, beats per bar, pickup length, length, metronome)."""
    from music21 import corpus, meter, tempo

    score = corpus.parse(path)
    parts = list(score.parts)
    named = [p for p in parts if (p.partName or "").split()[0] in ("Soprano", "Alto", "Tenor", "Bass")]
    parts = named if len(named) == 4 else parts[-4:]
    if len(parts) < 4:
        raise MSRError(f"{path}: expected four voices, found {len(parts)}")
    voices = []
    for part in parts:
        notes = []
        for n in part.stripTies().flatten().notes:
            pitch = max(p.midi for p in n.pitches) if n.isChord else n.pitch.midi
            notes.append((float(n.getOffsetInHierarchy(part)), float(n.quarterLength), int(pitch)))
        voices.append(notes)
    signatures = list(score.recurse().getElementsByClass(meter.TimeSignature))
    beats = 3 if signatures and signatures[0].ratioString == "3/4" else 4     # 2/4, 4/4, 6/8 take a 4/4 groove
    measures = list(parts[0].getElementsByClass("Measure"))
    pickup = float(measures[0].duration.quarterLength) if measures and measures[0].paddingLeft else 0.0
    marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
    bpm = float(marks[0].getQuarterBPM()) if marks and marks[0].number else None
    return voices, int(beats), pickup, float(score.highestTime), bpm


def arrange_corpus_piece(seed: int, seconds: float, rng: np.random.Generator) -> Arrangement:
    """Arrange a corpus piece chosen by ``rng`` onto stems, with a groove in its metre."""
    kind = "quartet" if rng.random() < 0.25 and piece_paths("quartet") else "chorale"
    paths = piece_paths(kind)
    if not paths:
        raise MSRError("the music21 corpus is not installed (pip install music21)")
    for _ in range(len(paths)):
        path = paths[int(rng.integers(len(paths)))]
        try:
            voices, beats, pickup, length, bpm = _read_piece(path)
            break
        except MSRError:  # not a four-voice piece (the Bach folder also holds two-part preludes): draw again
            continue
    else:
        raise MSRError(f"no four-voice {kind} found in the music21 corpus")
    if kind == "chorale" or bpm is None or not 70 <= bpm <= 160:
        bpm = float(rng.integers(72, 101) if kind == "chorale" else rng.integers(90, 131))
    beat_seconds = 60.0 / bpm
    loop = math.ceil(length / beats) * beats          # whole bars, so the groove stays on the downbeat when looping
    repeats = max(1, math.ceil(seconds / (loop * beat_seconds)) + 1)
    style_names = ("waltz",) if beats == 3 else ("pop", "ballad", "rock", "bossa", "shuffle")
    style = STYLES[str(rng.choice(style_names))]
    if style.beats_per_bar != beats:
        style = STYLES["waltz"] if beats == 3 else STYLES["pop"]
    grid = Grid(bpm, beats, 0.0, rng, offset=pickup * beat_seconds)   # the band comes in after the pickup

    def to_notes(voice, transpose: int) -> list[Note]:
        out = []
        for r in range(repeats):
            for onset, ql, midi in voice:
                start = (r * loop + onset) * beat_seconds
                if start < seconds:
                    out.append(Note(start, start + ql * beat_seconds * 0.95, midi + transpose, 0))
        return out

    soprano, alto, tenor, bass = voices[:4]
    stems = choose_stems(rng, style)
    for must in ("vocals", "bass"):
        if must not in stems and rng.random() < 0.8:
            stems.append(must)
    inner = [str(s) for s in rng.permutation(["keyboards", "orchestral", "guitars"])]
    if not any(s in stems for s in inner):
        stems.append(inner[0])
    fixed: dict[str, Part] = {}
    vocal_shift = 0 if kind == "chorale" else -12 * int(np.mean([m for _, _, m in soprano]) > 76)
    fixed["vocals"] = Part("vocals", None, False, "lead melody (soprano)" if kind == "chorale" else "lead melody",
                           to_notes(soprano, vocal_shift),
                           voice=choose_voice(rng, high=True))
    fixed["bass"] = Part("bass", int(rng.choice((32, 33, 35))), False, "bass voice", to_notes(bass, -12))
    for stem, line, name in zip(inner, (alto, tenor), ("alto", "tenor")):
        fixed[stem] = Part(stem, int(rng.choice(INNER_PROGRAMS[stem])), False, f"{name} voice", to_notes(line, 0))
    third = inner[2]
    fixed[third] = Part(third, int(rng.choice(INNER_PROGRAMS[third])), False, "inner voices",
                        to_notes(alto, 0) + to_notes(tenor, 0))
    if rng.random() < 0.5:
        fixed["synthesizers"] = Part("synthesizers", int(rng.choice((88, 89, 91, 94))), False, "pad doubling",
                                     to_notes(alto, 0) + to_notes(tenor, 0) + to_notes(soprano, -12))
    else:
        stems = [s for s in stems if s != "synthesizers"]
    for part in fixed.values():
        for note in part.notes:
            note.velocity = grid.velocity(80 if part.stem != "vocals" else 92, 7)
            if part.stem == "vocals":
                note.syllable = str(rng.choice(CONSONANTS)) + str(rng.choice(VOWELS))

    bar_seconds = beats * beat_seconds
    n_bars = int(math.ceil(seconds / bar_seconds)) + 1
    all_notes = [(o + r * loop, q, m) for r in range(repeats) for v in voices[:4] for o, q, m in v]
    chords, bars = [], []
    for i in range(n_bars):
        t = pickup + i * beats
        sounding = sorted((m for o, q, m in all_notes if o <= t < o + q), key=int)
        if sounding:
            root = sounding[0] % 12
            chord = Chord(root, tuple(sorted({m % 12 for m in sounding})), chord_name(root, [m - sounding[0] for m in sounding]))
        else:
            chord = Chord(0, (0,), "N")
        section = "verse" if (i // 4) % 2 == 0 else "chorus"
        bars.append(Bar(i, section, i % 4, 4, i // 8, chord, chord))
        if i * bar_seconds < seconds:
            chords.append({"bar": i, "time": round(grid.offset + i * bar_seconds, 4), "chord": chord.name})
    stems = [s for s in ("vocals", "bass", "drums", "guitars", "keyboards", "synthesizers", "percussion",
                         "orchestral") if s in stems]
    parts: dict[str, Part] = {}
    for stem in stems:
        if stem == "drums":
            parts[stem] = drum_part(rng, style, bars, grid)
        elif stem == "percussion":
            parts[stem] = percussion_part(rng, style, bars, grid)
        elif stem in fixed:
            parts[stem] = fixed[stem]
    place_in_mix(rng, parts)
    key = _key_name(voices)
    tonic, mode = key.split()
    add_other_part(seed, parts, style, bars, grid, scale_pitch_classes(NOTE_NAMES.index(tonic), mode))
    sections = [{"name": b.section, "start_bar": b.index, "bars": 4, "time": round(grid.offset + b.index * bar_seconds, 4)}
                for b in bars if b.section_bar == 0 and b.index * bar_seconds < seconds]
    return Arrangement(seed=seed, seconds=seconds, source="corpus", style=style.name, tempo=bpm, beats_per_bar=beats,
                       key=key, chords=chords, sections=sections, parts=parts,
                       piece=path.split("corpus/")[-1] if "corpus/" in path else path)


def _key_name(voices) -> str:
    """Key by the Krumhansl–Kessler profiles on duration-weighted pitch classes."""
    major = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
    minor = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
    hist = np.zeros(12)
    for voice in voices:
        for _, ql, midi in voice:
            hist[midi % 12] += ql
    scores = [(np.corrcoef(np.roll(profile, tonic), hist)[0, 1], tonic, mode)
              for mode, profile in (("major", major), ("minor", minor)) for tonic in range(12)]
    _, tonic, mode = max(scores)
    return f"{NOTE_NAMES[tonic]} {mode}"
