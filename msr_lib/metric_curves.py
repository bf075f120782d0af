"""Metric curves: how does each metric react as one transform of the reference grows stronger?

Lesson: notebooks/02_measuring_restoration.ipynb

- :func:`metric_curve` scores ``transform(reference, v)`` against ``reference`` for every value ``v``.
- :func:`default_metrics` — SNR, SI-SNR, Multi-Mel-SNR and Zimtohrli from the registry
  :data:`msr_lib.metrics.METRICS`, keyed by their labels; each is called ``metric(estimate, reference, sample_rate)``.
- :func:`standard_transforms` — gain, EQ, delay, reverb, compression, MP3 and noise, each with its sweep.
- :func:`find_value` — the transform strength that gives a target score (to build equal-score pairs).
- :func:`plot_metric_curves` — one panel per transform, dB metrics on the left axis, distances on a twin axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from msr_lib.audio import SAMPLE_RATE
from msr_lib.errors import MSRError
from msr_lib.metrics import METRICS, Metric

#: a metric of a curve: a registry :class:`~msr_lib.metrics.Metric` or any ``fn(estimate, reference, sample_rate)``
ScoreFn = Callable[[np.ndarray, np.ndarray, int], float]
Transform = Callable[[np.ndarray, float], np.ndarray]


def default_metrics(*, zimtohrli: bool = True) -> dict[str, Metric]:
    """``{label: registry metric}``: SNR, SI-SNR, Multi-Mel-SNR (dB, higher is better) and, unless
    ``zimtohrli=False``, Zimtohrli (a distance, lower is better)."""
    names = ("snr", "si_snr", "multi_mel_snr") + (("zimtohrli",) if zimtohrli else ())
    return {METRICS[name].label: METRICS[name] for name in names}


def _lower_is_better(label: str) -> bool:
    """Whether the curve named ``label`` is a registry metric where a larger number is a worse estimate."""
    return any(m.label == label and not m.higher_is_better for m in METRICS.values())


def metric_curve(reference, transform: Transform, values, metrics: dict[str, ScoreFn] | None = None,
                 sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Score ``transform(reference, v)`` against ``reference`` for each ``v`` in ``values``.

    Returns ``{"values": array, metric name: array of scores, …}`` (same length as ``values``).
    """
    reference = np.asarray(reference, dtype=np.float32)
    metrics = default_metrics() if metrics is None else metrics
    values = np.asarray(list(values), dtype=float)
    curves = {name: np.empty(len(values)) for name in metrics}
    for i, value in enumerate(values):
        estimate = np.asarray(transform(reference, float(value)), dtype=np.float32)
        if estimate.shape != reference.shape:
            raise MSRError(f"transform returned shape {estimate.shape} for a reference of shape {reference.shape}")
        for name, metric in metrics.items():
            curves[name][i] = metric(estimate, reference, sample_rate)
    return {"values": values, **curves}


def find_value(reference, transform: Transform, target: float, metric: ScoreFn, low: float, high: float,
               sample_rate: int = SAMPLE_RATE, *, steps: int = 30) -> float:
    """The ``v`` in ``[low, high]`` where ``metric(transform(reference, v), reference)`` equals ``target``, by
    bisection; the score must change monotonically over the interval (either direction)."""
    def score(v):
        return metric(np.asarray(transform(reference, v), dtype=np.float32), reference, sample_rate) - target

    f_low, f_high = score(low), score(high)
    if np.sign(f_low) == np.sign(f_high):
        raise MSRError(f"target {target:.2f} is not between the scores at {low} and {high}")
    for _ in range(steps):
        mid = 0.5 * (low + high)
        f_mid = score(mid)
        if np.sign(f_mid) == np.sign(f_low):
            low, f_low = mid, f_mid
        else:
            high = mid
    return 0.5 * (low + high)


# ---------------------------------------------------------------- the transforms of the lesson

def add_noise(audio, noise_db: float, *, seed: int = 0) -> np.ndarray:
    """Add white noise ``noise_db`` dB relative to the signal's energy (−20 → SNR of exactly 20 dB)."""
    audio = np.asarray(audio, dtype=np.float32)
    noise = np.random.default_rng(seed).standard_normal(audio.shape)
    noise *= np.sqrt(np.sum(np.square(audio, dtype=np.float64)) / np.sum(noise ** 2)) * 10 ** (noise_db / 20)
    return (audio + noise).astype(np.float32)


def delay(audio, milliseconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Shift later by ``milliseconds`` (zeros in front, same length): a pure phase change per frequency."""
    audio = np.asarray(audio, dtype=np.float32)
    shift = int(round(milliseconds * sample_rate / 1000))
    if shift <= 0:
        return audio.copy()
    out = np.zeros_like(audio)
    out[..., shift:] = audio[..., :-shift]
    return out


@dataclass(frozen=True)
class Sweep:
    """One transform and the values it is swept over."""

    transform: Transform
    values: np.ndarray
    label: str          # x-axis label
    identity: float | None = None   # the value that leaves the signal unchanged, if any


def standard_transforms(sample_rate: int = SAMPLE_RATE, points: int = 7) -> dict[str, Sweep]:
    """Gain, EQ, delay, reverb, compression, MP3 and noise — each swept over ``points`` values."""
    from msr_lib import degrade

    n = max(int(points), 2)

    def eq(x, gain_db):
        return degrade.equalize(x, sample_rate, bands=[{"kind": "peak", "freq_hz": 1000.0, "gain_db": gain_db, "q": 1.0}])

    def reverb(x, wet):
        return degrade.add_reverb(x, sample_rate, room_size=0.7, damping=0.5, wet=wet)

    def compress(x, ratio):
        return degrade.compress(x, sample_rate, threshold_db=-30.0, ratio=ratio, attack_ms=5.0, release_ms=100.0)

    def mp3(x, quality):
        return degrade.mp3_codec(x, sample_rate, vbr_quality=quality)

    return {
        "gain": Sweep(lambda x, g: x * np.float32(10 ** (g / 20)), np.linspace(-12, 12, n), "gain (dB)", 0.0),
        "EQ": Sweep(eq, np.linspace(-12, 12, n), "peak EQ at 1 kHz, Q 1 (dB)", 0.0),
        "delay": Sweep(lambda x, ms: delay(x, ms, sample_rate), np.linspace(0, 2, n), "delay (ms)", 0.0),
        "reverb": Sweep(reverb, np.linspace(0, 0.6, n), "reverb wet level", 0.0),
        "compression": Sweep(compress, np.geomspace(1, 20, n), "compressor ratio (threshold −30 dBFS)", 1.0),
        "MP3": Sweep(mp3, np.linspace(0, 9, n), "MP3 VBR quality (0 best, 9 worst)", None),
        "noise": Sweep(lambda x, d: add_noise(x, d), np.linspace(-40, 0, n), "white noise (dB re signal)", None),
    }


def plot_metric_curves(curves: dict[str, dict], sweeps: dict[str, Sweep] | None = None, *, ncols: int = 4,
                       db_limits: tuple[float, float] = (-25.0, 60.0)):
    """One panel per transform: the dB metrics on the left axis (clipped to ``db_limits``; an unchanged signal
    scores far above), lower-is-better metrics (Zimtohrli, if present) on an inverted twin axis, the same range in
    every panel, so that *up is better* everywhere and the panels compare."""
    import matplotlib.pyplot as plt

    names = list(curves)
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.1 * ncols, 3.2 * nrows), squeeze=False)
    colors = {"SNR": "tab:blue", "SI-SNR": "tab:orange", "Multi-Mel-SNR": "tab:green", "Zimtohrli": "tab:purple"}
    handles = {}
    distances = [np.nanmax(c[m]) for c in curves.values() for m in c if m != "values" and _lower_is_better(m)]
    distance_top = max(distances, default=0.0) * 1.05 + 1e-9   # one shared distance axis: panels compare
    for ax, name in zip(axes.flat, names):
        curve = curves[name]
        x = curve["values"]
        twin = None
        for metric, y in curve.items():
            if metric == "values":
                continue
            color = colors.get(metric)
            if _lower_is_better(metric):
                twin = twin or ax.twinx()
                (line,) = twin.plot(x, y, "s--", color=color, ms=4, label=f"{metric} (right axis)")
            else:
                (line,) = ax.plot(x, np.clip(y, *db_limits), "o-", color=color, ms=4, label=metric)
            handles.setdefault(line.get_label(), line)
        ax.set_ylim(db_limits[0] - 2, db_limits[1] + 2)
        ax.set_title(name)
        ax.set_xlabel(sweeps[name].label if sweeps and name in sweeps else "")
        ax.set_ylabel("dB (↑ better)")
        ax.grid(alpha=0.3)
        if twin is not None:
            twin.set_ylim(distance_top, 0)
            twin.set_ylabel("distance (↓ better)", color=colors["Zimtohrli"])
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.legend(list(handles.values()), list(handles), loc="lower right", ncol=1, frameon=False)
    fig.tight_layout()
    return fig
