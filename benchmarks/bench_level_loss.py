"""Does the level term of ``separation_loss`` bring the estimates to the target's level? A short measured answer.

From ``--init`` (default ``bundled:4stem``, whose estimates are 10–20 dB too quiet) each ``--level-weights`` value
fine-tunes every weight for ``--steps`` steps of the ``pretrain`` stage (clean mixes, ``--preset`` sizes) on
``--train`` songs; then the start and every run are scored on ``--test`` songs (clean mixes) by
``msr_lib.evaluate.score_separator``: Multi-Mel-SNR, the median level error |LUFS(estimate) − LUFS(stem)| and the
SNR of the sum of the estimates against the input. Runs already in ``--out`` are reused. A script, not a test:

    nice .venv/bin/python benchmarks/bench_level_loss.py --train data/generated/songs_laptop \\
        --valid data/generated/valid_laptop --test data/generated/test_s3000_20s --out /tmp/level_runs
"""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

from msr_lib.train import curriculum, losses
from msr_lib.train.loop import CHECKPOINT


def train_run(out: Path, level_weight: float, args) -> Path:
    if (out / CHECKPOINT).is_dir():
        return out
    original = curriculum.separation_loss
    curriculum.separation_loss = functools.partial(losses.separation_loss, level_weight=level_weight)
    try:
        start = time.perf_counter()
        curriculum.train_separator("pretrain", out, preset=args.preset, init=args.init, steps=args.steps,
                                   train_songs=args.train, valid_songs=args.valid, progress=False)
        print(f"level_weight {level_weight:g}: {args.steps} steps in {time.perf_counter() - start:.0f} s")
    finally:
        curriculum.separation_loss = original
    return out


def main(argv=None) -> int:
    from msr_lib.evaluate import score_separator
    from msr_lib.models import load_separator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--valid", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--init", default="bundled:4stem")
    parser.add_argument("--preset", default="laptop")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--level-weights", type=float, nargs="+", default=[0.0, losses.LEVEL_WEIGHT])
    args = parser.parse_args(argv)

    rows = {args.init: args.init}
    for weight in args.level_weights:
        rows[f"level_weight {weight:g}"] = train_run(args.out / f"level_w{weight:g}", weight, args)
    for name, source in rows.items():
        board = score_separator(load_separator(source), args.test, mix="clean", baselines=("mixture",), name=name)
        level = board.level_errors(name)
        print(f"{name}: Multi-Mel-SNR mean {board.mean(name):.2f} dB; level error (median dB) "
              + ", ".join(f"{stem} {value:.1f}" for stem, value in level.items())
              + f"; all {board.level_error(name):.1f}; sum SNR {board.sum_snr(name):.1f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
