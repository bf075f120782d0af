"""Score estimated stems against references, folder against folder: ``msr evaluate``.

Layouts (estimates and references each one of them):

- **song folders** — ``<dir>/<song>/<stem>.<ext>``: songs are matched by folder name;
- **flat folder** — ``<dir>/<stem>.<ext>``: one song. Two flat folders are matched to each other whatever their names;
  a flat folder against song folders matches the song of the same name (or the only song there).

Stems are matched by canonical stem name (:func:`msr_lib.stems.canonical_stem`, so ``vocal.wav`` matches
``vocals.flac``); mixture files (``mix``, ``mixture``, ``master``…) are skipped. Nothing about the match is fatal:

- **missing** — a (non-silent) reference stem with no estimate (also every stem of a reference song with no
  estimate folder);
- **extra** — an estimate with no reference stem (or an unknown stem name, or a song with no reference);
- **silent** — a reference whose peak is at or below :data:`SILENT_PEAK` (−120 dBFS): no SNR is meaningful, so the
  stem is left out of every mean and counted;
- **length mismatch** — estimate and reference are both trimmed to the shorter one and the pair is listed;
- a metric that still returns ``nan``/``inf`` (e.g. one silent channel of a stereo reference) is stored as
  ``null`` and left out of the means.

Audio is loaded stereo (mono duplicated) at ``sample_rate`` (``None``: each reference's own rate; the estimate is
resampled to it). :class:`EvaluationResult` holds per-song, per-stem values, per-stem summaries (mean, median,
count), overall means (over all scored song-stem pairs, not the mean of the stem means), prints a table and writes
JSON atomically.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from msr_lib.audio import atomic_file
from msr_lib.errors import MSRError

#: References whose peak (all channels) is at or below this are "silent" (−120 dBFS).
SILENT_PEAK = 1e-6
DEFAULT_METRICS = ("multi_mel_snr", "si_snr")


@dataclass(frozen=True)
class MetricSpec:
    """What evaluation needs of a metric: ``fn(estimate, reference, sample_rate) -> float``."""
    name: str
    fn: Callable
    higher_is_better: bool = True
    unit: str = "dB"


def _builtin_metrics() -> dict[str, MetricSpec]:
    from msr_lib import metrics

    registry = getattr(metrics, "METRICS", None)
    if registry:
        return {name: MetricSpec(name, m.fn, bool(m.higher_is_better), str(m.unit)) for name, m in registry.items()}
    return {
        "multi_mel_snr": MetricSpec("multi_mel_snr", metrics.multi_mel_snr),
        "si_snr": MetricSpec("si_snr", lambda est, ref, sr: metrics.si_snr(est, ref)),
        "snr": MetricSpec("snr", lambda est, ref, sr: metrics.snr(est, ref)),
    }


def available_metrics() -> list[str]:
    """Metric names :func:`evaluate` accepts."""
    return list(_builtin_metrics())


def resolve_metrics(metrics) -> list[MetricSpec]:
    """Metric names (a sequence or a comma-separated string) → specs. Unknown names raise :class:`MSRError`.

    ``zimtohrli`` is accepted for the registry's Zimtohrli entry whatever its exact name."""
    if isinstance(metrics, str):
        metrics = [m for m in (part.strip() for part in metrics.split(",")) if m]
    names = list(metrics or [])
    if not names:
        raise MSRError("no metrics given")
    known = _builtin_metrics()
    specs = []
    for name in names:
        if isinstance(name, MetricSpec):
            specs.append(name)
            continue
        key = name.strip().lower().replace("-", "_")
        if key not in known:
            prefixed = [k for k in known if k.startswith(key)]
            if key == "zimtohrli" and len(prefixed) == 1:
                key = prefixed[0]
            else:
                raise MSRError(f"unknown metric {name!r}; expected one of {', '.join(known)}")
        if known[key] not in specs:
            specs.append(known[key])
    return specs


def _summary(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "median": None, "count": 0}
    return {"mean": float(np.mean(values)), "median": float(np.median(values)), "count": len(values)}


def _json_number(value):
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass
class EvaluationResult:
    """Scores of one evaluation. ``per_song[song][stem][metric]`` → dB (or ``None`` when not finite);
    ``per_stem[stem][metric]`` → ``{"mean", "median", "count"}``; ``means[metric]`` over all scored pairs;
    ``missing``/``extra``/``silent``/``length_mismatches``: lists of dicts with at least ``song`` and ``stem``."""
    metrics: list[MetricSpec]
    per_song: dict[str, dict[str, dict[str, float | None]]]
    per_stem: dict[str, dict[str, dict]]
    means: dict[str, float | None]
    missing: list[dict] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)
    silent: list[dict] = field(default_factory=list)
    length_mismatches: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def to_dict(self) -> dict:
        """JSON-able content (``nan`` → ``null``)."""
        return {
            "metrics": {m.name: {"unit": m.unit, "higher_is_better": m.higher_is_better} for m in self.metrics},
            "per_song": {song: {stem: {k: _json_number(v) for k, v in vals.items()} for stem, vals in stems.items()}
                         for song, stems in self.per_song.items()},
            "per_stem": self.per_stem,
            "means": {k: _json_number(v) for k, v in self.means.items()},
            "counts": {"songs": len(self.per_song), "scored": sum(len(s) for s in self.per_song.values()),
                       "missing": len(self.missing), "extra": len(self.extra), "silent": len(self.silent),
                       "length_mismatches": len(self.length_mismatches)},
            "missing": self.missing, "extra": self.extra, "silent": self.silent,
            "length_mismatches": self.length_mismatches,
            "info": self.info,
        }

    def to_json(self, path) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically (temp file + rename)."""
        return write_json_atomic(path, self.to_dict())

    def table(self, title: str | None = None) -> str:
        """A text table: one row per stem (canonical order) and an ``all`` row; per metric mean, median, count.
        Missing/extra/silent/length-mismatch counts follow as notes."""
        def fmt(v, unit="dB"):
            return "-" if v is None else f"{v:.2f}" if unit == "dB" else f"{v:.4g}"

        header1 = ["stem"]
        header2 = [""]
        for m in self.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            header1 += [f"{m.name} ({m.unit}, {arrow})", "", ""]
            header2 += ["mean", "median", "n"]
        rows = []
        for stem, per_metric in self.per_stem.items():
            row = [stem]
            for m in self.metrics:
                s = per_metric[m.name]
                row += [fmt(s["mean"], m.unit), fmt(s["median"], m.unit), str(s["count"])]
            rows.append(row)
        all_row = ["all"]
        for m in self.metrics:
            values = [v[m.name] for stems in self.per_song.values() for v in stems.values()
                      if v.get(m.name) is not None and math.isfinite(v[m.name])]
            s = _summary(values)
            all_row += [fmt(s["mean"], m.unit), fmt(s["median"], m.unit), str(s["count"])]
        rows.append(all_row)
        table = [header1, header2] + rows
        widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(len(header2))]
        # the metric name spans its three columns
        lines = []
        if title:
            lines.append(title)
        first = header1[0].ljust(widths[0])
        for j, m in enumerate(self.metrics):
            span = sum(widths[1 + 3 * j: 4 + 3 * j]) + 4
            first += "  " + header1[1 + 3 * j][:span].ljust(span)
        lines.append(first.rstrip())
        for r in table[1:]:
            cells = [r[0].ljust(widths[0])] + [r[i].rjust(max(widths[i], 0)) for i in range(1, len(r))]
            lines.append("  ".join(cells).rstrip())
        notes = []
        for label, items in (("missing estimates", self.missing), ("extra estimates", self.extra),
                             ("silent references (excluded)", self.silent),
                             ("length mismatches (trimmed to the shorter)", self.length_mismatches)):
            if items:
                shown = ", ".join(f"{i['song']}/{i['stem']}" for i in items[:6])
                more = f", … (+{len(items) - 6})" if len(items) > 6 else ""
                notes.append(f"{label}: {len(items)} ({shown}{more})")
        return "\n".join(lines + notes)


def write_json_atomic(path, data) -> Path:
    """Write JSON to ``path`` via a temp file in the same folder and a rename: never half-written."""
    path = Path(path)
    if path.is_dir():
        raise MSRError(f"{path}: is a folder, expected a JSON file path")
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)
    return path


class Scorer:
    """Accumulates per-song scores; used by :func:`evaluate` (folders) and :func:`msr_lib.baselines.oracle_rows`
    (arrays in memory)."""

    def __init__(self, metrics):
        self.metrics = resolve_metrics(metrics)
        self.per_song: dict[str, dict[str, dict[str, float | None]]] = {}
        self.missing: list[dict] = []
        self.extra: list[dict] = []
        self.silent: list[dict] = []
        self.length_mismatches: list[dict] = []

    def add_song(self, song: str, estimates: dict, references: dict, sample_rate: int) -> None:
        """Score one song: ``{stem: (channels, samples)}`` estimates against references (arrays or loaders:
        a zero-argument callable returning ``(audio, rate)`` is called only when the pair is scored)."""
        scores = self.per_song.setdefault(song, {})
        for stem in estimates:
            if stem not in references:
                self.extra.append({"song": song, "stem": stem})
        for stem, reference in references.items():
            ref, rate = reference() if callable(reference) else (np.asarray(reference), sample_rate)
            if np.max(np.abs(ref)) <= SILENT_PEAK:     # silent: excluded and counted, estimate or not
                self.silent.append({"song": song, "stem": stem})
                continue
            if stem not in estimates:
                self.missing.append({"song": song, "stem": stem})
                continue
            est = estimates[stem]
            est = est(rate)[0] if callable(est) else np.asarray(est)
            if est.shape[-1] != ref.shape[-1]:
                self.length_mismatches.append({"song": song, "stem": stem, "estimate_samples": int(est.shape[-1]),
                                               "reference_samples": int(ref.shape[-1])})
                n = min(est.shape[-1], ref.shape[-1])
                est, ref = est[..., :n], ref[..., :n]
            if est.shape != ref.shape:
                raise MSRError(f"{song}/{stem}: estimate has shape {est.shape}, reference {ref.shape}")
            values = {}
            for m in self.metrics:
                value = float(m.fn(est, ref, rate))
                values[m.name] = value if math.isfinite(value) else None
            scores[stem] = values

    def add_unmatched_song(self, song: str, stems, *, kind: str) -> None:
        target = self.missing if kind == "missing" else self.extra
        target.extend({"song": song, "stem": stem} for stem in stems)

    def result(self, info: dict | None = None) -> EvaluationResult:
        from msr_lib.stems import STEMS

        stems = {stem for song in self.per_song.values() for stem in song}
        stems |= {i["stem"] for i in self.silent}
        order = sorted(stems, key=lambda s: (STEMS.index(s) if s in STEMS else len(STEMS), s))
        per_stem = {}
        for stem in order:
            per_stem[stem] = {}
            for m in self.metrics:
                values = [song[stem][m.name] for song in self.per_song.values()
                          if stem in song and song[stem][m.name] is not None]
                per_stem[stem][m.name] = _summary(values)
        means = {}
        for m in self.metrics:
            values = [v[m.name] for song in self.per_song.values() for v in song.values() if v[m.name] is not None]
            means[m.name] = float(np.mean(values)) if values else None
        return EvaluationResult(metrics=self.metrics, per_song=self.per_song, per_stem=per_stem, means=means,
                                missing=self.missing, extra=self.extra, silent=self.silent,
                                length_mismatches=self.length_mismatches, info=dict(info or {}))


# ---------------------------------------------------------------- folders

def _scan_stems(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """``({canonical stem: file}, [unknown names])`` of the audio files directly in ``folder`` (mixtures skipped)."""
    from msr_lib.audio import AUDIO_EXTENSIONS, MIXTURE_NAMES
    from msr_lib.stems import canonical_stem

    found: dict[str, Path] = {}
    unknown: list[str] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        if path.stem.lower() in MIXTURE_NAMES:
            continue
        try:
            stem = canonical_stem(path.stem)
        except MSRError:
            unknown.append(path.name)
            continue
        if stem in found:
            raise MSRError(f"{folder}: two files for stem {stem!r}: {found[stem].name} and {path.name}")
        found[stem] = path
    return found, unknown


def _songs(root, role: str) -> tuple[dict[str, tuple[dict[str, Path], list[str]]], bool]:
    """``({song: (stems, unknown)}, flat)`` of a folder in either layout."""
    root = Path(root)
    if not root.exists():
        raise MSRError(f"{role} folder {root}: no such folder")
    if not root.is_dir():
        raise MSRError(f"{role} folder {root}: is not a folder")
    stems, unknown = _scan_stems(root)
    if stems:
        return {root.resolve().name: (stems, unknown)}, True
    songs = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        s, u = _scan_stems(sub)
        if s or u:
            songs[sub.name] = (s, u)
    if not songs:
        raise MSRError(f"{role} folder {root}: no stem audio files (expected {root}/<song>/<stem>.wav "
                       f"or {root}/<stem>.wav)")
    return songs, False


def evaluate(estimates, references, *, metrics=DEFAULT_METRICS, sample_rate: int | None = None,
             progress: bool | None = False) -> EvaluationResult:
    """Score the estimate folder against the reference folder (layouts and rules: module docstring).

    ``progress``: a tqdm bar over songs (``None``: only on a terminal). Raises :class:`MSRError` for unknown
    metrics, missing or empty folders and when no song matches; per-stem problems are reported in the result.
    """
    from tqdm.auto import tqdm

    from msr_lib.audio import load_audio_with_rate

    specs = resolve_metrics(metrics)
    ref_songs, ref_flat = _songs(references, "references")
    est_songs, est_flat = _songs(estimates, "estimates")
    if ref_flat and (est_flat or len(est_songs) == 1):
        est_songs = {next(iter(ref_songs)): next(iter(est_songs.values()))}
    elif est_flat and len(ref_songs) == 1:
        est_songs = {next(iter(ref_songs)): next(iter(est_songs.values()))}
    matched = [song for song in ref_songs if song in est_songs]
    if not matched:
        raise MSRError(f"no song of {estimates} matches a song of {references} "
                       f"(references: {', '.join(list(ref_songs)[:5])}; estimates: {', '.join(list(est_songs)[:5])})")
    scorer = Scorer(specs)
    for song in ref_songs:
        if song not in est_songs:
            scorer.add_unmatched_song(song, ref_songs[song][0], kind="missing")
    for song, (stems, unknown) in est_songs.items():
        if song not in ref_songs:
            scorer.add_unmatched_song(song, list(stems) + unknown, kind="extra")
    disable = None if progress is None else not progress
    for song in tqdm(matched, desc="evaluate", unit="song", disable=disable):
        ref_files, _ = ref_songs[song]
        est_files, est_unknown = est_songs[song]
        refs = {stem: (lambda p=path: load_audio_with_rate(p, sample_rate)) for stem, path in ref_files.items()}
        ests = {stem: (lambda rate, p=path: load_audio_with_rate(p, rate)) for stem, path in est_files.items()}
        scorer.add_song(song, ests, refs, sample_rate)
        scorer.add_unmatched_song(song, est_unknown, kind="extra")
    return scorer.result(info={"estimates": str(estimates), "references": str(references),
                               "sample_rate": sample_rate})
