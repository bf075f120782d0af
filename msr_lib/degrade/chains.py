"""Random production chains: draw parameters from a seeded generator (``sample_*``), apply them (``apply_*``).

A chain is a plain dict (JSON-able), so the record of a degraded song can be replayed exactly.

**Per-stem chain** — ranges and probabilities follow the MSR paper's released degradation code (MSRKit,
arXiv 2505.21827): each effect runs with probability 0.5, in this order:

==============  =============================================================================================
effect          parameters
==============  =============================================================================================
equalize        parametric (1–5 bands: peak 100–8000 Hz, low shelf 50–1000 Hz, high shelf 1–10 kHz, high-pass
                20–2000 Hz, low-pass 200–8000 Hz; gain ±6 dB, Q 0.5–3) or a 16-band graphic EQ (±6 dB each)
band_limit      resample to 8–32 kHz and back
compress        threshold −20…0 dB (re. the stem's peak), ratio 1.5–10, attack 1–10 ms, release 50–200 ms
saturate        drive 0–5 dB
add_reverb      room size 0.1–1, damping 0.1–1, wet 0.1–0.5, width 0.1–1
==============  =============================================================================================

Our choices where the paper's code says nothing or differs: frequencies are drawn log-uniformly (the paper draws
them uniformly in Hz); the paper's band-pass/band-stop filters of random families are left out; graphic bands
use Q = 2; each stem is peak-normalised before its chain and brought back to its input RMS after it (as the
paper's code does), then a mixing fader of −6…+2 dB is applied (ours: the paper keeps stem levels).

**Master bus** — after the CP-JKU mastering chain (arXiv 2603.04032, code ``torch_mastering.py``): high-pass
(CP-JKU: 25 Hz linear phase; ours: 20–30 Hz zero-phase Butterworth), glue compression (threshold −24…−12 dB,
ratio 2–6, attack 5–20 ms, release 50–200 ms; CP-JKU applies it with p = 0.1, we use p = 0.5), loudness
normalisation to the target (default −14 LUFS), true-peak limiting to −1 dBTP (1 ms look-ahead; release
50–200 ms, from the MSR paper's limiter range), then MP3 at VBR quality 1–9 (the MSR paper's range). The mix
is brought to the target loudness before the glue compressor, so its threshold means the same on every song.

Lesson: notebooks/01_data_and_mastering.ipynb
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msr_lib.audio import SILENT_PEAK, check_audio
from msr_lib.degrade.effects import (
    MAX_LOUDNESS_GAIN_DB, TruePeakLimiter, apply_effect, compress, db_to_gain, gain_to_target_db, high_pass,
    loudness_gain_db, measure_loudness_lufs, mp3_codec, true_peak_db,
)
from msr_lib.errors import MSRError
from msr_lib.stems import canonical_stem

STEM_EFFECT_PROBABILITY = 0.5
GRAPHIC_EQ_HZ = (25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 16000, 20000)
PARAMETRIC_EQ_HZ = {  # band kind → (low, high) frequency range in Hz
    "peak": (100.0, 8000.0), "low_shelf": (50.0, 1000.0), "high_shelf": (1000.0, 10000.0),
    "high_pass": (20.0, 2000.0), "low_pass": (200.0, 8000.0),
}
STEM_FADER_DB = (-6.0, 2.0)
MASTER_GLUE_PROBABILITY = 0.5
CEILING_DBTP = -1.0
LIMITER_PASSES = 5
#: the loudness targets a master may have (LUFS): quieter has no meaning for a finished song, louder cannot stay
#: under the ceiling
TARGET_LUFS_RANGE = (-60.0, 0.0)


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _sample_eq(rng: np.random.Generator) -> tuple[str, list[dict]]:
    if rng.random() < 0.5:
        gains = rng.uniform(-6.0, 6.0, len(GRAPHIC_EQ_HZ))
        bands = [{"kind": "low_shelf" if i == 0 else "high_shelf" if i == len(GRAPHIC_EQ_HZ) - 1 else "peak",
                  "freq_hz": float(f), "gain_db": float(g), "q": 0.707 if i in (0, len(GRAPHIC_EQ_HZ) - 1) else 2.0}
                 for i, (f, g) in enumerate(zip(GRAPHIC_EQ_HZ, gains))]
        return "graphic", bands
    bands = []
    for _ in range(int(rng.integers(1, 6))):
        kind = str(rng.choice(list(PARAMETRIC_EQ_HZ)))
        band = {"kind": kind, "freq_hz": _log_uniform(rng, *PARAMETRIC_EQ_HZ[kind]), "q": _uniform(rng, 0.5, 3.0)}
        gain = _uniform(rng, -6.0, 6.0)
        if kind not in ("high_pass", "low_pass"):
            band["gain_db"] = gain
        bands.append(band)
    return "parametric", bands


def sample_stem_chain(rng: np.random.Generator, stem: str) -> dict:
    """Draw one stem's production chain: ``{"stem", "effects": [{"effect", "params", …}], "fader_db"}``.

    Only the effects that run are listed, in processing order; see the module docstring for the ranges.
    """
    stem = canonical_stem(stem)
    p = STEM_EFFECT_PROBABILITY
    effects = []
    if rng.random() < p:
        style, bands = _sample_eq(rng)
        effects.append({"effect": "equalize", "style": style, "params": {"bands": bands}})
    if rng.random() < p:
        effects.append({"effect": "band_limit", "params": {"rate": int(rng.integers(8000, 32001))}})
    if rng.random() < p:
        effects.append({"effect": "compress", "params": {
            "threshold_db": _uniform(rng, -20.0, 0.0), "ratio": _uniform(rng, 1.5, 10.0),
            "attack_ms": _uniform(rng, 1.0, 10.0), "release_ms": _uniform(rng, 50.0, 200.0)}})
    if rng.random() < p:
        effects.append({"effect": "saturate", "params": {"drive_db": _uniform(rng, 0.0, 5.0)}})
    if rng.random() < p:
        effects.append({"effect": "add_reverb", "params": {
            "room_size": _uniform(rng, 0.1, 1.0), "damping": _uniform(rng, 0.1, 1.0),
            "wet": _uniform(rng, 0.1, 0.5), "width": _uniform(rng, 0.1, 1.0)}})
    return {"stem": stem, "effects": effects, "fader_db": _uniform(rng, *STEM_FADER_DB)}


def _rms(audio: np.ndarray) -> float:
    flat = audio.ravel()
    return math.sqrt(float(np.dot(flat, flat)) / max(flat.size, 1))  # float32 dot: no float64 copy


def apply_stem_chain(audio, sample_rate: int, params: dict) -> np.ndarray:
    """Run a stem chain from :func:`sample_stem_chain` (or a record) on ``(channels, samples)`` audio.

    The stem is peak-normalised before the effects (so thresholds and drive are relative to its peak), brought
    back to its input RMS after them, then scaled by the fader. A silent stem (peak at or below
    :data:`~msr_lib.audio.SILENT_PEAK`) is returned unchanged.
    """
    audio = np.ascontiguousarray(check_audio(audio, params.get("stem", "stem")), dtype=np.float32)
    peak = float(np.max(np.abs(audio)))
    if peak <= SILENT_PEAK:
        return audio.copy()
    out = audio / np.float32(peak)
    for step in params["effects"]:
        out = apply_effect(out, sample_rate, step["effect"], step["params"])
    out_rms = _rms(out)
    if out_rms > 0:
        out *= np.float32(_rms(audio) / out_rms)
    out *= np.float32(db_to_gain(params.get("fader_db", 0.0)))
    return out


def sample_master_chain(rng: np.random.Generator, *, target_lufs: float = -14.0, codec: bool = True) -> dict:
    """Draw the master-bus chain: high-pass, optional glue compressor, loudness target (:data:`TARGET_LUFS_RANGE`),
    limiter, optional MP3."""
    low, high = TARGET_LUFS_RANGE
    if not low <= target_lufs <= high:  # NaN fails too
        raise MSRError(f"target_lufs must be between {low:g} and {high:g} LUFS, got {target_lufs!r}")
    glue = None
    if rng.random() < MASTER_GLUE_PROBABILITY:
        glue = {"threshold_db": _uniform(rng, -24.0, -12.0), "ratio": _uniform(rng, 2.0, 6.0),
                "attack_ms": _uniform(rng, 5.0, 20.0), "release_ms": _uniform(rng, 50.0, 200.0)}
    return {
        "high_pass_hz": _uniform(rng, 20.0, 30.0),
        "glue_compressor": glue,
        "target_lufs": float(target_lufs),
        "limiter": {"ceiling_dbtp": CEILING_DBTP, "release_ms": _uniform(rng, 50.0, 200.0), "lookahead_ms": 1.0},
        "mp3": {"vbr_quality": _uniform(rng, 1.0, 9.0)} if codec else None,
    }


@dataclass(frozen=True, kw_only=True)
class MasteredMix:
    """What :func:`apply_master_chain` returns: the finished song and the record of how it was made."""

    #: the mastered mix, float32 ``(channels, samples)``
    audio: np.ndarray
    #: ``pre_gain_db`` (to the target before the glue compressor), ``loudness_gain_db`` (the limiter's input gain;
    #: a secant search of up to 5 passes when limiting pulls the loudness more than 0.1 LU off the target),
    #: ``limiter_passes``, ``codec_trim_db`` (static cut when the MP3 decoder overshoots the ceiling)
    applied: dict
    #: levels measured on the way, so a record need not measure them again: ``premaster_mix_lufs`` (the mix
    #: entering the bus), ``mastered_mix_lufs`` and ``mastered_mix_true_peak_db`` (``None`` where the chain did not
    #: measure the finished song: loudness after MP3, true peak after a codec trim or when no codec ran)
    measured: dict


def apply_master_chain(mix, sample_rate: int, params: dict) -> MasteredMix:
    """Master a mix with a chain from :func:`sample_master_chain` (or a record): the finished song, with what was
    applied and measured on the way."""
    if not isinstance(params, dict) or "limiter" not in params:
        raise MSRError("master chain parameters must come from sample_master_chain (missing 'limiter')")
    audio = np.ascontiguousarray(check_audio(mix, "mix"), dtype=np.float32)
    target = params["target_lufs"]
    limiter = params["limiter"]
    applied = {}
    premaster_lufs = measure_loudness_lufs(audio, sample_rate)
    pre_gain_db = gain_to_target_db(premaster_lufs, target)
    audio = high_pass(audio, sample_rate, cutoff_hz=params["high_pass_hz"]) * np.float32(db_to_gain(pre_gain_db))
    applied["pre_gain_db"] = pre_gain_db
    if params.get("glue_compressor"):
        audio = compress(audio, sample_rate, **params["glue_compressor"])
    gain_db = loudness_gain_db(audio, sample_rate, target)
    limiter_at = TruePeakLimiter(audio, sample_rate)
    tried: list[tuple[float, float]] = []  # (input gain, resulting loudness): a secant search on the target
    for _ in range(LIMITER_PASSES):
        out = limiter_at.limit(**limiter, input_gain_db=gain_db)
        lufs = measure_loudness_lufs(out, sample_rate)
        if not math.isfinite(lufs) or abs(target - lufs) < 0.1 or gain_db >= MAX_LOUDNESS_GAIN_DB:
            break
        tried.append((gain_db, lufs))
        slope = 1.0
        if len(tried) > 1 and tried[-1][0] != tried[-2][0]:
            slope = min(max((tried[-1][1] - tried[-2][1]) / (tried[-1][0] - tried[-2][0]), 0.2), 1.0)
        gain_db = min(gain_db + (target - lufs) / slope, MAX_LOUDNESS_GAIN_DB)
    passes = len(tried) + 1
    applied["loudness_gain_db"] = float(gain_db)
    applied["limiter_passes"] = passes
    measured = {"premaster_mix_lufs": premaster_lufs, "mastered_mix_lufs": lufs, "mastered_mix_true_peak_db": None}
    if params.get("mp3"):
        out = mp3_codec(out, sample_rate, **params["mp3"])
        peak_db = true_peak_db(out, sample_rate)
        excess = peak_db - limiter["ceiling_dbtp"]
        trim_db = -(excess + 0.02) if excess > -0.01 else 0.0
        if trim_db:
            out *= np.float32(db_to_gain(trim_db))
        applied["codec_trim_db"] = float(trim_db)
        measured.update(mastered_mix_lufs=None, mastered_mix_true_peak_db=None if trim_db else peak_db)
    return MasteredMix(audio=out, applied=applied, measured=measured)
