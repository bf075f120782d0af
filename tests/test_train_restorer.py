"""Restorer training (msr_lib/train/restorer.py, `msr train restorer`): generalist, experts, LoRA, the GAN phase."""
from __future__ import annotations

import pytest
import torch

from msr_lib.cli import main
from msr_lib.errors import MSRError
from msr_lib.models import load_restorer
from msr_lib.presets import get_preset
from msr_lib.train.loop import read_log
from msr_lib.train.restorer import build_restorer, train_restorer

QUICK = get_preset("quick")


@pytest.fixture(scope="module")
def generalist(songs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "generalist"
    train_restorer("all", out, preset=QUICK, train_songs=songs[0], valid_songs=songs[1], progress=False)
    return out


def test_the_generalist_trains_reconstruction_first_then_adversarially(generalist):
    rows = read_log(generalist)
    steps = [r for r in rows if "loss" in r]
    start = QUICK.restorer["train"]["roles"]["generalist"]["adversarial_from"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4] and start == 2
    assert [("d_loss" in r, "adversarial" in r) for r in steps] == [(False, False)] * 2 + [(True, True)] * 2
    assert all(r["reconstruction"] > 0 and r["stft"] > 0 and r["mel_l1"] > 0 for r in steps)
    valid = [r for r in rows if "valid/mms" in r]
    assert valid[0]["step"] == 0 and valid[-1]["step"] == 4
    assert abs(valid[0]["valid/gain"]) < 0.05        # an untrained restorer gives back its input
    restorer = load_restorer(generalist)
    assert restorer.stem == "all"
    audio = 0.1 * torch.randn(1, 2, 22050)
    with torch.no_grad():
        assert restorer(audio).shape == audio.shape


def test_an_expert_starts_from_the_generalist_and_moves_away(generalist, songs, tmp_path):
    start = build_restorer(QUICK, init=generalist)
    reference = load_restorer(generalist).model
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), reference.state_dict().values()))
    train_restorer("bass", tmp_path / "bass", preset=QUICK, init=generalist, train_songs=songs[0],
                   valid_songs=songs[1], progress=False)
    expert = load_restorer(tmp_path / "bass")
    assert expert.stem == "bass"
    assert any(not torch.equal(a, b) for a, b in zip(expert.model.state_dict().values(), reference.state_dict().values()))
    rows = [r for r in read_log(tmp_path / "bass") if "loss" in r]
    assert all("d_loss" in r for r in rows)            # an expert is adversarial from its first step


def test_a_lora_expert_trains_few_weights_and_saves_a_merged_restorer(generalist, songs, tmp_path):
    import json

    train_restorer("drums", tmp_path / "drums", preset=QUICK, init=generalist, method="lora",
                   train_songs=songs[0], valid_songs=songs[1], progress=False)
    info = json.loads((tmp_path / "drums" / "run.json").read_text())
    assert info["method"] == "lora" and info["trainable_parameters"] < 0.5 * info["total_parameters"]
    expert = load_restorer(tmp_path / "drums")
    base = load_restorer(generalist)
    assert type(expert.model) is type(base.model)
    audio = 0.1 * torch.randn(1, 1, 11025)
    with torch.no_grad():
        assert expert(audio).shape == audio.shape


def test_bad_requests_fail_in_one_line(generalist, songs, tmp_path, capsys):
    with pytest.raises(MSRError, match="unknown stem name 'kazoo'"):
        train_restorer("kazoo", tmp_path / "x", preset=QUICK, train_songs=songs[0], valid_songs=songs[1])
    with pytest.raises(MSRError, match="LoRA expert needs --init"):
        train_restorer("bass", tmp_path / "y", preset=QUICK, method="lora", train_songs=songs[0],
                       valid_songs=songs[1])
    with pytest.raises(MSRError, match="already holds a run"):
        train_restorer("all", generalist, preset=QUICK, train_songs=songs[0], valid_songs=songs[1])
    with pytest.raises(MSRError, match="holds a run of stem 'all', not 'bass'"):
        train_restorer("bass", generalist, preset=QUICK, resume=True, train_songs=songs[0], valid_songs=songs[1])
    assert main(["train", "restorer", "--stem", "all", "--out", str(tmp_path / "z"), "--source", "separated"]) == 2
    assert "--source separated needs --cache" in capsys.readouterr().err


def test_msr_export_writes_an_fp16_restorer(generalist, tmp_path, capsys):
    assert main(["export", str(generalist), "--out", str(tmp_path / "exported")]) == 0
    assert "fp16" in capsys.readouterr().out
    exported, original = load_restorer(tmp_path / "exported"), load_restorer(generalist)
    assert exported.stem == "all"
    for a, b in zip(exported.model.state_dict().values(), original.model.state_dict().values()):
        assert torch.allclose(a, b.half().float())


def test_separated_pairs_are_cached_once_from_a_separator_then_train(songs, tmp_path, capsys):
    """`--source separated --separator S`: the songs are separated into --cache first, once; a rerun reuses them."""
    from msr_lib.stems import STEMS
    from tests.helpers import tiny_separator_checkpoint

    tiny_separator_checkpoint(tmp_path / "sep", STEMS)  # random masks: every stem it returns plays
    cache = tmp_path / "cache"
    args = ["train", "restorer", "--stem", "all", "--preset", "quick", "--steps", "2", "--source", "separated",
            "--cache", str(cache), "--separator", str(tmp_path / "sep"), "--data", str(songs[0]),
            "--valid-data", str(songs[1])]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    cached = sorted(p.name for p in cache.iterdir())
    assert len(cached) == 4 and all(name.endswith("_v0") for name in cached)  # 3 training songs + 1 validation
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.flac")}
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.flac")} == stamps  # not separated again
    assert [r["step"] for r in read_log(tmp_path / "b") if "loss" in r] == [1, 2]
    assert main(["train", "restorer", "--stem", "all", "--out", str(tmp_path / "c"), "--separator", "x"]) == 2
    assert "--separator goes with --source separated" in capsys.readouterr().err
