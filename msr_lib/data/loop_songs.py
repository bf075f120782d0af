"""The real-recordings development set: songs assembled from the recorded loops and one-shots of Debian's
``lmms-common`` (``/usr/share/lmms/samples``).

**Kept apart.** These songs are for scoring only: never train on them, never tune a setting or pick a checkpoint on
them (the synthetic validation songs are for that). Seeds: training 1000, validation 2000, synthetic test 3000,
this development set :data:`DEV_SET_SEED` (4000). :func:`build_loop_songs` refuses to write into the training or
validation song folders of :func:`msr_lib.environment.data_dir`, and every ``song.json`` says what the set is for.

**Which file is which stem** (:data:`SAMPLE_CLASSES`, matched on ``<folder>/<name without extension>``): drum loops
(``beats``) → drums; bass loops and bass one-shots (``bassloops``, ``basses``, slap bass) → bass; the synth loops in
``bassloops`` (``techno_synth*``, above 150 Hz) and the synth pads and string machines → synthesizers; pianos,
e-pianos and organs → keyboards; steel guitars and the latin guitar loops → guitars; cello, violins, flute, trumpet
and ``strings01`` → orchestral; shakers, wood block and claves → percussion; sound effects, applause, crowd, breath
and bells → ``other``. There are no vocals in ``lmms-common`` (the choir pads are left out: sung or synthesised, the
package does not say), so these songs have no vocals stem. Files libsndfile cannot read (``harpsichord01``,
``scratch01``, ``wind_chimes01`` and ``hit01`` have malformed headers) are left out.

**Loop tempo.** A loop is a whole number of 4/4 bars: its native tempo is ``240 · bars / length`` BPM with ``bars``
the one of 1, 2, 4, 8 that puts the tempo in 70–180 BPM, nearest 120 BPM on a log scale when several do
(:func:`loop_tempo`; ``break01``, 1.44 s → 1 bar at 166.8 BPM; ``909beat01``, 3.95 s → 2 bars at 121.5 BPM).

**A song.** Its drum loop (a family — ``rave``, ``break``, ``909beat``… — drawn uniformly, then a file; layered with
loops of the other kinds of the same tempo, e.g. ``rave_kick`` + ``rave_hihat`` + ``rave_snare``) sets the tempo
(the loop's own, ×0.94–1.06); loops are tempo-matched to the song by number of bars (the bar count nearest a
stretch of 1): drum loops by resampling (transients stay sharp; the pitch moves by about a semitone at most,
harmless for unpitched sounds), pitched loops (bass, synth, guitar) by
a phase-vocoder time stretch that keeps the pitch (``librosa.effects.time_stretch``), so a loop stays in the song's
key: the key's tonic is the root of the song's pitched loop (at most one per song). Pitched one-shots play a
diatonic chord progression (or a line of chord and scale tones) on an eighth-note grid, pitch-shifted by
resampling from their root (f0 estimated once per file with YIN, cached; one-shots whose pitch wanders more than
a semitone are left out) to the target note placed within −6…+5 semitones of the root, so no note is shifted by
more than half an octave. Percussion one-shots play a rhythm as recorded; effects (``other``) sound at the start
of a few bars. Levels (:data:`LEVEL_DB`, dB of active RMS, uniform jitter inside each class's range)
follow real mixes: drums and bass loud, pads and effects low; pans (:data:`PAN_RANGE`), a 30 ms release fade on
every note and a 50 ms fade at the song's end. Several parts of one class are summed into that class's stem; the
clean mix is the exact sum of the stems after a 24-bit FLAC round trip (the rule of :mod:`msr_lib.data.synth.song`).
"""
from __future__ import annotations

import fnmatch
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msr_lib.audio import (
    SAMPLE_RATE, SILENT_PEAK, atomic_output_dir, fit_length, load_audio, read_json_object, resample, save_audio,
)
from msr_lib.data.datasets import DEVELOPMENT_SET_GENERATOR
from msr_lib.data.synth.song import FADE_OUT_SECONDS, REFERENCE_RMS, active_rms, exact_mix, pan_gains
from msr_lib.errors import MSRError

LMMS_SAMPLES = Path("/usr/share/lmms/samples")
LMMS_PACKAGE = "lmms-common"
#: The seed of the development set (training 1000, validation 2000, synthetic test songs 3000).
DEV_SET_SEED = 4000
PURPOSE = "development set of real recordings: scoring only, never training or tuning"

#: ``(pattern on "<folder>/<name>", stem, kind, role)``, first match wins; unmatched files are not used.
#: Kinds: ``loop`` (tempo-matched and repeated) or ``one_shot`` (placed on the grid). Roles say how a part plays.
SAMPLE_CLASSES: tuple[tuple[str, str, str, str], ...] = (
    ("beats/*", "drums", "loop", "beat"),
    ("bassloops/techno_synth*", "synthesizers", "loop", "riff"),
    ("bassloops/*", "bass", "loop", "riff"),
    ("basses/*", "bass", "one_shot", "bass"),
    ("instruments/bassslap*", "bass", "one_shot", "bass"),
    ("instruments/*piano*", "keyboards", "one_shot", "comp"),
    ("instruments/*organ*", "keyboards", "one_shot", "chords"),
    ("instruments/steel_guitar*", "guitars", "one_shot", "comp"),
    ("latin/latin_guitar*", "guitars", "loop", "riff"),
    ("instruments/cello*", "orchestral", "one_shot", "line"),
    ("instruments/violin*", "orchestral", "one_shot", "line"),
    ("instruments/flute*", "orchestral", "one_shot", "line"),
    ("instruments/trumpet*", "orchestral", "one_shot", "line"),
    ("stringsnpads/strings*", "orchestral", "one_shot", "chords"),
    ("stringsnpads/*strings*", "synthesizers", "one_shot", "chords"),
    ("stringsnpads/orion_string*", "synthesizers", "one_shot", "chords"),
    ("stringsnpads/juno_pad*", "synthesizers", "one_shot", "chords"),
    ("drums/shaker*", "percussion", "one_shot", "hits"),
    ("drums/wood*", "percussion", "one_shot", "hits"),
    ("drums/clav*", "percussion", "one_shot", "hits"),
    ("effects/*", "other", "one_shot", "effect"),
    ("misc/applause*", "other", "one_shot", "effect"),
    ("misc/raving_crowd*", "other", "one_shot", "effect"),
    ("misc/breath*", "other", "one_shot", "effect"),
    ("misc/*dong*", "other", "one_shot", "effect"),
)
#: Per-class level range (dB of active RMS relative to a reference, before the song is normalised).
LEVEL_DB: dict[str, tuple[float, float]] = {
    "drums": (-2.0, 0.0), "bass": (-4.0, -1.0), "guitars": (-9.0, -4.0), "keyboards": (-10.0, -5.0),
    "synthesizers": (-13.0, -7.0), "orchestral": (-10.0, -5.0), "percussion": (-15.0, -9.0), "other": (-18.0, -10.0),
}
#: Per-class pan range (−1 left … +1 right), drawn uniformly.
PAN_RANGE: dict[str, float] = {"drums": 0.05, "bass": 0.05, "guitars": 0.6, "keyboards": 0.5, "synthesizers": 0.6,
                               "orchestral": 0.6, "percussion": 0.7, "other": 0.5}
#: Probability that a song has a part of a class (drums always; a class without usable files is left out).
PART_CHANCE: dict[str, float] = {"bass": 0.9, "guitars": 0.5, "keyboards": 0.7, "synthesizers": 0.5,
                                 "orchestral": 0.5, "percussion": 0.5, "other": 0.4}
#: Chance that a drum loop of another kind and the same tempo is layered on the song's drum loop.
LAYER_CHANCE = 0.7
LOOP_BARS = (1, 2, 4, 8)
TEMPO_RANGE = (70.0, 180.0)
MAX_STRETCH = 1.25           # a pitched loop is used only if its stretch lies in [1/MAX_STRETCH, MAX_STRETCH]
PITCH_WANDER_SEMITONES = 1.0
RELEASE_SECONDS = 0.03
_TEMPO_JITTER = 0.06

#: Onsets within a 4/4 bar, in beats, per role.
_PATTERNS: dict[str, tuple[tuple[float, ...], ...]] = {
    "comp": ((0.0, 1.0, 2.0, 3.0), (0.0, 1.5, 2.0, 3.0), (0.0, 2.5), (0.5, 1.5, 2.5, 3.5)),
    "chords": ((0.0,), (0.0, 2.0)),
    "bass": ((0.0, 2.0), (0.0, 1.5, 2.0, 3.5), (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5), (0.0, 0.75, 2.0, 2.5)),
    "hits": ((0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5), (0.0, 0.75, 1.5, 2.5, 3.0), (0.5, 1.5, 2.5, 3.5)),
}


@dataclass(frozen=True, kw_only=True)
class LoopSample:
    """One usable file of the samples folder: ``<folder>/<name>``, path, length, stem, kind and role."""

    name: str
    path: Path
    seconds: float
    stem: str
    kind: str
    role: str


def sample_class(name: str) -> tuple[str, str, str] | None:
    """``(stem, kind, role)`` for a sample named ``<folder>/<name without extension>``, or ``None`` if unused."""
    for pattern, stem, kind, role in SAMPLE_CLASSES:
        if fnmatch.fnmatchcase(name, pattern):
            return stem, kind, role
    return None


def check_samples_dir(samples_dir) -> Path:
    samples_dir = Path(samples_dir)
    if not samples_dir.is_dir():
        raise MSRError(f"{samples_dir}: no samples folder; install the Debian package {LMMS_PACKAGE} "
                       f"(apt-get install {LMMS_PACKAGE}) or pass samples_dir")
    return samples_dir


def catalogue(samples_dir=LMMS_SAMPLES) -> list[LoopSample]:
    """The usable files of a samples folder in a fixed order: classified by :data:`SAMPLE_CLASSES`, readable by
    libsndfile; loops with a tempo (:func:`loop_tempo`), pitched one-shots with one pitch (:func:`root_hz`)."""
    import soundfile as sf

    from msr_lib.audio import AUDIO_EXTENSIONS

    samples_dir = check_samples_dir(samples_dir)
    found = []
    for path in sorted(p for p in samples_dir.glob("*/*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        name = f"{path.parent.name}/{path.stem}"
        cls = sample_class(name)
        if cls is None:
            continue
        try:
            seconds = sf.info(str(path)).duration
        except Exception:           # a malformed header (documented in the module docstring): not used
            continue
        stem, kind, role = cls
        if kind == "loop" and loop_tempo(seconds) is None:
            continue
        if kind == "one_shot" and role not in ("effect", "hits") and root_hz(path) is None:
            continue
        found.append(LoopSample(name=name, path=path, seconds=seconds, stem=stem, kind=kind, role=role))
    if not any(s.stem == "drums" and s.kind == "loop" for s in found):
        raise MSRError(f"{samples_dir}: no drum loop (beats/*) found; install {LMMS_PACKAGE} or pass samples_dir")
    return found


def loop_tempo(seconds: float) -> tuple[int, float] | None:
    """``(bars, BPM)`` of a 4/4 loop of ``seconds``: the bar count of :data:`LOOP_BARS` whose tempo lies in
    :data:`TEMPO_RANGE`, nearest 120 BPM on a log scale; ``None`` when no bar count fits."""
    fits = [(bars, 240.0 * bars / seconds) for bars in LOOP_BARS]
    fits = [(bars, bpm) for bars, bpm in fits if TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]]
    if not fits:
        return None
    return min(fits, key=lambda f: abs(math.log(f[1] / 120.0)))


@functools.lru_cache(maxsize=None)
def _load(path: Path) -> np.ndarray:
    return load_audio(path)


@functools.lru_cache(maxsize=None)
def root_hz(path: Path) -> float | None:
    """The fundamental of a one-shot or pitched loop (median YIN f0 over its loud frames of the first 3 s), or
    ``None`` when the pitch wanders more than :data:`PITCH_WANDER_SEMITONES` (a phrase, not one note)."""
    import librosa

    mono = _load(path).mean(axis=0)[: 3 * SAMPLE_RATE]
    f0 = librosa.yin(mono, fmin=30.0, fmax=2000.0, sr=SAMPLE_RATE, frame_length=4096, hop_length=512)
    rms = librosa.feature.rms(y=mono, frame_length=4096, hop_length=512)[0]
    n = min(f0.size, rms.size)
    midi = librosa.hz_to_midi(f0[:n][rms[:n] > 0.1 * rms.max()])
    if midi.size == 0:
        return None
    centre = float(np.median(midi))
    if np.percentile(np.abs(midi - centre), 75) > PITCH_WANDER_SEMITONES:
        return None
    return float(librosa.midi_to_hz(centre))


def stretch_loop(audio: np.ndarray, length: int, *, keep_pitch: bool) -> np.ndarray:
    """A loop brought to exactly ``length`` samples: phase-vocoder time stretch (pitch kept) or resampling."""
    if keep_pitch:
        import librosa

        rate = audio.shape[1] / length
        stretched = np.stack([librosa.effects.time_stretch(channel, rate=rate) for channel in audio])
    else:
        stretched = resample(audio, SAMPLE_RATE, SAMPLE_RATE * length / audio.shape[1])
    return fit_length(stretched.astype(np.float32), length)


def shift_pitch(audio: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    """A one-shot played at ``to_hz`` instead of ``from_hz``: resampled (shorter when higher, like a sampler)."""
    return resample(audio, SAMPLE_RATE, SAMPLE_RATE * from_hz / to_hz)


def _trim_start(audio: np.ndarray) -> np.ndarray:
    """A one-shot from its first sample above 1 % of its peak, so its onset lands on the grid."""
    level = np.abs(audio).max(axis=0)
    return audio[:, int(np.argmax(level > 0.01 * level.max())):]


def _place(out: np.ndarray, note: np.ndarray, start: int, length: int) -> None:
    """Add ``note`` cut to ``length`` samples with a release fade, at ``start`` (clipped to ``out``)."""
    if start >= out.shape[1]:
        return
    note = note[:, :min(length, out.shape[1] - start)].copy()
    fade = min(int(RELEASE_SECONDS * SAMPLE_RATE), note.shape[1])
    if fade:
        note[:, note.shape[1] - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    out[:, start:start + note.shape[1]] += note


def _near_root(pitch_class: int, root_midi: float) -> int:
    """The MIDI note of ``pitch_class`` within −6…+5 semitones of ``root_midi``."""
    base = int(round(root_midi))
    return base + (pitch_class - base + 6) % 12 - 6


@dataclass(kw_only=True)
class _Plan:
    rng: np.random.Generator
    tempo: float
    n_samples: int
    bars: int
    tonic: int
    mode: str
    chords: list[list[int]]          # per bar: semitone offsets from the tonic

    def at(self, bar: int, beat: float) -> int:
        return int(round((bar * 4 + beat) * 60.0 / self.tempo * SAMPLE_RATE))


def _loop_bars(samples: int, tempo: float) -> int:
    """The bar count (:data:`LOOP_BARS`) that asks a loop of ``samples`` samples for the stretch nearest 1 at
    ``tempo``."""
    return min(LOOP_BARS, key=lambda b: abs(math.log(samples / (b * 240.0 / tempo * SAMPLE_RATE))))


def _stretch_of(sample: LoopSample, tempo: float) -> float:
    samples = _load(sample.path).shape[1]
    return _loop_bars(samples, tempo) * 240.0 / tempo * SAMPLE_RATE / samples


def _render_loop(sample: LoopSample, plan: _Plan) -> tuple[np.ndarray, dict]:
    audio = _load(sample.path)
    bars = _loop_bars(audio.shape[1], plan.tempo)
    period = bars * 240.0 / plan.tempo * SAMPLE_RATE
    length = int(round(period))
    keep_pitch = sample.role != "beat"
    tile = stretch_loop(audio, length, keep_pitch=keep_pitch)
    out = np.zeros((2, plan.n_samples), np.float32)
    for k in range(int(math.ceil(plan.n_samples / period))):
        start = int(round(k * period))                  # no drift: each repetition starts on its own bar line
        piece = tile[:, : out.shape[1] - start]
        out[:, start:start + piece.shape[1]] += piece
    facts = {"bars": bars, "stretch": round(length / audio.shape[1], 5), "loop_samples": length,
             "method": "time_stretch (pitch kept)" if keep_pitch else "resample"}
    return out, facts


def _line(plan: _Plan, root_midi: float) -> list[tuple[int, float, float, int]]:
    """``(bar, beat, beats long, MIDI)`` of a simple line: chord tones on strong beats, scale steps between."""
    from msr_lib.data.synth.theory import scale_pitch_classes

    scale = scale_pitch_classes(plan.tonic, plan.mode)
    rng = plan.rng
    notes, degree = [], 0
    for bar in range(plan.bars):
        beat = 0.0
        while beat < 4.0:
            length = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            length = min(length, 4.0 - beat)
            if rng.random() < 0.2 and beat > 0:
                beat += length                                   # a rest
                continue
            if beat in (0.0, 2.0):
                pc = (plan.tonic + int(rng.choice(plan.chords[bar]))) % 12
                degree = scale.index(pc) if pc in scale else degree
            else:
                degree = (degree + int(rng.choice([-2, -1, 1, 2]))) % 7
                pc = scale[degree]
            notes.append((bar, beat, length, _near_root(pc, root_midi)))
            beat += length
    return notes


def _render_one_shots(sample: LoopSample, plan: _Plan) -> tuple[np.ndarray, dict]:
    rng = plan.rng
    audio = _trim_start(_load(sample.path))
    out = np.zeros((2, plan.n_samples), np.float32)
    facts: dict = {"method": "as recorded" if sample.role in ("effect", "hits") else "pitch shift by resampling"}
    if sample.role == "effect":
        bars = sorted({int(b) for b in rng.choice(plan.bars, size=max(1, plan.bars // 4), replace=False)})
        for bar in bars:
            _place(out, audio, plan.at(bar, 0.0), audio.shape[1])
        facts["notes"] = [[round(plan.at(b, 0.0) / SAMPLE_RATE, 6), None, None] for b in bars]
        return out, facts
    root = root_hz(sample.path) if sample.role != "hits" else None
    root_midi = 69.0 + 12.0 * math.log2(root / 440.0) if root else 0.0
    facts["root_hz"] = round(root, 3) if root else None
    if sample.role == "line":
        events = _line(plan, root_midi)
    else:
        pattern = _PATTERNS[sample.role][int(rng.integers(len(_PATTERNS[sample.role])))]
        events = []
        for bar in range(plan.bars):
            chord = plan.chords[bar]
            if sample.role == "bass":
                pitches = [_near_root((plan.tonic + chord[0]) % 12, root_midi)]
            elif sample.role == "hits":
                pitches = [None]
            else:
                pitches = sorted({_near_root((plan.tonic + c) % 12, root_midi) for c in chord})
            for i, beat in enumerate(pattern):
                nxt = pattern[i + 1] if i + 1 < len(pattern) else 4.0
                events.extend((bar, beat, nxt - beat, p) for p in pitches)
    notes = []
    cache: dict[int | None, np.ndarray] = {}
    for bar, beat, beats, pitch in events:
        if pitch not in cache:
            cache[pitch] = audio if pitch is None else shift_pitch(audio, root, 440.0 * 2 ** ((pitch - 69) / 12))
        start = plan.at(bar, beat)
        gain = 10 ** ((rng.uniform(-3.0, 0.0) + (1.5 if beat == 0.0 else 0.0)) / 20)
        _place(out, cache[pitch] * np.float32(gain), start, plan.at(bar, beat + beats) - start)
        notes.append([round(start / SAMPLE_RATE, 6), round(plan.at(bar, beat + beats) / SAMPLE_RATE, 6), pitch])
    facts["notes"] = notes
    return out, facts




def _loop_kind(sample: LoopSample) -> str:
    """A loop's name without its number (``beats/rave_kick02`` → ``beats/rave_kick``)."""
    return sample.name.rstrip("0123456789")


def _choose_parts(rng: np.random.Generator, samples: list[LoopSample]):
    """``(parts, tempo, pitched loop or None)`` of one song: one drum loop (a family, the name up to its first
    ``_``, drawn uniformly, then a file of it), layered by :data:`LAYER_CHANCE` with
    one loop of each other kind of the same tempo (±3 %: ``rave_kick`` + ``rave_hihat`` + ``rave_snare``), whose
    tempo, jittered, is the song's; then per class, by :data:`PART_CHANCE`, a loop or a
    one-shot part; at most one pitched loop, and only one whose stretch is within :data:`MAX_STRETCH`."""
    from msr_lib.stems import STEMS

    by_stem: dict[str, list[LoopSample]] = {}
    for s in samples:
        by_stem.setdefault(s.stem, []).append(s)
    beats = [s for s in by_stem["drums"] if s.kind == "loop"]
    families = sorted({_loop_kind(s).split("_")[0] for s in beats})      # beats/rave, beats/break, beats/909beat…
    family = families[int(rng.integers(len(families)))]
    members = [s for s in beats if _loop_kind(s).split("_")[0] == family]
    first = members[int(rng.integers(len(members)))]
    parts = [first]
    native = loop_tempo(first.seconds)[1]
    for kind in sorted({_loop_kind(s) for s in beats} - {_loop_kind(first)}):
        layers = [s for s in beats if _loop_kind(s) == kind and abs(loop_tempo(s.seconds)[1] / native - 1) < 0.03]
        if layers and rng.random() < LAYER_CHANCE:
            parts.append(layers[int(rng.integers(len(layers)))])
    tempo = float(np.clip(native * rng.uniform(1 - _TEMPO_JITTER, 1 + _TEMPO_JITTER), *TEMPO_RANGE))
    pitched_loop = None
    for stem in [s for s in STEMS if s in PART_CHANCE]:
        if stem not in by_stem or rng.random() >= PART_CHANCE[stem]:
            continue
        loops = [s for s in by_stem[stem]
                 if s.kind == "loop" and 1 / MAX_STRETCH <= _stretch_of(s, tempo) <= MAX_STRETCH]
        shots = [s for s in by_stem[stem] if s.kind == "one_shot"]
        use_loop = bool(loops) and pitched_loop is None and (not shots or rng.random() < 0.5)
        pool = loops if use_loop else shots
        if not pool:
            continue
        choice = pool[int(rng.integers(len(pool)))]
        if use_loop:
            pitched_loop = choice
        parts.append(choice)
    return parts, tempo, pitched_loop


def render_loop_song(seed: int, seconds: float,
                     samples: list[LoopSample]) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """One song in memory from a :func:`catalogue`: ``(stems, clean_mix, facts)``; the same seed gives the same
    samples."""
    from msr_lib import __version__
    from msr_lib.data.synth.theory import NOTE_NAMES, PROGRESSIONS, chord_name, diatonic_chord
    from msr_lib.stems import STEMS

    rng = np.random.default_rng(seed)
    parts, tempo, pitched_loop = _choose_parts(rng, samples)
    mode = str(rng.choice(["major", "minor"]))
    if pitched_loop is not None and root_hz(pitched_loop.path) is not None:
        tonic = int(round(69 + 12 * math.log2(root_hz(pitched_loop.path) / 440.0))) % 12
    else:
        tonic = int(rng.integers(12))
    progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    n_samples = int(round(seconds * SAMPLE_RATE))
    bars = int(math.ceil(seconds * tempo / 240.0))
    chords = [diatonic_chord(tonic, mode, progression[b % len(progression)]) for b in range(bars)]
    plan = _Plan(rng=rng, tempo=tempo, n_samples=n_samples, bars=bars, tonic=tonic, mode=mode, chords=chords)

    fade = np.linspace(1.0, 0.0, min(int(FADE_OUT_SECONDS * SAMPLE_RATE), n_samples), dtype=np.float32)
    stems: dict[str, np.ndarray] = {}
    records = []
    for sample in parts:
        audio, facts = (_render_loop if sample.kind == "loop" else _render_one_shots)(sample, plan)
        audio[:, n_samples - fade.size:] *= fade
        rms = active_rms(audio)
        if rms <= SILENT_PEAK:
            continue
        level_db = float(rng.uniform(*LEVEL_DB[sample.stem]))
        pan = float(rng.uniform(-PAN_RANGE[sample.stem], PAN_RANGE[sample.stem]))
        gain = REFERENCE_RMS * 10 ** (level_db / 20) / rms
        placed = audio * pan_gains(pan) * np.float32(gain)
        stems[sample.stem] = stems.get(sample.stem, 0) + placed
        records.append({"stem": sample.stem, "file": sample.name + sample.path.suffix, "kind": sample.kind,
                        "role": sample.role, "level_db": round(level_db, 2), "pan": round(pan, 3), "gain": gain,
                        **facts})

    stems = {s: stems[s] for s in STEMS if s in stems}
    stems, clean_mix, scale = exact_mix(stems)
    for record in records:
        record["gain"] = round(float(record["gain"] * scale), 6)
    info = {
        "generator": DEVELOPMENT_SET_GENERATOR, "purpose": PURPOSE, "library_version": __version__, "seed": int(seed),
        "tempo": tempo, "key": f"{NOTE_NAMES[tonic]} {mode}", "meter": "4/4", "seconds": float(seconds),
        "sample_rate": SAMPLE_RATE, "stems": list(stems), "omitted": [s for s in STEMS if s not in stems],
        "chords": [chord_name((tonic + c[0]) % 12, [x - c[0] for x in c]) for c in chords],
        "parts": records,
        "instruments": {stem: {"sound_source": LMMS_PACKAGE,
                               "files": [r["file"] for r in records if r["stem"] == stem]} for stem in stems},
    }
    return stems, clean_mix, info


def _refuse_training_folder(out_dir: Path) -> None:
    from msr_lib.environment import data_dir

    resolved = out_dir.resolve()
    root = data_dir().resolve()
    for parent in (resolved, *resolved.parents):
        if parent.parent == root and parent.name.startswith(("train", "valid", "runs")):
            raise MSRError(f"{out_dir}: is inside the training data ({parent}); the development set is kept apart")


def build_loop_songs(out_dir, *, songs: int, seconds: float, seed: int, samples_dir=LMMS_SAMPLES,
                     skip_existing: bool = False, progress: bool = False) -> list[Path]:
    """Write ``songs`` songs of ``seconds`` seconds assembled from the recordings in ``samples_dir`` into
    ``out_dir/<song_id>/`` (``<stem>.flac``, ``clean_mix.flac``, ``song.json``; each folder written atomically) and
    return their folders. Deterministic for a seed. ``skip_existing`` keeps folders a previous run wrote for the
    same seed and length. For scoring only (module docstring)."""
    from tqdm.auto import tqdm

    from msr_lib.data.synth.batch import CLEAN_MIX_FILE, song_id, song_seed

    if not isinstance(songs, (int, np.integer)) or songs < 1:
        raise MSRError(f"songs must be at least 1, got {songs!r}")
    if not isinstance(seconds, (int, float)) or not np.isfinite(seconds) or seconds <= 0:
        raise MSRError(f"seconds must be a positive number, got {seconds!r}")
    out_dir = Path(out_dir)
    _refuse_training_folder(out_dir)
    samples = catalogue(samples_dir)
    folders = []
    for index in tqdm(range(songs), desc="loop songs", unit="song", disable=not progress):
        folder = out_dir / song_id(seed, index)
        if skip_existing and (folder / CLEAN_MIX_FILE).is_file():
            try:
                done = read_json_object(folder / "song.json").get("seconds") == float(seconds)
            except MSRError:  # rendered again
                done = False
            if done:
                folders.append(folder)
                continue
        stems, clean_mix, info = render_loop_song(song_seed(seed, index), float(seconds), samples)
        info = {"song_id": folder.name, "index": index, "base_seed": int(seed), **info,
                "samples_dir": str(samples_dir)}
        with atomic_output_dir(folder) as tmp:
            for stem, audio in stems.items():
                save_audio(tmp / f"{stem}.flac", audio)
            save_audio(tmp / CLEAN_MIX_FILE, clean_mix)
            (tmp / "song.json").write_text(json.dumps(info, indent=1))
        folders.append(folder)
    return folders
