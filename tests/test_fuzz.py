"""Property-based fuzz (hypothesis) of the audio loader and of the `msr` argument handling (issue 13): the loader
returns finite float32 audio of the documented shape or raises one-line AudioError, nothing else; any argv returns an
int exit status without a traceback."""
import argparse
import contextlib
import io
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from msr_lib.audio import (
    AUDIO_EXTENSIONS, MAX_FILE_RATE, MIN_FILE_RATE, SAMPLE_RATE, check_audio, load_audio_with_rate,
    resampled_length, to_stereo,
)
from msr_lib.cli import build_parser, main
from msr_lib.errors import AudioError, MSRError

#: bounded and derandomized: the same examples on every run, so a failure is reproducible
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def load_or_refuse(path, sample_rate=SAMPLE_RATE, stereo=True):
    """The loader's contract: ``(audio, rate)`` finite float32 of the documented shape, or ``None`` after a one-line
    AudioError."""
    try:
        audio, rate = load_audio_with_rate(path, sample_rate, stereo=stereo)
    except AudioError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] >= 1
    assert np.all(np.isfinite(audio))
    assert not stereo or audio.shape[0] == 2
    assert sample_rate is None or rate == sample_rate
    return audio, rate


# ---------------------------------------------------------------- the loader

@FUZZ
@given(data=st.binary(max_size=4096), ext=st.sampled_from(AUDIO_EXTENSIONS))
def test_random_bytes(tmp_path, data, ext):
    path = tmp_path / f"random{ext}"
    path.write_bytes(data)
    load_or_refuse(path)


@st.composite
def wav_headers(draw):
    """A RIFF/WAVE file with random header fields (format tag, channels, rate, bits, data size) and random data."""
    tag = draw(st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 2, 0x55]))  # PCM, float, A-law, µ-law, extensible, junk…
    channels = draw(st.integers(0, 12))
    rate = draw(st.one_of(st.integers(0, 2**32 - 1),
                          st.sampled_from([1, 999, 1000, 8000, 22050, 44100, 96000, 768000, 768001])))
    bits = draw(st.sampled_from([0, 4, 8, 12, 16, 24, 32, 64]))
    payload = draw(st.binary(max_size=3000))
    size = draw(st.one_of(st.just(len(payload)), st.integers(0, 2**32 - 1)))
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) % 2**32, align % 2**16, bits)
    if tag == 0xFFFE:
        sub = draw(st.sampled_from([1, 3, 7]))
        fmt += struct.pack("<HHI", 22, bits, 3) + struct.pack("<H", sub) + bytes.fromhex("000000001000800000aa00389b71")
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


@FUZZ
@given(data=wav_headers(), stereo=st.booleans())
def test_random_wav_headers(tmp_path, data, stereo):
    path = tmp_path / "header.wav"
    path.write_bytes(data)
    load_or_refuse(path, stereo=stereo)


SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]


@FUZZ
@given(rate=st.one_of(st.integers(MIN_FILE_RATE, 200_000), st.sampled_from([8000, 22050, 44100, 96000]),
                      st.integers(1, MIN_FILE_RATE - 1), st.integers(MAX_FILE_RATE + 1, 2_000_000)),
       channels=st.integers(1, 8), subtype=st.sampled_from(SUBTYPES), flac=st.booleans(),
       frames=st.integers(0, 1500), seed=st.integers(0, 2**32 - 1), amplitude=st.floats(0, 4),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf]), cut=st.one_of(st.none(), st.floats(0, 0.99)),
       target=st.sampled_from([SAMPLE_RATE, None]))
def test_valid_files_of_any_rate_channels_and_subtype(tmp_path, rate, channels, subtype, flac, frames, seed,
                                                       amplitude, special, cut, target):
    """Files soundfile writes (WAV, FLAC for 16/24-bit): a whole file in range loads with the documented shape and
    values; an out-of-range rate, NaN/inf samples, no samples, fewer than one sample at the target rate or a cut
    are refused."""
    flac = flac and subtype in ("PCM_16", "PCM_24") and rate in (8000, 22050, 44100, 96000)  # rates FLAC can hold
    path = tmp_path / ("valid.flac" if flac else "valid.wav")
    written = amplitude * np.random.default_rng(seed).uniform(-1, 1, (frames, channels))
    float_file = subtype in ("FLOAT", "DOUBLE")
    if special is not None and frames and float_file:
        written[frames // 2, channels - 1] = special
    sf.write(path, written, rate, subtype=subtype)
    if cut is not None:
        path.write_bytes(path.read_bytes()[:int(cut * path.stat().st_size)])
    loaded = load_or_refuse(path, target)
    refused = (cut is not None or frames == 0 or not MIN_FILE_RATE <= rate <= MAX_FILE_RATE
               or (special is not None and float_file) or (target and resampled_length(frames, rate, target) < 1))
    if refused:
        assert loaded is None
        return
    assert loaded is not None
    audio, _ = loaded
    assert audio.shape == (2, resampled_length(frames, rate, target) if target else frames)
    if (target is None or rate == target) and (float_file or amplitude < 1):  # PCM beyond ±1 wraps as it is written
        expected = to_stereo(written.T).astype(np.float32)
        np.testing.assert_allclose(audio, expected, atol=2.0 / 2**7 if subtype == "PCM_U8" else 1e-4)


@FUZZ
@example(audio=np.array([[1e300, 0.5]]), single=False)  # finite in float64, inf in float32
@given(audio=arrays(np.float64, array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
                    elements=st.one_of(st.floats(-2, 2), st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -4e38,
                                                                           3e38, 5e-324]))),
       single=st.booleans())
def test_check_audio_on_random_arrays(audio, single):
    """check_audio: finite float32 of the same shape, or one-line AudioError (never inf from a float64 beyond
    float32's range)."""
    if single:
        with np.errstate(over="ignore"):
            audio = audio.astype(np.float32)
    try:
        checked = check_audio(audio)
    except AudioError as exc:
        assert "\n" not in str(exc)
        with np.errstate(over="ignore"):
            as32 = audio.astype(np.float32)
        assert as32.ndim != 2 or as32.shape[1] == 0 or not np.all(np.isfinite(as32))
        return
    assert checked.dtype == np.float32 and checked.shape == audio.shape and np.all(np.isfinite(checked))


# ---------------------------------------------------------------- the argument handling

def _commands(parser: argparse.ArgumentParser, prefix=()) -> list[tuple]:
    """Every (sub)command of the parser: (argv prefix, its option strings, its required options, its number of
    positional arguments)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    options = [o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")]
    required = [a.option_strings[0] for a in parser._actions if a.option_strings and a.required]
    positionals = sum(1 for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction))
    return found or [(prefix, options, required, positionals)]


COMMANDS = _commands(build_parser())
ALL_OPTIONS = sorted({o for _, options, _, _ in COMMANDS for o in options})


@pytest.fixture(scope="module")
def junk_paths(tmp_path_factory):
    """Paths a student might pass by mistake: missing, text as audio, empty, a folder, a folder of a bad song."""
    root = tmp_path_factory.mktemp("junk")
    (root / "text.wav").write_text("not audio\n" * 10)
    (root / "empty.flac").write_bytes(b"")
    (root / "empty folder").mkdir()
    (root / "songs" / "Björk – Jóga").mkdir(parents=True)
    (root / "songs" / "Björk – Jóga" / "vocals.wav").write_text("not audio either")
    return [str(root / name) for name in ("missing.wav", "text.wav", "empty.flac", "empty folder", "songs",
                                          "songs/Björk – Jóga")]


JUNK = ["", "0", "-1", "1", "3", "2.5", "nan", "inf", "-inf", "1e309", "x", "kazoo", "bundled:kazoo", "quick",
        "laptop", "pretrain", "all", "vocals", "vocals,kazoo", ",", "wav", "flac", "lora", "separated", "cpu",
        "cuda", "--", "-"]


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """The long-running library calls (rendering songs, installing sound sources, training, running the lessons)
    replaced by a one-line MSRError, so that any argv returns at once; the working folder is a temporary one."""
    import msr_lib.data.synth
    import msr_lib.train.curriculum
    import msr_lib.train.restorer
    import msr_lib.workshop

    def stub(*args, **kwargs):
        raise MSRError("stub: a long run would start here")

    for module, name in ((msr_lib.data.synth, "synthesize_songs"), (msr_lib.data.synth, "require_sound_sources"),
                         (msr_lib.train.curriculum, "train_separator"), (msr_lib.train.restorer, "train_restorer"),
                         (msr_lib.workshop, "run_workshop")):
        monkeypatch.setattr(module, name, stub)
    monkeypatch.chdir(tmp_path)


@FUZZ
@given(data=st.data())
def test_random_argv_never_tracebacks(stubbed, junk_paths, data):
    prefix, options, required, positionals = data.draw(st.sampled_from(COMMANDS))
    value = st.one_of(st.sampled_from(JUNK), st.sampled_from(junk_paths), st.text(max_size=8))
    token = st.one_of(st.sampled_from(options or ["--out"]), st.sampled_from(ALL_OPTIONS), value)
    argv = [*prefix]
    if data.draw(st.booleans()):  # mostly past argparse: the positionals and required options, junk values
        argv += [data.draw(value) for _ in range(positionals)]
        argv += [part for option in required for part in (option, data.draw(value))]
    argv += data.draw(st.lists(token, max_size=6))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
            parsed = True
        except SystemExit as exit_:  # argparse: usage errors (2), --help/--version (0)
            code, parsed = (0 if exit_.code is None else exit_.code), False
    text = err.getvalue()
    assert isinstance(code, int) and "Traceback" not in text, (argv, text)
    if parsed and code != 0:
        errors = [line for line in text.splitlines() if line.startswith("msr: error: ")]
        assert len(errors) == 1 and text.rstrip().endswith(errors[0]), (argv, text)
    elif not parsed:
        assert code in (0, 2), (argv, code)
