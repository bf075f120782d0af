"""How a separator's first steps go, per design choice: the 250-step comparison of docs/MODEL_CARD.md.

Each run trains the 4-stem warm-up (`pretrain`) of the ``bundled`` preset for ``--steps`` steps in one process on
its songs, with the full run's schedule (lr at its peak after the warm-up), then validates on the preset's
validation songs. Runs differ in three choices:

- ``other``: ``residual`` (the input minus the named stems) or ``masked`` (a head of its own);
- masks at init: ``silent`` (the named stems start at 0: today's default for a residual model) or ``random``;
- the level term's weight in the loss (``msr_lib.train.losses.separation_loss``).

Printed per run: validation mean Multi-Mel-SNR and vocals, and the training loss parts (−SI-SNR, STFT, level
error) averaged over the last 50 steps.

    .venv/bin/python benchmarks/bench_separator_start.py [--runs E0,E3,E4] [--steps 250] [--threads 1]

Measured 2026-12-01 (2-core CPU, two runs at a time, 1 thread each; about 18 min per pair): see the model card.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

RUNS = {  # name: (residual other, masks at init, level weight)
    "E0": (True, "random", 0.1), "E1": (True, "random", 0.0), "E2": (False, "random", 0.1),
    "E3": (False, "random", 0.0), "E4": (True, "silent", 0.1), "E5": (True, "silent", 0.0),
}


def run(name: str, steps: int, out: Path) -> dict:
    from msr_lib.presets import get_preset
    from msr_lib.train import curriculum, losses

    residual, init, level = RUNS[name]
    preset = get_preset("bundled")
    preset = dataclasses.replace(preset, model={**preset.model, "residual_stem": residual})
    build, loss = curriculum.build_stage_model, curriculum.separation_loss

    def built(*args, **kwargs):
        model, stems = build(*args, **kwargs)
        if init == "random" and residual:  # undo the silent start: the value halves get nn.Linear's own init
            torch.manual_seed(0)
            for head in model.mask_estimators:
                for band in head.to_freqs:
                    last = band[0][-1]
                    fresh = torch.nn.Linear(last.in_features, last.out_features)
                    with torch.no_grad():
                        last.weight.copy_(fresh.weight)
                        last.bias.copy_(fresh.bias)
        return model, stems

    curriculum.build_stage_model = built
    curriculum.separation_loss = functools.partial(losses.separation_loss, level_weight=level)
    try:
        curriculum.train_separator("pretrain", out / name, preset=preset, steps=steps, validate_every=steps,
                                   checkpoint_every=steps, schedule_steps=preset.train["stages"]["pretrain"]["steps"],
                                   progress=False)
    finally:
        curriculum.build_stage_model, curriculum.separation_loss = build, loss
    rows = [json.loads(line) for line in (out / name / "log.jsonl").read_text().splitlines()]
    last = [r for r in rows if "loss" in r][-50:]
    valid = [r for r in rows if "valid/mms" in r][-1]
    return {"run": name, "other": "residual" if residual else "masked", "init": init, "level_weight": level,
            "valid_mean": valid["valid/mms"], "valid_vocals": valid.get("valid/mms/vocals"),
            **{k: float(np.mean([r[k] for r in last])) for k in ("neg_si_snr", "stft", "level_db")}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="E0,E3,E4", help=f"comma-separated, from {', '.join(RUNS)}")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("| run | other | masks at init | level term | valid mean | valid vocals | train −SI-SNR | train STFT | "
          "train level error |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_separator_start.") as tmp:
        for name in args.runs.split(","):
            r = run(name.strip(), args.steps, Path(tmp))
            print(f"| {r['run']} | {r['other']} | {r['init']} | {r['level_weight']:g} | {r['valid_mean']:.2f} dB | "
                  f"{r['valid_vocals']:.2f} dB | {r['neg_si_snr']:.2f} dB | {r['stft']:.2f} | {r['level_db']:.1f} dB |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
