"""The workshop's closing challenges: short tasks with automatic checks, their solutions, and a leaderboard.

Lesson: notebooks/07_workshop_challenges.ipynb

- Solutions (plain functions the checks compare against): :func:`other_stem` (the 9th stem as the mixture minus
  the 8 named ones), :func:`crossfade` (overlap-add weights that sum to 1, as :mod:`msr_lib.separate` uses),
  :func:`scale_to_lufs` (a gain in dB to reach a loudness) and the answers of the two choice tasks,
  :data:`GENERALIST_STEM` and :data:`LEVEL_SENSITIVE_METRIC`.
- Checks (one call per check cell; each prints "no answer yet" with a hint, ✅ or ❌ with the explanation, and
  leaves its solution for :func:`msr_lib.exercises.show_solution`): :func:`check_other_stem`,
  :func:`check_crossfade`, :func:`check_loudness`, :func:`check_generalist_stem`, :func:`check_level_metric`.
- The open challenge: :class:`Leaderboard` — improve one stem's Multi-Mel-SNR on a few held-out synthetic songs
  (:func:`challenge_songs`: seed :data:`CHALLENGE_SEED`, never used for training, validation or testing), with the
  bundled 8-stem separator unchanged as the baseline to beat. Rows go to one JSON file (``$MSR_LEADERBOARD``, else
  ``data_dir()/leaderboard.json``), appended under a lock and written atomically, so a room can share one file.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msr_lib.audio import SAMPLE_RATE, atomic_file, loudness_lufs, read_json_object
from msr_lib.errors import MSRError
from msr_lib.exercises import _verdict, check_choice, check_close, check_function
from msr_lib.separate import chunk_starts
from msr_lib.stems import INSTRUMENT_STEMS, STEMS

# ================================================================ solutions

#: the stem the full pipeline hands to the generalist restorer (msr_lib.pipeline: every other stem has an expert)
GENERALIST_STEM = "other"
#: of snr, si_snr and multi_mel_snr, the one whose score changes when an estimate is turned up or down
LEVEL_SENSITIVE_METRIC = "snr"


def other_stem(mixture: np.ndarray, named: dict[str, np.ndarray]) -> np.ndarray:
    """The ``other`` stem as the residual: the mixture minus the named stems (``{stem: (channels, samples)}``).

    So the stems always add up to the input exactly — what ``residual_stem=True`` does inside the separator
    (msr_lib/models/bs_roformer.py), whose ninth output has no mask of its own."""
    residual = np.array(mixture, dtype=np.float64, copy=True)
    for audio in named.values():
        residual -= np.asarray(audio, dtype=np.float64)
    return residual


def crossfade(length: int, chunk: int, hop: int) -> np.ndarray:
    """Overlap-add weights, shape ``(chunks, chunk)``, for chunks of ``chunk`` samples every ``hop`` samples over a
    ``length``-sample signal (chunk ``i`` starts at ``i * hop``: :func:`msr_lib.separate.chunk_starts`).

    Each chunk fades in (sin² ramp) over the samples it shares with the previous chunk and out over those it shares
    with the next; the first chunk's start and the last one's end stay flat, so the song's edges are not faded.
    Dividing every window by the sum of the windows over each sample makes the weights add up to exactly 1
    everywhere, however many chunks overlap. Up to 50 % overlap these are :func:`msr_lib.separate.crossfade_weights`;
    beyond, where a chunk's fade-in and fade-out overlap, they are multiplied (a smooth window) where
    ``crossfade_weights`` lets the fade-out overwrite the fade-in (its weights then step, still summing to 1).
    """
    starts = chunk_starts(length, chunk, hop)
    fade = chunk - hop
    windows = np.ones((len(starts), chunk))
    if fade:
        ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2  # strictly between 0 and 1
        windows[1:, :fade] *= ramp  # fade in where the previous chunk still plays
        windows[:-1, chunk - fade:] *= ramp[::-1]  # fade out where the next chunk starts
    total = np.zeros(starts[-1] + chunk)
    for start, window in zip(starts, windows):
        total[start:start + chunk] += window
    return np.stack([window / total[start:start + chunk] for start, window in zip(starts, windows)])


def scale_to_lufs(audio: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """``audio`` scaled to an integrated loudness of ``target_lufs``: a gain of (target − measured) dB, applied as
    the amplitude factor 10^(gain/20) (decibels of amplitude: 20·log10; of power: 10·log10)."""
    gain_db = target_lufs - loudness_lufs(audio, sample_rate)
    return np.asarray(audio) * 10 ** (gain_db / 20)


# ================================================================ checks

def _source(*functions) -> str:
    return "\n".join(inspect.getsource(f) for f in functions)


def _other_cases() -> dict:
    rng = np.random.default_rng(7)

    def case(channels: int, samples: int, silent=()):
        named = {stem: (0.0 if stem in silent else 0.2) * rng.standard_normal((channels, samples))
                 for stem in INSTRUMENT_STEMS}
        mixture = sum(named.values()) + 0.2 * rng.standard_normal((channels, samples))  # plus a true `other`
        return (mixture, named)

    return {"stereo, all 8 stems playing": case(2, 400),
            "drums and bass silent": case(2, 300, silent=("drums", "bass")),
            "mono": case(1, 250)}


def check_other_stem(fn) -> None:
    """Check a student's ``fn(mixture, named) -> other`` against :func:`other_stem` on three cases."""
    check_function(
        fn, _other_cases(), other_stem, what="your other_stem", tolerance=1e-5,
        explanation="With `other` defined as what the 8 named stems leave over, the 9 stems add up to the mixture "
                    "exactly: the separator (residual_stem=True) predicts 8 masks and gets `other` for free.",
        hint="start from the mixture and subtract every array in named.values() — all 8 of them, not just "
             "vocals, bass and drums.",
        solution=_source(other_stem))


def _crossfade_problem(result, expected, args) -> str | None:
    """What is wrong with a student's crossfade weights (``None``: nothing): shape, range, the sum over every
    sample (the song's first and last samples named on their own), and steps where a ramp belongs."""
    from msr_lib.exercises import _as_array

    length, chunk, hop = args
    weights = _as_array(result)
    if weights is None or weights.dtype == object:
        return f"returned a {type(result).__name__}, expected an array of shape {expected.shape}"
    if weights.shape != expected.shape:
        return (f"returned shape {weights.shape}, expected {expected.shape}: one row of {chunk} weights per chunk "
                f"of chunk_starts({length}, {chunk}, {hop})")
    if not np.all(np.isfinite(weights)):
        return "returned NaN or infinite weights (a division by zero?)"
    if weights.min() < -1e-9 or weights.max() > 1 + 1e-9:
        return f"weights must lie in [0, 1]; yours go from {weights.min():.3g} to {weights.max():.3g}"
    starts = chunk_starts(length, chunk, hop)
    total = np.zeros(starts[-1] + chunk)
    for start, row in zip(starts, weights):
        total[start:start + chunk] += row
    total = total[:length]
    if abs(total[0] - 1) > 1e-6:
        return f"the weights at sample 0 add up to {total[0]:.3f}, not 1: the song's start is faded"
    if abs(total[-1] - 1) > 1e-6:
        return f"the weights at the last sample add up to {total[-1]:.3f}, not 1: the song's end is faded"
    worst = int(np.argmax(np.abs(total - 1)))
    if abs(total[worst] - 1) > 1e-6:
        return f"the weights covering sample {worst} add up to {total[worst]:.3f}, not 1"
    fade = chunk - hop
    if 20 <= fade <= chunk // 2:  # two chunks at a time: a step where a ramp belongs is a click at the seam
        steps = np.abs(np.diff(weights, axis=1))
        row, sample = np.unravel_index(int(np.argmax(steps)), steps.shape)
        if steps[row, sample] > 0.1:
            return (f"chunk {row}'s weight jumps by {steps[row, sample]:.2f} at sample {sample + 1}: ramp it over "
                    f"the {fade} overlapping samples instead of stepping (a step is a click at the seam)")
    return None


#: label → (length, chunk, hop) of the crossfade check's cases
CROSSFADE_CASES = {"50 % overlap": (1000, 400, 200),
                   "25 % overlap (the last chunk runs past the end)": (1100, 400, 300),
                   "75 % overlap": (1000, 400, 100), "no overlap": (800, 400, 400), "one chunk": (300, 400, 300)}


def check_crossfade(fn) -> None:
    """Check a student's ``fn(length, chunk, hop) -> weights (chunks, chunk)``: the weights of every sample add up
    to 1, the song's edges are not faded, the overlaps ramp (any smooth ramp passes, not only :func:`crossfade`'s)."""
    check_function(
        fn, CROSSFADE_CASES, crossfade, what="your crossfade", compare=_crossfade_problem,
        explanation="Weights that add up to 1 at every sample leave a constant signal unchanged, so chunk seams "
                    "are inaudible; ramps (not steps) hide the small differences between neighbouring chunks' "
                    "outputs, and the song's own first and last samples are covered by one chunk only.",
        hint="give every chunk a window of ones, ramp it in over the first chunk − hop samples (not for chunk 0) "
             "and out over the last ones (not for the last chunk), add the windows up over the signal, and "
             "divide each window by that sum.",
        solution=_source(crossfade))


def check_loudness(scaled, original: np.ndarray, sample_rate: int, target_lufs: float) -> None:
    """Is ``scaled`` a gain-only copy of ``original`` at ``target_lufs`` (± 0.1 LU)?"""
    explanation = ("A gain of g dB multiplies the samples by 10^(g/20): decibels of amplitude are 20·log10, of "
                   "power 10·log10. LUFS is a level in dB, so the gain you need is the target minus the measured "
                   "loudness.")
    hint = "measure loudness_lufs(quiet_vocals, sr), take the difference to the target in dB, turn it into an "\
           "amplitude factor and multiply."
    solution = ("gain_db = target_lufs - loudness_lufs(quiet_vocals, sr)\n"
                "my_scaled = quiet_vocals * 10 ** (gain_db / 20)\n\n# in the package:\n" + _source(scale_to_lufs))
    if scaled is None:
        check_close(None, target_lufs, 0.1, what="", hint=hint, solution=solution)
        return
    array = np.asarray(scaled, dtype=np.float64)
    if array.shape != np.shape(original):
        _verdict(scaled, False, f"your estimate has shape {array.shape}, the original {np.shape(original)}.",
                 explanation=explanation, hint=hint, solution=solution)
        return
    gain = float(np.sum(array * original) / max(float(np.sum(np.square(original))), 1e-20))
    off = np.max(np.abs(array - gain * original)) if np.isfinite(array).all() else np.inf
    if off > 1e-4 * max(float(np.max(np.abs(array))), 1e-9):
        _verdict(scaled, False, "your estimate is not a scaled copy of the original: change only its gain.",
                 explanation=explanation, hint=hint, solution=solution)
        return
    check_close(loudness_lufs(array, sample_rate), target_lufs, 0.1, what="loudness of your estimate", unit=" LUFS",
                explanation=explanation, hint=hint, solution=solution)


def check_generalist_stem(answer) -> None:
    """The choice task: which stem goes through the generalist restorer in msr_lib.pipeline?"""
    check_choice(
        answer, GENERALIST_STEM,
        explanation="Each of the 8 named stems has its own expert restorer (a generalist fine-tuned on that stem); "
                    "`other` holds whatever is left — ethnic instruments, sound effects, anything — so no expert "
                    "fits it and the generalist restores it (msr_lib.pipeline).",
        hint="one of the 9 stems is not an instrument class but a grab-bag; look at the rule in "
             "msr_lib/pipeline.py (_restorer_folder_rule).",
        solution=f"my_generalist_stem = {GENERALIST_STEM!r}")


def check_level_metric(answer) -> None:
    """The choice task: which of snr, si_snr, multi_mel_snr changes when an estimate is turned up?"""
    check_choice(
        answer, LEVEL_SENSITIVE_METRIC,
        explanation="SNR compares waveforms sample by sample, so 6 dB too loud is an error; SI-SNR and "
                    "Multi-Mel-SNR first fit the best gain (a projection; the factor α), so level alone changes "
                    "nothing — on the leaderboard, turning your vocals up cannot win.",
        hint="which of the three finds the best gain for the estimate before comparing? (lesson 02; "
             "msr_lib/metrics.py)",
        solution=f"my_level_metric = {LEVEL_SENSITIVE_METRIC!r}")


# ================================================================ the open challenge

#: the challenge songs' seed: not 1000 (training), 2000 (validation), 3000 (test), 4000 (real-recordings dev set)
#: or 5000, so no shipped model has heard them
CHALLENGE_SEED = 6000
#: the built-in sound sources only (no Debian package needed): the same songs on every machine, so a room can
#: share one leaderboard file
CHALLENGE_SOUND_SOURCES = ("timgm6mb", "msr_subtractive", "msr_fm", "msr_voice")
#: song length (s) and song indices of seed CHALLENGE_SEED per preset (any other preset: "laptop"). Picked once
#: as the first songs at that length with vocals in which the vocals do not dominate (the mixture as
#: estimate scores under 3 dB) and the oracle ratio mask gets at least 3 dB above that — room to improve
CHALLENGE_SONGS = {"quick": (4.0, (4, 6)), "laptop": (8.0, (4, 6, 10))}
BASELINE_SEPARATOR = "bundled:8stem"
BASELINE_NAME = f"baseline: {BASELINE_SEPARATOR} unchanged"
LEADERBOARD_ENV = "MSR_LEADERBOARD"
LEADERBOARD_FORMAT = "msr-leaderboard-1"
#: the largest leaderboard file read (a row is ~200 bytes: tens of thousands of submissions)
MAX_LEADERBOARD_BYTES = 16 * 2**20
METRIC = "multi_mel_snr"


@dataclass(frozen=True)
class ChallengeSong:
    """One challenge song: its mastered ``mixture`` (what you separate) and its clean ``stems`` (the truth)."""

    id: str
    index: int
    mixture: np.ndarray
    stems: dict[str, np.ndarray] = field(repr=False)
    sample_rate: int = SAMPLE_RATE


@functools.lru_cache(maxsize=4)
def _render_challenge(seconds: float, indices: tuple[int, ...]) -> tuple[ChallengeSong, ...]:
    from msr_lib.data.synth import render_song, song_id, song_seed
    from msr_lib.degrade import degrade_mix

    songs = []
    for index in indices:
        song = render_song(song_seed(CHALLENGE_SEED, index), seconds, sound_sources=CHALLENGE_SOUND_SOURCES)
        mastered = degrade_mix(song.stems, song.sample_rate,
                               rng=np.random.default_rng([CHALLENGE_SEED, index, 1])).mastered_mix
        for audio in (mastered, *song.stems.values()):
            audio.flags.writeable = False  # shared by every leaderboard of this process
        songs.append(ChallengeSong(song_id(CHALLENGE_SEED, index), index, mastered, dict(song.stems),
                                   song.sample_rate))
    return tuple(songs)


def challenge_sizes(preset=None) -> tuple[float, tuple[int, ...]]:
    """``(seconds, song indices)`` of the challenge for a preset (a name, a Preset or ``None``: ``$MSR_PRESET``)."""
    from msr_lib.presets import Preset, get_preset

    name = preset.name if isinstance(preset, Preset) else get_preset(preset).name
    return CHALLENGE_SONGS.get(name, CHALLENGE_SONGS["laptop"])


def challenge_songs(preset=None, *, seconds: float | None = None, indices=None) -> list[ChallengeSong]:
    """The challenge songs (rendered and mastered once per process): seed :data:`CHALLENGE_SEED`, the built-in
    sound sources, mastered by :func:`msr_lib.degrade.degrade_mix` with a seed of their own."""
    default_seconds, default_indices = challenge_sizes(preset)
    return list(_render_challenge(float(seconds or default_seconds), tuple(int(i) for i in
                                                                            (indices or default_indices))))


def leaderboard_path() -> Path:
    """``$MSR_LEADERBOARD`` when set (a room shares one file), else ``data_dir()/leaderboard.json``."""
    from msr_lib.environment import data_dir

    if os.environ.get(LEADERBOARD_ENV, "").strip():
        return Path(os.environ[LEADERBOARD_ENV].strip()).expanduser()
    return data_dir() / "leaderboard.json"


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock (``path.lock``, ``fcntl`` where there is one) while reading and rewriting ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock, the rewrite is still atomic
            fcntl = None
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        data = read_json_object(path, max_bytes=MAX_LEADERBOARD_BYTES)
        if data.get("format") != LEADERBOARD_FORMAT:
            raise MSRError(f"format {data.get('format')!r}")
        if not isinstance(data.get("rows"), list) or not all(isinstance(row, dict) for row in data["rows"]):
            raise MSRError("rows is not a list of objects")
    except MSRError as exc:
        reason = str(exc).replace(f"cannot read {path}: ", "").replace(f"{path}: ", "")
        raise MSRError(f"{path} is not a leaderboard file ({reason[:80]}): move it away or "
                       f"set ${LEADERBOARD_ENV} to another file") from None
    return data["rows"]


@dataclass(frozen=True)
class Submission:
    """What :meth:`Leaderboard.submit` scored: the mean, per song, the rank among names, the gain on the baseline."""

    name: str
    score: float
    per_song: tuple[float, ...]
    rank: int
    entries: int
    over_baseline: float | None

    def __repr__(self) -> str:
        gain = "" if self.over_baseline is None else f", {self.over_baseline:+.2f} dB over the baseline"
        return f"Submission({self.name!r}: {self.score:.2f} dB, rank {self.rank} of {self.entries}{gain})"


class Leaderboard:
    """Improve one stem's Multi-Mel-SNR on the challenge songs; every submission is a row in one JSON file.

    ``stem``: the stem scored (default vocals); ``path``: the file (default :func:`leaderboard_path`); ``preset``,
    ``seconds``, ``indices``: which challenge songs (default the preset's, :data:`CHALLENGE_SONGS`). Rows carry a
    challenge key (stem, seed, songs, length), so one file can hold several challenges; the table shows this one's.

    - :attr:`mixtures` — the mastered songs to separate, in order; :attr:`references` — the clean stems (the truth:
      for scoring, not for tuning on).
    - :meth:`baseline` — the bundled separator unchanged on every song; submits it once per file.
    - :meth:`submit` ``(name, estimates)`` — ``estimates``: one entry per song, in order — an array of the
      reference's shape, or a ``{stem: array}`` dict as :func:`msr_lib.separate.separate` returns — or a mapping
      ``{song id: entry}``. Bad input (wrong stem, count, shape, NaN) is one line and nothing is written.
    - :meth:`table` — the best row of every name, best first, the baseline marked as the score to beat.
    """

    def __init__(self, stem: str = "vocals", *, path=None, preset=None, seconds: float | None = None, indices=None):
        from msr_lib.stems import canonical_stem

        self.stem = canonical_stem(stem)
        self.path = Path(path).expanduser() if path is not None else leaderboard_path()
        self.songs = challenge_songs(preset, seconds=seconds, indices=indices)
        missing = [song.id for song in self.songs if self.stem not in song.stems]
        if missing:
            raise MSRError(f"the challenge songs {', '.join(missing)} have no {self.stem}: choose another stem or "
                           "songs")
        self.seconds = self.songs[0].mixture.shape[-1] / self.songs[0].sample_rate
        self.sample_rate = self.songs[0].sample_rate
        indices = ",".join(str(song.index) for song in self.songs)
        self.key = f"{self.stem}/seed{CHALLENGE_SEED}/songs{indices}/{self.seconds:g}s/mastered"
        self._scale = None

    # ------------------------------------------------------------ the songs

    @property
    def mixtures(self) -> list[np.ndarray]:
        return [song.mixture for song in self.songs]

    @property
    def references(self) -> list[np.ndarray]:
        return [song.stems[self.stem] for song in self.songs]

    # ------------------------------------------------------------ scoring

    def validate(self, estimates, *, stem: str | None = None) -> list[np.ndarray]:
        """The estimates as one float32 array per song, checked; raises a one-line :class:`MSRError`."""
        if stem is not None and str(stem).strip().lower() != self.stem:
            raise MSRError(f"this leaderboard scores {self.stem}, not {stem}")
        n = len(self.songs)
        ids = [song.id for song in self.songs]
        if isinstance(estimates, dict):
            keys = list(estimates)
            if keys and all(k in STEMS for k in keys):
                raise MSRError(f"got one song's stems ({', '.join(keys)}); pass a list with one entry per challenge "
                               f"song ({n}, in the order of board.mixtures)")
            unknown = [k for k in keys if k not in ids]
            if unknown or len(keys) != n:
                raise MSRError(f"the mapping's keys should be the {n} song ids {', '.join(ids)}; got "
                               f"{', '.join(map(str, keys)) or 'none'}")
            estimates = [estimates[i] for i in ids]
        if isinstance(estimates, np.ndarray) or not isinstance(estimates, (list, tuple)):
            raise MSRError(f"estimates: expected a list with one entry per challenge song ({n}), got "
                           f"{type(estimates).__name__}")
        if len(estimates) != n:
            raise MSRError(f"expected {n} estimates (one per challenge song, in the order of board.mixtures), "
                           f"got {len(estimates)}")
        checked = []
        for number, (song, entry) in enumerate(zip(self.songs, estimates), 1):
            where = f"song {number} ({song.id})"
            if isinstance(entry, dict):
                if self.stem not in entry:
                    raise MSRError(f"{where}: no {self.stem!r} among your estimates "
                                   f"({', '.join(map(str, entry)) or 'none'}): this leaderboard scores {self.stem}")
                entry = entry[self.stem]
            if hasattr(entry, "detach"):
                entry = entry.detach().cpu().numpy()
            try:
                audio = np.asarray(entry, dtype=np.float32)
            except (TypeError, ValueError):
                raise MSRError(f"{where}: expected an audio array, got {type(entry).__name__}") from None
            want = song.stems[self.stem].shape
            if audio.shape != want:
                raise MSRError(f"{where}: estimate of shape {audio.shape}, expected {want} (channels, samples) like "
                               f"the mixture")
            if not np.all(np.isfinite(audio)):
                raise MSRError(f"{where}: the estimate holds NaN or infinite samples "
                               f"({int(np.sum(~np.isfinite(audio)))} of {audio.size})")
            checked.append(audio)
        return checked

    def score(self, estimates, *, stem: str | None = None) -> list[float]:
        """Multi-Mel-SNR (dB) of each song's estimate against the clean stem (validated first)."""
        from msr_lib.metrics import multi_mel_snr

        return [float(multi_mel_snr(audio, reference, self.sample_rate))
                for audio, reference in zip(self.validate(estimates, stem=stem), self.references)]

    def scale(self) -> dict[str, float]:
        """Reference lines (not entries): the mixture as estimate (the floor) and the oracle ideal ratio mask on
        the mastered mix (it knows the answer), mean Multi-Mel-SNR in dB."""
        if self._scale is None:
            from msr_lib.baselines import ideal_ratio_mask

            masks = [ideal_ratio_mask(song.mixture, dict(song.stems))[self.stem] for song in self.songs]
            self._scale = {"mixture": float(np.mean(self.score(self.mixtures))),
                           "irm": float(np.mean(self.score(masks)))}
        return self._scale

    # ------------------------------------------------------------ the file

    def rows(self) -> list[dict]:
        """Every row of this challenge in the file, in the order they were submitted."""
        return [row for row in _read_rows(self.path) if row.get("challenge") == self.key]

    def _append(self, row: dict, *, unless_baseline: bool = False) -> bool:
        """Append ``row`` under the lock, rewriting the file atomically; with ``unless_baseline``, not when the file
        holds a baseline row of this challenge with the same scores (to 0.01 dB: the same separator's weights)."""
        with _locked(self.path):
            rows = _read_rows(self.path)
            if unless_baseline and any(
                    r.get("challenge") == self.key and r.get("baseline")
                    and np.allclose(r["per_song"], row["per_song"], atol=0.01) for r in rows):
                return False
            with atomic_file(self.path) as tmp:
                Path(tmp).write_text(json.dumps({"format": LEADERBOARD_FORMAT, "rows": rows + [row]}, indent=1))
        return True

    def standings(self) -> list[dict]:
        """The best row of every name, best first (ties: the earlier submission first); of the baseline, the latest
        row (a new version of the bundled separator scores anew)."""
        rows = self.rows()
        baselines = [row for row in rows if row.get("baseline")]
        best: dict[str, dict] = {}
        for row in rows:
            if not row.get("baseline") and (row["name"] not in best or row["score"] > best[row["name"]]["score"]):
                best[row["name"]] = row
        return sorted(list(best.values()) + baselines[-1:], key=lambda r: (-r["score"], r["time"]))

    def _baseline_score(self) -> float | None:
        scores = [r["score"] for r in self.rows() if r.get("baseline")]
        return scores[-1] if scores else None

    def table(self) -> str:
        """The standings as text: rank, name, mean and per-song dB, gain over the baseline."""
        standings = self.standings()
        base = self._baseline_score()
        width = max([len(r["name"]) for r in standings] + [20])
        songs = "".join(f"{'song ' + str(s.index):>9}" for s in self.songs)
        lines = [f"{self.stem} · Multi-Mel-SNR in dB, higher is better · {len(self.songs)} challenge songs "
                 f"(seed {CHALLENGE_SEED}, {self.seconds:g} s, mastered) · {self.path}",
                 f"{'rank':>4}  {'name':<{width}}  {'mean':>6}{songs}  {'vs baseline':>11}"]
        for rank, row in enumerate(standings, 1):
            gain = "—" if base is None or row.get("baseline") else f"{row['score'] - base:+.2f}"
            mark = "  ← the score to beat" if row.get("baseline") else ""
            per_song = "".join(f"{v:9.2f}" for v in row["per_song"])
            lines.append(f"{rank:>4}  {row['name']:<{width}}  {row['score']:6.2f}{per_song}  {gain:>11}{mark}")
        if not standings:
            lines.append("      (no entries yet: run board.baseline())")
        scale = self.scale()
        lines.append(f"for scale: the mixture as estimate {scale['mixture']:.2f} dB · the oracle ratio mask "
                     f"{scale['irm']:.2f} dB (it knows the answer)")
        return "\n".join(lines)

    # ------------------------------------------------------------ submitting

    def _submit(self, name, estimates, *, stem=None, baseline=False, quiet=False) -> Submission | None:
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 60 or "\n" in name:
            print("⛔ not scored: name your entry with one line of 1-60 characters, e.g. \"ada: overlap 0.5\"")
            return None
        name = name.strip()
        try:
            per_song = self.score(estimates, stem=stem)
        except MSRError as exc:
            print(f"⛔ not scored: {exc}")
            return None
        if not np.all(np.isfinite(per_song)):  # the file could not be read back (JSON has no NaN)
            print(f"⛔ not scored: a song's score is not a number ({list(per_song)})")
            return None
        row = {"challenge": self.key, "name": name, "score": round(float(np.mean(per_song)), 4),
               "per_song": [round(v, 4) for v in per_song], "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "baseline": bool(baseline)}
        if not baseline and name == BASELINE_NAME:
            print(f"⛔ not scored: {BASELINE_NAME!r} is the baseline's name; choose your own")
            return None
        self._append(row, unless_baseline=baseline)  # a file that has the baseline keeps its one baseline row
        if not quiet:
            print(self.table())
        standings = self.standings()
        rank = next((i for i, r in enumerate(standings, 1) if r["name"] == name), len(standings))
        base = self._baseline_score()
        return Submission(name, row["score"], tuple(row["per_song"]), rank, len(standings),
                          None if base is None or baseline else row["score"] - base)

    def submit(self, name: str, estimates, *, stem: str | None = None, quiet: bool = False) -> Submission | None:
        """Score ``estimates`` (see the class docstring), append a row to the file and print the table (unless
        ``quiet``). Bad input prints one ``⛔ not scored: …`` line, writes nothing and returns ``None``."""
        return self._submit(name, estimates, stem=stem, quiet=quiet)

    def baseline(self, *, quiet: bool = False) -> list[dict[str, np.ndarray]]:
        """Separate every challenge song with the bundled separator, unchanged (its default chunking, overlap
        0.25), and submit the result as the baseline unless the file has it already; returns the separator's stems
        per song (``{stem: array}`` dicts), yours to post-filter."""
        from msr_lib.models import load_separator
        from msr_lib.separate import separate

        separator = load_separator(BASELINE_SEPARATOR)
        estimates = [separate(mixture, separator, progress=False) for mixture in self.mixtures]
        self._submit(BASELINE_NAME, estimates, baseline=True, quiet=quiet)
        return estimates
