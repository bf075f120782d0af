"""Lesson 07's tasks and leaderboard (msr_lib/challenges.py) and the function checker (msr_lib.exercises).

The checks must say ✅ to the solutions and ❌ — naming the case and what went wrong — to wrong answers; the
leaderboard must score, sort, persist and refuse bad input in one line without writing anything.
"""
import json
import multiprocessing

import numpy as np
import pytest

from msr_lib import challenges
from msr_lib.audio import loudness_lufs
from msr_lib.errors import MSRError
from msr_lib.exercises import NO_ANSWER, check_function, difference, show_solution
from msr_lib.separate import chunk_starts, crossfade_weights
from msr_lib.stems import INSTRUMENT_STEMS

#: a tiny challenge for the leaderboard tests: one 2-s song (song 4 of seed 6000 has vocals at that length)
TINY = {"seconds": 2.0, "indices": (4,)}


def verdict(capsys) -> str:
    return capsys.readouterr().out.strip()


# ---------------------------------------------------------------- check_function

def square(x):
    return np.asarray(x, dtype=float) ** 2


CASES = {"a vector": (np.arange(4.0),), "a matrix": (np.ones((2, 3)),)}


def test_check_function_right_and_wrong_values(capsys):
    check_function(square, CASES, square, what="your square", explanation="squares are products.")
    out = verdict(capsys)
    assert out.startswith("✅") and "passes all 2 cases" in out and out.endswith("squares are products.")

    check_function(lambda x: np.asarray(x) * 2, CASES, square, what="your square", explanation="squares are products.")
    out = verdict(capsys)
    # x*2 equals x**2 at 0 and 2 but not at 3: off by |6 - 9| = 3 at index 3
    assert out.startswith("❌ your square fails on case “a vector”: values off by up to 3 (at index (3,): 6, "
                          "expected 9)") and out.endswith("squares are products.")
    assert "\n" not in out


def test_check_function_names_errors_shapes_and_none_in_one_line(capsys):
    def broken(x):
        return 1 / 0

    check_function(broken, CASES, square, what="f")
    out = verdict(capsys)
    assert out.startswith("❌ f fails on case “a vector”: it raised ZeroDivisionError: division by zero")
    assert "Traceback" not in out and "\n" not in out

    check_function(lambda x: square(x)[:2], CASES, square, what="f")
    assert "returned shape (2,), expected (4,)" in verdict(capsys)
    check_function(lambda x: None, CASES, square, what="f")
    assert "returned None (a missing `return`?)" in verdict(capsys)
    check_function(lambda x: square(x) * np.nan, CASES, square, what="f")
    assert "NaN or infinite values (4 of 4)" in verdict(capsys)
    check_function(42, CASES, square, what="f")
    assert verdict(capsys).startswith("❌ f is not a function (it is int 42")
    check_function(None, CASES, square, what="f", hint="square it.", solution="def f(x): return x ** 2")
    out = verdict(capsys)
    assert out.startswith(NO_ANSWER) and "square it." in out and "✅" not in out and "❌" not in out
    show_solution()
    assert verdict(capsys) == "def f(x): return x ** 2"


def test_check_function_gives_every_call_its_own_inputs(capsys):
    def spoils(x):
        x[:] = 100.0  # changes its input in place
        return square(np.arange(4.0)) if len(x) == 4 else square(np.ones((2, 3)))

    check_function(spoils, CASES, square, what="f")
    assert verdict(capsys).startswith("✅")  # the reference still saw the original inputs
    assert CASES["a vector"][0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_difference_walks_dicts_and_tuples():
    assert difference({"a": 1.0, "b": [1, 2]}, {"a": 1.0, "b": [1, 2]}) is None
    assert difference({"a": 1.0}, {"a": 1.0, "b": 2.0}) == "keys differ: missing ['b']"
    assert difference({"a": 1.5}, {"a": 1.0}) == "['a']: returned 1.5, expected 1"
    assert difference(([0, 1], np.zeros(3)), ([0, 1], np.ones(3))).startswith("[1]: values off by up to 1")
    assert difference(np.float32(1.0) + 1e-7, 1.0) is None
    assert difference("text", np.zeros(2)) == "returned a str, expected numbers of shape (2,)"


# ---------------------------------------------------------------- the tasks' solutions and checks

def test_other_stem_makes_the_stems_add_up():
    rng = np.random.default_rng(0)
    named = {stem: rng.standard_normal((2, 50)) for stem in INSTRUMENT_STEMS}
    mixture = rng.standard_normal((2, 50))
    other = challenges.other_stem(mixture, named)
    np.testing.assert_allclose(other + sum(named.values()), mixture, atol=1e-12)
    assert other.shape == mixture.shape and named["vocals"].shape == (2, 50)  # inputs untouched


def test_check_other_stem(capsys):
    challenges.check_other_stem(challenges.other_stem)
    right = verdict(capsys)
    assert right.startswith("✅ your other_stem passes all 3 cases")
    challenges.check_other_stem(lambda mixture, named: mixture - named["vocals"] - named["bass"] - named["drums"])
    wrong = verdict(capsys)
    assert wrong.startswith("❌ your other_stem fails on case “stereo, all 8 stems playing”: values off by up to")
    assert right.endswith("gets `other` for free.") and wrong.endswith("gets `other` for free.")
    challenges.check_other_stem(lambda mixture, named: (mixture - sum(named.values()))[0])
    assert "returned shape (400,), expected (2, 400)" in verdict(capsys)
    show_solution()
    assert "def other_stem(mixture" in verdict(capsys)


@pytest.mark.parametrize("length,chunk,hop", [(1000, 400, 200), (1100, 400, 300), (800, 400, 400), (300, 400, 300),
                                              (5000, 441, 331), (2000, 300, 151)])
def test_crossfade_is_the_separators_up_to_half_overlap(length, chunk, hop):
    np.testing.assert_allclose(challenges.crossfade(length, chunk, hop), crossfade_weights(length, chunk, hop)[1],
                               atol=1e-12)


@pytest.mark.parametrize("length,chunk,hop", [(1000, 400, 100), (997, 64, 9), (10, 400, 1), (4321, 256, 64)])
def test_crossfade_sums_to_one_with_flat_edges_and_no_steps(length, chunk, hop):
    weights = challenges.crossfade(length, chunk, hop)
    starts = chunk_starts(length, chunk, hop)
    assert weights.shape == (len(starts), chunk)
    total = np.zeros(starts[-1] + chunk)
    for start, row in zip(starts, weights):
        total[start:start + chunk] += row
    np.testing.assert_allclose(total[:length], 1.0, atol=1e-12)
    assert weights[0, 0] == 1.0 and weights.min() > 0 and weights.max() <= 1.0
    # the solution multiplies overlapping fade-in and fade-out, so it stays smooth where crossfade_weights steps
    assert np.abs(np.diff(weights, axis=1)).max() < 0.1


def test_check_crossfade(capsys):
    challenges.check_crossfade(challenges.crossfade)
    assert verdict(capsys).startswith("✅ your crossfade passes all 5 cases")
    challenges.check_crossfade(lambda length, chunk, hop: crossfade_weights(length, chunk, hop)[1])
    assert verdict(capsys).startswith("✅")  # the separator's own weights pass too

    challenges.check_crossfade(lambda length, chunk, hop: np.tile(np.hanning(chunk),
                                                                  (len(chunk_starts(length, chunk, hop)), 1)))
    assert "the weights at sample 0 add up to 0.000, not 1: the song's start is faded" in verdict(capsys)

    def box(length, chunk, hop):  # sums to 1, but steps at the seams
        starts = chunk_starts(length, chunk, hop)
        cover = np.zeros(starts[-1] + chunk)
        for start in starts:
            cover[start:start + chunk] += 1
        return np.stack([1 / cover[start:start + chunk] for start in starts])

    challenges.check_crossfade(box)
    assert "chunk 0's weight jumps by 0.50 at sample 200" in verdict(capsys)

    def unnormalised(length, chunk, hop):  # sin² ramps sum to 1 for two chunks, not for three
        starts, fade = chunk_starts(length, chunk, hop), chunk - hop
        windows = np.ones((len(starts), chunk))
        if fade:
            ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2
            windows[1:, :fade] *= ramp
            windows[:-1, chunk - fade:] *= ramp[::-1]
        return windows

    challenges.check_crossfade(unnormalised)
    out = verdict(capsys)
    assert out.startswith("❌ your crossfade fails on case “75 % overlap”: the weights covering sample")
    assert "add up to" in out and "not 1" in out
    challenges.check_crossfade(lambda length, chunk, hop: challenges.crossfade(length, chunk, hop)[:-1])
    assert "returned shape (3, 400), expected (4, 400)" in verdict(capsys)


def test_scale_to_lufs_and_check_loudness(capsys):
    rng = np.random.default_rng(3)
    quiet = 0.01 * rng.standard_normal((2, 44100)).astype(np.float32)
    scaled = challenges.scale_to_lufs(quiet, 44100, -20.0)
    assert abs(loudness_lufs(scaled, 44100) + 20.0) < 0.01
    challenges.check_loudness(scaled, quiet, 44100, -20.0)
    right = verdict(capsys)
    assert right.startswith("✅ loudness of your estimate = -20.00 LUFS")

    measured = loudness_lufs(quiet, 44100)
    power_db = quiet * 10 ** ((-20.0 - measured) / 10)  # the power convention: twice the gain in dB
    challenges.check_loudness(power_db, quiet, 44100, -20.0)
    wrong = verdict(capsys)
    expected_off = -20.0 - measured  # the gain applied a second time
    assert wrong.startswith("❌ loudness of your estimate = ") and f"{expected_off:.2f} LUFS too high" in wrong
    assert right.split(". ", 1)[1] == wrong.split(". ", 1)[1]  # the same explanation for both

    challenges.check_loudness(scaled + 0.01, quiet, 44100, -20.0)
    assert "not a scaled copy of the original" in verdict(capsys)
    challenges.check_loudness(scaled[:1], quiet, 44100, -20.0)
    assert "has shape (1, 44100), the original (2, 44100)" in verdict(capsys)
    challenges.check_loudness(None, quiet, 44100, -20.0)
    assert verdict(capsys).startswith(NO_ANSWER)


def test_choice_checks(capsys):
    challenges.check_generalist_stem("Other")
    assert verdict(capsys).startswith("✅ 'Other' is right.")
    challenges.check_generalist_stem("vocals")
    assert verdict(capsys).startswith("❌ 'vocals' is not it.")
    challenges.check_level_metric("snr")
    assert verdict(capsys).startswith("✅")
    for wrong in ("si_snr", "multi_mel_snr"):
        challenges.check_level_metric(wrong)
        assert verdict(capsys).startswith("❌")


def test_the_level_answer_is_what_the_metrics_do():
    from msr_lib.metrics import multi_mel_snr, si_snr, snr

    rng = np.random.default_rng(5)
    reference = rng.standard_normal((2, 22050)).astype(np.float32)
    estimate = reference + 0.1 * rng.standard_normal((2, 22050)).astype(np.float32)
    louder = 2.0 * estimate
    changes = {name: abs(f(louder, reference, 44100) - f(estimate, reference, 44100))
               for name, f in (("snr", snr), ("si_snr", si_snr), ("multi_mel_snr", multi_mel_snr))}
    assert changes["snr"] > 3 and changes["si_snr"] < 1e-6 and changes["multi_mel_snr"] < 1e-4
    assert max(changes, key=changes.get) == challenges.LEVEL_SENSITIVE_METRIC


# ---------------------------------------------------------------- the leaderboard

def blend(board, weight):
    """Estimates between the truth (weight 1) and the mixture (weight 0)."""
    return [weight * r + (1 - weight) * m for r, m in zip(board.references, board.mixtures)]


@pytest.fixture
def board(tmp_path):
    return challenges.Leaderboard("vocals", path=tmp_path / "board.json", **TINY)


def test_challenge_seed_is_held_out():
    assert challenges.CHALLENGE_SEED not in (1000, 2000, 3000, 4000, 5000)


def test_quick_challenge_songs_meet_the_selection_rule(tmp_path):
    board = challenges.Leaderboard(path=tmp_path / "b.json", preset="quick")
    from msr_lib.baselines import ideal_ratio_mask

    floor = board.score(board.mixtures)
    irm = board.score([ideal_ratio_mask(s.mixture, dict(s.stems))["vocals"] for s in board.songs])
    assert len(board.songs) == 2 and board.seconds == 4.0
    for f, i in zip(floor, irm):
        assert f < 3.0 and i - f >= 3.0, (floor, irm)


def test_leaderboard_scores_sorts_and_persists(board, capsys):
    perfect = board.submit("oracle cheat", board.references)
    mixture = board.submit("mixture", board.mixtures)
    half = board.submit("half mix", blend(board, 0.9))
    assert perfect.score > 60  # the truth itself
    assert mixture.score == pytest.approx(board.scale()["mixture"], abs=1e-3)
    assert mixture.score + 1 < half.score < perfect.score
    # the rank when submitted: 1 of 1, 2 of 2, then between the two
    assert [(s.rank, s.entries) for s in (perfect, mixture, half)] == [(1, 1), (2, 2), (2, 3)]
    assert mixture.over_baseline is None  # no baseline yet

    again = challenges.Leaderboard("vocals", path=board.path, **TINY)  # a new session reads the same file
    assert [r["name"] for r in again.standings()] == ["oracle cheat", "half mix", "mixture"]
    data = json.loads(board.path.read_text())
    assert data["format"] == challenges.LEADERBOARD_FORMAT and len(data["rows"]) == 3
    assert data["rows"][1]["per_song"] == [pytest.approx(mixture.score, abs=1e-3)]

    table = board.table().splitlines()
    assert table[2].split()[:2] == ["1", "oracle"] and table[4].split()[:2] == ["3", "mixture"]


def test_standings_keep_the_best_row_per_name(board, capsys):
    board.submit("ada", board.mixtures, quiet=True)
    board.submit("ada", blend(board, 0.9), quiet=True)
    board.submit("ada", board.mixtures, quiet=True)
    assert len(board.rows()) == 3
    standings = board.standings()
    assert len(standings) == 1 and standings[0]["score"] > board.scale()["mixture"] + 1


def test_baseline_row_is_the_score_to_beat_and_written_once(board, capsys):
    estimates = [{"vocals": 0.3 * m, "bass": 0.3 * m} for m in board.mixtures]
    board._submit(challenges.BASELINE_NAME, estimates, baseline=True, quiet=True)
    board._submit(challenges.BASELINE_NAME, estimates, baseline=True, quiet=True)
    assert sum(r["baseline"] for r in board.rows()) == 1
    better = board.submit("ada", blend(board, 0.9), quiet=True)
    base = board.rows()[0]["score"]
    assert better.over_baseline == pytest.approx(better.score - base)
    lines = board.table().splitlines()
    assert "ada" in lines[2] and lines[3].endswith("← the score to beat") and challenges.BASELINE_NAME in lines[3]
    assert board.submit(challenges.BASELINE_NAME, board.mixtures) is None  # the name is taken
    assert "is the baseline's name" in verdict(capsys)


def test_baseline_runs_the_bundled_separator(board, capsys):
    estimates = board.baseline(quiet=True)
    assert len(estimates) == 1 and len(estimates[0]) == 9 and estimates[0]["vocals"].shape == board.mixtures[0].shape
    (row,) = board.rows()
    assert row["baseline"] and row["name"] == challenges.BASELINE_NAME
    assert row["score"] == pytest.approx(board.score([estimates[0]["vocals"]])[0], abs=1e-3)


@pytest.mark.parametrize("bad,message", [
    (lambda b: b.mixtures * 2, "expected 1 estimates (one per challenge song"),
    (lambda b: [{"bass": m} for m in b.mixtures], "no 'vocals' among your estimates (bass): this leaderboard scores"),
    (lambda b: [m[:, :100] for m in b.mixtures], "estimate of shape (2, 100), expected (2, 88200)"),
    (lambda b: [m[0] for m in b.mixtures], "estimate of shape (88200,), expected (2, 88200)"),
    (lambda b: [np.full(m.shape, np.nan) for m in b.mixtures], "holds NaN or infinite samples (176400 of 176400)"),
    (lambda b: {"vocals": b.mixtures[0], "bass": b.mixtures[0]}, "got one song's stems (vocals, bass)"),
    (lambda b: b.mixtures[0], "expected a list with one entry per challenge song (1), got ndarray"),
    (lambda b: ["not audio"], "expected an audio array, got str"),
])
def test_bad_submissions_get_one_line_and_write_nothing(board, capsys, bad, message):
    board.submit("ok", board.mixtures, quiet=True)
    before = board.path.read_text()
    assert board.submit("bad", bad(board)) is None
    out = verdict(capsys)
    assert out.startswith("⛔ not scored: ") and message in out and "\n" not in out
    assert board.path.read_text() == before


def test_wrong_stem_and_names_are_refused(board, capsys):
    assert board.submit("bad", board.mixtures, stem="bass") is None
    assert verdict(capsys) == "⛔ not scored: this leaderboard scores vocals, not bass"
    for name in ("", "two\nlines", "x" * 61, None):
        assert board.submit(name, board.mixtures) is None
        assert verdict(capsys).startswith("⛔ not scored: name your entry")
    assert not board.path.exists()


def test_submissions_by_song_id(board, capsys):
    song = board.songs[0]
    assert board.submit("by id", {song.id: {"vocals": song.mixture}}, quiet=True).score == pytest.approx(
        board.scale()["mixture"], abs=1e-3)
    assert board.submit("bad", {"song_x": song.mixture}) is None
    assert f"the mapping's keys should be the 1 song ids {song.id}" in verdict(capsys)


def test_file_from_env_shared_between_challenges(tmp_path, monkeypatch, capsys):
    shared = tmp_path / "room" / "leaderboard.json"
    monkeypatch.setenv(challenges.LEADERBOARD_ENV, str(shared))
    board = challenges.Leaderboard("vocals", **TINY)
    assert board.path == shared
    board.submit("ada", board.mixtures, quiet=True)
    data = json.loads(shared.read_text())
    data["rows"].append({**data["rows"][0], "challenge": "bass/other-songs", "name": "bob"})
    shared.write_text(json.dumps(data))
    assert [r["name"] for r in board.standings()] == ["ada"]  # another challenge's rows are not this table's
    assert "bob" not in board.table()


def test_corrupt_file_is_one_line(board):
    board.path.write_text("{not json")
    with pytest.raises(MSRError, match=r"is not a leaderboard file .*set \$MSR_LEADERBOARD"):
        board.rows()


def _append_rows(path, worker, count):
    lb = challenges.Leaderboard.__new__(challenges.Leaderboard)  # no songs needed to append
    lb.path, lb.key = path, "k"
    for i in range(count):
        lb._append({"challenge": "k", "name": f"w{worker}-{i}", "score": float(i), "per_song": [float(i)],
                    "time": "t", "baseline": False})


def test_concurrent_appends_lose_no_row(tmp_path):
    path = tmp_path / "shared.json"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_rows, args=(path, w, 15)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert all(p.exitcode == 0 for p in workers)
    names = sorted(r["name"] for r in json.loads(path.read_text())["rows"])
    assert names == sorted(f"w{w}-{i}" for w in range(3) for i in range(15))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind
