"""Song-generator speed: seconds of 8-class multitrack audio rendered per wall-clock second, one core (workers=1).

Run: ``.venv/bin/python benchmarks/bench_synth.py [--songs 6] [--seconds 20]``. Prints the real-time factor for
each installed SoundFont (pretty_midi's TimGM6mb, Debian's FluidR3_GM) and the share spent in the singing voice.
Target: >= 20x real time on one core.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from msr_lib.audio import SAMPLE_RATE
from msr_lib.data.synth import arrangement, render_song
from msr_lib.data.synth.arrangement import compose
from msr_lib.stems import INSTRUMENT_STEMS
from msr_lib.data.synth.render import bundled_soundfont, load_soundfont
from msr_lib.data.synth.voice import render_vocals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    fonts = [bundled_soundfont()] + [p for p in [Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")] if p.is_file()]
    print(f"{args.songs} songs x {args.seconds:g} s, workers=1 (one process)")
    every_stem = lambda rng, style: list(INSTRUMENT_STEMS)  # noqa: E731
    for font, all_eight in [(f, False) for f in fonts] + [(fonts[-1], True)]:
        arrangement.choose_stems, keep = (every_stem if all_eight else arrangement.choose_stems), arrangement.choose_stems
        t = time.perf_counter()
        load_soundfont(font)
        load = time.perf_counter() - t
        render_song(10_000, 2.0, soundfont=font)          # warm caches
        t = time.perf_counter()
        stems = 0
        for seed in range(args.songs):
            stems += len(render_song(seed, args.seconds, soundfont=font).stems)
        wall = time.perf_counter() - t
        audio = args.songs * args.seconds
        arrangement.choose_stems = keep
        label = font.name + (" all 8" if all_eight else "")
        print(f"{label:22s} load {load:5.2f} s | {audio:6.0f} s of songs ({stems / args.songs:.1f} stems/song) "
              f"in {wall:6.2f} s = {audio / wall:5.1f}x real time | per stem-second "
              f"{audio * stems / args.songs / wall:6.1f}x")
    t = time.perf_counter()
    sung = 0.0
    for seed in range(args.songs):
        part = compose(seed, args.seconds).parts.get("vocals")
        if part is not None:
            render_vocals(part.notes, int(args.seconds * SAMPLE_RATE), np.random.default_rng(seed), part.voice)
            sung += args.seconds
    wall = time.perf_counter() - t
    print(f"singing voice alone: {sung:.0f} s in {wall:.2f} s = {sung / max(wall, 1e-9):.1f}x real time")


if __name__ == "__main__":
    main()
