import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def tone(freq=440.0, seconds=1.0, sample_rate=44100, amplitude=0.5, channels=2):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[None], channels, axis=0)
