"""MSR Workbench: Music Source Restoration, built step by step.

Data flows roughly ``stems`` → ``audio`` → ``data.synth`` → ``degrade`` → ``data.datasets`` → ``metrics`` /
``evaluate`` → ``models`` → ``train`` → ``separate`` → ``widgets`` → ``cli`` (docs/DESIGN.md, "Module map").
"""
from msr_lib.errors import MSRError, AudioError
from msr_lib.stems import STEMS, INSTRUMENT_STEMS, FOUR_STEMS

__version__ = "0.1.0"
__all__ = ["MSRError", "AudioError", "STEMS", "INSTRUMENT_STEMS", "FOUR_STEMS", "__version__"]
