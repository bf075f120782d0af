"""The script behind docs/MODEL_CARD.md's scores: scoring held-out songs (and the stem grouping it relies on)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from msr_lib.stems import FOUR_STEMS, STEMS
from tests.helpers import tiny_separator_checkpoint

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_group_stems_folds_missing_classes_into_other():
    from msr_lib.audio import group_stems

    stems = {s: np.full((2, 4), i + 1.0, np.float32) for i, s in enumerate(STEMS)}
    grouped = group_stems(stems, FOUR_STEMS)
    assert list(grouped) == list(FOUR_STEMS)
    assert grouped["vocals"][0, 0] == 1 and grouped["bass"][0, 0] == 2
    assert grouped["other"][0, 0] == sum(range(4, 10))  # guitars … orchestral + other
    no_other = group_stems({"vocals": stems["vocals"], "guitars": stems["guitars"]}, ("vocals", "bass"))
    assert no_other["vocals"][0, 0] == 1 and not no_other["bass"].any()  # guitars dropped, bass silent


def test_score_separators_rows_and_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    score = _script("score_separators")
    ckpt = tiny_separator_checkpoint(tmp_path / "tiny", FOUR_STEMS)
    out = tmp_path / "scores.json"
    assert score.main(["--model", str(ckpt), "--mix", "mastered", "--songs", "1", "--seconds", "3",
                       "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    table = result["multi_mel_snr_db"]
    assert set(table) == {"model", "mixture", "irm"}
    scored = [s for s in FOUR_STEMS if table["model"][s] is not None]
    assert scored and all(np.isfinite(table[r][s]) for r in table for s in scored)
    assert all(table["irm"][s] > table["mixture"][s] for s in scored)  # the oracle beats doing nothing
    for row in table.values():                                          # the mean is over the scored stems
        assert row["mean"] == np.mean([row[s] for s in scored])
    assert {s for s, n in result["scored_songs_per_stem"].items() if n} == set(scored)
    levels = result["level_error_db"]
    assert all(levels[s] >= 0 for s in scored) and levels["median"] >= 0
    assert result["sum_snr_db"] is None                                 # mastered mixes: no sum to compare
    printed = capsys.readouterr().out
    assert "ideal ratio mask (oracle)" in printed and printed.count("\n|") >= 4


def test_score_separators_on_the_loop_songs(tmp_path, monkeypatch):
    from tests.test_loop_songs import write_samples

    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    score = _script("score_separators")
    samples = write_samples(tmp_path / "samples")
    ckpt = tiny_separator_checkpoint(tmp_path / "tiny", FOUR_STEMS)
    out = tmp_path / "scores.json"
    assert score.main(["--set", "loops", "--samples-dir", str(samples), "--model", str(ckpt), "--mix", "clean",
                       "--songs", "2", "--seconds", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["set"] == "loops" and result["test_seed"] == 4000
    songs = sorted((tmp_path / "data" / "loops_s4000_3s").iterdir())
    assert [p.name for p in songs] == ["song_00000_s4000", "song_00001_s4000"]
    assert json.loads((songs[0] / "song.json").read_text())["generator"] == "msr_lib.data.loop_songs"
    table = result["multi_mel_snr_db"]
    assert table["model"]["drums"] is not None and table["model"]["vocals"] is None   # the loop songs have no vocals
    assert table["irm"]["drums"] > table["mixture"]["drums"]
    assert np.isfinite(result["sum_snr_db"]) and result["level_error_db"]["drums"] >= 0
    assert score.main(["--set", "loops", "--samples-dir", str(tmp_path / "none"), "--model", str(ckpt)]) == 2


def test_score_restorers_rows_targets_and_table(tmp_path, monkeypatch, capsys):
    """Identity restorers (HiFi++ at init): restored = separated, so the gain target fails and the experts tie."""
    import torch

    from msr_lib.models import HiFiPlusPlus, save_restorer
    from msr_lib.presets import get_preset

    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    score = _script("score_restorers")
    ckpt = tiny_separator_checkpoint(tmp_path / "tiny", STEMS)
    sizes = get_preset("quick").restorer["model"]
    torch.manual_seed(0)
    save_restorer(HiFiPlusPlus(**sizes), tmp_path / "r" / "generalist", stem="all")
    save_restorer(HiFiPlusPlus(**sizes), tmp_path / "r" / "bass", stem="bass")
    out = tmp_path / "restorers.json"
    assert score.main(["--separator", str(ckpt), "--restorers", str(tmp_path / "r"), "--songs", "1",
                       "--seconds", "3", "--metrics", "multi_mel_snr", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    table = result["tables"]["multi_mel_snr"]
    assert list(table) == ["mixture", "separated", "restored", "generalist"] and result["experts"] == ["bass"]
    scored = [s for s in STEMS if table["separated"][s] is not None]
    assert scored and all(abs(table["restored"][s] - table["separated"][s]) < 0.05 for s in scored)
    gain, *experts = result["targets"]
    assert gain["target"].startswith("mean restored") and not gain["met"] and abs(gain["value_db"]) < 0.05
    assert [t["target"] for t in experts] == ["bass expert ≥ its input", "bass expert ≥ the generalist"]
    printed = capsys.readouterr().out
    assert "❌ mean restored ≥ separated + 0.5 dB" in printed and "generalist on every stem" in printed
