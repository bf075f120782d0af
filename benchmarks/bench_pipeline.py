"""The full pipeline's cost on this machine (msr_lib/pipeline.py): real-time factor, and peak memory against song
length, streamed to disk versus every stem held in memory — both in this one run.

For each length in ``--minutes`` (default 1 and 10) a song is made by tiling a rendered synthetic song (seed 5000,
its mastered mix; never a training or test song), then each mode runs in a fresh process:

- ``streamed``: :func:`msr_lib.pipeline.restore_file` — blocks in, final samples out to disk.
- ``in-memory``: :func:`msr_lib.pipeline.restore` on the whole song, then every stem written — what the peers do
  (demucs' ``apply_model`` and MSST's ``demix`` hold every stem of the song until the end).

Printed per run: wall seconds, real-time factor (wall / audio seconds) and the child's peak RSS; then the memory
ratio longest/shortest per mode (target for ``streamed``: ≤ 1.3) and the streamed RTF (target ≤ 0.5 with the bundled
models on a 2-core CPU). The models are the bundled separator and restorers; where this checkout has no bundled
restorers yet, freshly initialised restorers of the bundled size stand in (their cost is the same, their output is
not) and the table says so.

    .venv/bin/python benchmarks/bench_pipeline.py [--minutes 1,10] [--modes streamed,in-memory] [--no-restore]
        [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
from msr_lib.pipeline import restore, restore_file, untrained_models
from msr_lib.models import bundled_restorers
from msr_lib.presets import get_preset
from msr_lib.audio import load_audio_with_rate, save_audio
mode, song, out, restore_stems = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
restorers = None
if restore_stems:
    restorers = "bundled" if "generalist" in bundled_restorers() else untrained_models(get_preset("bundled"))[1]
start = time.perf_counter()
if mode == "streamed":
    restore_file(song, out, restorers=restorers, device="cpu", preset="laptop", progress=False)
else:
    mix, rate = load_audio_with_rate(song, None, stereo=False)
    stems = restore(mix, sample_rate=rate, restorers=restorers, device="cpu", preset="laptop", progress=False)
    for name, audio in stems.items():
        save_audio(f"{out}/{name}.wav", audio, rate, subtype="FLOAT")
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def make_song(minutes: float, folder: Path) -> Path:
    """A ``minutes``-long stereo file tiled from one rendered synthetic song's mastered mix."""
    import numpy as np

    from msr_lib.audio import SAMPLE_RATE, load_song_stems, save_audio
    from msr_lib.data.synth import synthesize_songs
    from msr_lib.environment import data_dir
    from msr_lib.evaluate import song_mixture

    song = synthesize_songs(data_dir() / "bench_pipeline_s5000", songs=1, seconds=20.0, seed=5000, progress=False,
                            skip_existing=True)[0]
    mix = song_mixture(load_song_stems(song), mix="mastered", seed=5000)
    length = int(minutes * 60 * SAMPLE_RATE)
    tiled = np.tile(mix, (1, length // mix.shape[1] + 1))[:, :length]
    return save_audio(folder / f"song_{minutes:g}min.wav", tiled, SAMPLE_RATE, subtype="FLOAT")


def run(mode: str, song: Path, out: Path, restore: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    out.mkdir(parents=True, exist_ok=True)
    if mode == "streamed":
        out = out / "stems"
    result = subprocess.run([sys.executable, "-c", CHILD, mode, str(song), str(out), "1" if restore else "0"],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", default="1,10", help="comma-separated song lengths in minutes (default 1,10)")
    parser.add_argument("--modes", default="streamed,in-memory", help="streamed and/or in-memory")
    parser.add_argument("--no-restore", action="store_true", help="separation only")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    from msr_lib.models import bundled_restorers

    minutes = [float(m) for m in args.minutes.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    restorers = ("none" if args.no_restore else "bundled" if "generalist" in bundled_restorers()
                 else "untrained, bundled size (no bundled restorers yet)")
    print(f"separator bundled:8stem, restorers: {restorers}, preset laptop, cpu, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pipeline.") as tmp:
        tmp = Path(tmp)
        for m in minutes:
            song = make_song(m, tmp)
            for mode in modes:
                started = time.strftime("%H:%M:%S")
                result = run(mode, song, tmp / f"{mode}_{m:g}", not args.no_restore)
                row = {"minutes": m, "mode": mode, "wall_s": round(result["wall"], 1),
                       "rtf": round(result["wall"] / (m * 60), 3), "peak_rss_gb": round(result["peak_rss_gb"], 2)}
                rows.append(row)
                print(f"{started}  {m:5g} min  {mode:9s}  wall {row['wall_s']:7.1f} s  RTF {row['rtf']:.3f}  "
                      f"peak RSS {row['peak_rss_gb']:.2f} GB", flush=True)
    summary = {}
    for mode in modes:
        mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["minutes"])
        if len(mine) > 1:
            ratio = mine[-1]["peak_rss_gb"] / mine[0]["peak_rss_gb"]
            summary[mode] = round(ratio, 2)
            print(f"{mode}: peak RSS {mine[-1]['minutes']:g} min / {mine[0]['minutes']:g} min = {ratio:.2f}"
                  + ("  (target ≤ 1.3)" if mode == "streamed" else ""))
    streamed = [r["rtf"] for r in rows if r["mode"] == "streamed"]
    if streamed:
        print(f"streamed RTF {min(streamed):.3f}-{max(streamed):.3f} (target ≤ 0.5)")
    if args.json:
        Path(args.json).write_text(json.dumps({"restorers": restorers, "rows": rows, "rss_ratio": summary},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
