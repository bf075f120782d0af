"""msr_lib.evaluate and `msr evaluate`: matching, reporting, summaries, JSON, CLI."""
import json

import numpy as np
import pytest
import soundfile as sf

from msr_lib.cli import main
from msr_lib.errors import MSRError
from msr_lib.evaluate import evaluate, resolve_metrics

SR = 44100
#: noise level (dB below the reference) of each stem's estimate → expected ordering of the scores
NOISE_DB = {"vocals": -30.0, "bass": -15.0, "drums": 0.0}


def signal(seed, seconds=1.0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * (100 + 50 * seed) * t) + 0.05 * rng.standard_normal(n)
    return np.stack([x, 0.7 * x]).astype(np.float32)


def noisy(ref, level_db, seed):
    noise = np.random.default_rng(seed).standard_normal(ref.shape)
    noise *= np.sqrt(np.mean(ref.astype(np.float64) ** 2) / np.mean(noise ** 2)) * 10 ** (level_db / 20)
    return (ref + noise).astype(np.float32)


def write(path, audio):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T, SR, subtype="PCM_24" if path.suffix == ".flac" else "FLOAT")


def make_pair(root, songs=("s1", "s2"), seconds=1.0):
    """references/<song>/<stem>.wav and estimates/<song>/<stem>.wav = reference + noise at NOISE_DB."""
    for i, song in enumerate(songs):
        for j, (stem, level) in enumerate(NOISE_DB.items()):
            ref = signal(10 * i + j, seconds)
            write(root / "refs" / song / f"{stem}.wav", ref)
            write(root / "ests" / song / f"{stem}.wav", noisy(ref, level, 100 + 10 * i + j))
        write(root / "refs" / song / "mix.wav", ref)                 # mixture files are skipped
    return root / "ests", root / "refs"


def test_per_stem_means_follow_the_noise_levels(tmp_path):
    ests, refs = make_pair(tmp_path)
    result = evaluate(ests, refs, metrics=("multi_mel_snr", "si_snr"))
    assert list(result.per_stem) == ["vocals", "bass", "drums"]     # canonical order
    for metric in ("multi_mel_snr", "si_snr"):
        means = [result.per_stem[s][metric]["mean"] for s in ("vocals", "bass", "drums")]
        assert means[0] > means[1] > means[2]
        assert all(result.per_stem[s][metric]["count"] == 2 for s in NOISE_DB)
    si = result.per_stem["vocals"]["si_snr"]["mean"]
    assert 28 < si < 32                                               # white noise 30 dB below → ≈ 30 dB SI-SNR
    assert abs(result.per_stem["drums"]["si_snr"]["mean"]) < 1.5
    all_values = [v["si_snr"] for song in result.per_song.values() for v in song.values()]
    assert result.means["si_snr"] == pytest.approx(np.mean(all_values))
    assert not result.missing and not result.extra and not result.silent
    table = result.table()
    assert "multi_mel_snr" in table and "vocals" in table and table.splitlines()[-1].startswith("all")


def test_missing_extra_silent_and_length_mismatch_are_reported(tmp_path):
    ests, refs = make_pair(tmp_path)
    (ests / "s1" / "drums.wav").unlink()                               # missing estimate
    write(ests / "s2" / "guitar.wav", signal(50))                     # extra (alias → guitars, no reference)
    write(ests / "s2" / "click.wav", signal(51))                      # extra, not a stem name
    write(refs / "s2" / "keyboards.wav", np.zeros((2, SR), np.float32))   # silent reference
    write(ests / "s2" / "keys.wav", signal(52))
    write(ests / "s3" / "vocals.wav", signal(53))                     # a song with no reference
    write(refs / "s4" / "bass.wav", signal(54))                       # a song with no estimate
    ref = signal(55)
    write(refs / "s5" / "vocals.wav", ref)
    write(ests / "s5" / "vocals.wav", ref[:, :-300])                  # shorter estimate: trimmed, reported
    result = evaluate(ests, refs, metrics="si_snr")
    pairs = lambda items: sorted((i["song"], i["stem"]) for i in items)  # noqa: E731
    assert pairs(result.missing) == [("s1", "drums"), ("s4", "bass")]
    assert pairs(result.extra) == [("s2", "click.wav"), ("s2", "guitars"), ("s3", "vocals")]
    assert pairs(result.silent) == [("s2", "keyboards")]
    assert result.per_stem["keyboards"]["si_snr"]["count"] == 0
    assert "keyboards" not in result.per_song["s2"]
    assert result.length_mismatches == [{"song": "s5", "stem": "vocals", "estimate_samples": SR - 300,
                                         "reference_samples": SR}]
    assert result.per_song["s5"]["vocals"]["si_snr"] > 60              # trimmed pair is the identical signal
    assert result.per_stem["drums"]["si_snr"]["count"] == 1
    table = result.table()
    for note in ("missing estimates: 2", "extra estimates: 3", "silent references (excluded): 1",
                 "length mismatches"):
        assert note in table


def test_flat_folders_match_whatever_their_names(tmp_path):
    ests, refs = make_pair(tmp_path, songs=("only",))
    flat = evaluate(ests / "only", refs / "only", metrics="si_snr")
    nested = evaluate(ests, refs, metrics="si_snr")
    assert list(flat.per_song) == ["only"]
    same = lambda a, b: all(a[s]["si_snr"] == pytest.approx(b[s]["si_snr"]) for s in b)  # noqa: E731
    assert same(flat.per_song["only"], nested.per_song["only"])
    (ests / "only").rename(ests / "renamed")
    mixed = evaluate(ests / "renamed", refs, metrics="si_snr")        # flat against the only song of a folder
    assert same(mixed.per_song["only"], nested.per_song["only"])


def test_estimates_at_another_rate_and_mono_are_converted(tmp_path):
    import soxr

    ref = signal(1)
    write(tmp_path / "refs" / "vocals.wav", ref)
    (tmp_path / "ests").mkdir()
    mono_48k = soxr.resample(ref.mean(0), SR, 48000)                  # mono at 48 kHz → stereo at 44.1 kHz
    sf.write(tmp_path / "ests" / "vocals.wav", mono_48k, 48000, subtype="FLOAT")
    result = evaluate(tmp_path / "ests", tmp_path / "refs", metrics="si_snr")
    assert result.per_song["refs"]["vocals"]["si_snr"] > 5


def test_json_content_and_atomic_write(tmp_path, monkeypatch):
    ests, refs = make_pair(tmp_path, songs=("s1",))
    write(refs / "s1" / "keyboards.wav", np.zeros((2, SR), np.float32))
    result = evaluate(ests, refs, metrics=("si_snr",))
    out = tmp_path / "out" / "scores.json"
    result.to_json(out)
    data = json.loads(out.read_text())
    assert set(data) >= {"per_song", "per_stem", "means", "missing", "extra", "silent", "metrics", "counts"}
    assert data["per_song"]["s1"]["vocals"]["si_snr"] == pytest.approx(result.per_song["s1"]["vocals"]["si_snr"])
    assert data["per_stem"]["bass"]["si_snr"]["count"] == 1
    assert data["silent"] == [{"song": "s1", "stem": "keyboards"}] and data["counts"]["silent"] == 1
    assert data["metrics"]["si_snr"] == {"unit": "dB", "higher_is_better": True}
    assert [p.name for p in out.parent.iterdir()] == ["scores.json"]

    def fail(*args):
        raise OSError("disk full")

    import msr_lib.audio

    monkeypatch.setattr(msr_lib.audio.os, "replace", fail)  # the rename inside msr_lib.audio.atomic_file
    before = out.read_text()
    with pytest.raises(OSError):
        result.to_json(out)
    assert out.read_text() == before and [p.name for p in out.parent.iterdir()] == ["scores.json"]


def test_bad_input_raises_one_line_errors(tmp_path):
    ests, refs = make_pair(tmp_path, songs=("s1",))
    (tmp_path / "empty").mkdir()
    write(tmp_path / "other" / "x" / "vocals.wav", signal(3))
    write(tmp_path / "other" / "y" / "vocals.wav", signal(4))
    cases = [((ests, refs), {"metrics": "si_snr,nope"}, "unknown metric"),
             ((tmp_path / "nope", refs), {}, "no such folder"),
             ((tmp_path / "empty", refs), {}, "no stem audio files"),
             ((tmp_path / "other", refs), {}, "no song")]
    for args, kwargs, message in cases:
        with pytest.raises(MSRError, match=message):
            evaluate(*args, **kwargs)
    assert [m.name for m in resolve_metrics(" multi_mel_snr , si_snr ")] == ["multi_mel_snr", "si_snr"]


# ---------------------------------------------------------------- CLI

def test_cli_evaluate_prints_a_table_and_writes_json(tmp_path, capsys):
    ests, refs = make_pair(tmp_path, songs=("s1",))
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--estimates", str(ests), "--references", str(refs), "--json", str(out),
                 "--metrics", "si_snr"]) == 0
    printed = capsys.readouterr().out
    assert "vocals" in printed and "si_snr" in printed and "multi_mel_snr" not in printed
    assert json.loads(out.read_text())["per_stem"]["vocals"]["si_snr"]["count"] == 1


def test_cli_baselines_prints_three_tables(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for song in ("a", "b"):
        stems = {"bass": signal(1 if song == "a" else 2),
                 "drums": (0.1 * rng.standard_normal((2, SR))).astype(np.float32)}
        for name, audio in stems.items():
            write(tmp_path / "songs" / song / f"{name}.flac", audio)
    out = tmp_path / "baselines.json"
    assert main(["evaluate", "--baselines", "--references", str(tmp_path / "songs"), "--seed", "2",
                 "--metrics", "si_snr", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for title in ("Mixture as estimate", "Ideal ratio mask", "Ideal binary mask"):
        assert title in printed
    data = json.loads(out.read_text())
    assert list(data) == ["mixture", "irm", "ibm"]
    assert data["irm"]["means"]["si_snr"] > data["mixture"]["means"]["si_snr"]
    assert data["irm"]["info"]["seed"] == 2 and data["irm"]["counts"]["songs"] == 2


@pytest.mark.parametrize("extra, message", [
    (["--metrics", "si_snr,bogus"], "unknown metric"),
    (["--estimates", "{tmp}/nope"], "no such folder"),
    (["--estimates", "{tmp}/empty"], "no stem audio files"),
    (["--estimates", "{tmp}/other"], "no song"),
    ([], "give --estimates"),
    (["--baselines", "--estimates", "{tmp}/ests"], "leave out --estimates"),
])
def test_cli_bad_input_is_one_error_line_and_no_json(tmp_path, capsys, extra, message):
    ests, refs = make_pair(tmp_path, songs=("s1",))
    (tmp_path / "empty").mkdir()
    write(tmp_path / "other" / "x" / "vocals.wav", signal(3))
    out = tmp_path / "scores.json"
    args = ["evaluate", "--references", str(refs), "--json", str(out)] + [a.format(tmp=tmp_path) for a in extra]
    if "--estimates" not in args and "give --estimates" not in message:
        args += ["--estimates", str(ests)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("msr: error:") and message in err[0]
    assert not out.exists()
