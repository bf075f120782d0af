"""Procedural composition: a seeded song plan (style, key, tempo, form, chords) and one note part per stem.

Everything random is drawn from one ``numpy.random.Generator`` in a fixed order, so a seed fixes the whole song.
Times inside the composer are (bar, 16th-step) positions on a :class:`Grid`; parts store seconds.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from msr_lib.data.synth.styles import (KIT_NOTES, ORCHESTRAL_LINES, ORCHESTRAL_PADS, PERCUSSION_NOTES, STYLES,
                                       SYNTH_LEADS, SYNTH_PADS, Style)
from msr_lib.data.synth.theory import NOTE_NAMES, PROGRESSIONS, chord_name, diatonic_chord, scale_pitch_classes
from msr_lib.data.synth.voice import choose_voice
from msr_lib.stems import INSTRUMENT_STEMS

HARMONY_STEMS = ("guitars", "keyboards", "synthesizers", "orchestral")
#: Mix level of each stem relative to the vocals, before a random ±2.5 dB.
BASE_LEVEL_DB = {"vocals": 0.0, "bass": -2.0, "drums": -1.0, "guitars": -5.0, "keyboards": -5.0,
                 "synthesizers": -6.0, "percussion": -9.0, "orchestral": -6.0, "other": -7.0}
SECTION_INTENSITY = {"intro": 0.7, "verse": 0.82, "chorus": 1.0, "bridge": 0.88, "outro": 0.75}
VOWELS = ("a", "o", "e", "i", "u")
CONSONANTS = ("", "l", "n", "m", "d", "t", "k", "s", "h", "b", "w", "y")


@dataclass
class Note:
    """One note: times in seconds, MIDI pitch and velocity; ``syllable`` is used by the vocals only."""

    start: float
    end: float
    pitch: int
    velocity: int
    syllable: str = ""


@dataclass
class Part:
    """The notes one stem plays, with the instrument, its role and its place in the mix."""

    stem: str
    program: int | None          # GM program (0-based); None for the singing voice
    is_drums: bool
    role: str
    notes: list[Note] = field(default_factory=list)
    level_db: float = 0.0
    pan: float = 0.0             # -1 (left) … +1 (right)
    voice: dict = field(default_factory=dict)   # singing-voice settings from voice.choose_voice (vocals only)


@dataclass
class Chord:
    root: int                    # pitch class
    tones: tuple[int, ...]       # pitch classes, root first
    name: str


@dataclass
class Arrangement:
    """A whole song plan: what every stem plays and the facts recorded in ``song.json``."""

    seed: int
    seconds: float
    source: str
    style: str
    tempo: float
    beats_per_bar: int
    key: str
    chords: list[dict]
    sections: list[dict]
    parts: dict[str, Part]
    piece: str | None = None     # the corpus piece arranged, if any


class Grid:
    """Maps (bar, step) positions to seconds, with swing and humanised timing."""

    def __init__(self, tempo: float, beats_per_bar: int, swing: float, rng: np.random.Generator,
                 offset: float = 0.0):
        self.offset = offset             # seconds before bar 0 (a corpus piece's pickup)
        self.step_seconds = 60.0 / tempo / 4.0
        self.steps_per_bar = 4 * beats_per_bar
        self.swing = swing
        self.rng = rng

    def time(self, bar: int, step: float, jitter: float = 0.0) -> float:
        swung = step + (self.swing if (step % 4) == 2 else 0.0)
        t = self.offset + (bar * self.steps_per_bar + swung) * self.step_seconds
        if jitter:
            t += float(np.clip(self.rng.normal(0.0, jitter), -2.5 * jitter, 2.5 * jitter))
        return max(t, 0.0)

    def velocity(self, base: float, spread: float = 6.0) -> int:
        return int(np.clip(round(base + self.rng.normal(0.0, spread)), 1, 127))


@dataclass
class Bar:
    """One bar of the form: its index, section name, position inside the section and chord."""

    index: int
    section: str
    section_bar: int
    section_bars: int
    occurrence: int              # how many times this section name has come before
    chord: Chord
    next_chord: Chord

    @property
    def intensity(self) -> float:
        return SECTION_INTENSITY[self.section]

    @property
    def is_section_start(self) -> bool:
        return self.section_bar == 0

    @property
    def is_section_end(self) -> bool:
        return self.section_bar == self.section_bars - 1


# ---------------------------------------------------------------- plan: style, key, form, chords

def _form(rng: np.random.Generator, n_bars: int) -> list[tuple[str, int]]:
    """Section names and lengths covering at least ``n_bars`` bars."""
    verse, chorus = int(rng.choice([4, 8])), int(rng.choice([4, 8]))
    plan = []
    if n_bars > 6:
        plan.append(("intro", int(rng.choice([1, 2, 2, 4] if n_bars >= 24 else [1, 2, 2]))))
    plan += [("verse", verse), ("chorus", chorus), ("verse", verse), ("chorus", chorus), ("bridge", 4),
             ("chorus", chorus), ("chorus", chorus)]
    while sum(b for _, b in plan) < n_bars:
        plan += [("verse", verse), ("chorus", chorus)]
    total = 0
    out = []
    for name, bars in plan:
        if total >= n_bars:
            break
        out.append((name, bars))
        total += bars
    if n_bars >= 12 and out[-1][0] != "intro":
        last_name, last_bars = out[-1]
        cut = n_bars - (total - last_bars)          # bars of the last section actually heard
        if cut > 2:
            out[-1] = (last_name, cut - 2)
            out.append(("outro", 2))
        else:
            out[-1] = ("outro", last_bars)
    return out


def _chord(tonic: int, mode: str, degree: int, size: int, dominant_major: bool) -> Chord:
    offsets = diatonic_chord(tonic, mode, degree, size)
    if dominant_major and mode == "minor" and degree == 4:
        offsets[1] += 1                               # harmonic-minor V
    root = (tonic + offsets[0]) % 12
    intervals = [o - offsets[0] for o in offsets]
    return Chord(root, tuple((root + i) % 12 for i in intervals), chord_name(root, intervals))


def plan_bars(rng: np.random.Generator, style: Style, tonic: int, mode: str, n_bars: int) -> list[Bar]:
    """Form and chord of every bar (one chord per bar, 4-bar progressions per section)."""
    family = mode if mode in PROGRESSIONS else "major"
    progs = PROGRESSIONS[family]
    order = rng.permutation(len(progs))
    by_section = {"verse": progs[order[0]], "chorus": progs[order[1 % len(progs)]],
                  "bridge": progs[order[2 % len(progs)]]}
    by_section["intro"] = by_section["verse"]
    by_section["outro"] = by_section["chorus"][:3] + (0,)
    size = 4 if style.name in ("funk", "bossa", "shuffle") or rng.random() < 0.15 else 3
    dominant_major = bool(rng.random() < 0.5)
    bars: list[Bar] = []
    seen: dict[str, int] = {}
    index = 0
    for name, length in _form(rng, n_bars):
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        for k in range(length):
            degree = by_section[name][k % 4]
            chord = _chord(tonic, mode, degree, size, dominant_major)
            bars.append(Bar(index, name, k, length, occurrence, chord, chord))
            index += 1
    for a, b in zip(bars, bars[1:]):
        a.next_chord = b.chord
    return bars


# ---------------------------------------------------------------- helpers

def _in_range(pc: int, low: int) -> int:
    """The lowest MIDI pitch with pitch class ``pc`` at or above ``low``."""
    return low + (pc - low) % 12


def _close_voicing(chord: Chord, low: int, previous: list[int] | None) -> list[int]:
    """Chord tones in close position above ``low``, the inversion nearest to ``previous`` (voice leading)."""
    best, best_cost = None, math.inf
    for inversion in range(len(chord.tones)):
        tones = chord.tones[inversion:] + chord.tones[:inversion]
        voicing, floor = [], low
        for pc in tones:
            p = _in_range(pc, floor)
            voicing.append(p)
            floor = p + 1
        cost = abs(np.mean(voicing) - np.mean(previous)) if previous else abs(voicing[0] - low - 4)
        if cost < best_cost:
            best, best_cost = voicing, cost
    return best


def _guitar_voicing(chord: Chord) -> list[int]:
    """Six-string-like open voicing: root low, then fifth, octave, third, fifth, octave (E2 … ~E5)."""
    root = _in_range(chord.root, 40)
    third = (chord.tones[1] - chord.root) % 12
    fifth = (chord.tones[2] - chord.root) % 12 if len(chord.tones) > 2 else 7
    upper = (chord.tones[3] - chord.root) % 12 if len(chord.tones) > 3 else 12
    return [root, root + fifth, root + 12, root + 12 + third, root + 12 + fifth, root + 12 + upper]


def _pattern_events(pattern: str, hold: str = "-") -> list[tuple[int, int, str]]:
    """(step, length in steps, character) for each non-rest character of a step pattern."""
    events = []
    for step, ch in enumerate(pattern):
        if ch in ".":
            continue
        if ch == hold:
            if events:
                s, n, c = events[-1]
                events[-1] = (s, n + 1, c)
            continue
        events.append((step, 1, ch))
    return events


def _add(part: Part, grid: Grid, bar: int, step: float, steps: float, pitch: int, velocity: int, *,
         jitter: float = 0.006, legato: float = 0.92, min_seconds: float = 0.05, syllable: str = "") -> None:
    start = grid.time(bar, step, jitter)
    end = max(start + min_seconds, grid.time(bar, step + steps * legato))
    part.notes.append(Note(start, end, int(pitch), int(velocity), syllable))


# ---------------------------------------------------------------- parts

def drum_part(rng, style: Style, bars: list[Bar], grid: Grid) -> Part:
    """A drum kit: kick, snare and hats from the style, ride in choruses, crashes at section starts, fills."""
    part = Part("drums", 0, True, "kit")
    chorus_ride = bool(rng.random() < 0.35)
    variant = {name: int(rng.integers(1 << 16)) for name in ("verse", "chorus", "bridge", "intro", "outro")}
    n = style.steps_per_bar
    for bar in bars:
        pick = variant[bar.section]
        kick = style.kick[pick % len(style.kick)]
        snare = style.snare[pick % len(style.snare)]
        hats = style.hats[(pick // 7) % len(style.hats)]
        accent = {"X": 112, "x": 92, "g": 42, "o": 86}
        level = bar.intensity
        hat_note = KIT_NOTES["ride"] if bar.section == "chorus" and chorus_ride else KIT_NOTES["closed_hat"]
        fill = bar.is_section_end and bar.index != bars[-1].index and rng.random() < 0.75
        fill_from = n - 4 if fill else n
        for step, ch in enumerate(hats):
            if ch == "." or (bar.section == "intro" and step % 4):
                continue
            note = KIT_NOTES["open_hat"] if ch == "o" else hat_note
            base = accent.get(ch, 80) * (0.75 if step % 4 else 0.9) * level
            _add(part, grid, bar.index, step, 1, note, grid.velocity(base), jitter=0.003, min_seconds=0.12)
        if bar.section != "intro":
            for step, ch in enumerate(snare):
                if ch != "." and step < fill_from:
                    _add(part, grid, bar.index, step, 1, KIT_NOTES[style.snare_note],
                         grid.velocity(accent[ch] * level), jitter=0.003, min_seconds=0.15)
        for step, ch in enumerate(kick):
            if ch != "." and step < fill_from and (bar.section != "intro" or step == 0):
                _add(part, grid, bar.index, step, 1, KIT_NOTES["kick"], grid.velocity(accent[ch] * level),
                     jitter=0.002, min_seconds=0.15)
        if fill:
            toms = [KIT_NOTES["snare"], KIT_NOTES["high_tom"], KIT_NOTES["mid_tom"], KIT_NOTES["low_tom"],
                    KIT_NOTES["floor_tom"]]
            start = int(rng.integers(0, 3))
            for k, step in enumerate(range(fill_from, n)):
                note = toms[min(start + k, len(toms) - 1)] if rng.random() < 0.6 else KIT_NOTES["snare"]
                _add(part, grid, bar.index, step, 1, note, grid.velocity(85 + 6 * k), jitter=0.003, min_seconds=0.2)
        if bar.is_section_start and bar.section in ("chorus", "bridge", "verse") and (
                bar.index == 0 or bar.section != "verse" or bar.occurrence > 0):
            _add(part, grid, bar.index, 0, 1, KIT_NOTES["crash"], grid.velocity(100 * level), jitter=0.002,
                 min_seconds=1.5)
    return part


def percussion_part(rng, style: Style, bars: list[Bar], grid: Grid) -> Part:
    """Hand percussion (shaker, tambourine, congas, cowbell…) from the style's patterns, 1–3 instruments."""
    part = Part("percussion", 0, True, "hand percussion")
    names = sorted(style.percussion)
    chosen = [names[i] for i in sorted(rng.choice(len(names), size=int(rng.integers(1, min(3, len(names)) + 1)),
                                                   replace=False))]
    for bar in bars:
        if bar.section == "intro" and bar.section_bar < bar.section_bars - 1:
            continue
        for name in chosen:
            pattern = style.percussion[name]
            for step, length, ch in _pattern_events(pattern):
                base = (88 if step % 4 == 0 else 70) * bar.intensity
                note = PERCUSSION_NOTES[name]
                if name == "open_conga" and length == 1 and rng.random() < 0.3:
                    note = PERCUSSION_NOTES["mute_conga"]
                _add(part, grid, bar.index, step, 1, note, grid.velocity(base, 9), jitter=0.004, min_seconds=0.15)
    return part


def bass_part(rng, style: Style, bars: list[Bar], grid: Grid, program: int) -> Part:
    """A bass line on roots, fifths, octaves and approach notes, in the style's rhythm (E1–B2 roots)."""
    part = Part("bass", program, False, "bass line")
    variant = {name: int(rng.integers(len(style.bass))) for name in ("verse", "chorus", "bridge", "intro", "outro")}
    for bar in bars:
        pattern = style.bass[variant[bar.section]] if bar.section != "intro" else "R" + "-" * (len(style.bass[0]) - 1)
        root = _in_range(bar.chord.root, 28)
        fifth = _in_range(bar.chord.tones[2] if len(bar.chord.tones) > 2 else bar.chord.root + 7, root + 1)
        target = _in_range(bar.next_chord.root, root - 6)
        approach = target - 1 if rng.random() < 0.5 else target + 2
        approach += 12 if approach < 28 else 0
        tones = {"R": root, "F": fifth, "O": root + 12, "A": approach}
        for step, length, ch in _pattern_events(pattern):
            vel = (96 if step % 4 == 0 else 82) * bar.intensity
            _add(part, grid, bar.index, step, length, tones[ch], grid.velocity(vel), jitter=0.004)
    return part


def _comp_pattern(style: Style, rng, bar: Bar, variant: dict) -> str:
    if bar.section == "intro":
        return "x" + "-" * (style.steps_per_bar - 1)
    return style.comp[variant[bar.section] % len(style.comp)]


def guitar_part(rng, style: Style, bars: list[Bar], grid: Grid, program: int) -> Part:
    """Guitar: strummed chords (string by string), fingerpicked arpeggios, power chords or funk chops."""
    mode = str(rng.choice(style.guitar_mode))
    if program in (29, 30) and mode == "strum":
        mode = "power"
    part = Part("guitars", program, False, mode)
    variant = {name: int(rng.integers(1 << 16)) for name in ("verse", "chorus", "bridge", "intro", "outro")}
    arp_order = [(0, 2, 3, 4, 5, 4, 3, 2), (0, 3, 4, 5, 1, 3, 4, 5), (0, 4, 3, 5, 1, 4, 3, 5)][int(rng.integers(3))]
    for bar in bars:
        voicing = _guitar_voicing(bar.chord)
        if mode == "arpeggio":
            for k, step in enumerate(range(0, style.steps_per_bar, 2)):
                _add(part, grid, bar.index, step, 5, voicing[arp_order[k % len(arp_order)]],
                     grid.velocity((84 if k == 0 else 68) * bar.intensity), legato=1.0)
            continue
        for step, length, _ in _pattern_events(_comp_pattern(style, rng, bar, variant)):
            if mode == "power":
                strings, gap, dur = voicing[:3], 0.004, min(length, 2)
            elif mode == "chop":
                strings, gap, dur = voicing[2:5], 0.003, 1
            else:
                up = step % 4 == 2
                strings = voicing[2:][::-1] if up else voicing
                gap, dur = float(rng.uniform(0.008, 0.016)), length
            base = (92 if step % 4 == 0 else 76) * bar.intensity
            t0 = grid.time(bar.index, step, 0.006)
            end = max(t0 + 0.06, grid.time(bar.index, step + dur * 0.95))
            for k, pitch in enumerate(strings):
                part.notes.append(Note(t0 + k * gap, end, pitch, grid.velocity(base - 3 * k)))
    return part


def keyboard_part(rng, style: Style, bars: list[Bar], grid: Grid, program: int) -> Part:
    """Piano/EP/organ comping: bass note in the left hand, close-voiced chords in the right (voice-led)."""
    organ = program >= 16
    part = Part("keyboards", program, False, "organ pad" if organ else "comping")
    variant = {name: int(rng.integers(1 << 16)) for name in ("verse", "chorus", "bridge", "intro", "outro")}
    previous = None
    for bar in bars:
        right = _close_voicing(bar.chord, 58, previous)
        previous = right
        left = _in_range(bar.chord.root, 40)
        if organ:
            for pitch in [left] + right:
                _add(part, grid, bar.index, 0, style.steps_per_bar, pitch, grid.velocity(78 * bar.intensity),
                     legato=0.98)
            continue
        for step, length, _ in _pattern_events(_comp_pattern(style, rng, bar, variant)):
            base = (86 if step % 4 == 0 else 72) * bar.intensity
            for pitch in right:
                _add(part, grid, bar.index, step, length, pitch, grid.velocity(base), jitter=0.005)
            if step == 0 or length >= 4:
                _add(part, grid, bar.index, step, length, left, grid.velocity(base + 4), jitter=0.005)
    return part


def _pad_notes(part: Part, grid: Grid, bars: list[Bar], low: int, rng, velocity: float) -> None:
    previous = None
    for bar in bars:
        voicing = _close_voicing(bar.chord, low, previous)
        previous = voicing
        for pitch in voicing:
            _add(part, grid, bar.index, 0, grid.steps_per_bar, pitch, grid.velocity(velocity * bar.intensity, 4),
                 jitter=0.01, legato=1.0)


def synth_part(rng, style: Style, bars: list[Bar], grid: Grid, program: int) -> Part:
    """Synthesizer: a sustained pad (GM 88–95) or a lead playing chord-tone arpeggios (GM 80–87)."""
    if program in SYNTH_PADS:
        part = Part("synthesizers", program, False, "pad")
        _pad_notes(part, grid, bars, 55, rng, 80)
        return part
    part = Part("synthesizers", program, False, "lead arpeggio")
    rate = 2 if style.name in ("electronic",) or grid.step_seconds > 0.14 else 4
    shape = [(0, 1, 2, 1), (0, 1, 2, 3), (2, 1, 0, 1), (0, 2, 1, 3)][int(rng.integers(4))]
    for bar in bars:
        if bar.section == "intro":
            continue
        voicing = _close_voicing(bar.chord, 67, None) + [_in_range(bar.chord.root, 79)]
        for k, step in enumerate(range(0, grid.steps_per_bar, rate)):
            if bar.section == "verse" and k % 4 == 3:
                continue
            _add(part, grid, bar.index, step, rate, voicing[shape[k % 4] % len(voicing)],
                 grid.velocity((88 if k % 4 == 0 else 74) * bar.intensity), legato=0.8)
    return part


def orchestral_part(rng, style: Style, bars: list[Bar], grid: Grid, program: int, scale: list[int]) -> Part:
    """Orchestra: a string/horn pad, pizzicato chord tones, or a slow counter-line (violin, flute, brass…)."""
    if program == 45:
        part = Part("orchestral", program, False, "pizzicato")
        for bar in bars:
            voicing = _close_voicing(bar.chord, 55, None)
            for k, step in enumerate(range(0, grid.steps_per_bar, 4)):
                _add(part, grid, bar.index, step, 2, voicing[k % len(voicing)],
                     grid.velocity((90 if k == 0 else 76) * bar.intensity))
        return part
    if program in ORCHESTRAL_PADS:
        part = Part("orchestral", program, False, "pad")
        _pad_notes(part, grid, bars, 50 if program in (42, 60) else 55, rng, 82)
        return part
    low = {40: 67, 41: 60, 42: 48, 56: 60, 57: 48, 60: 53, 68: 64, 70: 46, 71: 58, 73: 67}.get(program, 60)
    part = Part("orchestral", program, False, "counter-line")
    line = melody(rng, bars, scale, low, low + 14, grid.steps_per_bar, durations=(4, 8, 8, 12, 16),
                  weights=(0.25, 0.3, 0.2, 0.15, 0.1), rest_prob=0.1)
    for bar, step, steps, pitch in line:
        _add(part, grid, bar, step, steps, pitch, grid.velocity(80 * bars[bar].intensity), legato=0.97)
    return part


def melody(rng, bars: list[Bar], scale: list[int], low: int, high: int, steps_per_bar: int, *,
           durations=(2, 4, 6, 8), weights=(0.4, 0.35, 0.1, 0.15), rest_prob=0.12, phrase_bars: int = 2,
           sections=None) -> list[tuple[int, int, int, int]]:
    """A singable line: chord tones on strong beats, mostly stepwise, phrases of two bars ending in a breath.

    Returns (bar, step, length in steps, MIDI pitch). A section's melody is composed once and repeated (with a few
    notes changed) whenever the section comes back, as songs do.
    """
    pitches = [p for p in range(low, high + 1) if p % 12 in scale]
    centre = (low + high) / 2
    weights = np.asarray(weights, float) / np.sum(weights)
    composed: dict[str, list[tuple[int, int, int, int]]] = {}   # section → (section bar, step, steps, pitch)
    out = []
    prev = int(pitches[len(pitches) // 2])
    for bar in bars:
        if sections is not None and bar.section not in sections:
            continue
        key = f"{bar.section}"
        if bar.occurrence > 0 and key in composed:
            for sbar, step, steps, pitch in composed[key]:
                if sbar == bar.section_bar:
                    if rng.random() < 0.12:
                        pitch = int(rng.choice([p for p in pitches if abs(p - pitch) <= 2] or [pitch]))
                    out.append((bar.index, step, steps, pitch))
            continue
        lift = 3 if bar.section == "chorus" else 0
        phrase_end = (bar.section_bar % phrase_bars) == phrase_bars - 1
        step = int(rng.choice([0, 0, 2])) if bar.section_bar % phrase_bars == 0 else 0
        limit = steps_per_bar - (4 if phrase_end else 0)
        while step < limit:
            steps = int(rng.choice(durations, p=weights))
            steps = min(steps, limit - step)
            if rng.random() < rest_prob and step > 0:
                step += 2
                continue
            strong = step % 4 == 0
            cand = np.array(pitches)
            w = np.exp(-np.abs(cand - prev) / 3.0) * np.exp(-(((cand - centre - lift) / (high - low)) ** 2) * 3)
            is_chord = np.isin(cand % 12, bar.chord.tones)
            w *= np.where(is_chord, 3.0, 0.15 if strong else 1.0)
            w[cand == prev] *= 0.25
            pitch = int(rng.choice(cand, p=w / w.sum()))
            composed.setdefault(key, []).append((bar.section_bar, step, steps, pitch))
            out.append((bar.index, step, steps, pitch))
            prev = pitch
            step += steps
    return out


def vocal_part(rng, bars: list[Bar], grid: Grid, scale: list[int]) -> Part:
    """The lead vocal: a melody with one sung syllable per note, for a voice of :mod:`.voice`."""
    high_voice = bool(rng.random() < 0.5)
    low = int(rng.integers(57, 61)) if high_voice else int(rng.integers(48, 52))
    part = Part("vocals", None, False, "lead melody", voice=choose_voice(rng, high=high_voice))
    singing = ("verse", "chorus", "bridge", "outro") if len(bars) > 6 else ("intro", "verse", "chorus", "bridge")
    line = melody(rng, bars, scale, low, low + 15, grid.steps_per_bar, sections=singing)
    vowel_p = np.array([0.32, 0.22, 0.2, 0.14, 0.12])
    for bar, step, steps, pitch in line:
        syllable = str(rng.choice(CONSONANTS)) + str(rng.choice(VOWELS, p=vowel_p))
        _add(part, grid, bar, step, steps, pitch, grid.velocity(90 * bars[bar].intensity, 5), jitter=0.01,
             legato=0.97, min_seconds=0.08, syllable=syllable)
    return part


# ---------------------------------------------------------------- the `other` stem

#: How often a song carries a part outside the 8 classes (the `other` stem), and its random stream.
OTHER_PROBABILITY = 1 / 3
OTHER_STREAM = 0x4F5448
#: GM programs of the `other` stem: ethnic instruments (sitar, banjo, shamisen, koto, kalimba, bagpipe, fiddle,
#: shanai) with their lowest comfortable note, tuned and untuned percussion, and sound effects.
ETHNIC_LOW_NOTES = {104: 52, 105: 55, 106: 52, 107: 55, 108: 60, 109: 60, 110: 55, 111: 60}
TUNED_PERCUSSION = (112, 114)                 # tinkle bell, steel drums
PERCUSSIVE_PROGRAMS = (113, 115, 116, 117, 118)   # agogo, woodblock, taiko, melodic tom, synth drum
SOUND_EFFECTS = tuple(range(119, 128))       # reverse cymbal … gunshot
OTHER_RHYTHMS = ("x..x..x.x..x..x.", "x...x...x.x.x...", "x.x...x.x.x...x.", "x..x...xx..x....")


def other_part(rng, style: Style, bars: list[Bar], grid: Grid, scale: list[int]) -> Part:
    """A part outside the 8 classes: an ethnic instrument's riff in key, tuned percussion on chord tones, a
    rhythm on the grid, or sparse sound effects at section starts."""
    kind = str(rng.choice(["ethnic", "ethnic", "tuned percussion", "percussive", "effects"]))
    grid = copy.copy(grid)
    grid.rng = rng
    steps = grid.steps_per_bar
    sections = ("verse", "chorus", "bridge", "outro", "intro")
    if len(bars) > 8:
        sections = tuple(s for s in sections if rng.random() < 0.6) or ("chorus",)
    playing = [bar for bar in bars if bar.section in sections]
    if kind == "ethnic":
        program = int(rng.choice(sorted(ETHNIC_LOW_NOTES)))
        low = ETHNIC_LOW_NOTES[program]
        part = Part("other", program, False, "ethnic riff")
        for bar, step, length, pitch in melody(rng, bars, scale, low, low + 14, steps, durations=(2, 2, 4, 6),
                                               weights=(0.4, 0.2, 0.3, 0.1), rest_prob=0.3, sections=sections):
            _add(part, grid, bar, step, length, pitch, grid.velocity(86 * bars[bar].intensity))
    elif kind == "tuned percussion":
        part = Part("other", int(rng.choice(TUNED_PERCUSSION)), False, "tuned percussion")
        for bar in playing:
            voicing = _close_voicing(bar.chord, 67, None)
            for k, step in enumerate(range(0, steps, 2)):
                if rng.random() < 0.7:
                    _add(part, grid, bar.index, step, 2, voicing[k % len(voicing)], grid.velocity(84, 8))
    elif kind == "percussive":
        part = Part("other", int(rng.choice(PERCUSSIVE_PROGRAMS)), False, "percussion pattern")
        pattern = str(rng.choice(OTHER_RHYTHMS))[:steps]
        pitch = _in_range(int(rng.integers(12)), 48)
        for bar in playing:
            for step, _, _ in _pattern_events(pattern):
                _add(part, grid, bar.index, step, 1, pitch, grid.velocity(90 if step % 4 == 0 else 74),
                     jitter=0.003, min_seconds=0.1)
    else:
        part = Part("other", int(rng.choice(SOUND_EFFECTS)), False, "sound effects")
        for bar in playing:
            if bar.is_section_start or bar.section_bar % 4 == 2 and rng.random() < 0.5:
                _add(part, grid, bar.index, 0, steps * 1.5, 60 + int(rng.integers(-5, 6)), grid.velocity(90, 8),
                     legato=1.0)
    part.level_db = BASE_LEVEL_DB["other"] + float(rng.uniform(-2.5, 2.5))
    part.pan = float(rng.uniform(-0.6, 0.6))
    return part


def add_other_part(seed: int, parts: dict[str, Part], style: Style, bars: list[Bar], grid: Grid,
                   scale: list[int]) -> None:
    """In about :data:`OTHER_PROBABILITY` of the songs, add an `other` part (own random stream, so the other
    parts do not change)."""
    rng = np.random.default_rng([int(seed), OTHER_STREAM])
    if rng.random() < OTHER_PROBABILITY:
        part = other_part(rng, style, bars, grid, scale)
        if part.notes:
            parts["other"] = part


# ---------------------------------------------------------------- the song

def choose_stems(rng, style: Style) -> list[str]:
    """Which stems play: each by the style's probability; at least 3, at least one harmony instrument."""
    present = [s for s in INSTRUMENT_STEMS if rng.random() < style.presence.get(s, 0.5)]
    if not any(s in present for s in HARMONY_STEMS):
        present.append(str(rng.choice(HARMONY_STEMS)))
    missing = [s for s in INSTRUMENT_STEMS if s not in present]
    while len(present) < 3:
        present.append(missing.pop(int(rng.integers(len(missing)))))
    return [s for s in INSTRUMENT_STEMS if s in present]


def choose_program(rng, style: Style, stem: str) -> int:
    return int(rng.choice(style.programs[stem]))


def build_parts(rng, style: Style, bars: list[Bar], grid: Grid, scale: list[int], stems: list[str],
                fixed: dict[str, Part] | None = None) -> dict[str, Part]:
    """Generate every stem's part (parts in ``fixed`` come from elsewhere, e.g. a corpus piece), then place them."""
    fixed = fixed or {}
    parts: dict[str, Part] = {}
    for stem in stems:
        if stem in fixed:
            parts[stem] = fixed[stem]
        elif stem == "drums":
            parts[stem] = drum_part(rng, style, bars, grid)
        elif stem == "percussion":
            parts[stem] = percussion_part(rng, style, bars, grid)
        elif stem == "vocals":
            parts[stem] = vocal_part(rng, bars, grid, scale)
        elif stem == "bass":
            parts[stem] = bass_part(rng, style, bars, grid, choose_program(rng, style, stem))
        elif stem == "guitars":
            parts[stem] = guitar_part(rng, style, bars, grid, choose_program(rng, style, stem))
        elif stem == "keyboards":
            parts[stem] = keyboard_part(rng, style, bars, grid, choose_program(rng, style, stem))
        elif stem == "synthesizers":
            program = choose_program(rng, style, stem)
            if rng.random() < 0.3:
                program = int(rng.choice(SYNTH_LEADS + SYNTH_PADS))
            parts[stem] = synth_part(rng, style, bars, grid, program)
        elif stem == "orchestral":
            program = choose_program(rng, style, stem)
            if rng.random() < 0.25:
                program = int(rng.choice(ORCHESTRAL_PADS + ORCHESTRAL_LINES + (45,)))
            parts[stem] = orchestral_part(rng, style, bars, grid, program, scale)
    place_in_mix(rng, parts)
    return parts


def place_in_mix(rng, parts: dict[str, Part]) -> None:
    """Draw each part's level (dB) and pan: vocals, bass and kick centred, harmony instruments spread."""
    side = float(rng.choice([-1.0, 1.0]))
    sides = {"guitars": side, "keyboards": -side, "percussion": -side, "synthesizers": side, "orchestral": -side}
    for stem, part in parts.items():
        part.level_db = BASE_LEVEL_DB[stem] + float(rng.uniform(-2.5, 2.5))
        if stem in sides:
            part.pan = sides[stem] * float(rng.uniform(0.15, 0.6))
        elif stem == "drums":
            part.pan = float(rng.uniform(-0.05, 0.05))


def compose(seed: int, seconds: float, rng: np.random.Generator | None = None) -> Arrangement:
    """A procedural song of ``seconds`` seconds: style, key, tempo, form, chords and a part per present stem."""
    rng = rng if rng is not None else np.random.default_rng(seed)
    style = STYLES[str(rng.choice(sorted(STYLES)))]
    tempo = int(rng.integers(style.tempo[0], style.tempo[1] + 1))
    mode = str(rng.choice(style.modes))
    tonic = int(rng.integers(12))
    grid = Grid(tempo, style.beats_per_bar, style.swing, rng)
    n_bars = int(math.ceil(seconds / (grid.step_seconds * grid.steps_per_bar))) + 1
    bars = plan_bars(rng, style, tonic, mode, n_bars)
    scale = scale_pitch_classes(tonic, mode)
    stems = choose_stems(rng, style)
    parts = build_parts(rng, style, bars, grid, scale, stems)
    add_other_part(seed, parts, style, bars, grid, scale)
    return Arrangement(
        seed=seed, seconds=seconds, source="procedural", style=style.name, tempo=float(tempo),
        beats_per_bar=style.beats_per_bar, key=f"{NOTE_NAMES[tonic]} {mode}",
        chords=describe_chords(bars, grid, seconds), sections=describe_sections(bars, grid, seconds), parts=parts)


def describe_chords(bars: list[Bar], grid: Grid, seconds: float) -> list[dict]:
    return [{"bar": b.index, "time": round(b.index * grid.steps_per_bar * grid.step_seconds, 4), "chord": b.chord.name}
            for b in bars if b.index * grid.steps_per_bar * grid.step_seconds < seconds]


def describe_sections(bars: list[Bar], grid: Grid, seconds: float) -> list[dict]:
    return [{"name": b.section, "start_bar": b.index, "bars": b.section_bars,
             "time": round(b.index * grid.steps_per_bar * grid.step_seconds, 4)}
            for b in bars if b.is_section_start and b.index * grid.steps_per_bar * grid.step_seconds < seconds]
