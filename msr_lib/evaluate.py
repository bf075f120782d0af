"""Score estimated stems against references: folder against folder (``msr evaluate``), and a score board of
separators, folders and oracle baselines on songs in memory (:class:`ScoreBoard`, :func:`score_separator`,
:func:`score_pipeline` for separated and restored stems); the held-out song sets the docs' numbers come from
(:func:`held_out_songs`).

Lessons: notebooks/02_measuring_restoration.ipynb, notebooks/03_bs_roformer.ipynb, notebooks/04_curriculum_lora.ipynb,
notebooks/06_full_pipeline.ipynb

Every score goes through :meth:`Scorer.add_song`, whose rules hold everywhere:

- **silent** — a reference whose peak is at or below :data:`msr_lib.audio.SILENT_PEAK` (−120 dBFS): no score is
  meaningful, so the stem is left out of every mean and counted;
- **missing** — a (non-silent) reference stem with no estimate (also every stem of a reference song with no
  estimate folder);
- **extra** — an estimate with no reference stem (or an unknown stem name, or a song with no reference);
- **length mismatch** — estimate and reference are both trimmed to the shorter one and the pair is listed;
- a metric that still returns ``nan``/``inf`` (e.g. one silent channel of a stereo reference) is stored as
  ``null`` and left out of the means.

Folder layouts of :func:`evaluate` (estimates and references each one of them):

- **song folders** — ``<dir>/<song>/<stem>.<ext>``: songs are matched by folder name;
- **flat folder** — ``<dir>/<stem>.<ext>``: one song. Two flat folders are matched to each other whatever their names;
  a flat folder against song folders matches the song of the same name (or the only song there).

Folders are read by :func:`msr_lib.audio.song_files`: stems are matched by canonical stem name (``vocal.wav``
matches ``vocals.flac``; several files of one stem are summed), mix files (``clean_mix``, ``mastered_mix``,
``mixture``…) are skipped, unknown names are reported as extra. Audio is loaded stereo (mono duplicated) at
``sample_rate`` (``None``: each reference's own rate; the estimate is resampled to it). :class:`EvaluationResult`
holds per-song, per-stem values, per-stem summaries (mean, median, count), overall means (over all scored song-stem
pairs, not the mean of the stem means), prints a table and writes JSON atomically.

A :class:`ScoreBoard` scores one metric: rows (a separator, a folder of estimates, a dict of arrays) × stems, the
baselines of :mod:`msr_lib.baselines` first; its means per row are means over stems of the per-stem means, and the
gain of a row is its mean improvement over the "mixture as estimate" floor. Every metric of the registry we report is
scale-invariant or nearly so, so a board also measures two things they miss:

- **level error** — per stem |LUFS(estimate) − LUFS(target)| in dB (:func:`level_error_db`), reported as the median
  over songs. The target is the documented level of a separator's estimate: the clean stem scaled by
  RMS(mixture) / RMS(clean mix), i.e. the clean stem itself on a clean mix and, on a mastered mix, the stem at the
  mix's level (:func:`msr_lib.train.curriculum.match_mix_level`, the curriculum's convention). Silent references are
  left out; loudness below the −70 LUFS gate of BS.1770 counts as −70 LUFS, so a silent estimate of a playing stem
  is a large, finite error;
- **sum SNR** — on a clean mixture (the sum of the references), the plain SNR (:func:`msr_lib.metrics.snr`) of
  the sum of all a row's estimates against the mixture, reported as the median over songs: ≥ 60 dB when the
  stems add up to the input, below 0 when they count some of it twice.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msr_lib.audio import ACTIVE_STEM_RMS, MIXES, SAMPLE_RATE, SILENT_PEAK, atomic_file, load_stem
from msr_lib.baselines import BASELINE_TITLES, BASELINES, baseline_estimates
from msr_lib.errors import MSRError
from msr_lib.metrics import METRICS, Metric

DEFAULT_METRICS = ("multi_mel_snr", "si_snr")
#: loudness floor of the level error: BS.1770's absolute gate (quieter audio reads −inf)
LOUDNESS_FLOOR_LUFS = -70.0
#: a mixture counts as clean when it differs from the sum of the references by less than this (RMS ratio, −60 dB)
CLEAN_MIX_TOLERANCE = 1e-3
#: the held-out synthetic test songs' seed (training songs use 1000, validation 2000: never seen)
TEST_SEED = 3000
#: the held-out song sets: synthetic test songs, and the real-recordings development set (lmms-common loops)
HELD_OUT_SETS = ("synthetic", "loops")


def level_error_db(estimate: np.ndarray, target: np.ndarray, sample_rate: int) -> float:
    """|LUFS(estimate) − LUFS(target)| in dB of two ``(channels, samples)`` signals (BS.1770 integrated loudness,
    :func:`msr_lib.degrade.measure_loudness_lufs`), each floored at :data:`LOUDNESS_FLOOR_LUFS`."""
    from msr_lib.degrade import measure_loudness_lufs

    est, tgt = (max(measure_loudness_lufs(x, sample_rate), LOUDNESS_FLOOR_LUFS) for x in (estimate, target))
    return abs(est - tgt)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def resolve_metrics(metrics) -> list[Metric]:
    """Metric names (a sequence or a comma-separated string; registry entries pass through) → registry entries of
    :data:`msr_lib.metrics.METRICS`, without repeats. Unknown names raise :class:`MSRError`."""
    if isinstance(metrics, str):
        metrics = [m for m in (part.strip() for part in metrics.split(",")) if m]
    names = list(metrics or [])
    if not names:
        raise MSRError("no metrics given")
    resolved = []
    for name in names:
        if not isinstance(name, Metric):
            key = name.strip().lower().replace("-", "_")
            if key not in METRICS:
                raise MSRError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
            name = METRICS[key]
        if name not in resolved:
            resolved.append(name)
    return resolved


def _stem_order(stems) -> list[str]:
    """Canonical stems in canonical order, then any other names alphabetically."""
    from msr_lib.stems import STEMS

    return sorted(stems, key=lambda s: (STEMS.index(s) if s in STEMS else len(STEMS), s))


def _summary(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "median": None, "count": 0}
    return {"mean": float(np.mean(values)), "median": float(np.median(values)), "count": len(values)}


def _json_number(value):
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(kw_only=True)
class EvaluationResult:
    """Scores of one evaluation. ``per_song[song][stem][metric]`` → dB (or ``None`` when not finite);
    ``per_stem[stem][metric]`` → ``{"mean", "median", "count"}``; ``means[metric]`` over all scored pairs;
    ``missing``/``extra``/``silent``/``length_mismatches``: lists of dicts with at least ``song`` and ``stem``."""
    metrics: list[Metric]
    per_song: dict[str, dict[str, dict[str, float | None]]]
    per_stem: dict[str, dict[str, dict]]
    means: dict[str, float | None]
    missing: list[dict] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)
    silent: list[dict] = field(default_factory=list)
    length_mismatches: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

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
    """Accumulates per-song scores of one set of estimates: the one scoring path (rules: module docstring) behind
    :func:`evaluate` (folders), every row of a :class:`ScoreBoard` and :func:`msr_lib.baselines.oracle_rows`."""

    def __init__(self, metrics):
        self.metrics = resolve_metrics(metrics)
        self.per_song: dict[str, dict[str, dict[str, float | None]]] = {}
        self.missing: list[dict] = []
        self.extra: list[dict] = []
        self.silent: list[dict] = []
        self.length_mismatches: list[dict] = []
        #: ``{song: {stem: dB}}``: level errors (:func:`level_error_db`) of songs added with a ``level_gain``
        self.level_errors: dict[str, dict[str, float]] = {}

    def add_song(self, song: str, estimates: dict, references: dict, sample_rate: int, *,
                 level_gain: float | None = None) -> None:
        """Score one song: ``{stem: (channels, samples)}`` estimates against references (arrays or loaders:
        a zero-argument callable returning ``(audio, rate)`` is called only when the pair is scored). With
        ``level_gain``, also the level error of each scored stem against its reference × ``level_gain``."""
        scores = self.per_song.setdefault(song, {})
        levels = self.level_errors.setdefault(song, {}) if level_gain is not None else None
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
            if levels is not None:
                levels[stem] = level_error_db(est, ref * level_gain, rate)

    def add_unmatched_song(self, song: str, stems, *, kind: str) -> None:
        """Record ``stems`` of ``song`` as ``"missing"`` estimates or ``"extra"`` ones, unscored."""
        target = self.missing if kind == "missing" else self.extra
        target.extend({"song": song, "stem": stem} for stem in stems)

    def result(self, info: dict | None = None) -> EvaluationResult:
        """What was scored so far: per song, per stem (canonical order; silent-only stems with count 0), overall."""
        stems = {stem for song in self.per_song.values() for stem in song}
        stems |= {i["stem"] for i in self.silent}
        order = _stem_order(stems)
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

def _scan_stems(folder: Path) -> tuple[dict[str, tuple[Path, ...]], list[str]]:
    """``({canonical stem: files}, [unknown file names])`` of the audio files directly in ``folder`` (mixes
    skipped), as :func:`msr_lib.audio.song_files` reads them."""
    from msr_lib.audio import song_files

    files = song_files(folder, unknown="keep")
    return files.stems, [path.name for path in files.unknown]


def _songs(root, role: str) -> tuple[dict[str, tuple[dict[str, tuple[Path, ...]], list[str]]], bool]:
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
        refs = {stem: (lambda p=paths: load_stem(p, sample_rate)) for stem, paths in ref_files.items()}
        ests = {stem: (lambda rate, p=paths: load_stem(p, rate)) for stem, paths in est_files.items()}
        scorer.add_song(song, ests, refs, sample_rate)
        scorer.add_unmatched_song(song, est_unknown, kind="extra")
    return scorer.result(info={"estimates": str(estimates), "references": str(references),
                               "sample_rate": sample_rate})


# ---------------------------------------------------------------- score boards

def _fingerprint(references: dict, mixture: np.ndarray) -> tuple:
    """A cheap identity of a song's audio: a later row of the same song must bring the same references and mix."""
    def one(audio):
        return audio.shape, float(np.abs(audio).sum(dtype=np.float64))

    return tuple((stem, *one(audio)) for stem, audio in references.items()) + (one(mixture),)


def _is_separator(estimates) -> bool:
    return callable(estimates) and hasattr(estimates, "stems") and hasattr(estimates, "sample_rate")


class ScoreBoard:
    """One metric's per-stem scores of several rows on the same songs: the baselines (``"mixture"``: the mixture
    as every estimate, the floor; ``"irm"``/``"ibm"``: oracle masks, see :mod:`msr_lib.baselines`) first, then the
    estimate rows in the order they were first added.

    ``board.add_song(song, references=…, mixture=…, estimates={row: …})`` scores each row's estimates of one song
    against its references — a row is a ``{stem: (channels, samples) array}`` dict, a folder of ``<stem>.<ext>``
    files (read by :func:`msr_lib.audio.song_files`, loaded at ``sample_rate``) or a loaded separator (``.stems``,
    ``.sample_rate``; it separates ``mixture`` here). The baselines are computed from ``mixture`` and the
    references the first time a song is added; adding the same song again (same references and mixture) adds
    rows only. Silent references are left out and counted (:attr:`silent`). Each row also gets its level errors
    and, on clean mixtures, its sum SNR (module docstring; :meth:`level_errors`, :meth:`sum_snr`).
    """

    def __init__(self, *, metric: str = "multi_mel_snr", baselines=("mixture",), sample_rate: int = SAMPLE_RATE):
        (self.metric,) = resolve_metrics([metric])
        unknown = [b for b in baselines if b not in BASELINES]
        if unknown:
            raise MSRError(f"unknown baseline {unknown[0]!r}; expected some of {', '.join(BASELINES)}")
        self.baselines = tuple(b for b in BASELINES if b in baselines)
        self.sample_rate = int(sample_rate)
        self.rows: dict[str, Scorer] = {name: Scorer([self.metric]) for name in self.baselines}
        self._songs: dict[str, tuple] = {}
        #: ``{row: {song: dB}}``: SNR of the sum of the row's estimates against a clean mixture
        self._sum_snrs: dict[str, dict[str, float]] = {}

    # ------------------------------------------------------------ adding
    def add_song(self, song: str, *, references: Mapping, mixture, estimates: Mapping | None = None) -> None:
        """Score ``estimates`` (``{row: dict | folder | separator}``) of ``song`` and, the first time the song is
        added, the baselines. Raises :class:`MSRError` for a row that already scored this song, a baseline's name
        as a row, or a song added before with other references or another mixture."""
        from msr_lib.audio import check_audio

        song = str(song)
        if not references:
            raise MSRError(f"{song}: no reference stems given")
        references = {stem: check_audio(audio, f"{song}/{stem} reference") for stem, audio in references.items()}
        mixture = check_audio(mixture, f"{song} mixture")
        key = _fingerprint(references, mixture)
        if song in self._songs and self._songs[song] != key:
            raise MSRError(f"{song}: added before with other references or another mixture; give it another name")
        rows = {}
        for row, estimate in (estimates or {}).items():
            if row in BASELINES:
                raise MSRError(f"row name {row!r} is a baseline's; name the estimates otherwise")
            if row in self.rows and song in self.rows[row].per_song:
                raise MSRError(f"{song}: row {row!r} has scored this song already")
            rows[row] = self._estimates(song, row, estimate, mixture)
        clean_mix = np.sum(list(references.values()), axis=0, dtype=np.float32)
        clean_rms = _rms(clean_mix)
        level_gain = _rms(mixture) / clean_rms if clean_rms >= ACTIVE_STEM_RMS else 1.0  # as match_mix_level
        clean = mixture.shape == clean_mix.shape and _rms(mixture - clean_mix) <= CLEAN_MIX_TOLERANCE * clean_rms
        if song not in self._songs:
            for name, estimate in baseline_estimates(mixture, references, names=self.baselines).items():
                self.rows[name].add_song(song, estimate, references, self.sample_rate, level_gain=level_gain)
                if clean:
                    self._add_sum_snr(name, song, estimate, mixture)
            self._songs[song] = key
        for row, (estimate, unknown) in rows.items():
            if clean:  # loaded once here: the sum needs every stem, also those with silent references
                estimate = {stem: est(self.sample_rate)[0] if callable(est) else est for stem, est in estimate.items()}
                self._add_sum_snr(row, song, estimate, mixture)
            scorer = self.rows.setdefault(row, Scorer([self.metric]))
            scorer.add_song(song, estimate, references, self.sample_rate, level_gain=level_gain)
            scorer.add_unmatched_song(song, unknown, kind="extra")

    def _add_sum_snr(self, row: str, song: str, estimates: Mapping, mixture: np.ndarray) -> None:
        from msr_lib.audio import fit_length
        from msr_lib.metrics import snr

        total = np.zeros(mixture.shape, np.float64)
        for audio in estimates.values():
            total += fit_length(np.asarray(audio, np.float64), mixture.shape[-1])
        self._sum_snrs.setdefault(row, {})[song] = snr(total, mixture)

    def _estimates(self, song: str, row: str, estimates, mixture: np.ndarray) -> tuple[dict, list[str]]:
        """``({stem: array or loader}, [unknown file names])`` of one row of one song."""
        if isinstance(estimates, Mapping):
            return dict(estimates), []
        if isinstance(estimates, (str, Path)):
            stems, unknown = _scan_stems(Path(estimates))
            if not stems:
                raise MSRError(f"{song}: row {row!r}: no stem audio files in {estimates}")
            return {stem: (lambda rate, p=paths: load_stem(p, rate)) for stem, paths in stems.items()}, unknown
        if _is_separator(estimates):
            from msr_lib.separate import separate

            if estimates.sample_rate != self.sample_rate:
                raise MSRError(f"row {row!r}: the separator runs at {estimates.sample_rate} Hz, the board scores "
                               f"at {self.sample_rate} Hz")
            return separate(mixture, estimates, progress=False), []
        raise MSRError(f"{song}: row {row!r}: estimates must be a {{stem: array}} dict, a folder of <stem>.<ext> "
                       f"files or a loaded separator, got {type(estimates).__name__}")

    # ------------------------------------------------------------ reading
    def _scorer(self, row: str) -> Scorer:
        if row not in self.rows:
            raise MSRError(f"no row {row!r}; rows: {', '.join(self.rows) or '(none)'}")
        return self.rows[row]

    def title(self, row: str) -> str:
        """How tables and plots name ``row``: a baseline's title, else the row name."""
        return BASELINE_TITLES.get(row, row)

    @property
    def songs(self) -> list[str]:
        """The songs added, in order."""
        return list(self._songs)

    @property
    def silent(self) -> list[dict]:
        """``{"song", "stem"}`` of every silent reference (left out of every row)."""
        seen = []
        for scorer in self.rows.values():
            seen += [item for item in scorer.silent if item not in seen]
        return seen

    def per_stem(self, row: str) -> dict[str, dict]:
        """``{stem: {"mean", "median", "count"}}`` of ``row``, scored stems only, canonical order."""
        summaries = self._scorer(row).result().per_stem
        return {stem: s[self.metric.name] for stem, s in summaries.items() if s[self.metric.name]["count"]}

    def per_song(self, row: str) -> dict[str, dict[str, float | None]]:
        """``{song: {stem: score}}`` of ``row``: each scored stem's value on each song (``None``: not finite)."""
        return {song: {stem: values[self.metric.name] for stem, values in stems.items()}
                for song, stems in self._scorer(row).per_song.items()}

    def means(self) -> dict[str, dict[str, float]]:
        """``{row: {stem: mean over songs}}``, rows in order, scored stems only."""
        return {row: {stem: s["mean"] for stem, s in self.per_stem(row).items()} for row in self.rows}

    def counts(self, row: str) -> dict[str, int]:
        """``{stem: songs scored}`` of ``row``."""
        return {stem: s["count"] for stem, s in self.per_stem(row).items()}

    def mean(self, row: str) -> float:
        """The mean over stems of ``row``'s per-stem means (``nan`` when no stem was scored)."""
        values = [s["mean"] for s in self.per_stem(row).values()]
        return float(np.mean(values)) if values else float("nan")

    def gain(self, row: str) -> float:
        """Mean over the stems both rows scored of ``row``'s improvement over the ``"mixture"`` floor, per-stem
        mean against per-stem mean (positive = better, also for a lower-is-better metric); ``nan`` when they share
        no stem."""
        if "mixture" not in self.rows:
            raise MSRError("the gain over the floor needs the 'mixture' baseline (ScoreBoard(baselines=…))")
        self._scorer(row)
        means = self.means()
        row_means, floor = means[row], means["mixture"]
        sign = 1.0 if self.metric.higher_is_better else -1.0
        gains = [sign * (value - floor[stem]) for stem, value in row_means.items() if stem in floor]
        return float(np.mean(gains)) if gains else float("nan")

    def level_errors(self, row: str) -> dict[str, float]:
        """``{stem: median over songs of the level error (dB)}`` of ``row`` (module docstring), canonical order."""
        per_song = self._scorer(row).level_errors.values()
        stems = _stem_order({stem for levels in per_song for stem in levels})
        return {stem: float(np.median([levels[stem] for levels in per_song if stem in levels])) for stem in stems}

    def level_error(self, row: str) -> float:
        """The median level error (dB) of ``row`` over all scored song-stem pairs (``nan`` when none)."""
        values = [v for levels in self._scorer(row).level_errors.values() for v in levels.values()]
        return float(np.median(values)) if values else float("nan")

    def sum_snr(self, row: str) -> float:
        """The median over clean-mixture songs of the SNR (dB) of the sum of ``row``'s estimates against the
        mixture (``nan`` when no clean mixture was added)."""
        self._scorer(row)
        values = list(self._sum_snrs.get(row, {}).values())
        return float(np.median(values)) if values else float("nan")

    def _stems(self) -> list[str]:
        return _stem_order({stem for row in self.rows for stem in self.per_stem(row)})

    def _axis_label(self) -> str:
        arrow = "↑" if self.metric.higher_is_better else "↓"
        return f"{self.metric.label} ({self.metric.unit}, {arrow} better)"

    def table(self) -> str:
        """A text table: a line per row (songs, per-stem means, mean over stems, gain over the floor), then the
        songs scored per stem and notes on silent references, missing/extra estimates and trimmed lengths."""
        stems = self._stems()
        means = self.means()

        def number(value, signed=False):
            if value is None or not math.isfinite(value):
                return "–"
            return f"{value:+.2f}" if signed else f"{value:.2f}"

        sums = any(self._sum_snrs.values())
        header = ["", "songs", *stems, "mean"] + (["gain"] if "mixture" in self.rows else []) + (
            ["sum SNR"] if sums else [])
        lines = [header]
        for row in self.rows:
            cells = [self.title(row), str(len(self.rows[row].per_song))]
            cells += [number(means[row].get(stem)) for stem in stems] + [number(self.mean(row))]
            if "mixture" in self.rows:
                cells.append("floor" if row == "mixture" else number(self.gain(row), signed=True))
            if sums:
                cells.append(number(self.sum_snr(row)))
            lines.append(cells)
        first = next(iter(self.rows), None)
        if first is not None:
            counts = self.counts(first)
            lines.append(["songs scored per stem", ""] + [str(counts.get(stem, 0)) for stem in stems])
        text = [f"{self._axis_label()}: per stem the mean over songs, mean = over stems"
                + (", gain = over the floor (mixture as estimate)" if "mixture" in self.rows else "")
                + (", sum SNR = median over songs of the SNR (dB) of the sum of the estimates vs the clean mixture"
                   if sums else "")]
        text += _aligned(lines)
        level_lines = [["", *stems, "all"]]
        for row in self.rows:
            levels = self.level_errors(row)
            level_lines.append([self.title(row)] + [number(levels.get(stem)) for stem in stems]
                               + [number(self.level_error(row))])
        text.append("level error (dB, ↓ better): per stem the median over songs of "
                    "|LUFS(estimate) − LUFS(target)|, all = over every song and stem")
        text += _aligned(level_lines)
        if self.silent:
            text.append(f"silent references (left out): {len(self.silent)} ({_pairs(self.silent)})")
        for row, scorer in self.rows.items():
            for label, items in (("missing estimates", scorer.missing), ("extra estimates", scorer.extra),
                                 ("length mismatches (trimmed to the shorter)", scorer.length_mismatches)):
                if items:
                    text.append(f"{self.title(row)}: {label}: {len(items)} ({_pairs(items)})")
        return "\n".join(text)

    def plot(self, ax=None, title: str = ""):
        """Grouped bars: a group per stem, a bar per row (the floor grey), legend, the metric and unit on the y axis.
        Draws on ``ax`` (else a new figure); ``title`` defaults to the metric and the number of songs. Returns the
        figure."""
        import matplotlib.pyplot as plt

        stems = self._stems()
        means = self.means()
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(stems) + 2.0), 3.4))
        else:
            fig = ax.figure
        positions = np.arange(len(stems))
        width = 0.8 / max(len(self.rows), 1)
        for j, row in enumerate(self.rows):
            offset = (j - (len(self.rows) - 1) / 2) * width
            ax.bar(positions + offset, [means[row].get(stem, np.nan) for stem in stems], width,
                   label=self.title(row), color="0.6" if row == "mixture" else None)
        ax.set_xticks(positions, stems)
        ax.set_ylabel(self._axis_label())
        ax.axhline(0, color="k", lw=0.8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        songs = len(self._songs)
        ax.set_title(title or f"{self.metric.label} per stem, {songs} song{'s' if songs != 1 else ''}")
        fig.tight_layout()
        return fig

    def to_dict(self) -> dict:
        """JSON-able content: the metric, and per row its title, songs, per-stem summaries, mean, gain, level
        errors (``level_error_db``: per-stem medians, the median over all pairs, per song) and sum SNR
        (``sum_snr_db``: the median and per song; ``None``/empty without clean mixtures)."""
        rows = {}
        for row, scorer in self.rows.items():
            rows[row] = {"title": self.title(row), "songs": len(scorer.per_song), "per_stem": self.per_stem(row),
                         "mean": _json_number(self.mean(row)),
                         "gain": _json_number(self.gain(row)) if "mixture" in self.rows else None,
                         "per_song": {song: {stem: v[self.metric.name] for stem, v in stems.items()}
                                      for song, stems in scorer.per_song.items()},
                         "level_error_db": {"per_stem": self.level_errors(row),
                                            "median": _json_number(self.level_error(row)),
                                            "per_song": scorer.level_errors},
                         "sum_snr_db": {"median": _json_number(self.sum_snr(row)),
                                        "per_song": self._sum_snrs.get(row, {})},
                         "missing": scorer.missing, "extra": scorer.extra,
                         "length_mismatches": scorer.length_mismatches}
        return {"metric": {"name": self.metric.name, "label": self.metric.label, "unit": self.metric.unit,
                           "higher_is_better": self.metric.higher_is_better},
                "sample_rate": self.sample_rate, "songs": self.songs, "rows": rows, "silent": self.silent}


def _aligned(lines: list[list[str]]) -> list[str]:
    """Text rows of a table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(max(map(len, lines)))]
    return ["  ".join([line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]).rstrip()
            for line in lines]


def _pairs(items: list[dict], shown: int = 6) -> str:
    text = ", ".join(f"{i['song']}/{i['stem']}" for i in items[:shown])
    return text + (f", … (+{len(items) - shown})" if len(items) > shown else "")


def song_folders(songs) -> list[Path]:
    """Song folders from a list of folders or from one folder: itself when it holds stems, else its sub-folders
    that do (sorted). Raises :class:`MSRError` when there are none or a folder is missing."""
    from msr_lib.audio import song_files

    def has_stems(folder: Path) -> bool:
        return bool(song_files(folder, unknown="keep").stems)

    if isinstance(songs, (str, Path)):
        root = Path(songs)
        if not root.is_dir():
            raise MSRError(f"{root}: no such folder")
        folders = [root] if has_stems(root) else sorted(p for p in root.iterdir() if p.is_dir()
                                                        and not p.name.startswith(".") and has_stems(p))
        if not folders:
            raise MSRError(f"{root}: no song folders with stem audio files (expected {root}/<song>/<stem>.flac)")
        return folders
    folders = [Path(d) for d in songs]
    if not folders:
        raise MSRError("no song folders given")
    for folder in folders:
        if not folder.is_dir():
            raise MSRError(f"{folder}: no such folder")
    return folders


def song_mixture(references: Mapping, *, mix: str, seed: int | None = None, sample_rate: int = SAMPLE_RATE,
                 codec: bool = True) -> np.ndarray:
    """The mixture a separator is scored on: the plain sum of the reference stems (``mix="clean"``) or that sum
    mastered by :func:`msr_lib.degrade.degrade_mix` with ``seed`` (``"mastered"``; silent stems left out of the
    chain draws)."""
    if mix not in MIXES:
        raise MSRError(f"mix must be one of {', '.join(MIXES)}, got {mix!r}")
    if mix == "clean":
        return np.sum(list(references.values()), axis=0, dtype=np.float32)
    from msr_lib.degrade import degrade_mix

    playing = {stem: audio for stem, audio in references.items() if np.abs(audio).max() > SILENT_PEAK}
    return degrade_mix(playing, sample_rate, seed=seed, codec=codec).mastered_mix


def score_separator(separator, songs, *, mix: str = "clean", baselines=("mixture", "irm"), seed: int = 0,
                    metric: str = "multi_mel_snr", name: str = "separator", codec: bool = True,
                    progress: bool = False) -> ScoreBoard:
    """Score a loaded separator on song folders (:func:`song_folders`): each song's clean stems grouped into the
    separator's stems (:func:`msr_lib.audio.group_stems`: the stems it lacks fold into ``other``) are the
    references; the mixture is their sum, mastered for ``mix="mastered"`` with seed
    :func:`msr_lib.data.synth.song_seed` ``(seed, index)``. Returns the :class:`ScoreBoard` (the separator's row is
    ``name``)."""
    from tqdm.auto import tqdm

    from msr_lib.audio import group_stems, load_song_stems
    from msr_lib.data.synth import song_seed

    if mix not in MIXES:
        raise MSRError(f"mix must be one of {', '.join(MIXES)}, got {mix!r}")
    folders = song_folders(songs)
    board = ScoreBoard(metric=metric, baselines=baselines, sample_rate=separator.sample_rate)
    for index, folder in enumerate(tqdm(folders, desc="score", unit="song", disable=not progress)):
        references = group_stems(load_song_stems(folder, separator.sample_rate), separator.stems)
        mixture = song_mixture(references, mix=mix, seed=song_seed(seed, index), sample_rate=separator.sample_rate,
                               codec=codec)
        board.add_song(folder.name, references=references, mixture=mixture, estimates={name: separator})
    return board


def held_out_songs(song_set: str = "synthetic", songs: int = 12, seconds: float = 20.0, *, progress: bool = True,
                   samples_dir=None, sound_sources=None) -> tuple[list[Path], int]:
    """The song folders of a held-out set (rendered under ``data_dir()`` on first use, then reused) and the seed
    that built them. ``"synthetic"``: test songs rendered with :data:`TEST_SEED` (``sound_sources``: only those,
    e.g. ``("fluidr3_gm", "msr_voice")`` for songs like the first bundled generation's, one GM set and our voice;
    default every installed source); ``"loops"``: the real-recordings development set, songs assembled from the
    recorded loops and one-shots of Debian's lmms-common by :mod:`msr_lib.data.loop_songs` (``samples_dir``: its
    samples folder) — for scoring only, never for training or tuning."""
    from msr_lib.environment import data_dir

    if song_set not in HELD_OUT_SETS:
        raise MSRError(f"unknown song set {song_set!r}; choose one of {', '.join(HELD_OUT_SETS)}")
    if song_set == "loops":
        from msr_lib.data.loop_songs import DEV_SET_SEED, LMMS_SAMPLES, build_loop_songs

        folders = build_loop_songs(data_dir() / f"loops_s{DEV_SET_SEED}_{seconds:g}s", songs=songs, seconds=seconds,
                                   seed=DEV_SET_SEED, samples_dir=samples_dir or LMMS_SAMPLES, progress=progress,
                                   skip_existing=True)
        return folders, DEV_SET_SEED
    from msr_lib.data.synth import synthesize_songs

    suffix = "_" + "+".join(sound_sources) if sound_sources else ""
    folders = synthesize_songs(data_dir() / f"test_s{TEST_SEED}_{seconds:g}s{suffix}", songs=songs, seconds=seconds,
                               seed=TEST_SEED, sound_sources=sound_sources, progress=progress, skip_existing=True)
    return folders, TEST_SEED


def score_pipeline(separator, restorers, songs, *, compare: Mapping | None = None, mix: str = "mastered",
                   seed: int = 0, metrics=("multi_mel_snr",), baselines=("mixture",), codec: bool = True,
                   progress: bool = False, **pipeline_options) -> dict[str, ScoreBoard]:
    """Score the whole system on song folders: one :class:`ScoreBoard` per metric with the rows ``"separated"``
    (the separator's stems), ``"restored"`` (each through the restorer ``restorers`` gives it, see
    :mod:`msr_lib.pipeline`) and one row per entry of ``compare`` (``{row: restorers}``, e.g. ``{"generalist":
    "bundled:generalist"}``: the same separated stems through other restorers), after the baselines. References
    and mixtures as in :func:`score_separator` (the songs' stems grouped into the separator's; mastered with
    :func:`msr_lib.data.synth.song_seed` ``(seed, index)``). The separator runs once per song. ``pipeline_options``
    go to :func:`msr_lib.pipeline.restore` (chunking, device, preset)."""
    from tqdm.auto import tqdm

    from msr_lib.audio import group_stems, load_song_stems
    from msr_lib.data.synth import song_seed
    from msr_lib.pipeline import restore, restore_stems

    if mix not in MIXES:
        raise MSRError(f"mix must be one of {', '.join(MIXES)}, got {mix!r}")
    folders = song_folders(songs)
    rate = separator.sample_rate
    boards = {metric: ScoreBoard(metric=metric, baselines=baselines, sample_rate=rate) for metric in metrics}
    for index, folder in enumerate(tqdm(folders, desc="score", unit="song", disable=not progress)):
        references = group_stems(load_song_stems(folder, rate), separator.stems)
        mixture = song_mixture(references, mix=mix, seed=song_seed(seed, index), sample_rate=rate, codec=codec)
        restored, separated = restore(mixture, sample_rate=rate, separator=separator, restorers=restorers,
                                      keep_separated=True, progress=False, **pipeline_options)
        rows = {"separated": separated, "restored": restored}
        options = {k: v for k, v in pipeline_options.items() if k in ("device", "overlap", "batch_size", "preset")}
        for row, other in (compare or {}).items():
            rows[row] = restore_stems(separated, other, sample_rate=rate, **options)
        for board in boards.values():
            board.add_song(folder.name, references=references, mixture=mixture, estimates=rows)
    return boards
