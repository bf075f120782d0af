"""Synthesizer voices in numpy that are not General-MIDI patches: subtractive (band-limited wavetable oscillators,
detuned unison, resonant low-pass with an envelope) and two-operator FM (bells, electric piano, basses, plucks).

Every note is rendered on its own (oscillators → filter → amplitude envelope) and added into the part, so the cost
grows with the notes played, not with the song length. Oscillators read one period of a waveform built from its
harmonics up to the Nyquist frequency of the note, so nothing aliases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from msr_lib.audio import SAMPLE_RATE
from msr_lib.data.synth.theory import midi_to_hz

TABLE_SIZE = 2048
#: What a patch is for; a part's role picks among the patches made for it (see :func:`patch_role`).
ROLES = ("lead", "pad", "bass", "keys")


@dataclass(frozen=True, kw_only=True)
class SubtractivePatch:
    """Oscillators (``wave``: saw, square, pulse, triangle; ``voices`` detuned by ``detune_cents``, spread in
    stereo; a square ``sub`` octave below) → resonant low-pass (cutoff = f0 × ``cutoff_ratio``, opened to
    f0 × ``peak_ratio`` by an envelope decaying over ``filter_decay`` s) → ADSR amplitude envelope."""

    name: str
    roles: tuple[str, ...]
    wave: str
    voices: int = 1
    detune_cents: float = 0.0
    sub: float = 0.0
    cutoff_ratio: float = 3.0
    peak_ratio: float = 8.0
    filter_decay: float = 0.3
    q: float = 1.0
    attack: float = 0.005
    decay: float = 0.2
    sustain: float = 0.7
    release: float = 0.1


@dataclass(frozen=True, kw_only=True)
class FMPatch:
    """Two-operator FM: a sine carrier at f0 × ``carrier_ratio`` phase-modulated by a sine at f0 ×
    ``modulator_ratio`` with index ``index`` decaying to ``index_sustain`` × ``index`` over ``index_decay`` s."""

    name: str
    roles: tuple[str, ...]
    carrier_ratio: float = 1.0
    modulator_ratio: float = 1.0
    index: float = 2.0
    index_decay: float = 0.5
    index_sustain: float = 0.2
    attack: float = 0.002
    decay: float = 1.0
    sustain: float = 0.3
    release: float = 0.2


SUBTRACTIVE_PATCHES: tuple[SubtractivePatch, ...] = (
    SubtractivePatch(name="saw lead", roles=("lead",), wave="saw", voices=2, detune_cents=7, cutoff_ratio=3,
                     peak_ratio=10, filter_decay=0.25, q=2.0, decay=0.2, sustain=0.7, release=0.12),
    SubtractivePatch(name="square lead", roles=("lead",), wave="square", cutoff_ratio=4, peak_ratio=8, q=1.5,
                     sustain=0.8, release=0.1),
    SubtractivePatch(name="pulse pluck", roles=("lead",), wave="pulse", cutoff_ratio=2.5, peak_ratio=14,
                     filter_decay=0.12, q=4.0, attack=0.002, decay=0.15, sustain=0.3, release=0.08),
    SubtractivePatch(name="supersaw pad", roles=("pad",), wave="saw", voices=5, detune_cents=14, cutoff_ratio=2.5,
                     peak_ratio=4, filter_decay=1.5, q=0.9, attack=0.5, decay=1.0, sustain=0.8, release=0.8),
    SubtractivePatch(name="warm pad", roles=("pad",), wave="triangle", voices=3, detune_cents=6, cutoff_ratio=4,
                     peak_ratio=6, filter_decay=2.0, attack=0.8, decay=1.0, sustain=0.85, release=1.0),
    SubtractivePatch(name="string machine", roles=("pad",), wave="saw", voices=4, detune_cents=10, cutoff_ratio=5,
                     peak_ratio=6, filter_decay=1.0, q=0.8, attack=0.25, decay=0.5, sustain=0.9, release=0.6),
    SubtractivePatch(name="acid bass", roles=("bass",), wave="saw", cutoff_ratio=1.5, peak_ratio=14,
                     filter_decay=0.18, q=6.0, attack=0.002, decay=0.2, sustain=0.5, release=0.05),
    SubtractivePatch(name="sub bass", roles=("bass",), wave="triangle", sub=0.4, cutoff_ratio=3, peak_ratio=4,
                     attack=0.004, decay=0.3, sustain=0.9, release=0.06),
    SubtractivePatch(name="square bass", roles=("bass",), wave="square", sub=0.5, cutoff_ratio=2, peak_ratio=6,
                     filter_decay=0.15, q=1.4, attack=0.002, decay=0.25, sustain=0.6, release=0.05),
)
FM_PATCHES: tuple[FMPatch, ...] = (
    FMPatch(name="fm bell", roles=("lead", "keys"), modulator_ratio=3.5, index=4.0, index_decay=1.2,
            index_sustain=0.05, decay=2.5, sustain=0.0, release=1.0),
    FMPatch(name="fm electric piano", roles=("keys",), modulator_ratio=1.0, index=1.8, index_decay=0.6,
            index_sustain=0.15, decay=1.5, sustain=0.2, release=0.3),
    FMPatch(name="fm tine piano", roles=("keys",), modulator_ratio=14.0, index=0.6, index_decay=0.08,
            index_sustain=0.0, decay=1.8, sustain=0.15, release=0.25),
    FMPatch(name="fm brass", roles=("lead",), index=3.0, index_decay=0.15, index_sustain=0.7, attack=0.06,
            decay=0.3, sustain=0.8, release=0.15),
    FMPatch(name="fm pluck", roles=("lead",), modulator_ratio=2.0, index=5.0, index_decay=0.1, index_sustain=0.0,
            decay=0.4, sustain=0.0, release=0.1),
    FMPatch(name="fm glass pad", roles=("pad",), modulator_ratio=2.0, index=1.2, index_decay=2.0,
            index_sustain=0.6, attack=0.7, decay=1.0, sustain=0.8, release=1.0),
    FMPatch(name="fm bass", roles=("bass",), index=3.0, index_decay=0.25, index_sustain=0.3, decay=0.4,
            sustain=0.5, release=0.06),
    FMPatch(name="fm slap bass", roles=("bass",), modulator_ratio=2.0, index=4.0, index_decay=0.08,
            index_sustain=0.1, decay=0.3, sustain=0.4, release=0.05),
)


def patch_role(stem: str, role: str) -> str:
    """The patch role for a part: bass for the bass stem, keys for keyboards, pad for pads, otherwise lead."""
    if stem == "bass":
        return "bass"
    if stem == "keyboards":
        return "keys"
    return "pad" if "pad" in role else "lead"


def _harmonic_amplitudes(wave: str, k: np.ndarray) -> np.ndarray:
    if wave == "saw":
        return 1.0 / k
    if wave == "square":
        return np.where(k % 2 == 1, 1.0 / k, 0.0)
    if wave == "pulse":                                   # 25 % duty cycle
        return np.abs(np.sin(np.pi * k * 0.25)) * 2.0 / k
    if wave == "triangle":
        return np.where(k % 2 == 1, (-1.0) ** ((k - 1) // 2) / k ** 2, 0.0)
    raise ValueError(f"unknown wave {wave!r}")


def wavetable(wave: str, f0: float) -> np.ndarray:
    """One period (:data:`TABLE_SIZE` samples) of ``wave`` holding only the harmonics of ``f0`` below Nyquist."""
    n_harmonics = max(1, min(int(SAMPLE_RATE / 2 / f0), TABLE_SIZE // 2 - 1))
    k = np.arange(1, n_harmonics + 1)
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    spectrum[k] = -0.5j * TABLE_SIZE * _harmonic_amplitudes(wave, k.astype(np.float64))
    table = np.fft.irfft(spectrum, TABLE_SIZE)
    return table / (np.abs(table).max() + 1e-12)


def _oscillator(table: np.ndarray, freq: float, n: int, phase0: float) -> np.ndarray:
    phase = (phase0 + freq / SAMPLE_RATE * np.arange(n)) % 1.0
    return np.interp(phase * TABLE_SIZE, np.arange(TABLE_SIZE + 1), np.append(table, table[0]))


def _adsr(n_on: int, n: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Amplitude envelope: linear attack, exponential decay to ``sustain``, exponential release after ``n_on``."""
    t = np.arange(n) / SAMPLE_RATE
    a = max(attack, 1e-3)
    env = np.where(t < a, t / a, sustain + (1.0 - sustain) * np.exp(-(t - a) / max(decay / 4.0, 1e-3)))
    if n_on < n:
        held = env[n_on - 1] if n_on > 0 else 0.0
        env[n_on:] = held * np.exp(-(t[n_on:] - t[n_on]) / max(release / 4.0, 1e-3))
    return env


def _lowpass(x: np.ndarray, cutoff_hz: float, q: float) -> np.ndarray:
    """A resonant two-pole low-pass (RBJ biquad), per channel along the last axis."""
    w0 = 2 * np.pi * min(cutoff_hz, 0.45 * SAMPLE_RATE) / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * q)
    cos = np.cos(w0)
    b = np.array([(1 - cos) / 2, 1 - cos, (1 - cos) / 2])
    a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return signal.lfilter(b / a[0], a / a[0], x, axis=-1)


def _note_lengths(note, n_samples: int, release: float) -> tuple[int, int, int]:
    start = int(round(note.start * SAMPLE_RATE))
    n_on = max(1, int(round((note.end - note.start) * SAMPLE_RATE)))
    n = min(n_on + int(release * SAMPLE_RATE) + 1, n_samples - start)
    return start, min(n_on, n), n


def _subtractive_note(patch: SubtractivePatch, f0: float, velocity: int, n_on: int, n: int,
                      rng: np.random.Generator) -> np.ndarray:
    table = wavetable(patch.wave, f0)
    out = np.zeros((2, n))
    for v in range(patch.voices):
        spread = (v - (patch.voices - 1) / 2) / max((patch.voices - 1) / 2, 1)
        freq = f0 * 2 ** (spread * patch.detune_cents / 1200)
        wave = _oscillator(table, freq, n, float(rng.random()))
        if patch.voices == 1:
            out += wave
        else:
            out[0] += wave * (1 - spread) / 2 * 2 / patch.voices
            out[1] += wave * (1 + spread) / 2 * 2 / patch.voices
    if patch.sub:
        out += patch.sub * _oscillator(wavetable("square", f0 / 2), f0 / 2, n, 0.0)
    brightness = 0.6 + 0.4 * velocity / 127
    dark = _lowpass(out, f0 * patch.cutoff_ratio * brightness, patch.q)
    bright = _lowpass(out, f0 * patch.peak_ratio * brightness, patch.q)
    opening = np.exp(-np.arange(n) / (patch.filter_decay * SAMPLE_RATE))
    return (dark + opening * (bright - dark)) * _adsr(n_on, n, patch.attack, patch.decay, patch.sustain,
                                                       patch.release)


def _fm_note(patch: FMPatch, f0: float, velocity: int, n_on: int, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    index = patch.index * (0.5 + 0.5 * velocity / 127)
    index_env = index * (patch.index_sustain + (1 - patch.index_sustain) * np.exp(-t / patch.index_decay))
    modulator = np.sin(2 * np.pi * f0 * patch.modulator_ratio * t + 2 * np.pi * rng.random())
    mono = np.sin(2 * np.pi * f0 * patch.carrier_ratio * t + index_env * modulator)
    mono *= _adsr(n_on, n, patch.attack, patch.decay, patch.sustain, patch.release)
    return np.stack([mono, mono])


def render_synth_part(notes, n_samples: int, patch: SubtractivePatch | FMPatch,
                      rng: np.random.Generator) -> np.ndarray:
    """Play ``notes`` with ``patch`` into stereo float32 of shape ``(2, n_samples)`` (dry, unnormalised)."""
    out = np.zeros((2, n_samples))
    render_note = _fm_note if isinstance(patch, FMPatch) else _subtractive_note
    for note in notes:
        start, n_on, n = _note_lengths(note, n_samples, patch.release)
        if n <= 0:
            continue
        gain = (note.velocity / 127) ** 1.5
        out[:, start:start + n] += gain * render_note(patch, float(midi_to_hz(note.pitch)), note.velocity, n_on,
                                                      n, rng)
    return out.astype(np.float32)
