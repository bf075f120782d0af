"""Sound sources: installed size, load time and render speed of every source in ``SOUND_SOURCES``, one core.

Run: ``.venv/bin/python benchmarks/bench_sound_sources.py [--seconds 16]``. For each available source: the
Debian package's installed size (``dpkg-query``; built-in sources: the size of the files they read), the time of
its first render minus a second identical one (loading: SoundFont parsing and Ogg decoding, kit samples), and the
real-time factor (render wall time / audio time, lower is faster) of one part of each stem class it claims, the
same part for every source (taken from a procedural song of ``--seconds`` seconds, about 8 bars).
"""
from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np

from msr_lib.audio import SAMPLE_RATE
from msr_lib.data.synth.arrangement import compose
from msr_lib.data.synth.sounds import SOUND_SOURCES


def installed_mb(source) -> float | None:
    if source.package:
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Installed-Size}", source.package], capture_output=True,
                                 text=True, check=True).stdout
            return int(out) / 1024
        except (OSError, subprocess.CalledProcessError, ValueError):
            return None
    paths = source.paths()
    return sum(p.stat().st_size for p in paths if p.is_file()) / 2 ** 20


def test_parts(seconds: float) -> dict:
    """One part per stem class, each from the first seed whose song has that stem."""
    parts = {}
    for seed in range(200):
        for stem, part in compose(seed, seconds).parts.items():
            parts.setdefault(stem, part)
        if len(parts) == 9:
            return parts
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=16.0)
    args = parser.parse_args()
    parts = test_parts(args.seconds)
    n = int(args.seconds * SAMPLE_RATE)
    print(f"one part per stem, {args.seconds:g} s each; RTF = render wall time / audio time (one core)")
    print(f"{'source':<18} {'kind':<9} {'package':<34} {'MB':>6} {'load s':>7}  RTF per stem")
    for name, source in SOUND_SOURCES.items():
        if not source.available():
            print(f"{name:<18} {source.kind:<9} {source.package or '(built in)':<34} not installed")
            continue
        timings = {}
        load = None
        for stem in source.stems:
            if stem not in parts:
                continue
            times = []
            for _ in range(2):
                t = time.perf_counter()
                source.render(parts[stem], n, np.random.default_rng(0), style="pop")
                times.append(time.perf_counter() - t)
            if load is None:
                load = max(times[0] - times[1], 0.0)
            timings[stem] = times[1] / args.seconds
        size = installed_mb(source)
        rtf = " ".join(f"{stem}={value:.3f}" for stem, value in timings.items())
        print(f"{name:<18} {source.kind:<9} {source.package or '(built in)':<34} "
              f"{size if size is not None else float('nan'):6.1f} {load:7.2f}  {rtf}")


if __name__ == "__main__":
    main()
