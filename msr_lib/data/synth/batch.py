"""Many songs on disk: ``<out>/<song_id>/<stem>.flac``, ``clean_mix.flac`` and ``song.json``, rendered in parallel.

Each song folder is written atomically, so an interrupted run never leaves a half-written song behind.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from msr_lib.audio import atomic_output_dir, read_json_object, save_audio
from msr_lib.data.synth.song import check_request, prepare_sound_sources, render_song
from msr_lib.data.synth.sounds import source_pool
from msr_lib.errors import MSRError

#: The clean mix of a rendered song (the exact sum of its stems), named as :func:`msr_lib.audio.song_files` reads it.
CLEAN_MIX_FILE = "clean_mix.flac"


def song_seed(seed: int, index: int) -> int:
    """The seed of song ``index`` of a run with base ``seed`` (independent streams per song)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint32)[0])


def song_id(seed: int, index: int) -> str:
    return f"song_{index:05d}_s{seed}"


def song_source(source: str, index: int) -> str:
    """``mixed`` alternates procedural (even indices) and corpus (odd indices) songs."""
    if source == "mixed":
        return "corpus" if index % 2 else "procedural"
    return source


def write_song(out_dir, seed: int, index: int, seconds: float, source: str, soundfont: str | None,
               sound_sources: tuple[str, ...] | None) -> Path:
    """Render song ``index`` and write its folder atomically; returns the folder."""
    folder = Path(out_dir) / song_id(seed, index)
    song = render_song(song_seed(seed, index), seconds, source=song_source(source, index), soundfont=soundfont,
                       sound_sources=sound_sources)
    info = {"song_id": folder.name, "index": index, "base_seed": int(seed), **song.info}
    with atomic_output_dir(folder) as tmp:
        for stem, audio in song.stems.items():
            save_audio(tmp / f"{stem}.flac", audio, song.sample_rate)
        save_audio(tmp / CLEAN_MIX_FILE, song.clean_mix, song.sample_rate)
        (tmp / "song.json").write_text(json.dumps(info, indent=1))
    return folder


def _already_written(out_dir: Path, seed: int, index: int, seconds: float, source: str, pool: list[str],
                     pinned: str | None) -> Path | None:
    """The song's folder if a previous run already wrote it with the same request (folders are atomic): same
    length, note source, sound-source pool and pinned SoundFont. A folder of an older layout (``mix.flac``, no
    :data:`CLEAN_MIX_FILE`; no sound-source pool in ``song.json``: one GM set for every stem) does not count: it
    is rendered again, and so is one whose ``song.json`` :func:`~msr_lib.audio.read_json_object` refuses."""
    folder = out_dir / song_id(seed, index)
    if not (folder / CLEAN_MIX_FILE).is_file():
        return None
    try:
        info = read_json_object(folder / "song.json")
    except MSRError:
        return None
    same = (info.get("seconds") == float(seconds) and info.get("source") == song_source(source, index)
            and info.get("sound_source_pool") == pool and info.get("pinned_soundfont") == pinned)
    return folder if same else None


def _check_out_dir(out_dir: Path) -> None:
    for parent in [out_dir, *out_dir.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise MSRError(f"{parent}: exists and is not a folder")
            if not os.access(parent, os.W_OK):
                raise MSRError(f"{parent}: folder is not writable")
            return


def synthesize_songs(out_dir, *, songs: int, seconds: float, seed: int, source: str = "procedural", soundfont=None,
                     sound_sources=None, workers: int | None = None, progress: bool = True,
                     skip_existing: bool = False) -> list[Path]:
    """Render ``songs`` songs of ``seconds`` seconds into ``out_dir/<song_id>/`` and return their folders.

    ``sound_sources`` / ``soundfont`` as in :func:`~msr_lib.data.synth.song.render_song` (``None``: every
    available source); a missing source fails in one line before any folder is made.
    ``workers`` processes render in parallel (default: CPU count; 1 renders in this process).
    ``skip_existing`` keeps song folders a previous run already wrote for the same seed, length and source (so an
    interrupted run can be resumed, and a lesson re-run does not render again); folders in an older layout are
    rendered again.
    """
    if not isinstance(songs, (int, np.integer)) or songs < 1:
        raise MSRError(f"songs must be at least 1, got {songs!r}")
    check_request(seconds, source)
    if workers is not None and workers < 1:
        raise MSRError(f"workers must be at least 1, got {workers!r}")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    pinned, allowed = prepare_sound_sources(soundfont, sound_sources)   # fails here, before any folder is made
    if source != "procedural":
        from msr_lib.data.synth.corpus import piece_paths

        if not piece_paths("chorale"):
            raise MSRError("source 'corpus' needs the music21 corpus, which is not installed")
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = min(workers or os.cpu_count() or 1, songs)
    from tqdm.auto import tqdm

    bar = tqdm(total=songs, desc="synth songs", unit="song", disable=not progress)
    font = str(pinned) if pinned is not None else None
    pool = source_pool(allowed)              # the workers draw from this same pool
    done = ({i: _already_written(out_dir, seed, i, seconds, source, pool, font) for i in range(songs)}
            if skip_existing else {})
    done = {i: path for i, path in done.items() if path is not None}
    bar.update(len(done))
    args = [(out_dir, seed, i, float(seconds), source, font, tuple(pool)) for i in range(songs) if i not in done]
    workers = max(1, min(workers, len(args)))
    try:
        if workers == 1:
            paths = []
            for a in args:
                paths.append(write_song(*a))
                bar.update()
            return sorted(paths + list(done.values()))
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(write_song, *a) for a in args]
            paths = []
            for f in futures:
                paths.append(f.result())
                bar.update()
            return sorted(paths + list(done.values()))
    finally:
        bar.close()
