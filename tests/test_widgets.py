"""Players never autoplay, loop or peak-normalise; compared signals share one gain."""
import io

import numpy as np
import soundfile as sf

from msr_lib import widgets
from tests.conftest import tone


def decoded(control):
    data, rate = sf.read(io.BytesIO(control.value), dtype="float32", always_2d=True)
    return data.T, rate


def test_player_keeps_level_and_never_autoplays():
    quiet = tone(440, seconds=0.2, amplitude=0.1)
    control = widgets.audio_control(quiet, 44100)
    assert control.autoplay is False and control.loop is False and control.controls is True
    data, rate = decoded(control)
    assert rate == 44100
    assert abs(np.max(np.abs(data)) - 0.1) < 1e-3  # a normalising player would make this 1.0


def test_shared_gain_keeps_ratios():
    a = tone(440, seconds=0.2, amplitude=0.4)
    b = 5 * a  # would clip
    g = widgets.shared_gain([a, b])
    assert abs(g - 1 / 2.0) < 1e-6
    da, _ = decoded(widgets.audio_control(a, gain=g))
    db, _ = decoded(widgets.audio_control(b, gain=g))
    assert abs(np.max(np.abs(db)) / np.max(np.abs(da)) - 5.0) < 0.01
    assert widgets.shared_gain([a]) == 1.0


def test_compare_players_labels_common_scaling():
    a = tone(440, seconds=0.2, amplitude=0.4)
    box = widgets.compare_players({"quiet": a, "loud": 4 * a})
    assert "same" in box.children[0].value and "-4.1 dB" in box.children[0].value
    assert len(box.children) == 3
    assert "LUFS" in box.children[1].children[0].value
    quiet, _ = decoded(box.children[1].children[1])
    loud, _ = decoded(box.children[2].children[1])
    assert abs(np.max(np.abs(loud)) / np.max(np.abs(quiet)) - 4.0) < 0.01  # one shared gain


def test_effect_explorer_reprocesses_on_slider_change():
    import ipywidgets

    x = tone(440, seconds=0.5, amplitude=0.5)
    slider = ipywidgets.FloatSlider(value=1.0, min=0.0, max=2.0)
    box = widgets.effect_explorer(x, lambda a, gain: a * gain, {"gain": slider})
    assert np.allclose(box.result(), x)
    slider.value = 0.25
    assert np.allclose(box.result(), 0.25 * x)
    assert slider.continuous_update is False
