"""Metrics: how close is an estimated stem to the clean reference?

- :func:`multi_mel_snr` — the MSR challenge's headline metric (DESIGN.md): a scale-invariant gain on the estimate,
  then mel power spectrograms at 48 kHz at three resolutions, SNR in dB, mean over resolutions, then channels.
  :func:`multi_mel_snr_batch` computes it for whole torch batches on any device (a validation metric in training).
- :func:`si_snr` — scale-invariant SNR of the waveform (arXiv 1811.10418; "SI-SDR").
- :func:`snr` — plain SNR of the waveform, the "SDR" of MUSDB-style leaderboards (the MDX/``museval``-free
  definition 10·log10(Σref² / Σ(ref − est)²)), **not** BSS-eval's SDR with its allowed distortion filter.

Silent references: a reference with no energy has no meaningful SNR; every metric here returns ``nan`` for it,
and :func:`msr_lib.evaluate` leaves such stems out of its means and counts them.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from msr_lib.audio import resample
from msr_lib.errors import AudioError

METRIC_SAMPLE_RATE = 48_000
#: (n_fft, hop, n_mels) of the three mel resolutions of Multi-Mel-SNR.
MEL_RESOLUTIONS = ((512, 256, 80), (1024, 512, 128), (2048, 1024, 192))
EPS = 1e-8


@functools.lru_cache(maxsize=None)
def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int = METRIC_SAMPLE_RATE) -> torch.Tensor:
    """``(n_mels, n_fft // 2 + 1)`` HTK-scale triangular filters from 0 Hz to Nyquist, no area normalisation —
    torchaudio ``MelSpectrogram``'s defaults, built with librosa."""
    import warnings

    import librosa

    with warnings.catch_warnings():  # 80 mels on a 512-point FFT leave the lowest filters empty, as in torchaudio
        warnings.simplefilter("ignore", UserWarning)
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2,
                                 htk=True, norm=None)
    return torch.from_numpy(fb.astype(np.float32))


def mel_power_spectrogram(audio: torch.Tensor, n_fft: int, hop: int, n_mels: int) -> torch.Tensor:
    """Mel power spectrogram of ``(..., samples)`` audio at 48 kHz: ``(..., n_mels, frames)``.

    Periodic Hann window of ``n_fft``, centred frames with reflect padding, |STFT|² (power 2)."""
    shape = audio.shape
    flat = audio.reshape(-1, shape[-1])
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(flat, n_fft=n_fft, hop_length=hop, window=window, center=True, pad_mode="reflect",
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()                       # (N, bins, frames)
    mel = torch.matmul(mel_filterbank(n_fft, n_mels).to(audio.device, audio.dtype), power)
    return mel.reshape(*shape[:-1], n_mels, mel.shape[-1])


def scale_invariant_estimate(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """α·estimate with α = ⟨ref, est⟩ / (⟨est, est⟩ + 1e-8), per signal (last axis)."""
    alpha = (reference * estimate).sum(-1, keepdim=True) / (estimate.square().sum(-1, keepdim=True) + EPS)
    return alpha * estimate


def multi_mel_snr_batch(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int = METRIC_SAMPLE_RATE,
                        *, reduce_channels: bool = True) -> torch.Tensor:
    """Multi-Mel-SNR (dB) of torch batches ``(..., channels, samples)`` on their own device.

    Returns ``(...)`` (mean over channels) or ``(..., channels)`` with ``reduce_channels=False``; ``nan`` where the
    reference is silent. Audio at another rate is resampled to 48 kHz first (:func:`resample_torch`).
    """
    if estimate.shape != reference.shape:
        raise AudioError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape")
    estimate, reference = estimate.float(), reference.float()
    if sample_rate != METRIC_SAMPLE_RATE:
        estimate = resample_torch(estimate, sample_rate, METRIC_SAMPLE_RATE)
        reference = resample_torch(reference, sample_rate, METRIC_SAMPLE_RATE)
    estimate = scale_invariant_estimate(estimate, reference)
    per_resolution = []
    for n_fft, hop, n_mels in MEL_RESOLUTIONS:
        mel_ref = mel_power_spectrogram(reference, n_fft, hop, n_mels)
        mel_est = mel_power_spectrogram(estimate, n_fft, hop, n_mels)
        signal = mel_ref.square().sum((-2, -1))
        noise = (mel_ref - mel_est).square().sum((-2, -1))
        per_resolution.append(10 * torch.log10(signal / (noise + EPS)))
    values = torch.stack(per_resolution).mean(0)                            # (..., channels)
    silent = reference.abs().amax(-1) == 0
    values = values.masked_fill(silent, float("nan"))
    return values.mean(-1) if reduce_channels else values


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, zeros: int = 16, rolloff: float = 0.945) -> torch.Tensor:
    """Polyphase windowed-sinc (Hann) kernels ``(new, 1, width)`` for a rational rate change orig → new (reduced)."""
    cutoff = min(orig, new) * rolloff
    width = int(np.ceil(zeros * orig / cutoff))
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, :] / orig      # input offsets (s)
    phase = -torch.arange(new, dtype=torch.float64)[:, None] / new                       # output phases
    t = (phase + idx) * cutoff
    t = t.clamp(-zeros, zeros)
    window = torch.cos(t * np.pi / zeros / 2) ** 2
    kernel = torch.where(t == 0, torch.tensor(1.0, dtype=torch.float64), torch.sin(np.pi * t) / (np.pi * t))
    kernel = kernel * window * cutoff / orig
    return kernel[:, None, :].float()


def resample_torch(audio: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling of ``(..., samples)`` torch audio on its own device (windowed sinc, polyphase)."""
    if orig_sr == new_sr:
        return audio
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


def _as_tensor(audio, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio)
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim != 2:
        raise AudioError(f"{name}: expected (channels, samples), got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return tensor.float()


def multi_mel_snr(estimate, reference, sample_rate: int) -> float:
    """Multi-Mel-SNR in dB of one ``(channels, samples)`` estimate (numpy or torch) against its reference.

    Audio at other rates is resampled to 48 kHz with soxr (high quality) first. ``nan`` for a silent reference.
    """
    est, ref = _as_tensor(estimate, "estimate"), _as_tensor(reference, "reference")
    if est.shape != ref.shape:
        raise AudioError(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} differ in shape")
    if sample_rate != METRIC_SAMPLE_RATE:
        est = torch.from_numpy(resample(est.cpu().numpy(), sample_rate, METRIC_SAMPLE_RATE))
        ref = torch.from_numpy(resample(ref.cpu().numpy(), sample_rate, METRIC_SAMPLE_RATE))
    return float(multi_mel_snr_batch(est, ref, METRIC_SAMPLE_RATE))


def si_snr(estimate, reference) -> float:
    """Scale-invariant SNR (dB), per channel (zero-mean, optimal gain on the reference), mean over channels."""
    est, ref = _as_tensor(estimate, "estimate").double(), _as_tensor(reference, "reference").double()
    if est.shape != ref.shape:
        raise AudioError(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} differ in shape")
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    target = (est * ref).sum(-1, keepdim=True) / (ref.square().sum(-1, keepdim=True) + EPS) * ref
    values = 10 * torch.log10(target.square().sum(-1) / ((est - target).square().sum(-1) + EPS) + EPS)
    values = values.masked_fill(ref.abs().amax(-1) == 0, float("nan"))
    return float(values.mean())


def snr(estimate, reference) -> float:
    """Plain waveform SNR (dB), 10·log10(Σref² / Σ(ref − est)²), per channel, mean over channels. Not scale-invariant:
    a correct estimate at the wrong level scores low."""
    est, ref = _as_tensor(estimate, "estimate").double(), _as_tensor(reference, "reference").double()
    if est.shape != ref.shape:
        raise AudioError(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} differ in shape")
    values = 10 * torch.log10(ref.square().sum(-1) / ((ref - est).square().sum(-1) + EPS) + EPS)
    values = values.masked_fill(ref.abs().amax(-1) == 0, float("nan"))
    return float(values.mean())
