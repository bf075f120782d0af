"""BS-RoFormer: MSST weight compatibility and forward reproduction (fixture: tests/fixtures/msst_bs_roformer/)."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from msr_lib.models import BSRoformer, load_msst
from msr_lib.models.bs_roformer import MSST_44K_BANDS

FIXTURES = Path(__file__).parent / "fixtures" / "msst_bs_roformer"
ATOL = 1e-6  # the fixture README's suggested acceptance for `output` (float32); we measure ~3e-8


@pytest.fixture(scope="module")
def tiny_model(tiny_config, tiny_weights):
    return load_msst(tiny_config, tiny_weights)


def test_tiny_weights_load_strictly(tiny_config, tiny_weights):
    model = BSRoformer(**tiny_config)
    assert model.load_state_dict(tiny_weights, strict=True)  # no missing/unexpected keys
    assert sorted(model.state_dict()) == sorted(tiny_weights)  # safetensors sorts keys; order: the 384/8 test
    assert len(tiny_weights) == 1223
    for key, value in model.state_dict().items():
        assert torch.equal(value, tiny_weights[key]), key


def test_reproduces_msst_output(tiny_model, tiny_io):
    with torch.no_grad():
        out = tiny_model(tiny_io["input"])
    assert out.shape == (1, 4, 2, 88200)
    assert (out - tiny_io["output"]).abs().max().item() < ATOL


def test_reproduces_msst_output_without_zero_dc(tiny_config, tiny_weights, tiny_io):
    model = load_msst({**tiny_config, "zero_dc": False}, tiny_weights)
    expected = load_file(FIXTURES / "tiny_output_zero_dc_false.safetensors")["output_zero_dc_false"]
    with torch.no_grad():
        out = model(tiny_io["input"])
    assert (out - expected).abs().max().item() < ATOL
    assert (out - tiny_io["output"]).abs().max().item() > 1e-4  # the setting matters


def test_reproduces_msst_intermediates(tiny_model, tiny_io):
    expected = load_file(FIXTURES / "tiny_intermediates.safetensors")
    got = {}

    def keep(name, fn):
        return lambda module, args, out: got.__setitem__(name, fn(args[0], out))

    m = tiny_model
    hooks = [
        m.band_split.register_forward_hook(keep("band_split_input_t0_4", lambda i, o: i[:, :4])),
        m.band_split.register_forward_hook(keep("band_split_output_t0_8", lambda i, o: o[:, :8])),
        m.final_norm.register_forward_hook(keep("final_norm_out_t0_8", lambda i, o: o[:, :8])),
    ]
    for i, (time_tf, freq_tf) in enumerate(m.layers):
        hooks.append(time_tf.register_forward_hook(keep(f"layer{i}_time_out_bf_t0_8", lambda i_, o: o[:, :8])))
        hooks.append(freq_tf.register_forward_hook(keep(f"layer{i}_freq_out_bt0_8", lambda i_, o: o[:8])))
    for s, est in enumerate(m.mask_estimators):
        hooks.append(est.register_forward_hook(keep(f"mask_stem{s}_t0_4", lambda i_, o: o[:, :4])))
    try:
        with torch.no_grad():
            m(tiny_io["input"])
    finally:
        for h in hooks:
            h.remove()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
        assert (got[name] - value).abs().max().item() < 1e-5, name


def test_odd_length_and_batch_shapes(tiny_model):
    x = 0.1 * torch.randn(2, 2, 44100 + 123, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = tiny_model(x)
        single = tiny_model(x[1:])
    assert out.shape == (2, 4, 2, 44100 + 123)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[1:], single, atol=1e-6)  # batch items are independent


def test_stereo_model_rejects_mono(tiny_model):
    with pytest.raises(ValueError, match="stereo"):
        tiny_model(torch.zeros(1, 1, 44100))
    with pytest.raises(ValueError, match="samples"):
        tiny_model(torch.zeros(2, 44100))


def test_mono_model_runs(tiny_config):
    model = BSRoformer(**{**tiny_config, "stereo": False}).eval()
    assert model.band_split.to_features[0][1].in_features == 2 * 2  # 2 bins × re/im
    with torch.no_grad():
        assert model(torch.randn(1, 1, 4410)).shape == (1, 4, 1, 4410)


def test_load_msst_unwraps_and_accepts_missing_rope_keys(tiny_config, tiny_weights, tiny_io):
    without_rope = {k: v for k, v in tiny_weights.items() if not k.endswith("rotary_embed.freqs")}
    assert len(without_rope) < len(tiny_weights)
    for wrapper in ("state", "state_dict", "model_state_dict"):
        model = load_msst({"model": tiny_config}, {wrapper: without_rope, "epoch": 17})
        assert not model.training
    with torch.no_grad():
        assert (model(tiny_io["input"]) - tiny_io["output"]).abs().max().item() < ATOL
    with pytest.raises(RuntimeError, match="missing"):
        load_msst(tiny_config, {k: v for k, v in tiny_weights.items() if "gamma" not in k})
    with pytest.raises(RuntimeError, match="unexpected"):
        load_msst(tiny_config, {**tiny_weights, "extra.weight": torch.zeros(1)})


def test_unsupported_options_raise(tiny_config):
    with pytest.raises(ValueError, match="linear_transformer_depth"):
        BSRoformer(**{**tiny_config, "linear_transformer_depth": 1})
    with pytest.raises(ValueError, match="bins"):
        BSRoformer(**{**tiny_config, "freqs_per_bands": [2] * 10})


def test_full_384_8_config_keys_shapes_and_parameter_count():
    config = json.loads((FIXTURES / "config_384_8_4stem.json").read_text())
    with torch.device("meta"):
        model = BSRoformer(**config["model"])
    manifest = [line.split("\t") for line in (FIXTURES / "state_dict_keys_384_8_4stem.tsv").read_text().splitlines()]
    state = model.state_dict()
    assert [(k, json.loads(shape), dtype) for k, shape, dtype in manifest] == [
        (k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()
    ]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == config["parameter_count"]["trainable_parameters"] == 131_704_100
    assert len(state) == 1355
    assert sum(v.numel() for v in state.values()) == config["parameter_count"]["state_dict_total_elements"]


def test_activation_checkpointing_gives_same_gradients(tiny_config, tiny_weights):
    x = 0.1 * torch.randn(1, 2, 4410, generator=torch.Generator().manual_seed(2))
    grads = []
    for use_ckpt in (False, True):
        model = load_msst({**tiny_config, "use_torch_checkpoint": use_ckpt}, tiny_weights).train()
        model(x).square().mean().backward()
        grads.append(model.band_split.to_features[3][1].weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-7)


def test_bf16_autocast_keeps_stft_in_float32(tiny_model, tiny_io):
    # CPU stand-in for bf16 autocast on CUDA: transformers run in bf16, STFT/masking/iSTFT stay float32.
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model(tiny_io["input"])
    assert out.dtype == torch.float32
    assert (out - tiny_io["output"]).abs().max().item() < 2e-3  # measured 3e-4 (output peak 0.05)


@pytest.mark.parametrize(
    ("widths", "depth"),
    [([4 * f for f in MSST_44K_BANDS], 2), ([2, 8, 2, 6, 8, 2, 4], 1), ([6, 2, 6, 4, 6], 3)],  # stereo, mono-like
)
def test_batched_band_mlps_match_per_band_loop(widths, depth):
    from msr_lib.models.bs_roformer import BandSplit, MaskEstimator

    def loop_split(m, x):  # the straightforward reference: one module call per band
        return torch.stack([proj(band) for proj, band in zip(m.to_features, x.split(m.band_widths, -1))], -2)

    def loop_mask(m, x):
        return torch.cat([head(band) for head, band in zip(m.to_freqs, x.unbind(-2))], -1)

    torch.manual_seed(0)
    split, mask = BandSplit(16, widths), MaskEstimator(16, widths, depth, 2)
    with torch.no_grad():  # random gains too, so that a band mix-up cannot hide
        for p in [*split.parameters(), *mask.parameters()]:
            p.copy_(torch.randn_like(p) * 0.5)
    x = torch.randn(2, 5, sum(widths))
    results = []
    for split_fn, mask_fn in ((BandSplit.forward, MaskEstimator.forward), (loop_split, loop_mask)):
        xi = x.clone().requires_grad_()
        feats = split_fn(split, xi)
        out = mask_fn(mask, feats.tanh())
        (out.square().mean() + feats.sin().mean()).backward()
        grads = [p.grad.clone() for p in [*split.parameters(), *mask.parameters()]]
        split.zero_grad(), mask.zero_grad()
        results.append([feats.detach(), out.detach(), xi.grad, *grads])
    assert results[0][1].shape == (2, 5, sum(widths))
    for got, want in zip(*results):
        assert got.shape == want.shape
        assert (got - want).abs().max().item() < 1e-5


def test_band_mlps_fall_back_to_the_loop_when_a_layer_is_wrapped():
    from msr_lib.models.bs_roformer import MaskEstimator

    class Shifted(torch.nn.Linear):  # stands in for a LoRA-wrapped layer: the batched path cannot read it
        def forward(self, x):
            return super().forward(x) + 1.0

    torch.manual_seed(0)
    mask = MaskEstimator(8, [2, 4, 2], 2, 2)
    x = torch.randn(1, 3, 3, 8)
    before = mask(x)
    old = mask.to_freqs[1][0][2]
    mask.to_freqs[1][0][2] = shifted = Shifted(old.in_features, old.out_features)
    shifted.load_state_dict(old.state_dict())
    after = mask(x)
    assert torch.allclose(after[..., :2], before[..., :2]) and torch.allclose(after[..., 6:], before[..., 6:])
    assert not torch.allclose(after[..., 2:6], before[..., 2:6])  # band 1 went through the wrapped layer
