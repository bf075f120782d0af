"""Score the restorers in the whole system on held-out songs: the restorer numbers of docs/MODEL_CARD.md.

    python scripts/score_restorers.py                                   # bundled:8stem + bundled restorers
    python scripts/score_restorers.py --restorers runs/experts --songs 12 --json docs/scores_restorers.json
    python scripts/score_restorers.py --set loops --metrics multi_mel_snr

Songs: the held-out synthetic test songs (seed 3000) or ``--set loops``, the real-recordings development set
(:func:`msr_lib.evaluate.held_out_songs`), each mastered (``--mix``) as the separators are scored. The separator
runs once per song; its stems are the restorers' input. Rows (:func:`msr_lib.evaluate.score_pipeline`): the mixture
as estimate (floor), ``separated`` (the separator's stems), ``restored`` (each stem through its restorer: its expert,
else the generalist) and ``generalist`` (every stem through the generalist, when the restorers include experts).
Per metric (Multi-Mel-SNR in dB, higher is better; Zimtohrli, a perceptual distance, lower is better): the
per-stem means; then the issue's targets, each with its verdict: mean Multi-Mel-SNR of ``restored`` ≥
``separated`` + 0.5 dB; no expert below its input on its own stem; each expert ≥ the generalist on its stem.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from msr_lib.evaluate import HELD_OUT_SETS

TARGET_GAIN_DB = 0.5


def score(separator: str, restorers: str, *, song_set: str = "synthetic", mix: str = "mastered", songs: int = 12,
          seconds: float = 20.0, metrics=("multi_mel_snr", "zimtohrli"), progress: bool = True,
          samples_dir=None) -> dict:
    """Score and check the targets: the result that :func:`markdown` and ``--json`` show."""
    from msr_lib.evaluate import held_out_songs, score_pipeline
    from msr_lib.models import load_separator
    from msr_lib.pipeline import GENERALIST, load_restorers

    sep = load_separator(separator)
    chosen = load_restorers(restorers, sep.stems)
    experts = sorted({stem for stem, r in chosen.items() if r.stem == stem}, key=sep.stems.index)
    generalists = [r for r in chosen.values() if r.stem == "all"]
    compare = {"generalist": generalists[0]} if experts and generalists else None
    folders, seed = held_out_songs(song_set, songs, seconds, progress=progress, samples_dir=samples_dir)
    boards = score_pipeline(sep, chosen, folders, compare=compare, mix=mix, seed=seed, metrics=metrics,
                            progress=progress)
    tables = {}
    for metric, board in boards.items():
        means = board.means()
        tables[metric] = {row: {stem: _finite(means[row].get(stem)) for stem in sep.stems}
                          | {"mean": _finite(board.mean(row))} for row in board.rows}
    mms = tables.get("multi_mel_snr")
    targets = []
    if mms:
        gain = _gap(mms["restored"]["mean"], mms["separated"]["mean"])
        targets.append({"target": f"mean restored ≥ separated + {TARGET_GAIN_DB} dB",
                        "value_db": gain, "met": gain is not None and gain >= TARGET_GAIN_DB})
        for stem in experts:
            over_input = _gap(mms["restored"][stem], mms["separated"][stem])
            targets.append({"target": f"{stem} expert ≥ its input", "value_db": over_input,
                            "met": over_input is None or over_input >= 0})
            if compare:
                over_generalist = _gap(mms["restored"][stem], mms["generalist"][stem])
                targets.append({"target": f"{stem} expert ≥ the {GENERALIST}", "value_db": over_generalist,
                                "met": over_generalist is None or over_generalist >= 0})
    return {"separator": separator, "restorers": restorers, "set": song_set, "mix": mix, "songs": songs,
            "seconds": seconds, "test_seed": seed, "experts": experts, "tables": tables, "targets": targets}


def _finite(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _gap(a, b) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def markdown(result: dict) -> str:
    titles = {"mixture": "mixture as estimate", "separated": f"`{result['separator']}` (separated)",
              "restored": f"restored (`{result['restorers']}`)", "generalist": "generalist on every stem"}
    units = {"multi_mel_snr": "Multi-Mel-SNR (dB, higher is better)", "zimtohrli": "Zimtohrli (lower is better)"}
    lines = []
    for metric, table in result["tables"].items():
        stems = [s for s in next(iter(table.values())) if s != "mean"]
        lines += [f"| {units.get(metric, metric)}, {result['songs']} held-out songs ({result['set']}, "
                  f"{result['mix']}) | " + " | ".join(stems) + " | mean |", "|---" * (len(stems) + 2) + "|"]
        digits = 4 if metric == "zimtohrli" else 2
        for row, values in table.items():
            cells = ["–" if values[s] is None else f"{values[s]:.{digits}f}" for s in stems + ["mean"]]
            lines.append(f"| {titles.get(row, row)} | " + " | ".join(cells) + " |")
        lines.append("")
    for target in result["targets"]:
        value = "–" if target["value_db"] is None else f"{target['value_db']:+.2f} dB"
        lines.append(f"- {'✅' if target['met'] else '❌'} {target['target']}: {value}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from msr_lib.errors import MSRError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--separator", default="bundled:8stem")
    parser.add_argument("--restorers", default="bundled",
                        help="bundled, one restorer, or a folder of restorer folders named by stem")
    parser.add_argument("--set", dest="song_set", choices=HELD_OUT_SETS, default="synthetic")
    parser.add_argument("--samples-dir", type=Path, default=None, help="samples folder of --set loops")
    parser.add_argument("--mix", choices=["clean", "mastered"], default="mastered")
    parser.add_argument("--songs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--metrics", default="multi_mel_snr,zimtohrli")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        result = score(args.separator, args.restorers, song_set=args.song_set, mix=args.mix, songs=args.songs,
                       seconds=args.seconds, metrics=tuple(args.metrics.split(",")), samples_dir=args.samples_dir)
    except MSRError as exc:
        print(f"score_restorers: error: {exc}", file=sys.stderr)
        return 2
    print(markdown(result))
    if args.json is not None:
        from msr_lib.audio import atomic_file

        with atomic_file(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
