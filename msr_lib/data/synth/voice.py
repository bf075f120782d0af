"""A small source-filter singing voice in numpy (no speech engine needed).

Source: a band-limited sawtooth (PolyBLEP) glottal pulse train with spectral tilt, jitter and shimmer, plus
aspiration noise gated by the glottal cycle (breathiness). Filter: a cascade of five time-varying formant
resonators whose frequencies glide from the consonant to the sung vowel (a, e, i, o, u) of every syllable.
Pitch: portamento between legato notes, a small scoop at each onset, and vibrato (~5–6 Hz) that fades in after
the onset. Consonants: plosive bursts and fricative hiss from band-passed noise, nasals/liquids as formant
targets with an amplitude dip, and an audible breath before each phrase.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from msr_lib.audio import SAMPLE_RATE
from msr_lib.errors import MSRError
from msr_lib.data.synth.theory import midi_to_hz

AIR_BAND_HZ = (3500.0, 9000.0)         # upper harmonics and breath above the formant cascade
AIR_LEVEL = 0.6
HOP = 64                                  # control-rate hop (1.45 ms); formant filters update once per hop
#: Sung-vowel formants (Hz) F1–F5 for a low voice; a high voice scales them up.
VOWEL_FORMANTS = {
    "a": (730, 1150, 2600, 3300, 3750),
    "e": (500, 1750, 2500, 3300, 3750),
    "i": (300, 2150, 2850, 3400, 3800),
    "o": (460, 820, 2700, 3300, 3750),
    "u": (330, 720, 2450, 3300, 3750),
}
BANDWIDTHS = np.array([80.0, 90.0, 120.0, 140.0, 160.0])
#: Voiced consonants: formant target at the onset and amplitude there (relative to the vowel).
VOICED_CONSONANTS = {
    "m": ((260, 1100, 2350, 3300, 3750), 0.25), "n": ((260, 1600, 2500, 3300, 3750), 0.25),
    "l": ((360, 1300, 2700, 3300, 3750), 0.45), "w": ((300, 650, 2300, 3300, 3750), 0.4),
    "y": ((280, 2200, 2900, 3400, 3800), 0.4), "b": ((300, 800, 2300, 3300, 3750), 0.1),
    "d": ((300, 1700, 2600, 3300, 3750), 0.1),
}
#: Unvoiced consonants: noise band (Hz), duration (s), level, and whether voicing stops (plosive) first.
NOISE_CONSONANTS = {
    "s": ((4500, 10000), 0.09, 0.22, False), "h": ((600, 4000), 0.07, 0.10, False),
    "t": ((3000, 8000), 0.025, 0.35, True), "k": ((1500, 4000), 0.03, 0.3, True),
    "b": ((200, 1500), 0.012, 0.12, True), "d": ((1500, 5000), 0.012, 0.12, True),
}


def _polyblep_saw(phase: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """A band-limited sawtooth from a phase in [0, 1) and its per-sample increment (PolyBLEP correction)."""
    saw = 2.0 * phase - 1.0
    t = phase
    rising = t < dt
    x = t[rising] / dt[rising]
    saw[rising] -= x + x - x * x - 1.0
    falling = t > 1.0 - dt
    x = (t[falling] - 1.0) / dt[falling]
    saw[falling] -= x * x + x + x + 1.0
    return saw


def _smooth_noise(rng, n: int, cutoff_hz: float, rate: float) -> np.ndarray:
    """Unit-variance noise low-passed at ``cutoff_hz`` (for jitter, shimmer and slow drifts)."""
    b, a = signal.butter(2, min(cutoff_hz / (rate / 2), 0.99))
    x = signal.lfilter(b, a, rng.standard_normal(n))
    return x / (np.std(x) + 1e-12)


def _resonator_sos(freqs: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """Second-order sections (…, 6) of unity-DC-gain two-pole resonators."""
    r = np.exp(-np.pi * bandwidths / SAMPLE_RATE)
    c = np.cos(2 * np.pi * freqs / SAMPLE_RATE)
    a1, a2 = -2 * r * c, r * r
    gain = 1 + a1 + a2
    zeros = np.zeros_like(gain)
    return np.stack([gain, zeros, zeros, np.ones_like(gain), a1, a2], axis=-1)


def sing(notes, n_samples: int, rng: np.random.Generator, *, formant_scale: float = 1.0, vibrato_hz: float = 5.5,
         vibrato_cents: float = 40.0, breathiness: float = 0.05, **_) -> np.ndarray:
    """Render sung notes (with ``syllable`` such as ``"la"``) to mono float32 of ``n_samples`` samples."""
    out = np.zeros(n_samples, dtype=np.float64)
    notes = sorted((n for n in notes if n.start * SAMPLE_RATE < n_samples), key=lambda n: n.start)
    if not notes:
        return out.astype(np.float32)
    n_ctrl = n_samples // HOP + 2
    t_ctrl = np.arange(n_ctrl) * HOP / SAMPLE_RATE
    semis = np.full(n_ctrl, float(notes[0].pitch))
    amp = np.zeros(n_ctrl)
    aspiration = np.full(n_ctrl, breathiness)
    formants = np.tile(np.array(VOWEL_FORMANTS["a"], float), (n_ctrl, 1))
    vib_depth = np.zeros(n_ctrl)
    noise_events = []

    def idx(seconds: float) -> int:
        return int(np.clip(round(seconds * SAMPLE_RATE / HOP), 0, n_ctrl))

    prev_end, prev_pitch, prev_vowel = -1.0, notes[0].pitch, "a"
    for note in notes:
        consonant, vowel = note.syllable[:-1], (note.syllable[-1:] or "a")
        vowel = vowel if vowel in VOWEL_FORMANTS else "a"
        a, b = idx(note.start), idx(note.end)
        if b <= a:
            continue
        legato = note.start - prev_end < 0.06
        # pitch: glide from the previous note (legato) or scoop up from below, then hold
        glide = min(b - a, idx(0.05 if legato else 0.07))
        start_pitch = prev_pitch if legato else note.pitch - 0.6
        semis[a:b] = note.pitch
        semis[a:a + glide] = np.linspace(start_pitch, note.pitch, glide)
        # vibrato fades in 0.18–0.45 s after the onset
        ramp = np.clip((t_ctrl[a:b] - note.start - 0.18) / 0.27, 0.0, 1.0)
        vib_depth[a:b] = ramp
        # amplitude: attack, sustain with a slow decay, release
        length = b - a
        env = np.ones(length) * np.linspace(1.0, 0.85, length)
        att, rel = min(length, idx(0.03)), min(length // 2, idx(0.06))
        env[:att] *= np.linspace(0.0 if not legato else 0.5, 1.0, att)
        if rel:
            env[-rel:] *= np.linspace(1.0, 0.0, rel)
        level = (note.velocity / 100.0) ** 1.5
        amp[a:b] = level * env
        # formants: consonant target → vowel (coarticulated from the previous vowel)
        target = np.array(VOWEL_FORMANTS[vowel], float)
        onset = np.array(VOWEL_FORMANTS[prev_vowel], float) if legato else target
        cons_len = 0
        if consonant in VOICED_CONSONANTS:
            onset_formants, dip = VOICED_CONSONANTS[consonant]
            onset = np.array(onset_formants, float)
            cons_len = min(length // 3, idx(0.06))
            amp[a:a + cons_len] *= np.linspace(dip, 1.0, cons_len) if cons_len else 1.0
        move = min(length, max(idx(0.07), cons_len + idx(0.03)))
        w = np.linspace(0.0, 1.0, move)[:, None]
        formants[a:b] = target
        formants[a:a + move] = onset * (1 - w) + target * w
        if consonant in NOISE_CONSONANTS:
            band, dur, lev, plosive = NOISE_CONSONANTS[consonant]
            noise_events.append((note.start - (0.0 if plosive else dur * 0.6), dur, band, lev * level, plosive))
            if plosive:
                gap = min(length // 3, idx(0.03))
                amp[max(a - gap, 0):a] *= 0.1
            if consonant == "h":
                aspiration[a:a + idx(dur)] = 0.5
        if not legato and note.start - prev_end > 0.25:
            noise_events.append((note.start - 0.24, 0.2, (500, 2500), 0.035, False))    # breath in
        prev_end, prev_pitch, prev_vowel = note.end, note.pitch, vowel

    # slow shimmer and jitter, then vibrato with a slightly wandering rate
    amp *= 1.0 + 0.06 * _smooth_noise(rng, n_ctrl, 12.0, SAMPLE_RATE / HOP)
    semis += 0.08 * _smooth_noise(rng, n_ctrl, 20.0, SAMPLE_RATE / HOP)
    rate = vibrato_hz * (1.0 + 0.04 * _smooth_noise(rng, n_ctrl, 1.0, SAMPLE_RATE / HOP))
    vib_phase = 2 * np.pi * np.cumsum(rate) * HOP / SAMPLE_RATE
    semis += vib_depth * (vibrato_cents / 100.0) * np.sin(vib_phase)

    # source at audio rate: band-limited pulse train + aspiration gated by the glottal cycle
    ctrl_pos = np.arange(n_ctrl) * HOP
    sample_pos = np.arange(n_samples)
    f0 = midi_to_hz(np.interp(sample_pos, ctrl_pos, semis))
    f0 *= 1.0 + 0.004 * rng.standard_normal(n_samples).astype(np.float64).clip(-3, 3)      # cycle jitter
    dt = f0 / SAMPLE_RATE
    phase = np.cumsum(dt) % 1.0
    pulse = _polyblep_saw(phase, dt)
    b_tilt, a_tilt = signal.butter(1, 1800 / (SAMPLE_RATE / 2))
    pulse = 0.35 * pulse + 0.65 * signal.lfilter(b_tilt, a_tilt, pulse)
    breath = rng.standard_normal(n_samples) * (0.4 + 0.6 * (phase < 0.5))
    asp = np.interp(sample_pos, ctrl_pos, aspiration)
    env = np.interp(sample_pos, ctrl_pos, amp)
    source = (pulse + asp * breath) * env

    # time-varying cascade of formant resonators, block by block, only where the voice sounds
    freqs = np.minimum(formants * formant_scale, 0.45 * SAMPLE_RATE)
    sos_all = _resonator_sos(freqs, np.broadcast_to(BANDWIDTHS * formant_scale, freqs.shape))
    zi = np.zeros((5, 2))
    voiced = np.convolve(amp > 1e-4, np.ones(3), mode="same") > 0
    for k in range(n_ctrl):
        lo = k * HOP
        if lo >= n_samples:
            break
        if not voiced[k]:
            zi[:] = 0.0
            continue
        hi = min(lo + HOP, n_samples)
        out[lo:hi], zi = signal.sosfilt(sos_all[k], source[lo:hi], zi=zi)

    # "air": the cascade of five resonators rolls off steeply above F5, but a real voice keeps harmonics and
    # breath up to ~10 kHz (the higher-pole correction of cascade formant synthesizers); add them in parallel
    band = [AIR_BAND_HZ[0] / (SAMPLE_RATE / 2), AIR_BAND_HZ[1] / (SAMPLE_RATE / 2)]
    air = signal.sosfilt(signal.butter(2, band, btype="band", output="sos"), source)
    out += AIR_LEVEL * air * np.repeat(voiced, HOP)[:n_samples]

    # consonant bursts, fricatives and breaths: band-passed noise with a short envelope
    for start, dur, band, level, plosive in noise_events:
        a = int(max(start, 0.0) * SAMPLE_RATE)
        n = min(int(dur * SAMPLE_RATE), n_samples - a)
        if n <= 8:
            continue
        sos = signal.butter(2, [band[0] / (SAMPLE_RATE / 2), min(band[1] / (SAMPLE_RATE / 2), 0.99)],
                            btype="band", output="sos")
        burst = signal.sosfilt(sos, rng.standard_normal(n))
        shape = np.exp(-np.linspace(0, 5, n)) if plosive else np.sin(np.linspace(0, np.pi, n)) ** 2
        out[a:a + n] += level * shape * burst / (np.std(burst) + 1e-12) * 0.3
    return out.astype(np.float32)


#: The ways this module can make a sung line (``voice["kind"]``).
VOICE_KINDS = ("formant",)


def choose_voice(rng: np.random.Generator, *, high: bool) -> dict:
    """Draw a singing voice's settings (JSON-able) for a high or a low melody."""
    return {"kind": "formant", "register": "high" if high else "low", "formant_scale": 1.12 if high else 1.0,
            "vibrato_hz": float(rng.uniform(5.0, 6.2)), "vibrato_cents": float(rng.uniform(25, 55)),
            "breathiness": float(rng.uniform(0.02, 0.08))}


def render_vocals(notes, n_samples: int, rng: np.random.Generator, voice: dict) -> np.ndarray:
    """Sing ``notes`` with ``voice`` (from :func:`choose_voice`): stereo float32 of shape (2, n_samples)."""
    kind = voice.get("kind")
    if kind not in VOICE_KINDS:
        raise MSRError(f"unknown voice kind {kind!r}; expected one of {', '.join(VOICE_KINDS)}")
    settings = {k: v for k, v in voice.items() if k not in ("kind", "register")}
    mono = sing(notes, n_samples, rng, **settings)
    return np.stack([mono, mono])


def describe_voice(voice: dict) -> str:
    """One line naming a voice, e.g. ``"formant high, vibrato 5.6 Hz, breathy 0.05"``."""
    return (f"{voice['kind']} {voice['register']}, vibrato {voice['vibrato_hz']:.1f} Hz, "
            f"breathy {voice['breathiness']:.2f}")
