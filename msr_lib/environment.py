"""What this machine offers: versions, CPU/GPU, SoundFont — printed at the top of lesson 00."""
from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("torch", "numpy", "librosa", "soundfile", "pedalboard", "pyloudnorm", "tinysoundfont", "music21",
            "ipywidgets", "matplotlib", "peft")


def environment_report() -> dict:
    """A dict of facts: Python, OS, CPU count, torch device, package versions, the SoundFont used for rendering."""
    import torch

    report = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for name in PACKAGES:
        try:
            report[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            report[name] = None
    try:
        from msr_lib.data.synth import find_soundfont

        report["soundfont"] = str(find_soundfont())
    except Exception as exc:  # a report must never fail; say what is wrong instead
        report["soundfont"] = f"unavailable ({exc})"
    return report


def format_report(report: dict) -> str:
    """Aligned ``key: value`` lines; missing packages are marked."""
    width = max(map(len, report))
    return "\n".join(f"{k:<{width}} : {'— not installed' if v is None and k in PACKAGES else v}"
                     for k, v in report.items())
