"""The training loop and the separator curriculum (quick preset, synthetic songs rendered once per session)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from msr_lib.errors import MSRError
from msr_lib.models import BSRoformer, load_separator
from msr_lib.models.checkpoint import BUNDLED_DIR
from msr_lib.presets import get_preset
from msr_lib.stems import FOUR_STEMS, STEMS
from msr_lib.train import loop
from msr_lib.train.curriculum import (
    STAGES, Stage, apply_lora, build_stage_model, expand_stems, full_fine_tune, match_mix_level, merge_lora,
    stage_train_config, train_separator, trained_outputs,
)
from msr_lib.train.loop import StepBatches, TrainConfig, lr_at_step, read_log
from tests.helpers import interrupt_after_step

QUICK = get_preset("quick")


@pytest.fixture(scope="session")
def pretrain_run(songs, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "pretrain"
    train_separator("pretrain", run, preset=QUICK, train_songs=songs[0], valid_songs=songs[1], progress=False)
    return run


def _losses(run):
    return {row["step"]: row["loss"] for row in read_log(run) if "loss" in row}


# ---------------------------------------------------------------- loop pieces

def test_learning_rate_warms_up_then_decays_to_the_floor():
    config = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    rates = [lr_at_step(config, s) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(rates[:10], rates[1:10]))
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[-1] == pytest.approx(1e-4)


def test_step_batches_are_a_function_of_step_and_rank():
    whole = list(StepBatches(10, 3, 0, 4))
    assert whole[0] == [0, 1, 2] and whole[3] == [9, 0, 1]  # wraps around the dataset
    assert list(StepBatches(10, 3, 2, 4)) == whole[2:]  # resuming at step 2 sees the same batches
    ranks = [list(StepBatches(100, 2, 0, 3, rank=r, world_size=2)) for r in (0, 1)]
    single = list(StepBatches(100, 4, 0, 3))
    for step in range(3):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(single[step])


def test_a_schedule_longer_than_the_run_keeps_the_rate_near_its_peak():
    """The first bundled pretrain run stopped at step 1502 of a cosine planned over 100,000 steps."""
    stopped = TrainConfig(steps=1502, lr=1e-3, warmup_steps=100, min_lr_ratio=0.05, schedule_steps=100_000)
    assert lr_at_step(stopped, stopped.steps - 1) > 0.99 * stopped.lr
    ends = TrainConfig(steps=1502, lr=1e-3, warmup_steps=100, min_lr_ratio=0.05)
    assert lr_at_step(ends, 1501) == pytest.approx(5e-5)


def test_unknown_train_setting_is_refused():
    with pytest.raises(MSRError, match="unknown training settings: nonsense"):
        TrainConfig.from_dict({"nonsense": 1})


def test_stage_config_takes_preset_stage_and_overrides():
    config = stage_train_config(QUICK, "lora-clean", steps=7)
    assert config.steps == 7 and config.lr == QUICK.train["stages"]["lora-clean"]["lr"]
    assert config.batch_size == QUICK.train["batch_size"]


def _validation_steps(config):
    return [0] + [s for s in range(1, config.steps + 1) if s % config.validate_every == 0 or s == config.steps]


@pytest.mark.parametrize("preset", ["laptop", "gpu", "paper"])
def test_every_stage_draws_a_validation_curve(preset):
    """Lesson 04 plots each stage's validation: step 0 and at least 3 more points."""
    for stage in STAGES:
        assert len(_validation_steps(stage_train_config(get_preset(preset), stage))) >= 4, stage


def test_bundled_preset_is_the_model_cards_recipe():
    """`msr train separator --preset bundled` builds the second-generation model (the shipped size, `other` as the
    residual) and runs the model card's steps (docs/MODEL_CARD.md)."""
    shipped = json.loads((BUNDLED_DIR / "4stem" / "config.json").read_text())["model"]
    bundled = get_preset("bundled")
    size = {k: v for k, v in bundled.model.items() if k != "residual_stem"}
    assert {k: shipped[k] for k in size} == size and bundled.model["residual_stem"]
    model, stems = build_stage_model("pretrain", model_config=bundled.model)
    assert stems == FOUR_STEMS and len(model.mask_estimators) == 3
    assert loop.trainable_parameters(model)[1] == 1_971_804
    assert {s: stage_train_config(bundled, s).steps for s in STAGES} == {
        "pretrain": 4000, "lora-clean": 300, "lora-mastered": 300, "expand": 1000}
    assert bundled.data["songs"] == 160 and bundled.train["batch_size"] == 4
    assert stage_train_config(bundled, "pretrain").micro_batch_size == 2
    assert set(bundled.synth["sound_sources"]) >= {"fluidr3_gm", "musescore_general", "hydrogen", "msr_voice"}


# ---------------------------------------------------------------- mastered mixes: the targets' level

def test_mix_level_is_an_rms_ratio_whatever_the_phase():
    """A mastered mix whose waveform is uncorrelated with the clean sum (here: 90° phase shift) still sets the
    targets' level; the least-squares waveform gain used before gave ~0 (targets ~50 dB too quiet)."""
    t = torch.arange(44100) / 44100
    stems = torch.stack([torch.sin(2 * torch.pi * 220 * t), 0.5 * torch.sin(2 * torch.pi * 330 * t)])
    targets = stems[None, :, None, :].repeat(1, 1, 2, 1)  # (1, 2 stems, 2 channels, samples)
    clean = targets.sum(1)
    shifted = torch.stack([torch.cos(2 * torch.pi * 220 * t), 0.5 * torch.cos(2 * torch.pi * 330 * t)]).sum(0)
    mastered = 2.0 * shifted[None, None, :].repeat(1, 2, 1)
    assert abs(float((clean * mastered).sum() / clean.square().sum())) < 1e-2  # the old gain
    torch.testing.assert_close(match_mix_level(targets, clean, mastered), 2.0 * targets, rtol=1e-3, atol=1e-5)


def test_mix_level_leaves_an_item_where_nothing_plays():
    from msr_lib.audio import ACTIVE_STEM_RMS

    quiet = torch.full((1, 2, 2, 100), 0.4 * ACTIVE_STEM_RMS)
    loud = torch.full((1, 2, 100), 0.5)
    torch.testing.assert_close(match_mix_level(quiet, quiet.sum(1), loud), quiet)


# ---------------------------------------------------------------- stages: which weights train

def _tiny(num_stems=4, **options):
    """A quick-size model; masking heads for every stem unless ``residual_stem=True`` is passed."""
    return BSRoformer(**{**QUICK.model, "residual_stem": False, "num_stems": num_stems, **options})


def _sum_snr_db(stems, mixture):
    error = (stems.double().sum(dim=1) - mixture.double()).square().sum()
    return float(10 * torch.log10(mixture.double().square().sum() / error))


def test_pretrain_trains_everything(songs):
    model, stems = build_stage_model("pretrain", model_config={**QUICK.model, "residual_stem": False})
    assert stems == FOUR_STEMS and all(p.requires_grad for p in model.parameters())
    assert not model.residual_stem and len(model.mask_estimators) == 4
    residual, _ = build_stage_model("pretrain", model_config=QUICK.model)   # the presets' models: residual `other`
    assert residual.residual_stem and len(residual.mask_estimators) == 3  # `other` is the residual


def test_the_model_follows_the_stage_record_not_its_name(pretrain_run):
    heads = Stage(name="my-heads", description="new heads on clean mixes", mix="clean", trains="new-heads",
                  starts_from=FOUR_STEMS, stems=STEMS)
    model, stems = build_stage_model(heads, init=pretrain_run)
    assert stems == STEMS and model.num_stems == 9
    assert {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad} == {
        str(STEMS.index(s)) for s in STEMS if s not in FOUR_STEMS}
    full = full_fine_tune(STAGES["lora-mastered"])
    assert (full.trains, full.mix, full.starts_from) == ("all", "mastered", FOUR_STEMS)
    model, _ = build_stage_model(full, init=pretrain_run)
    assert all(p.requires_grad for p in model.parameters()) and isinstance(model, BSRoformer)
    with pytest.raises(MSRError, match="replaces LoRA"):
        full_fine_tune(STAGES["expand"])
    with pytest.raises(MSRError, match="mix must be one of"):
        Stage(name="x", description="", mix="loud", trains="all", starts_from=None, stems=FOUR_STEMS)


def test_lora_stage_trains_only_q_and_v_adapters(pretrain_run):
    model, stems = build_stage_model("lora-clean", init=pretrain_run)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and (".to_q." in n or ".to_v." in n) for n in names)
    assert any(".to_q." in n for n in names) and any(".to_v." in n for n in names)
    cfg = QUICK.model
    attention_layers = cfg["depth"] * (cfg["time_transformer_depth"] + cfg["freq_transformer_depth"])
    inner = cfg["heads"] * cfg["dim_head"]
    expected = attention_layers * 2 * 8 * (cfg["dim"] + inner)  # per projection: A (8 × dim) + B (inner × 8)
    trainable, total = loop.trainable_parameters(model)
    assert trainable == expected and trainable < 0.05 * total


def test_lora_starts_as_the_identity_and_merges_back(pretrain_run):
    base = load_separator(pretrain_run).model
    x = torch.randn(1, 2, 22050)
    with torch.no_grad():
        before = base(x)
        lora = apply_lora(load_separator(pretrain_run).model).eval()
        torch.testing.assert_close(lora(x), before, rtol=0, atol=1e-6)  # B = 0 at the start
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
        changed = lora(x)
        assert (changed - before).abs().max() > 1e-4
        merged = merge_lora(lora).eval()
        assert isinstance(merged, BSRoformer)
        torch.testing.assert_close(merged(x), changed, rtol=1e-4, atol=1e-5)
        assert set(merged.state_dict()) == set(base.state_dict())  # plain keys again (MSST-compatible)


def test_expand_of_a_masking_model_keeps_vbd_shares_other_and_adds_up():
    torch.manual_seed(0)
    model = _tiny().eval()
    expanded = expand_stems(model, FOUR_STEMS).eval()
    assert expanded.num_stems == 9 and expanded.residual_stem and len(expanded.mask_estimators) == 8
    trainable = {n.split(".")[1] for n, p in expanded.named_parameters() if p.requires_grad}
    added = [s for s in STEMS if s not in FOUR_STEMS]
    assert trainable == {str(STEMS.index(s)) for s in added}
    assert trained_outputs(expanded).tolist() == [s not in ("vocals", "bass", "drums") for s in STEMS]
    x = torch.randn(1, 2, 30001)
    with torch.no_grad():
        old, out = model(x), expanded(x)
    for stem in ("vocals", "bass", "drums"):
        torch.testing.assert_close(out[:, STEMS.index(stem)], old[:, FOUR_STEMS.index(stem)], rtol=0, atol=0)
    other = old[:, FOUR_STEMS.index("other")]
    for stem in added:  # each new head starts as the `other` head's mask / 5
        torch.testing.assert_close(out[:, STEMS.index(stem)], other / 5, rtol=0, atol=1e-5)
    # `other` is what the 8 named stems leave: at the start, what the 4 heads left of the input
    torch.testing.assert_close(out[:, STEMS.index("other")], x - old.sum(dim=1), rtol=0, atol=1e-4)
    assert _sum_snr_db(out, x) >= 60 and _sum_snr_db(old, x) < 20


def test_expand_of_a_residual_model_starts_silent_and_keeps_its_other():
    torch.manual_seed(0)
    model = _tiny(residual_stem=True).eval()
    expanded = expand_stems(model, FOUR_STEMS).eval()
    assert expanded.residual_stem and len(expanded.mask_estimators) == 8
    x = torch.randn(1, 2, 30001)
    with torch.no_grad():
        old, out = model(x), expanded(x)
    for stem in FOUR_STEMS:  # vocals, bass, drums, and `other` = the same residual
        torch.testing.assert_close(out[:, STEMS.index(stem)], old[:, FOUR_STEMS.index(stem)], rtol=0, atol=1e-5)
    for stem in STEMS:
        if stem not in FOUR_STEMS:
            assert float(out[:, STEMS.index(stem)].abs().max()) == 0.0  # new stems start silent ...
    expanded.train()
    out = expanded(x)
    (out[:, STEMS.index("guitars")] - x).square().mean().backward()  # pull the silent stem towards x
    grads = [p.grad for p in expanded.mask_estimators[STEMS.index("guitars")].parameters()]
    assert any(g is not None and float(g.abs().max()) > 0 for g in grads)  # ... and learn at once
    with pytest.raises(MSRError, match="no 'other' residual"):
        expand_stems(_tiny(residual_stem=True), ("vocals", "bass", "other", "drums"))


def test_lora_stages_work_on_a_residual_model(tmp_path):
    from msr_lib.models import save_separator

    torch.manual_seed(0)
    save_separator(_tiny(residual_stem=True), tmp_path / "four", stems=list(FOUR_STEMS))
    lora, stems = build_stage_model("lora-mastered", init=tmp_path / "four")
    assert stems == FOUR_STEMS
    for name, p in lora.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.1)
    x = torch.randn(1, 2, 22050)
    with torch.no_grad():
        out = lora.eval()(x)
        merged = merge_lora(lora).eval()
        assert merged.residual_stem and len(merged.mask_estimators) == 3
        torch.testing.assert_close(merged(x), out, rtol=1e-4, atol=1e-5)
    assert _sum_snr_db(out, x) >= 60


def test_stages_that_need_init_say_so(pretrain_run, tmp_path):
    with pytest.raises(MSRError, match="--init"):
        build_stage_model("lora-clean")
    with pytest.raises(MSRError, match="unknown stage"):
        build_stage_model("finetune", model_config=QUICK.model)
    nine = tmp_path / "nine"
    from msr_lib.models import save_separator

    save_separator(_tiny(9), nine, stems=list(STEMS))
    with pytest.raises(MSRError, match="starts from a 4-stem separator"):
        build_stage_model("expand", init=nine)


# ---------------------------------------------------------------- runs

def test_pretrain_run_folder(pretrain_run):
    rows = read_log(pretrain_run)
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == list(range(1, QUICK.train["stages"]["pretrain"]["steps"] + 1))
    assert all(torch.isfinite(torch.tensor(r["loss"])) and r["lr"] > 0 for r in rows if "loss" in r)
    valid = [r for r in rows if "valid/mms" in r]
    assert [r["step"] for r in valid] == _validation_steps(stage_train_config(QUICK, "pretrain"))  # 0 first
    assert all(f"valid/mms/{s}" in valid[-1] for s in ("bass", "drums"))
    assert all("neg_si_snr" in r and "si_snr" not in r for r in rows if "loss" in r)
    info = json.loads((pretrain_run / "run.json").read_text())
    assert info["stage"] == "pretrain" and info["trainable_share"] == 1.0
    separator = load_separator(pretrain_run)
    assert separator.stems == FOUR_STEMS
    files = sorted(p.name for p in (pretrain_run / "checkpoint").iterdir())
    assert files == ["config.json", "model.safetensors", "train_state.pt"]


def test_existing_run_is_not_overwritten(pretrain_run, songs):
    before = (pretrain_run / "checkpoint" / "model.safetensors").read_bytes()
    with pytest.raises(MSRError, match="--resume"):
        train_separator("pretrain", pretrain_run, preset=QUICK, train_songs=songs[0], valid_songs=songs[1],
                        progress=False)
    assert (pretrain_run / "checkpoint" / "model.safetensors").read_bytes() == before


def test_resume_after_interrupt_gives_the_same_losses(pretrain_run, songs, tmp_path, monkeypatch):
    """A LoRA run (dropout uses the RNG) interrupted after step 2 and resumed equals an uninterrupted run."""
    kwargs = dict(preset=QUICK, init=pretrain_run, steps=4, train_songs=songs[0], valid_songs=songs[1],
                  progress=False)
    train_separator("lora-clean", tmp_path / "whole", **kwargs)
    from safetensors.torch import load_file

    adapter = load_file(tmp_path / "whole" / "checkpoint" / "lora_adapter.safetensors")   # beside the merged model
    assert adapter and all("lora_" in key for key in adapter)

    interrupt_after_step(monkeypatch, 2, lambda: train_separator("lora-clean", tmp_path / "parts", **kwargs))
    state = torch.load(tmp_path / "parts" / "checkpoint" / "train_state.pt", weights_only=True)
    assert state["step"] == 2
    train_separator("lora-clean", tmp_path / "parts", resume=True, **kwargs)

    whole, parts = _losses(tmp_path / "whole"), _losses(tmp_path / "parts")
    assert list(parts) == [1, 2, 3, 4]
    assert parts == whole  # exactly equal, not just close
    a = torch.load(tmp_path / "whole" / "checkpoint" / "train_state.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "parts" / "checkpoint" / "train_state.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    adapter = tmp_path / "whole" / "checkpoint" / "lora_adapter.safetensors"
    assert 0 < adapter.stat().st_size < (tmp_path / "whole" / "checkpoint" / "model.safetensors").stat().st_size / 10


def test_activation_checkpointing_changes_memory_not_results(pretrain_run, songs, tmp_path):
    """The laptop preset's checkpoint_activations recomputes activations in backward: same losses, LoRA dropout included."""
    from dataclasses import replace

    checkpointed = replace(QUICK, train={**QUICK.train, "checkpoint_activations": True})
    kwargs = dict(init=pretrain_run, steps=3, train_songs=songs[0], valid_songs=songs[1], progress=False)
    train_separator("lora-clean", tmp_path / "plain", preset=QUICK, **kwargs)
    train_separator("lora-clean", tmp_path / "checkpointed", preset=checkpointed, **kwargs)
    plain, recomputed = _losses(tmp_path / "plain"), _losses(tmp_path / "checkpointed")
    assert sorted(plain) == [1, 2, 3]
    assert recomputed == pytest.approx(plain, rel=1e-5)
    assert get_preset("laptop").train["checkpoint_activations"] is True


def test_resume_refuses_changed_settings(pretrain_run, songs, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(pretrain_run, run)
    with pytest.raises(MSRError, match="settings changed.*lr"):
        train_separator("pretrain", run, preset=QUICK, resume=True, lr=0.5, train_songs=songs[0],
                        valid_songs=songs[1], progress=False)
    with pytest.raises(MSRError, match="holds a run of stage 'pretrain', not"):
        train_separator("lora-clean", run, preset=QUICK, resume=True, train_songs=songs[0], valid_songs=songs[1],
                        progress=False)


def test_expand_run_leaves_the_four_stems_unchanged(pretrain_run, songs, tmp_path):
    kwargs = dict(preset=QUICK, train_songs=songs[0], valid_songs=songs[1], progress=False)
    train_separator("expand", tmp_path / "expand", init=pretrain_run, **kwargs)
    four, nine = load_separator(pretrain_run), load_separator(tmp_path / "expand")
    assert nine.stems == STEMS
    x = torch.randn(1, 2, 44100)
    with torch.no_grad():
        old, new = four(x), nine(x)
    for stem in ("vocals", "bass", "drums"):
        torch.testing.assert_close(new[:, STEMS.index(stem)], old[:, four.stems.index(stem)], rtol=0, atol=1e-6)
    guitars = STEMS.index("guitars")
    assert (new[:, guitars] - old[:, four.stems.index("other")] / 5).abs().max() > 0  # new heads did move
    assert _sum_snr_db(new, x) >= 60  # and the 9 stems add up to the input
    rows = [r for r in read_log(tmp_path / "expand") if "loss" in r]
    assert rows and all(r["active_stems"] <= 6 * QUICK.train["batch_size"] for r in rows)  # 5 new + other


def test_full_fine_tune_says_so_and_trains_every_weight(pretrain_run, songs, tmp_path, capsys):
    train_separator("lora-mastered", tmp_path / "full", preset=QUICK, init=pretrain_run, steps=1, method="full",
                    train_songs=songs[0], valid_songs=songs[1])
    header = capsys.readouterr().out
    assert "full fine-tune on mastered mixes" in header and "LoRA" not in header and "(100.00 %)" in header
    info = json.loads((tmp_path / "full" / "run.json").read_text())
    assert info["method"] == "full" and info["trainable_share"] == 1.0
    assert not (tmp_path / "full" / "checkpoint" / "lora_adapter.safetensors").exists()


def test_cli_train_errors_are_one_line(tmp_path, capsys):
    from msr_lib.cli import main

    assert main(["train", "separator", "--stage", "lora-clean", "--preset", "quick", "--out", str(tmp_path / "r"),
                 "--data", str(tmp_path), "--valid-data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init" in err[0]
    assert main(["train", "separator", "--stage", "pretrain", "--out", str(tmp_path / "r"), "--data",
                 str(tmp_path / "missing"), "--valid-data", str(tmp_path)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["train", "separator", "--stage", "finetune", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown stage 'finetune'; choose one of pretrain, lora-clean, lora-mastered, expand" in err


def test_two_process_ddp_run_on_gloo(songs, tmp_path):
    """torchrun with 2 CPU processes: one log and one checkpoint, written by rank 0."""
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MSR_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "msr_lib.cli", "train", "separator", "--stage", "pretrain", "--preset", "quick", "--steps", "2",
         "--batch-size", "1", "--out", str(run), "--data", str(songs[0]), "--valid-data", str(songs[1])],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("2 steps; separator in") == 1  # printed by rank 0 only
    assert [r["step"] for r in read_log(run) if "loss" in r] == [1, 2]
    state = torch.load(run / "checkpoint" / "train_state.pt", weights_only=True)
    assert state["step"] == 2
    assert load_separator(run).stems == FOUR_STEMS


def test_two_process_ddp_runs_the_lora_and_expand_stages(songs, tmp_path):
    """The bundled recipe's later stages under torchrun: LoRA (frozen base) and expand (new heads) train on 2 ranks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MSR_DATA_DIR": str(tmp_path / "data")}
    previous = None
    for stage in ("pretrain", "lora-clean", "expand"):
        run = tmp_path / stage
        init = ["--init", str(previous)] if previous else []
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
             "msr_lib.cli", "train", "separator", "--stage", stage, "--preset", "quick", "--steps", "2",
             "--batch-size", "1", "--out", str(run), "--data", str(songs[0]), "--valid-data", str(songs[1]), *init],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"{stage}: {result.stderr[-3000:]}"
        assert [r["step"] for r in read_log(run) if "loss" in r] == [1, 2], stage
        previous = run
    assert len(load_separator(previous).stems) == 9
