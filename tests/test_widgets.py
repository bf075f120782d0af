"""Players never autoplay, loop or peak-normalise; they embed FLAC; compared signals share one gain; excerpts say so."""
import io

import numpy as np
import soundfile as sf

from msr_lib import widgets
from msr_lib.errors import MSRError
from tests.conftest import tone


def decoded(control):
    data, rate = sf.read(io.BytesIO(control.value), dtype="float32", always_2d=True)
    return data.T, rate


def test_players_embed_lossless_16_bit_flac():
    x = tone(440, seconds=0.5, amplitude=0.5)
    control = widgets.audio_control(x)
    info = sf.info(io.BytesIO(control.value))
    assert control.format == "flac" and info.format == "FLAC" and info.subtype == "PCM_16"
    data, _ = decoded(control)
    assert np.max(np.abs(data - x.reshape(data.shape))) <= 1 / 2**15  # 16-bit quantisation, nothing else
    assert len(control.value) < 0.7 * data.size * 2  # smaller than the 16-bit PCM it holds


def test_player_keeps_level_and_never_autoplays():
    quiet = tone(440, seconds=0.2, amplitude=0.1)
    control = widgets.audio_control(quiet, 44100)
    assert control.autoplay is False and control.loop is False and control.controls is True
    data, rate = decoded(control)
    assert rate == 44100
    assert abs(np.max(np.abs(data)) - 0.1) < 1e-3  # a normalising player would make this 1.0


def test_the_same_sound_is_embedded_once():
    x = tone(440, seconds=0.3, amplitude=0.3)
    first = widgets.player(x, label="drums")
    again = widgets.compare_players({"before": x.copy(), "after": 0.5 * x})
    assert again.children[0].children[1] is first.children[1]  # same samples, same gain: the same control
    assert again.children[1].children[1] is not first.children[1]
    assert widgets.audio_control(x, gain=0.5) is not first.children[1]


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


def test_excerpts_play_the_first_seconds_and_say_so():
    rate = 44100
    x = np.concatenate([tone(440, seconds=1.0, amplitude=0.2), tone(440, seconds=1.0, amplitude=0.9)], axis=-1)
    whole = widgets.player(x, rate, label="song")
    assert decoded(whole.children[1])[0].shape[-1] == x.shape[-1] and "first" not in whole.children[0].value
    assert "<b>song</b> <i>(first 1.5 s)</i>" in widgets.player(x, rate, label="song", seconds=1.5).children[0].value
    box = widgets.compare_players({"a": x, "b": 0.5 * x}, rate, seconds=1.0)
    assert "first 1 s of each" in box.children[0].value
    longer = widgets.player(x, rate, label="song", seconds=5.0)  # asks for more than there is: the whole song
    assert "first" not in longer.children[0].value and decoded(longer.children[1])[0].shape[-1] == x.shape[-1]
    first, _ = decoded(box.children[1].children[1])
    assert first.shape[-1] == rate
    assert abs(np.max(np.abs(first)) - 0.2) < 1e-3  # only the quiet first second, at its own level
    stems = widgets.stem_players({"bass": x, "drums": x}, rate, mix=2 * x, seconds=0.5)
    assert [decoded(row.children[1])[0].shape[-1] for row in stems.children[1:]] == [rate // 2] * 3


def test_stem_spectrograms_have_one_colour_bar():
    import matplotlib

    matplotlib.use("Agg")
    from msr_lib.plots import plot_stems

    x = tone(440, seconds=0.5, amplitude=0.5)
    fig = plot_stems({"bass": x, "drums": 0.5 * x}, mix=1.5 * x, ncols=2)
    colour_bars = [ax for ax in fig.axes if ax.get_ylabel() == "dBFS"]
    assert len(colour_bars) == 1
    assert len(fig.axes) == 4 + 1  # 3 panels, one switched-off slot, the colour bar


# ---------------------------------------------------------------- the listening desk

def _desk_stems(seconds=0.5):
    return {"vocals": tone(440, seconds=seconds, amplitude=0.2), "bass": tone(55, seconds=seconds, amplitude=0.3),
            "other": tone(3000, seconds=seconds, amplitude=0.05)}


def test_stem_browser_switching_stems_changes_what_plays():
    stems = _desk_stems()
    versions = {"separated": {k: 0.5 * v for k, v in stems.items()}, "restored": {k: 0.9 * v for k, v in stems.items()},
                "reference": stems}
    mix = sum(stems.values())
    scores = {"separated": {"bass": {"multi_mel_snr": 3.25}}, "restored": {"bass": {"multi_mel_snr": 4.5}}}
    browser = widgets.stem_browser(versions, 44100, mix=mix, scores=scores, spectrograms=False)
    assert browser.chooser.options == ("vocals", "bass", "other")  # canonical order
    first = [decoded(row.children[1])[0] for row in browser.players().children[1:]]
    assert len(first) == 4  # mix, separated, restored, reference
    np.testing.assert_allclose(first[3], stems["vocals"].reshape(first[3].shape), atol=1e-4)
    browser.select("bass")
    now = [decoded(row.children[1])[0] for row in browser.players().children[1:]]
    np.testing.assert_allclose(now[1], 0.5 * stems["bass"].reshape(now[1].shape), atol=1e-4)  # one shared gain
    np.testing.assert_allclose(now[2], 0.9 * stems["bass"].reshape(now[2].shape), atol=1e-4)
    assert "bass" in browser.players().children[0].value


def test_remix_gains_mute_and_solo():
    stems = _desk_stems()
    np.testing.assert_allclose(widgets.remix(stems), sum(stems.values()), atol=1e-6)
    np.testing.assert_allclose(widgets.remix(stems, {"bass": -6.0}, mute=["other"]),
                               stems["vocals"] + 10 ** (-6 / 20) * stems["bass"], atol=1e-6)
    np.testing.assert_allclose(widgets.remix(stems, solo=["vocals"]), stems["vocals"], atol=1e-7)
    np.testing.assert_allclose(widgets.remix(stems, solo=["vocals"], mute=["vocals"]), 0 * stems["vocals"])
    import pytest

    with pytest.raises(MSRError, match="no such stems"):
        widgets.remix(stems, {"drums": 3.0})


def test_mixing_desk_at_zero_db_plays_the_song_and_saves_the_remix(tmp_path):
    stems = _desk_stems()
    desk = widgets.mixing_desk(stems, 44100)
    np.testing.assert_allclose(desk.remix(), sum(stems.values()), atol=1e-6)
    desk.faders["bass"].value = -12.0
    desk.mutes["other"].value = True
    expected = stems["vocals"] + 10 ** (-12 / 20) * stems["bass"]
    np.testing.assert_allclose(desk.remix(), expected, atol=1e-6)
    desk.children[-2].children[0].value = str(tmp_path / "mine.wav")
    desk.save()
    saved, rate = sf.read(tmp_path / "mine.wav", dtype="float32", always_2d=True)
    assert rate == 44100 and sf.info(tmp_path / "mine.wav").subtype == "PCM_24"
    np.testing.assert_allclose(saved.T, expected.reshape(saved.T.shape), atol=1e-5)
    desk.children[-2].children[0].value = str(tmp_path / "no" / "such" / "\0bad.wav")
    desk.save()
    assert "not saved" in desk.children[-1].value


def test_desk_song_reads_a_restore_result_and_a_song_folder(tmp_path):
    from msr_lib.audio import save_audio

    stems = _desk_stems()
    song = tmp_path / "song"
    for name, audio in stems.items():
        save_audio(song / f"{name}.wav", audio, 44100)
    save_audio(song / "clean_mix.wav", sum(stems.values()), 44100)
    versions, mix, rate = widgets.desk_song(song)
    assert list(versions) == ["reference"] and list(versions["reference"]) == ["vocals", "bass", "other"]
    assert rate == 44100 and mix.shape[-1] == stems["bass"].shape[-1]
    out = tmp_path / "restored"
    from msr_lib.models import Restorer
    from tests.test_pipeline import Doubler, gain_separator

    from msr_lib.pipeline import restore_file

    restore_file(song / "clean_mix.wav", out, separator=gain_separator(), restorers=Restorer(Doubler(), stem="all"),
                 keep_separated=True, progress=False)
    versions, mix, rate = widgets.desk_song(out, reference=song)
    assert list(versions) == ["separated", "restored", "reference"]
    np.testing.assert_allclose(versions["restored"]["bass"], 2 * versions["separated"]["bass"], atol=1e-5)
    assert mix is not None and len(versions["restored"]) == 9
