"""A degradation record, read aloud: one line per stem and one for the master bus."""
from __future__ import annotations


def _effect_text(effect: dict) -> str:
    name, p = effect["effect"], effect.get("params", {})
    if name == "equalize":
        gains = [b["gain_db"] for b in p.get("bands", [])]
        span = f"{min(gains):+.1f}…{max(gains):+.1f} dB" if gains else "flat"
        return f"EQ {effect.get('style', '')} ({len(gains)} bands, {span})".replace("  ", " ")
    if name == "compress":
        return (f"compressor ({p['threshold_db']:.0f} dB, {p['ratio']:.1f}:1, attack {p['attack_ms']:.1f} ms, "
                f"release {p['release_ms']:.0f} ms)")
    if name == "saturate":
        return f"saturation (drive {p['drive_db']:.1f} dB)"
    if name == "add_reverb":
        return f"reverb (room {p['room_size']:.2f}, wet {p['wet']:.2f})"
    if name == "band_limit":
        limit = f"{p['rate'] / 2000:.1f} kHz" if p.get("rate") else f"{p.get('cutoff_hz', 0) / 1000:.1f} kHz"
        return f"band-limit (≤ {limit})"
    return name + (f" {p}" if p else "")


def summarize_record(record: dict) -> str:
    """Human-readable lines for a record returned by :func:`msr_lib.degrade.degrade_mix`."""
    lines = []
    for stem, chain in record.get("stems", {}).items():
        effects = " → ".join(_effect_text(e) for e in chain.get("effects", [])) or "(dry)"
        lines.append(f"{stem:<13} fader {chain.get('fader_db', 0.0):+5.1f} dB │ {effects}")
    master = record.get("master", {})
    if master:
        steps = []
        if master.get("high_pass_hz"):
            steps.append(f"high-pass {master['high_pass_hz']:.0f} Hz")
        glue = master.get("glue_compressor")
        steps.append(_effect_text({"effect": "compress", "params": glue}).replace("compressor", "glue compressor")
                     if glue else "no glue compressor")
        steps.append(f"loudness → {master.get('target_lufs', -14):.0f} LUFS")
        if master.get("limiter"):
            steps.append(f"true-peak limiter {master['limiter']['ceiling_dbtp']:.0f} dBTP")
        if master.get("mp3"):
            steps.append(f"MP3 VBR quality {master['mp3']['vbr_quality']:.1f}")
        lines.append(f"{'master bus':<13} {' → '.join(steps)}")
    levels = record.get("levels", {})
    if "premaster_mix" in levels and "mastered_mix" in levels:
        before, after = levels["premaster_mix"], levels["mastered_mix"]

        def fmt(d):
            lufs = "silent" if d.get("lufs") is None else f"{d['lufs']:.1f} LUFS"
            peak = "" if d.get("true_peak_dbtp") is None else f", {d['true_peak_dbtp']:.1f} dBTP"
            return lufs + peak
        lines.append(f"{'levels':<13} sum of processed stems {fmt(before)}  →  finished song {fmt(after)}")
    return "\n".join(lines)
