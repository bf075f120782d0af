"""Degrade a whole song: every stem through its own chain, the sum through the master bus, and a record of it all.

Lesson: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msr_lib.audio import (
    SAMPLE_RATE, atomic_output_dir, check_audio, check_output_dir, load_song_stems, save_audio, to_stereo,
)
from msr_lib.degrade.effects import measure_loudness_lufs, true_peak_db
from msr_lib.degrade.chains import apply_master_chain, apply_stem_chain, sample_master_chain, sample_stem_chain
from msr_lib.errors import AudioError, MSRError
from msr_lib.stems import canonical_stem, sort_stems

RECORD_VERSION = 2  # 2: the mixes are named premaster_mix / mastered_mix (1: mix / mixture)
MASTERED_MIX_FILE = "mastered_mix.flac"  # 24-bit PCM FLAC: the mastered mix never exceeds −1 dBTP, so nothing clips
RECORD_FILE = "degradation.json"
OUTPUT_FILES = (MASTERED_MIX_FILE, RECORD_FILE)  # what a degrade_song_folder output holds


@dataclass(kw_only=True)
class DegradeResult:
    """``mastered_mix``: the finished song; ``processed_stems``: each stem after its own chain (they sum to the
    premaster mix that enters the master bus); ``record``: JSON-able account of every draw and measurement."""
    mastered_mix: np.ndarray
    processed_stems: dict[str, np.ndarray]
    record: dict


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def measure_levels(audio: np.ndarray, sample_rate: int, *, lufs: float | None = None,
                   true_peak: float | None = None) -> dict:
    """``{"lufs", "true_peak_dbtp"}``: BS.1770 loudness (:func:`~msr_lib.degrade.effects.measure_loudness_lufs`,
    equal to :func:`msr_lib.audio.loudness_lufs`; ``None`` for silence) and 4× true peak
    (:func:`~msr_lib.degrade.effects.true_peak_db`, equal to :func:`msr_lib.audio.true_peak_dbtp`). Pass ``lufs``
    or ``true_peak`` (dBTP) when they were already measured on this very audio, and they are not measured again."""
    if lufs is None:
        lufs = measure_loudness_lufs(audio, sample_rate)
    if true_peak is None:
        true_peak = true_peak_db(audio, sample_rate)
    return {"lufs": _finite_or_none(lufs), "true_peak_dbtp": _finite_or_none(true_peak)}


def _check_stems(stems: dict, sample_rate: int) -> dict[str, np.ndarray]:
    if not isinstance(stems, dict) or not stems:
        raise MSRError("degrade_mix needs a non-empty dict of stems {name: (channels, samples) array}")
    if sample_rate <= 0:
        raise AudioError(f"sample rate must be positive, got {sample_rate}")
    checked = {}
    for name, audio in stems.items():
        stem = canonical_stem(str(name))
        if stem in checked:
            raise MSRError(f"two stems map to {stem!r} (check the stem names)")
        checked[stem] = np.ascontiguousarray(to_stereo(check_audio(audio, stem)), dtype=np.float32)
    lengths = {a.shape[1] for a in checked.values()}
    if len(lengths) > 1:
        raise AudioError(f"stems differ in length ({', '.join(f'{s}: {a.shape[1]}' for s, a in checked.items())})")
    return {s: checked[s] for s in sort_stems(checked)}


def degrade_mix(stems: dict[str, np.ndarray], sample_rate: int = SAMPLE_RATE, *, seed: int | None = None,
                rng: np.random.Generator | None = None, target_lufs: float = -14.0, codec: bool = True,
                measure_stem_levels: bool = False) -> DegradeResult:
    """Mix and master clean stems into a finished song, drawing every parameter from one seeded generator.

    Pass ``seed`` (recorded) or your own ``rng``, not both. Stems are processed in canonical order, so dict order
    does not matter; mono stems are duplicated to stereo; all stems must have one length. The record holds each
    stem's chain, the master chain and what it applied, and levels (LUFS, dBTP) of the premaster mix (the sum of
    the processed stems) and of the mastered mix — per stem too with ``measure_stem_levels=True`` (≈ 16 ms per stem
    per 6 s, so off by default for on-the-fly training data). Same seed and stems → bit-identical output.
    """
    if seed is not None and rng is not None:
        raise MSRError("pass either seed= or rng=, not both")
    rng = rng if rng is not None else np.random.default_rng(seed)
    stems = _check_stems(stems, sample_rate)
    chains = {name: sample_stem_chain(rng, name) for name in stems}
    master = sample_master_chain(rng, target_lufs=target_lufs, codec=codec)
    processed = {name: apply_stem_chain(audio, sample_rate, chains[name]) for name, audio in stems.items()}
    if measure_stem_levels:
        for name in stems:
            chains[name]["levels"] = {"before": measure_levels(stems[name], sample_rate),
                                      "after": measure_levels(processed[name], sample_rate)}
    premaster_mix = np.sum(list(processed.values()), axis=0, dtype=np.float32)
    mastered = apply_master_chain(premaster_mix, sample_rate, master)
    measured = mastered.measured
    record = {
        "version": RECORD_VERSION,
        "seed": seed,
        "sample_rate": int(sample_rate),
        "samples": int(premaster_mix.shape[1]),
        "target_lufs": float(target_lufs),
        "codec": bool(codec),
        "stems": chains,
        "master": {**master, "applied": mastered.applied},
        "levels": {"premaster_mix": measure_levels(premaster_mix, sample_rate, lufs=measured["premaster_mix_lufs"]),
                   "mastered_mix": measure_levels(mastered.audio, sample_rate, lufs=measured["mastered_mix_lufs"],
                                                  true_peak=measured["mastered_mix_true_peak_db"])},
    }
    return DegradeResult(mastered_mix=mastered.audio, processed_stems=processed, record=record)


def degrade_song_folder(song_dir, out_dir, *, seed: int = 0, target_lufs: float = -14.0, codec: bool = True) -> Path:
    """Degrade the stems of ``song_dir`` (a song folder, read by :func:`msr_lib.audio.song_files`) into ``out_dir``,
    written atomically: ``mastered_mix.flac`` (24-bit FLAC, 44.1 kHz stereo) and ``degradation.json`` (the record +
    seed + source folder + ``mastered_mix_file``, stem levels included). Bad input raises
    :class:`~msr_lib.errors.MSRError` and leaves no output; an existing ``out_dir`` is replaced only if it holds
    nothing but those two files (:data:`OUTPUT_FILES`)."""
    song_dir, out_dir = Path(song_dir), Path(out_dir)
    check_output_dir(out_dir, OUTPUT_FILES)  # before the work
    stems = load_song_stems(song_dir)
    result = degrade_mix(stems, SAMPLE_RATE, seed=seed, target_lufs=target_lufs, codec=codec, measure_stem_levels=True)
    record = {"source": str(song_dir.resolve()), "mastered_mix_file": MASTERED_MIX_FILE, **result.record}
    with atomic_output_dir(out_dir, replaces=OUTPUT_FILES) as tmp:
        save_audio(tmp / MASTERED_MIX_FILE, result.mastered_mix, SAMPLE_RATE)
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out_dir
