"""Separator checkpoints: our folder format (save → load round trip, atomic writes) and MSST .ckpt + YAML loading."""
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from msr_lib.errors import MSRError
from msr_lib.models import BSRoformer, Separator, load_separator, save_separator
from msr_lib.models import checkpoint as ckpt_mod

FIXTURES = Path(__file__).parent / "fixtures" / "msst_bs_roformer"
MSST_STEMS = ["drums", "bass", "other", "vocals"]


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return BSRoformer(**tiny_config).eval()


@pytest.fixture(scope="module")
def audio():
    torch.manual_seed(1)
    return 0.1 * torch.randn(1, 2, 8820)


def _msst_folder(folder: Path, tiny_config, tiny_weights, *, name="model.ckpt", yaml_name="model.yaml", **training):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": dict(tiny_weights)}, folder / name)
    config = {"audio": {"sample_rate": 44100}, "model": tiny_config, "training": {"instruments": MSST_STEMS, **training}}
    (folder / yaml_name).write_text(yaml.safe_dump(config))
    return folder / name


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------- our format

def test_round_trip_gives_identical_outputs(model, audio, tmp_path):
    out = tmp_path / "sep"
    assert save_separator(model, out, stems=["vocals", "bass", "drums", "other"], extra={"note": "tiny"}) == out
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["sep"]  # no temp folders left next to it
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bs_roformer" and config["format_version"] == 1 and config["sample_rate"] == 44100
    assert config["stems"] == ["vocals", "bass", "drums", "other"] and config["note"] == "tiny"
    assert config["model"]["dim"] == 16 and config["model"]["zero_dc"] is True

    sep = load_separator(out)
    assert isinstance(sep, Separator) and not sep.training
    assert sep.stems == ("vocals", "bass", "drums", "other") and sep.sample_rate == 44100
    with torch.no_grad():
        assert torch.equal(sep(audio), model(audio))
    assert load_separator(out / "config.json").stems == sep.stems  # the config file names the folder too
    assert config["model"]["residual_stem"] is False and sep.model.residual_stem is False


def test_a_residual_separator_round_trips(tiny_config, audio, tmp_path):
    torch.manual_seed(0)
    model = BSRoformer(**{**tiny_config, "residual_stem": True}).eval()
    save_separator(model, tmp_path / "sep", stems=["vocals", "bass", "drums", "other"])
    assert json.loads((tmp_path / "sep" / "config.json").read_text())["model"]["residual_stem"] is True
    sep = load_separator(tmp_path / "sep")
    assert sep.model.residual_stem is True and len(sep.model.mask_estimators) == 3
    with torch.no_grad():
        out = sep(audio)
        assert torch.equal(out, model(audio))
    torch.testing.assert_close(out.sum(dim=1), audio, rtol=0, atol=1e-6)


def test_save_maps_aliases_and_checks_stem_count(model, tmp_path):
    save_separator(model, tmp_path / "a", stems=["Vocal", "bass", "drum", "other"])
    assert load_separator(tmp_path / "a").stems == ("vocals", "bass", "drums", "other")
    with pytest.raises(MSRError, match="4 outputs"):
        save_separator(model, tmp_path / "b", stems=["vocals", "bass"])
    with pytest.raises(MSRError, match="override"):
        save_separator(model, tmp_path / "c", stems=MSST_STEMS, extra={"stems": ["vocals"]})
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_fp16_weights_load_back_as_float32(model, audio, tmp_path):
    save_separator(model, tmp_path / "half", stems=MSST_STEMS, dtype=torch.float16)
    stored = load_file(tmp_path / "half" / "model.safetensors")
    assert {v.dtype for v in stored.values()} == {torch.float16}
    sep = load_separator(tmp_path / "half")
    assert next(sep.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert (sep(audio) - model(audio)).abs().max().item() < 1e-3


def test_failed_save_leaves_existing_checkpoint_intact(model, tiny_config, tmp_path, monkeypatch):
    out = tmp_path / "sep"
    save_separator(model, out, stems=MSST_STEMS)
    before = _files(out)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "save_file", boom)
    torch.manual_seed(5)
    other = BSRoformer(**tiny_config)
    with pytest.raises(OSError, match="disk full"):
        save_separator(other, out, stems=["vocals", "bass", "drums", "other"])
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["sep"]
    with pytest.raises(OSError):
        save_separator(other, tmp_path / "new", stems=MSST_STEMS)
    assert [p.name for p in tmp_path.iterdir()] == ["sep"]  # nothing half-written for a new folder either


def test_saving_a_separator_overwrites_atomically(model, audio, tmp_path):
    out = tmp_path / "sep"
    save_separator(model, out, stems=MSST_STEMS)
    sep = load_separator(out)
    save_separator(sep, out, stems=["vocals", "bass", "drums", "other"])  # a Separator is unwrapped
    assert load_separator(out).stems == ("vocals", "bass", "drums", "other")
    assert [p.name for p in tmp_path.iterdir()] == ["sep"]


# ---------------------------------------------------------------- MSST checkpoints

def test_msst_ckpt_with_yaml_reproduces_fixture(tiny_config, tiny_weights, tiny_io, tmp_path):
    path = _msst_folder(tmp_path / "msst", tiny_config, tiny_weights)
    sep = load_separator(path)
    assert sep.stems == ("drums", "bass", "other", "vocals") and sep.sample_rate == 44100
    assert sep.config["training"]["instruments"] == MSST_STEMS
    assert sep.model.residual_stem is False and len(sep.model.mask_estimators) == 4  # MSST: a mask per stem
    with torch.no_grad():
        out = sep(tiny_io["input"])
    assert out.shape == tiny_io["output"].shape
    assert (out - tiny_io["output"]).abs().max().item() < 1e-6


def test_msst_only_yaml_in_folder_and_python_tuple_tag(tiny_config, tiny_weights, tiny_io, tmp_path):
    folder = tmp_path / "msst"
    path = _msst_folder(folder, tiny_config, tiny_weights, name="model_bs_roformer_ep_17.ckpt",
                        yaml_name="config_bs_roformer.yaml")
    text = (folder / "config_bs_roformer.yaml").read_text()
    text += "\n".join(["extra_model:", "  windows: !!python/tuple", "  - 4096", "  - 2048", ""])
    (folder / "config_bs_roformer.yaml").write_text(text)
    sep = load_separator(path)
    assert sep.config["extra_model"]["windows"] == (4096, 2048)
    with torch.no_grad():
        assert (sep(tiny_io["input"]) - tiny_io["output"]).abs().max().item() < 1e-6


def test_msst_safetensors_and_target_instrument(tiny_config, tiny_weights, tmp_path):
    folder = tmp_path / "msst"
    folder.mkdir()
    (folder / "w.safetensors").write_bytes((FIXTURES / "tiny_weights.safetensors").read_bytes())
    (folder / "w.yaml").write_text(yaml.safe_dump({"model": tiny_config, "training": {"instruments": MSST_STEMS}}))
    assert load_separator(folder / "w.safetensors").stems == ("drums", "bass", "other", "vocals")

    one = dict(tiny_config, num_stems=1)
    weights = {k: v for k, v in tiny_weights.items() if not k.startswith("mask_estimators.") or
               k.startswith("mask_estimators.0.")}
    torch.save(weights, folder / "voc.ckpt")  # a bare state dict, no wrapper
    (folder / "voc.yaml").write_text(yaml.safe_dump(
        {"model": one, "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"}}))
    assert load_separator(folder / "voc.ckpt").stems == ("vocals",)


# ---------------------------------------------------------------- bad input: one clear line

def _assert_one_line(exc_info, *fragments):
    message = str(exc_info.value)
    assert "\n" not in message and message
    for fragment in fragments:
        assert fragment in message, message


def _load_fails(path, *fragments):
    """load_separator(path) raises MSRError with one line containing every fragment."""
    with pytest.raises(MSRError) as exc_info:
        load_separator(path)
    _assert_one_line(exc_info, *fragments)


def test_unknown_bundled_name_lists_the_available_ones():
    from msr_lib.models.checkpoint import bundled_separators

    with pytest.raises(MSRError) as exc_info:
        load_separator("bundled:bs_roformer_4stem")
    message = str(exc_info.value)
    assert message.startswith("no bundled separator 'bs_roformer_4stem' in this checkout (available: ")
    assert (", ".join(bundled_separators()) or "none yet") in message and "\n" not in message


def test_missing_path(tmp_path):
    _load_fails(tmp_path / "nope", "no such checkpoint")
    (tmp_path / "empty").mkdir()
    _load_fails(tmp_path / "empty", "config.json")
    (tmp_path / "song.wav").write_bytes(b"RIFF")
    _load_fails(tmp_path / "song.wav", "not a checkpoint")


def test_ckpt_without_yaml(tiny_weights, tmp_path):
    torch.save({"state_dict": dict(tiny_weights)}, tmp_path / "model.ckpt")
    _load_fails(tmp_path / "model.ckpt", "no YAML config", "model.yaml")
    (tmp_path / "a.yaml").write_text("model: {}\n")
    (tmp_path / "b.yaml").write_text("model: {}\n")
    _load_fails(tmp_path / "model.ckpt", "2 YAML configs")


def test_corrupt_files(model, tiny_config, tiny_weights, tmp_path):
    out = tmp_path / "sep"
    save_separator(model, out, stems=MSST_STEMS)
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    _load_fails(out, "cannot read weights")

    (out / "model.safetensors").write_bytes(data)
    (out / "config.json").write_text("{not json")
    _load_fails(out, "cannot read")

    path = _msst_folder(tmp_path / "msst", tiny_config, tiny_weights)
    path.write_bytes(b"this is not a torch file")
    _load_fails(path, "cannot read checkpoint")
    (path.with_suffix(".yaml")).write_text("model: [unclosed\n")
    _load_fails(path, "cannot read")


def test_wrong_model_type(model, tiny_config, tiny_weights, tmp_path):
    out = tmp_path / "sep"
    save_separator(model, out, stems=MSST_STEMS)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(dict(config, model_type="htdemucs")))
    _load_fails(out, "unknown model_type 'htdemucs'")
    (out / "config.json").write_text(json.dumps(dict(config, format_version=99)))
    _load_fails(out, "format_version")

    path = _msst_folder(tmp_path / "msst", tiny_config, tiny_weights)
    cfg = yaml.safe_load(path.with_suffix(".yaml").read_text())
    path.with_suffix(".yaml").write_text(yaml.safe_dump(dict(cfg, model_type="mel_band_roformer")))
    _load_fails(path, "unknown model_type 'mel_band_roformer'")


def test_mismatched_weights(model, tiny_config, tiny_weights, tmp_path):
    out = tmp_path / "sep"
    save_separator(model, out, stems=MSST_STEMS)
    config = json.loads((out / "config.json").read_text())
    config["model"]["dim"] = 32
    (out / "config.json").write_text(json.dumps(config))
    _load_fails(out, "weights do not fit the config")

    config["model"]["dim"] = 16
    config["model"]["no_such_option"] = 1
    (out / "config.json").write_text(json.dumps(config))
    _load_fails(out, "weights do not fit the config", "no_such_option")

    config["model"].pop("no_such_option")
    config["stems"] = ["vocals", "bass"]
    (out / "config.json").write_text(json.dumps(config))
    _load_fails(out, "4 outputs")

    folder = tmp_path / "msst"
    path = _msst_folder(folder, dict(tiny_config, depth=1), tiny_weights)  # weights have 2 depth layers
    _load_fails(path, "weights do not fit the config", "unexpected keys")
    path = _msst_folder(folder, tiny_config, {k: v for k, v in tiny_weights.items() if "final_norm" not in k})
    _load_fails(path, "missing keys")


# ---------------------------------------------------------------- export (how the bundled separators are made)

def test_export_writes_a_loadable_fp16_copy_with_its_training_record(model, audio, tmp_path, capsys):
    from msr_lib.cli import main

    run = save_separator(model, tmp_path / "run", stems=MSST_STEMS, extra={"training": {"stage": "pretrain"}})
    assert main(["export", str(run), "--out", str(tmp_path / "bundled" / "4stem")]) == 0
    out = tmp_path / "bundled" / "4stem"
    assert "fp16" in capsys.readouterr().out
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.float16}
    assert (out / "model.safetensors").stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size
    config = json.loads((out / "config.json").read_text())
    assert config["training"] == {"stage": "pretrain", "run": str(run)}
    loaded = load_separator(out)
    assert loaded.stems == tuple(MSST_STEMS)
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio), model(audio), rtol=0.05, atol=2e-3)


def test_export_of_a_missing_source_is_one_line(tmp_path, capsys):
    from msr_lib.cli import main

    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such checkpoint" in err[0]
    assert not (tmp_path / "out").exists()
