"""Cost of the HiFi++ restorer (msr_lib/models/hifipp.py) on this machine: what each design choice buys.

For each configuration, in this one process (the paper's sizes are the peer): weights per block, inference time per
block and for the whole generator as a real-time factor per **stereo** stem at 44.1 kHz (wall seconds / audio
seconds; median of ``--repeats`` runs over ``--seconds`` of noise-like audio, after one warm-up run), and the time of
one generator training step (L1 on the waveform, forward + backward + AdamW) on 4 × 1 s mono items, the issue's
yardstick for the paper's generator (1.8 s/step measured there); then, per ``--gan-presets``, the whole training
step of that preset's restorer (reconstruction-only, and adversarial: discriminator + generator) per audio second.

    .venv/bin/python benchmarks/bench_restorer.py [--configs paper,tiny,...] [--seconds 8] [--repeats 3] [--threads 2]

The pipeline's budget (issue 11/12): whole song, both stages, RTF ≤ 0.5 on a 2-core CPU; the separator takes
about 0.16, which leaves about 0.035 per stem for 9 stems (more when silent stems are skipped).

Measured 2026-12-01 (2-core AMD EPYC, the background training paused, 2 threads; ``--seconds 8 --repeats 3``):
RTF per stereo stem ``paper`` 1.03 (1.66 M weights, upsampler 0.77 of it; train step 2.34 s), ``tiny`` 0.084
(38 k; its every-bin mask net 0.065), ``tiny+bands`` 0.026, ``tiny22`` 0.080, ``tiny22+bands`` 0.019 (53× cheaper
than the paper's sizes; train step 0.15 s), ``tiny22+bands-mrf`` 0.017. What buys the most: the mask U-Net on 64
mel bands instead of 513 bins (9× on that block), then the 22.05 kHz inside for the waveform blocks.
A second run (same settings, a helper's tests running beside it, load average 4): ``paper`` 0.51, ``tiny`` 0.077,
``tiny+bands`` 0.020, ``tiny22+bands`` 0.018, ``tiny22+bands-mrf`` 0.017 — the small configurations repeat, the
paper's upsampler (0.21 against 0.77) does not: read its row as 0.5–1.0. Whole training steps (``--gan-presets``):
``quick`` 0.12 s reconstruction-only / 0.23 s adversarial per 1 s step; ``laptop`` (4 × 1 s stereo) 0.39 s / 0.92 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from msr_lib.metrics import resample_torch
from msr_lib.models.hifipp import HiFiPlusPlus, block_parameters
from msr_lib.presets import PAPER_RESTORER, PRESETS

_SMALL = dict(rate_divisor=2, hop=256, upsample_rates=(8, 8, 4))
CONFIGS = {
    "paper": PAPER_RESTORER,
    "tiny": {},                                             # HiFiPlusPlus defaults: 44.1 kHz inside, every bin masked
    "tiny+bands": dict(mask_bands=64),
    "tiny22": _SMALL,
    "tiny22+bands": {**_SMALL, "mask_bands": 64},
    "tiny22+bands-mrf": {**_SMALL, "mask_bands": 64, "resblock_kernels": ()},
    # each preset's restorer (preset:paper is the paper's sizes again)
    **{f"preset:{name}": preset.restorer["model"] for name, preset in PRESETS.items()},
}


def _timed(fn, repeats: int) -> float:
    fn()                                                    # warm-up (allocations, oneDNN kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def inference_times(model: HiFiPlusPlus, seconds: float, repeats: int) -> dict[str, float]:
    """Seconds per second of stereo audio, per block and for the whole forward."""
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(1, 2, int(seconds * model.sample_rate))
    x = audio[0]
    times = {}
    with torch.no_grad():
        inner = x
        if model.rate_divisor == 2:
            times["resample"] = _timed(lambda: resample_torch(x, model.sample_rate, model.sample_rate // 2), repeats)
            inner = resample_torch(x, model.sample_rate, model.sample_rate // 2)
        features = model.spectral_unet(inner)
        waves = model.upsampler(features)[..., : inner.shape[-1]]
        times["spectral_unet"] = _timed(lambda: model.spectral_unet(inner), repeats)
        times["upsampler"] = _timed(lambda: model.upsampler(features), repeats)
        times["wave_unet"] = _timed(lambda: model.wave_unet(waves, inner), repeats)
        times["spectral_mask_net"] = _timed(lambda: model.spectral_mask_net(x), repeats)
        times["whole"] = _timed(lambda: model(audio), repeats)
    return {name: t / seconds for name, t in times.items()}


def training_step_seconds(model: HiFiPlusPlus, repeats: int) -> float:
    """One generator step: L1 on 4 × 1 s mono items, forward + backward + AdamW."""
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    source = 0.1 * torch.randn(4, 1, model.sample_rate)
    target = 0.1 * torch.randn(4, 1, model.sample_rate)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = (model(source) - target).abs().mean()
        loss.backward()
        optimizer.step()

    result = _timed(step, repeats)
    model.eval()
    return result


def gan_step_seconds(preset_name: str, repeats: int) -> dict[str, float]:
    """Seconds per training step of the preset's restorer with its discriminator, on noise-like stereo items of the
    preset's batch and chunk: the reconstruction-only step and the adversarial step (discriminator update, then
    generator update), as :mod:`msr_lib.train.restorer` computes them; and each per second of training audio."""
    from msr_lib.presets import get_preset
    from msr_lib.train.restorer import (build_discriminator, build_restorer, discriminator_batch_loss,
                                        restoration_batch_loss)

    preset = get_preset(preset_name)
    torch.manual_seed(0)
    generator, critic = build_restorer(preset).train(), build_discriminator(preset).train()
    g_opt, d_opt = torch.optim.AdamW(generator.parameters()), torch.optim.AdamW(critic.parameters())
    settings = preset.restorer["train"]
    samples = int(settings["chunk_seconds"] * generator.sample_rate)
    batch = {"input": 0.1 * torch.randn(settings["batch_size"], 2, samples),
             "target": 0.1 * torch.randn(settings["batch_size"], 2, samples)}

    def generator_step(adversarial: bool):
        g_opt.zero_grad(set_to_none=True)
        critic.requires_grad_(False)
        restoration_batch_loss(generator, batch, critic if adversarial else None)[0].backward()
        critic.requires_grad_(True)
        g_opt.step()

    def adversarial_step():
        d_opt.zero_grad(set_to_none=True)
        discriminator_batch_loss(critic, generator, batch)[0].backward()
        d_opt.step()
        generator_step(True)

    audio_seconds = settings["batch_size"] * settings["chunk_seconds"]
    reconstruction = _timed(lambda: generator_step(False), repeats)
    adversarial = _timed(adversarial_step, repeats)
    return {"reconstruction": reconstruction, "adversarial": adversarial, "audio_seconds": audio_seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(n for n in CONFIGS if n != "preset:paper"),
                        help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--seconds", type=float, default=8.0, help="stereo audio per timed inference run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    parser.add_argument("--gan-presets", default="quick,laptop",
                        help="presets whose whole training step (generator + discriminator) is timed ('' for none)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    blocks = ("resample", "spectral_unet", "upsampler", "wave_unet", "spectral_mask_net")
    print(f"{'configuration':<18} {'weights':>9} " + " ".join(f"{b[:13]:>13}" for b in blocks)
          + f" {'RTF stereo':>10} {'× paper':>7} {'train s/step':>12}")
    paper_rtf = None
    for name in names:
        model = HiFiPlusPlus(**CONFIGS[name]).eval()
        weights = block_parameters(model)
        times = inference_times(model, args.seconds, args.repeats)
        paper_rtf = times["whole"] if name == "paper" else paper_rtf
        train = float("nan") if args.no_train else training_step_seconds(model, args.repeats)
        cells = " ".join(f"{times[b]:>6.3f} {weights.get(b, 0) / 1e3:>5.0f}k" if b in times else f"{'—':>13}"
                         for b in blocks)
        ratio = f"{paper_rtf / times['whole']:>6.1f}x" if paper_rtf else f"{'':>7}"
        print(f"{name:<18} {weights['total']:>9,} {cells} {times['whole']:>10.3f} {ratio} {train:>12.2f}")
    print("block cells: seconds per stereo second, then weights; RTF stereo: the whole generator, wall / audio seconds")
    for name in [n.strip() for n in args.gan_presets.split(",") if n.strip()]:
        t = gan_step_seconds(name, args.repeats)
        print(f"{name} preset training step ({t['audio_seconds']:g} s of stereo audio): reconstruction only "
              f"{t['reconstruction']:.2f} s ({t['reconstruction'] / t['audio_seconds']:.2f} s per audio second), "
              f"adversarial {t['adversarial']:.2f} s ({t['adversarial'] / t['audio_seconds']:.2f} s per audio second)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
