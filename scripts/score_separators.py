"""Score separators on held-out songs: the numbers of docs/MODEL_CARD.md, rerunnable by anyone.

    python scripts/score_separators.py --model bundled:4stem --mix clean     [--songs 12] [--json out.json]
    python scripts/score_separators.py --model bundled:8stem --mix mastered
    python scripts/score_separators.py --set loops --model bundled:8stem --mix mastered
    python scripts/score_separators.py --sound-sources fluidr3_gm,msr_voice --model bundled:4stem   # the old songs

``--set synthetic`` (default): synthetic test songs rendered with seed 3000 (training used 1000, validation 2000:
never seen), each stem on a sound source drawn from the seed (``--sound-sources``: only those; ``fluidr3_gm,msr_voice``
renders songs like the first bundled generation's, one GM set and our voices). ``--set loops``: the real-recordings development set, songs assembled from the recorded loops and
one-shots of Debian's lmms-common by :mod:`msr_lib.data.loop_songs` with seed 4000 — for scoring only, never for
training or tuning. Both are cached under ``data_dir()`` and scored by
``msr_lib.evaluate.score_separator``: each song's reference stems are grouped into the model's stems (stems the
model does not have fold into ``other``), the mix is their plain sum (``clean``) or that sum mastered by
``msr_lib.degrade.degrade_mix`` with a per-song seed (``mastered``). Rows: the model, the mixture as estimate
(floor) and the ideal ratio mask (oracle, from the clean stems). Metric: Multi-Mel-SNR (dB) per stem, silent
references left out; the mean over stems is the mean of the per-stem means. Also the model's level error (median
over songs of |LUFS(estimate) − LUFS(target)|, the target being the clean stem scaled as the curriculum scales it
onto the mix) and, on clean mixes, the SNR of the sum of its estimates against the input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from msr_lib.evaluate import HELD_OUT_SETS as SETS


def score(model: str, mix: str, songs: int, seconds: float, progress: bool = True, song_set: str = "synthetic",
          samples_dir=None, sound_sources=None) -> dict:
    """Render (or reuse) the songs of ``song_set``, score ``model`` on them: the result that :func:`markdown` and
    ``--json`` show."""
    from msr_lib.evaluate import held_out_songs, score_separator
    from msr_lib.models import load_separator

    separator = load_separator(model)
    folders, seed = held_out_songs(song_set, songs, seconds, progress=progress, samples_dir=samples_dir,
                                   sound_sources=sound_sources)
    board = score_separator(separator, folders, mix=mix, baselines=("mixture", "irm"), seed=seed, name=model,
                            progress=progress)
    means = board.means()
    table = {}
    for key, row in (("model", model), ("mixture", "mixture"), ("irm", "irm")):
        mean = board.mean(row)
        table[key] = {stem: means[row].get(stem) for stem in separator.stems} | {
            "mean": mean if np.isfinite(mean) else None}
    counts = board.counts(model)
    levels = board.level_errors(model)
    sum_snr = board.sum_snr(model)
    return {"model": model, "mix": mix, "songs": songs, "seconds": seconds, "set": song_set, "test_seed": seed,
            "sound_sources": list(sound_sources) if sound_sources else "all installed",
            "multi_mel_snr_db": table, "scored_songs_per_stem": {stem: counts.get(stem, 0) for stem in separator.stems},
            "level_error_db": {stem: levels.get(stem) for stem in separator.stems} | {
                "median": _finite(board.level_error(model))},
            "sum_snr_db": _finite(sum_snr)}


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def markdown(result: dict) -> str:
    table = result["multi_mel_snr_db"]
    stems = [s for s in table["model"] if s != "mean"]
    songs = {"synthetic": "held-out synthetic songs", "loops": "real-recordings development songs (lmms-common)"}
    lines = [f"| Multi-Mel-SNR (dB), {result['songs']} {songs[result['set']]}, {result['mix']} mixes | "
             + " | ".join(stems) + " | mean |", "|---" * (len(stems) + 2) + "|"]
    titles = {"model": f"`{result['model']}`", "mixture": "mixture as estimate", "irm": "ideal ratio mask (oracle)"}
    for row, title in titles.items():
        cells = [("–" if table[row][s] is None else f"{table[row][s]:.2f}") for s in stems + ["mean"]]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines.append("| songs with the stem | " + " | ".join(str(result["scored_songs_per_stem"][s]) for s in stems)
                 + " | |")
    levels = result["level_error_db"]
    lines.append("| level error of the model, median dB | "
                 + " | ".join("–" if levels[s] is None else f"{levels[s]:.1f}" for s in stems + ["median"]) + " |")
    if result["sum_snr_db"] is not None:
        lines.append(f"\nThe model's {len(stems)} estimates add up to the input at {result['sum_snr_db']:.1f} dB SNR "
                     "(median over songs).")
    return "\n".join(lines)


def main(argv=None) -> int:
    from msr_lib.errors import MSRError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="song_set", choices=SETS, default="synthetic",
                        help="synthetic test songs (seed 3000) or the real-recordings development set (seed 4000)")
    parser.add_argument("--samples-dir", type=Path, default=None,
                        help="samples folder of --set loops (default /usr/share/lmms/samples, package lmms-common)")
    parser.add_argument("--sound-sources", default=None,
                        help="synthetic songs from these sources only (comma-separated), e.g. fluidr3_gm,msr_voice "
                             "for songs like the first generation's training songs (default every installed one)")
    parser.add_argument("--model", default="bundled:8stem")
    parser.add_argument("--mix", choices=["clean", "mastered"], default="clean")
    parser.add_argument("--songs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        sources = tuple(args.sound_sources.split(",")) if args.sound_sources else None
        result = score(args.model, args.mix, args.songs, args.seconds, song_set=args.song_set,
                       samples_dir=args.samples_dir, sound_sources=sources)
    except MSRError as exc:
        print(f"score_separators: error: {exc}", file=sys.stderr)
        return 2
    print(markdown(result))
    if args.json is not None:
        from msr_lib.audio import atomic_file

        with atomic_file(args.json) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
