"""Bad input at the lesson entry points (issue 13): players, plots, the stem browser, the mixing desk, `desk_song` and
"bring your own song" either convert as their docstrings say or refuse in one line — never NaN in a player, never
clipping from a shared gain, never an exception from deep inside numpy, soundfile or matplotlib."""
import warnings

import matplotlib
import numpy as np
import pytest
import soundfile as sf

from msr_lib import widgets
from msr_lib.audio import load_stem, save_audio, to_stereo
from msr_lib.errors import AudioError, MSRError
from msr_lib.lessons import bring_your_own_song
from msr_lib.plots import plot_spectrogram, plot_stems, plot_waveform, spectrogram_db
from tests.conftest import tone
from tests.test_pipeline import gain_separator
from tests.test_widgets import decoded

matplotlib.use("Agg")

RATE = 44100


def one_line_error(call, match, kind=AudioError) -> str:
    with pytest.raises(kind, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def noise(seconds=0.1, rate=RATE, channels=2, amplitude=0.2, seed=0):
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal((channels, max(1, int(round(seconds * rate)))))).astype(np.float32)


# ---------------------------------------------------------------- players and plots, in memory

BAD_SIGNALS = {
    "nan": (np.full((2, 4410), np.nan, np.float32), "contains NaN or infinite samples"),
    "inf": (np.concatenate([noise(), np.full((2, 1), np.inf, np.float32)], axis=1), "NaN or infinite"),
    "float64 beyond float32": (np.full((2, 100), 1e300), "NaN or infinite"),
    "empty": (np.zeros((2, 0), np.float32), "contains no samples"),
    "batch (1, 2, n)": (np.zeros((1, 2, 100), np.float32), r"expected shape \(channels, samples\)"),
    "sf.read layout (n, 2)": (np.zeros((4410, 2), np.float32), r"looks like \(samples, channels\).*audio\.T"),
    "text": (np.array(["not", "audio"]), "expected an array of numbers"),
}


@pytest.mark.parametrize("case", list(BAD_SIGNALS))
def test_players_and_plots_refuse_bad_signals_in_one_line(case):
    import matplotlib.pyplot as plt

    bad, match = BAD_SIGNALS[case]
    good = noise()
    one_line_error(lambda: widgets.audio_control(bad), match)
    assert one_line_error(lambda: widgets.player(bad, label="my take"), match).startswith("my take: ")
    assert one_line_error(lambda: widgets.compare_players({"before": good, "after": bad}), match).startswith("after")
    one_line_error(lambda: widgets.stem_players({"bass": good}, mix=bad), match)
    one_line_error(lambda: widgets.level_text(bad), match)
    one_line_error(lambda: widgets.shared_gain([good, bad]), match)
    _, ax = plt.subplots()
    assert one_line_error(lambda: plot_spectrogram(ax, bad, title="drums"), match).startswith("drums: ")
    one_line_error(lambda: plot_waveform(ax, bad), match)
    one_line_error(lambda: plot_stems({"bass": good, "drums": bad}), match)
    plt.close("all")


def test_bad_rates_gains_and_excerpt_lengths_are_one_line_errors():
    x = noise()
    for rate in (0, -44100, 44100.5, "44k", None):
        one_line_error(lambda: widgets.player(x, rate), "sample rate must be a positive whole number")
        one_line_error(lambda: spectrogram_db(x, rate), "sample rate must be a positive whole number")
    one_line_error(lambda: widgets.audio_control(x, 10_000_000), "cannot encode audio at 10000000 Hz as FLAC")
    for seconds in (0, -1.0, float("nan"), "ten"):
        one_line_error(lambda: widgets.player(x, seconds=seconds), "seconds must be a positive number", MSRError)
    one_line_error(lambda: widgets.audio_control(x, gain=float("nan")), "gain must be a finite number", MSRError)
    one_line_error(lambda: plot_stems({}), "no stems to plot", MSRError)


def test_silence_plays_as_silence_with_finite_levels():
    silent = np.zeros((2, RATE // 10), np.float32)
    box = widgets.compare_players({"silent": silent, "also silent": silent[:1]}, RATE)
    assert len(box.children) == 2  # no "scaled" head: the shared gain stays 1.0
    for row in box.children:
        text = row.children[0].value
        assert "-inf LUFS" in text and "nan" not in text.lower()
        data, rate = decoded(row.children[1])
        assert rate == RATE and data.shape[-1] == silent.shape[-1] and np.all(data == 0)
    assert widgets.shared_gain([silent]) == 1.0


def test_a_shared_gain_never_clips_and_keeps_ratios():
    quiet = tone(440, seconds=0.2, amplitude=0.5)
    loud = 6 * quiet  # peaks at 3.0
    box = widgets.compare_players({"quiet": quiet, "loud": loud}, RATE)
    assert "all players scaled by the same -9.5 dB" in box.children[0].value
    q, _ = decoded(box.children[1].children[1])
    lo, _ = decoded(box.children[2].children[1])
    assert np.max(np.abs(lo)) <= 1.0 and np.isfinite(lo).all()
    # no flat tops: the loud player's waveform is the quiet one's times 6, sample by sample (16-bit steps aside)
    np.testing.assert_allclose(lo, 6 * q, atol=8 / 2**15)
    assert np.max(np.abs(lo)) >= 1 - 2 / 2**15  # scaled just enough, not further
    alone = widgets.player(loud, RATE, label="loud")  # one player of a clipping signal is scaled too, and says so
    assert "scaled by -9.5 dB so it does not clip" in alone.children[0].value
    np.testing.assert_allclose(decoded(alone.children[1])[0], lo, atol=1 / 2**15)


def test_players_convert_channels_sample_formats_and_rates_as_documented():
    mono = noise(channels=1)[0]  # 1-D
    data, _ = decoded(widgets.audio_control(mono))
    assert data.shape == (1, mono.size)
    np.testing.assert_allclose(data[0], mono, atol=1 / 2**15)
    six = noise(channels=6)
    data, _ = decoded(widgets.audio_control(six))
    assert data.shape == (2, six.shape[1])  # folded as msr_lib.audio.to_stereo does on load
    np.testing.assert_allclose(data, to_stereo(six), atol=1 / 2**15)
    pcm16 = np.array([[0, 16384, -32768, 32767]], np.int16)
    np.testing.assert_allclose(decoded(widgets.audio_control(pcm16))[0], [[0, 0.5, -1.0, 32767 / 32768]], atol=1e-4)
    pcm8 = np.array([[128, 192, 0, 255]], np.uint8)  # unsigned 8-bit: 128 is silence
    np.testing.assert_allclose(decoded(widgets.audio_control(pcm8))[0], [[0, 0.5, -1.0, 127 / 128]], atol=1e-4)
    f64 = noise().astype(np.float64)
    np.testing.assert_allclose(decoded(widgets.audio_control(f64))[0], f64, atol=1 / 2**15)
    for rate in (8000, 22050, 96000):
        box = widgets.player(noise(rate=rate), rate, label="x", seconds=0.05)
        data, got = decoded(box.children[1])
        assert got == rate and data.shape == (2, round(0.05 * rate)) and "first 0.05 s" in box.children[0].value
    for samples in (1, RATE // 10):  # one sample, a tenth of a second
        box = widgets.player(noise(seconds=samples / RATE), RATE, label="short")
        assert decoded(box.children[1])[0].shape == (2, samples) and "nan" not in box.children[0].value.lower()
    tiny = widgets.player(noise(seconds=1.0), RATE, seconds=1e-9)  # at least one sample, never an empty player
    assert decoded(tiny.children[1])[0].shape == (2, 1)


def test_spectrograms_of_one_sample_and_a_tenth_of_a_second_are_finite_without_warnings():
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa's "n_fft too large" warning would land in the lesson
        for samples in (1, RATE // 10):
            times, freqs, s_db = spectrogram_db(noise(seconds=samples / RATE))
            assert s_db.shape[1] >= 1 and np.isfinite(s_db).all() and np.isfinite(times).all()
        _, s_db = spectrogram_db(np.zeros((2, 100), np.float32))[1:]
        assert np.all(s_db == -100.0)  # silence sits on the floor, not at -inf
        _, axes = plt.subplots(1, 2)
        plot_spectrogram(axes[0], noise(seconds=1 / RATE), title="one sample")
        plot_waveform(axes[1], np.zeros(1, np.float32))
    plt.close("all")


# ---------------------------------------------------------------- the stem browser, the mixing desk, effect explorer

def test_stem_browser_checks_every_signal_when_built():
    stems = {"vocals": noise(seed=1), "bass": noise(seed=2)}
    restored = {"vocals": noise(seed=3), "bass": np.full((2, 4410), np.nan, np.float32)}
    message = one_line_error(lambda: widgets.stem_browser({"separated": stems, "restored": restored},
                                                          spectrograms=False), "NaN or infinite")
    assert message.startswith("restored · bass: ")  # not when the student picks "bass" in the dropdown
    one_line_error(lambda: widgets.stem_browser({"separated": stems}, mix=np.zeros((2, 0))), "no samples")
    one_line_error(lambda: widgets.stem_browser({"separated": {}}), "no stems in any version", MSRError)
    mono_and_six = {"separated": {"vocals": noise(channels=1)[0], "bass": noise(channels=6, seconds=0.05)}}
    browser = widgets.stem_browser(mono_and_six, RATE, scores={"separated": {"bass": {"SNR": float("nan")}}})
    browser.select("bass")
    assert decoded(browser.players().children[1].children[1])[0].shape == (2, round(0.05 * RATE))


def test_mixing_desk_aligns_stems_of_other_lengths_and_channel_counts():
    mono = noise(seconds=0.05, channels=1, seed=1)[0]  # 1-D, shorter
    stereo = noise(seconds=0.1, seed=2)
    desk = widgets.mixing_desk({"vocals": mono, "bass": stereo}, RATE)
    expected = stereo.copy()
    expected[:, : mono.size] += mono  # dual mono, zero-padded at the end to the longest
    np.testing.assert_allclose(desk.remix(), expected, atol=1e-6)
    desk.faders["bass"].value = 12.0
    desk.mutes["vocals"].value = True
    np.testing.assert_allclose(desk.remix(), stereo * 10 ** (12 / 20), atol=1e-5)
    np.testing.assert_allclose(widgets.remix({"vocals": mono, "bass": stereo}), expected, atol=1e-6)
    one_line_error(lambda: widgets.mixing_desk({"vocals": mono, "bass": np.full((2, 9), np.inf)}), "bass: ")
    one_line_error(lambda: widgets.mixing_desk({}), "no stems given", MSRError)
    one_line_error(lambda: widgets.remix({"bass": stereo}, {"bass": float("nan")}), "gains must be finite", MSRError)


def test_effect_explorer_refuses_bad_audio_when_built_and_reports_it_after_a_slider_move():
    import ipywidgets

    x = noise(seconds=0.1)
    one_line_error(lambda: widgets.effect_explorer(np.full((2, 10), np.nan), lambda a, gain: a,
                                                   {"gain": ipywidgets.FloatSlider(value=1.0)}), "before: ")
    slider = ipywidgets.FloatSlider(value=1.0, min=-1.0, max=2.0)
    box = widgets.effect_explorer(x, lambda a, gain: a / gain if gain else a * np.nan, {"gain": slider})
    assert box.status.value == ""
    slider.value = 0.0  # the student's process divides by zero: no exception in the callback, one line instead
    assert "after (what process returned): contains NaN or infinite samples" in box.status.value
    assert "<br" not in box.status.value and np.isnan(box.result()).all()
    slider.value = 2.0
    assert box.status.value == "" and np.allclose(box.result(), x / 2)


# ---------------------------------------------------------------- desk_song: song folders and restore outputs on disk

def test_desk_song_reads_stems_with_the_shared_reader(tmp_path):
    """The fixed bug: a mono stem file is dual mono, a stem of two files of unequal lengths is their padded sum,
    every stem of the folder has the folder's longest length (as msr_lib.audio.load_stem_files)."""
    song = tmp_path / "song"
    song.mkdir()
    vocals = noise(seconds=0.1, channels=1, seed=1)
    guitar_a, guitar_b = noise(seconds=0.05, seed=2), noise(seconds=0.08, seed=3)
    bass = noise(seconds=0.06, seed=4)
    sf.write(song / "vocals.wav", vocals.T, RATE, subtype="FLOAT")
    sf.write(song / "guitar.wav", guitar_a.T, RATE, subtype="FLOAT")
    sf.write(song / "guitars.wav", guitar_b.T, RATE, subtype="FLOAT")  # both files are the guitars stem
    sf.write(song / "bass.wav", bass.T, RATE, subtype="FLOAT")
    versions, mix, rate = widgets.desk_song(song)
    assert rate == RATE and mix is None and list(versions) == ["reference"]
    ref = versions["reference"]
    assert set(ref) == {"vocals", "guitars", "bass"} and all(a.shape == (2, vocals.shape[1]) for a in ref.values())
    np.testing.assert_allclose(ref["vocals"], np.repeat(vocals, 2, axis=0), atol=1e-7)
    guitar = np.zeros((2, vocals.shape[1]), np.float32)
    guitar[:, : guitar_a.shape[1]] += guitar_a
    guitar[:, : guitar_b.shape[1]] += guitar_b
    np.testing.assert_allclose(ref["guitars"], guitar, atol=1e-7)
    np.testing.assert_allclose(ref["bass"][:, bass.shape[1]:], 0)
    widgets.mixing_desk(ref, rate)  # the desk takes what desk_song gives
    widgets.stem_browser(versions, rate, spectrograms=False)


def test_desk_song_resamples_to_one_rate_and_reads_8_bit_and_float64_files(tmp_path):
    song = tmp_path / "song"
    song.mkdir()
    sf.write(song / "vocals.wav", noise(seconds=0.1, rate=22050).T, 22050, subtype="PCM_U8")
    sf.write(song / "bass.wav", noise(seconds=0.1, rate=8000).T, 8000, subtype="DOUBLE")
    sf.write(song / "drums.flac", noise(seconds=0.1, rate=96000).T, 96000, subtype="PCM_24")
    sf.write(song / "mixture.wav", noise(seconds=0.1, rate=RATE, channels=6).T, RATE)
    versions, mix, rate = widgets.desk_song(song)
    assert rate == 22050  # the first stem's rate (canonical order: vocals, bass, drums)
    assert {k: a.shape for k, a in versions["reference"].items()} == {k: (2, 2205) for k in ("vocals", "bass",
                                                                                            "drums")}
    assert mix.shape == (2, 2205) and all(np.isfinite(a).all() for a in [mix, *versions["reference"].values()])
    np.testing.assert_allclose(versions["reference"]["vocals"], load_stem([song / "vocals.wav"], None)[0], atol=1e-7)
    versions, mix, rate = widgets.desk_song(song, sample_rate=48000)
    assert rate == 48000 and versions["reference"]["bass"].shape == (2, 4800) and mix.shape == (2, 4800)


def test_desk_song_files_unknown_names_under_other_and_sums_duplicate_stems(tmp_path):
    song = tmp_path / "song"
    song.mkdir()
    kazoo, other, bass_wav, bass_flac = (noise(seconds=0.05, seed=s) for s in range(4))
    sf.write(song / "kazoo.wav", kazoo.T, RATE, subtype="FLOAT")
    sf.write(song / "other.wav", other.T, RATE, subtype="FLOAT")
    sf.write(song / "bass.wav", bass_wav.T, RATE, subtype="FLOAT")
    sf.write(song / "bass.flac", 0.5 * bass_flac.T, RATE, subtype="PCM_24")
    ref = widgets.desk_song(song)[0]["reference"]
    assert list(ref) == ["bass", "other"]
    np.testing.assert_allclose(ref["other"], kazoo + other, atol=1e-6)  # a name that is no stem joins other
    np.testing.assert_allclose(ref["bass"], bass_wav + 0.5 * bass_flac, atol=1e-6)  # song_files' policy: summed
    sf.write(song / "mix.wav", other.T, RATE)
    sf.write(song / "mixture.flac", other.T, RATE)
    one_line_error(lambda: widgets.desk_song(song), "two files for the mastered mix")


def _bad_file(kind, path):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n" * 40)
    elif kind == "truncated header":
        sf.write(path, noise().T, RATE)
        path.write_bytes(path.read_bytes()[:20])
    elif kind == "nan samples":
        sf.write(path, np.full((100, 2), np.nan, np.float32), RATE, subtype="FLOAT")
    elif kind == "folder":
        path.mkdir()
    return path


BAD_FILES = {"missing": "no such file", "folder": "is a folder", "empty": "file is empty", "text": "cannot read audio",
             "truncated header": "cannot read audio", "nan samples": "NaN or infinite"}


@pytest.mark.parametrize("kind", [k for k in BAD_FILES if k not in ("missing", "folder")])
def test_desk_song_with_a_bad_stem_file_is_one_line_error(tmp_path, kind):
    song = tmp_path / "song"
    song.mkdir()
    sf.write(song / "vocals.wav", noise().T, RATE)
    _bad_file(kind, song / "bass.wav")
    assert "bass.wav" in one_line_error(lambda: widgets.desk_song(song), BAD_FILES[kind])


def test_desk_song_of_a_bad_folder_is_one_line_error(tmp_path):
    one_line_error(lambda: widgets.desk_song(tmp_path / "nowhere"), "no such folder")
    (tmp_path / "file.wav").write_bytes(b"RIFF")
    one_line_error(lambda: widgets.desk_song(tmp_path / "file.wav"), "is not a folder")
    (tmp_path / "empty").mkdir()
    one_line_error(lambda: widgets.desk_song(tmp_path / "empty"), "no stem audio files")
    out = tmp_path / "restored"
    out.mkdir()
    save_audio(out / "bass.wav", noise(), RATE)
    (out / "restore.json").write_text("{not json")
    one_line_error(lambda: widgets.desk_song(out), "restore.json: cannot read it", MSRError)
    (out / "restore.json").write_text("[1, 2]")
    one_line_error(lambda: widgets.desk_song(out), "expected a JSON object", MSRError)


# ---------------------------------------------------------------- bring your own song

@pytest.fixture
def lesson_data(tmp_path, monkeypatch):
    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def restore_options():
    return {"separator": gain_separator(), "restorers": None, "progress": False}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bring_your_own_song_says_in_one_line_why_not(tmp_path, lesson_data, capsys, kind):
    path = tmp_path / "my song.wav"
    if kind != "missing":
        _bad_file(kind, path)
    assert bring_your_own_song(str(path), **restore_options()) is None
    printed = capsys.readouterr()
    assert printed.out.count("\n") == 1 and printed.err == ""
    assert printed.out.startswith("cannot restore this song: ") and BAD_FILES[kind] in printed.out
    songs = lesson_data / "my_songs"
    assert not songs.exists() or not list(songs.iterdir())  # nothing half-written, no temporary folder left


def test_bring_your_own_song_without_a_path_or_with_a_refused_one(tmp_path, lesson_data, capsys):
    for nothing in (None, "", "   ", '""'):
        assert bring_your_own_song(nothing, **restore_options()) is None
        assert capsys.readouterr().out.startswith("no song given: set MY_SONG")
    assert bring_your_own_song(tmp_path / ("x" * 300 + ".wav"), **restore_options()) is None
    assert capsys.readouterr().out.count("\n") == 1  # the system's "File name too long", in one line


def test_bring_your_own_song_takes_spaces_non_ascii_quotes_and_a_short_mono_8_khz_file(tmp_path, lesson_data,
                                                                                        capsys):
    folder = tmp_path / "Música del día"
    folder.mkdir()
    song = folder / "my sóng ♫.wav"
    x = noise(seconds=0.1, rate=8000, channels=1)
    sf.write(song, x.T, 8000, subtype="PCM_16")
    out = bring_your_own_song(f'  "{song}" ', **restore_options())  # pasted with quotes, as "Copy as path" does
    assert capsys.readouterr().out == ""
    assert out == lesson_data / "my_songs" / "my sóng ♫"
    data, rate = sf.read(out / "vocals.wav", always_2d=True)
    assert rate == 8000 and data.shape == (800, 1)  # the input's rate, channels and length (restore_file)
    versions, mix, rate = widgets.desk_song(out)
    assert rate == 8000 and mix.shape == (2, 800)  # the desk plays mono as dual mono
    assert all(a.shape == (2, 800) and np.isfinite(a).all() for a in versions["separated"].values())
    widgets.stem_browser(versions, rate, mix=mix, spectrograms=False)
    widgets.mixing_desk(versions["separated"], rate)


def test_bring_your_own_song_of_silence_gives_silent_stems_the_desk_plays(tmp_path, lesson_data):
    song = tmp_path / "silence.flac"
    sf.write(song, np.zeros((4410, 2)), RATE, subtype="PCM_16")
    out = bring_your_own_song(song, **restore_options())
    versions, mix, rate = widgets.desk_song(out)
    assert all(np.all(a == 0) for a in versions["separated"].values())
    browser = widgets.stem_browser(versions, rate, mix=mix, spectrograms=False)
    for row in browser.players().children[1:]:
        assert "nan" not in row.children[0].value.lower() and np.all(decoded(row.children[1])[0] == 0)
