"""Multi-Mel-SNR throughput: our batched torch version against a straightforward librosa implementation.

Both score the same batch (default 8 items × stereo × 10 s at 44.1 kHz: a music-like reference and a noisy,
smeared estimate) with docs/DESIGN.md's definition. The librosa version goes channel by channel and resolution by
resolution: librosa.resample to 48 kHz (soxr_hq), scale-invariant gain, librosa.feature.melspectrogram
(Hann, centred, reflect padding, power 2, HTK mel scale, no filter norm), SNR of the mel spectrograms.
Prints seconds of stereo audio scored per second of wall-clock time for each, their ratio, and how far the values
agree. One run each after a short warm-up (the first call builds filterbanks and kernels). A script, not a test:
    .venv/bin/python benchmarks/bench_metrics.py [--items 8] [--seconds 10] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import time
import warnings

import librosa
import numpy as np
import torch

from msr_lib.metrics import multi_mel_snr_batch

SAMPLE_RATE = 44_100
RESOLUTIONS = ((512, 256, 80), (1024, 512, 128), (2048, 1024, 192))


def make_batch(items: int, seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    refs = np.zeros((items, 2, n))
    for i in range(items):
        for c in range(2):
            for onset in np.arange(0, seconds, 0.4):
                f0 = 55.0 * 2 ** rng.uniform(0, 4)
                env = np.where(t >= onset, np.exp(-(t - onset) * rng.uniform(2, 8)), 0.0)
                for h in range(1, 8):
                    refs[i, c] += env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h
            refs[i, c] += 0.01 * rng.standard_normal(n)
    refs = 0.3 * refs / np.abs(refs).max(axis=(1, 2), keepdims=True)
    noise = rng.standard_normal(refs.shape) * 10 ** (-rng.uniform(0, 30, (items, 1, 1)) / 20) * refs.std()
    ests = 0.8 * refs + 0.2 * np.roll(refs, 3, axis=-1) + noise
    return ests.astype(np.float32), refs.astype(np.float32)


def librosa_multi_mel_snr(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """The straightforward version: per channel, per resolution, with librosa."""
    values = []
    for e, r in zip(estimate, reference):
        e = librosa.resample(e, orig_sr=sample_rate, target_sr=48000, res_type="soxr_hq")
        r = librosa.resample(r, orig_sr=sample_rate, target_sr=48000, res_type="soxr_hq")
        e = e * (np.dot(r, e) / (np.dot(e, e) + 1e-8))
        snrs = []
        for n_fft, hop, n_mels in RESOLUTIONS:
            kwargs = dict(sr=48000, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=0.0, fmax=24000.0,
                          window="hann", center=True, pad_mode="reflect", power=2.0, htk=True, norm=None)
            m_r = librosa.feature.melspectrogram(y=r, **kwargs)
            m_e = librosa.feature.melspectrogram(y=e, **kwargs)
            snrs.append(10 * np.log10(np.sum(m_r ** 2) / (np.sum((m_r - m_e) ** 2) + 1e-8)))
        values.append(np.mean(snrs))
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # librosa: empty low mel filters at n_fft 512, as in torchaudio
    ests, refs = make_batch(args.items, args.seconds)
    audio_seconds = args.items * args.seconds
    device = torch.device(args.device)
    print(f"{args.items} items × stereo × {args.seconds:g} s at {SAMPLE_RATE} Hz = {audio_seconds:g} s of stereo "
          f"audio; torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}")

    est_t, ref_t = torch.from_numpy(ests).to(device), torch.from_numpy(refs).to(device)
    multi_mel_snr_batch(est_t[:1, :, : SAMPLE_RATE], ref_t[:1, :, : SAMPLE_RATE], SAMPLE_RATE)  # warm-up
    librosa_multi_mel_snr(ests[0, :, : SAMPLE_RATE], refs[0, :, : SAMPLE_RATE], SAMPLE_RATE)
    if device.type == "cuda":
        torch.cuda.synchronize()

    start = time.perf_counter()
    with torch.no_grad():
        ours = multi_mel_snr_batch(est_t, ref_t, SAMPLE_RATE)
    if device.type == "cuda":
        torch.cuda.synchronize()
    ours_s = time.perf_counter() - start
    ours = ours.cpu().numpy()

    start = time.perf_counter()
    theirs = np.array([librosa_multi_mel_snr(e, r, SAMPLE_RATE) for e, r in zip(ests, refs)])
    theirs_s = time.perf_counter() - start

    print(f"multi_mel_snr_batch ({device.type}): {ours_s:7.3f} s  → {audio_seconds / ours_s:8.1f} s of audio / s")
    print(f"librosa, per channel:      {theirs_s:7.3f} s  → {audio_seconds / theirs_s:8.1f} s of audio / s")
    print(f"speed-up: {theirs_s / ours_s:.1f}×")
    print(f"values (dB): ours {np.round(ours, 2).tolist()}")
    print(f"          librosa {np.round(theirs, 2).tolist()}")
    print(f"max |difference|: {np.abs(ours - theirs).max():.4f} dB (torch sinc resampler + float32 vs soxr + float64)")


if __name__ == "__main__":
    main()
