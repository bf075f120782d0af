"""msr_lib.evaluate and `msr evaluate`: matching, reporting, summaries, JSON, CLI; ScoreBoard and score_separator."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from msr_lib.baselines import ideal_ratio_mask
from msr_lib.cli import main
from msr_lib.errors import MSRError
from msr_lib.evaluate import ScoreBoard, evaluate, level_error_db, resolve_metrics, score_separator
from msr_lib.metrics import multi_mel_snr, si_snr, snr
from msr_lib.models import Separator
from msr_lib.separate import separate

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


# ---------------------------------------------------------------- ScoreBoard and score_separator

class MixModel(torch.nn.Module):
    """Fake separator: stem k is ``gains[k]`` × the input plus ``bends[k]`` × its cube (a different, deterministic
    estimate per stem, not just a scaled mixture)."""

    def __init__(self, gains, bends):
        super().__init__()
        self.audio_channels = 2
        self.register_buffer("gains", torch.tensor(gains, dtype=torch.float32))
        self.register_buffer("bends", torch.tensor(bends, dtype=torch.float32))

    def forward(self, x):  # (b, c, s) → (b, n, c, s)
        return x[:, None] * self.gains[None, :, None, None] + x.pow(3)[:, None] * self.bends[None, :, None, None]


def mix_separator(stems=("vocals", "bass", "drums"), rate=SR):
    return Separator(MixModel([0.5, 0.3, 0.2][:len(stems)], [0.0, 2.0, 4.0][:len(stems)]), stems, rate)


def song_stems(seed=0, seconds=0.5):
    """vocals and bass playing, keyboards digitally silent."""
    return {"vocals": signal(seed, seconds), "bass": 0.5 * signal(seed + 1, seconds),
            "keyboards": np.zeros((2, int(seconds * SR)), np.float32)}


def test_score_board_rows_floor_gain_and_silent_stems():
    refs = song_stems()
    mixture = np.sum(list(refs.values()), axis=0)
    estimates = {stem: noisy(ref, NOISE_DB[stem], 7) for stem, ref in refs.items() if stem != "keyboards"}
    board = ScoreBoard(metric="si_snr", baselines=("irm", "mixture"), sample_rate=SR)
    board.add_song("a", references=refs, mixture=mixture, estimates={"noisy": estimates})
    assert list(board.rows) == ["mixture", "irm", "noisy"]          # baselines first, in BASELINES order
    expected = {"mixture": {s: si_snr(mixture, refs[s]) for s in ("vocals", "bass")},
                "irm": {s: si_snr(ideal_ratio_mask(mixture, refs)[s], refs[s]) for s in ("vocals", "bass")},
                "noisy": {s: si_snr(estimates[s], refs[s]) for s in ("vocals", "bass")}}
    means = board.means()
    assert list(means) == list(expected) and all(list(means[r]) == ["vocals", "bass"] for r in means)
    for row, values in expected.items():
        assert means[row] == pytest.approx(values)
        assert board.mean(row) == pytest.approx(np.mean(list(values.values())))
        assert board.gain(row) == pytest.approx(np.mean([values[s] - expected["mixture"][s] for s in values]))
    assert board.gain("mixture") == 0.0 and board.gain("noisy") > 10
    assert board.silent == [{"song": "a", "stem": "keyboards"}]     # left out of every row, counted once
    assert board.counts("noisy") == {"vocals": 1, "bass": 1}
    table = board.table()
    assert "SI-SNR (dB, ↑ better)" in table and "silent references (left out): 1 (a/keyboards)" in table
    scores, levels = table.split("level error (dB")
    lines = {line.split("  ")[0].strip(): line for line in scores.splitlines()}
    assert lines["Mixture as estimate"].split()[-2] == "floor"
    assert lines["noisy"].split()[-1] == f"{board.sum_snr('noisy'):.2f}"   # a clean mixture: the sum SNR column
    assert lines["noisy"].split()[-2] == f"{board.gain('noisy'):+.2f}"
    assert lines["noisy"].split()[-3] == f"{board.mean('noisy'):.2f}"
    level_lines = {line.split("  ")[0].strip(): line for line in levels.splitlines()[1:]}
    assert level_lines["noisy"].split()[-1] == f"{board.level_error('noisy'):.2f}"
    data = board.to_dict()
    assert list(data["rows"]) == ["mixture", "irm", "noisy"] and data["silent"] == board.silent
    assert data["rows"]["noisy"]["gain"] == pytest.approx(board.gain("noisy"))
    assert data["rows"]["irm"]["per_stem"]["bass"]["mean"] == pytest.approx(expected["irm"]["bass"])
    json.dumps(data, allow_nan=False)


def test_score_board_level_errors_and_sum_snr():
    refs = {"vocals": 0.3 * signal(0), "bass": 0.3 * signal(1), "drums": 0.3 * signal(2), "guitars": signal(3),
            "keyboards": signal(4), "other": 0.5 * signal(5), "orchestral": np.zeros((2, SR), np.float32)}
    mixture = np.sum(list(refs.values()), axis=0)
    rest = mixture - refs["vocals"] - refs["bass"] - refs["drums"]   # everything but vocals, bass and drums
    quiet = {**refs, "vocals": refs["vocals"] * 10 ** (-6 / 20)}
    double = {**refs, "guitars": rest, "keyboards": rest, "other": rest}  # the new stems each take `other`'s part
    board = ScoreBoard(metric="si_snr", sample_rate=SR)
    board.add_song("a", references=refs, mixture=mixture, estimates={"exact": dict(refs), "quiet": quiet,
                                                                      "double": double})
    assert board.level_errors("quiet")["vocals"] == pytest.approx(6.02, abs=0.1)
    assert "orchestral" not in board.level_errors("quiet")                # silent references are left out
    assert max(board.level_errors("exact").values()) < 0.01 and board.level_error("exact") < 0.01
    assert board.level_errors("quiet")["bass"] < 0.01 and board.level_error("quiet") < 0.01  # a median over stems
    assert board.sum_snr("exact") > 60
    assert board.sum_snr("double") < 0
    assert board.sum_snr("double") == pytest.approx(snr(mixture + 2 * rest, mixture), abs=1e-3)
    assert board.sum_snr("mixture") == pytest.approx(-20 * np.log10(len(refs) - 1), abs=1e-3)  # 7 copies of it
    assert board.level_errors("mixture")["guitars"] > 3                   # the mix is louder than any stem
    data = board.to_dict()
    assert data["rows"]["quiet"]["level_error_db"]["per_stem"]["vocals"] == pytest.approx(6.02, abs=0.1)
    assert data["rows"]["quiet"]["level_error_db"]["per_song"]["a"]["vocals"] == pytest.approx(6.02, abs=0.1)
    assert data["rows"]["double"]["sum_snr_db"]["median"] == pytest.approx(board.sum_snr("double"))
    json.dumps(data, allow_nan=False)
    assert "sum SNR" in board.table() and "level error (dB" in board.table()

    # a mastered (here: louder) mixture: the target is the stem at the mix's level, and no sum SNR
    loud = ScoreBoard(metric="si_snr", sample_rate=SR)
    loud.add_song("b", references=refs, mixture=2 * mixture, estimates={
        "clean level": dict(refs), "mix level": {stem: 2 * ref for stem, ref in refs.items()}})
    assert loud.level_errors("clean level")["vocals"] == pytest.approx(6.02, abs=0.05)
    assert loud.level_error("mix level") < 0.01
    assert np.isnan(loud.sum_snr("mix level")) and "sum SNR" not in loud.table()
    assert loud.to_dict()["rows"]["mix level"]["sum_snr_db"] == {"median": None, "per_song": {}}


def test_score_board_same_song_later_rows_and_bad_rows():
    refs = song_stems(seed=2)
    mixture = np.sum(list(refs.values()), axis=0)
    good = {s: noisy(refs[s], -30.0, 1) for s in ("vocals", "bass")}
    bad = {s: noisy(refs[s], 0.0, 2) for s in ("vocals", "bass")}
    board = ScoreBoard(metric="si_snr", sample_rate=SR)
    board.add_song("a", references=refs, mixture=mixture, estimates={"good": good})
    board.add_song("a", references=refs, mixture=mixture, estimates={"bad": bad})    # adds a row, not a song
    assert list(board.rows) == ["mixture", "good", "bad"] and board.songs == ["a"]
    assert board.counts("mixture") == {"vocals": 1, "bass": 1}                      # baselines scored once
    assert board.means()["bad"]["vocals"] == pytest.approx(si_snr(bad["vocals"], refs["vocals"]))
    assert board.gain("good") > board.gain("bad")
    board.add_song("b", references=refs, mixture=mixture, estimates={"good": good})  # another song: same rows
    assert board.counts("good") == {"vocals": 2, "bass": 2} and board.counts("bad") == {"vocals": 1, "bass": 1}
    cases = [({"estimates": {"good": good}}, "has scored this song already"),
             ({"estimates": {"irm": good}}, "is a baseline's"),
             ({"estimates": {"odd": 3.0}}, "estimates must be"),
             ({"mixture": 2 * mixture}, "added before with other references"),
             ({"estimates": {"missing": "/no/such/folder"}}, "no such folder")]
    for change, message in cases:
        with pytest.raises(MSRError, match=message):
            board.add_song("a", **{"references": refs, "mixture": mixture, **change})
    assert list(board.rows) == ["mixture", "good", "bad"]                          # a failed add adds nothing
    with pytest.raises(MSRError, match="unknown baseline"):
        ScoreBoard(baselines=("mixture", "oracle"))
    with pytest.raises(MSRError, match="unknown metric"):
        ScoreBoard(metric="sdr")
    with pytest.raises(MSRError, match="no row 'nope'"):
        board.mean("nope")
    with pytest.raises(MSRError, match="needs the 'mixture' baseline"):
        ScoreBoard(baselines=()).gain("good")


def test_score_board_folder_row_equals_the_dict_row(tmp_path):
    refs = song_stems(seed=4)
    mixture = np.sum(list(refs.values()), axis=0)
    estimates = {s: noisy(refs[s], -10.0, 3) for s in ("vocals", "bass")}
    folder = tmp_path / "est"
    write(folder / "vocal.wav", estimates["vocals"])                 # an alias of vocals
    write(folder / "bass.wav", estimates["bass"])
    write(folder / "mastered_mix.wav", mixture)                      # a mix file: skipped
    write(folder / "click.wav", estimates["bass"])                   # no stem name: extra
    board = ScoreBoard(metric="si_snr", sample_rate=SR)
    board.add_song("a", references=refs, mixture=mixture, estimates={"dict": estimates, "folder": folder})
    assert board.means()["folder"] == pytest.approx(board.means()["dict"], abs=1e-4)
    assert board.rows["folder"].extra == [{"song": "a", "stem": "click.wav"}]
    assert "folder: extra estimates: 1 (a/click.wav)" in board.table()
    short = {"vocals": estimates["vocals"][:, :-100]}                # a shorter estimate: trimmed and listed
    board.add_song("a", references=refs, mixture=mixture, estimates={"short": short})
    assert board.rows["short"].missing == [{"song": "a", "stem": "bass"}]
    assert board.rows["short"].length_mismatches[0]["estimate_samples"] == refs["vocals"].shape[1] - 100
    assert "short: missing estimates: 1 (a/bass)" in board.table()


def test_score_board_separator_row_separates_the_mixture():
    refs = {"vocals": signal(5, 0.5), "bass": signal(6, 0.5), "drums": 0.2 * signal(7, 0.5)}
    mixture = np.sum(list(refs.values()), axis=0)
    separator = mix_separator()
    board = ScoreBoard(sample_rate=SR)                               # Multi-Mel-SNR, the floor only
    board.add_song("a", references=refs, mixture=mixture, estimates={"fake": separator})
    by_hand = separate(mixture, separator, progress=False)
    expected = {s: multi_mel_snr(by_hand[s], refs[s], SR) for s in refs}
    assert board.means()["fake"] == pytest.approx(expected, abs=1e-6)
    assert board.means()["fake"]["drums"] != pytest.approx(board.means()["mixture"]["drums"], abs=0.1)
    with pytest.raises(MSRError, match="runs at 22050 Hz"):
        board.add_song("a", references=refs, mixture=mixture, estimates={"slow": mix_separator(rate=22050)})


def test_score_board_plot_draws_a_bar_per_row_and_stem():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = song_stems(seed=8)
    mixture = np.sum(list(refs.values()), axis=0)
    board = ScoreBoard(metric="si_snr", baselines=("mixture", "irm"), sample_rate=SR)
    board.add_song("a", references=refs, mixture=mixture,
                   estimates={"noisy": {s: noisy(refs[s], -20.0, 9) for s in ("vocals", "bass")}})
    fig = board.plot()
    ax = fig.axes[0]
    assert len(ax.containers) == 3
    for container, (row, means) in zip(ax.containers, board.means().items()):
        assert [bar.get_height() for bar in container] == pytest.approx([means["vocals"], means["bass"]])
    floor_color = ax.containers[0][0].get_facecolor()
    assert floor_color[:3] == pytest.approx((0.6, 0.6, 0.6))
    assert all(bar.get_facecolor() != floor_color for c in ax.containers[1:] for bar in c)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["vocals", "bass"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Mixture as estimate",
                                                                   "Ideal ratio mask (oracle)", "noisy"]
    assert ax.get_ylabel() == "SI-SNR (dB, ↑ better)" and ax.get_title() == "SI-SNR per stem, 1 song"
    plt.close(fig)
    fig, ax = plt.subplots()
    assert board.plot(ax, title="mine") is fig and ax.get_title() == "mine"
    plt.close(fig)


def write_song_folder(folder, stems):
    for name, audio in stems.items():
        write(folder / f"{name}.flac", audio)
    write(folder / "clean_mix.flac", np.sum(list(stems.values()), axis=0))


@pytest.mark.parametrize("mix", ["clean", "mastered"])
def test_score_separator_matches_a_hand_computation(tmp_path, mix):
    from msr_lib.audio import group_stems, load_song_stems
    from msr_lib.data.synth import song_seed
    from msr_lib.degrade import degrade_mix

    songs = {"s1": {"vocals": signal(1, 1.0), "bass": signal(2, 1.0), "guitars": 0.5 * signal(3, 1.0)},
             "s2": {"vocals": signal(4, 1.0), "piano": 0.5 * signal(5, 1.0)}}     # no bass in s2
    for name, stems in songs.items():
        write_song_folder(tmp_path / "songs" / name, stems)
    separator = mix_separator(("vocals", "bass", "other"))
    board = score_separator(separator, tmp_path / "songs", mix=mix, seed=11, name="fake")
    assert list(board.rows) == ["mixture", "irm", "fake"] and board.songs == ["s1", "s2"]
    by_hand = {row: {} for row in board.rows}
    levels = {row: {} for row in board.rows}
    for index, name in enumerate(("s1", "s2")):
        refs = group_stems(load_song_stems(tmp_path / "songs" / name), separator.stems)   # guitars, piano → other
        mixture = np.sum(list(refs.values()), axis=0)
        if mix == "mastered":
            playing = {s: a for s, a in refs.items() if a.any()}
            mixture = degrade_mix(playing, SR, seed=song_seed(11, index)).mastered_mix
        estimates = {"mixture": {s: mixture for s in refs}, "irm": ideal_ratio_mask(mixture, refs),
                     "fake": separate(mixture, separator, progress=False)}
        clean = np.sum(list(refs.values()), axis=0)
        gain = np.sqrt(np.mean(mixture.astype(np.float64) ** 2) / np.mean(clean.astype(np.float64) ** 2))
        assert (gain == pytest.approx(1.0)) == (mix == "clean")
        for row, est in estimates.items():
            for stem, ref in refs.items():
                if ref.any():
                    by_hand[row].setdefault(stem, []).append(multi_mel_snr(est[stem], ref, SR))
                    levels[row].setdefault(stem, []).append(level_error_db(est[stem], gain * ref, SR))
    for row, per_stem in by_hand.items():
        assert board.means()[row] == pytest.approx({s: np.mean(v) for s, v in per_stem.items()}, abs=1e-6)
        assert board.level_errors(row) == pytest.approx({s: np.median(v) for s, v in levels[row].items()}, abs=1e-4)
    assert np.isnan(board.sum_snr("fake")) == (mix == "mastered")
    assert board.counts("fake") == {"vocals": 2, "bass": 1, "other": 2}
    assert board.silent == [{"song": "s2", "stem": "bass"}]
    with pytest.raises(MSRError, match="mix must be one of"):
        score_separator(separator, tmp_path / "songs", mix="loud")
