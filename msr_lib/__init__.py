"""MSR Workbench: Music Source Restoration, built step by step.

Data flows top to bottom through the modules; a lower module never imports a higher one:
``stems`` → ``audio`` → ``data.synth`` → ``degrade`` → ``data.datasets`` → ``metrics`` → models → ``train`` →
``pipeline`` → ``widgets`` → ``cli``.
"""
from msr_lib.errors import MSRError, AudioError
from msr_lib.stems import STEMS, INSTRUMENT_STEMS, FOUR_STEMS

__version__ = "0.1.0"
__all__ = ["MSRError", "AudioError", "STEMS", "INSTRUMENT_STEMS", "FOUR_STEMS", "__version__"]
