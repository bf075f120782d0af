"""The restorer's training pairs: chunks of one stem, ``input`` (what the restorer hears) → ``target`` (clean).

Two sources of pairs, drawn by :class:`RestorationDataset`:

- ``"degraded"`` (cheap, unlimited): the clean stem through a random per-stem production chain and then the master
  bus with its MP3 codec (:mod:`msr_lib.degrade.chains`), drawn anew for every item. Mastering a stem alone is an
  approximation of what a stem suffers inside a mastered mix: the glue compressor and the limiter react to the
  stem's own peaks, not to the whole song's, and nothing of the other stems leaks in.
- ``"separated"``: the separator's estimate of the stem from a mastered mix — what the restorer meets in the
  pipeline. :func:`cache_separated_stems` separates each song once into a cache folder, so GAN training never runs
  the separator; the dataset reads chunks of the cached estimates and of the clean stems at the same positions.

**Level convention.** The target is the clean stem scaled, over the chunk, to the RMS of the input: a restorer
changes the sound, not the loudness. The level was decided before it — by the master bus's loudness target for a
degraded stem, by the separator for a separated one, whose own training targets follow the mixture's level
(:func:`msr_lib.train.curriculum.match_mix_level`). So the restorer can keep its output at the level of its input,
and the metrics (scale-invariant) and the mixing desk (not) agree. A chunk whose clean stem does not play (RMS below
:data:`~msr_lib.audio.ACTIVE_STEM_RMS`) or whose input does not (a separator that lost the stem: the target's level
would be undefined) is drawn again from the item's generator, so every item has a playing target at a defined level.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from msr_lib.audio import ACTIVE_STEM_RMS, SAMPLE_RATE, atomic_output_dir, read_json_object, save_audio
from msr_lib.data.datasets import MultitrackDataset, SongEntry, load_entry, scan_dataset, scan_song_folders
from msr_lib.errors import MSRError
from msr_lib.stems import STEMS, canonical_stem, sort_stems

__all__ = ["SOURCES", "PAIRS_FILE", "RestorationDataset", "cache_separated_stems"]

#: where a :class:`RestorationDataset` takes its inputs from
SOURCES = ("degraded", "separated")
#: the record of one cached song version, next to its estimates
PAIRS_FILE = "pairs.json"
#: draws per item before a stem that never plays (or a separator that never returns it) is reported
MAX_DRAWS = 100


def _song_entries(songs) -> list[SongEntry]:
    """A folder (any layout :func:`~msr_lib.data.datasets.scan_dataset` reads) or a list of song folders."""
    if isinstance(songs, (str, Path)):
        return scan_dataset(songs)
    folders = [Path(folder) for folder in songs]
    if not folders:
        raise MSRError("no song folders given")
    return [entry for folder in folders for entry in scan_song_folders(folder)]


def _song_folder(entry: SongEntry) -> Path:
    """The folder that holds all of a song's stem files."""
    return Path(os.path.commonpath([p.resolve().parent for files in entry.stems.values() for p in files]))


def _version_folder(cache_dir: Path, entry: SongEntry, version: int) -> Path:
    return cache_dir / f"{entry.name}_v{version}"


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def _weights_fingerprint(separator) -> str:
    """SHA-1 of the separator's weights: the same checkpoint, whatever path it was loaded from."""
    import torch

    digest = hashlib.sha1()
    for name, tensor in sorted(separator.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def cache_separated_stems(separator, songs, cache_dir, *, versions: int = 1, seed: int = 0,
                          progress: bool = True) -> Path:
    """Separate mastered versions of ``songs`` once, for ``source="separated"`` pairs; returns ``cache_dir``.

    ``separator`` is a loaded :class:`~msr_lib.models.Separator` or what :func:`~msr_lib.models.load_separator`
    takes. For each song and each version ``k < versions``: the song's clean stems are mastered by
    :func:`msr_lib.degrade.degrade_mix` (as :func:`msr_lib.evaluate.song_mixture` does, seeded by ``(seed, song
    name, k)``), separated by :func:`msr_lib.separate.separate`, and written atomically to
    ``cache_dir/<song>_v<k>/<stem>.flac`` (one file per separator stem) with :data:`PAIRS_FILE`: the song folder,
    seeds, the separator (path, weights' SHA-1, stems) and ``mix_level_gain`` = RMS(mastered) / RMS(clean mix).
    Versions already cached with the same settings are kept (an interrupted run resumes); one cached with other
    settings is refused.
    """
    from tqdm.auto import tqdm

    from msr_lib.evaluate import song_mixture
    from msr_lib.models import load_separator
    from msr_lib.separate import separate

    if isinstance(versions, bool) or not isinstance(versions, int) or versions < 1:
        raise MSRError(f"versions must be a positive integer, got {versions!r}")
    path = str(separator) if isinstance(separator, (str, Path)) else None
    if path is not None:
        separator = load_separator(separator)
    cache_dir = Path(cache_dir)
    clean = MultitrackDataset(_song_entries(songs), stems=STEMS, preload=False, length=1)  # checks every song
    settings = {"seed": int(seed), "separator_weights": _weights_fingerprint(separator),
                "stems": list(separator.stems), "sample_rate": int(separator.sample_rate)}
    rate = separator.sample_rate
    for entry in tqdm(clean.entries, desc="separate songs", unit="song", disable=not progress):
        stems = None
        for k in range(versions):
            folder = _version_folder(cache_dir, entry, k)
            wanted = {"song": str(_song_folder(entry)), "version": k, **settings}
            if (folder / PAIRS_FILE).is_file():
                _check_pairs(folder, wanted)
                continue
            if stems is None:
                stems = load_entry(entry, rate)
            version_seed = int(np.random.SeedSequence([int(seed), zlib.crc32(entry.name.encode()), k])
                               .generate_state(1)[0])
            mastered = song_mixture(stems, mix="mastered", seed=version_seed, sample_rate=rate)
            clean_mix = np.sum(list(stems.values()), axis=0, dtype=np.float32)
            estimates = separate(mastered, separator, progress=False)
            record = {**wanted, "separator": path, "version_seed": version_seed,
                      "mix_level_gain": _rms(mastered) / max(_rms(clean_mix), ACTIVE_STEM_RMS)}
            with atomic_output_dir(folder, exclusive=False) as tmp:  # each DDP rank may fill the cache
                for stem, audio in estimates.items():
                    save_audio(tmp / f"{stem}.flac", audio, rate)
                (tmp / PAIRS_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return cache_dir


def _read_pairs(folder: Path) -> dict:
    record = read_json_object(folder / PAIRS_FILE)
    stems = record.get("stems")
    if not (isinstance(stems, list) and stems and all(isinstance(s, str) for s in stems)):
        raise MSRError(f"{folder / PAIRS_FILE}: stems is not a list of stem names; delete this folder and run "
                       "cache_separated_stems again")
    return record


def _check_pairs(folder: Path, wanted: dict) -> None:
    recorded = _read_pairs(folder)
    changed = sorted(key for key, value in wanted.items() if recorded.get(key) != value)
    if changed:
        raise MSRError(f"{folder}: cached with other settings ({', '.join(changed)}); choose another cache_dir or "
                       "delete this folder")


def _separated_pairs(entries: list[SongEntry], cache_dir: Path, chunk_seconds: float):
    """The clean songs and their cached estimates as two aligned :class:`MultitrackDataset` (song ``i`` of one is
    version folder ``i`` of the other), and the separator's stems."""
    if not cache_dir.is_dir():
        raise MSRError(f"{cache_dir}: no such cache folder; build it with cache_separated_stems(separator, songs, "
                       "cache_dir)")
    clean_entries, estimate_entries, stems = [], [], None
    for entry in entries:
        folders = []
        while (_version_folder(cache_dir, entry, len(folders)) / PAIRS_FILE).is_file():
            folders.append(_version_folder(cache_dir, entry, len(folders)))
        if not folders:
            raise MSRError(f"{cache_dir}: no separated pairs of {entry.name}; run cache_separated_stems(separator, "
                           "songs, cache_dir) first")
        for folder in folders:
            recorded = _read_pairs(folder)
            if recorded.get("song") != str(_song_folder(entry)):
                raise MSRError(f"{folder}: holds pairs of {recorded.get('song')}, not of {_song_folder(entry)}")
            if stems is None:
                stems = tuple(recorded["stems"])
            elif tuple(recorded["stems"]) != stems:
                raise MSRError(f"{cache_dir}: holds pairs of separators with different stems ({', '.join(stems)} "
                               f"and {', '.join(recorded['stems'])}); keep one separator per cache_dir")
            clean_entries.append(entry)
            estimate_entries.append(scan_song_folders(folder)[0])
    options = {"stems": stems, "chunk_seconds": chunk_seconds, "preload": False, "length": 1}
    clean, estimates = MultitrackDataset(clean_entries, **options), MultitrackDataset(estimate_entries, **options)
    if len(clean.entries) != len(clean_entries) or len(estimates.entries) != len(estimate_entries):
        raise MSRError(f"{cache_dir}: every file of a song or of its cached estimates is unreadable (see the "
                       "warnings), so the songs and their estimates no longer pair up")
    if clean.song_samples != estimates.song_samples:
        raise MSRError(f"{cache_dir}: cached estimates differ in length from their songs; delete the cache and run "
                       "cache_separated_stems again")
    return clean, estimates


class RestorationDataset(Dataset):
    """``length`` random training pairs of one stem each (see the module docstring for sources and levels).

    Each item: ``input`` and ``target`` float32 tensors ``(2, S)`` (``(1, S)``, the channels' mean, with
    ``mono=True``), ``S = round(chunk_seconds · 44100)``, and ``stem``, the pair's index in
    :data:`msr_lib.stems.STEMS`. Item ``i`` depends only on ``(seed, i)``: a stem drawn uniformly among ``stems``,
    a song that has it and a start, drawn again until the chunk plays, then (``"degraded"``) the chains.

    ``songs``: a folder (any dataset layout) or a list of song folders; their stems are read lazily in windows by
    :class:`~msr_lib.data.datasets.MultitrackDataset`. ``stems``: which stems' pairs (``None``: every stem some
    song has; for ``"separated"``, the separator's stems, where ``other`` holds what its named stems leave over, as
    :func:`msr_lib.audio.group_stems` groups). ``cache_dir``: the folder of :func:`cache_separated_stems`, for
    ``source="separated"`` only; every song must be cached there, and all its cached versions are drawn from.
    Unreadable audio files are skipped as :class:`~msr_lib.data.datasets.MultitrackDataset` skips them (a chunk
    that reads as silence is drawn again); :attr:`skipped_files` counts them.
    """

    def __init__(self, songs, *, stems: Sequence[str] | None = None, source: str = "degraded",
                 chunk_seconds: float = 2.0, length: int = 1000, seed: int = 0, cache_dir=None, mono: bool = False):
        if source not in SOURCES:
            raise MSRError(f"unknown source {source!r}; choose {' or '.join(SOURCES)}")
        if source == "separated" and cache_dir is None:
            raise MSRError("source='separated' reads its pairs from cache_dir (built by cache_separated_stems)")
        if source == "degraded" and cache_dir is not None:
            raise MSRError("cache_dir holds separated pairs: it goes with source='separated'")
        if not (isinstance(chunk_seconds, (int, float)) and chunk_seconds > 0):
            raise MSRError(f"chunk_seconds must be a positive number, got {chunk_seconds!r}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise MSRError(f"length must be a positive integer, got {length!r}")
        self.source, self.length, self.seed, self.mono = source, length, int(seed), bool(mono)
        self.samples = max(1, round(chunk_seconds * SAMPLE_RATE))
        entries = _song_entries(songs)
        if source == "degraded":
            self.clean, self.estimates = MultitrackDataset(entries, stems=STEMS, chunk_seconds=chunk_seconds,
                                                           preload=False, length=1), None
        else:
            self.clean, self.estimates = _separated_pairs(entries, Path(cache_dir), chunk_seconds)
        available = [s for t, s in enumerate(self.clean.stems) if self.clean.songs_with[t]]
        requested = available if stems is None else [canonical_stem(str(s)) for s in stems]
        if not requested:
            raise MSRError("stems is empty; name at least one stem or pass None for all")
        missing = sorted(set(requested) - set(available))
        if missing:
            where = "no song has" if source == "degraded" else "the cached separator gives no"
            raise MSRError(f"{where} {', '.join(missing)} stem (available: {', '.join(available)})")
        #: the stems whose pairs are drawn, in canonical order
        self.stems: tuple[str, ...] = tuple(sort_stems(set(requested)))

    def __len__(self) -> int:
        return self.length

    @property
    def skipped_files(self) -> int:
        """Unreadable audio files skipped (clean stems and cached estimates; see
        :attr:`MultitrackDataset.skipped_files`)."""
        return self.clean.skipped_files + (self.estimates.skipped_files if self.estimates is not None else 0)

    def _degrade(self, clean: np.ndarray, stem: str, rng: np.random.Generator) -> np.ndarray:
        from msr_lib.degrade import apply_master_chain, apply_stem_chain, sample_master_chain, sample_stem_chain

        processed = apply_stem_chain(clean, SAMPLE_RATE, sample_stem_chain(rng, stem))
        return apply_master_chain(processed, SAMPLE_RATE, sample_master_chain(rng, codec=True)).audio

    def _channels(self, audio: np.ndarray) -> np.ndarray:
        return audio.mean(axis=0, keepdims=True) if self.mono else audio

    def __getitem__(self, index: int) -> dict:
        import torch

        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, int(index)])
        stem = self.stems[int(rng.integers(len(self.stems)))]
        t = self.clean.stems.index(stem)
        songs = self.clean.songs_with[t]
        for _ in range(MAX_DRAWS):
            song, start = songs[int(rng.integers(len(songs)))], float(rng.random())
            clean = self.clean.read_chunk(song, t, start, self.samples)
            target = self._channels(clean)
            if _rms(target) < ACTIVE_STEM_RMS:
                continue
            if self.estimates is None:
                source = self._channels(self._degrade(clean, stem, rng))
            else:
                source = self._channels(self.estimates.read_chunk(song, t, start, self.samples))
            if _rms(source) >= ACTIVE_STEM_RMS:
                break
        else:
            raise MSRError(f"item {index}: no chunk where {stem} plays in input and target in {MAX_DRAWS} draws "
                           f"(songs with {stem}: {', '.join(self.clean.entries[s].name for s in songs[:3])}"
                           f"{', …' if len(songs) > 3 else ''})")
        target = target * np.float32(_rms(source) / _rms(target))
        return {"input": torch.from_numpy(np.ascontiguousarray(source, dtype=np.float32)),
                "target": torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)),
                "stem": STEMS.index(stem)}
