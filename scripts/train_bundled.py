"""Train the bundled separators (issue: a warm start that really separates). The recipe in docs/MODEL_CARD.md.

    python scripts/train_bundled.py --stage pretrain --out runs/bundled-pretrain [--steps N] [--resume]
    python scripts/train_bundled.py --stage lora-clean --init runs/bundled-pretrain --out runs/bundled-lora-clean
    ...                                       lora-mastered, expand (as for `msr train separator`)
    python scripts/train_bundled.py --export runs/bundled-pretrain --name 4stem     # fp16 copy into msr_lib

It is `msr train separator` with the `bundled` preset below (a model small enough to ship: 4 + 9 stems in fp16
stay under 30 MB) and more songs. Runs are long: start them with `nice`, they checkpoint every 100 steps and
``--resume`` continues them (also in a later session, from the run folder).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from msr_lib.presets import _model, _stages, get_preset

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "msr_lib" / "models" / "bundled"

_laptop = get_preset("laptop")
BUNDLED_PRESET = replace(
    _laptop,
    name="bundled",
    description="the bundled separators: long CPU/GPU runs of a small model",
    synth={**_laptop.synth, "songs": 160, "seconds": 20.0},
    data={**_laptop.data, "songs": 160, "num_workers": 0},
    model=_model(48, 2, 4, 16, 1, 2, 1),
    train={"batch_size": 4, "chunk_seconds": 2.0, "warmup_steps": 100, "validate_every": 250, "checkpoint_every": 100,
           "valid_songs": 8, "valid_items": 16, "valid_seconds": 4.0, "ema_decay": 0.999,
           "stages": _stages(100_000, 20_000, 20_000, 1e-3)},
)


def export(run: Path, name: str) -> Path:
    """Copy a run's separator into ``msr_lib/models/bundled/<name>/`` with fp16 weights."""
    from msr_lib.models import load_separator, save_separator

    separator = load_separator(run)
    training = dict(separator.config.get("training", {}), run=str(run))
    out = save_separator(separator.model, BUNDLED_DIR / name, stems=separator.stems, dtype=torch.float16,
                         extra={"training": training})
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"exported {run} → {out} ({size / 1e6:.1f} MB)")
    return out


def main(argv=None) -> int:
    from msr_lib.errors import MSRError
    from msr_lib.train.curriculum import train_separator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["pretrain", "lora-clean", "lora-mastered", "expand"])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--init", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--export", type=Path, default=None, help="run folder to export instead of training")
    parser.add_argument("--name", default=None, help="bundled name for --export (4stem or 8stem)")
    args = parser.parse_args(argv)
    try:
        if args.export is not None:
            export(args.export, args.name or "4stem")
            return 0
        if args.stage is None or args.out is None:
            parser.error("--stage and --out are required to train")
        result = train_separator(args.stage, args.out, preset=BUNDLED_PRESET, init=args.init, steps=args.steps,
                                 resume=args.resume, device=args.device)
        print(f"{args.stage}: {result.step} steps in {args.out}")
    except MSRError as exc:
        print(f"train_bundled: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
