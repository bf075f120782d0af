import json
import os
from pathlib import Path

import numpy as np
import pytest

#: Songs the tests render draw from the built-in sound sources only, so they are the same on every machine whatever
#: Debian SoundFonts and kits it has (tests/test_sounds.py names the others where it tests them).
os.environ.setdefault("MSR_SOUND_SOURCES", "timgm6mb,msr_subtractive,msr_fm,msr_voice")

@pytest.fixture(autouse=True)
def _close_figures():
    """Every test starts without open matplotlib figures, whatever the tests before it drew."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


#: The MSST BS-RoFormer compatibility fixture (see its README).
MSST_FIXTURES = Path(__file__).parent / "fixtures" / "msst_bs_roformer"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def tone(freq=440.0, seconds=1.0, sample_rate=44100, amplitude=0.5, channels=2):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[None], channels, axis=0)


@pytest.fixture(scope="module")
def tiny_config():
    """Keyword arguments of the tiny MSST BS-RoFormer."""
    return json.loads((MSST_FIXTURES / "tiny_config.json").read_text())


@pytest.fixture(scope="module")
def tiny_weights():
    """Its full MSST state dict."""
    from safetensors.torch import load_file

    return load_file(MSST_FIXTURES / "tiny_weights.safetensors")


@pytest.fixture(scope="module")
def tiny_io():
    """``input`` (1, 2, 88200) and MSST's ``output`` (1, 4, 2, 88200)."""
    from safetensors.torch import load_file

    return load_file(MSST_FIXTURES / "tiny_io.safetensors")


@pytest.fixture(scope="session")
def songs(tmp_path_factory):
    """Training and validation song folders for the training tests: 3 + 1 quick songs of 3 s (seeds 1000, 2000)."""
    from msr_lib.data.synth import synthesize_songs

    root = tmp_path_factory.mktemp("songs")
    synthesize_songs(root / "train", songs=3, seconds=3.0, seed=1000, progress=False, workers=1)
    synthesize_songs(root / "valid", songs=1, seconds=3.0, seed=2000, progress=False, workers=1)
    return root / "train", root / "valid"
