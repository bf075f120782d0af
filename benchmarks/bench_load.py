"""Load: ``msr restore`` over a folder of many songs in one call, and ``msr evaluate`` over a folder of 500+ stems —
wall time and peak memory, against the same commands on a few songs in the same run (docs/RELIABILITY.md).

The songs are synthetic (seed 7000 on; never a training or test song): ``--songs`` (default 56) of ``--seconds``
(default 10) each, their mastered mixes copied into one input folder. Each command runs in a fresh child process
(``msr_lib.cli.main``, exactly what the ``msr`` command runs) that reports its own peak RSS. Memory must not grow
with the number of songs: target peak RSS(all songs) / peak RSS(``--few`` songs) ≤ 1.1 for both commands, and
``msr restore`` under ``--ceiling-gb`` (default 2.5). Where this checkout ships no bundled restorers yet, freshly
initialised restorers of the bundled size stand in (same cost, meaningless output) and the table says so.

    .venv/bin/python benchmarks/bench_load.py [--songs 56] [--seconds 10] [--few 5] [--ceiling-gb 2.5] [--json F]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from msr_lib.cli import main
start = time.perf_counter()
code = main(sys.argv[1:])
print(json.dumps({"code": code, "wall": time.perf_counter() - start,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def make_inputs(songs: int, seconds: float, folder: Path) -> tuple[list[Path], Path]:
    """Synthesize the songs (cached under the data folder) and copy their mastered mixes into ``folder``."""
    from msr_lib.audio import load_song_stems, save_audio
    from msr_lib.data.synth import synthesize_songs
    from msr_lib.environment import data_dir
    from msr_lib.evaluate import song_mixture

    song_dirs = synthesize_songs(data_dir() / f"bench_load_s7000_{seconds:g}s", songs=songs, seconds=seconds,
                                 seed=7000, progress=True, skip_existing=True)
    folder.mkdir(parents=True)
    for number, song in enumerate(song_dirs):
        mix = song_mixture(load_song_stems(song), mix="mastered", seed=7000 + number)
        save_audio(folder / f"{song.name}.wav", mix, subtype="PCM_16")
    return song_dirs, folder


def untrained_restorer(folder: Path) -> Path:
    """A freshly initialised restorer of the bundled size, written as a restorer folder."""
    from msr_lib.models.checkpoint import save_restorer
    from msr_lib.pipeline import untrained_models
    from msr_lib.presets import get_preset

    restorer = untrained_models(get_preset("bundled"))[1]
    return save_restorer(restorer.model, folder, stem="all")


def run(argv: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    result = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, env=env)
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"msr {' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["code"] != 0:
        raise SystemExit(f"msr {' '.join(argv)} exited {report['code']}:\n{result.stderr[-2000:]}")
    return report


def subset(folder: Path, names: list[str], out: Path) -> Path:
    out.mkdir(parents=True)
    for name in names:
        target = out / name
        if (folder / name).is_dir():
            shutil.copytree(folder / name, target)
        else:
            shutil.copy2(folder / name, target)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--songs", type=int, default=56, help="songs in the big run (default 56: 504 stems)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per song (default 10)")
    parser.add_argument("--few", type=int, default=5, help="songs in the small run it is compared with (default 5)")
    parser.add_argument("--ceiling-gb", type=float, default=2.5, help="peak RSS limit for msr restore (default 2.5)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    from msr_lib.models import bundled_restorers

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_load.") as tmp:
        tmp = Path(tmp)
        song_dirs, inputs = make_inputs(args.songs, args.seconds, tmp / "inputs")
        if "generalist" in bundled_restorers():
            restorers, label = "bundled", "bundled"
        else:
            restorers, label = str(untrained_restorer(tmp / "restorer")), "untrained, bundled size (none shipped yet)"
        print(f"separator bundled:8stem, restorers: {label}, preset laptop, cpu, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}", flush=True)
        names = sorted(p.name for p in inputs.iterdir())
        references = song_dirs[0].parent
        for count in (args.few, args.songs):
            songs_in = inputs if count == args.songs else subset(inputs, names[:count], tmp / f"inputs_{count}")
            out = tmp / f"restored_{count}"
            report = run(["restore", str(songs_in), "--out", str(out), "--restorers", restorers, "--preset", "laptop",
                          "--device", "cpu"])
            audio_s = count * args.seconds
            rows.append({"command": "restore", "songs": count, "stems": sum(1 for _ in out.rglob("*.wav")),
                         "wall_s": round(report["wall"], 1), "rtf": round(report["wall"] / audio_s, 3),
                         "peak_rss_gb": round(report["peak_rss_gb"], 2)})
            print(f"{time.strftime('%H:%M:%S')}  msr restore   {count:3d} songs  {rows[-1]['stems']:4d} stems  "
                  f"wall {rows[-1]['wall_s']:7.1f} s  RTF {rows[-1]['rtf']:.3f}  "
                  f"peak RSS {rows[-1]['peak_rss_gb']:.2f} GB", flush=True)
        for count in (args.few, args.songs):
            estimates = out if count == args.songs else subset(out, sorted(p.name for p in out.iterdir())[:count],
                                                                 tmp / f"estimates_{count}")
            report = run(["evaluate", "--estimates", str(estimates), "--references", str(references),
                          "--json", str(tmp / f"scores_{count}.json")])
            rows.append({"command": "evaluate", "songs": count, "stems": sum(1 for _ in estimates.rglob("*.wav")),
                         "wall_s": round(report["wall"], 1), "peak_rss_gb": round(report["peak_rss_gb"], 2)})
            print(f"{time.strftime('%H:%M:%S')}  msr evaluate  {count:3d} songs  {rows[-1]['stems']:4d} stems  "
                  f"wall {rows[-1]['wall_s']:7.1f} s  peak RSS {rows[-1]['peak_rss_gb']:.2f} GB", flush=True)
    met = True
    summary = {}
    for command in ("restore", "evaluate"):
        few, many = (r for r in rows if r["command"] == command)
        ratio = many["peak_rss_gb"] / few["peak_rss_gb"]
        summary[command] = round(ratio, 2)
        met &= ratio <= 1.1
        print(f"msr {command}: peak RSS {many['songs']} / {few['songs']} songs = {ratio:.2f} (target ≤ 1.1)")
    peak = max(r["peak_rss_gb"] for r in rows if r["command"] == "restore")
    met &= peak <= args.ceiling_gb
    print(f"msr restore peak RSS {peak:.2f} GB (ceiling {args.ceiling_gb:g} GB); targets {'met' if met else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"restorers": label, "rows": rows, "rss_ratio": summary,
                                               "targets_met": met}, indent=2) + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
