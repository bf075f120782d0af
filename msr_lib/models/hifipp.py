"""HiFi++ restorer (Andreev et al., arXiv 2203.13086) in its audio-to-audio form, sized to run on a 2-core CPU.

Lesson: notebooks/05_hifipp_restorer.ipynb.

A restorer gets one separated (or degraded) stem and returns that stem cleaned up: waveform in, waveform of the same
length out, 44.1 kHz, mono or stereo. The forward pass in seven numbered steps (the numbers in the code below):

1 fold the audio channels into the batch; with ``rate_divisor`` 2, go down to 22.05 kHz for steps 2–4
  (CP-JKU ran their restorer at 24 kHz, arXiv 2603.04032; a whole divisor keeps one resampler, ``resample_torch``)
2 :class:`SpectralUNet`: log-mel spectrogram of the input → 2D U-Net → one feature vector per frame (an optional
  conditioning input, e.g. embeddings of an audio model the user has on disk, is added here)
3 :class:`Upsampler` (HiFi-GAN's generator, arXiv 2010.05646): transposed 1D convolutions, each followed by
  multi-receptive-field residual blocks, from the frame rate up to the sample rate
4 :class:`WaveUNet` (Stoller et al., arXiv 1806.03185): a 1D U-Net over [upsampler output, input waveform] gives a
  *correction* waveform, added to the input (its last convolution starts at zero)
5 with ``rate_divisor`` 2: the correction goes back up to 44.1 kHz and is added to the full-band input, so the top
  octave is passed through untouched by steps 2–4
6 :class:`SpectralMaskNet`: STFT of the result, a 2D U-Net on its log-magnitude → a positive magnitude mask
  (exactly 1 at the start), phase kept, inverse STFT at the input length
7 unfold the channels.

So an untrained restorer gives back its input (to float rounding): it starts as "do no harm" and learns corrections,
as CP-JKU's residual restorer does. What a mask cannot do, the waveform path can: add harmonics and fill bands the
mastering chain or the separator took away — within what the input still implies.

Cost decides the sizes (issue 11): the paper's generator (``presets.PAPER_RESTORER``, ~1.7 M weights) runs at about
real time per stereo stem on a 2-core CPU, the pipeline's budget is ~0.035 per stem. :func:`block_parameters` counts the
weights per block; ``benchmarks/bench_restorer.py`` times each block.

Dimension letters (einops):
    b batch   c audio channels (1 or 2)   s samples   m mel bands   f STFT bins   t frames   k feature channels
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from msr_lib.audio import SAMPLE_RATE
from msr_lib.metrics import mel_filterbank, resample_torch

__all__ = ["HiFiPlusPlus", "block_parameters"]

LEAKY_SLOPE = 0.1   # HiFi-GAN's leaky ReLU slope, used in every block
MAG_FLOOR = 1e-5    # floor on magnitudes before the log (−100 dB)

class UNet(nn.Module):
    """A small U-Net over 1D (``spatial_dims=1``: (b, k, s)) or 2D (``2``: (b, k, m, t)) feature maps.

    Each level: ``depth`` convolutions (kernel ``kernel_size``, leaky ReLU), then a strided convolution down by
    ``stride``; back up by nearest-neighbour repetition and a convolution, added to the level's output (skip by
    addition, cheaper than concatenation). Any input size works: the input is padded to a multiple of
    ``stride ** (levels − 1)`` and the output cropped back."""

    def __init__(self, *, in_channels: int, out_channels: int, widths: Sequence[int], depth: int = 1,
                 kernel_size: int = 3, stride: int = 2, spatial_dims: int = 2):
        super().__init__()
        conv = nn.Conv1d if spatial_dims == 1 else nn.Conv2d
        self.stride, self.levels, self.spatial_dims = stride, len(widths), spatial_dims
        pad = kernel_size // 2

        def block(cin: int, cout: int) -> nn.Sequential:
            layers = []
            for i in range(depth):
                layers += [conv(cin if i == 0 else cout, cout, kernel_size, padding=pad), nn.LeakyReLU(LEAKY_SLOPE)]
            return nn.Sequential(*layers)

        self.encoders = nn.ModuleList(block(cin, cout) for cin, cout in zip((in_channels, *widths[:-1]), widths))
        self.downs = nn.ModuleList(conv(w, w, stride, stride=stride) for w in widths[:-1])
        self.ups = nn.ModuleList(conv(cout, cin, kernel_size, padding=pad) for cin, cout in zip(widths[:-1], widths[1:]))
        self.decoders = nn.ModuleList(block(w, w) for w in widths[:-1])
        self.out = conv(widths[0], out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[2:]
        multiple = self.stride ** (self.levels - 1)
        padding = []
        for n in reversed(size):                                  # F.pad lists the last axis first
            padding += [0, (-n) % multiple]
        x = F.pad(x, padding)
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x)
            if i < self.levels - 1:
                skips.append(x)
                x = self.downs[i](x)
        for i in reversed(range(self.levels - 1)):
            x = F.interpolate(x, scale_factor=self.stride, mode="nearest")
            x = self.decoders[i](skips[i] + F.leaky_relu(self.ups[i](x), LEAKY_SLOPE))
        x = self.out(x)
        return x[(..., *(slice(0, n) for n in size))]


class SpectralUNet(nn.Module):
    """Step 2: log-mel spectrogram (b, s) → 2D U-Net over (mel, frame) → features (b, n_mels, frames)."""

    def __init__(self, *, sample_rate: int, n_fft: int, hop: int, n_mels: int, widths: Sequence[int], depth: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("mel_basis", mel_filterbank(n_fft, n_mels, sample_rate), persistent=False)  # (m, f)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # the second input plane is the mel index in [0, 1] (a positional channel, as in the paper)
        self.unet = UNet(in_channels=2, out_channels=1, widths=widths, depth=depth, spatial_dims=2)

    def log_mel(self, x: Tensor) -> Tensor:
        spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)                                       # (b, f, t)
        return torch.log(torch.matmul(self.mel_basis, spec.abs()).clamp_min(MAG_FLOOR))  # (b, m, t)

    def forward(self, x: Tensor) -> Tensor:
        mel = self.log_mel(x)
        position = torch.linspace(0, 1, mel.shape[1], device=x.device).view(1, -1, 1).expand_as(mel)
        planes = torch.stack([mel, position], dim=1)                                  # (b, 2, m, t)
        return mel + self.unet(planes)[:, 0]                                          # (b, m, t)


class ResBlock(nn.Module):
    """HiFi-GAN's residual block: per dilation, x + conv(lrelu(dilated conv(lrelu(x))))."""

    def __init__(self, *, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.dilated = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                               padding=d * (kernel_size - 1) // 2) for d in dilations)
        self.plain = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
                                   for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for dilated, plain in zip(self.dilated, self.plain):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LEAKY_SLOPE)), LEAKY_SLOPE))
        return x


class Upsampler(nn.Module):
    """Step 3: (b, n_mels, t) → (b, channels / 2^stages, t · Π rates). Each stage halves the channels, a
    transposed convolution (kernel 2·rate) multiplies the length by its rate, and the mean of one residual block
    per kernel size (the multi-receptive-field fusion) follows; no kernel sizes: no residual blocks."""

    def __init__(self, *, in_channels: int, channels: int, rates: Sequence[int], resblock_kernels: Sequence[int],
                 resblock_dilations: Sequence[int]):
        super().__init__()
        self.pre = nn.Conv1d(in_channels, channels, 7, padding=3)
        self.ups, self.fusions = nn.ModuleList(), nn.ModuleList()
        for i, rate in enumerate(rates):
            cin, cout = channels // 2**i, channels // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(cin, cout, 2 * rate, stride=rate, padding=rate // 2 + rate % 2,
                                               output_padding=rate % 2))
            self.fusions.append(nn.ModuleList(ResBlock(channels=cout, kernel_size=k, dilations=resblock_dilations)
                                              for k in resblock_kernels))
        self.out_channels = channels // 2 ** len(rates)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre(x)
        for up, blocks in zip(self.ups, self.fusions):
            x = up(F.leaky_relu(x, LEAKY_SLOPE))
            if len(blocks):
                x = sum(block(x) for block in blocks) / len(blocks)
        return F.leaky_relu(x, LEAKY_SLOPE)


class WaveUNet(nn.Module):
    """Step 4: 1D U-Net over [upsampler features, input waveform] (b, k + 1, s) → correction waveform (b, s).
    Its output convolution starts at zero, so the correction does too."""

    def __init__(self, *, in_channels: int, widths: Sequence[int], depth: int, kernel_size: int = 5, stride: int = 4):
        super().__init__()
        self.unet = UNet(in_channels=in_channels + 1, out_channels=1, widths=widths, depth=depth,
                         kernel_size=kernel_size, stride=stride, spatial_dims=1)
        nn.init.zeros_(self.unet.out.weight)
        nn.init.zeros_(self.unet.out.bias)

    def forward(self, features: Tensor, wave: Tensor) -> Tensor:
        return self.unet(torch.cat([features, wave[:, None]], dim=1))[:, 0]


class SpectralMaskNet(nn.Module):
    """Step 6: a positive mask on the STFT magnitude of (b, s), phase kept. The mask is softplus(z + ln(e − 1)),
    exactly 1 where the U-Net's output z is 0 (its last convolution starts at zero).

    ``bands`` > 0 runs the U-Net on ``bands`` mel bands instead of every bin (the log-magnitudes averaged per band,
    the mask spread back over each band's bins by the same triangles): 8–16× fewer pixels. 0: every bin (the paper)."""

    def __init__(self, *, n_fft: int, widths: Sequence[int], depth: int, bands: int = 0,
                 sample_rate: int = SAMPLE_RATE):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        if bands:
            triangles = mel_filterbank(n_fft, bands, sample_rate)                               # (m, f)
            triangles[0, 0] = 1.0              # the DC bin belongs to the lowest band (no triangle covers it)
            self.register_buffer("to_bands", triangles / triangles.sum(1, keepdim=True), persistent=False)
            self.register_buffer("to_bins", (triangles / triangles.sum(0, keepdim=True).clamp_min(1e-12)).T,
                                 persistent=False)                                               # (f, m)
        else:
            self.to_bands = self.to_bins = None
        self.unet = UNet(in_channels=1, out_channels=1, widths=widths, depth=depth, spatial_dims=2)
        nn.init.zeros_(self.unet.out.weight)
        nn.init.zeros_(self.unet.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)                                        # (b, f, t)
        log_magnitude = torch.log(spec.abs().clamp_min(MAG_FLOOR))
        if self.to_bands is not None:
            log_magnitude = torch.matmul(self.to_bands, log_magnitude)                 # (b, m, t)
        z = self.unet(log_magnitude[:, None])[:, 0]
        if self.to_bins is not None:
            z = torch.matmul(self.to_bins, z)                                          # (b, f, t)
        mask = F.softplus(z + math.log(math.e - 1))
        return torch.istft(spec * mask, self.n_fft, self.hop, window=self.window, center=True, length=x.shape[-1])


class HiFiPlusPlus(nn.Module):
    """The HiFi++ generator (steps 1–7 of the module docstring): ``(b, c, s)`` → ``(b, c, s)`` at 44.1 kHz.

    ``cond_dim`` > 0 adds an optional conditioning input ``cond`` of shape (b, cond_dim, frames) at any frame rate
    (interpolated to the mel frames, projected onto the mel features). ``rate_divisor`` 1 or 2: the internal rate
    of steps 2–4 (see step 5)."""

    def __init__(self, *, n_mels: int = 64, mel_n_fft: int = 1024, hop: int = 512,
                 spectral_unet_widths: Sequence[int] = (8, 16), spectral_unet_depth: int = 1,
                 upsampler_channels: int = 32, upsample_rates: Sequence[int] = (8, 8, 8),
                 resblock_kernels: Sequence[int] = (3,), resblock_dilations: Sequence[int] = (1, 3),
                 wave_unet_widths: Sequence[int] = (8, 16), wave_unet_depth: int = 1,
                 mask_n_fft: int = 1024, mask_unet_widths: Sequence[int] = (8, 16), mask_unet_depth: int = 1,
                 mask_bands: int = 0, rate_divisor: int = 1, cond_dim: int = 0, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        #: the constructor's keywords (JSON-able), saved with a checkpoint so it can be rebuilt
        self.config = dict(n_mels=n_mels, mel_n_fft=mel_n_fft, hop=hop, spectral_unet_widths=list(spectral_unet_widths),
                           spectral_unet_depth=spectral_unet_depth, upsampler_channels=upsampler_channels,
                           upsample_rates=list(upsample_rates), resblock_kernels=list(resblock_kernels),
                           resblock_dilations=list(resblock_dilations), wave_unet_widths=list(wave_unet_widths),
                           wave_unet_depth=wave_unet_depth, mask_n_fft=mask_n_fft,
                           mask_unet_widths=list(mask_unet_widths), mask_unet_depth=mask_unet_depth,
                           mask_bands=mask_bands, rate_divisor=rate_divisor, cond_dim=cond_dim,
                           sample_rate=sample_rate)
        if math.prod(upsample_rates) != hop:
            raise ValueError(f"the upsample rates {tuple(upsample_rates)} multiply to {math.prod(upsample_rates)}, "
                             f"not the hop {hop}")
        if rate_divisor not in (1, 2):
            raise ValueError(f"rate_divisor must be 1 or 2, got {rate_divisor}")
        self.sample_rate, self.rate_divisor, self.hop = sample_rate, rate_divisor, hop
        inner_rate = sample_rate // rate_divisor
        self.spectral_unet = SpectralUNet(sample_rate=inner_rate, n_fft=mel_n_fft, hop=hop, n_mels=n_mels,
                                          widths=spectral_unet_widths, depth=spectral_unet_depth)
        self.cond_proj = nn.Conv1d(cond_dim, n_mels, 1) if cond_dim > 0 else None
        self.upsampler = Upsampler(in_channels=n_mels, channels=upsampler_channels, rates=upsample_rates,
                                   resblock_kernels=resblock_kernels, resblock_dilations=resblock_dilations)
        self.wave_unet = WaveUNet(in_channels=self.upsampler.out_channels, widths=wave_unet_widths,
                                  depth=wave_unet_depth)
        self.spectral_mask_net = SpectralMaskNet(n_fft=mask_n_fft, widths=mask_unet_widths, depth=mask_unet_depth,
                                                 bands=mask_bands, sample_rate=sample_rate)

    def forward(self, audio: Tensor, cond: Tensor | None = None) -> Tensor:
        if audio.ndim != 3:
            raise ValueError(f"expected (batch, channels, samples), got shape {tuple(audio.shape)}")
        batch, channels, samples = audio.shape
        x = rearrange(audio, "b c s -> (b c) s")                                         # 1
        inner = resample_torch(x, self.sample_rate, self.sample_rate // 2) if self.rate_divisor == 2 else x
        features = self.spectral_unet(inner)                                             # 2: (bc, m, t)
        if self.cond_proj is not None and cond is not None:
            cond = F.interpolate(cond.float(), size=features.shape[-1], mode="linear", align_corners=False)
            features = features + self.cond_proj(cond).repeat_interleave(channels, dim=0)
        waves = self.upsampler(features)[..., : inner.shape[-1]]                         # 3: (bc, k, s')
        correction = self.wave_unet(waves, inner)                                        # 4: (bc, s')
        if self.rate_divisor == 2:                                                       # 5
            correction = resample_torch(correction, self.sample_rate // 2, self.sample_rate)[..., :samples]
        restored = self.spectral_mask_net(x + correction)                                # 6
        return rearrange(restored, "(b c) s -> b c s", b=batch, c=channels)              # 7


def block_parameters(model: HiFiPlusPlus) -> dict[str, int]:
    """Trainable weights per block of the generator, and their total."""
    blocks = {"spectral_unet": model.spectral_unet, "upsampler": model.upsampler, "wave_unet": model.wave_unet,
              "spectral_mask_net": model.spectral_mask_net}
    if model.cond_proj is not None:
        blocks["cond_proj"] = model.cond_proj
    counts = {name: sum(p.numel() for p in block.parameters() if p.requires_grad) for name, block in blocks.items()}
    counts["total"] = sum(counts.values())
    return counts
