"""msr_lib.lessons: the lessons' songs, their training runs and the warm start (training itself is faked here)."""
import pytest

from msr_lib import lessons
from msr_lib.stems import FOUR_STEMS
from msr_lib.train import curriculum
from msr_lib.train.loop import RUN_INFO


@pytest.fixture
def fake_training(tmp_path, monkeypatch):
    """Every train_separator call is recorded as (stage, init) instead of trained."""
    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    calls = []

    def fake_train_separator(stage, run, *, init=None, **options):
        calls.append((stage, init))

    monkeypatch.setattr(curriculum, "train_separator", fake_train_separator)
    return calls


def test_warm_start_is_the_bundled_4stem_when_shipped():
    from msr_lib.models import load_separator
    from msr_lib.models.checkpoint import bundled_separators

    assert "4stem" in bundled_separators()  # shipped in the repo: nothing to skip
    assert lessons.warm_start("quick") == "bundled:4stem"
    assert load_separator(lessons.warm_start("quick")).stems == FOUR_STEMS


def test_lora_clean_starts_from_the_warm_start(fake_training, tmp_path):
    run = lessons.lesson_run("lora-clean", preset="quick", progress=False)
    assert run == tmp_path / "data" / "runs" / "quick" / "lora-clean"
    assert fake_training == [("lora-clean", "bundled:4stem")]


def test_a_later_stage_trains_the_stages_before_it(fake_training, tmp_path):
    lessons.lesson_run("lora-mastered", preset="quick", progress=False)
    runs = tmp_path / "data" / "runs" / "quick"
    assert fake_training == [("lora-clean", "bundled:4stem"), ("lora-mastered", runs / "lora-clean")]


def test_without_a_bundle_the_warm_start_is_the_lessons_pretrain_run(fake_training, tmp_path, monkeypatch):
    from msr_lib.models import checkpoint

    monkeypatch.setattr(checkpoint, "bundled_separators", lambda: [])
    pretrain = tmp_path / "data" / "runs" / "quick" / "pretrain"
    assert lessons.warm_start("quick", progress=False) == pretrain
    lessons.lesson_run("lora-clean", preset="quick", progress=False)
    assert fake_training == [("pretrain", None), ("pretrain", None), ("lora-clean", pretrain)]


def test_a_run_from_another_warm_start_is_trained_again(fake_training, tmp_path):
    import json

    run = tmp_path / "data" / "runs" / "quick" / "lora-clean"
    run.mkdir(parents=True)
    (run / RUN_INFO).write_text(json.dumps({"stage": "lora-clean", "init": "somewhere/else"}))
    (run / "stale.txt").write_text("from the old run")
    lessons.lesson_run("lora-clean", preset="quick", progress=False)
    assert fake_training == [("lora-clean", "bundled:4stem")] and not (run / "stale.txt").exists()


def test_prepare_songs_renders_train_and_validation_songs_once(tmp_path, monkeypatch):
    from msr_lib.audio import song_files
    from msr_lib.presets import get_preset

    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    quick = get_preset("quick")
    train_dir, valid_dir = lessons.prepare_songs(quick, progress=False)
    assert (train_dir, valid_dir) == (tmp_path / "data" / "train_quick", tmp_path / "data" / "valid_quick")
    train_songs = sorted(p for p in train_dir.iterdir() if p.is_dir())
    valid_songs = sorted(p for p in valid_dir.iterdir() if p.is_dir())
    assert (len(train_songs), len(valid_songs)) == (quick.data["songs"], quick.train["valid_songs"])
    assert {p.name for p in train_songs}.isdisjoint(p.name for p in valid_songs)  # other seeds: other songs
    assert song_files(train_songs[0]).clean_mix is not None
    stamps = {p: p.stat().st_mtime_ns for p in train_dir.rglob("*.flac")}
    lessons.prepare_songs(quick, progress=False)
    assert {p: p.stat().st_mtime_ns for p in train_dir.rglob("*.flac")} == stamps  # kept, not rendered again


# ---------------------------------------------------------------- restorer runs (lesson 05)

@pytest.fixture
def fake_restorer_training(tmp_path, monkeypatch):
    """Every train_restorer call is recorded as (stem, init, method, resume); it writes run.json and a finished
    train state, as a real run does."""
    import json

    import torch

    from msr_lib.train import restorer

    monkeypatch.setenv("MSR_DATA_DIR", str(tmp_path / "data"))
    calls = []

    def fake_train_restorer(stem, out_dir, *, preset=None, init=None, method="full", resume=False, **options):
        calls.append((stem, init, method, resume))
        (out_dir / "checkpoint").mkdir(parents=True, exist_ok=True)
        if not resume:
            (out_dir / RUN_INFO).write_text(json.dumps(
                {"stem": stem, "init": str(init) if init is not None else None, "method": method}))
        role = "generalist" if stem == "all" else "expert"
        steps = options.get("steps") or preset.restorer["train"]["roles"][role]["steps"]
        torch.save({"step": steps}, out_dir / "checkpoint" / "train_state.pt")

    monkeypatch.setattr(restorer, "train_restorer", fake_train_restorer)
    return calls


def test_restorer_runs_are_named_by_stem_and_method(fake_restorer_training, tmp_path):
    runs = tmp_path / "data" / "runs" / "quick"
    assert lessons.restorer_run("all", preset="quick", progress=False) == runs / "restorer-generalist"
    generalist = lessons.generalist_restorer("quick", progress=False)  # no bundle: the lesson's own run, reused
    assert generalist == runs / "restorer-generalist"
    assert lessons.restorer_run("bass", preset="quick", progress=False) == runs / "restorer-bass"
    assert lessons.restorer_run("bass", preset="quick", method="lora", progress=False) == runs / "restorer-bass-lora"
    assert fake_restorer_training == [("all", None, "full", False), ("bass", generalist, "full", False),
                                      ("bass", generalist, "lora", False)]
    lessons.restorer_run("bass", preset="quick", method="lora", progress=False)   # finished: reused
    assert len(fake_restorer_training) == 3


def test_experts_start_from_the_bundled_generalist_when_shipped(fake_restorer_training, monkeypatch):
    from msr_lib.models import checkpoint

    monkeypatch.setattr(checkpoint, "bundled_restorers", lambda: ["generalist", "bass"])
    assert lessons.generalist_restorer("quick") == lessons.BUNDLED_GENERALIST == "bundled:generalist"
    lessons.restorer_run("drums", preset="quick", progress=False)
    assert fake_restorer_training == [("drums", "bundled:generalist", "full", False)]


def test_a_restorer_run_made_otherwise_is_trained_again_and_a_short_one_resumed(fake_restorer_training, tmp_path):
    import json

    lessons.restorer_run("bass", preset="quick", init="somewhere", progress=False)
    run = tmp_path / "data" / "runs" / "quick" / "restorer-bass"
    (run / "stale.txt").write_text("from the old run")
    lessons.restorer_run("bass", preset="quick", init="elsewhere", progress=False)       # another init
    assert not (run / "stale.txt").exists()
    assert json.loads((run / "run.json").read_text())["init"] == "elsewhere"
    lessons.restorer_run("bass", preset="quick", init="elsewhere", steps=50, progress=False)   # longer: resumed
    assert fake_restorer_training == [("bass", "somewhere", "full", False), ("bass", "elsewhere", "full", False),
                                      ("bass", None, "full", True)]   # a resumed run reads its init from run.json


def test_save_lora_adapter_writes_a_runs_trained_adapter(tmp_path):
    import json

    import torch

    from msr_lib.errors import MSRError
    from msr_lib.models import load_restorer, save_restorer
    from msr_lib.models.hifipp import HiFiPlusPlus
    from msr_lib.presets import get_preset
    from msr_lib.train.curriculum import apply_lora, merge_lora
    from msr_lib.train.restorer import RESTORER_LORA, lora_targets

    torch.manual_seed(0)
    base = save_restorer(HiFiPlusPlus(**get_preset("quick").restorer["model"]), tmp_path / "generalist", stem="all")
    generator = load_restorer(base).model
    model = apply_lora(generator, **RESTORER_LORA, target_modules=lora_targets(generator))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)            # "trained": the adapter changes the output
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    info = {"stem": "bass", "method": "lora", "preset": "quick", "init": str(base)}
    (run / "run.json").write_text(json.dumps(info))
    torch.save({"step": 2, "ema": model.state_dict()}, run / "checkpoint" / "train_state.pt")

    folder = lessons.save_lora_adapter(run, tmp_path / "adapter")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "lora_adapter.safetensors"]
    audio = 0.1 * torch.randn(1, 1, 11025)
    with torch.no_grad():
        assert torch.allclose(load_restorer(folder)(audio), merge_lora(model).eval()(audio), atol=1e-5)
    (run / "run.json").write_text(json.dumps(dict(info, method="full")))
    with pytest.raises(MSRError, match="not LoRA: it has no adapter"):
        lessons.save_lora_adapter(run, tmp_path / "again")
    with pytest.raises(MSRError, match="not a finished restorer run"):
        lessons.save_lora_adapter(tmp_path / "nowhere", tmp_path / "again")
