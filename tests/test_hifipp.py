"""The HiFi++ restorer generator (msr_lib/models/hifipp.py): shapes, identity at the start, learning, sizes."""
import pytest
import torch

from msr_lib.models.hifipp import HiFiPlusPlus, block_parameters
from msr_lib.presets import PAPER_RESTORER

SMALL = dict(n_mels=32, hop=256, upsample_rates=(8, 8, 4), upsampler_channels=16, mask_bands=32)


@pytest.mark.parametrize("kwargs", [SMALL, {**SMALL, "rate_divisor": 2}, {**SMALL, "mask_bands": 0},
                                    {**SMALL, "resblock_kernels": ()}])
@pytest.mark.parametrize("channels,samples", [(1, 4411), (2, 22050), (2, 9001)])
def test_output_has_the_input_shape_and_starts_as_the_input(kwargs, channels, samples):
    torch.manual_seed(0)
    model = HiFiPlusPlus(**kwargs).eval()
    audio = 0.1 * torch.randn(3, channels, samples)
    with torch.no_grad():
        restored = model(audio)
    assert restored.shape == audio.shape
    assert (restored - audio).abs().max() < 1e-5          # zero-initialised correction, mask of ones


def test_conditioning_reaches_the_output_once_the_waveform_path_is_trained():
    torch.manual_seed(0)
    model = HiFiPlusPlus(**SMALL, cond_dim=8).eval()
    torch.nn.init.normal_(model.wave_unet.unet.out.weight, std=0.1)       # as after some training
    audio = 0.1 * torch.randn(1, 2, 11025)
    with torch.no_grad():
        a = model(audio, cond=torch.zeros(1, 8, 5))
        b = model(audio, cond=torch.randn(1, 8, 5))
        plain = model(audio)
    assert a.shape == audio.shape and (a - b).abs().max() > 1e-4
    assert torch.equal(plain, model(audio, cond=None))


def test_a_tiny_overfit_case_learns_a_correction():
    """Target: the input with its top octave (above 11 kHz) removed and its level halved; the loss falls."""
    torch.manual_seed(0)
    model = HiFiPlusPlus(**SMALL)
    source = 0.1 * torch.randn(2, 1, 8192)
    spectrum = torch.fft.rfft(source)
    spectrum[..., spectrum.shape[-1] // 2:] = 0
    target = 0.5 * torch.fft.irfft(spectrum, n=source.shape[-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = (model(source) - target).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_block_sizes_of_the_paper_configuration_and_bad_settings():
    counts = block_parameters(HiFiPlusPlus(**PAPER_RESTORER))
    # the official HiFi++ generator: ~1.7 M (upsampler ~0.87 M, SpectralUNet ~0.49 M, WaveUNet ~0.24 M, mask ~0.10 M)
    assert 1.5e6 < counts["total"] < 1.9e6
    assert counts["upsampler"] > counts["spectral_unet"] > counts["wave_unet"] > counts["spectral_mask_net"]
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    with pytest.raises(ValueError, match="multiply to 128, not the hop 256"):
        HiFiPlusPlus(hop=256, upsample_rates=(8, 16 // 1, 1))
    with pytest.raises(ValueError, match="rate_divisor must be 1 or 2"):
        HiFiPlusPlus(rate_divisor=3)
    with pytest.raises(ValueError, match="expected \\(batch, channels, samples\\)"):
        HiFiPlusPlus(**SMALL)(torch.zeros(100))
