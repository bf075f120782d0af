"""Where the workbench runs: the machine's facts (versions, CPU/GPU, SoundFont — printed at the top of lesson 00),
the folder generated data goes to (:func:`data_dir`) and the torch device a command runs on (:func:`resolve_device`).

Lesson: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

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


def data_dir() -> Path:
    """Where generated data goes: ``$MSR_DATA_DIR``, else ``data/generated`` of the checkout we run in, else
    ``~/.cache/msr_workbench``. Generated audio is git-ignored."""
    if os.environ.get("MSR_DATA_DIR"):
        return Path(os.environ["MSR_DATA_DIR"]).expanduser()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "msr_lib").is_dir() and (folder / "data").is_dir():
            return folder / "data" / "generated"
    return Path.home() / ".cache" / "msr_workbench"


def resolve_device(device):
    """``"auto"``/``None`` → CUDA when available, else CPU; otherwise the named ``torch.device`` (one-line
    :class:`~msr_lib.errors.MSRError` if it is unknown or unavailable)."""
    import torch

    from msr_lib.errors import MSRError

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise MSRError(f"unknown device {device!r} ({' '.join(str(exc).split())})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MSRError("device 'cuda' requested but CUDA is not available (use --device cpu or auto)")
    return device
