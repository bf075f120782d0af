"""Singing voices in numpy and numba (no speech engine needed): three ways of making a sung line, five registers.

All kinds share the performance: per note, a pitch that scoops up (or glides legato from the previous note), holds
and gains vibrato after an onset delay; an amplitude envelope with shimmer; a vowel target per syllable (a voice
sings the five written vowels a e i o u with its own shades and diphthongs, e.g. a → "ai"), approached from the
consonant's formants; consonants as plosive bursts and fricative hiss of band-passed noise; a breath before each
phrase. High notes pull F1 up to the pitch (sopranos' formant tuning; Sundberg, *The Science of the Singing Voice*,
1987, ch. 6). The kinds differ in how the sound is made:

- ``"formant"`` — source-filter: a band-limited sawtooth (PolyBLEP) glottal pulse train with spectral tilt, jitter
  and aspiration noise gated by the glottal cycle, through a cascade of five time-varying formant resonators
  (the cascade branch of Klatt's synthesizer, J. Acoust. Soc. Am. 67(3), 1980), plus the "air" above F5.
- ``"glottal"`` — the same vocal tract, excited by the derivative of a glottal-flow pulse (Rosenberg's pulse,
  J. Acoust. Soc. Am. 49(2B), 1971) whose open quotient and closing time set the timbre, from pressed to soft,
  with aspiration only while the glottis is open.
- ``"additive"`` — a sum of sinusoids at the harmonics of f0 whose amplitudes sample a formant envelope (a sum of
  resonance peaks) frame by frame, each harmonic with its own shimmer, plus breath noise shaped by the same
  envelope in the STFT domain: the deterministic-plus-stochastic model of Serra & Smith, "Spectral Modeling
  Synthesis", Computer Music Journal 14(4), 1990.

:func:`render_vocals` adds the layers of a produced vocal: a doubled second take (its own timing and pitch drift,
panned apart from the lead) and a harmony line a diatonic third or sixth above the melody, in the scale the melody
implies.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import signal

from msr_lib.audio import SAMPLE_RATE
from msr_lib.data.synth.theory import midi_to_hz, scale_pitch_classes
from msr_lib.errors import MSRError

#: The ways this module can make a sung line (``voice["kind"]``).
VOICE_KINDS = ("formant", "glottal", "additive")
HOP = 64                                  # control-rate hop (1.45 ms); formants and amplitudes update once per hop
CONTROL_RATE = SAMPLE_RATE / HOP
AIR_BAND_HZ = (3500.0, 9000.0)         # upper harmonics and breath above the formant cascade
AIR_LEVEL = 0.6
TAKE_GAIN = 0.07                        # a take's level: sung notes at about −20 dBFS RMS
GLOTTAL_GAIN = 1.4                      # Rosenberg pulses → the sawtooth source's level
HIGHEST_HARMONIC_HZ = 12000.0          # the additive voice's harmonics and breath stop here
MAX_HARMONICS = 96
ADDITIVE_GAIN = 4.5                     # brings the additive voice to the formant voice's level (and consonants')
ADDITIVE_HOP = 4 * HOP                  # the additive voice samples its envelope every 5.8 ms
ADDITIVE_AIR = 0.05                     # the additive voice's harmonics and breath between 3 and 9 kHz
BREATH_LEVEL = 36.0                     # FFT-domain breath noise → the level of the formant voice's aspiration
#: Sung-vowel formants (Hz) F1–F5 of a baritone; the other registers scale them (``REGISTERS``).
VOWEL_FORMANTS = {
    "a": (730, 1150, 2600, 3300, 3750),      # father
    "e": (500, 1750, 2500, 3300, 3750),      # day (closed e)
    "i": (300, 2150, 2850, 3400, 3800),      # see
    "o": (460, 820, 2700, 3300, 3750),       # go
    "u": (330, 720, 2450, 3300, 3750),       # moon
    "ae": (650, 1650, 2450, 3300, 3750),     # cat
    "eh": (580, 1650, 2500, 3300, 3750),     # bed
    "ih": (400, 1900, 2550, 3300, 3750),     # bit
    "uh": (620, 1200, 2550, 3300, 3750),     # but
    "aw": (570, 860, 2600, 3300, 3750),      # law
    "oo": (440, 1020, 2300, 3300, 3750),     # book
}
#: Two-vowel glides a syllable may be sung as.
DIPHTHONGS = {"ai": ("a", "i"), "au": ("a", "u"), "ei": ("e", "i"), "oi": ("o", "i"), "ou": ("o", "u")}
#: How a voice may sing each written vowel (its accent): the first shade is the plain vowel.
VOWEL_SHADES = {"a": ("a", "uh", "ae", "aw", "ai"), "e": ("e", "eh", "ei"), "i": ("i", "ih"),
                "o": ("o", "aw", "ou", "au", "oi"), "u": ("u", "oo")}
BANDWIDTHS = np.array([80.0, 90.0, 120.0, 140.0, 160.0])
#: Registers: formant scale per formant F1–F5, the pitch range they sing comfortably (MIDI) and, for the additive
#: voice, the extra level of the singer's formant (the F3–F5 cluster near 3 kHz of trained male voices).
REGISTERS = {
    "bass": {"formants": (0.92, 0.93, 0.94, 0.93, 0.93), "range": (40, 64), "ring_db": 6.0},
    "baritone": {"formants": (1.0, 1.0, 1.0, 1.0, 1.0), "range": (45, 67), "ring_db": 5.0},
    "tenor": {"formants": (1.04, 1.05, 1.06, 1.05, 1.05), "range": (48, 72), "ring_db": 4.0},
    "alto": {"formants": (1.1, 1.12, 1.12, 1.12, 1.13), "range": (53, 77), "ring_db": 1.0},
    "soprano": {"formants": (1.15, 1.18, 1.16, 1.17, 1.19), "range": (60, 84), "ring_db": 0.0},
}
HIGH_REGISTERS, LOW_REGISTERS = ("alto", "soprano"), ("bass", "baritone", "tenor")
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
HARMONY_STEPS = {"third": 2, "sixth": 5}     # scale steps above the melody note
#: Settings of one take (the keyword arguments of the kind's renderer) and of the layers around it: (low, high).
TAKE_SETTINGS = {"vibrato_hz": (0.0, 12.0), "vibrato_cents": (0.0, 200.0), "vibrato_delay": (0.0, 2.0),
                 "breathiness": (0.0, 1.0), "brightness": (0.0, 1.0), "shimmer_db": (0.0, 6.0),
                 "open_quotient": (0.3, 0.95), "closing": (0.1, 0.6)}
LAYER_SETTINGS = {"double": (0.0, 1.0), "spread": (0.0, 1.0), "harmony_level": (0.0, 1.0),
                  "harmony_phrases": (0.0, 1.0)}
PHRASE_GAP_SECONDS = 0.25                 # a rest this long starts a new phrase (and a breath)


# ---------------------------------------------------------------- the performance (control rate)

def _smooth_noise(rng, shape, cutoff_hz: float, rate: float) -> np.ndarray:
    """Unit-variance noise low-passed at ``cutoff_hz`` along the first axis (jitter, shimmer and slow drifts)."""
    b, a = signal.butter(2, min(cutoff_hz / (rate / 2), 0.99))
    x = signal.lfilter(b, a, rng.standard_normal(shape), axis=0)
    return x / (np.std(x, axis=0) + 1e-12)


def _vowel_targets(vowel: str, shades: dict) -> tuple[np.ndarray, np.ndarray]:
    """Formants (F1–F5) at the start and at the end of a sung vowel (they differ for a diphthong)."""
    sung = shades.get(vowel, vowel)
    first, last = DIPHTHONGS.get(sung, (sung, sung))
    if first not in VOWEL_FORMANTS or last not in VOWEL_FORMANTS:
        first = last = "a"
    return np.array(VOWEL_FORMANTS[first], float), np.array(VOWEL_FORMANTS[last], float)


def _split_syllable(syllable: str) -> tuple[str, str]:
    """``"kla"`` → (``"kl"``, ``"a"``): the consonants before the first vowel letter, and the rest."""
    for i, ch in enumerate(syllable):
        if ch in "aeiou":
            return syllable[:i], syllable[i:]
    return syllable, "a"


class _Performance:
    """Control-rate trajectories of one take: pitch (MIDI), amplitude, aspiration, formants, and noise events."""

    def __init__(self, notes, n_samples: int, rng, *, register: str, vowels: dict, vibrato_hz: float,
                 vibrato_cents: float, vibrato_delay: float, breathiness: float, detune_cents: float):
        self.n_samples, self.rng = n_samples, rng
        self.n_ctrl = n = n_samples // HOP + 2
        t_ctrl = np.arange(n) / CONTROL_RATE
        self.semis = semis = np.full(n, float(notes[0].pitch))
        self.amp = amp = np.zeros(n)
        self.aspiration = aspiration = np.full(n, breathiness)
        formants = np.tile(np.array(VOWEL_FORMANTS["a"], float), (n, 1))
        vib_depth = np.zeros(n)
        self.noise_events = events = []

        def idx(seconds: float) -> int:
            return int(np.clip(round(seconds * CONTROL_RATE), 0, n))

        prev_end, prev_pitch, prev_formants = -1.0, notes[0].pitch, None
        for note in notes:
            consonant, vowel = _split_syllable(note.syllable)
            consonant = consonant[-1:]                   # the consonant right before the vowel shapes the onset
            a, b = idx(note.start), idx(note.end)
            if b <= a:
                continue
            length = b - a
            legato = note.start - prev_end < 0.06
            # pitch: glide from the previous note (legato) or scoop up from below, then hold
            glide = min(length, idx(0.05 if legato else 0.07))
            semis[a:b] = note.pitch
            semis[a:a + glide] = np.linspace(prev_pitch if legato else note.pitch - 0.6, note.pitch, glide)
            vib_depth[a:b] = np.clip((t_ctrl[a:b] - note.start - vibrato_delay) / 0.27, 0.0, 1.0)
            # amplitude: attack, sustain with a slow decay, release
            env = np.linspace(1.0, 0.85, length)
            att, rel = min(length, idx(0.03)), min(length // 2, idx(0.06))
            env[:att] *= np.linspace(0.5 if legato else 0.0, 1.0, att)
            if rel:
                env[-rel:] *= np.linspace(1.0, 0.0, rel)
            level = (note.velocity / 100.0) ** 1.5
            amp[a:b] = level * env
            # formants: consonant (or the previous vowel, legato) → vowel → the diphthong's second vowel
            start, end = _vowel_targets(vowel, vowels)
            formants[a:b] = start
            if not np.array_equal(start, end):
                g0, g1 = a + int(0.5 * length), a + int(0.85 * length)
                w = np.linspace(0.0, 1.0, g1 - g0)[:, None]
                formants[g0:g1] = start * (1 - w) + end * w
                formants[g1:b] = end
            onset = prev_formants if (legato and prev_formants is not None) else start
            cons_len = 0
            if consonant in VOICED_CONSONANTS:
                onset_formants, dip = VOICED_CONSONANTS[consonant]
                onset = np.array(onset_formants, float)
                cons_len = min(length // 3, idx(0.06))
                if cons_len:
                    amp[a:a + cons_len] *= np.linspace(dip, 1.0, cons_len)
            move = min(length, max(idx(0.07), cons_len + idx(0.03)))
            w = np.linspace(0.0, 1.0, move)[:, None]
            formants[a:a + move] = onset * (1 - w) + formants[a:a + move] * w
            if consonant in NOISE_CONSONANTS:
                band, dur, lev, plosive = NOISE_CONSONANTS[consonant]
                events.append((note.start - (0.0 if plosive else dur * 0.6), dur, band, lev * level, plosive))
                if plosive:
                    gap = min(length // 3, idx(0.03))
                    amp[max(a - gap, 0):a] *= 0.1
                if consonant == "h":
                    aspiration[a:a + idx(dur)] = 0.5
            if not legato and note.start - prev_end > PHRASE_GAP_SECONDS:
                events.append((note.start - 0.24, 0.2, (500, 2500), 0.035, False))    # breath in
            prev_end, prev_pitch, prev_formants = note.end, note.pitch, end

        # slow shimmer and jitter, vibrato with a slightly wandering rate (and the small level swing it brings)
        amp *= 1.0 + 0.06 * _smooth_noise(rng, n, 12.0, CONTROL_RATE)
        semis += 0.08 * _smooth_noise(rng, n, 20.0, CONTROL_RATE) + detune_cents / 100.0
        rate = vibrato_hz * (1.0 + 0.04 * _smooth_noise(rng, n, 1.0, CONTROL_RATE))
        swing = vib_depth * np.sin(2 * np.pi * np.cumsum(rate) / CONTROL_RATE + rng.uniform(0, 2 * np.pi))
        semis += (vibrato_cents / 100.0) * swing
        amp *= 1.0 + 0.15 * (vibrato_cents / 100.0) * swing
        # the register's formants; F1 rises with high notes so it never sits below the pitch (formant tuning)
        formants = formants * np.asarray(REGISTERS[register]["formants"])
        f0 = midi_to_hz(semis)
        formants[:, 0] = np.maximum(formants[:, 0], 1.1 * f0)
        formants[:, 1] = np.maximum(formants[:, 1], formants[:, 0] + 200.0)
        self.formants = np.minimum(formants, 0.45 * SAMPLE_RATE)
        self.bandwidths = BANDWIDTHS * REGISTERS[register]["formants"][0]

    def at_audio_rate(self, values: np.ndarray) -> np.ndarray:
        """A control-rate trajectory interpolated to every sample."""
        return np.interp(np.arange(self.n_samples), np.arange(self.n_ctrl) * HOP, values)

    def f0_phase(self) -> np.ndarray:
        """Glottal phase in cycles (not wrapped), with cycle-to-cycle jitter."""
        f0 = midi_to_hz(self.at_audio_rate(self.semis))
        f0 *= 1.0 + 0.004 * self.rng.standard_normal(self.n_samples).clip(-3, 3)
        return np.cumsum(f0 / SAMPLE_RATE)

    def voiced(self) -> np.ndarray:
        """Control frames where the voice sounds (with one frame of margin each side)."""
        return np.convolve(self.amp > 1e-4, np.ones(3), mode="same") > 0


def _add_noise_events(out: np.ndarray, events, rng) -> None:
    """Consonant bursts, fricatives and breaths: band-passed noise with a short envelope, added into ``out``."""
    n_samples = out.size
    for start, dur, band, level, plosive in events:
        a = int(max(start, 0.0) * SAMPLE_RATE)
        n = min(int(dur * SAMPLE_RATE), n_samples - a)
        if n <= 8:
            continue
        sos = signal.butter(2, [band[0] / (SAMPLE_RATE / 2), min(band[1] / (SAMPLE_RATE / 2), 0.99)],
                            btype="band", output="sos")
        burst = signal.sosfilt(sos, rng.standard_normal(n))
        shape = np.exp(-np.linspace(0, 5, n)) if plosive else np.sin(np.linspace(0, np.pi, n)) ** 2
        out[a:a + n] += level * shape * burst / (np.std(burst) + 1e-12) * 0.3


def _sorted_notes(notes, n_samples: int) -> list:
    return sorted((n for n in notes if n.start * SAMPLE_RATE < n_samples), key=lambda n: n.start)


@functools.lru_cache(maxsize=1)
def _kernels():
    """Compile (numba, cached on disk) the voices' per-sample loops on first use: the formant cascade whose
    coefficients change every hop, and the additive voice's bank of harmonics."""
    import numba

    from msr_lib.degrade.biquads import cascade_sample

    @numba.njit(cache=True, boundscheck=False)
    def time_varying_cascade(source, sos_frames, voiced, hop, out):
        """``source`` through a cascade whose sections (``sos_frames[f]``) change every ``hop`` samples; the state is
        cleared in unvoiced frames."""
        state = np.zeros((sos_frames.shape[1], 1, 2))
        for f in range(sos_frames.shape[0]):
            lo = f * hop
            if lo >= source.shape[0]:
                break
            if not voiced[f]:
                state[:] = 0.0
                continue
            for i in range(lo, min(lo + hop, source.shape[0])):
                out[i] = cascade_sample(sos_frames[f], state, 0, source[i])
        return out

    @numba.njit(cache=True, boundscheck=False, fastmath={"contract"})     # fused multiply-adds
    def harmonic_bank(cycles, amps, hop, out):
        """Σ_k a_k(t)·sin(2π k·cycles(t)), ``amps`` (frames, harmonics) given at frame starts and interpolated
        linearly; sin(kθ) by the Chebyshev recurrence sin((k+1)θ) = 2cos θ·sin(kθ) − sin((k−1)θ), all samples
        of a frame side by side (SIMD)."""
        n_frames, n_harmonics = amps.shape
        here, below, twice_cos = np.empty(hop), np.empty(hop), np.empty(hop)
        level, change, ramp = np.empty(hop), np.empty(hop), np.arange(hop) / hop
        for f in range(n_frames - 1):
            lo = f * hop
            m = min(hop, cycles.shape[0] - lo)
            if m <= 0:
                break
            top = n_harmonics                   # harmonics above the last one sounding in this frame are skipped
            while top > 0 and amps[f, top - 1] == 0.0 and amps[f + 1, top - 1] == 0.0:
                top -= 1
            if top == 0:
                continue
            for i in range(m):
                theta = 2.0 * np.pi * (cycles[lo + i] - np.floor(cycles[lo + i]))
                here[i], below[i], twice_cos[i] = np.sin(theta), 0.0, 2.0 * np.cos(theta)
                level[i], change[i] = 0.0, 0.0
            for k in range(top):
                a, d = amps[f, k], amps[f + 1, k] - amps[f, k]
                for i in range(m):
                    level[i] += a * here[i]
                    change[i] += d * here[i]
                    nxt = twice_cos[i] * here[i] - below[i]
                    below[i] = here[i]
                    here[i] = nxt
            for i in range(m):
                out[lo + i] = level[i] + ramp[i] * change[i]
        return out

    return time_varying_cascade, harmonic_bank


# ---------------------------------------------------------------- kind "formant": source → formant cascade

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


def _resonator_sos(freqs: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """Second-order sections (…, 6) of unity-DC-gain two-pole resonators."""
    r = np.exp(-np.pi * bandwidths / SAMPLE_RATE)
    c = np.cos(2 * np.pi * freqs / SAMPLE_RATE)
    a1, a2 = -2 * r * c, r * r
    gain = 1 + a1 + a2
    zeros = np.zeros_like(gain)
    return np.stack([gain, zeros, zeros, np.ones_like(gain), a1, a2], axis=-1)


def _through_the_vocal_tract(perf: _Performance, source: np.ndarray) -> np.ndarray:
    """A take's excitation (pulses and aspiration, shaped by the amplitude) through the time-varying cascade of
    formant resonators, plus the air and the consonants: mono float32 at the take level."""
    n_samples = source.size
    out = np.zeros(n_samples)
    voiced = perf.voiced()
    sos_frames = _resonator_sos(perf.formants, np.broadcast_to(perf.bandwidths, perf.formants.shape))
    _kernels()[0](source, np.ascontiguousarray(sos_frames), voiced, HOP, out)
    # "air": the cascade of five resonators rolls off steeply above F5, but a real voice keeps harmonics and
    # breath up to ~10 kHz (the higher-pole correction of cascade formant synthesizers); add them in parallel
    band = [AIR_BAND_HZ[0] / (SAMPLE_RATE / 2), AIR_BAND_HZ[1] / (SAMPLE_RATE / 2)]
    air = signal.sosfilt(signal.butter(2, band, btype="band", output="sos"), source)
    out += AIR_LEVEL * air * np.repeat(voiced, HOP)[:n_samples]
    _add_noise_events(out, perf.noise_events, perf.rng)
    return (TAKE_GAIN * out).astype(np.float32)


def sing(notes, n_samples: int, rng: np.random.Generator, *, register: str = "baritone", vowels: dict | None = None,
         vibrato_hz: float = 5.5, vibrato_cents: float = 40.0, vibrato_delay: float = 0.18,
         breathiness: float = 0.05, brightness: float = 0.35, detune_cents: float = 0.0) -> np.ndarray:
    """One take of the formant voice: sung notes (``syllable`` such as ``"la"``) as mono float32 of ``n_samples``.
    The source is a band-limited sawtooth, low-passed above 1.8 kHz as far as it is not ``brightness``."""
    notes = _sorted_notes(notes, n_samples)
    if not notes:
        return np.zeros(n_samples, np.float32)
    perf = _Performance(notes, n_samples, rng, register=register, vowels=vowels or {}, vibrato_hz=vibrato_hz,
                        vibrato_cents=vibrato_cents, vibrato_delay=vibrato_delay, breathiness=breathiness,
                        detune_cents=detune_cents)
    cycles = perf.f0_phase()
    dt = np.diff(cycles, prepend=0.0)
    phase = cycles % 1.0
    pulse = _polyblep_saw(phase, dt)
    b_tilt, a_tilt = signal.butter(1, 1800 / (SAMPLE_RATE / 2))
    pulse = brightness * pulse + (1.0 - brightness) * signal.lfilter(b_tilt, a_tilt, pulse)
    breath = rng.standard_normal(n_samples) * (0.4 + 0.6 * (phase < 0.5))       # louder in the open half
    source = (pulse + perf.at_audio_rate(perf.aspiration) * breath) * perf.at_audio_rate(perf.amp)
    return _through_the_vocal_tract(perf, source)


# ---------------------------------------------------------------- kind "glottal": glottal-flow pulses

def _rosenberg_pulses(phase: np.ndarray, dt: np.ndarray, open_quotient: float, closing: float) -> np.ndarray:
    """The time derivative of Rosenberg's glottal flow (his pulse "B": a raised-cosine opening over the first
    ``1 − closing`` of the open phase, a quarter-cosine closing over the rest, then closed), peak magnitude 1.
    The flow stops abruptly at closure, a step in its derivative: PolyBLEP-corrected like the sawtooth."""
    opening, shutting = open_quotient * (1.0 - closing), open_quotient * closing
    out = np.zeros_like(phase)
    rising = phase < opening
    out[rising] = np.pi / (2 * opening) * np.sin(np.pi * phase[rising] / opening)
    falling = ~rising & (phase < open_quotient)
    out[falling] = -np.pi / (2 * shutting) * np.sin(np.pi * (phase[falling] - opening) / (2 * shutting))
    half_step = np.pi / (4 * shutting)                  # the derivative jumps from −π/(2·shutting) to 0
    after = (phase >= open_quotient) & (phase < open_quotient + dt)
    x = (phase[after] - open_quotient) / dt[after]
    out[after] += half_step * (x + x - x * x - 1.0)
    before = (phase < open_quotient) & (phase > open_quotient - dt)
    x = (phase[before] - open_quotient) / dt[before]
    out[before] += half_step * (x * x + x + x + 1.0)
    return out / (2 * half_step)


def sing_glottal(notes, n_samples: int, rng: np.random.Generator, *, register: str = "baritone",
                 vowels: dict | None = None, vibrato_hz: float = 5.5, vibrato_cents: float = 40.0,
                 vibrato_delay: float = 0.18, breathiness: float = 0.05, open_quotient: float = 0.6,
                 closing: float = 0.33, detune_cents: float = 0.0) -> np.ndarray:
    """One take of the glottal voice: glottal-flow pulses (Rosenberg, "Effect of glottal pulse shape on the
    quality of natural vowels", J. Acoust. Soc. Am. 49(2B), 1971) open for ``open_quotient`` of each cycle and
    closing over its last ``closing`` share (a quick closure rings brightly, a long open phase sounds soft), with
    aspiration only while the glottis is open, through the formant cascade. Mono float32 of ``n_samples``."""
    notes = _sorted_notes(notes, n_samples)
    if not notes:
        return np.zeros(n_samples, np.float32)
    perf = _Performance(notes, n_samples, rng, register=register, vowels=vowels or {}, vibrato_hz=vibrato_hz,
                        vibrato_cents=vibrato_cents, vibrato_delay=vibrato_delay, breathiness=breathiness,
                        detune_cents=detune_cents)
    cycles = perf.f0_phase()
    phase = cycles % 1.0
    pulse = GLOTTAL_GAIN * _rosenberg_pulses(phase, np.diff(cycles, prepend=0.0), open_quotient, closing)
    breath = rng.standard_normal(n_samples) * (0.2 + 0.8 * (phase < open_quotient))
    source = (pulse + perf.at_audio_rate(perf.aspiration) * breath) * perf.at_audio_rate(perf.amp)
    return _through_the_vocal_tract(perf, source)


# ---------------------------------------------------------------- kind "additive": harmonics under an envelope

def _formant_envelope(freqs: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray, ring_db: float):
    """Linear gain at ``freqs`` (frames, bins) of parallel formant resonances (as in Holmes's parallel formant
    synthesizer, Speech Communication 2, 1983): each an analog two-pole resonance at F_j (frames, 5) scaled to its
    peak gain, F1 at 0 dB and the higher formants weaker (the F3–F5 cluster raised by ``ring_db``), plus the air."""
    peak_db = np.array([0.0, -5.0, -12.0, -16.0, -20.0]) + np.array([0.0, 0.0, 1.0, 1.0, 1.0]) * ring_db
    gains = 10 ** (peak_db / 20)
    env = ADDITIVE_AIR / np.sqrt(1.0 + ((freqs - 6000.0) / 3000.0) ** 2)
    for j in range(formants.shape[1]):
        f_j = formants[:, j:j + 1]
        env += gains[j] * f_j * bandwidths[j] / np.sqrt((f_j ** 2 - freqs ** 2) ** 2 + (bandwidths[j] * freqs) ** 2)
    return env


def _source_tilt(freqs: np.ndarray, brightness: float) -> np.ndarray:
    """The glottal source's extra roll-off above 1.8 kHz, less of it the brighter the voice."""
    return brightness + (1.0 - brightness) / np.sqrt(1.0 + (freqs / 1800.0) ** 2)


def sing_additive(notes, n_samples: int, rng: np.random.Generator, *, register: str = "baritone",
                  vowels: dict | None = None, vibrato_hz: float = 5.5, vibrato_cents: float = 40.0,
                  vibrato_delay: float = 0.18, breathiness: float = 0.05, brightness: float = 0.35,
                  shimmer_db: float = 1.0, detune_cents: float = 0.0) -> np.ndarray:
    """One take of the additive voice: sung notes as mono float32 of ``n_samples`` (see the module docstring)."""
    out = np.zeros(n_samples, dtype=np.float64)
    notes = _sorted_notes(notes, n_samples)
    if not notes:
        return out.astype(np.float32)
    perf = _Performance(notes, n_samples, rng, register=register, vowels=vowels or {}, vibrato_hz=vibrato_hz,
                        vibrato_cents=vibrato_cents, vibrato_delay=vibrato_delay, breathiness=breathiness,
                        detune_cents=detune_cents)
    ring_db = REGISTERS[register]["ring_db"]
    frames = np.arange(0, perf.n_ctrl, ADDITIVE_HOP // HOP)          # the envelope is sampled every ADDITIVE_HOP
    level, formants, f0 = perf.amp[frames], perf.formants[frames], midi_to_hz(perf.semis[frames])
    k = np.arange(1, int(min(MAX_HARMONICS, HIGHEST_HARMONIC_HZ // f0.min())) + 1)
    freqs = f0[:, None] * k
    # glottal source: harmonics falling 6 dB per octave, 12 above 1.8 kHz as far as it is not bright (the tilt of
    # the formant voice's source), each with its own shimmer
    amps = _source_tilt(freqs, brightness) / k * _formant_envelope(freqs, formants, perf.bandwidths, ring_db)
    amps *= 10 ** (shimmer_db / 20 * _smooth_noise(rng, amps.shape, 15.0, SAMPLE_RATE / ADDITIVE_HOP))
    amps *= (level * (1.0 - 0.5 * breathiness))[:, None] * (freqs < HIGHEST_HARMONIC_HZ)
    _kernels()[1](perf.f0_phase(), np.ascontiguousarray(amps), ADDITIVE_HOP, out)
    # breath: noise shaped by the same envelope and tilt, one FFT frame per
    # ADDITIVE_HOP, overlap-added with a periodic Hann window (two frames overlap everywhere: they sum to one)
    breath_level = level * perf.aspiration[frames]
    sounding = np.flatnonzero(breath_level > 0)
    bins = np.fft.rfftfreq(2 * ADDITIVE_HOP, 1 / SAMPLE_RATE)
    shaped = _formant_envelope(np.broadcast_to(bins, (sounding.size, bins.size)), formants[sounding],
                               perf.bandwidths, ring_db) * _source_tilt(bins, brightness)
    shaped *= breath_level[sounding, None] * (bins < HIGHEST_HARMONIC_HZ)
    noise = rng.standard_normal((2, *shaped.shape))
    grains = np.fft.irfft((noise[0] + 1j * noise[1]) * shaped, axis=1) * signal.get_window("hann", 2 * ADDITIVE_HOP)
    blocks = np.zeros((frames.size + 2, ADDITIVE_HOP))
    blocks[sounding] += grains[:, :ADDITIVE_HOP]                    # (frame indices are distinct)
    blocks[sounding + 1] += grains[:, ADDITIVE_HOP:]
    out += BREATH_LEVEL * blocks.reshape(-1)[ADDITIVE_HOP // 2:][:n_samples]
    out *= ADDITIVE_GAIN
    _add_noise_events(out, perf.noise_events, rng)
    return (TAKE_GAIN * out).astype(np.float32)


# ---------------------------------------------------------------- voices: choose, check, describe, render

_TAKES = {"formant": sing, "glottal": sing_glottal, "additive": sing_additive}
_PERFORMANCE = ("vibrato_hz", "vibrato_cents", "vibrato_delay", "breathiness")
_KIND_SETTINGS = {"formant": (*_PERFORMANCE, "brightness"), "glottal": (*_PERFORMANCE, "open_quotient", "closing"),
                  "additive": (*_PERFORMANCE, "brightness", "shimmer_db")}


def choose_voice(rng: np.random.Generator, *, high: bool) -> dict:
    """Draw a singing voice (JSON-able settings) for a high or a low melody: kind, register, vowel shades,
    vibrato, breathiness, the source's brightness (the glottal kind: its pulse shape) and the layers (a double
    take in about a third of the voices, a harmony line in about a third)."""
    kind = str(rng.choice(VOICE_KINDS))
    register = str(rng.choice(HIGH_REGISTERS if high else LOW_REGISTERS))
    vowels = {v: str(rng.choice(shades)) if rng.random() < 0.35 else v for v, shades in VOWEL_SHADES.items()}
    voice = {"kind": kind, "register": register, "vowels": vowels,
             "vibrato_hz": round(float(rng.uniform(4.6, 6.6)), 2),
             "vibrato_cents": round(float(rng.uniform(15, 80)), 1),
             "vibrato_delay": round(float(rng.uniform(0.1, 0.45)), 3),
             "breathiness": round(float(0.02 + 0.33 * rng.random() ** 2), 3)}
    if kind == "glottal":                # breathy voices keep the glottis open longer and close it softly
        voice["open_quotient"] = round(float(min(rng.uniform(0.45, 0.7) + 0.5 * voice["breathiness"], 0.9)), 3)
        voice["closing"] = round(float(rng.uniform(0.2, 0.35) + 0.4 * voice["breathiness"]), 3)
    else:
        voice["brightness"] = round(float(rng.uniform(0.2, 0.6)), 3)
    if kind == "additive":
        voice["shimmer_db"] = round(float(rng.uniform(0.3, 2.0)), 2)
    doubled = rng.random() < 0.35
    harmony = str(rng.choice(("third", "sixth"), p=(0.7, 0.3))) if rng.random() < 0.35 else ""
    voice.update({"double": round(float(rng.uniform(0.6, 0.95)), 3) if doubled else 0.0,
                  "spread": round(float(rng.uniform(0.3, 0.8)), 3),
                  "harmony": harmony,
                  "harmony_level": round(float(rng.uniform(0.35, 0.7)), 3) if harmony else 0.0,
                  "harmony_phrases": round(float(rng.uniform(0.4, 1.0)), 3) if harmony else 0.0})
    return voice


def check_voice(voice: dict) -> None:
    """Raise :class:`MSRError` (one line) unless ``voice`` is a complete, valid voice of a known kind."""
    kind = voice.get("kind")
    if kind not in VOICE_KINDS:
        raise MSRError(f"unknown voice kind {kind!r}; expected one of {', '.join(VOICE_KINDS)}")
    expected = {"kind", "register", "vowels", "harmony", *_KIND_SETTINGS[kind], *LAYER_SETTINGS}
    if set(voice) != expected:
        wrong = sorted(set(voice) ^ expected)
        raise MSRError(f"{kind} voice: missing or unknown settings {', '.join(wrong)}")
    if voice["register"] not in REGISTERS:
        raise MSRError(f"unknown voice register {voice['register']!r}; expected one of {', '.join(REGISTERS)}")
    if voice["harmony"] not in ("", *HARMONY_STEPS):
        raise MSRError(f"unknown harmony {voice['harmony']!r}; expected '' or one of {', '.join(HARMONY_STEPS)}")
    if not isinstance(voice["vowels"], dict):
        raise MSRError(f"voice vowels must map written to sung vowels, got {voice['vowels']!r}")
    for written, sung in voice["vowels"].items():
        if written not in VOWEL_SHADES or (sung not in VOWEL_FORMANTS and sung not in DIPHTHONGS):
            raise MSRError(f"voice vowels: cannot sing {written!r} as {sung!r}")
    for name in (*_KIND_SETTINGS[kind], *LAYER_SETTINGS):
        low, high = {**TAKE_SETTINGS, **LAYER_SETTINGS}[name]
        value = voice[name]
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise MSRError(f"voice setting {name}={value!r} is outside [{low:g}, {high:g}]")


def describe_voice(voice: dict) -> str:
    """One line for a voice, e.g. ``"formant tenor, vowels a→ai o→ou, vibrato 5.6 Hz ±40 ¢, breathy 0.20,
    doubled + harmony in thirds"``."""
    shades = " ".join(f"{w}→{s}" for w, s in voice["vowels"].items() if s != w)
    layers = [name for name, on in (("doubled", voice["double"] > 0),
                                     (f"harmony in {voice['harmony']}s", bool(voice["harmony"]))) if on]
    return ", ".join([f"{voice['kind']} {voice['register']}", f"vowels {shades}" if shades else "plain vowels",
                      f"vibrato {voice['vibrato_hz']:.1f} Hz ±{voice['vibrato_cents']:.0f} ¢",
                      f"breathy {voice['breathiness']:.2f}"] + ([" + ".join(layers)] if layers else []))


def melody_scale(notes) -> list[int]:
    """The diatonic scale (7 pitch classes) that holds most of the melody's sung time."""
    time_in = np.zeros(12)
    for note in notes:
        time_in[note.pitch % 12] += note.end - note.start
    scales = [scale_pitch_classes(tonic, "major") for tonic in range(12)]
    return scales[int(np.argmax([time_in[s].sum() for s in scales]))]


def harmony_notes(notes, interval: str, *, scale: list[int], highest: int = 127) -> list:
    """The notes moved a third or a sixth up (``interval``) in ``scale`` (a note outside it counts the first scale
    pitch above as one step); a harmony note above ``highest`` is sung an octave lower."""
    ladder = [p for p in range(128) if p % 12 in scale]
    steps = HARMONY_STEPS[interval]
    out = []
    for note in notes:
        above = int(np.searchsorted(ladder, note.pitch, side="right"))      # first scale pitch above the note
        in_scale = note.pitch % 12 in scale
        pitch = ladder[min(above - 1 + steps if in_scale else above + steps - 1, len(ladder) - 1)]
        out.append(type(note)(note.start, note.end, pitch - 12 * (pitch > highest), note.velocity, note.syllable))
    return out


def _phrases(notes) -> list[list]:
    """The notes grouped into phrases (split at rests of at least ``PHRASE_GAP_SECONDS``)."""
    phrases: list[list] = []
    for note in sorted(notes, key=lambda n: n.start):
        if not phrases or note.start - phrases[-1][-1].end >= PHRASE_GAP_SECONDS:
            phrases.append([])
        phrases[-1].append(note)
    return phrases


def _loosen(notes, rng, *, seconds: float) -> list:
    """A second take's notes: each onset and release a few ms early or late (``seconds`` spread)."""
    drift = rng.normal(0.0, seconds, (len(notes), 2)).clip(-2.5 * seconds, 2.5 * seconds)
    return [type(n)(max(n.start + a, 0.0), max(n.end + b, n.start + a + 0.05), n.pitch, n.velocity, n.syllable)
            for n, (a, b) in zip(notes, drift)]


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan (−1 left … +1 right) with unity gain in the centre."""
    angle = (pan + 1.0) * np.pi / 4.0
    return np.sqrt(2.0) * np.stack([np.cos(angle) * mono, np.sin(angle) * mono])


def render_vocals(notes, n_samples: int, rng: np.random.Generator, voice: dict) -> np.ndarray:
    """Sing ``notes`` with ``voice`` (from :func:`choose_voice`): stereo float32 of shape (2, n_samples) — the
    lead in the centre, or with its double take panned apart, and the harmony line (if any) on its own side."""
    check_voice(voice)
    take = _TAKES[voice["kind"]]
    settings = {name: voice[name] for name in _KIND_SETTINGS[voice["kind"]]}
    settings.update(register=voice["register"], vowels=voice["vowels"])
    lead_rng, double_rng, harmony_rng, layer_rng = (np.random.default_rng(s) for s in rng.integers(2 ** 63, size=4))
    lead = take(notes, n_samples, lead_rng, **settings)
    if not voice["double"]:
        out = np.stack([lead, lead])
    else:
        again = _loosen(notes, layer_rng, seconds=0.012)
        double = take(again, n_samples, double_rng, **settings, detune_cents=float(layer_rng.uniform(-9, 9)))
        out = _pan(lead, -voice["spread"]) + voice["double"] * _pan(double, voice["spread"])
    if voice["harmony"]:
        chosen = [p for p in _phrases(notes) if layer_rng.random() < voice["harmony_phrases"]]
        upper = harmony_notes([n for p in chosen for n in p], voice["harmony"], scale=melody_scale(notes),
                              highest=REGISTERS[voice["register"]]["range"][1] + 3)
        side = float(layer_rng.choice((-1.0, 1.0))) * max(voice["spread"], 0.4)
        out += voice["harmony_level"] * _pan(take(upper, n_samples, harmony_rng, **settings), side)
    return out.astype(np.float32)
