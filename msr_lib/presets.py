"""Presets: one name chooses every size, for notebooks, CLI and tests.

``quick`` (tests and CI: seconds on a CPU) · ``laptop`` (a workshop on a 2–4-core CPU: minutes per lesson) ·
``gpu`` (one GPU: about an hour per stage) · ``paper`` (the CP-JKU sizes, for real data and several GPUs) ·
``bundled`` (the recipe of the separators shipped in ``msr_lib/models/bundled``, see docs/MODEL_CARD.md).
Notebooks read the preset from the environment variable ``MSR_PRESET`` (default ``laptop``).
Each section is a plain dict so later lessons can add their own keys in one place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from msr_lib.errors import MSRError

DEFAULT_PRESET = "laptop"
#: the sound sources the bundled separators train on (their Debian packages: fluid-soundfont-gm,
#: musescore-general-soundfont-small, opl3-soundfont, avldrums.lv2-soundfont, hydrogen-drumkits; ~570 MB)
BUNDLED_SOUND_SOURCES = ("fluidr3_gm", "musescore_general", "timgm6mb", "opl3_fm", "avldrums", "hydrogen",
                         "msr_subtractive", "msr_fm", "msr_voice")
ENV_VAR = "MSR_PRESET"


#: the pipeline's defaults (a preset overrides what it needs); the restorers train on 1-2 s chunks but are
#: convolutional, so a longer inference chunk costs only memory; ``lesson_songs``: held-out songs lesson 06 scores
PIPELINE = {"models": "bundled", "chunk_seconds": None, "restorer_chunk_seconds": 4.0, "overlap": 0.25,
            "batch_size": 1, "lesson_songs": 3}


@dataclass(frozen=True)
class Preset:
    """All sizes for one scale of work."""

    name: str
    description: str
    #: offline song generation (``msr synth``) as used by the lessons; ``sound_sources``: the sources songs draw
    #: from (``None``: every installed one; a list: those, installed first where root + apt allow, else one error)
    synth: dict = field(default_factory=dict)
    #: training-data loading (chunk length, batch size, workers)
    data: dict = field(default_factory=dict)
    #: lesson 02: points per metric sweep, songs for the oracle floor/ceiling
    metrics: dict = field(default_factory=dict)
    #: the separator's size (BSRoformer keyword arguments; stems are set by the curriculum stage)
    model: dict = field(default_factory=dict)
    #: separator training (msr_lib.train): TrainConfig defaults, chunk/validation sizes, and per-stage overrides
    train: dict = field(default_factory=dict)
    #: the HiFi++ restorer (msr_lib.train.restorer): ``model`` (HiFiPlusPlus keywords), ``discriminator`` (``kind``
    #: mel or stft, and its keywords), ``train`` (TrainConfig defaults, chunk/validation sizes, per-role overrides)
    restorer: dict = field(default_factory=dict)
    #: the full pipeline (msr_lib.pipeline, ``msr restore``): ``models`` "bundled" (the shipped separator and
    #: restorers) or "untrained" (tiny ones of this preset's sizes: smoke checks); separator ``chunk_seconds``
    #: (None: the checkpoint's), ``restorer_chunk_seconds``, ``overlap``, chunks per forward ``batch_size``
    pipeline: dict = field(default_factory=lambda: dict(PIPELINE))


def _stages(pretrain: int, lora: int, expand: int, lr: float, *, pretrain_schedule: int | None = None) -> dict:
    """Steps and learning rates per curriculum stage (LoRA and new heads take a higher rate: few weights move).
    ``pretrain_schedule``: the warm-up run's planned schedule length when it stops before the schedule ends."""
    return {
        "pretrain": {"steps": pretrain, "lr": lr, "schedule_steps": pretrain_schedule},
        "lora-clean": {"steps": lora, "lr": 2 * lr},
        "lora-mastered": {"steps": lora, "lr": 2 * lr},
        "expand": {"steps": expand, "lr": 2 * lr},
    }


def _model(dim: int, depth: int, heads: int, dim_head: int, transformer_depth: int, mask_depth: int,
           mlp_expansion: int) -> dict:
    return {
        "dim": dim, "depth": depth, "heads": heads, "dim_head": dim_head, "stereo": True,
        "time_transformer_depth": transformer_depth, "freq_transformer_depth": transformer_depth,
        "mask_estimator_depth": mask_depth, "mlp_expansion_factor": mlp_expansion, "stft_hop_length": 441,
        # `other` is the input minus the named stems: the stems add up to the input (docs/DESIGN.md)
        "residual_stem": True,
    }


def _restorer_model(*, channels: int, widths: tuple, mask_bands: int = 64, **more) -> dict:
    """A CPU-sized HiFi++ (benchmarks/bench_restorer.py): 22.05 kHz inside, the mask U-Net on mel bands."""
    return {"n_mels": 64, "mel_n_fft": 1024, "hop": 256, "upsample_rates": [8, 8, 4], "upsampler_channels": channels,
            "resblock_kernels": [3], "resblock_dilations": [1, 3], "spectral_unet_widths": list(widths),
            "wave_unet_widths": list(widths), "mask_unet_widths": list(widths), "mask_n_fft": 1024,
            "mask_bands": mask_bands, "rate_divisor": 2, **more}


def _roles(generalist: int, expert: int, lr: float, *, adversarial_share: float = 0.5) -> dict:
    """Steps per restorer role; the adversarial phase takes the last ``adversarial_share`` of the generalist's
    steps (CP-JKU: 40 k reconstruction-only steps first) and all of an expert's (it starts from a trained one)."""
    return {"generalist": {"steps": generalist, "lr": lr,
                           "adversarial_from": int(round(generalist * (1 - adversarial_share)))},
            "expert": {"steps": expert, "lr": lr / 2, "adversarial_from": 0}}


#: the official HiFi++ generator's sizes (its default configuration, ~1.7 M weights): the paper preset's restorer
PAPER_RESTORER = {
    "n_mels": 128, "mel_n_fft": 1024, "hop": 256,
    "spectral_unet_widths": [8, 16, 24, 32, 64], "spectral_unet_depth": 5,
    "upsampler_channels": 128, "upsample_rates": [8, 8, 2, 2], "resblock_kernels": [3, 7, 11],
    "resblock_dilations": [1, 3, 5], "wave_unet_widths": [10, 20, 40, 80], "wave_unet_depth": 4,
    "mask_n_fft": 1024, "mask_unet_widths": [8, 12, 24, 32], "mask_unet_depth": 4,
}

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="tests and CI: seconds on a CPU",
        synth={"songs": 2, "seconds": 4.0, "lesson_seconds": 6.0},
        data={"chunk_seconds": 1.0, "batch_size": 2, "num_workers": 0, "songs": 4},
        metrics={"sweep_points": 5, "oracle_songs": 1},
        model=_model(16, 1, 2, 8, 1, 1, 1),
        train={"batch_size": 2, "chunk_seconds": 1.0, "warmup_steps": 1, "validate_every": 2, "checkpoint_every": 2,
               "valid_songs": 1, "valid_items": 2, "valid_seconds": 1.0, "stages": _stages(4, 3, 3, 1e-3)},
        restorer={"model": _restorer_model(channels=16, widths=(4, 8), mask_bands=32, n_mels=32, mel_n_fft=512,
                                           mask_n_fft=512),
                  "discriminator": {"kind": "mel", "channels": 4, "downsamples": 2},
                  "train": {"batch_size": 2, "chunk_seconds": 0.5, "warmup_steps": 1, "validate_every": 2,
                            "checkpoint_every": 2, "valid_items": 2, "valid_seconds": 0.5,
                            "roles": _roles(4, 2, 1e-3)}},
        pipeline={**PIPELINE, "models": "untrained", "chunk_seconds": 1.0, "restorer_chunk_seconds": 1.0,
                  "lesson_songs": 1},
    ),
    "laptop": Preset(
        name="laptop",
        description="a workshop on a 2-4 core CPU: minutes per lesson",
        synth={"songs": 16, "seconds": 20.0, "lesson_seconds": 20.0},
        data={"chunk_seconds": 3.0, "batch_size": 4, "num_workers": 2, "songs": 48},
        metrics={"sweep_points": 9, "oracle_songs": 3},
        # the bundled separators' size (lesson 03's short run is comparable with bundled:4stem); 2 items × 2 s per
        # step keep a training step near 1.5 GB and 1-2 s on a 2-core CPU
        model=_model(48, 2, 4, 16, 1, 2, 1),
        train={"batch_size": 2, "chunk_seconds": 2.0, "warmup_steps": 20, "validate_every": 20, "checkpoint_every": 50,
               "valid_songs": 4, "valid_items": 8, "valid_seconds": 4.0, "stages": _stages(120, 60, 60, 1e-3),
               # activation checkpointing of the transformers: −0.46 GB peak per training step (1.45 → 0.99 GB);
               # one item at a time through forward and backward (same gradients): less memory, and faster here
               "checkpoint_activations": True, "micro_batch_size": 1},
        restorer={"model": _restorer_model(channels=32, widths=(8, 16)),
                  "discriminator": {"kind": "mel", "channels": 16},
                  "train": {"batch_size": 4, "chunk_seconds": 1.0, "warmup_steps": 20, "validate_every": 25,
                            "checkpoint_every": 50, "valid_items": 8, "valid_seconds": 2.0,
                            "roles": _roles(100, 40, 1e-3)}},
    ),
    "gpu": Preset(
        name="gpu",
        description="one GPU: about an hour per stage",
        synth={"songs": 400, "seconds": 30.0, "lesson_seconds": 30.0},
        data={"chunk_seconds": 6.0, "batch_size": 8, "num_workers": 8, "songs": 400},
        metrics={"sweep_points": 9, "oracle_songs": 8},
        model=_model(192, 6, 8, 32, 1, 2, 4),
        train={"batch_size": 8, "chunk_seconds": 4.0, "warmup_steps": 500, "validate_every": 1000,
               "checkpoint_every": 1000, "num_workers": 8, "valid_songs": 16, "valid_items": 64, "valid_seconds": 8.0,
               "stages": _stages(20000, 5000, 5000, 5e-4)},
        restorer={"model": _restorer_model(channels=128, widths=(16, 32, 64), mask_bands=128,
                                           resblock_kernels=[3, 7, 11], resblock_dilations=[1, 3, 5]),
                  "discriminator": {"kind": "mel", "channels": 32},
                  "train": {"batch_size": 16, "chunk_seconds": 2.0, "warmup_steps": 500, "validate_every": 1000,
                            "checkpoint_every": 1000, "num_workers": 8, "valid_items": 64, "valid_seconds": 4.0,
                            "roles": _roles(40000, 5000, 2e-4)}},
        pipeline={**PIPELINE, "batch_size": 8, "lesson_songs": 12},
    ),
    "paper": Preset(
        name="paper",
        description="the CP-JKU sizes, for real data and several GPUs",
        synth={"songs": 2000, "seconds": 60.0, "lesson_seconds": 30.0},
        data={"chunk_seconds": 11.0, "batch_size": 4, "num_workers": 16, "songs": 2000},
        metrics={"sweep_points": 9, "oracle_songs": 20},
        model={**_model(384, 8, 8, 64, 1, 2, 4), "use_torch_checkpoint": True},
        train={"batch_size": 4, "chunk_seconds": 8.0, "warmup_steps": 1000, "validate_every": 5000,
               "checkpoint_every": 2000, "num_workers": 16, "valid_songs": 50, "valid_items": 200,
               "valid_seconds": 11.0, "stages": _stages(200000, 50000, 50000, 3e-4)},
        restorer={"model": PAPER_RESTORER, "discriminator": {"kind": "mel", "channels": 32},
                  "train": {"batch_size": 16, "chunk_seconds": 2.0, "warmup_steps": 1000, "validate_every": 5000,
                            "checkpoint_every": 2000, "num_workers": 16, "valid_items": 200, "valid_seconds": 4.0,
                            "roles": _roles(80000, 20000, 2e-4)}},
    ),
    "bundled": Preset(
        name="bundled",
        description="the shipped separators: a model small enough to ship, 160 songs, long CPU runs",
        synth={"songs": 160, "seconds": 20.0, "lesson_seconds": 20.0, "sound_sources": BUNDLED_SOUND_SOURCES},
        data={"chunk_seconds": 3.0, "batch_size": 4, "num_workers": 0, "songs": 160},
        metrics={"sweep_points": 9, "oracle_songs": 3},
        model=_model(48, 2, 4, 16, 1, 2, 1),
        # the shipped runs (docs/MODEL_CARD.md): about four hours on a 2-core CPU for the whole curriculum;
        # micro-batches of 2 items: the same gradients as whole batches, 1.15-1.37x the audio per second here
        train={"batch_size": 4, "chunk_seconds": 2.0, "warmup_steps": 100, "validate_every": 250,
               "checkpoint_every": 100, "valid_songs": 8, "valid_items": 16, "valid_seconds": 4.0, "ema_decay": 0.999,
               "micro_batch_size": 2, "stages": _stages(4000, 300, 1000, 1e-3)},
        restorer={"model": _restorer_model(channels=32, widths=(8, 16)),
                  "discriminator": {"kind": "mel", "channels": 16},
                  "train": {"batch_size": 4, "chunk_seconds": 1.0, "warmup_steps": 100, "validate_every": 250,
                            "checkpoint_every": 100, "valid_items": 32, "valid_seconds": 2.0,
                            "roles": _roles(3000, 500, 1e-3)}},
    ),
}


def get_preset(name: str | None = None) -> Preset:
    """Return a preset by name; ``None`` reads ``$MSR_PRESET`` (default ``laptop``)."""
    name = (name or os.environ.get(ENV_VAR) or DEFAULT_PRESET).strip().lower()
    if name not in PRESETS:
        raise MSRError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
