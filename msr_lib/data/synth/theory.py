"""Just enough music theory for procedural songs: modes, diatonic chords, chord names, note names."""
from __future__ import annotations

NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

#: Semitone steps of the modes a song can be in.
MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}

#: Chord progressions as 0-based scale degrees (0 = tonic), per mode family.
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 0), (0, 2, 3, 4), (3, 0, 4, 5),
              (0, 3, 0, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4), (5, 6, 0, 0)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 2, 3, 6)),
    "mixolydian": ((0, 6, 3, 0), (0, 3, 6, 3), (0, 4, 6, 3)),
}

_QUALITIES = {
    (4, 7): "", (3, 7): "m", (3, 6): "dim", (4, 8): "aug",
    (4, 7, 11): "maj7", (4, 7, 10): "7", (3, 7, 10): "m7", (3, 6, 10): "m7b5", (3, 6, 9): "dim7", (3, 7, 11): "mMaj7",
}


def scale_pitch_classes(tonic: int, mode: str) -> list[int]:
    """The 7 pitch classes of ``mode`` on ``tonic`` (0 = C)."""
    return [(tonic + step) % 12 for step in MODES[mode]]


def diatonic_chord(tonic: int, mode: str, degree: int, size: int = 3) -> list[int]:
    """Stack thirds inside the scale from ``degree``: semitone offsets from the tonic, root first, ascending."""
    steps = MODES[mode]
    out = []
    for k in range(size):
        d = degree + 2 * k
        out.append(steps[d % 7] + 12 * (d // 7))
    return out


def chord_name(root_pc: int, intervals: list[int]) -> str:
    """Name a chord from its root pitch class and semitone intervals above the root (``Am7``, ``F``, ``Bdim``)."""
    key = tuple(sorted({i % 12 for i in intervals if i % 12}))
    return NOTE_NAMES[root_pc % 12] + _QUALITIES.get(key, "")


def note_name(midi: int) -> str:
    """MIDI note number → scientific pitch name (60 → ``C4``)."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def midi_to_hz(midi):
    """MIDI note number (float allowed) → frequency in Hz (A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)
