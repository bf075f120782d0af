"""Multitrack datasets: the folder layouts users already have, and a PyTorch training dataset over them.

Scanners turn a folder into a list of :class:`SongEntry` (files per canonical stem, summed on load):

==============  =====================================================================================================
layout          what is read (all audio extensions of :data:`msr_lib.audio.AUDIO_EXTENSIONS`)
==============  =====================================================================================================
``songs``       ``<root>/<song>/<stem>.<ext>`` — ``msr synth`` output (``<stem>.flac``, ``clean_mix.flac``,
                ``song.json``) and any folder of named stems, read by :func:`msr_lib.audio.song_files` (its mix-name
                policy; aliases such as ``piano`` → keyboards); unknown names fold into ``other`` (listed in
                ``extra["unmapped"]``).
``musdb18hq``   ``<root>/{train,test}/<song>/{mixture,vocals,bass,drums,other}.wav`` (``mixture`` is the released,
                mastered song).
``moisesdb``    ``<root>[/<provider>]/<uuid>/data.json`` with one folder per MoisesDB stem, each holding track files
                that are summed; mapped by :data:`MOISESDB_STEMS`, refined per track by :data:`MOISESDB_TRACK_TYPES`
                (``trackType`` in ``data.json``).
``msrbench``    ``<root>/<Stem>/target/<i>.flac`` (clean target) and degraded mixtures ``<i>_DT<k>.flac`` found in
                ``<Stem>/mixture/`` (also ``mixtures/``, ``mix/``, ``degraded/``), next to the targets, or directly in
                ``<Stem>/``. One entry per clip; ``extra["mixtures"]`` maps ``DT<k>`` → file.
``rawstems``    ``<root>/<song>/<Group>/<Sub>/*.flac`` (e.g. ``Voc/LV``), ``<song>/<Group_Sub>/*.wav`` or
                ``<song>/<Group_Sub>_*.flac``; mapped by :func:`msr_lib.stems.rawstems_group_to_stem`, tracks of one
                canonical stem summed.
==============  =====================================================================================================

:func:`scan_dataset` detects the layout; :func:`load_entry` loads a song as ``{stem: (2, samples)}``.
Untrusted trees: every scanner skips, with a warning naming it, an audio file that resolves outside the scanned
folder (a symlinked file or song folder pointing out of the tree), and drops a song left without stems; dangling
links and symlink loops are not files and are never listed. ``song.json`` and ``data.json`` are read by
:func:`msr_lib.audio.read_json_object` (at most :data:`~msr_lib.audio.MAX_JSON_BYTES`, a JSON object without NaN;
else one :class:`~msr_lib.errors.MSRError` line naming the file).
Every layout names its mixes as :func:`msr_lib.audio.song_files` does: :attr:`SongEntry.clean_mix` is the exact sum
of the stems, :attr:`SongEntry.mastered_mix` a finished song (another dataset's ``mixture``, MSRBench's degraded
mixtures).
:class:`MultitrackDataset` draws random training chunks (remixing, gains, optional degradation); see its docstring.

Lesson: notebooks/01_data_and_mastering.ipynb
"""
from __future__ import annotations

import json
import math
import multiprocessing
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import soundfile as sf

from torch.utils.data import Dataset

from msr_lib.audio import (
    ACTIVE_STEM_RMS, AUDIO_EXTENSIONS, SAMPLE_RATE, atomic_output_dir, fit_length, load_audio, load_stem_files,
    mix_kind, read_json_object, resample, save_audio, song_files, to_stereo, unreadable,
)
from msr_lib.errors import AudioError, MSRError
from msr_lib.stems import (
    RAWSTEMS_PREFIXES, STEMS, canonical_stem, known_stem, rawstems_group_to_stem, sort_stems,
)

__all__ = [
    "SongEntry", "LAYOUTS", "MOISESDB_STEMS", "MOISESDB_TRACK_TYPES",
    "scan_song_folders", "scan_musdb18hq", "scan_moisesdb", "scan_msrbench", "scan_rawstems",
    "detect_layout", "scan_dataset", "load_entry",
    "MultitrackDataset", "make_dataloader", "seed_worker",
]


@dataclass(kw_only=True)
class SongEntry:
    """One song (or clip) of a dataset: the files to sum for each canonical stem, and its mixes if the layout has
    them."""

    name: str
    #: canonical stem → files summed to make that stem (canonical order)
    stems: dict[str, list[Path]]
    #: the exact sum of the clean stems (``msr synth``'s ``clean_mix.flac``)
    clean_mix: Path | None = None
    #: a finished song made from the stems: another dataset's mixture, ``msr degrade`` output, an MSRBench mixture
    mastered_mix: Path | None = None
    #: layout-specific facts: metadata, alternative mixtures, original group names…
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- mappings

#: MoisesDB stem folders (``stemName``) → canonical stems. Decisions: piano and other_keys are keyboards;
#: bowed strings and wind are orchestral; other_plucked (banjo, mandolin, ukulele, harp) is ``other``, as MSR
#: challenge participants did, because the ``guitars`` class means guitars.
MOISESDB_STEMS: dict[str, str] = {
    "vocals": "vocals", "bass": "bass", "drums": "drums", "guitar": "guitars",
    "piano": "keyboards", "other_keys": "keyboards", "percussion": "percussion",
    "bowed_strings": "orchestral", "wind": "orchestral", "other_plucked": "other", "other": "other",
}
#: MoisesDB track types (``trackType`` in ``data.json``) that override their folder's mapping:
#: synth pads and leads live under ``other_keys`` but are synthesizers.
MOISESDB_TRACK_TYPES: dict[str, str] = {"synth_pad": "synthesizers", "synth_lead": "synthesizers"}

_MSRBENCH_TARGET_DIRS = ("target", "targets", "clean")
#: ``song.json``'s generator of the real-recordings development set: never a training song
DEVELOPMENT_SET_GENERATOR = "msr_lib.data.loop_songs"
_MSRBENCH_MIXTURE_DIRS = ("mixture", "mixtures", "mix", "degraded")
_DEGRADED_NAME = re.compile(r"^(?P<clip>.+?)_DT(?P<k>\d+)$")
#: a training set with more unreadable audio files than this share of its files is refused (fewer are skipped)
MAX_UNREADABLE_SHARE = 0.1


# ---------------------------------------------------------------- small helpers

def _audio_files(folder: Path) -> list[Path]:
    """Audio files directly in ``folder`` (sorted, hidden files skipped)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_root(root) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise MSRError(f"{root}: no such folder")
    if not root.is_dir():
        raise MSRError(f"{root}: is not a folder")
    return root


def _no_songs(root: Path, layout: str, expected: str) -> MSRError:
    return MSRError(f"{root}: no songs found in the {layout} layout (expected {expected})")


def _ordered(stems: dict[str, list[Path]]) -> dict[str, list[Path]]:
    return {s: sorted(stems[s]) for s in sort_stems(stems)}


def _mixes(files: list[Path]) -> dict[str, Path]:
    """``{"clean_mix" | "mastered_mix": file}`` among a song's top-level files, named as
    :func:`msr_lib.audio.song_files` names them (the first file of a kind wins)."""
    mixes: dict[str, Path] = {}
    for path in files:
        kind = mix_kind(path.stem)
        if kind is not None:
            mixes.setdefault(kind, path)
    return mixes


def _song_meta(path: Path) -> dict:
    """A song folder's ``song.json`` (:func:`read_json_object`); of its fields the library reads ``generator``,
    which must be a string."""
    meta = read_json_object(path)
    if not isinstance(meta.get("generator", ""), str):
        raise MSRError(f"{path}: generator must be a string, got {type(meta['generator']).__name__}")
    return meta


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves into the (resolved) folder ``root``; a warning names it when it does not."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # a vanished file, a symlink loop
        warnings.warn(f"{path}: skipped, cannot resolve it ({type(exc).__name__})", stacklevel=4)
        return False
    if target == root or root in target.parents:
        return True
    warnings.warn(f"{path}: skipped, it links to {target}, outside the dataset folder {root}", stacklevel=4)
    return False


def _inside_root(entries: list[SongEntry], root: Path) -> list[SongEntry]:
    """``entries`` without the files that resolve outside ``root`` (symlinks out of the tree; one warning per file),
    and without the entries that have no stem file left."""
    root = root.resolve()
    verdicts: dict[Path, bool] = {}

    def inside(path: Path) -> bool:
        if path not in verdicts:
            verdicts[path] = _inside(path, root)
        return verdicts[path]

    kept = []
    for entry in entries:
        stems = {s: [p for p in files if inside(p)] for s, files in entry.stems.items()}
        entry.stems = {s: files for s, files in stems.items() if files}
        if not entry.stems:
            continue
        if "mixtures" in entry.extra:
            entry.extra["mixtures"] = {k: p for k, p in entry.extra["mixtures"].items() if inside(p)}
        if entry.clean_mix is not None and not inside(entry.clean_mix):
            entry.clean_mix = None
        if entry.mastered_mix is not None and not inside(entry.mastered_mix):
            entry.mastered_mix = next(iter(entry.extra.get("mixtures", {}).values()), None)
        kept.append(entry)
    return kept


# ---------------------------------------------------------------- scanners

def _song_folder_entry(folder: Path) -> SongEntry | None:
    files = song_files(folder, unknown="other")
    if not files.stems:
        return None
    extra: dict = {}
    if files.unknown:
        extra["unmapped"] = [p.name for p in files.unknown]
    meta = folder / "song.json"
    if meta.is_file():
        extra["meta"] = _song_meta(meta)
    return SongEntry(name=folder.name, stems={s: list(paths) for s, paths in files.stems.items()},
                     clean_mix=files.clean_mix, mastered_mix=files.mastered_mix, extra=extra)


def scan_song_folders(root) -> list[SongEntry]:
    """Songs in ``<root>/<song>/<stem>.<ext>`` folders (``msr synth`` output and the generic layout), each read by
    :func:`msr_lib.audio.song_files` with unknown names folded into ``other`` (listed in ``extra["unmapped"]``).

    ``song.json`` is parsed into ``extra["meta"]`` (checked: :func:`read_json_object`, and ``generator`` — the one
    field the library reads — a string). Several files for one stem (``guitar.wav`` + ``guitars.flac``) are summed
    on load. A root that itself holds stem files is read as one song. Files resolving outside ``root`` are skipped
    with a warning (module docstring).
    """
    root = _check_root(root)
    entries = [e for e in map(_song_folder_entry, _subfolders(root)) if e is not None]
    if not entries:
        single = _song_folder_entry(root)
        entries = [single] if single is not None else []
    entries = _inside_root(entries, root)
    if not entries:
        raise _no_songs(root, "song-folder", "<song>/<stem>.<ext> files such as vocals.flac")
    return entries


def scan_musdb18hq(root, split: str = "train") -> list[SongEntry]:
    """MUSDB18-HQ: ``<root>/<split>/<song>/{mixture,vocals,bass,drums,other}.wav``.

    ``split`` is ``"train"``, ``"test"`` or ``"all"``; a root that is itself a split folder is accepted.
    ``extra["split"]`` records the split.
    """
    root = _check_root(root)
    splits = {"train": ("train",), "test": ("test",), "all": ("train", "test")}
    if split not in splits:
        raise MSRError(f"unknown MUSDB18-HQ split {split!r}; choose train, test or all")
    folders = [(name, root / name) for name in splits[split] if (root / name).is_dir()]
    if not folders and not any((root / s).is_dir() for s in ("train", "test")):
        folders = [(root.name, root)]  # the root is a split folder itself
    entries = []
    for split_name, folder in folders:
        for song in _subfolders(folder):
            entry = _song_folder_entry(song)
            if entry is not None:
                entry.extra["split"] = split_name
                entries.append(entry)
    entries = _inside_root(entries, root)
    if not entries:
        raise _no_songs(root, f"MUSDB18-HQ ({split})", "train|test/<song>/{mixture,vocals,bass,drums,other}.wav")
    return entries


def _moisesdb_track_types(meta: dict) -> dict[tuple[str, str], str]:
    """``(stemName, track id)`` → ``trackType`` from a MoisesDB ``data.json``."""
    types = {}
    for stem in meta.get("stems", []) or []:
        if not isinstance(stem, dict):
            continue
        for track in stem.get("tracks", []) or []:
            if isinstance(track, dict) and "id" in track:
                types[(str(stem.get("stemName", "")), str(track["id"]))] = str(track.get("trackType", ""))
    return types


def _moisesdb_entry(folder: Path) -> SongEntry | None:
    meta = read_json_object(folder / "data.json")
    track_types = _moisesdb_track_types(meta)
    stems: dict[str, list[Path]] = {}
    tracks: dict[str, list[str]] = {}
    for stem_folder in _subfolders(folder):
        folder_stem = MOISESDB_STEMS.get(stem_folder.name.lower()) or canonical_stem(stem_folder.name, strict=False)
        for path in _audio_files(stem_folder):
            track_type = track_types.get((stem_folder.name, path.stem), "")
            stem = MOISESDB_TRACK_TYPES.get(track_type, folder_stem)
            stems.setdefault(stem, []).append(path)
            tracks.setdefault(stem, []).append(f"{stem_folder.name}/{track_type or path.stem}")
    if not stems:
        return None
    extra = {k: meta[k] for k in ("song", "artist", "genre", "id") if k in meta}
    extra["tracks"] = tracks
    mixes = _mixes(_audio_files(folder))
    return SongEntry(name=folder.name, stems=_ordered(stems), clean_mix=mixes.get("clean_mix"),
                     mastered_mix=mixes.get("mastered_mix"), extra=extra)


def _find_files(root: Path, name: str, max_depth: int) -> list[Path]:
    found, level = [], [root]
    for _ in range(max_depth + 1):
        found += [d / name for d in level if (d / name).is_file()]
        level = [s for d in level for s in _subfolders(d)]
    return sorted(found)


def scan_moisesdb(root) -> list[SongEntry]:
    """MoisesDB: every ``data.json`` up to two levels below ``root`` (``<provider>/<uuid>/``) marks a song.

    Each sub-folder is a MoisesDB stem whose track files are summed into the canonical stem given by
    :data:`MOISESDB_STEMS`, except track types listed in :data:`MOISESDB_TRACK_TYPES`. ``extra`` carries
    ``song``, ``artist``, ``genre`` from ``data.json`` and ``tracks`` (canonical stem → ``folder/trackType``).
    """
    root = _check_root(root)
    entries = [e for e in (_moisesdb_entry(p.parent) for p in _find_files(root, "data.json", 2)) if e is not None]
    entries = _inside_root(entries, root)
    if not entries:
        raise _no_songs(root, "MoisesDB", "<uuid>/data.json with one sub-folder of tracks per stem")
    return entries


def _msrbench_stem_entries(stem_folder: Path, label: str) -> list[SongEntry]:
    target_dir = next((stem_folder / d for d in _MSRBENCH_TARGET_DIRS if (stem_folder / d).is_dir()), None)
    if target_dir is None:
        return []
    stem = known_stem(label) or "other"
    # Degraded mixtures may sit in a mixture folder, next to the targets, or in the stem folder itself.
    mixture_files = [p for d in _MSRBENCH_MIXTURE_DIRS if (stem_folder / d).is_dir() for p in _audio_files(stem_folder / d)]
    mixture_files += _audio_files(target_dir) + _audio_files(stem_folder)
    mixtures: dict[str, dict[str, Path]] = {}
    for path in mixture_files:
        match = _DEGRADED_NAME.match(path.stem)
        if match:
            mixtures.setdefault(match["clip"], {}).setdefault(f"DT{int(match['k'])}", path)
        elif path.parent.name.lower() in _MSRBENCH_MIXTURE_DIRS:  # an undegraded-name mixture: <i>.flac
            mixtures.setdefault(path.stem, {}).setdefault("mix", path)
    targets = [p for p in _audio_files(target_dir) if not _DEGRADED_NAME.match(p.stem)]

    def clip_order(path: Path):
        return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)

    entries = []
    for target in sorted(targets, key=clip_order):
        found = mixtures.get(target.stem, {})
        ordered = dict(sorted(found.items(), key=lambda kv: (kv[0] == "mix", int(kv[0][2:]) if kv[0] != "mix" else 0)))
        entries.append(SongEntry(
            name=f"{label}/{target.stem}", stems={stem: [target]}, mastered_mix=next(iter(ordered.values()), None),
            extra={"stem_folder": label, "clip": target.stem, "mixtures": ordered},
        ))
    return entries


def scan_msrbench(root) -> list[SongEntry]:
    """MSRBench: one entry per clip ``<root>/<Stem>/target/<i>.flac`` with its degraded mixtures.

    Mixtures named ``<i>_DT<k>.<ext>`` are looked for in ``<Stem>/mixture/`` (or ``mixtures``, ``mix``,
    ``degraded``), next to the targets and in ``<Stem>/``; :attr:`SongEntry.mastered_mix` is the lowest ``DT<k>``
    and ``extra["mixtures"]`` lists them all. Stem folders are named like ``Vocals``/``Bass`` (or RawStems prefixes);
    a root that is itself a stem folder (has ``target/``) is accepted.
    """
    root = _check_root(root)
    if any((root / d).is_dir() for d in _MSRBENCH_TARGET_DIRS):
        entries = _msrbench_stem_entries(root, root.name)
    else:
        entries = [e for folder in _subfolders(root) for e in _msrbench_stem_entries(folder, folder.name)]
    entries = _inside_root(entries, root)
    if not entries:
        raise _no_songs(root, "MSRBench", "<Stem>/target/<i>.flac with mixtures <i>_DT<k>.flac")
    return entries


def _rawstems_key(song: Path, path: Path) -> str:
    """``Voc/LV/take.flac`` → ``Voc_LV_take``: folder names and file name joined, for prefix mapping."""
    return "_".join(path.relative_to(song).with_suffix("").parts)


def _rawstems_entry(song: Path) -> SongEntry | None:
    stems: dict[str, list[Path]] = {}
    groups: dict[str, set[str]] = {}
    mixes = _mixes(_audio_files(song))
    for path in sorted(song.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in AUDIO_EXTENSIONS or path.name.startswith("."):
            continue
        if path in mixes.values():
            continue
        key = _rawstems_key(song, path)
        stem = rawstems_group_to_stem(key)
        stems.setdefault(stem, []).append(path)
        parts = key.split("_")
        groups.setdefault(stem, set()).add("_".join(parts[:2]) if len(parts) > 1 else parts[0])
    if not stems:
        return None
    extra = {"groups": {s: sorted(g) for s, g in groups.items()}}
    return SongEntry(name=song.name, stems=_ordered(stems), clean_mix=mixes.get("clean_mix"),
                     mastered_mix=mixes.get("mastered_mix"), extra=extra)


def scan_rawstems(root) -> list[SongEntry]:
    """RawStems: ``<root>/<song>/`` holding group folders (``Voc/LV/*.flac``, ``Rhy_DK/*.wav``) or prefixed files.

    Every audio file's folder path and name are joined (``Voc/LV/take`` → ``Voc_LV_take``) and mapped with
    :func:`msr_lib.stems.rawstems_group_to_stem` (``Misc``, bare ``Rhy`` and unknown groups → ``other``);
    files of one canonical stem are summed. ``extra["groups"]`` lists the ``Group_Sub`` names per stem.
    """
    root = _check_root(root)
    entries = [e for e in map(_rawstems_entry, _subfolders(root)) if e is not None]
    entries = _inside_root(entries, root)
    if not entries:
        raise _no_songs(root, "RawStems", "<song>/<Group>/<Sub>/*.flac such as Voc/LV/*.flac")
    return entries


#: Layout name → scanner. ``synth`` is the song-folder layout ``msr synth`` writes.
LAYOUTS: dict[str, Callable[..., list[SongEntry]]] = {
    "songs": scan_song_folders, "synth": scan_song_folders,
    "musdb18hq": scan_musdb18hq, "moisesdb": scan_moisesdb, "msrbench": scan_msrbench, "rawstems": scan_rawstems,
}


def _looks_rawstems(song: Path) -> bool:
    names = [p.name for p in _subfolders(song)] + [p.stem for p in _audio_files(song) if "_" in p.stem]
    return any(name.split("_")[0] in RAWSTEMS_PREFIXES for name in names)


def detect_layout(root) -> str:
    """Guess which layout ``root`` is in: ``msrbench``, ``musdb18hq``, ``moisesdb``, ``rawstems`` or ``songs``."""
    root = _check_root(root)
    children = _subfolders(root)
    if any((d / t).is_dir() for d in [root, *children] for t in _MSRBENCH_TARGET_DIRS):
        return "msrbench"
    for split in ("train", "test"):
        if (root / split).is_dir() and any((s / "mixture.wav").is_file() for s in _subfolders(root / split)):
            return "musdb18hq"
    if _find_files(root, "data.json", 2):
        return "moisesdb"
    if any(_looks_rawstems(song) for song in children):
        return "rawstems"
    if any(_song_folder_entry(song) for song in children) or _audio_files(root):
        return "songs"
    raise MSRError(f"{root}: no songs found in any known layout (song folders, MUSDB18-HQ, MoisesDB, MSRBench, RawStems)")


def scan_dataset(root, layout: str = "auto", **options) -> list[SongEntry]:
    """Scan ``root`` in the given layout (a :data:`LAYOUTS` name) or, with ``"auto"``, the detected one.

    ``options`` go to the scanner (e.g. ``split="test"`` for MUSDB18-HQ).
    """
    name = layout.strip().lower().replace("-", "").replace("_", "")
    name = {"musdb": "musdb18hq", "musdb18": "musdb18hq", "folders": "songs"}.get(name, name)
    if name == "auto":
        name = detect_layout(root)
    if name not in LAYOUTS:
        raise MSRError(f"unknown dataset layout {layout!r}; choose auto, {', '.join(LAYOUTS)}")
    return LAYOUTS[name](root, **options)


def load_entry(entry: SongEntry, sample_rate: int = SAMPLE_RATE, *, stems: Iterable[str] | None = None
               ) -> dict[str, np.ndarray]:
    """Load a song as ``{stem: float32 (2, samples)}`` in canonical order: files of a stem summed, every stem
    zero-padded at the end to the longest. ``stems`` restricts which stems are loaded."""
    wanted = set(entry.stems) if stems is None else {canonical_stem(s) for s in stems} & set(entry.stems)
    return load_stem_files({stem: entry.stems[stem] for stem in sort_stems(wanted)}, sample_rate)


# ---------------------------------------------------------------- training dataset

@dataclass
class _FileWindow:
    """A file read lazily in windows: its path, length and rate."""

    path: Path
    frames: int
    sample_rate: int


def _file_window(path: Path) -> _FileWindow:
    """``path`` as a :class:`_FileWindow` (its header read), or one :class:`AudioError` line."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for bad files
        raise unreadable(path, exc) from None
    if info.frames <= 0:
        raise AudioError(f"{path}: contains no samples")
    return _FileWindow(Path(path), int(info.frames), int(info.samplerate))


class MultitrackDataset(Dataset):
    """Random training chunks from multitrack songs, for separation and restoration training.

    Each item is a dict of float32 tensors:

    - ``targets`` ``(S, 2, T)``: the clean stems in the order of ``stems`` (after the random gains);
    - ``clean_mix`` ``(2, T)``: their sum;
    - ``mixture`` ``(2, T)``: the model's input, ``clean_mix`` when ``degrade`` is ``None``, otherwise the mastered
      mix;
    - ``active`` ``(S,)`` bool: False where a stem is absent from the chunk or its RMS there is below
      :data:`~msr_lib.audio.ACTIVE_STEM_RMS` (not playing) — the mask for losses that skip silent targets.

    How an item is drawn (all randomness from a generator seeded by ``(seed, epoch, index)`` only, so results
    do not depend on worker count or order; call :meth:`set_epoch` to get new chunks each epoch):

    1. a random song and a random chunk start;
    2. for each requested stem, with probability ``remix_prob``, the chunk is taken instead from a random song
       that has that stem, at its own random start (cross-song remixing);
    3. each stem is scaled by a random gain drawn uniformly in ``gain_db``;
    4. ``degrade=True`` masters the stems with :func:`msr_lib.degrade.degrade_mix`; a callable
       ``degrade(stems: dict[str, ndarray], sample_rate, rng) -> ndarray (2, T)`` is used as is. Either gets only
       the stems present in the chunk (absent ones would be zeros) and its own seeded generator. Mastering
       normalises loudness, so the degraded ``mixture`` is not on the scale of ``targets``: that mismatch is part
       of the restoration task; a model that needs matching scales can compare against ``clean_mix``.

    Stems a song has but that are not requested fold into ``other`` when ``other`` is requested (with
    :data:`~msr_lib.stems.FOUR_STEMS`, guitars + keyboards + … become ``other``); when ``other`` is not requested
    they are dropped from the mixture too, so the mixture is always the sum of the targets before degradation.

    ``entries`` is a list of :class:`SongEntry` or a folder (scanned with :func:`scan_dataset`). With
    ``preload=True`` every song is loaded once into memory (small sets); otherwise chunk windows are read from
    disk with soundfile (resampled per window when a file's rate differs).

    ``chunk_seconds`` is one length or a schedule ``[(first step, seconds), …]`` (e.g. short chunks early, longer
    later): item ``i`` belongs to step ``i // items_per_step``, as :class:`~msr_lib.train.loop.StepBatches` numbers
    items (``items_per_step`` = batch size × processes), so a batch has one length and a resumed run sees the same
    lengths. On the 2-core CPU of this project a second of audio cost less CPU time in shorter chunks (one thread,
    bundled size, batch 4: 1 s chunks 0.46 CPU-s per audio second, 2 s 0.52, 4 s 0.76;
    benchmarks/bench_training_throughput.py).

    **Pre-rendered mastered mixes** (``mastered_cache``, with ``degrade``): each song is mastered whole
    ``mastered_versions`` times, once, into ``<mastered_cache>/<song>/mastered_<k>.flac`` (version k: one gain per
    stem drawn in ``gain_db`` and one ``degrade`` generator, both seeded by ``(seed, song name, k)``; the gains are
    recorded in ``mastered.json`` next to them), and an item is a chunk of one song and one version at one start:
    ``mixture`` is read from the cached file, ``targets`` are that song's stems times that version's gains. Mastering
    on the fly cost about 0.12 CPU-s per 2-s item (one thread: 4.21 against 3.73 CPU-s per ``lora-mastered`` step of
    4 items; benchmarks/bench_training_throughput.py); reading the cache costs a window read. **Trade-off:** no cross-song remixing (``remix_prob`` does not apply:
    a cached mix holds one song's stems) and the stem gains take ``mastered_versions`` values per song instead of a
    new draw per item; the mastering sees the whole song (as a real mastering does) rather than one chunk. A cache
    folder rendered with other settings (stems, rate, gains, seed, versions, degrade function) is refused.

    **Unreadable files** (a truncated or corrupt file, text named ``.wav``, NaN samples, a file deleted after the
    scan) are skipped, not fatal: one warning names each, :attr:`unreadable_files` maps them to the reason and
    :attr:`skipped_files` counts them (for the training log). Found when the dataset is built, the file is left out
    (a song left without files is dropped); found while reading a chunk, the file reads as silence from then on
    (that stem is absent from the item; items of readable songs do not change). More than
    :data:`MAX_UNREADABLE_SHARE` of the files unreadable raises one :class:`~msr_lib.errors.MSRError` line.
    """

    def __init__(self, entries: Sequence[SongEntry] | str | Path, *, stems: Sequence[str] = STEMS,
                 chunk_seconds: float | Sequence[tuple[int, float]] = 3.0, items_per_step: int | None = None,
                 sample_rate: int = SAMPLE_RATE, length: int = 1000, seed: int = 0,
                 remix_prob: float = 0.5, gain_db: tuple[float, float] = (-6.0, 3.0),
                 degrade: bool | Callable | None = None, preload: bool = True, mastered_cache: str | Path | None = None,
                 mastered_versions: int = 4):
        if isinstance(entries, (str, Path)):
            entries = scan_dataset(entries)
        self.stems: tuple[str, ...] = tuple(canonical_stem(s) for s in stems)
        if not self.stems or len(set(self.stems)) != len(self.stems):
            raise MSRError(f"stems must be distinct canonical names, got {list(stems)}")
        schedule = _chunk_schedule(chunk_seconds)
        if len(schedule) > 1 and not items_per_step:
            raise MSRError("a chunk_seconds schedule needs items_per_step (batch size × processes): an item's step is "
                           "its index // items_per_step")
        if length <= 0 or sample_rate <= 0:
            raise MSRError("length and sample_rate must be positive")
        if not 0.0 <= remix_prob <= 1.0:
            raise MSRError(f"remix_prob must be in [0, 1], got {remix_prob}")
        if degrade is not None and degrade is not True and degrade is not False and not callable(degrade):
            raise MSRError("degrade must be None, True or a callable(stems, sample_rate, rng) -> mixture")
        if mastered_cache is not None and degrade in (None, False):
            raise MSRError("mastered_cache holds mastered mixes: it needs degrade=True or a degrade callable")
        if mastered_versions < 1:
            raise MSRError(f"mastered_versions must be at least 1, got {mastered_versions}")
        self.sample_rate = int(sample_rate)
        #: (first step, chunk samples) pairs: items of steps from ``first step`` on are that long
        self.chunk_schedule = [(step, max(1, int(round(seconds * sample_rate)))) for step, seconds in schedule]
        self.items_per_step = int(items_per_step or 1)
        self.length = int(length)
        self.seed = int(seed)
        self.epoch = 0
        self.remix_prob = float(remix_prob)
        self.gain_db = (float(gain_db[0]), float(gain_db[1]))
        self.degrade = degrade if degrade is not False else None
        self.preload = bool(preload)

        # where each canonical stem goes: an index into self.stems, or None (dropped)
        other = self.stems.index("other") if "other" in self.stems else None
        self.routing = {s: (self.stems.index(s) if s in self.stems else other) for s in STEMS}

        self.entries: list[SongEntry] = []
        self._sources: list[dict[int, object]] = []  # per song: target index → array (preload) or file windows
        self.song_samples: list[int] = []  # per song: its length in samples
        #: the unreadable audio files this process met → the one-line reason; they are skipped (class docstring)
        self.unreadable_files: dict[Path, str] = {}
        self._skipped = multiprocessing.Value("q", 0)  # shared with DataLoader workers: see skipped_files
        self._file_count = 0
        for entry in entries:
            if entry.extra.get("meta", {}).get("generator") == DEVELOPMENT_SET_GENERATOR:
                raise MSRError(f"{entry.name}: a song of the real-recordings development set, kept apart from "
                               "training (msr_lib.data.loop_songs)")
            routed = self._route(entry)
            if not routed:
                continue
            self._file_count += sum(len(files) for files in routed.values())
            sources, song_length = self._open_sources(routed)
            if not sources:
                continue
            self.entries.append(entry)
            self._sources.append(sources)
            self.song_samples.append(song_length)
        self._check_unreadable()
        if not self.entries:
            raise MSRError(f"no song has any of the requested stems ({', '.join(self.stems)})")
        #: per target index: the songs that have it
        self.songs_with = [[i for i, src in enumerate(self._sources) if t in src] for t in range(len(self.stems))]
        #: per song, per cached version: (mastered mix source, stem gains (S,)); None without a cache
        self._mastered: list[list[tuple[object, np.ndarray]]] | None = None
        if mastered_cache is not None:
            self._mastered = [self._cached_masters(song, Path(mastered_cache), int(mastered_versions))
                              for song in range(len(self.entries))]

    # -- setup
    def _route(self, entry: SongEntry) -> dict[int, list[Path]]:
        routed: dict[int, list[Path]] = {}
        for stem, files in entry.stems.items():
            target = self.routing.get(canonical_stem(stem, strict=False))
            if target is not None and files:
                routed.setdefault(target, []).extend(files)
        return routed

    def _open_sources(self, routed: dict[int, list[Path]]) -> tuple[dict[int, object], int]:
        """Per target: its readable files summed into one array (``preload``) or as file windows; and the song's
        length in samples. Unreadable files are skipped (:meth:`_skip`); a target without a readable file is left
        out."""
        parts: dict[int, list] = {}
        song_length = 0
        for t, files in routed.items():
            for path in map(Path, files):
                try:
                    if self.preload:
                        part = load_audio(path, self.sample_rate)
                        length = part.shape[1]
                    else:
                        part = _file_window(path)
                        length = int(part.frames * self.sample_rate // part.sample_rate)
                except AudioError as exc:
                    self._skip(path, exc)
                    continue
                parts.setdefault(t, []).append(part)
                song_length = max(song_length, length)
        if self.preload:
            return {t: np.sum([fit_length(a, song_length) for a in arrays], axis=0, dtype=np.float32)
                    for t, arrays in parts.items()}, song_length
        return parts, song_length

    @property
    def skipped_files(self) -> int:
        """How many unreadable audio files were skipped: each file found unreadable when the dataset was built,
        plus each one a chunk read failed on since (counted once per process that met it, DataLoader workers
        included)."""
        return int(self._skipped.value)

    def _skip(self, path: Path, exc: AudioError) -> None:
        """Leave the unreadable file ``path`` out from now on: its reason kept, counted, and one warning."""
        self.unreadable_files[path] = str(exc)
        with self._skipped.get_lock():
            self._skipped.value += 1
        warnings.warn(f"{exc}; skipped, training goes on without this file", stacklevel=3)

    def _check_unreadable(self) -> None:
        """One :class:`MSRError` line when more than :data:`MAX_UNREADABLE_SHARE` of the files are unreadable."""
        bad = len(self.unreadable_files)
        if bad and bad > MAX_UNREADABLE_SHARE * self._file_count:
            raise MSRError(f"{bad} of the {self._file_count} audio files of this dataset are unreadable (more than "
                           f"{MAX_UNREADABLE_SHARE:.0%}), e.g. {next(iter(self.unreadable_files.values()))}")

    # -- epoch and randomness
    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch: items depend on ``(seed, epoch, index)``. (Persistent DataLoader workers keep their
        own copy of the dataset; :func:`make_dataloader` does not use them, so this reaches every worker.)"""
        self.epoch = int(epoch)

    def item_rng(self, index: int) -> np.random.Generator:
        """The generator behind item ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __len__(self) -> int:
        return self.length

    # -- reading chunks
    def _read_window(self, window: _FileWindow, start: int, count: int) -> np.ndarray:
        """``count`` samples of a file from sample ``start`` (at the dataset's rate); silence past its end, and
        for a file that cannot be read (skipped: :meth:`_skip`)."""
        ratio = window.sample_rate / self.sample_rate
        file_start = int(start * ratio)
        if file_start >= window.frames or window.path in self.unreadable_files:
            return np.zeros((2, count), dtype=np.float32)
        file_count = int(math.ceil(count * ratio)) + (0 if window.sample_rate == self.sample_rate else 32)
        try:
            try:
                data, _ = sf.read(str(window.path), start=file_start, frames=file_count, dtype="float32",
                                  always_2d=True)
            except Exception as exc:  # a file deleted or damaged since the dataset was built
                raise unreadable(window.path, exc) from None
            audio = resample(to_stereo(data.T), window.sample_rate, self.sample_rate)
            if not np.all(np.isfinite(audio)):
                raise AudioError(f"{window.path}: contains NaN or infinite samples")
        except AudioError as exc:
            self._skip(window.path, exc)
            self._check_unreadable()
            return np.zeros((2, count), dtype=np.float32)
        return fit_length(np.asarray(audio, dtype=np.float32), count)

    def chunk_samples(self, index: int) -> int:
        """The length of item ``index``: the schedule's at step ``index // items_per_step``."""
        step = index // self.items_per_step
        return next(samples for first, samples in reversed(self.chunk_schedule) if first <= step)

    def _read(self, source, song: int, start_fraction: float, count: int) -> np.ndarray:
        """The chunk of ``source`` (an array, or file windows summed) starting at ``start_fraction`` of the song."""
        start = int(start_fraction * max(0, self.song_samples[song] - count))
        if isinstance(source, np.ndarray):
            return fit_length(source[:, start:start + count], count)
        return np.sum([self._read_window(w, start, count) for w in source], axis=0, dtype=np.float32)

    def read_chunk(self, song: int, target: int, start_fraction: float, count: int) -> np.ndarray | None:
        """``count`` samples of target ``target`` of song ``song`` from ``start_fraction`` of the song, ``None`` when
        the song does not have that target (the reader restoration pairs share)."""
        source = self._sources[song].get(target)
        return None if source is None else self._read(source, song, start_fraction, count)

    def _degrade(self, stems: dict[str, np.ndarray], rng: np.random.Generator, length: int) -> np.ndarray:
        if self.degrade is True:
            from msr_lib.degrade import degrade_mix  # the mastering simulator loads only when it is used

            mixture = degrade_mix(stems, self.sample_rate, rng=rng).mastered_mix
        else:
            mixture = self.degrade(stems, self.sample_rate, rng)
        mixture = to_stereo(np.asarray(mixture, dtype=np.float32))
        if not np.all(np.isfinite(mixture)):
            raise AudioError("degraded mixture contains NaN or infinite samples")
        return fit_length(mixture, length)

    # -- pre-rendered mastered mixes
    def _cache_settings(self, versions: int) -> dict:
        degrade = "degrade_mix" if self.degrade is True else getattr(self.degrade, "__qualname__", repr(self.degrade))
        return {"stems": list(self.stems), "sample_rate": self.sample_rate, "gain_db": list(self.gain_db),
                "seed": self.seed, "versions": versions, "degrade": degrade}

    def _whole_stem(self, song: int, target: int) -> np.ndarray:
        source, length = self._sources[song][target], self.song_samples[song]
        if isinstance(source, np.ndarray):
            return source
        return np.sum([fit_length(load_audio(w.path, self.sample_rate), length) for w in source], axis=0,
                      dtype=np.float32)

    def _cached_masters(self, song: int, cache: Path, versions: int) -> list[tuple[object, np.ndarray]]:
        """The song's cached mastered versions (rendered first when the folder is missing)."""
        name = self.entries[song].name
        folder = cache / name
        settings = self._cache_settings(versions)
        if not (folder / "mastered.json").is_file():
            stems = {t: self._whole_stem(song, t) for t in sorted(self._sources[song])}
            low, high = self.gain_db
            gains_db = []
            with atomic_output_dir(folder, exclusive=False) as tmp:  # each DDP rank may fill the cache
                for k in range(versions):
                    rng = np.random.default_rng([self.seed, zlib.crc32(name.encode()), k])
                    gains = rng.uniform(low, high, size=len(self.stems))
                    gained = {self.stems[t]: audio * np.float32(10.0 ** (gains[t] / 20.0))
                              for t, audio in stems.items()}
                    save_audio(tmp / f"mastered_{k}.flac", self._degrade(gained, rng, self.song_samples[song]),
                               self.sample_rate)
                    gains_db.append([float(g) for g in gains])
                (tmp / "mastered.json").write_text(json.dumps({**settings, "gains_db": gains_db}, indent=1) + "\n")
        recorded = read_json_object(folder / "mastered.json")
        changed = sorted(k for k, v in settings.items() if recorded.get(k) != v)
        if changed:
            raise MSRError(f"{folder}: mastered with other settings ({', '.join(changed)}); choose another "
                           "mastered_cache folder or delete this one")
        gains_db = recorded.get("gains_db")
        if not (isinstance(gains_db, list) and len(gains_db) == versions and all(
                isinstance(g, list) and len(g) == len(self.stems) and all(isinstance(x, (int, float)) for x in g)
                for g in gains_db)):
            raise MSRError(f"{folder / 'mastered.json'}: gains_db is not {versions} lists of {len(self.stems)} "
                           "gains; delete this folder to render it again")
        out = []
        for k, gains in enumerate(recorded["gains_db"]):
            path = folder / f"mastered_{k}.flac"
            if self.preload:
                source = fit_length(load_audio(path, self.sample_rate), self.song_samples[song])
            else:
                source = [_file_window(path)]
            out.append((source, (10.0 ** (np.asarray(gains, dtype=np.float64) / 20.0)).astype(np.float32)))
        return out

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self._mastered is not None:
            return self._cached_item(index)
        rng = self.item_rng(index)
        n_songs, n_stems = len(self.entries), len(self.stems)
        base_song = int(rng.integers(n_songs))
        base_start = float(rng.random())
        draws = rng.random((n_stems, 4))  # per stem: remix?, which song, chunk start, gain — drawn in a fixed order
        low, high = self.gain_db

        count = self.chunk_samples(index)
        targets = np.zeros((n_stems, 2, count), dtype=np.float32)
        active = np.zeros(n_stems, dtype=bool)
        present = np.zeros(n_stems, dtype=bool)
        for t in range(n_stems):
            remix, song_pick, start, gain = draws[t]
            song, start_fraction = base_song, base_start
            candidates = self.songs_with[t]
            if remix < self.remix_prob and candidates:
                song, start_fraction = candidates[int(song_pick * len(candidates))], float(start)
            chunk = self.read_chunk(song, t, start_fraction, count)
            if chunk is None:
                continue
            present[t] = True
            targets[t] = chunk * np.float32(10.0 ** ((low + gain * (high - low)) / 20.0))
            active[t] = float(np.sqrt(np.mean(np.square(targets[t])))) >= ACTIVE_STEM_RMS

        clean_mix = targets.sum(axis=0)
        if self.degrade is None:
            mixture = clean_mix
        else:
            degrade_rng = np.random.default_rng([self.seed, self.epoch, int(index), 1])
            mixture = self._degrade({s: targets[i] for i, s in enumerate(self.stems) if present[i]}, degrade_rng,
                                    count)
        return _item(mixture, targets, active, clean_mix)

    def _cached_item(self, index: int) -> dict:
        """An item from the pre-rendered mastered mixes: one song, one cached version, one start."""
        rng = self.item_rng(index)
        song = int(rng.integers(len(self.entries)))
        source, gains = self._mastered[song][int(rng.integers(len(self._mastered[song])))]
        start_fraction = float(rng.random())
        count = self.chunk_samples(index)
        targets = np.zeros((len(self.stems), 2, count), dtype=np.float32)
        active = np.zeros(len(self.stems), dtype=bool)
        for t in range(len(self.stems)):
            chunk = self.read_chunk(song, t, start_fraction, count)
            if chunk is not None:
                targets[t] = chunk * gains[t]
                active[t] = float(np.sqrt(np.mean(np.square(targets[t])))) >= ACTIVE_STEM_RMS
        return _item(self._read(source, song, start_fraction, count), targets, active, targets.sum(axis=0))


def _chunk_schedule(chunk_seconds) -> list[tuple[int, float]]:
    """``chunk_seconds`` as ``[(first step, seconds), …]``: one length from step 0, or a checked schedule."""
    if isinstance(chunk_seconds, (int, float)):
        schedule = [(0, float(chunk_seconds))]
    else:
        try:
            schedule = [(int(step), float(seconds)) for step, seconds in chunk_seconds]
        except (TypeError, ValueError):
            raise MSRError(f"chunk_seconds must be seconds or [(first step, seconds), …], got {chunk_seconds!r}"
                           ) from None
    steps = [step for step, _ in schedule]
    if not schedule or steps[0] != 0 or steps != sorted(set(steps)):
        raise MSRError(f"a chunk_seconds schedule starts at step 0 and its steps increase, got {chunk_seconds!r}")
    if any(not seconds > 0 for _, seconds in schedule):
        raise MSRError(f"chunk_seconds must be positive, got {chunk_seconds!r}")
    return schedule


def _item(mixture: np.ndarray, targets: np.ndarray, active: np.ndarray, clean_mix: np.ndarray) -> dict:
    import torch

    return {
        "mixture": torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32)),
        "targets": torch.from_numpy(targets),
        "active": torch.from_numpy(active),
        "clean_mix": torch.from_numpy(np.ascontiguousarray(clean_mix)),
    }


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy's and Python's global generators from torch's per-worker seed
    (for third-party code that uses them; the dataset itself never does) and use one thread per worker."""
    import random

    import torch

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)


def make_dataloader(dataset, batch_size: int, num_workers: int = 0, *, shuffle: bool = False,
                    drop_last: bool = False, pin_memory: bool = False, **options):
    """A DataLoader over ``dataset`` with :func:`seed_worker`; batches are ``mixture (B, 2, T)``,
    ``targets (B, S, 2, T)``, ``active (B, S)``, ``clean_mix (B, 2, T)``.

    Items are random already, so ``shuffle`` defaults to False (the batches then depend only on seed and epoch).
    Workers are not persistent so :meth:`MultitrackDataset.set_epoch` reaches them.
    """
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=shuffle,
                      drop_last=drop_last, pin_memory=pin_memory, worker_init_fn=seed_worker,
                      persistent_workers=False, **options)
