"""msr_lib.metrics against an independent implementation of docs/DESIGN.md's Multi-Mel-SNR, plus the properties
each metric promises (scale invariance, monotonic in noise, silent references, bad input)."""
import warnings

import librosa
import numpy as np
import pytest
import soxr
import torch

from msr_lib import metrics
from msr_lib.audio import SILENT_PEAK
from msr_lib.errors import AudioError, MSRError


def music_like(rng, seconds=1.5, sample_rate=48000, channels=2):
    """Sums of decaying harmonic tones (a few notes, different per channel) plus a little noise."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    out = np.zeros((channels, n))
    for c in range(channels):
        for onset in np.arange(0, seconds, 0.3):
            f0 = 55.0 * 2 ** rng.uniform(0, 4)
            env = np.where(t >= onset, np.exp(-(t - onset) * rng.uniform(2, 8)), 0.0)
            for h in range(1, 12):
                if f0 * h < sample_rate / 2:
                    out[c] += env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h
        out[c] += 0.01 * rng.standard_normal(n)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def degrade(rng, reference, noise_db):
    """Reference + white noise at ``noise_db`` below it, plus a little lowpass smear (a realistic-ish estimate)."""
    noise = rng.standard_normal(reference.shape)
    noise *= np.sqrt((reference ** 2).mean() / (noise ** 2).mean()) * 10 ** (-noise_db / 20)
    smeared = 0.8 * reference + 0.2 * np.roll(reference, 3, axis=-1)
    return (smeared + noise).astype(np.float32)


def reference_multi_mel_snr(estimate, reference, sample_rate):
    """docs/DESIGN.md's definition, written separately with librosa/soxr/numpy in float64."""
    est, ref = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    if sample_rate != 48000:
        est = soxr.resample(est.T, sample_rate, 48000, quality="HQ").T
        ref = soxr.resample(ref.T, sample_rate, 48000, quality="HQ").T
    per_channel = []
    for e, r in zip(est, ref):
        e = e * (np.dot(r, e) / (np.dot(e, e) + 1e-8))
        snrs = []
        for n_fft, hop, n_mels in ((512, 256, 80), (1024, 512, 128), (2048, 1024, 192)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fb = librosa.filters.mel(sr=48000, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=24000, htk=True,
                                         norm=None, dtype=np.float64)

            def mel(x):
                spec = librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode="reflect")
                return fb @ (np.abs(spec) ** 2)
            m_r, m_e = mel(r), mel(e)
            snrs.append(10 * np.log10(np.sum(m_r ** 2) / (np.sum((m_r - m_e) ** 2) + 1e-8)))
        per_channel.append(np.mean(snrs))
    return float(np.mean(per_channel))


@pytest.mark.parametrize("sample_rate", [44100, 48000])
@pytest.mark.parametrize("noise_db", [5.0, 20.0])
def test_multi_mel_snr_matches_independent_reference(rng, sample_rate, noise_db):
    ref = music_like(rng, sample_rate=sample_rate)
    est = degrade(rng, ref, noise_db)
    ours = metrics.multi_mel_snr(est, ref, sample_rate)
    theirs = reference_multi_mel_snr(est, ref, sample_rate)
    assert abs(ours - theirs) < 0.05, (ours, theirs)


def test_torch_input_and_scale_invariance(rng):
    ref = music_like(rng, seconds=1.0)
    est = degrade(rng, ref, 10.0)
    base = metrics.multi_mel_snr(est, ref, 48000)
    assert metrics.multi_mel_snr(torch.from_numpy(est), torch.from_numpy(ref), 48000) == pytest.approx(base, abs=1e-4)
    for gain in (0.1, 10.0):
        assert metrics.multi_mel_snr(est * gain, ref, 48000) == pytest.approx(base, abs=1e-3)
        assert metrics.si_snr(est * gain, ref) == pytest.approx(metrics.si_snr(est, ref), abs=1e-6)
    # snr is not scale-invariant
    assert metrics.snr(est * 0.1, ref) < metrics.snr(est, ref) - 5


def test_identical_and_monotonic_in_noise(rng):
    ref = music_like(rng, seconds=1.0)
    assert metrics.multi_mel_snr(ref, ref, 48000) > 100
    assert metrics.si_snr(ref, ref) > 100
    assert metrics.snr(ref, ref) > 90  # MDX's +1e-7 in the denominator caps it (here ~97 dB)
    noise = rng.standard_normal(ref.shape).astype(np.float32)
    for fn in (lambda e: metrics.multi_mel_snr(e, ref, 48000), lambda e: metrics.si_snr(e, ref),
               lambda e: metrics.snr(e, ref)):
        values = [fn(ref + level * noise) for level in (0.001, 0.01, 0.1)]
        assert values[0] > values[1] > values[2], values


def test_silent_reference_is_nan(rng):
    ref = music_like(rng, seconds=0.5)
    est = degrade(rng, ref, 10.0)
    silent = np.zeros_like(ref)
    for name, metric in metrics.METRICS.items():
        assert np.isnan(metric(est, silent, 48000)), name
    # one silent channel is left out of the channel mean
    half = ref.copy()
    half[1] = 0.0
    left_only = metrics.multi_mel_snr(est[:1], ref[:1], 48000)
    assert metrics.multi_mel_snr(est, half, 48000) == pytest.approx(left_only, abs=1e-6)
    assert metrics.si_snr(est, half) == pytest.approx(metrics.si_snr(est[:1], ref[:1]), abs=1e-9)
    # a silent estimate against a real reference is a finite (bad) score
    assert metrics.multi_mel_snr(silent, ref, 48000) == pytest.approx(0.0, abs=1e-6)
    # silence is audio.SILENT_PEAK: a channel peaking below it is left out, one peaking above it is scored
    below, above = ref.copy(), ref.copy()
    below[1] *= 0.5 * SILENT_PEAK / np.abs(below[1]).max()
    above[1] *= 2 * SILENT_PEAK / np.abs(above[1]).max()
    assert metrics.si_snr(est, below) == pytest.approx(metrics.si_snr(est[:1], ref[:1]), abs=1e-9)
    assert metrics.si_snr(est, above) != pytest.approx(metrics.si_snr(est[:1], ref[:1]), abs=1e-3)
    assert np.isnan(metrics.snr(est, np.full_like(ref, 0.5 * SILENT_PEAK)))
    assert np.isfinite(metrics.snr(est, np.full_like(ref, 2 * SILENT_PEAK)))


def test_bad_input_raises(rng):
    ref = music_like(rng, seconds=0.5)
    bad = ref.copy()
    bad[0, 10] = np.nan
    for name, metric in metrics.METRICS.items():
        with pytest.raises(AudioError):
            metric(ref[:, :-1], ref, 48000)
        with pytest.raises(AudioError):
            metric(bad, ref, 48000)
        with pytest.raises(AudioError):
            metric(ref, np.zeros((2, 0), np.float32), 48000)
    with pytest.raises(AudioError):
        metrics.multi_mel_snr(ref[:, :500], ref[:, :500], 48000)
    with pytest.raises(AudioError):
        metrics.multi_mel_snr_batch(torch.zeros(2, 3, 5000), torch.zeros(2, 2, 5000))
    with pytest.raises(AudioError):
        metrics.zimtohrli_distance(ref[:, :2000], ref[:, :2000], 48000)


def test_batch_matches_per_item(rng):
    refs = np.stack([music_like(rng, seconds=0.6, sample_rate=44100) for _ in range(6)]).reshape(2, 3, 2, -1)
    ests = np.stack([degrade(rng, r, snr_db) for r, snr_db in zip(refs.reshape(6, 2, -1), range(0, 30, 5))])
    ests = ests.reshape(refs.shape)
    batch = metrics.multi_mel_snr_batch(torch.from_numpy(ests), torch.from_numpy(refs), 44100)
    assert batch.shape == (2, 3)
    per_channel = metrics.multi_mel_snr_batch(torch.from_numpy(ests), torch.from_numpy(refs), 44100,
                                              reduce_channels=False)
    assert per_channel.shape == (2, 3, 2)
    for b in range(2):
        for s in range(3):
            # per item through the numpy path (soxr): torch resampler + float32 agree within 0.05 dB
            single = metrics.multi_mel_snr(ests[b, s], refs[b, s], 44100)
            assert abs(float(batch[b, s]) - single) < 0.05, (b, s, float(batch[b, s]), single)
    at48 = metrics.multi_mel_snr_batch(torch.from_numpy(ests[0]), torch.from_numpy(refs[0]), 48000)
    for s in range(3):
        assert float(at48[s]) == pytest.approx(metrics.multi_mel_snr(ests[0, s], refs[0, s], 48000), abs=0.01)


@pytest.mark.parametrize("freq", [100.0, 1000.0, 10000.0, 19000.0])
def test_resample_torch_matches_soxr_on_tones(freq):
    t = np.arange(44100) / 44100
    x = np.sin(2 * np.pi * freq * t).astype(np.float32)
    ours = metrics.resample_torch(torch.from_numpy(x), 44100, 48000).numpy()
    theirs = soxr.resample(x, 44100, 48000, quality="HQ")
    assert ours.shape == theirs.shape
    inner = slice(2000, -2000)
    assert np.sqrt(np.mean((ours[inner] - theirs[inner]) ** 2)) < 1e-3
    down = metrics.resample_torch(torch.from_numpy(ours), 48000, 44100).numpy()
    assert down.shape == x.shape
    assert np.sqrt(np.mean((down[inner] - x[inner]) ** 2)) < 1e-3


def test_si_snr_and_snr_known_values(rng):
    ref = rng.standard_normal((2, 48000))
    ref -= ref.mean(-1, keepdims=True)
    noise = rng.standard_normal(ref.shape)
    noise -= noise.mean(-1, keepdims=True)
    # make the noise exactly orthogonal to the reference, at exactly 20 dB below it, per channel
    noise -= (noise * ref).sum(-1, keepdims=True) / (ref ** 2).sum(-1, keepdims=True) * ref
    noise *= np.sqrt((ref ** 2).sum(-1, keepdims=True) / (noise ** 2).sum(-1, keepdims=True)) * 0.1
    est = ref + noise
    assert metrics.snr(est, ref) == pytest.approx(20.0, abs=1e-6)
    assert metrics.si_snr(est, ref) == pytest.approx(20.0, abs=1e-6)
    assert metrics.si_snr(2 * est, ref) == pytest.approx(20.0, abs=1e-6)
    assert metrics.snr(2 * est, ref) == pytest.approx(10 * np.log10(1 / (1 + 4 * 0.01)), abs=1e-6)  # (1·ref+2n)


def test_zimtohrli(rng):
    ref = music_like(rng, seconds=1.0, sample_rate=44100)
    assert metrics.zimtohrli_distance(ref, ref, 44100) == pytest.approx(0.0, abs=1e-6)
    noise = rng.standard_normal(ref.shape).astype(np.float32)
    distances = [metrics.zimtohrli_distance(ref + level * noise, ref, 44100) for level in (0.001, 0.01, 0.05)]
    assert 0 < distances[0] < distances[1] < distances[2], distances
    assert metrics.zimtohrli_mos(ref, ref, 44100) > metrics.zimtohrli_mos(ref + 0.05 * noise, ref, 44100)
    assert not metrics.METRICS["zimtohrli"].higher_is_better


def test_registry(rng):
    assert list(metrics.METRICS) == ["snr", "si_snr", "multi_mel_snr", "zimtohrli"]
    labels = {name: m.label for name, m in metrics.METRICS.items()}
    assert labels == {"snr": "SNR", "si_snr": "SI-SNR", "multi_mel_snr": "Multi-Mel-SNR", "zimtohrli": "Zimtohrli"}
    for name, metric in metrics.METRICS.items():
        assert metric.name == name and metric.unit == ("distance" if name == "zimtohrli" else "dB")
        assert metric.higher_is_better == (name != "zimtohrli")
    ref = music_like(rng, seconds=0.5)
    est = degrade(rng, ref, 10.0)
    assert metrics.METRICS["si_snr"](est, ref, 48000) == metrics.si_snr(est, ref)
    assert metrics.METRICS["multi_mel_snr"](est, ref, 48000) == metrics.multi_mel_snr(est, ref, 48000)
    assert not hasattr(metrics, "fad_clap")          # FAD-CLAP is not available: no CLAP model ships


def test_frechet_distance(rng):
    a = rng.standard_normal((200, 4))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert metrics.frechet_distance(a, a + 1.0) == pytest.approx(4.0, abs=1e-6)
    with pytest.raises(MSRError, match="embedding sets"):
        metrics.frechet_distance(a, a[:, :3])
