"""Production effects, each usable alone: float32 ``(channels, samples)`` in, same shape and length out.

Every parameter is keyword-only and plain (floats, ints, lists of dicts), so a chain of effects can be written to
JSON and replayed exactly. Filters, level logic and the reverb (a numba port of JUCE's Freeverb) are our own
code; compression and the MP3 codec come from pedalboard; resampling from soxr. Resamplers and codecs may be off by
a few samples: outputs are brought back to the input length with :func:`msr_lib.audio.fit_length`.

Lesson: notebooks/01_data_and_mastering.ipynb
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pedalboard
import scipy.ndimage
import scipy.signal
import soxr

from msr_lib.audio import check_audio, fit_length, loudness_lufs, resample
from msr_lib.errors import AudioError, MSRError

#: Largest gain :func:`normalize_loudness` applies. A near-silent chunk is raised at most this much instead of
#: being blown up to the target; a silent one (loudness −inf) is left untouched.
MAX_LOUDNESS_GAIN_DB = 40.0
#: ITU-R BS.1770 gating block; shorter signals are measured by repeating them periodically up to one block.
LOUDNESS_BLOCK_S = 0.4
EQ_KINDS = ("peak", "low_shelf", "high_shelf", "high_pass", "low_pass")


def _as_audio(audio) -> np.ndarray:
    """Validated contiguous float32 ``(channels, samples)``: the fast path (two reductions instead of an
    ``isfinite`` mask) for what chains pass between effects, :func:`msr_lib.audio.check_audio` for the rest."""
    if (isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] > 0
            and audio.flags.c_contiguous and math.isfinite(audio.max()) and math.isfinite(audio.min())):
        return audio
    return np.ascontiguousarray(check_audio(audio), dtype=np.float32)


def db_to_gain(gain_db: float) -> float:
    return float(10.0 ** (gain_db / 20.0))


# ---------------------------------------------------------------- equaliser

def biquad_sos(kind: str, freq_hz: float, sample_rate: int, *, gain_db: float = 0.0, q: float = 0.707) -> np.ndarray:
    """One second-order section ``[b0, b1, b2, 1, a1, a2]`` from the RBJ Audio-EQ-Cookbook formulas.

    ``kind`` is one of :data:`EQ_KINDS`; ``gain_db`` is ignored by the pass filters. Frequencies are clamped
    below 0.45 × the sample rate.
    """
    if kind not in EQ_KINDS:
        raise MSRError(f"unknown EQ band kind {kind!r}; expected one of {', '.join(EQ_KINDS)}")
    if q <= 0 or freq_hz <= 0:
        raise MSRError(f"EQ band needs a positive frequency and Q, got freq_hz={freq_hz}, q={q}")
    w0 = 2 * math.pi * min(freq_hz, 0.45 * sample_rate) / sample_rate
    cos_w, alpha = math.cos(w0), math.sin(w0) / (2 * q)
    amp = 10.0 ** (gain_db / 40.0)
    if kind == "peak":
        b = [1 + alpha * amp, -2 * cos_w, 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * cos_w, 1 - alpha / amp]
    elif kind in ("low_shelf", "high_shelf"):
        sign = 1 if kind == "low_shelf" else -1  # the two shelves are mirror images in cos(w0)
        root = 2 * math.sqrt(amp) * alpha
        b = [amp * ((amp + 1) - sign * (amp - 1) * cos_w + root),
             sign * 2 * amp * ((amp - 1) - sign * (amp + 1) * cos_w),
             amp * ((amp + 1) - sign * (amp - 1) * cos_w - root)]
        a = [(amp + 1) + sign * (amp - 1) * cos_w + root,
             -sign * 2 * ((amp - 1) + sign * (amp + 1) * cos_w),
             (amp + 1) + sign * (amp - 1) * cos_w - root]
    elif kind == "low_pass":
        b = [(1 - cos_w) / 2, 1 - cos_w, (1 - cos_w) / 2]
        a = [1 + alpha, -2 * cos_w, 1 - alpha]
    else:  # high_pass
        b = [(1 + cos_w) / 2, -(1 + cos_w), (1 + cos_w) / 2]
        a = [1 + alpha, -2 * cos_w, 1 - alpha]
    return np.array([b[0], b[1], b[2], a[0], a[1], a[2]]) / a[0]


#: From this many sections on, stereo runs the wavefront loop (faster for long cascades, slower for short ones).
WAVEFRONT_MIN_SECTIONS = 6


def sos_filter(sos: np.ndarray, audio: np.ndarray, out: np.ndarray | None = None,
               state: np.ndarray | None = None) -> np.ndarray:
    """Run the biquad cascade ``sos`` (``(sections, 6)``, like scipy's) along the last axis of ``(channels,
    samples)`` audio, with float64 state: what ``scipy.signal.sosfilt`` computes, faster. ``state``
    (``(sections, channels, 2)``, like sosfilt's ``zi`` per channel) is the initial state, updated in place;
    ``out`` defaults to a new array of the input's dtype."""
    from msr_lib.degrade.biquads import sample_by_sample, wavefront

    sos = np.ascontiguousarray(sos, dtype=np.float64)
    out = np.empty_like(audio) if out is None else out
    if state is None and len(sos) >= WAVEFRONT_MIN_SECTIONS and audio.shape[0] == 2:
        return wavefront(sos, audio, out)
    if state is None:
        state = np.zeros((len(sos), audio.shape[0], 2))
    return sample_by_sample(sos, audio, state, out)


def equalize(audio, sample_rate: int, *, bands) -> np.ndarray:
    """Parametric/graphic EQ: a cascade of biquads, one per band.

    ``bands``: list of dicts ``{"kind": "peak"|"low_shelf"|"high_shelf"|"high_pass"|"low_pass", "freq_hz": …,
    "gain_db": … (peaks and shelves), "q": …}``.
    """
    audio = _as_audio(audio)
    if not bands:
        return audio.copy()
    sos = np.stack([biquad_sos(b["kind"], b["freq_hz"], sample_rate, gain_db=b.get("gain_db", 0.0),
                               q=b.get("q", 0.707)) for b in bands])
    return sos_filter(sos, audio)


def high_pass(audio, sample_rate: int, *, cutoff_hz: float, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth high-pass (run forward and backward, so the slope doubles and nothing shifts in time).

    Computes what ``scipy.signal.sosfiltfilt`` does (odd extension at both ends, steady-state initial
    conditions) in float64, in one numba pass per direction.
    """
    audio = _as_audio(audio)
    sos = scipy.signal.butter(order, cutoff_hz, btype="highpass", fs=sample_rate, output="sos")
    pad = 3 * (2 * len(sos) + 1)
    if audio.shape[-1] <= pad:
        return sos_filter(sos, audio)
    from msr_lib.degrade.biquads import zero_phase

    return zero_phase(sos, scipy.signal.sosfilt_zi(sos), audio, pad)


# ---------------------------------------------------------------- dynamics, colour, space, bandwidth

def compress(audio, sample_rate: int, *, threshold_db: float, ratio: float, attack_ms: float, release_ms: float,
             makeup_db: float = 0.0) -> np.ndarray:
    """Feed-forward compressor (pedalboard): gain reduction above ``threshold_db`` (dBFS) by ``ratio``, then makeup gain."""
    audio = _as_audio(audio)
    if ratio < 1:
        raise MSRError(f"compressor ratio must be >= 1, got {ratio}")
    board = pedalboard.Compressor(threshold_db=threshold_db, ratio=ratio, attack_ms=attack_ms, release_ms=release_ms)
    out = board(audio, sample_rate)
    if makeup_db:
        out *= np.float32(db_to_gain(makeup_db))
    return out


def saturate(audio, sample_rate: int | None = None, *, drive_db: float, mix: float = 1.0) -> np.ndarray:
    """tanh soft clipping: ``tanh(g·x) / g`` with ``g`` = ``drive_db`` as gain.

    Dividing by ``g`` keeps quiet passages at unity, so the drive only bends the loud parts (odd harmonics);
    ``mix`` blends with the dry signal. ``sample_rate`` is accepted for a uniform effect signature and unused.
    """
    audio = _as_audio(audio)
    drive = np.float32(db_to_gain(drive_db))
    wet = np.tanh(audio * drive) / drive
    if mix >= 1.0:
        return wet.astype(np.float32, copy=False)
    return (mix * wet + (1.0 - mix) * audio).astype(np.float32)


#: Freeverb delay lines (samples at 44.1 kHz; JUCE's tunings): 8 parallel combs, then 4 series all-passes per
#: channel, the right channel's lines longer by the stereo spread.
FREEVERB_COMBS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
FREEVERB_ALLPASSES = (556, 441, 341, 225)
FREEVERB_SPREAD = 23
#: The rate Freeverb's delay lengths (in samples) are tuned for; other rates scale them.
FREEVERB_RATE = 44_100


@functools.lru_cache(maxsize=1)
def _freeverb_kernel():
    """Compile (numba, cached on disk) the per-sample Freeverb loop, on first use."""
    import numba

    @numba.njit(cache=True, boundscheck=False)
    def freeverb(audio, comb_delays, allpass_delays, feedback, damp, input_gain, wet_same, wet_cross):
        # Delay lines are ring buffers, one row per time step, so the 16 combs (8 left, 8 right) of one step are
        # read from one contiguous row. Comb: the line's output goes through a one-pole low-pass (the damping)
        # and is fed back; all-pass: Schroeder's, feedback 0.5.
        ring = 1
        while ring <= max(comb_delays.max(), allpass_delays.max()):
            ring *= 2
        mask = ring - 1
        combs = np.zeros((ring, 16), np.float32)
        damped = np.zeros(16, np.float32)
        feed = np.zeros(16, np.float32)
        allpasses = np.zeros((ring, 8), np.float32)  # stage k: left in column 2k, right in 2k + 1
        undamped, half = np.float32(1.0) - damp, np.float32(0.5)
        out = np.empty_like(audio)
        for i in range(audio.shape[1]):
            x = (audio[0, i] + audio[1, i]) * input_gain
            row = i & mask
            for k in range(16):
                damped[k] = combs[row, k] * undamped + damped[k] * damp
                feed[k] = x + damped[k] * feedback
            for k in range(16):
                combs[(i + comb_delays[k]) & mask, k] = feed[k]
            left, right = np.float32(0.0), np.float32(0.0)
            for k in range(8):
                left += combs[row, k]
                right += combs[row, 8 + k]
            for k in range(4):
                delayed_l, delayed_r = allpasses[row, 2 * k], allpasses[row, 2 * k + 1]
                allpasses[(i + allpass_delays[2 * k]) & mask, 2 * k] = left + delayed_l * half
                allpasses[(i + allpass_delays[2 * k + 1]) & mask, 2 * k + 1] = right + delayed_r * half
                left, right = delayed_l - left, delayed_r - right
            out[0, i] = audio[0, i] + left * wet_same + right * wet_cross
            out[1, i] = audio[1, i] + right * wet_same + left * wet_cross
        return out

    return freeverb


def add_reverb(audio, sample_rate: int, *, room_size: float, damping: float, wet: float,
               width: float = 1.0) -> np.ndarray:
    """Algorithmic (Freeverb) reverb; the dry path stays at unity, ``wet`` sets the return level.

    Stereo input runs our numba port of JUCE's ``Reverb`` (what pedalboard's ``Reverb`` runs, equal to it to
    float32 rounding, about 1.7× faster); other channel counts run pedalboard's. The tail is cut at the input's
    length.
    """
    audio = _as_audio(audio)
    if audio.shape[0] != 2:
        # pedalboard/JUCE scale dry by 2, so dry_level=0.5 is unity.
        board = pedalboard.Reverb(room_size=room_size, damping=damping, wet_level=wet, dry_level=0.5, width=width)
        return board(audio, sample_rate)
    scale = sample_rate / FREEVERB_RATE
    combs = [int(d * scale) for d in FREEVERB_COMBS] + [int((d + FREEVERB_SPREAD) * scale) for d in FREEVERB_COMBS]
    allpasses = [int((d + spread) * scale) for d in FREEVERB_ALLPASSES for spread in (0, FREEVERB_SPREAD)]
    wet_gain = 3.0 * wet  # JUCE's scale factors: wet × 3, damping × 0.4, feedback 0.7 + 0.28 × room size
    return _freeverb_kernel()(audio, np.array(combs), np.array(allpasses), np.float32(0.7 + 0.28 * room_size),
                              np.float32(0.4 * damping), np.float32(0.015), np.float32(0.5 * wet_gain * (1 + width)),
                              np.float32(0.5 * wet_gain * (1 - width)))


def band_limit(audio, sample_rate: int, *, rate: int | None = None, cutoff_hz: float | None = None) -> np.ndarray:
    """Band-limit by resampling to a low ``rate`` (or ``2·cutoff_hz``) and back with soxr; time-aligned, same length."""
    audio = _as_audio(audio)
    if (rate is None) == (cutoff_hz is None):
        raise MSRError("band_limit needs exactly one of rate= or cutoff_hz=")
    low_rate = int(round(rate if rate is not None else 2 * cutoff_hz))
    if low_rate >= sample_rate:
        return audio.copy()
    if low_rate < 1000:
        raise MSRError(f"band_limit rate must be at least 1000 Hz, got {low_rate}")
    # soxr per channel on contiguous rows: no (samples, channels) transposes
    out = [soxr.resample(soxr.resample(channel, sample_rate, low_rate, quality="HQ"), low_rate, sample_rate,
                         quality="HQ") for channel in audio]
    return fit_length(np.stack([fit_length(c[None, :], audio.shape[-1])[0] for c in out]), audio.shape[-1])


# ---------------------------------------------------------------- loudness and true peak

@functools.lru_cache(maxsize=8)
def _k_weighting(sample_rate: int) -> np.ndarray:
    import pyloudnorm

    stages = [scipy.signal.tf2sos(stage.b, stage.a) for stage in pyloudnorm.Meter(sample_rate)._filters.values()]
    return np.concatenate(stages)


def _integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770-4 gated loudness, computing exactly what pyloudnorm's ``integrated_loudness`` computes
    (its K-weighting filters, block bounds and gates), vectorised, filtered by :func:`sos_filter` into float32:
    about 4× faster, equal to ~1e-4 dB."""
    weighted = sos_filter(_k_weighting(sample_rate), np.ascontiguousarray(audio, dtype=np.float32))
    block, step = LOUDNESS_BLOCK_S, 0.25 * LOUDNESS_BLOCK_S
    n_blocks = int(np.round((weighted.shape[-1] / sample_rate - block) / step)) + 1
    starts = (block * (np.arange(n_blocks) * 0.25) * sample_rate).astype(np.int64)
    ends = (block * (np.arange(n_blocks) * 0.25 + 1) * sample_rate).astype(np.int64)
    hop = step * sample_rate
    if float(hop).is_integer():  # blocks are 4 whole hops: sum squares per hop, then 4 hops per block
        hop = int(hop)
        hops = n_blocks + 3
        squares = np.square(np.pad(weighted, ((0, 0), (0, max(0, hops * hop - weighted.shape[-1]))))[:, :hops * hop])
        per_hop = squares.reshape(weighted.shape[0], hops, hop).sum(axis=-1, dtype=np.float64)
        energy = per_hop[:, 0:n_blocks] + per_hop[:, 1:n_blocks + 1] + per_hop[:, 2:n_blocks + 2] + per_hop[:, 3:]
    else:
        starts, ends = np.minimum(starts, weighted.shape[-1]), np.minimum(ends, weighted.shape[-1])
        cumulative = np.concatenate([np.zeros((weighted.shape[0], 1)),
                                     np.cumsum(np.square(weighted, dtype=np.float64), axis=-1)], axis=-1)
        energy = cumulative[:, ends] - cumulative[:, starts]
    power = energy / (block * sample_rate)  # (channels, blocks); BS.1770 weights L and R by 1
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(power.sum(axis=0))
        gated = block_lufs >= -70.0
        if not gated.any():
            return float("-inf")
        relative = -0.691 + 10.0 * np.log10(power[:, gated].mean(axis=1).sum()) - 10.0
        gated &= block_lufs > relative
        if not gated.any():
            return float("-inf")
        return float(-0.691 + 10.0 * np.log10(power[:, gated].mean(axis=1).sum()))


def measure_loudness_lufs(audio, sample_rate: int) -> float:
    """Integrated loudness (LUFS), equal to :func:`msr_lib.audio.loudness_lufs` (pyloudnorm) but vectorised;
    −inf for silence (anything under the −70 LUFS absolute gate).

    Signals shorter than one 400 ms block are repeated periodically up to a block (zero-padding would read them
    too quiet and make the normaliser overshoot).
    """
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.shape[0] > 2:
        return loudness_lufs(audio, sample_rate)  # surround channel weights: leave them to pyloudnorm
    block = int(LOUDNESS_BLOCK_S * sample_rate) + 1
    if 0 < audio.shape[-1] < block:
        audio = np.tile(audio, (1, -(-block // audio.shape[-1])))
    return _integrated_loudness(audio, sample_rate)


def loudness_gain_db(audio, sample_rate: int, target_lufs: float, *, max_gain_db: float = MAX_LOUDNESS_GAIN_DB) -> float:
    """Gain (dB) that brings ``audio`` to ``target_lufs``: 0 for silence, at most ``max_gain_db``."""
    return gain_to_target_db(measure_loudness_lufs(audio, sample_rate), target_lufs, max_gain_db=max_gain_db)


def gain_to_target_db(lufs: float, target_lufs: float, *, max_gain_db: float = MAX_LOUDNESS_GAIN_DB) -> float:
    """Gain (dB) from a measured loudness to ``target_lufs``: 0 for silence (−inf), at most ``max_gain_db``."""
    if not math.isfinite(lufs):
        return 0.0
    return float(min(target_lufs - lufs, max_gain_db))


def normalize_loudness(audio, sample_rate: int, target_lufs: float = -14.0, *,
                       max_gain_db: float = MAX_LOUDNESS_GAIN_DB) -> np.ndarray:
    """Static gain to ``target_lufs`` integrated loudness (BS.1770, pyloudnorm); silent input comes back unchanged,
    and the gain is capped at ``max_gain_db`` so a near-silent chunk is not blown up to full level."""
    audio = _as_audio(audio)
    return audio * np.float32(db_to_gain(loudness_gain_db(audio, sample_rate, target_lufs, max_gain_db=max_gain_db)))


#: True-peak analysis works on blocks of this many samples; only blocks whose sample peak is within
#: :data:`TRUE_PEAK_MARGIN_DB` of the level that matters are 4× oversampled. Sample peaks bound the true peak from
#: below, and the inter-sample overshoot of band-limited audio stays well under the margin (3 dB for a sine at a
#: quarter of the sample rate), so the skipped blocks cannot hold the peak.
TRUE_PEAK_BLOCK = 1024
TRUE_PEAK_MARGIN_DB = 4.0
#: Samples of context on each side of an oversampled stretch: soxr's filter then gives the same values as
#: oversampling the whole signal (to float32 rounding).
TRUE_PEAK_CONTEXT = 256


def _oversampled_peak(audio: np.ndarray, sample_rate: int, start: int, stop: int) -> np.ndarray:
    """Stereo-linked 4×-oversampled peak around each sample of ``[start, stop)``, oversampling that stretch with
    :data:`TRUE_PEAK_CONTEXT` samples on each side."""
    lo, hi = max(start - TRUE_PEAK_CONTEXT, 0), min(stop + TRUE_PEAK_CONTEXT, audio.shape[-1])
    up = np.abs(soxr.resample(audio[:, lo:hi].T, sample_rate, 4 * sample_rate, quality="HQ"))
    up = fit_length(up.max(axis=1)[None, :], 4 * (hi - lo))[0]
    return up[4 * (start - lo): 4 * (stop - lo)].reshape(stop - start, 4).max(axis=1)


class TruePeakMeter:
    """Stereo-linked true peak around each sample, from the same soxr 4× oversampling as
    :func:`msr_lib.audio.true_peak_dbtp`, computed lazily: a block is oversampled only once a caller asks about
    levels its sample peak comes within :data:`TRUE_PEAK_MARGIN_DB` of."""

    def __init__(self, audio: np.ndarray, sample_rate: int):
        self.audio = _as_audio(audio)
        self.sample_rate = sample_rate
        #: per-sample peak magnitude: the sample peak, raised to the oversampled peak in analysed blocks
        self.peak = np.abs(self.audio).max(axis=0)
        n_blocks = -(-self.peak.size // TRUE_PEAK_BLOCK)
        padded = np.pad(self.peak, (0, n_blocks * TRUE_PEAK_BLOCK - self.peak.size))
        self.block_peak = padded.reshape(n_blocks, TRUE_PEAK_BLOCK).max(axis=1)
        self.analysed = np.zeros(n_blocks, dtype=bool)

    def envelope(self, floor: float) -> np.ndarray:
        """:attr:`peak`, oversampled wherever the sample peak reaches ``floor`` (linear) less the margin."""
        need = (self.block_peak >= floor * db_to_gain(-TRUE_PEAK_MARGIN_DB)) & ~self.analysed
        if need.any():
            edges = np.flatnonzero(np.diff(np.concatenate([[0], need.view(np.int8), [0]])))
            for first, last in zip(edges[::2], edges[1::2]):  # runs of neighbouring blocks, oversampled together
                self._oversample(first * TRUE_PEAK_BLOCK, min(last * TRUE_PEAK_BLOCK, self.peak.size))
            self.analysed |= need
        return self.peak

    def _oversample(self, start: int, stop: int) -> None:
        per_sample = _oversampled_peak(self.audio, self.sample_rate, start, stop)
        np.maximum(self.peak[start:stop], per_sample, out=self.peak[start:stop])

    def max_dbtp(self) -> float:
        """True peak of the whole signal (dBTP), equal to :func:`msr_lib.audio.true_peak_dbtp`; −inf for silence."""
        top = float(self.block_peak.max())
        if top <= 0:
            return float("-inf")
        return 20.0 * math.log10(float(self.envelope(top).max()))


def true_peak_db(audio, sample_rate: int) -> float:
    """True peak (dBTP, 4× oversampled), equal to :func:`msr_lib.audio.true_peak_dbtp` but oversampling only the
    blocks that can hold it (see :class:`TruePeakMeter`); −inf for silence."""
    return TruePeakMeter(audio, sample_rate).max_dbtp()


def _forward_max(values: np.ndarray, window: int) -> np.ndarray:
    """Max over ``[n, n + window - 1]`` for each n (zeros beyond the end)."""
    if window <= 1:
        return values
    padded = scipy.ndimage.maximum_filter1d(np.pad(values, (0, window)), size=window, mode="constant")
    return padded[window // 2: window // 2 + values.size]


def limit_true_peak(audio, sample_rate: int, ceiling_dbtp: float = -1.0, *, release_ms: float = 50.0,
                    lookahead_ms: float = 1.0, input_gain_db: float = 0.0) -> np.ndarray:
    """Look-ahead true-peak limiter (our numpy design): output true peak ≤ ``ceiling_dbtp`` (4× oversampled).

    ``input_gain_db`` is applied first (a limiter's drive). Gain reduction in dB is computed per sample from the
    4×-oversampled peak, held across the look-ahead window, released linearly in dB (one neper, 8.7 dB, per
    ``release_ms``) and smoothed over the look-ahead, so it has fully arrived when the peak does. A final static
    trim catches inter-sample overshoot of the gain-modulated signal. Material under the ceiling passes untouched.
    """
    audio = _as_audio(audio)
    return TruePeakLimiter(audio, sample_rate).limit(ceiling_dbtp, release_ms=release_ms, lookahead_ms=lookahead_ms,
                                                     input_gain_db=input_gain_db)


class TruePeakLimiter:
    """The limiter of :func:`limit_true_peak` with the oversampled peak analysis done once, so a loudness
    search can try several input gains cheaply."""

    def __init__(self, audio: np.ndarray, sample_rate: int):
        self.meter = TruePeakMeter(audio, sample_rate)
        self.audio = self.meter.audio
        self.sample_rate = sample_rate

    def limit(self, ceiling_dbtp: float = -1.0, *, release_ms: float = 50.0, lookahead_ms: float = 1.0,
              input_gain_db: float = 0.0) -> np.ndarray:
        sample_rate = self.sample_rate
        gain = np.float32(db_to_gain(input_gain_db))
        threshold = db_to_gain(ceiling_dbtp - input_gain_db)  # input peaks above this need gain reduction
        if self.meter.block_peak.max() * db_to_gain(TRUE_PEAK_MARGIN_DB) < threshold:
            return self.audio * gain  # not even the largest possible overshoot reaches the ceiling
        envelope = self.meter.envelope(threshold)
        over = np.flatnonzero(envelope > np.float32(threshold))
        out = self.audio * gain
        if not over.size:
            return out
        window = max(1, int(round(lookahead_ms * 1e-3 * sample_rate)))
        per_sample_db = 20.0 * math.log10(math.e) / max(release_ms * 1e-3 * sample_rate, 1.0)
        stretches = _reduction_stretches(envelope, over, threshold, window, per_sample_db)
        for start, stop in stretches:
            smoothed_db = _smoothed_reduction_db(envelope, threshold, window, per_sample_db, start, stop)
            out[:, start:stop] = self.audio[:, start:stop] * (
                10.0 ** ((input_gain_db - smoothed_db) / 20.0)).astype(np.float32)
        excess = 20.0 * math.log10(self._output_true_peak(out, stretches, gain)) - ceiling_dbtp
        if excess > -0.01:
            out *= np.float32(db_to_gain(-excess - 0.02))
        return out


    def _output_true_peak(self, out: np.ndarray, stretches: list[tuple[int, int]], gain: np.float32) -> float:
        """True peak (linear) of the limiter's output: oversampled afresh only around the gain-reduced stretches.
        Elsewhere the output is the input times ``gain``, so its true peak is the input's (analysed wherever it
        can come near the ceiling) times ``gain``, equal to measuring the output to float32 rounding."""
        peak, done = 0.0, 0
        for start, stop in stretches:  # the context around a stretch sees its gain change: measure it too
            start, stop = max(start - TRUE_PEAK_CONTEXT, 0), min(stop + TRUE_PEAK_CONTEXT, out.shape[-1])
            unchanged = float(self.meter.peak[done:start].max(initial=0.0)) * float(gain)
            measured = max(float(np.abs(out[:, start:stop]).max()),
                           float(_oversampled_peak(out, self.sample_rate, start, stop).max()))
            peak, done = max(peak, unchanged, measured), stop
        return max(peak, float(self.meter.peak[done:].max(initial=0.0)) * float(gain))


def _reduction_stretches(envelope: np.ndarray, over: np.ndarray, threshold: float, window: int,
                         per_sample_db: float) -> list[tuple[int, int]]:
    """``(start, stop)`` of the stretches where the limiter's gain reduction is not zero: around each sample over
    the threshold (indices ``over``), from the look-ahead before it to the end of its release, with a few samples
    to spare; overlapping stretches are merged. Everywhere else the gain is exactly the input gain."""
    reduction_db = 20.0 * np.log10(envelope[over] / np.float32(threshold))
    release = np.ceil(reduction_db / per_sample_db).astype(np.int64)
    starts = np.maximum(over - window - 2, 0)
    stops = np.minimum(over + 2 * window + release + 4, envelope.size)
    reach = np.maximum.accumulate(stops)  # a stretch ends where no later one starts before its reach
    first = np.flatnonzero(np.concatenate([[True], starts[1:] > reach[:-1]]))
    last = np.concatenate([first[1:] - 1, [over.size - 1]])
    return list(zip(starts[first].tolist(), reach[last].tolist()))


def _smoothed_reduction_db(envelope: np.ndarray, threshold: float, window: int, per_sample_db: float,
                           start: int, stop: int) -> np.ndarray:
    """The limiter's gain reduction (dB) over ``[start, stop)``, where it is zero just before and after: per sample
    from the peak (±1 sample of slack covers the resampler's sub-sample alignment), held across the look-ahead
    window, released linearly in dB, then averaged over the look-ahead window."""
    lo, hi = max(start - 1, 0), min(stop + 1, envelope.size)
    peak = scipy.ndimage.maximum_filter1d(envelope[lo:hi], size=3, mode="nearest")[start - lo: stop - lo]
    with np.errstate(divide="ignore"):
        reduction_db = np.maximum(20.0 * np.log10(peak / np.float32(threshold)), 0.0)
    ahead = _forward_max(reduction_db, window)
    steps = np.arange(start, stop, dtype=np.float64)
    released = np.maximum.accumulate(ahead + per_sample_db * steps) - per_sample_db * steps
    # before the signal starts, hold the first value: the gain must already be down for a peak at sample 0
    cumulative = np.cumsum(np.concatenate([np.full(window, released[0] if start == 0 else 0.0), released]))
    return (cumulative[window:] - cumulative[:-window]) / window  # mean over [n - window + 1, n]


# ---------------------------------------------------------------- lossy codec

#: A rate LAME encodes, used for input at a rate it refuses.
MP3_FALLBACK_RATE = 44_100

def mp3_codec(audio, sample_rate: int, *, vbr_quality: float) -> np.ndarray:
    """Encode and decode as MP3 (LAME VBR via pedalboard; quality 0 = best … 10 = worst); same length, aligned.

    Rates LAME does not take are resampled to :data:`MP3_FALLBACK_RATE` and back.
    """
    audio = _as_audio(audio)
    codec = pedalboard.MP3Compressor(vbr_quality=float(vbr_quality))
    try:
        out = codec(audio, sample_rate)
    except ValueError:
        coded = codec(resample(audio, sample_rate, MP3_FALLBACK_RATE), MP3_FALLBACK_RATE)
        out = resample(coded, MP3_FALLBACK_RATE, sample_rate)
    return fit_length(np.ascontiguousarray(out, dtype=np.float32), audio.shape[-1])


#: Effects by name, all callable as ``fn(audio, sample_rate, **params)`` (what a chain record replays).
EFFECTS = {
    "equalize": equalize,
    "high_pass": high_pass,
    "compress": compress,
    "saturate": saturate,
    "add_reverb": add_reverb,
    "band_limit": band_limit,
    "normalize_loudness": normalize_loudness,
    "limit_true_peak": limit_true_peak,
    "mp3_codec": mp3_codec,
}


def apply_effect(audio, sample_rate: int, effect: str, params: dict) -> np.ndarray:
    """Run one named effect from :data:`EFFECTS` with its parameter dict."""
    if effect not in EFFECTS:
        raise AudioError(f"unknown effect {effect!r}; expected one of {', '.join(EFFECTS)}")
    return EFFECTS[effect](audio, sample_rate, **params)
