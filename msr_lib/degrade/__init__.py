"""Mastering simulator: turn clean stems into a "finished song" the way production does, with a replayable record.

- :mod:`~msr_lib.degrade.effects` — each effect alone (EQ, compressor, saturation, reverb, band-limiting,
  high-pass, loudness normalisation, true-peak limiter, MP3 codec).
- :mod:`~msr_lib.degrade.chains` — seeded random per-stem and master-bus chains (ranges from the MSR paper and
  the CP-JKU mastering chain), as JSON-able dicts that replay exactly.
- :mod:`~msr_lib.degrade.mix` — :func:`degrade_mix` for arrays, :func:`degrade_song_folder` for song folders.
"""
from msr_lib.degrade.chains import (
    MasteredMix, apply_master_chain, apply_stem_chain, sample_master_chain, sample_stem_chain,
)
from msr_lib.degrade.effects import (
    EFFECTS, MAX_LOUDNESS_GAIN_DB, TruePeakMeter, add_reverb, apply_effect, band_limit, compress, equalize, high_pass,
    limit_true_peak, loudness_gain_db, measure_loudness_lufs, mp3_codec, normalize_loudness, saturate,
    true_peak_db,
)
from msr_lib.degrade.mix import DegradeResult, degrade_mix, degrade_song_folder, measure_levels
from msr_lib.degrade.summary import summarize_record

__all__ = [
    "EFFECTS", "MAX_LOUDNESS_GAIN_DB", "DegradeResult", "MasteredMix", "TruePeakMeter", "add_reverb", "apply_effect",
    "apply_master_chain", "apply_stem_chain", "band_limit", "compress", "degrade_mix", "degrade_song_folder",
    "equalize", "high_pass", "limit_true_peak", "loudness_gain_db", "measure_levels", "measure_loudness_lufs",
    "mp3_codec", "normalize_loudness", "sample_master_chain", "sample_stem_chain", "saturate", "summarize_record",
    "true_peak_db",
]
