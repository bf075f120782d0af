"""Spectrograms of the singing voices: one 4-bar melody sung by every kind in every register, plus the layers.

    python scripts/plot_voices.py --out voices.png [--wav-dir voices/] [--registers tenor alto]

Rows: the registers of ``msr_lib.data.synth.voice.REGISTERS`` (the melody moved by octaves into each one's range),
then a tenor and an alto with a doubled take and a harmony in thirds. Columns: the kinds (``VOICE_KINDS``). Every
voice has the same plain settings (vibrato 5.5 Hz ±45 cents after 0.25 s, breathiness 0.08), so the panels differ
only by how the sound is made and by the register. Linear frequency up to 6 kHz, where harmonics and formants show.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

BPM = 100
#: (beat, beats, scale step above the tonic, syllable): four bars of 4/4 with a long note to show vibrato.
MELODY = [(0, 1, 0, "la"), (1, 1, 2, "da"), (2, 1, 4, "mi"), (3, 1, 5, "so"),
          (4, 3, 4, "tu"), (7.5, 0.5, 2, "ke"),
          (8, 1, 1, "no"), (9, 0.5, 2, "wi"), (9.5, 0.5, 4, "ye"), (10, 2, 7, "ha"),
          (12, 4, 4, "sa")]
MAJOR = (0, 2, 4, 5, 7, 9, 11)


def melody_notes(tonic: int) -> list:
    """:data:`MELODY` on ``tonic`` (MIDI) as arrangement notes, with a rest at the start and at the end."""
    from msr_lib.data.synth.arrangement import Note

    beat = 60.0 / BPM
    return [Note(0.25 + start * beat, 0.25 + (start + length) * beat - 0.04,
                 tonic + 12 * (step // 7) + MAJOR[step % 7], 95, syllable)
            for start, length, step, syllable in MELODY]


def plain_voice(kind: str, register: str, *, layered: bool = False) -> dict:
    """The plot's voice settings for one kind and register (optionally doubled, with a harmony in thirds)."""
    from msr_lib.data.synth.voice import VOWEL_SHADES

    voice = {"kind": kind, "register": register, "vowels": {v: v for v in VOWEL_SHADES}, "vibrato_hz": 5.5,
             "vibrato_cents": 45.0, "vibrato_delay": 0.25, "breathiness": 0.08,
             "double": 0.8 if layered else 0.0, "spread": 0.6, "harmony": "third" if layered else "",
             "harmony_level": 0.6 if layered else 0.0, "harmony_phrases": 1.0 if layered else 0.0}
    voice.update({"open_quotient": 0.6, "closing": 0.3} if kind == "glottal" else {"brightness": 0.4})
    if kind == "additive":
        voice["shimmer_db"] = 1.0
    return voice


def render_all(seed: int = 0, registers=None) -> list[tuple[str, dict, np.ndarray]]:
    """(panel title, voice, stereo audio) for every panel, row by row: each of ``registers`` (default: all), then
    the tenor and the alto among them layered."""
    from msr_lib.audio import SAMPLE_RATE
    from msr_lib.data.synth.voice import REGISTERS, VOICE_KINDS, render_vocals

    registers = list(registers or REGISTERS)
    rows = [(name, name, False) for name in registers] + [(name, f"{name}, doubled + harmony", True)
                                                          for name in ("tenor", "alto") if name in registers]
    seconds = 0.25 + max(start + length for start, length, _, _ in MELODY) * 60.0 / BPM + 0.5
    panels = []
    for register, label, layered in rows:
        low, high = REGISTERS[register]["range"]
        tonic = low + (high - low - 12) // 2                       # the melody spans an octave: centre it
        notes = melody_notes(tonic)
        for kind in VOICE_KINDS:
            voice = plain_voice(kind, register, layered=layered)
            audio = render_vocals(notes, int(seconds * SAMPLE_RATE), np.random.default_rng(seed), voice)
            panels.append((f"{kind} · {label}", voice, audio))
    return panels


def plot(panels, out: Path) -> None:
    """Draw the panels as a grid of spectrograms (one column per kind) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from msr_lib.audio import atomic_file
    from msr_lib.data.synth.voice import VOICE_KINDS
    from msr_lib.plots import plot_spectrogram

    cols = len(VOICE_KINDS)
    rows = len(panels) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 2.6 * rows), squeeze=False, sharex=True, sharey=True)
    for ax, (title, _, audio) in zip(axes.flat, panels):
        peak = float(np.abs(audio).max())
        plot_spectrogram(ax, audio / peak * 0.5, title=title, vmin=-90, vmax=-10, log_freq=False)
        ax.set_ylim(0, 6000)
        ax.label_outer()
    fig.tight_layout()
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=80, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("voices.png"), help="the PNG to write")
    parser.add_argument("--wav-dir", type=Path, help="also write each panel's audio here as FLAC")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the performances")
    parser.add_argument("--registers", nargs="+", help="only these registers (default: all)")
    args = parser.parse_args(argv)
    from msr_lib.data.synth.voice import REGISTERS

    unknown = sorted(set(args.registers or ()) - set(REGISTERS))
    if unknown:
        parser.error(f"unknown register {unknown[0]!r}; expected one of {', '.join(REGISTERS)}")
    panels = render_all(args.seed, args.registers)
    plot(panels, args.out)
    if args.wav_dir:
        from msr_lib.audio import save_audio

        for title, _, audio in panels:
            name = title.replace(" · ", "_").replace(", ", "_").replace(" + ", "_").replace(" ", "_")
            save_audio(args.wav_dir / f"{name}.flac", audio / np.abs(audio).max() * 0.5)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
