"""Chunked separation (msr_lib.separate) and `msr separate`."""
import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from msr_lib.cli import main
from msr_lib.errors import MSRError
from msr_lib.models import BSRoformer, Separator, save_separator
from msr_lib.separate import crossfade_weights, separate, separate_file

STEMS4 = ("vocals", "bass", "drums", "other")


class GainModel(nn.Module):
    """Fake separator: every stem is the input times a fixed gain."""

    def __init__(self, gains=(0.25, 0.75), channels=2):
        super().__init__()
        self.audio_channels = channels
        self.register_buffer("gains", torch.tensor(gains, dtype=torch.float32))

    def forward(self, x):  # (b, c, s) → (b, n, c, s)
        assert x.ndim == 3 and x.shape[1] == self.audio_channels
        return x[:, None] * self.gains[None, :, None, None]


class FailingModel(GainModel):
    def forward(self, x):
        raise MSRError("boom")


def gain_separator(channels=2, rate=1000):
    return Separator(GainModel(channels=channels), ("vocals", "other"), rate)


def tiny_roformer():
    torch.manual_seed(0)
    return BSRoformer(dim=16, depth=1, heads=2, dim_head=8, stereo=True, num_stems=4, stft_hop_length=441,
                      time_transformer_depth=1, freq_transformer_depth=1, mask_estimator_depth=1,
                      mlp_expansion_factor=1).eval()


@pytest.fixture(scope="module")
def tiny_separator():
    return Separator(tiny_roformer(), STEMS4, 44100)


def noise(rng, channels, samples, amplitude=0.3):
    return (amplitude * rng.standard_normal((channels, samples))).astype(np.float32)


# ---------------------------------------------------------------- crossfade weights

@pytest.mark.parametrize("chunk,overlap", [(100, 0.0), (100, 0.25), (100, 0.5), (64, 0.75), (7, 0.9)])
@pytest.mark.parametrize("length", [1, 37, 64, 100, 101, 999])
def test_crossfade_weights_sum_to_one_and_edges_are_not_faded(length, chunk, overlap):
    hop = max(1, round(chunk * (1 - overlap)))
    starts, weights = crossfade_weights(length, chunk, hop)
    assert weights.shape == (len(starts), chunk)
    assert starts[0] == 0 and starts[-1] < length <= starts[-1] + chunk
    assert np.all(np.diff(starts) == hop)
    total = np.zeros(starts[-1] + chunk)
    for start, w in zip(starts, weights):
        total[start:start + chunk] += w
    np.testing.assert_allclose(total[:length], 1.0, atol=1e-12)
    assert weights[0, 0] == 1.0  # the signal's first sample: only the first chunk, unfaded
    assert weights[-1, length - 1 - starts[-1]] == 1.0  # its last sample: only the last chunk, unfaded
    np.testing.assert_array_equal(weights[0, :min(hop, length)], 1.0)  # no other chunk reaches here
    assert np.all(weights >= 0)


@pytest.mark.parametrize("overlap", [0.25, 0.5, 0.75, 0.9])
def test_crossfade_weights_are_smooth_at_any_overlap(overlap):
    """No chunk's weight jumps between neighbouring samples (a jump would be a seam in the output)."""
    chunk = 400
    starts, weights = crossfade_weights(4000, chunk, max(1, round(chunk * (1 - overlap))))
    assert np.abs(np.diff(weights[1:-1], axis=1)).max() < 0.05


def test_crossfade_weights_fade_inside_overlaps():
    starts, weights = crossfade_weights(400, 100, 50)
    assert starts == [0, 50, 100, 150, 200, 250, 300]
    assert weights[1, 0] < 0.01 and weights[0, 99] < 0.01  # ramps, not a plain average
    assert np.all(np.diff(weights[1, :50]) > 0) and np.all(np.diff(weights[1, 50:]) < 0)


# ---------------------------------------------------------------- identity through a fake separator

@pytest.mark.parametrize("length", [37, 100, 1234])  # shorter than a chunk, one chunk, many chunks + remainder
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_chunked_identity_reproduces_input_times_gain(rng, length, overlap, batch_size):
    mix = noise(rng, 2, length)
    out = separate(mix, gain_separator(), chunk_seconds=0.1, overlap=overlap, batch_size=batch_size,
                   device="cpu", progress=False)
    assert list(out) == ["vocals", "other"]
    for name, gain in (("vocals", 0.25), ("other", 0.75)):
        assert out[name].dtype == np.float32 and out[name].shape == (2, length)
        np.testing.assert_allclose(out[name], mix * gain, atol=1e-5)


def test_mono_input_to_stereo_model_gives_mono_stems(rng):
    mix = noise(rng, 1, 555)
    out = separate(mix, gain_separator(), chunk_seconds=0.1, device="cpu", progress=False)
    assert out["other"].shape == (1, 555)
    np.testing.assert_allclose(out["other"], mix * 0.75, atol=1e-5)
    flat = separate(mix[0], gain_separator(), chunk_seconds=0.1, device="cpu", progress=False)  # 1-D = mono
    np.testing.assert_allclose(flat["vocals"], out["vocals"], atol=1e-7)


def test_mono_model_separates_each_channel(rng):
    mix = noise(rng, 2, 333)
    out = separate(torch.from_numpy(mix), gain_separator(channels=1), chunk_seconds=0.1, batch_size=2,
                   device="cpu", progress=False)
    np.testing.assert_allclose(out["vocals"], mix * 0.25, atol=1e-5)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 0), np.float32), "no samples"),
    (np.array([[0.0, np.nan, 0.0]] * 2, np.float32), "NaN"),
    (np.array([[0.0, np.inf]] * 2, np.float32), "NaN or infinite"),
    (np.zeros((1, 2, 10), np.float32), "shape"),
    (np.zeros((3, 10), np.float32), "1 or 2 channels"),
])
def test_bad_mixture_is_one_line_error(bad, match):
    with pytest.raises(MSRError, match=match) as info:
        separate(bad, gain_separator(), device="cpu", progress=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs,match", [
    ({"overlap": 1.0}, "overlap"), ({"overlap": -0.1}, "overlap"), ({"batch_size": 0}, "batch_size"),
    ({"chunk_seconds": 0}, "chunk_seconds"), ({"device": "nonsense"}, "device"),
])
def test_bad_options_are_one_line_errors(kwargs, match):
    with pytest.raises(MSRError, match=match):
        separate(np.zeros((2, 100), np.float32), gain_separator(), **{"device": "cpu", **kwargs}, progress=False)


def test_default_chunk_comes_from_the_checkpoint_config(rng):
    calls = []

    class Spy(GainModel):
        def forward(self, x):
            calls.append(x.shape[-1])
            return super().forward(x)

    sep = Separator(Spy(), ("vocals", "other"), 1000, {"inference": {"chunk_seconds": 0.05}})
    separate(noise(rng, 2, 200), sep, overlap=0.0, device="cpu", progress=False)
    assert calls == [50] * 4


# ---------------------------------------------------------------- the tiny real BS-RoFormer

def test_chunked_matches_one_shot_shapes_on_tiny_roformer(rng, tiny_separator):
    mix = noise(rng, 2, 44100 + 4410, 0.1)
    one = separate(mix, tiny_separator, chunk_seconds=2.0, device="cpu", progress=False)
    chunked = separate(mix, tiny_separator, chunk_seconds=0.5, overlap=0.5, batch_size=2, device="cpu",
                       progress=False)
    assert list(one) == list(chunked) == list(STEMS4)
    for name in STEMS4:
        assert one[name].shape == chunked[name].shape == mix.shape
        assert np.all(np.isfinite(chunked[name])) and np.abs(chunked[name]).max() > 0
    # exactly one chunk of input: no padding, no fades, so the result is the model's own output
    exact = mix[:, :22050]
    out = separate(exact, tiny_separator, chunk_seconds=0.5, device="cpu", progress=False)
    with torch.inference_mode():
        direct = tiny_separator(torch.from_numpy(exact)[None])[0].numpy()
    for k, name in enumerate(STEMS4):
        np.testing.assert_allclose(out[name], direct[k], atol=1e-5)


# ---------------------------------------------------------------- separate_file

@pytest.mark.parametrize("channels", [2, 1])
def test_separate_file_writes_stems_at_input_rate_and_length(tmp_path, rng, tiny_separator, channels):
    src = tmp_path / "song.wav"
    mix = noise(rng, channels, 22050 // 2 + 7, 0.1)
    sf.write(src, mix.T, 22050, subtype="FLOAT")
    out = tmp_path / "stems"
    paths = separate_file(src, out, tiny_separator, chunk_seconds=0.25, device="cpu", progress=False)
    assert list(paths) == list(STEMS4)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{s}.wav" for s in STEMS4] + ["restore.json"])
    for name, path in paths.items():
        assert path == out / f"{name}.wav"
        info = sf.info(path)
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (22050, mix.shape[1], channels, "FLOAT")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_separate_file_flac_and_identity_through_resampling(tmp_path, rng):
    src = tmp_path / "song.flac"
    t = np.arange(24000) / 48000
    mix = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    sf.write(src, mix.T, 48000, subtype="PCM_24")
    paths = separate_file(src, tmp_path / "out", gain_separator(rate=44100), output_format="flac",
                          chunk_seconds=0.1, device="cpu", progress=False)
    other, rate = sf.read(paths["other"], dtype="float32", always_2d=True)
    assert rate == 48000 and sf.info(paths["other"]).subtype == "PCM_24" and other.shape == (24000, 2)
    np.testing.assert_allclose(other.T[:, 200:-200], 0.75 * mix[:, 200:-200], atol=2e-3)


def test_separate_file_failure_leaves_existing_folder_intact(tmp_path, rng):
    src = tmp_path / "song.wav"
    sf.write(src, noise(rng, 2, 500).T, 1000)
    out = tmp_path / "out"
    separate_file(src, out, gain_separator(), chunk_seconds=0.1, device="cpu", progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    failing = Separator(FailingModel(), ("vocals", "other"), 1000)
    with pytest.raises(MSRError, match="boom"):
        separate_file(src, out, failing, chunk_seconds=0.1, device="cpu", progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "song.wav"]


def test_separate_file_refuses_a_folder_with_other_files(tmp_path, rng):
    src = tmp_path / "song.wav"
    sf.write(src, noise(rng, 2, 500).T, 1000)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(MSRError, match="other files"):
        separate_file(src, tmp_path / "mine", gain_separator(), device="cpu", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(MSRError, match="output_format"):
        separate_file(src, tmp_path / "x", gain_separator(), output_format="mp3", progress=False)
    with pytest.raises(MSRError, match="subtype"):
        separate_file(src, tmp_path / "x", gain_separator(), output_format="flac", subtype="FLOAT", progress=False)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- msr separate

@pytest.fixture(scope="module")
def saved_separator(tmp_path_factory):
    return save_separator(tiny_roformer(), tmp_path_factory.mktemp("ckpt") / "tiny", stems=list(STEMS4))


def test_cli_separate_writes_stems(tmp_path, rng, saved_separator, capsys):
    src = tmp_path / "song.wav"
    sf.write(src, noise(rng, 2, 30000, 0.1).T, 32000)
    out = tmp_path / "stems"
    code = main(["separate", str(src), "--out", str(out), "--model", str(saved_separator), "--device", "cpu",
                 "--chunk-seconds", "0.5", "--overlap", "0.5", "--batch-size", "2", "--format", "flac"])
    assert code == 0
    assert str(out) in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{s}.flac" for s in STEMS4] + ["restore.json"])
    info = sf.info(out / "drums.flac")
    assert (info.samplerate, info.frames, info.channels) == (32000, 30000, 2)


def _fails_cleanly(argv, out, capsys, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("msr: error:") and "\n" not in err and match in err, err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_cli_separate_bad_inputs(tmp_path, saved_separator, capsys):
    out = tmp_path / "stems"
    model = ["--model", str(saved_separator), "--device", "cpu"]
    _fails_cleanly(["separate", str(tmp_path / "missing.wav"), "--out", str(out), *model], out, capsys,
                   "no such file")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    _fails_cleanly(["separate", str(corrupt), "--out", str(out), *model], out, capsys, "cannot read audio")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), 44100)
    _fails_cleanly(["separate", str(empty), "--out", str(out), *model], out, capsys, "no samples")
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros((1000, 2), np.float32), 44100)
    _fails_cleanly(["separate", str(good), "--out", str(out), "--model", str(tmp_path / "nope")], out, capsys,
                   "no such checkpoint")
    _fails_cleanly(["separate", str(good), "--out", str(out), "--model", "bundled:nonexistent"], out, capsys,
                   "no bundled separator")
    _fails_cleanly(["separate", str(good), "--out", str(out), *model, "--overlap", "1.5"], out, capsys, "overlap")


# ---------------------------------------------------------------- streaming

@pytest.mark.parametrize("blocks", [[1234], [1, 233, 1000], [50] * 24 + [34], [700, 534]])
@pytest.mark.parametrize("batch_size", [1, 2])
def test_streamed_overlap_add_equals_whole_signal_whatever_the_block_sizes(rng, blocks, batch_size):
    """OverlapAdd returns the same samples however the input arrives; the blocks it returns add up to the length."""
    from msr_lib.separate import OverlapAdd, crossfade_weights

    mix = noise(rng, 2, sum(blocks))
    starts, weights = crossfade_weights(mix.shape[1], 100, 60)
    process = lambda x: torch.sin(3 * x)[:, None] * torch.tensor([1.0, -2.0])[None, :, None, None]  # noqa: E731
    stream = OverlapAdd(process, length=mix.shape[1], chunk=100, hop=60, channels=2, out_shape=(2, 2),
                        batch_size=batch_size)
    out, at = [], 0
    for n in blocks:
        out += stream.push(mix[:, at:at + n])
        at += n
    out += stream.finish()
    got = np.concatenate(out, axis=-1)
    expected = np.zeros((2, 2, starts[-1] + 100))
    padded = np.pad(mix, ((0, 0), (0, starts[-1] + 100 - mix.shape[1])))
    for start, w in zip(starts, weights):
        expected[..., start:start + 100] += process(torch.from_numpy(padded[None, :, start:start + 100]))[0].numpy() * w
    assert got.shape == (2, 2, mix.shape[1])
    np.testing.assert_allclose(got, expected[..., :mix.shape[1]], atol=1e-5)
    assert max(b.shape[-1] for b in out) <= 100 + 60 * batch_size  # memory: a chunk and a batch of hops at most
