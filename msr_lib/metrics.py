"""Metrics: how close is an estimated stem to the clean reference?

Lesson: notebooks/02_measuring_restoration.ipynb

- :func:`multi_mel_snr` — the MSR challenge's headline metric (docs/DESIGN.md): a scale-invariant gain on the
  estimate, then mel power spectrograms at 48 kHz at three resolutions, SNR in dB, mean over resolutions, then
  channels. :func:`multi_mel_snr_batch` computes it for whole torch batches on any device (a validation metric in
  training).
- :func:`si_snr` — scale-invariant SNR of the waveform (arXiv 1811.10418), also called "SI-SDR". Per channel.
- :func:`snr` — plain, **not** scale-invariant SNR of the waveform. This is the "SDR" of MUSDB-style leaderboards
  as the Music Demixing Challenge defines it (10·log10((Σref² + 1e-7) / (Σ(ref − est)² + 1e-7)), sums over samples
  *and* channels), **not** BSS-eval's SDR (``museval``), which first allows a distortion filter.
- :func:`zimtohrli_distance` — perceptual distance (PyPI ``zimtohrli``), **lower is better**, 0 for identical
  signals; :func:`zimtohrli_mos` maps it to an approximate mean opinion score (1–5, higher is better).
- :func:`frechet_distance` — the Fréchet distance between two embedding sets. **FAD-CLAP is not available in this
  workbench:** no CLAP model ships with it and nothing is downloaded; anyone who has embeddings can compare them
  with this function.
- :data:`METRICS` — the one metric registry: name → :class:`Metric` (``fn(estimate, reference, sample_rate) ->
  float``, ``higher_is_better``, ``unit``, ``label``), what ``msr evaluate``, :mod:`msr_lib.evaluate` and
  :mod:`msr_lib.metric_curves` score with.

Inputs are ``(channels, samples)`` numpy arrays or torch tensors (1-D is taken as mono); estimate and reference must
have the same shape and finite samples, or :class:`~msr_lib.errors.AudioError` is raised.

Silent references: a reference channel whose peak is at or below :data:`msr_lib.audio.SILENT_PEAK` (−120 dBFS:
digital silence or 24-bit dither) has no meaningful score. Per-channel metrics (Multi-Mel-SNR, SI-SNR, Zimtohrli)
leave such channels out of their channel mean, and return ``nan`` when every channel is silent; :func:`snr` (one sum
over all channels) returns ``nan`` when the whole reference is silent. :mod:`msr_lib.evaluate` leaves silent stems
out of its means and counts them.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from msr_lib.audio import SILENT_PEAK, resample
from msr_lib.errors import AudioError, MSRError

METRIC_SAMPLE_RATE = 48_000
#: (n_fft, hop, n_mels) of the three mel resolutions of Multi-Mel-SNR.
MEL_RESOLUTIONS = ((512, 256, 80), (1024, 512, 128), (2048, 1024, 192))
EPS = 1e-8
#: Multi-Mel-SNR needs more than n_fft/2 samples at 48 kHz for the reflect padding of the largest resolution
MIN_MEL_SAMPLES = MEL_RESOLUTIONS[-1][0] // 2 + 1
#: shortest signal passed to zimtohrli (its C++ core crashes the process on signals under ~4000 samples)
MIN_ZIMTOHRLI_SAMPLES = METRIC_SAMPLE_RATE // 10


# ----------------------------------------------------------------------------------------------------------------
# Multi-Mel-SNR
# ----------------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _mel_filterbank64(n_fft: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    import librosa

    with warnings.catch_warnings():  # 80 mels on a 512-point FFT leave the lowest filters empty, as in torchaudio
        warnings.simplefilter("ignore", UserWarning)
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2,
                                 htk=True, norm=None, dtype=np.float64)
    return torch.from_numpy(fb)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int = METRIC_SAMPLE_RATE,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)`` HTK-scale triangular filters from 0 Hz to Nyquist, no area normalisation —
    torchaudio ``MelSpectrogram``'s defaults (``melscale_fbanks`` computes the same triangles), built with librosa."""
    return _mel_filterbank64(n_fft, n_mels, sample_rate).to(dtype)


def mel_power_spectrogram(audio: torch.Tensor, n_fft: int, hop: int, n_mels: int) -> torch.Tensor:
    """Mel power spectrogram of ``(..., samples)`` audio at 48 kHz: ``(..., n_mels, frames)``.

    Periodic Hann window of ``n_fft``, centred frames with reflect padding, |STFT|² (power 2)."""
    shape = audio.shape
    flat = audio.reshape(-1, shape[-1])
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(flat, n_fft=n_fft, hop_length=hop, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()                       # (N, bins, frames)
    mel = torch.matmul(mel_filterbank(n_fft, n_mels, dtype=audio.dtype).to(audio.device), power)
    return mel.reshape(*shape[:-1], n_mels, mel.shape[-1])


def scale_invariant_estimate(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """α·estimate with α = ⟨ref, est⟩ / (⟨est, est⟩ + 1e-8), per signal (last axis, i.e. per channel)."""
    alpha = (reference * estimate).sum(-1, keepdim=True) / (estimate.square().sum(-1, keepdim=True) + EPS)
    return alpha * estimate


def _nanmean_channels(values: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis ignoring ``nan`` (silent channels); ``nan`` where every channel is."""
    valid = ~torch.isnan(values)
    total = torch.where(valid, values, torch.zeros_like(values)).sum(-1)
    count = valid.sum(-1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def multi_mel_snr_batch(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int = METRIC_SAMPLE_RATE,
                        *, reduce_channels: bool = True) -> torch.Tensor:
    """Multi-Mel-SNR (dB, higher is better) of torch batches ``(..., channels, samples)`` on their own device.

    Returns ``(...)`` (mean over channels, silent channels left out) or ``(..., channels)`` with
    ``reduce_channels=False``; ``nan`` where the reference is silent. Audio at another rate is resampled to 48 kHz
    first with :func:`resample_torch`. Computes in float32 (float64 inputs stay float64). No input validation
    beyond shapes (it would force a device sync): pass finite audio.
    """
    if estimate.shape != reference.shape:
        raise AudioError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape")
    if estimate.ndim < 2:
        raise AudioError(f"expected (..., channels, samples), got shape {tuple(estimate.shape)}")
    dtype = torch.float64 if estimate.dtype == torch.float64 else torch.float32
    estimate, reference = estimate.to(dtype), reference.to(dtype)
    if sample_rate != METRIC_SAMPLE_RATE:
        estimate = resample_torch(estimate, sample_rate, METRIC_SAMPLE_RATE)
        reference = resample_torch(reference, sample_rate, METRIC_SAMPLE_RATE)
    if reference.shape[-1] < MIN_MEL_SAMPLES:
        raise AudioError(f"Multi-Mel-SNR needs at least {MIN_MEL_SAMPLES} samples at 48 kHz "
                         f"(~{MIN_MEL_SAMPLES / METRIC_SAMPLE_RATE * 1000:.0f} ms), got {reference.shape[-1]}")
    estimate = scale_invariant_estimate(estimate, reference)
    total = None
    for n_fft, hop, n_mels in MEL_RESOLUTIONS:
        mel_ref = mel_power_spectrogram(reference, n_fft, hop, n_mels)
        mel_est = mel_power_spectrogram(estimate, n_fft, hop, n_mels)
        signal = mel_ref.square().sum((-2, -1))
        noise = (mel_ref - mel_est).square().sum((-2, -1))
        value = 10 * torch.log10(signal / (noise + EPS))
        total = value if total is None else total + value
    values = total / len(MEL_RESOLUTIONS)                                   # (..., channels)
    values = values.masked_fill(reference.abs().amax(-1) <= SILENT_PEAK, float("nan"))
    return _nanmean_channels(values) if reduce_channels else values


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, zeros: int = 64, rolloff: float = 0.957) -> torch.Tensor:
    """Polyphase windowed-sinc (Hann) kernels ``(new, 1, width)`` for a rational rate change orig → new (reduced).

    torchaudio's ``sinc_interp_hann`` construction. 64 zero crossings and a 0.957 roll-off keep 44.1 → 48 kHz flat
    to 20 kHz and follow soxr HQ's transition band (20.5–22 kHz) closely, so Multi-Mel-SNR through this resampler
    stays within ~0.01 dB of the soxr path (the roll-off was tuned on noisy music-like signals for that)."""
    cutoff = min(orig, new) * rolloff
    width = int(np.ceil(zeros * orig / cutoff))
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, :] / orig      # input offsets
    phase = -torch.arange(new, dtype=torch.float64)[:, None] / new                       # output phases
    t = (phase + idx) * cutoff
    t = t.clamp(-zeros, zeros)
    window = torch.cos(t * np.pi / zeros / 2) ** 2
    kernel = torch.where(t == 0, torch.tensor(1.0, dtype=torch.float64), torch.sin(np.pi * t) / (np.pi * t))
    kernel = kernel * window * cutoff / orig
    return kernel[:, None, :]


def resample_torch(audio: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling of ``(..., samples)`` torch audio on its own device (windowed sinc, polyphase).

    Output length ``ceil(samples · new_sr / orig_sr)``, as soxr's."""
    if orig_sr == new_sr:
        return audio
    if orig_sr <= 0 or new_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} → {new_sr}")
    g = int(np.gcd(orig_sr, new_sr))
    orig, new = orig_sr // g, new_sr // g
    kernel = _sinc_kernel(orig, new).to(audio.device, audio.dtype)
    width = (kernel.shape[-1] - orig) // 2
    shape = audio.shape
    flat = torch.nn.functional.pad(audio.reshape(-1, 1, shape[-1]), (width, width + orig))
    out = torch.nn.functional.conv1d(flat, kernel, stride=orig)                        # (N, new, frames)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    length = int(np.ceil(new * shape[-1] / orig))
    return out[:, :length].reshape(*shape[:-1], length)


def _as_tensor(audio, name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    if torch.is_tensor(audio):
        tensor = audio.detach()
    else:
        try:
            tensor = torch.from_numpy(np.asarray(audio, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise AudioError(f"{name}: not an audio array ({exc})") from None
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2:
        raise AudioError(f"{name}: expected (channels, samples), got shape {tuple(tensor.shape)}")
    if tensor.shape[-1] == 0:
        raise AudioError(f"{name}: contains no samples")
    if not torch.is_floating_point(tensor):
        tensor = tensor.double()
    if not torch.isfinite(tensor).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return tensor.to(dtype)


def _pair(estimate, reference, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    est, ref = _as_tensor(estimate, "estimate", dtype), _as_tensor(reference, "reference", dtype)
    if est.shape != ref.shape:
        raise AudioError(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} differ in shape")
    return est, ref


def _to_48k(audio: torch.Tensor, sample_rate: int) -> np.ndarray:
    """``(channels, samples)`` tensor → float32 numpy at 48 kHz (soxr HQ)."""
    array = audio.cpu().numpy().astype(np.float32)
    return resample(array, int(sample_rate), METRIC_SAMPLE_RATE) if sample_rate != METRIC_SAMPLE_RATE else array


def multi_mel_snr(estimate, reference, sample_rate: int) -> float:
    """Multi-Mel-SNR in dB (higher is better) of one ``(channels, samples)`` estimate (numpy or torch) against its
    reference, as docs/DESIGN.md defines it.

    Audio at other rates is resampled to 48 kHz with soxr (high quality) first; computed in float64 on the CPU.
    Silent reference channels are left out of the channel mean; ``nan`` when every channel is silent.
    """
    est, ref = _pair(estimate, reference)
    if sample_rate != METRIC_SAMPLE_RATE:
        est = torch.from_numpy(_to_48k(est, sample_rate))
        ref = torch.from_numpy(_to_48k(ref, sample_rate))
    return float(multi_mel_snr_batch(est.cpu().double(), ref.cpu().double(), METRIC_SAMPLE_RATE))


# ----------------------------------------------------------------------------------------------------------------
# Waveform SNRs
# ----------------------------------------------------------------------------------------------------------------
def si_snr(estimate, reference, sample_rate: int | None = None) -> float:
    """Scale-invariant SNR ("SI-SDR", dB, higher is better): per channel, both signals made zero-mean, the
    reference scaled by the optimal gain; mean over channels (silent ones left out). ``sample_rate`` is accepted
    for the common metric signature and not needed."""
    est, ref = _pair(estimate, reference, torch.float64)
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    target = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + EPS) * ref
    values = 10 * torch.log10(target.square().sum(-1) / ((est - target).square().sum(-1) + EPS) + EPS)
    values = values.masked_fill(ref.abs().amax(-1) <= SILENT_PEAK, float("nan"))
    return float(_nanmean_channels(values))


def snr(estimate, reference, sample_rate: int | None = None) -> float:
    """Plain waveform SNR in dB (higher is better) — the "SDR" of MUSDB-style leaderboards in the Music Demixing
    Challenge's definition: 10·log10((Σref² + 1e-7) / (Σ(ref − est)² + 1e-7)), sums over samples and channels.
    Not scale-invariant: a correct estimate at the wrong level scores low. ``nan`` for a silent reference.
    ``sample_rate`` is accepted for the common metric signature and not needed."""
    est, ref = _pair(estimate, reference, torch.float64)
    if float(ref.abs().max()) <= SILENT_PEAK:
        return float("nan")
    delta = 1e-7
    return float(10 * torch.log10((ref.square().sum() + delta) / ((ref - est).square().sum() + delta)))


# ----------------------------------------------------------------------------------------------------------------
# Zimtohrli (perceptual)
# ----------------------------------------------------------------------------------------------------------------
def _zimtohrli():
    try:
        import zimtohrli
    except ImportError:  # pragma: no cover - a declared dependency
        raise MSRError("the Zimtohrli metric needs the PyPI package zimtohrli (pip install zimtohrli)") from None
    return zimtohrli


def zimtohrli_distance(estimate, reference, sample_rate: int) -> float:
    """Zimtohrli perceptual distance (**lower is better**; 0 for identical signals, ~0.01 for clearly audible
    noise). Each channel is resampled to 48 kHz (soxr HQ), passed as mono float32 to ``zimtohrli.Pyohrli().distance``
    and the distances are averaged over channels (silent reference channels left out; ``nan`` if all are).

    No gain is applied: Zimtohrli takes [-1, 1] full-scale audio (a full-scale 1 kHz sine ≈ 80 dB SPL), so level
    differences count. Signals must last at least 0.1 s (the C++ core crashes on very short input).
    """
    est, ref = _pair(estimate, reference)
    est48, ref48 = _to_48k(est, sample_rate), _to_48k(ref, sample_rate)
    if ref48.shape[-1] < MIN_ZIMTOHRLI_SAMPLES:
        raise AudioError(f"Zimtohrli needs at least {MIN_ZIMTOHRLI_SAMPLES / METRIC_SAMPLE_RATE:.1f} s of audio, "
                         f"got {ref48.shape[-1] / METRIC_SAMPLE_RATE:.3f} s")
    zimtohrli = _zimtohrli()
    model = zimtohrli.Pyohrli()
    if int(model.sample_rate) != METRIC_SAMPLE_RATE:  # pragma: no cover - every release so far uses 48 kHz
        raise MSRError(f"zimtohrli expects {model.sample_rate} Hz audio; this code assumes 48 kHz")
    distances = []
    for e, r in zip(est48, ref48):
        if np.abs(r).max() <= SILENT_PEAK:
            continue
        distances.append(float(model.distance(np.ascontiguousarray(r, np.float32),
                                              np.ascontiguousarray(e, np.float32))))
    return float(np.mean(distances)) if distances else float("nan")


def zimtohrli_mos(estimate, reference, sample_rate: int) -> float:
    """Approximate mean opinion score (1–5, higher is better) from :func:`zimtohrli_distance` via
    ``zimtohrli.mos_from_zimtohrli`` (the package's own mapping, fitted on speech/audio listening tests)."""
    distance = zimtohrli_distance(estimate, reference, sample_rate)
    if np.isnan(distance):
        return float("nan")
    return float(_zimtohrli().mos_from_zimtohrli(distance))


# ----------------------------------------------------------------------------------------------------------------
# Fréchet distance (the core of FAD)
# ----------------------------------------------------------------------------------------------------------------
def frechet_distance(embeddings_a, embeddings_b) -> float:
    """Fréchet distance between two ``(n, dim)`` embedding sets (Gaussian fits): ‖μa − μb‖² +
    tr(Σa + Σb − 2(ΣaΣb)^½). The core of FAD, for embeddings computed elsewhere."""
    from scipy import linalg

    a, b = np.asarray(embeddings_a, np.float64), np.asarray(embeddings_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise MSRError(f"frechet_distance needs two (n ≥ 2, dim) embedding sets of one dim, got {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


# ----------------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Metric:
    """One scoring function ``fn(estimate, reference, sample_rate) -> float`` and how to read its numbers:
    ``name`` (the registry key, what ``--metrics`` takes), ``label`` (how tables and plots title it)."""

    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    unit: str
    label: str

    def __call__(self, estimate, reference, sample_rate: int) -> float:
        return self.fn(estimate, reference, sample_rate)


#: the one metric registry, by name
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric(name="snr", fn=snr, higher_is_better=True, unit="dB", label="SNR"),
    Metric(name="si_snr", fn=si_snr, higher_is_better=True, unit="dB", label="SI-SNR"),
    Metric(name="multi_mel_snr", fn=multi_mel_snr, higher_is_better=True, unit="dB", label="Multi-Mel-SNR"),
    Metric(name="zimtohrli", fn=zimtohrli_distance, higher_is_better=False, unit="distance", label="Zimtohrli"),
)}
