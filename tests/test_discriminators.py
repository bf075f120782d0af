"""The restorer's discriminators (msr_lib.models.discriminators): shapes, input forms, gradients, sizes, errors,
and a tiny one learning to tell a sine from noise."""
import math

import pytest
import torch

from msr_lib.models.discriminators import (
    MultiResolutionSTFTDiscriminator,
    MultiScaleMelDiscriminator,
    SpectrogramDiscriminator,
    parameter_counts,
)
from msr_lib.train.losses import lsgan_discriminator_loss

DISCRIMINATORS = [MultiScaleMelDiscriminator, MultiResolutionSTFTDiscriminator]


def _waves(batch, samples, seed=0):
    return 0.1 * torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


def _halved(size, times):
    for _ in range(times):
        size = math.ceil(size / 2)
    return size


@pytest.mark.parametrize("batch, samples", [(1, 2048), (3, 3001), (2, 4411)])
def test_mel_discriminator_shapes(batch, samples):
    outputs = MultiScaleMelDiscriminator()(_waves(batch, samples))
    assert len(outputs) == 3
    for (logits, features), (n_fft, n_mels) in zip(outputs, [(2048, 128), (1024, 96), (512, 48)]):
        frames = 1 + samples // (n_fft // 4)
        assert logits.shape == (batch, frames, _halved(n_mels, 4))
        assert [f.shape for f in features] == [(batch, 16, frames, _halved(n_mels, k)) for k in (1, 2, 3, 4, 4)]


@pytest.mark.parametrize("batch, samples", [(1, 2048), (3, 3001)])
def test_stft_discriminator_shapes(batch, samples):
    discriminator = MultiResolutionSTFTDiscriminator(resolutions=((2048, 512), (512, 128)), channels=8)
    outputs = discriminator(_waves(batch, samples))
    assert len(outputs) == 2
    for (logits, features), (n_fft, hop) in zip(outputs, [(2048, 512), (512, 128)]):
        frames, bins = 1 + samples // hop, n_fft // 2 + 1
        assert logits.shape == (batch, frames, _halved(bins, 4))
        assert len(features) == 5 and features[0].shape == (batch, 8, frames, _halved(bins, 1))


@pytest.mark.parametrize("cls", DISCRIMINATORS)
def test_channel_axis_accepted_and_logits_follow_the_input(cls):
    torch.manual_seed(0)
    discriminator = cls()
    waves = _waves(2, 3000)
    flat = discriminator(waves)
    with_channel = discriminator(waves[:, None])
    other = discriminator(_waves(2, 3000, seed=1))
    for (a, fa), (b, fb), (c, _) in zip(flat, with_channel, other):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(fa[-1], fb[-1])
        assert (a - c).abs().max() > 1e-4
    # each item is judged on its own: the first item's logits do not depend on the second
    alone = discriminator(waves[:1])
    for (a, _), (b, _) in zip(flat, alone):
        torch.testing.assert_close(a[:1], b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cls", DISCRIMINATORS)
def test_gradients_reach_the_waveform(cls):
    discriminator = cls(channels=8)
    waves = _waves(2, 2500).requires_grad_()
    outputs = discriminator(waves)
    sum(logits.square().mean() + features[-1].mean() for logits, features in outputs).backward()
    assert waves.grad.shape == waves.shape
    assert torch.isfinite(waves.grad).all() and waves.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in discriminator.parameters())
    half = discriminator(waves.detach().bfloat16())  # spectrograms in float32 whatever the input
    assert all(logits.dtype == torch.float32 and torch.isfinite(logits).all() for logits, _ in half)


def test_parameter_counts_are_per_scale_and_small():
    for discriminator in (MultiScaleMelDiscriminator(), MultiResolutionSTFTDiscriminator()):
        counts = parameter_counts(discriminator)
        assert len(counts) == 4 and counts["total"] == sum(p.numel() for p in discriminator.parameters())
        assert counts["total"] == 3 * 23_778 < 1_000_000
    assert list(parameter_counts(MultiScaleMelDiscriminator())) == [
        "mel n_fft=2048", "mel n_fft=1024", "mel n_fft=512", "total"]
    # channels² sets the size: twice the channels, about four times the parameters
    assert 3.5 < parameter_counts(MultiScaleMelDiscriminator(channels=32))["total"] / (3 * 23_778) < 4.1


def test_too_short_or_stereo_input_is_one_clear_error():
    with pytest.raises(ValueError, match="2047 samples are too short .* at least 2048"):
        MultiScaleMelDiscriminator()(_waves(2, 2047))
    with pytest.raises(ValueError, match="at least 1024"):
        MultiResolutionSTFTDiscriminator(resolutions=((1024, 256),))(_waves(1, 1000))
    with pytest.raises(ValueError, match="fold stereo channels into the batch"):
        MultiScaleMelDiscriminator()(_waves(2, 4000).reshape(1, 2, 4000))
    with pytest.raises(ValueError, match="one entry per scale"):
        MultiScaleMelDiscriminator(n_ffts=(1024, 512), n_mels=(64,))
    with pytest.raises(ValueError, match="downsamples"):
        SpectrogramDiscriminator(downsamples=0)


def test_a_tiny_discriminator_learns_a_sine_from_noise():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    discriminator = MultiScaleMelDiscriminator(n_ffts=(512,), n_mels=(48,), channels=8, downsamples=2)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-3)
    t = torch.arange(2048) / 44100

    def batch():
        freqs = 200 + 1800 * torch.rand(4, 1, generator=g)
        phases = 2 * math.pi * torch.rand(4, 1, generator=g)
        sines = 0.3 * torch.sin(2 * math.pi * freqs * t + phases)
        return sines, 0.1 * torch.randn(4, 2048, generator=g)

    losses = []
    for _ in range(30):
        sines, noise = batch()
        loss = lsgan_discriminator_loss(discriminator(sines), discriminator(noise))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    sines, noise = batch()
    with torch.no_grad():
        real, fake = discriminator(sines)[0][0], discriminator(noise)[0][0]
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:5]) / 5, losses
    assert float(real.mean()) > 0.5 > float(fake.mean())
