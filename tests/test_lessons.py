"""msr_lib.lessons: the lessons' songs, their training runs and the warm start (training itself is faked here)."""
import pytest

from msr_lib import lessons
from msr_lib.stems import FOUR_STEMS
from msr_lib.train import curriculum


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
    (run / curriculum.RUN_INFO).write_text(json.dumps({"stage": "lora-clean", "init": "somewhere/else"}))
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
