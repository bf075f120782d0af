"""Throughput of the mastering simulator on one core: a full 8-stem chain (per-stem chains + master bus + MP3).

Prints the real-time factor (seconds of audio per second of compute; target ≥ 50× per core) and where the time
goes, stage by stage. BLAS/OpenMP are pinned to one thread; each case is warmed up, then timed ``--repeats`` times
and the median is printed, both as CPU time of this process (``time.process_time``: robust when other jobs share
the machine) and as wall-clock time. A script, not a test:
    .venv/bin/python benchmarks/bench_degrade.py [--seconds 6] [--songs 8] [--repeats 3]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402

from msr_lib import degrade  # noqa: E402
from msr_lib.audio import SAMPLE_RATE  # noqa: E402
from msr_lib.degrade import chains as chain_module  # noqa: E402
from msr_lib.degrade import effects as effect_module  # noqa: E402
from msr_lib.stems import INSTRUMENT_STEMS  # noqa: E402


def synthetic_stems(rng: np.random.Generator, seconds: float) -> dict[str, np.ndarray]:
    """Eight stereo stems of decaying harmonic plucks plus noise bursts (like notes and hits)."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    stems = {}
    for k, name in enumerate(INSTRUMENT_STEMS):
        x = np.zeros(n)
        for onset in np.arange(0.0, seconds, 0.25 + 0.05 * k):
            i = int(onset * SAMPLE_RATE)
            f0 = 55.0 * 2 ** rng.uniform(0, 4)
            env = np.exp(-t[: n - i] * rng.uniform(3, 12))
            x[i:] += env * sum(np.sin(2 * np.pi * f0 * h * t[: n - i]) / h for h in (1, 2, 3, 5))
            x[i:] += 0.3 * env * rng.standard_normal(n - i) * (k in (2, 6))
        x *= 0.25 / np.abs(x).max()
        stems[name] = np.stack([x, np.roll(x, 7)]).astype(np.float32)
    return stems


class StageTimer:
    """Wraps library functions to add up the time spent in each (nested calls count in both)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)

    def wrap(self, module, name, label=None):
        original = getattr(module, name)
        label = label or name
        is_method = isinstance(module, type)

        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.process_time() - start
                self.calls[label] += 1

        setattr(module, name, timed if not is_method else (lambda self, *a, **k: timed(self, *a, **k)))
        return original


def time_chunks(songs, repeats: int, **kwargs) -> tuple[float, float]:
    """Median (CPU seconds, wall seconds) of degrading every chunk once, over ``repeats`` runs."""
    cpu, wall = [], []
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for i, stems in enumerate(songs):
            degrade.degrade_mix(stems, seed=i, **kwargs)
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="chunk length in seconds (default 6)")
    parser.add_argument("--songs", type=int, default=8, help="chunks to degrade per measurement (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case; the median is shown (default 3)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    songs = [synthetic_stems(rng, args.seconds) for _ in range(args.songs)]
    audio_seconds = args.seconds * args.songs

    print(f"{args.songs} chunks × {args.seconds:g} s, 8 stereo stems at 44.1 kHz, one core; "
          f"median of {args.repeats} runs (CPU time | wall time)")
    for label, kwargs in [("full chain + MP3", {}), ("full chain + MP3, stem levels measured", {"measure_stem_levels": True}),
                          ("full chain, no codec", {"codec": False})]:
        degrade.degrade_mix(songs[0], seed=123, **kwargs)  # warm-up: imports, codec and filter set-up
        cpu, wall = time_chunks(songs, args.repeats, **kwargs)
        print(f"  {label:40s} CPU {cpu / args.songs * 1e3:6.1f} ms/chunk → {audio_seconds / cpu:5.1f}× real time"
              f" | wall {wall / args.songs * 1e3:6.1f} ms → {audio_seconds / wall:5.1f}×")

    timer = StageTimer()
    for name in ("equalize", "band_limit", "compress", "saturate", "add_reverb", "high_pass", "limit_true_peak",
                 "mp3_codec"):
        original = timer.wrap(effect_module, name)
        effect_module.EFFECTS[name] = getattr(effect_module, name)
        if hasattr(chain_module, name):
            setattr(chain_module, name, getattr(effect_module, name))
        del original
    timer.wrap(effect_module.TruePeakLimiter, "__init__", "limiter: 4x true-peak analysis")
    timer.wrap(effect_module.TruePeakLimiter, "limit", "limiter: gain curve + ceiling check")
    timer.wrap(chain_module, "loudness_gain_db", "loudness (measure, in chain)")
    timer.wrap(chain_module, "measure_loudness_lufs", "loudness (measure, in chain)")
    timer.wrap(degrade.mix, "measure_levels", "levels for the record (LUFS + dBTP)")
    timer.wrap(degrade.mix, "apply_stem_chain", "per-stem chains (total)")
    timer.wrap(degrade.mix, "apply_master_chain", "master bus (total)")
    start = time.process_time()
    for i, stems in enumerate(songs):
        degrade.degrade_mix(stems, seed=i)
    total = time.process_time() - start
    print(f"\nwhere the time goes (full chain + MP3, one run, CPU time; {total / args.songs * 1e3:.1f} ms per chunk):")
    for label, seconds in sorted(timer.seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {label:40s} {seconds / args.songs * 1e3:7.1f} ms per chunk  {100 * seconds / total:5.1f} %"
              f"  ({timer.calls[label] / args.songs:.1f} calls)")


if __name__ == "__main__":
    main()
