"""Training the HiFi++ restorer: one generalist on every stem, then one expert per stem from it (CP-JKU's recipe,
arXiv 2603.04032), with the one training loop of :mod:`msr_lib.train.loop`.

Lesson: notebooks/05_hifipp_restorer.ipynb

A run trains the generator (:class:`~msr_lib.models.hifipp.HiFiPlusPlus`) on pairs (input → clean stem) of
:class:`~msr_lib.data.restoration.RestorationDataset` in two phases:

1. **reconstruction only** (steps before ``adversarial_from``): multi-resolution STFT + mel L1
   (:func:`~msr_lib.train.losses.restoration_reconstruction_loss`);
2. **adversarial**: a discriminator (:class:`~msr_lib.models.discriminators.MultiScaleMelDiscriminator`, or the
   multi-resolution STFT one) trains beside it with the LSGAN loss, and the generator's loss becomes
   20 · reconstruction + 0.4 · LSGAN + 20 · feature matching (the weights in :mod:`msr_lib.train.losses`).

``stem="all"`` trains the generalist on every stem (``other`` keeps using it); ``stem="bass"`` with ``init`` = the
generalist's run trains the bass expert, every weight (``method="full"``) or LoRA adapters on the convolutions
(``method="lora"``: the saved expert is the generalist with the adapters merged, so it costs the same to run).
Validation: Multi-Mel-SNR of the restored stems and of their inputs against the clean stems on fixed held-out pairs
(``valid/mms``, ``valid/mms_input``; ``valid/gain`` their difference).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from msr_lib.errors import MSRError
from msr_lib.presets import Preset, get_preset
from msr_lib.stems import canonical_stem
from msr_lib.train.loop import (RUN_INFO, TrainConfig, TrainResult, fixed_batches, recorded_run, run_folder_lock,
                                train)

__all__ = ["train_restorer", "build_restorer", "build_discriminator", "restorer_train_config", "lora_targets",
           "RESTORER_METHODS"]

RESTORER_METHODS = ("full", "lora")
#: LoRA on the restorer: rank and scale, on every undilated convolution (peft 0.21 has no LoRA for transposed
#: convolutions and ignores a convolution's dilation)
RESTORER_LORA = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0}


def build_restorer(preset: Preset, init=None) -> nn.Module:
    """A new generator of the preset's size, or the generator of ``init`` (a restorer folder, run or bundled name)."""
    from msr_lib.models.hifipp import HiFiPlusPlus

    if init is None:
        return HiFiPlusPlus(**preset.restorer["model"])
    from msr_lib.models import load_restorer

    return load_restorer(init).model.train().requires_grad_(True)


def build_discriminator(preset: Preset) -> nn.Module:
    """The preset's discriminator: ``kind`` "mel" (multi-scale mel, CP-JKU's) or "stft" (multi-resolution STFT)."""
    from msr_lib.models.discriminators import MultiResolutionSTFTDiscriminator, MultiScaleMelDiscriminator

    settings = dict(preset.restorer["discriminator"])
    kind = settings.pop("kind", "mel")
    if kind not in ("mel", "stft"):
        raise MSRError(f"unknown discriminator kind {kind!r}; choose mel or stft")
    return (MultiScaleMelDiscriminator if kind == "mel" else MultiResolutionSTFTDiscriminator)(**settings)


def restorer_train_config(preset: Preset, role: str, **overrides) -> TrainConfig:
    """The preset's training settings for the ``generalist`` or an ``expert`` (``preset.restorer["train"]``
    defaults, then the role's entries, then ``overrides`` that are not None)."""
    settings = {k: v for k, v in preset.restorer["train"].items() if k in TrainConfig.__dataclass_fields__}
    settings.update(preset.restorer["train"]["roles"][role])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(settings)


def _fold(audio: torch.Tensor) -> torch.Tensor:
    return rearrange(audio, "b c s -> (b c) s")


def restoration_batch_loss(model: nn.Module, batch: dict, discriminator: nn.Module | None):
    """The generator's loss on a batch {input, target}: reconstruction alone, or with a discriminator the weighted
    reconstruction + LSGAN + feature matching."""
    from msr_lib.train import losses

    restored = _fold(model(batch["input"]))
    target = _fold(batch["target"])
    reconstruction, parts = losses.restoration_reconstruction_loss(restored, target)
    if discriminator is None:
        return reconstruction, parts
    fake = discriminator(restored)
    with torch.no_grad():                        # feature matching takes the real side as a fixed target
        real = discriminator(target)
    adversarial = losses.lsgan_generator_loss(fake)
    matching = losses.feature_matching_loss(real, fake)
    total = (losses.RECONSTRUCTION_WEIGHT * reconstruction + losses.ADVERSARIAL_WEIGHT * adversarial
             + losses.FEATURE_MATCHING_WEIGHT * matching)
    return total, {**parts, "adversarial": float(adversarial.detach()), "feature_matching": float(matching.detach())}


def discriminator_batch_loss(discriminator: nn.Module, model: nn.Module, batch: dict):
    """The discriminator's LSGAN loss: clean stems are real, the generator's restorations (no gradient) fake."""
    from msr_lib.train.losses import lsgan_discriminator_loss

    with torch.no_grad():
        restored = _fold(model(batch["input"]))
    real, fake = discriminator(_fold(batch["target"])), discriminator(restored)
    loss = lsgan_discriminator_loss(real, fake)
    return loss, {"real": float(torch.stack([r.detach().mean() for r, _ in real]).mean()),
                  "fake": float(torch.stack([f.detach().mean() for f, _ in fake]).mean())}


def mean_multi_mel_snr(batches: list[dict], estimate) -> float:
    """Mean Multi-Mel-SNR (dB) over the items of ``batches`` of ``estimate(batch)`` against ``batch["target"]``."""
    from msr_lib.audio import SAMPLE_RATE
    from msr_lib.metrics import multi_mel_snr_batch

    scores = [multi_mel_snr_batch(estimate(batch), batch["target"], SAMPLE_RATE) for batch in batches]
    return float(torch.cat(scores).nanmean())


def restoration_scores(model: nn.Module, batches: list[dict], *, mms_input: float) -> dict[str, float]:
    """Mean Multi-Mel-SNR (dB) of the restored stems against the targets, the inputs' (``mms_input``: the same at
    every validation, so the caller computes it once with :func:`mean_multi_mel_snr`) and the gain."""
    mms = mean_multi_mel_snr(batches, lambda batch: model(batch["input"]))
    return {"mms": mms, "mms_input": mms_input, "gain": mms - mms_input}


def lora_targets(model: nn.Module) -> list[str]:
    """The modules a restorer's LoRA adapters go on: every undilated Conv1d/Conv2d (see :data:`RESTORER_LORA`)."""
    return [name for name, module in model.named_modules()
            if type(module) in (nn.Conv1d, nn.Conv2d) and all(d == 1 for d in module.dilation)]


def train_restorer(
    stem: str,
    out_dir,
    *,
    preset: str | Preset | None = None,
    init=None,
    steps: int | None = None,
    resume: bool = False,
    train_songs=None,
    valid_songs=None,
    source: str = "degraded",
    cache_dir=None,
    separator=None,
    versions: int = 1,
    method: str = "full",
    device=None,
    progress: bool = True,
    on_log=None,
    **overrides,
) -> TrainResult:
    """Train the generalist (``stem="all"``) or one stem's expert into the run folder ``out_dir``.

    ``init``: the run (or restorer folder, ``bundled:`` name) to start from — experts start from the generalist.
    ``source``: "degraded" (clean stems through the production chain, unlimited) or "separated" (a separator's
    estimates, cached in ``cache_dir`` by :func:`~msr_lib.data.restoration.cache_separated_stems`; with
    ``separator`` given, the training and validation songs missing from the cache are separated into it first, in
    ``versions`` masterings each).
    ``overrides`` change :class:`~msr_lib.train.loop.TrainConfig` fields.
    """
    from msr_lib.data.restoration import RestorationDataset
    from msr_lib.lessons import prepare_songs
    from msr_lib.models.checkpoint import write_restorer_files
    from msr_lib.train.curriculum import check_train_arguments

    check_train_arguments(steps=steps, versions=versions, **overrides)
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    stem = "all" if stem == "all" else canonical_stem(stem)      # an unknown name fails here, in one line
    out_dir = Path(out_dir)
    with run_folder_lock(out_dir):  # before the folder is read: one command at a time
        info_path = out_dir / RUN_INFO
        recorded = recorded_run(out_dir, resume=resume, identity={"model_kind": "restorer", "stem": stem})
        if recorded is not None:
            init, method, source = recorded.get("init"), recorded.get("method", method), recorded.get("source", source)
        if method not in RESTORER_METHODS:
            raise MSRError(f"method must be one of {', '.join(RESTORER_METHODS)}, got {method!r}")
        if method == "lora" and init is None:
            raise MSRError("a LoRA expert needs --init: the generalist it adapts")
        role = "generalist" if stem == "all" else "expert"
        config = restorer_train_config(preset, role, steps=steps, **overrides)
        if train_songs is None or valid_songs is None:
            default_train, default_valid = prepare_songs(preset, progress=progress)
            train_songs = default_train if train_songs is None else train_songs
            valid_songs = default_valid if valid_songs is None else valid_songs

        torch.manual_seed(config.seed)  # new weights (generator, LoRA, discriminator) depend on the seed only
        generator = build_restorer(preset, init)
        discriminator = build_discriminator(preset)
        model = generator
        if method == "lora":
            from msr_lib.train.curriculum import apply_lora

            model = apply_lora(generator, **RESTORER_LORA, target_modules=lora_targets(generator))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        info = {"model_kind": "restorer", "stem": stem, "method": method, "source": source, "preset": preset.name,
                "init": str(init) if init is not None else None, "trainable_parameters": trainable,
                "total_parameters": total, "train_songs": str(train_songs), "valid_songs": str(valid_songs)}
        if int(os.environ.get("RANK", "0")) == 0:
            if progress:
                print(f"restorer {stem} ({method}): trainable {trainable:,} of {total:,} parameters; adversarial from "
                      f"step {config.adversarial_from}")
            out_dir.mkdir(parents=True, exist_ok=True)
            info_path.write_text(json.dumps(info, indent=2) + "\n")
        world = max(1, int(os.environ.get("WORLD_SIZE", "1")))

        settings = preset.restorer["train"]
        if source == "separated" and separator is not None:
            from msr_lib.data.restoration import cache_separated_stems

            for songs in (train_songs, valid_songs):  # once per song: GAN training never runs the separator
                cache_separated_stems(separator, songs, cache_dir, versions=versions, progress=progress)
        stems = None if stem == "all" else [stem]
        train_data = RestorationDataset(train_songs, stems=stems, source=source, cache_dir=cache_dir,
                                        chunk_seconds=settings["chunk_seconds"],
                                        length=config.steps * config.batch_size * world,
                                        seed=config.seed)
        valid_data = RestorationDataset(valid_songs, stems=stems, source=source, cache_dir=cache_dir,
                                        chunk_seconds=settings["valid_seconds"], length=settings["valid_items"],
                                        seed=12345)
        valid_batches = fixed_batches(valid_data, ("input", "target"), config.batch_size)
        mms_input = mean_multi_mel_snr(valid_batches, lambda batch: batch["input"])     # the inputs do not change

        def save_model(m, folder):
            from msr_lib.train.curriculum import merge_lora

            write_restorer_files(merge_lora(m) if method == "lora" else m, folder, stem=stem,
                                 extra={"training": {k: info[k] for k in ("method", "source", "preset", "init")}})

        return train(model, train_data, config=config, out_dir=out_dir, loss_fn=restoration_batch_loss,
                     save_model=save_model,
                     validate_fn=lambda m: restoration_scores(m, valid_batches, mms_input=mms_input),
                     discriminator=discriminator, discriminator_loss_fn=discriminator_batch_loss,
                     resume=resume, device=device, progress=progress, describe=f"restorer {stem}", on_log=on_log)
