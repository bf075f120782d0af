"""Restorer checkpoints: full folders (save → load, fp16 export, run folders, bundled names), refusals, and LoRA
experts saved as adapters on a base restorer and merged on load."""
import copy
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from msr_lib.errors import MSRError
from msr_lib.models import (
    HiFiPlusPlus, Restorer, bundled_restorers, export_restorer, load_restorer, load_separator, save_restorer,
    save_restorer_adapter,
)
from msr_lib.models import checkpoint as ckpt_mod
from msr_lib.stems import FOUR_STEMS
from tests.helpers import tiny_separator_checkpoint

#: LoRA on undilated convolutions only (peft's LoRA convolution ignores dilation; ConvTranspose1d is unsupported)
LORA = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": r".*\.plain\.\d+$|.*encoders\.\d+\.0$"}


def _generator(seed: int) -> HiFiPlusPlus:
    """A small generator whose zero-initialised output convolutions are randomised, so its output is not its input."""
    torch.manual_seed(seed)
    model = HiFiPlusPlus()
    for conv in (model.wave_unet.unet.out, model.spectral_mask_net.unet.out):
        torch.nn.init.normal_(conv.weight, std=0.05)
    return model.eval()


@pytest.fixture
def model():
    return _generator(0)


@pytest.fixture(scope="module")
def audio():
    torch.manual_seed(1)
    return 0.1 * torch.randn(1, 2, 11025)


def _run(module, audio):
    with torch.no_grad():
        return module(audio)


def _fails(call, *fragments):
    with pytest.raises(MSRError) as exc_info:
        call()
    message = str(exc_info.value)
    assert "\n" not in message and len(message) <= 400, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _peft(model: HiFiPlusPlus):
    """``model`` (copied) with LoRA adapters whose B matrices are perturbed, so the adapter changes the output."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(**LORA))
    torch.manual_seed(2)
    for name, weight in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.05)
    return peft_model.eval()


# ---------------------------------------------------------------- full restorers

def test_round_trip_gives_identical_outputs(model, audio, tmp_path):
    out = save_restorer(model, tmp_path / "bass", stem="bass", extra={"training": {"steps": 3}})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert {k: config[k] for k in ("model_type", "stem", "sample_rate", "format_version", "training")} == {
        "model_type": "hifipp_restorer", "stem": "bass", "sample_rate": 44100, "format_version": 1,
        "training": {"steps": 3}}
    assert config["model"] == model.config
    restorer = load_restorer(out)
    assert isinstance(restorer, Restorer) and not restorer.training
    assert restorer.stem == "bass" and restorer.config == config
    expected = _run(model, audio)
    assert not torch.allclose(expected, audio, atol=1e-3)  # the generator does something: the comparison can fail
    assert torch.equal(_run(restorer, audio), expected)
    mono = audio[:, :1, :7001]
    assert torch.equal(_run(restorer, mono), _run(model, mono))


def test_stem_names_and_reserved_keys(model, tmp_path):
    assert load_restorer(save_restorer(model, tmp_path / "a", stem="piano")).stem == "keyboards"
    assert load_restorer(save_restorer(model, tmp_path / "b", stem="ALL")).stem == "all"
    _fails(lambda: save_restorer(model, tmp_path / "c", stem="kazoo"), "unknown stem name 'kazoo'", "'all'")
    _fails(lambda: save_restorer(model, tmp_path / "c", stem="bass", extra={"stem": "drums"}), "override stem")
    _fails(lambda: save_restorer(torch.nn.Linear(2, 2), tmp_path / "c", stem="bass"), "HiFiPlusPlus models only")
    assert not (tmp_path / "c").exists()


def test_fp16_export_loads_as_float32_within_fp16_rounding(model, audio, tmp_path):
    run = save_restorer(model, tmp_path / "run" / "checkpoint", stem="all", extra={"training": {"preset": "quick"}})
    out = export_restorer(tmp_path / "run", tmp_path / "bundled" / "generalist")
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.float16}
    assert (out / "model.safetensors").stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size
    config = json.loads((out / "config.json").read_text())
    assert config["stem"] == "all" and config["training"] == {"preset": "quick", "run": str(tmp_path / "run")}
    restorer = load_restorer(out)
    assert {p.dtype for p in restorer.parameters()} == {torch.float32}
    for key, value in model.state_dict().items():  # each weight is its fp16 rounding
        assert torch.equal(restorer.model.state_dict()[key], value.half().float()), key
    torch.testing.assert_close(_run(restorer, audio), _run(model, audio), rtol=0.0, atol=2e-3)


def test_a_run_folder_loads_its_checkpoint(model, audio, tmp_path):
    save_restorer(model, tmp_path / "run" / "checkpoint", stem="drums")
    (tmp_path / "run" / "log.jsonl").write_text("{}\n")
    restorer = load_restorer(tmp_path / "run")
    assert restorer.stem == "drums"
    assert torch.equal(_run(restorer, audio), _run(model, audio))


def test_bundled_names(model, audio, tmp_path, monkeypatch):
    message = _fails(lambda: load_restorer("bundled:bass"), "no bundled restorer 'bass' in this checkout")
    assert f"(available: {', '.join(bundled_restorers()) or 'none yet'})" in message
    monkeypatch.setattr(ckpt_mod, "BUNDLED_RESTORERS_DIR", tmp_path / "restorers")
    assert bundled_restorers() == []
    _fails(lambda: load_restorer(), "no bundled restorer 'generalist'", "(available: none yet)")
    export_restorer(save_restorer(model, tmp_path / "gen", stem="all"), tmp_path / "restorers" / "generalist")
    (tmp_path / "restorers" / "notes").mkdir()  # no config.json: not a restorer
    assert bundled_restorers() == ["generalist"]
    assert load_restorer().stem == "all"
    _fails(lambda: load_restorer("bundled:bass"), "no bundled restorer 'bass'", "(available: generalist)")


def test_a_separator_and_unknown_folders_are_refused(model, tmp_path):
    separator = tiny_separator_checkpoint(tmp_path / "sep", FOUR_STEMS)
    _fails(lambda: load_restorer(separator), "model_type 'bs_roformer' is not loaded here; use load_separator")
    restorer = save_restorer(model, tmp_path / "res", stem="vocals")
    _fails(lambda: load_separator(restorer), "model_type 'hifipp_restorer' is not loaded here; use load_restorer")
    config = json.loads((restorer / "config.json").read_text())
    (restorer / "config.json").write_text(json.dumps(dict(config, model_type="demucs")))
    _fails(lambda: load_restorer(restorer), "unknown model_type 'demucs' (supported: hifipp_restorer)")
    (restorer / "config.json").write_text(json.dumps(dict(config, format_version=2)))
    _fails(lambda: load_restorer(restorer), "unsupported format_version 2")
    (restorer / "config.json").write_text(json.dumps(dict(config, stem=3)))
    _fails(lambda: load_restorer(restorer), "stem must be a stem name")
    _fails(lambda: load_restorer(tmp_path / "nowhere"), "no such checkpoint")
    (tmp_path / "empty").mkdir()
    _fails(lambda: load_restorer(tmp_path / "empty"), "not a restorer checkpoint folder (no config.json)")


def test_weights_that_do_not_match_are_refused(model, tmp_path):
    out = save_restorer(model, tmp_path / "res", stem="bass")
    config = json.loads((out / "config.json").read_text())

    def load_with(**changes):
        (out / "config.json").write_text(json.dumps(dict(config, model=dict(config["model"], **changes))))
        return lambda: load_restorer(out)

    _fails(load_with(upsampler_channels=64), "weights do not fit the config", "size mismatch")
    _fails(load_with(no_such_option=1), "weights do not fit the config", "no_such_option")
    _fails(load_with(hop=256), "weights do not fit the config", "multiply to 512")
    (out / "config.json").write_text(json.dumps(config))
    weights = load_file(out / "model.safetensors")
    dropped = next(iter(weights))
    ckpt_mod.save_file({k: v for k, v in weights.items() if k != dropped}, str(out / "model.safetensors"))
    _fails(lambda: load_restorer(out), "weights do not fit the config", "Missing key", dropped)
    (out / "model.safetensors").write_bytes(b"not safetensors")
    _fails(lambda: load_restorer(out), "cannot read weights")


# ---------------------------------------------------------------- LoRA experts

def test_a_lora_adapter_round_trips_merged(model, audio, tmp_path):
    base = save_restorer(model, tmp_path / "runs" / "generalist" / "checkpoint", stem="all")
    peft_model = _peft(model)
    out = save_restorer_adapter(peft_model, tmp_path / "runs" / "bass-lora", stem="bass",
                                base=str(tmp_path / "runs" / "generalist"), lora_config=LORA)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "lora_adapter.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["lora"] == {"base": "../generalist", **LORA}  # relative to the adapter folder
    assert config["model"] == model.config and config["stem"] == "bass"
    adapter = load_file(out / "lora_adapter.safetensors")
    assert adapter and all(".lora_A." in k or ".lora_B." in k for k in adapter)
    assert all(v.abs().max() > 0 for k, v in adapter.items() if ".lora_B." in k)
    full, small = (base / "model.safetensors").stat().st_size, (out / "lora_adapter.safetensors").stat().st_size
    assert small < 0.15 * full, (small, full)

    shutil.move(tmp_path / "runs", tmp_path / "moved")  # the tree moves as a whole
    restorer = load_restorer(tmp_path / "moved" / "bass-lora")
    assert type(restorer.model) is HiFiPlusPlus and restorer.stem == "bass"
    assert not any("lora" in name or "base_layer" in name for name in restorer.model.state_dict())
    assert all(p.requires_grad for p in restorer.parameters())  # a plain model, ready to fine-tune further
    expected = _run(peft_model, audio)
    assert not torch.allclose(expected, _run(model, audio), atol=1e-4)  # the adapter changes the output
    torch.testing.assert_close(_run(restorer, audio), expected, rtol=0.0, atol=1e-5)
    merged_plain = export_restorer(tmp_path / "moved" / "bass-lora", tmp_path / "bass-full", dtype=torch.float32)
    assert "lora" not in json.loads((merged_plain / "config.json").read_text())
    assert torch.equal(_run(load_restorer(merged_plain), audio), _run(restorer, audio))


def test_an_fp16_adapter_on_a_bundled_base(model, audio, tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt_mod, "BUNDLED_RESTORERS_DIR", tmp_path / "restorers")
    export_restorer(save_restorer(model, tmp_path / "gen", stem="all"), tmp_path / "restorers" / "generalist")
    generalist = load_restorer("bundled:generalist").model  # fp16 weights in float32
    peft_model = _peft(generalist)
    out = save_restorer_adapter(peft_model, tmp_path / "drums", stem="drums", base="bundled:generalist",
                                lora_config=LORA, dtype=torch.float16)
    assert json.loads((out / "config.json").read_text())["lora"]["base"] == "bundled:generalist"
    assert {t.dtype for t in load_file(out / "lora_adapter.safetensors").values()} == {torch.float16}
    torch.testing.assert_close(_run(load_restorer(out), audio), _run(peft_model, audio), rtol=0.0, atol=1e-3)


def test_adapters_that_do_not_fit_are_refused(model, tmp_path):
    base = save_restorer(model, tmp_path / "gen", stem="all")
    peft_model = _peft(model)

    def save(model_=peft_model, base_=base, **lora):
        return lambda: save_restorer_adapter(model_, tmp_path / "out", stem="bass", base=str(base_),
                                             lora_config=dict(LORA, **lora))

    _fails(save(model_=model), "expected a peft model on a HiFiPlusPlus", "got HiFiPlusPlus")
    _fails(save(r=8), "adapter weights do not fit the lora config", "misshapen")
    _fails(save(target_modules=["upsampler.ups.0"]), "bad LoRA config", "ConvTranspose1d")
    _fails(save(base_=save_restorer(_generator(1), tmp_path / "other", stem="all")),
           "the model's base weights are not those of")
    _fails(save(base_=save_restorer(HiFiPlusPlus(n_mels=32), tmp_path / "narrow", stem="all")),
           "the model is not built like its base")
    assert not (tmp_path / "out").exists()

    out = save()()
    adapter = load_file(out / "lora_adapter.safetensors")
    dropped = next(iter(adapter))
    ckpt_mod.save_file({k: v for k, v in adapter.items() if k != dropped}, str(out / "lora_adapter.safetensors"))
    _fails(lambda: load_restorer(out), "adapter weights do not fit the lora config", "1 missing", dropped)
    save_restorer(HiFiPlusPlus(n_mels=32), base, stem="all")  # the base replaced by another model
    _fails(lambda: load_restorer(out), "the base ../gen is not the model this adapter was made for")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(dict(config, lora={"r": 4})))
    _fails(lambda: load_restorer(out), "lora must be a mapping naming its base restorer")
