"""The separator curriculum of CP-JKU (arXiv 2603.04032): 4-stem warm-up → LoRA on clean mixes → LoRA on mastered
mixes → expansion to the 9 canonical stems. Each stage is a :class:`Stage` record in :data:`STAGES`; the code reads
its fields (``mix``, ``trains``, ``starts_from``, ``stems``), never its name:

========================  =========================  ============================  ==============================
stage                     data (``mix``, ``stems``)   trained (``trains``)          starts from (``starts_from``)
========================  =========================  ============================  ==============================
``pretrain``              clean mixes, 4 stems        everything                    nothing (or a checkpoint)
``lora-clean``            clean mixes, 4 stems        LoRA on attention q and v     a 4-stem separator
``lora-mastered``         mastered mixes, 4 stems     LoRA on attention q and v     the ``lora-clean`` run
``expand``                mastered mixes, 9 stems     the 5 new mask estimators     the ``lora-mastered`` run
========================  =========================  ============================  ==============================

LoRA (Hu et al., arXiv 2106.09685) via ``peft``: rank 8, α 16, dropout 0.05 on ``to_q`` and ``to_v`` of every
attention layer; everything else (band split, transformer, mask estimators) is frozen. **Choice:** each LoRA stage
merges its adapter into the weights when it saves, so every run folder is a plain separator any tool can load;
``lora-mastered`` then trains a fresh adapter on top of the merged ``lora-clean`` weights (its adapter is also saved
alone as ``lora_adapter.safetensors``, to show how small it is).

``expand`` builds a 9-stem separator in canonical order (:data:`~msr_lib.stems.STEMS`) whose ``other`` is the
residual (``BSRoformer(residual_stem=True)``): the input minus the 8 named stems, so ``other`` means "everything the
8 classes leave" and the 9 stems add up to the input exactly. The ``vocals``, ``bass`` and ``drums`` heads move to
their canonical slots unchanged, so those outputs do not change (tested). **Choice** for the 5 new heads:

- from a 4-stem separator with a trained ``other`` head (``residual_stem=False``: MSST, the first bundled models):
  copies of that head with its mask values scaled by 1/5, and the head itself dropped. The 5 new stems share what
  ``other`` held, and the residual ``other`` starts as what the 4 trained stems left of the input;
- from a residual 4-stem separator (no ``other`` head): copies of its first head (``vocals``) with the mask values
  zeroed (the value half of the last Linear before the GLU; the gate half and the hidden layers keep their trained
  weights, so the zeroed values get gradients at once): the new stems start silent and ``other`` starts as the
  4-stem model's ``other`` (the residual of vocals, bass and drums).

Only the new heads train; the loss counts them and ``other``, which depends on them (:func:`trained_outputs`).

**Choice for mastered mixes:** mastering changes the level (−14 LUFS), so the clean targets are scaled per item by
the RMS ratio of the mastered mix to the clean mix (:func:`match_mix_level`); the model learns to separate *at the
mix's level* and the restorer later repairs the rest. Not a least-squares waveform gain: mastering's EQ and
compression shift phases, so on some chunks the mastered mix is nearly uncorrelated with the clean sum and that gain
falls towards 0 (0.004 on one lesson-04 chunk: targets 47 dB too quiet, a loss of 135 on that item).

Lesson: notebooks/04_curriculum_lora.ipynb
"""
from __future__ import annotations

import copy
import json
import math
import numbers
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from msr_lib.audio import ACTIVE_STEM_RMS, MIXES, SAMPLE_RATE
from msr_lib.errors import MSRError
from msr_lib.models.bs_roformer import BSRoformer
from msr_lib.models.checkpoint import load_separator, write_separator_files
from msr_lib.presets import Preset, get_preset
from msr_lib.stems import FOUR_STEMS, STEMS
from msr_lib.train.loop import (RUN_INFO, TrainConfig, TrainResult, fixed_batches, recorded_run, run_folder_lock,
                                train, trainable_parameters)
from msr_lib.train.losses import separation_loss

__all__ = [
    "STAGES", "Stage", "get_stage", "full_fine_tune", "LORA", "apply_lora", "merge_lora", "expand_stems",
    "build_stage_model", "trained_outputs", "match_mix_level", "stage_train_config", "check_train_arguments",
    "train_separator",
]

#: CP-JKU's LoRA settings.
LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["to_q", "to_v"]}
TRAINS = ("all", "lora", "new-heads")


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One curriculum stage: everything that differs between stages. Code reads these fields, never the name."""

    name: str
    description: str
    #: what the model hears: ``"clean"`` mixes (the sum of the stems) or ``"mastered"`` mixes (``degrade_mix``)
    mix: str
    #: what trains: ``"all"`` weights, ``"lora"`` adapters on q and v, or the ``"new-heads"`` it adds
    trains: str
    #: the stems of the separator it starts from; ``None``: a new model (an ``init`` checkpoint is optional)
    starts_from: tuple[str, ...] | None
    #: the stems it puts out (a ``"new-heads"`` stage adds the missing ones)
    stems: tuple[str, ...]

    def __post_init__(self):
        if self.mix not in MIXES or self.trains not in TRAINS:
            raise MSRError(f"stage {self.name!r}: mix must be one of {MIXES} and trains one of {TRAINS}")


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage(name="pretrain", description="4-stem warm-up on clean mixes, every weight trained",
          mix="clean", trains="all", starts_from=None, stems=FOUR_STEMS),
    Stage(name="lora-clean", description="LoRA (q, v) on clean mixes",
          mix="clean", trains="lora", starts_from=FOUR_STEMS, stems=FOUR_STEMS),
    Stage(name="lora-mastered", description="LoRA (q, v) on mastered mixes",
          mix="mastered", trains="lora", starts_from=FOUR_STEMS, stems=FOUR_STEMS),
    Stage(name="expand", description="9 stems: only the 5 new mask estimators train",
          mix="mastered", trains="new-heads", starts_from=FOUR_STEMS, stems=STEMS),
)}


def get_stage(name: str) -> Stage:
    """The :class:`Stage` called ``name`` (one-line error for an unknown one)."""
    if name not in STAGES:
        raise MSRError(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}")
    return STAGES[name]


def full_fine_tune(stage: Stage) -> Stage:
    """``stage`` with every weight trained instead of LoRA adapters (lesson 04's comparison)."""
    if stage.trains != "lora":
        raise MSRError(f"a full fine-tune replaces LoRA; stage {stage.name!r} trains {stage.trains!r}")
    return replace(stage, trains="all", description=f"full fine-tune on {stage.mix} mixes, every weight trained")


# ---------------------------------------------------------------- model surgery

def apply_lora(model: BSRoformer, **settings) -> nn.Module:
    """Wrap ``model`` with LoRA adapters (``peft``; defaults :data:`LORA`); every base weight is frozen."""
    from peft import LoraConfig, get_peft_model  # imported here: peft loads transformers (~5 s)

    options = {**LORA, **settings}
    return get_peft_model(model, LoraConfig(**options))


def merge_lora(model: nn.Module) -> BSRoformer:
    """A plain :class:`BSRoformer` with the adapters folded into the weights (``model`` itself is left as it is)."""
    if isinstance(model, BSRoformer):
        return model
    if hasattr(model, "merge_and_unload"):
        merged = copy.deepcopy(model).merge_and_unload()
        return merged.requires_grad_(True)
    raise MSRError(f"cannot merge a {type(model).__name__}: expected a BSRoformer or a peft model")


def expand_stems(model: BSRoformer, stems: tuple[str, ...], new_stems: tuple[str, ...] = STEMS) -> BSRoformer:
    """A residual separator of ``new_stems`` (canonical order, ``other`` last) from ``model`` of ``stems``: heads of
    stems in both are kept, the new heads start as the module docstring says. Only the new heads require
    gradients."""
    missing = [s for s in stems if s not in new_stems]
    if missing:
        raise MSRError(f"cannot expand: {missing} are not among the new stems {list(new_stems)}")
    if new_stems[-1] != "other":
        raise MSRError(f"cannot expand: 'other' (the residual) must be the last new stem, got {list(new_stems)}")
    if not (stems[-1] == "other" if model.residual_stem else "other" in stems):
        raise MSRError(f"cannot expand: the source model {list(stems)} has no 'other' "
                       + ("residual" if model.residual_stem else "head"))
    expanded = BSRoformer(**dict(model.config, num_stems=len(new_stems), residual_stem=True))
    trunk = {k: v for k, v in model.state_dict().items() if not k.startswith("mask_estimators.")}
    expanded.load_state_dict(trunk, strict=False)
    expanded.requires_grad_(False)
    added = [stem for stem in new_stems[:-1] if stem not in stems]
    # residual source: new heads start silent; else they share the `other` head's mask (1/5 each for 5 new stems)
    source, scale = (stems[0], 0.0) if model.residual_stem else ("other", 1.0 / max(len(added), 1))
    for index, stem in enumerate(new_stems[:-1]):  # every output but the residual `other` has a head
        head = expanded.mask_estimators[index]
        head.load_state_dict(model.mask_estimators[stems.index(stem if stem in stems else source)].state_dict())
        if stem in added:
            head.scale_masks(scale)
            head.requires_grad_(True)
    return expanded


def trained_outputs(model: nn.Module) -> torch.Tensor:
    """``(stems,)`` bool: the outputs of ``model`` (a :class:`BSRoformer`) whose values depend on a head that
    trains — a head's own output, and the residual stem when any head trains."""
    heads = [any(p.requires_grad for p in head.parameters()) for head in model.mask_estimators]
    if model.residual_stem:
        heads.append(any(heads))
    return torch.tensor(heads)


def build_stage_model(stage: str | Stage, *, init=None, model_config: dict | None = None) -> tuple[nn.Module, tuple]:
    """The model to train in ``stage`` and its stems, as the stage's record says. ``init``: a checkpoint path (run
    folder, our folder, MSST file, ``bundled:<name>``); ``model_config``: BSRoformer keyword arguments for a new
    model."""
    spec = stage if isinstance(stage, Stage) else get_stage(stage)
    if init is None:
        if spec.starts_from is not None:
            raise MSRError(f"stage {spec.name!r} starts from a trained separator: pass --init RUN (the previous "
                           "stage's run)")
        if not model_config:
            raise MSRError("a new model needs a model config (the preset's `model` section)")
        return BSRoformer(**{"stereo": True, **model_config, "num_stems": len(spec.stems)}), spec.stems
    separator = load_separator(init)
    model, stems = separator.model.train(), separator.stems
    if spec.starts_from is not None and set(stems) != set(spec.starts_from):
        raise MSRError(f"stage {spec.name!r} starts from a {len(spec.starts_from)}-stem separator "
                       f"{list(spec.starts_from)}; {init} has {list(stems)}")
    if spec.trains == "lora":
        return apply_lora(model), stems
    if spec.trains == "new-heads":
        return expand_stems(model, stems, spec.stems), spec.stems
    return model.requires_grad_(True), stems


# ---------------------------------------------------------------- data

def match_mix_level(targets: torch.Tensor, clean_mix: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """targets (b, n, c, s) × the per-item level ratio RMS(mixture) / RMS(clean_mix), so the stems sum to a mix as
    loud as the (mastered) mixture whatever mastering did to the phases. An item whose clean mix has an RMS below
    :data:`~msr_lib.audio.ACTIVE_STEM_RMS` (nothing plays) keeps gain 1: its targets stay masked as silent."""
    clean_rms = clean_mix.square().mean(dim=(-2, -1)).sqrt()
    gain = mixture.square().mean(dim=(-2, -1)).sqrt() / clean_rms.clamp_min(ACTIVE_STEM_RMS)
    playing = clean_rms >= ACTIVE_STEM_RMS
    return targets * torch.where(playing, gain, torch.ones_like(gain))[:, None, None, None]


def separation_batch_loss(model: nn.Module, batch: dict, *, mastered: bool, train_mask: torch.Tensor | None = None):
    """The CP-JKU loss of one batch (see :func:`~msr_lib.train.losses.separation_loss`)."""
    targets, active = batch["targets"], batch["active"]
    if mastered:
        targets = match_mix_level(targets, batch["clean_mix"], batch["mixture"])
    if train_mask is not None:
        active = active & train_mask.to(active.device)[None, :]
    estimate = model(batch["mixture"])
    return separation_loss(estimate, targets, active)


@torch.no_grad()
def separation_scores(model: nn.Module, batches: list[dict], stems, *, mastered: bool) -> dict[str, float]:
    """Mean Multi-Mel-SNR per stem (active items only) and over stems, on fixed validation batches."""
    from msr_lib.metrics import multi_mel_snr_batch

    device = next(model.parameters()).device
    per_stem: dict[str, list[float]] = {s: [] for s in stems}
    for batch in batches:
        mixture = batch["mixture"].to(device)
        targets = batch["targets"].to(device)
        if mastered:
            targets = match_mix_level(targets, batch["clean_mix"].to(device), mixture)
        scores = multi_mel_snr_batch(model(mixture).float(), targets, SAMPLE_RATE)  # (b, n)
        for i, stem in enumerate(stems):
            for item, value in zip(batch["active"][:, i].tolist(), scores[:, i].tolist()):
                if item and value == value:
                    per_stem[stem].append(value)
    out = {f"mms/{s}": sum(v) / len(v) for s, v in per_stem.items() if v}
    if out:
        out["mms"] = sum(out.values()) / len(out)
    return out


# ---------------------------------------------------------------- one stage

#: training arguments that are whole numbers → their least value
_WHOLE_ARGUMENTS = {"steps": 1, "schedule_steps": 1, "batch_size": 1, "micro_batch_size": 1, "warmup_steps": 0,
                    "validate_every": 1, "checkpoint_every": 1, "seed": 0, "num_workers": 0, "adversarial_from": 0,
                    "max_skipped_steps": 0, "versions": 1}
#: training arguments that are real numbers → (what they must be, the test of a finite value)
_REAL_ARGUMENTS = {
    "lr": ("a finite number > 0", lambda v: v > 0),
    "weight_decay": ("a finite number ≥ 0", lambda v: v >= 0),
    "min_lr_ratio": ("a number from 0 to 1", lambda v: 0 <= v <= 1),
    "ema_decay": ("a number from 0 up to (not including) 1", lambda v: 0 <= v < 1),
    "grad_clip": ("a finite number > 0", lambda v: v > 0),
}
_BOOLEAN_ARGUMENTS = ("amp", "compile")


def check_train_arguments(**arguments) -> None:
    """Refuse a training argument no run can use (``steps=0``, ``lr=nan``, ``batch_size=-1``, ``seed=1.5``, …) in
    one :class:`MSRError` line naming it, before anything is built or written. ``None``: the preset's value;
    names not listed here are left to :class:`~msr_lib.train.loop.TrainConfig`."""
    for name, value in arguments.items():
        if value is None:
            continue
        if name in _WHOLE_ARGUMENTS:
            least = _WHOLE_ARGUMENTS[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise MSRError(f"{name} must be a whole number ≥ {least}, got {value!r}")
        elif name in _REAL_ARGUMENTS:
            what, fits = _REAL_ARGUMENTS[name]
            if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                    or not fits(value)):
                raise MSRError(f"{name} must be {what}, got {value!r}")
        elif name in _BOOLEAN_ARGUMENTS and not isinstance(value, bool):
            raise MSRError(f"{name} must be True or False, got {value!r}")


def stage_train_config(preset: Preset, stage: str, **overrides) -> TrainConfig:
    """The preset's training settings for ``stage`` (``preset.train`` defaults, then its per-stage entries)."""
    settings = {k: v for k, v in preset.train.items() if k in TrainConfig.__dataclass_fields__}
    settings.update(preset.train["stages"][stage])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(settings)


def train_separator(
    stage: str,
    out_dir,
    *,
    preset: str | Preset | None = None,
    init=None,
    steps: int | None = None,
    resume: bool = False,
    train_songs=None,
    valid_songs=None,
    device=None,
    progress: bool = True,
    on_log=None,
    method: str = "lora",
    **overrides,
) -> TrainResult:
    """Train one curriculum stage into the run folder ``out_dir`` (see the module docstring and
    :mod:`msr_lib.train.loop`). ``train_songs``/``valid_songs``: song folders (default: the preset's, rendered on
    first use by :func:`msr_lib.lessons.prepare_songs`). ``on_log(row)`` sees each log row (live plots).
    ``method="full"`` trains every weight of a LoRA stage instead of adapters (:func:`full_fine_tune`, compared in
    lesson 04). ``overrides`` change :class:`~msr_lib.train.loop.TrainConfig` fields."""
    from msr_lib.data.datasets import MultitrackDataset
    from msr_lib.lessons import prepare_songs

    check_train_arguments(steps=steps, **overrides)
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    out_dir = Path(out_dir)
    with run_folder_lock(out_dir):  # before the folder is read: one command at a time
        info_path = out_dir / RUN_INFO
        recorded = recorded_run(out_dir, resume=resume, identity={"stage": stage})
        if recorded is not None:
            init = recorded.get("init") if init is None else init
            method = recorded.get("method", method)
        if method not in ("lora", "full"):
            raise MSRError(f"method must be 'lora' or 'full', got {method!r}")
        spec = full_fine_tune(get_stage(stage)) if method == "full" else get_stage(stage)
        config = stage_train_config(preset, stage, steps=steps, **overrides)
        torch.manual_seed(config.seed)  # new weights (pretrain, LoRA's A, …) depend on the seed only
        model, stems = build_stage_model(spec, init=init, model_config=preset.model)
        if preset.train.get("checkpoint_activations"):
            # recompute each transformer's activations in backward instead of keeping them (less memory, more time)
            for module in model.modules():
                if isinstance(module, BSRoformer):
                    module.use_torch_checkpoint = True
        if train_songs is None or valid_songs is None:
            default_train, default_valid = prepare_songs(preset, progress=progress)
            train_songs, valid_songs = train_songs or default_train, valid_songs or default_valid

        trainable, total = trainable_parameters(model)
        info = {"stage": stage, "method": method, "preset": preset.name,
                "init": str(init) if init is not None else None, "stems": list(stems),
                "trainable_parameters": trainable, "total_parameters": total, "trainable_share": trainable / total,
                "train_songs": str(train_songs), "valid_songs": str(valid_songs)}
        main_process = int(os.environ.get("RANK", "0")) == 0
        if progress and main_process:
            print(f"{stage}: {spec.description}; trainable {trainable:,} of {total:,} parameters "
                  f"({100 * trainable / total:.2f} %)")
        if main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            info_path.write_text(json.dumps(info, indent=2) + "\n")

        world = max(1, int(os.environ.get("WORLD_SIZE", "1")))
        mastered = spec.mix == "mastered"
        # preload=False: chunks are read from the files as needed (preloading the laptop preset's 48 songs held 1.2 GB)
        train_data = MultitrackDataset(
            train_songs, stems=stems, chunk_seconds=preset.train["chunk_seconds"],
            length=config.steps * config.batch_size * world, seed=config.seed, degrade=True if mastered else None,
            preload=False, items_per_step=config.batch_size * world,
        )
        valid_data = MultitrackDataset(
            valid_songs, stems=stems, chunk_seconds=preset.train["valid_seconds"], length=preset.train["valid_items"],
            seed=12345, remix_prob=0.0, gain_db=(0.0, 0.0), degrade=True if mastered else None, preload=False,
        )
        # validating 4 items × 4 s at once took 1.3 GB in the laptop preset, 2 items half that
        size = config.batch_size
        valid_batches = fixed_batches(valid_data, ("mixture", "targets", "active", "clean_mix"), size)
        train_mask = None
        if spec.trains == "new-heads":  # the loss counts the outputs that train; the kept ones do not change
            train_mask = trained_outputs(model)

        def loss_fn(m, batch):
            return separation_batch_loss(m, batch, mastered=mastered, train_mask=train_mask)

        def validate_fn(m):
            return separation_scores(m, valid_batches, stems, mastered=mastered)

        def save_model(m, folder):
            plain = merge_lora(m)
            adapter = None
            if plain is not m:
                from peft import get_peft_model_state_dict

                adapter = get_peft_model_state_dict(m)
            write_separator_files(plain, folder, stems=stems, adapter=adapter, extra={"training": {k: info[k] for k in (
                "stage", "preset", "init", "trainable_parameters", "total_parameters")}})

        return train(model, train_data, config=config, out_dir=out_dir, loss_fn=loss_fn, save_model=save_model,
                     validate_fn=validate_fn, resume=resume, device=device, progress=progress, describe=stage,
                     on_log=on_log)
