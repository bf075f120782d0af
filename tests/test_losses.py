"""The training loss (msr_lib.train.losses): values at the extremes, masking, scale behaviour, the level term,
gradients, shapes."""
import math

import pytest
import torch

from msr_lib.audio import ACTIVE_STEM_RMS, SAMPLE_RATE
from msr_lib.metrics import mel_filterbank
from msr_lib.train import multi_resolution_stft_loss, separation_loss, si_snr_loss
from msr_lib.train.losses import (
    auto_scaled_l1,
    feature_matching_loss,
    level_error_db,
    log_mel_spectrogram,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    mel_l1_loss,
    restoration_reconstruction_loss,
)

SMALL_RES = ((256, 64), (128, 32))  # keep the tests fast


def _batch(batch=2, stems=3, channels=2, samples=3001, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, stems, channels, samples, generator=g)


def test_perfect_estimate_parts():
    target = _batch()
    total, parts = separation_loss(target.clone(), target, resolutions=SMALL_RES)
    assert parts["l1"] == pytest.approx(0.0, abs=1e-6)
    assert parts["stft"] == pytest.approx(0.0, abs=1e-5)
    # SI-SNR part at its documented minimum: −max_snr_db (soft cap, default 60 dB)
    assert parts["neg_si_snr"] == pytest.approx(-60.0, abs=1e-2)
    assert parts["level_db"] == pytest.approx(0.0, abs=1e-5)
    assert float(total) == pytest.approx(-6.0, abs=1e-3)
    assert parts["active_stems"] == 6
    assert si_snr_loss(target, target, max_snr_db=30.0).max() == pytest.approx(-30.0, abs=1e-2)


def test_loss_grows_with_noise():
    target = _batch()
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(target.shape, generator=g)
    values = [separation_loss(target + level * noise, target, resolutions=SMALL_RES)[1] for level in (0.01, 0.1, 1.0)]
    for key in ("l1", "stft", "neg_si_snr", "level_db", "total"):
        assert values[0][key] < values[1][key] < values[2][key], key


def test_inactive_stem_estimate_does_not_matter():
    target = _batch()
    estimate = target + 0.1 * torch.randn_like(target)
    active = torch.ones(2, 3, dtype=torch.bool)
    active[0, 1] = False
    total_a, parts_a = separation_loss(estimate, target, active, resolutions=SMALL_RES)
    changed = estimate.clone()
    changed[0, 1] = 100.0 * torch.randn_like(changed[0, 1])
    total_b, parts_b = separation_loss(changed, target, active, resolutions=SMALL_RES)
    assert float(total_a) == float(total_b)
    assert parts_a == parts_b
    assert parts_a["active_stems"] == 5


def test_silent_target_stem_is_masked():
    target = _batch()
    target[1, 2] = 0.0  # flagged active, but silent
    estimate = target + 0.1 * torch.randn_like(target)
    _, parts_a = separation_loss(estimate, target, resolutions=SMALL_RES)
    estimate[1, 2] = torch.randn_like(estimate[1, 2])
    _, parts_b = separation_loss(estimate, target, resolutions=SMALL_RES)
    assert parts_a == parts_b
    assert parts_a["active_stems"] == 5
    assert all(torch.isfinite(torch.tensor(v)) for v in parts_a.values())


def test_a_stem_plays_from_the_active_rms_on():
    target = _batch()
    estimate = target + 0.1 * torch.randn_like(target)
    for scale, playing in ((0.9, 5), (1.1, 6)):       # stem (1, 2) just below / just above the threshold
        quiet = target.clone()
        quiet[1, 2] *= scale * ACTIVE_STEM_RMS / quiet[1, 2].square().mean().sqrt()
        _, parts = separation_loss(estimate, quiet, resolutions=SMALL_RES)
        assert parts["active_stems"] == playing


def test_all_inactive_is_zero_and_backward_works():
    target = _batch()
    estimate = torch.randn_like(target).requires_grad_()
    total, parts = separation_loss(estimate, target, torch.zeros(2, 3, dtype=torch.bool), resolutions=SMALL_RES)
    assert float(total.detach()) == 0.0 and torch.isfinite(total)
    assert parts["active_stems"] == 0 and parts["l1"] == 0.0 and parts["level_db"] == 0.0
    total.backward()
    assert estimate.grad is not None and torch.all(estimate.grad == 0)


def test_auto_scaled_l1_is_scale_invariant_per_stem():
    target = _batch()
    estimate = target + 0.1 * torch.randn_like(target)
    before = auto_scaled_l1(estimate, target)
    estimate[0, 1] *= 10.0
    target[0, 1] *= 10.0
    after = auto_scaled_l1(estimate, target)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=0)
    # a silent estimate scores ≈ 1 (relative error)
    assert auto_scaled_l1(torch.zeros_like(target), target) == pytest.approx(torch.ones(2, 3))


def test_quiet_stem_counts_like_a_loud_one():
    target = _batch()
    estimate = target + 0.1 * torch.randn_like(target)
    quiet_t, quiet_e = target.clone(), estimate.clone()
    quiet_t[:, 0] *= 0.01
    quiet_e[:, 0] *= 0.01
    _, loud = separation_loss(estimate, target, resolutions=SMALL_RES)
    _, quiet = separation_loss(quiet_e, quiet_t, resolutions=SMALL_RES)
    for key in ("l1", "neg_si_snr", "level_db"):
        assert quiet[key] == pytest.approx(loud[key], rel=1e-3)
    assert quiet["stft"] == pytest.approx(loud["stft"], rel=5e-2)  # the power floor makes it only nearly so


def test_gradients_flow_to_estimate():
    target = _batch()
    estimate = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    total, _ = separation_loss(estimate, target, resolutions=SMALL_RES)
    total.backward()
    assert torch.isfinite(estimate.grad).all()
    assert estimate.grad.abs().sum() > 0
    # each part on its own, and a perfect estimate, give finite gradients too
    for w in ({"l1_weight": 1, "stft_weight": 0, "si_snr_weight": 0, "level_weight": 0},
              {"l1_weight": 0, "stft_weight": 1, "si_snr_weight": 0, "level_weight": 0},
              {"l1_weight": 0, "stft_weight": 0, "si_snr_weight": 1, "level_weight": 0},
              {"l1_weight": 0, "stft_weight": 0, "si_snr_weight": 0, "level_weight": 1}):
        est = (target + 0.1 * torch.randn_like(target)).requires_grad_()
        separation_loss(est, target, resolutions=SMALL_RES, **w)[0].backward()
        assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0, w
    perfect = target.clone().requires_grad_()
    separation_loss(perfect, target, resolutions=SMALL_RES)[0].backward()
    assert torch.isfinite(perfect.grad).all()


def test_level_error_is_the_rms_level_difference_in_db():
    target = _batch()
    torch.testing.assert_close(level_error_db(0.5 * target, target), torch.full((2, 3), 6.0206), atol=1e-3, rtol=0)
    torch.testing.assert_close(level_error_db(10 * target, target), torch.full((2, 3), 20.0), atol=1e-3, rtol=0)
    assert float(level_error_db(target.flip(-1), target).max()) < 1e-5  # any shape at the right level costs 0
    silent = level_error_db(torch.zeros_like(target), target)
    assert torch.isfinite(silent).all() and (silent > 60).all()       # eps: −80 dBFS against a −10 dBFS target


def test_a_right_shape_at_the_wrong_level_costs_more_and_the_gradient_fixes_the_level():
    target = _batch()
    shape = target + _batch(seed=1)                      # an imperfect estimate (0 dB SNR), as a separator's is

    def rms(x):
        return x.square().mean((-2, -1), keepdim=True).sqrt()

    shape = shape * rms(target) / rms(shape)              # each stem at its target's level
    right, parts = separation_loss(shape, target, resolutions=SMALL_RES)
    assert parts["level_db"] < 0.01
    for gain, direction in ((0.1, -1.0), (0.5, -1.0), (2.0, 1.0)):   # 20 and 6 dB too quiet, 6 dB too loud
        scale = torch.tensor(gain, requires_grad=True)
        total, parts = separation_loss(scale * shape, target, resolutions=SMALL_RES)
        assert float(total.detach()) > float(right)
        assert parts["level_db"] == pytest.approx(abs(20 * math.log10(gain)), abs=0.05)
        total.backward()
        assert direction * float(scale.grad) > 0, gain                # descent moves the gain towards 1
        level_only = torch.tensor(gain, requires_grad=True)
        separation_loss(level_only * shape, target, resolutions=SMALL_RES, l1_weight=0, stft_weight=0,
                        si_snr_weight=0, level_weight=1)[0].backward()
        assert direction * float(level_only.grad) > 0, gain
    # the drift it fixes: the auto-scaled L1 prefers an imperfect estimate quieter than its target
    assert float(auto_scaled_l1(0.7 * shape, target).mean()) < float(auto_scaled_l1(shape, target).mean())


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("samples", [1, 77, 2049, 4411])
def test_shapes_odd_lengths_mono_stereo(channels, samples):
    target = _batch(batch=2, stems=2, channels=channels, samples=samples)
    estimate = (target + 0.05 * torch.randn_like(target)).requires_grad_()
    total, parts = separation_loss(estimate, target)  # default resolutions: n_fft 2048 on short signals too
    assert total.shape == () and torch.isfinite(total)
    total.backward()
    assert estimate.grad.shape == estimate.shape
    assert multi_resolution_stft_loss(estimate, target).shape == (2, 2, channels)
    assert multi_resolution_stft_loss(estimate, target, signal_dims=2).shape == (2, 2)
    assert si_snr_loss(estimate, target).shape == (2, 2, channels)
    assert si_snr_loss(estimate, target, signal_dims=2).shape == (2, 2)


def test_stft_loss_plain_signals_and_scale():
    g = torch.Generator().manual_seed(3)
    target = torch.randn(4, 5000, generator=g)
    estimate = target + 0.2 * torch.randn(4, 5000, generator=g)
    values = multi_resolution_stft_loss(estimate, target)
    assert values.shape == (4,) and (values > 0).all()
    assert multi_resolution_stft_loss(target, target).abs().max() < 1e-5
    # spectral convergence and log-magnitude differences are level-independent (above the power floor)
    torch.testing.assert_close(multi_resolution_stft_loss(10 * estimate, 10 * target), values, rtol=1e-3, atol=1e-4)


def test_half_precision_inputs_and_inference_mode_window():
    target = _batch(samples=1000)
    with torch.inference_mode():  # first use of a window inside inference mode (validation) ...
        separation_loss(target, target, resolutions=((96, 24),))
    estimate = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    total, _ = separation_loss(estimate, target, resolutions=((96, 24),))  # ... must not break training
    total.backward()
    bf = separation_loss(estimate.detach().bfloat16(), target.bfloat16(), resolutions=SMALL_RES)[0]
    assert bf.dtype == torch.float32 and torch.isfinite(bf)


def test_bad_shapes_raise():
    target = _batch()
    with pytest.raises(ValueError):
        separation_loss(target[0], target[0])
    with pytest.raises(ValueError):
        separation_loss(target, target[..., :-1])
    with pytest.raises(ValueError):
        separation_loss(target, target, torch.ones(2, 2, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------------------------
# The restorer's losses
# ----------------------------------------------------------------------------------------------------------------
def _outputs(*logit_values, features=(), shape=(2, 5, 3)):
    """Discriminator outputs by hand: one (logits, features) per scale, logits constant at each given value."""
    return [(torch.full(shape, float(value)), [f.clone() for f in features]) for value in logit_values]


def test_lsgan_losses_exact_values():
    assert float(lsgan_discriminator_loss(_outputs(1.0, 1.0), _outputs(0.0, 0.0))) == 0.0
    assert float(lsgan_generator_loss(_outputs(0.0, 0.0))) == 1.0
    assert float(lsgan_generator_loss(_outputs(1.0))) == 0.0
    # per scale (r − 1)² + f², then the mean over scales: scale 1 (0.5, 0.5) → 0.5, scale 2 (0, 2) → 1 + 4 = 5
    assert float(lsgan_discriminator_loss(_outputs(0.5, 0.0), _outputs(0.5, 2.0))) == pytest.approx(2.75)
    assert float(lsgan_generator_loss(_outputs(0.5, 3.0))) == pytest.approx((0.25 + 4.0) / 2)
    # the mean within a scale: half the cells right, half at 0
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert float(lsgan_generator_loss([(logits, [])])) == pytest.approx(0.5)
    half = [(logits.bfloat16(), []) for logits, _ in _outputs(0.5)]
    assert lsgan_discriminator_loss(half, half).dtype == torch.float32  # computed in float32
    with pytest.raises(ValueError, match="number of discriminator scales"):
        lsgan_discriminator_loss(_outputs(1.0, 1.0), _outputs(0.0))
    with pytest.raises(ValueError):
        lsgan_generator_loss([])


def test_feature_matching_is_the_mean_l1_over_maps_and_detaches_the_real_side():
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 4, 6, 8, generator=g), torch.randn(2, 4, 6, 4, generator=g)]
    real = _outputs(0.0, 0.0, features=maps)
    assert float(feature_matching_loss(real, _outputs(0.0, 0.0, features=maps))) == 0.0
    # every map of one scale off by 0.5, the other scale exact: mean over 4 maps = 0.25
    shifted = _outputs(0.0, features=[m + 0.5 for m in maps]) + _outputs(0.0, features=maps)
    assert float(feature_matching_loss(real, shifted)) == pytest.approx(0.25, abs=1e-6)
    real_leaf = [(logits, [f.requires_grad_() for f in feats]) for logits, feats in real]
    fake_leaf = [(logits, [(f.detach() + 0.1).requires_grad_() for f in feats]) for logits, feats in real]
    loss = feature_matching_loss(real_leaf, fake_leaf)
    assert float(loss.detach()) > 0
    loss.backward()
    assert all(f.grad is None for _, feats in real_leaf for f in feats)
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for _, feats in fake_leaf for f in feats)
    with pytest.raises(ValueError, match="same batch size and length"):
        feature_matching_loss(real, _outputs(0.0, 0.0, features=[m[:1] for m in maps]))


def test_feature_matching_on_a_discriminator():
    from msr_lib.models.discriminators import MultiScaleMelDiscriminator

    discriminator = MultiScaleMelDiscriminator(channels=4)
    g = torch.Generator().manual_seed(2)
    clean = 0.1 * torch.randn(2, 4000, generator=g)
    restored = (clean + 0.05 * torch.randn(2, 4000, generator=g)).requires_grad_()
    with torch.no_grad():
        assert float(feature_matching_loss(discriminator(clean), discriminator(clean))) == 0.0
    loss = feature_matching_loss(discriminator(clean), discriminator(restored))
    assert float(loss.detach()) > 0
    loss.backward()
    assert torch.isfinite(restored.grad).all() and restored.grad.abs().sum() > 0


def test_log_mel_spectrogram_is_ln_of_the_mel_filtered_stft_power():
    g = torch.Generator().manual_seed(4)
    wave = 0.2 * torch.randn(2, 3, 3001, generator=g)
    log_mel = log_mel_spectrogram(wave, n_fft=512, hop=128, n_mels=48)
    assert log_mel.shape == (2, 3, 1 + 3001 // 128, 48)
    spec = torch.stft(wave.reshape(6, -1), 512, 128, window=torch.hann_window(512), center=True,
                      pad_mode="constant", return_complex=True)  # (rows, freq, frames)
    mel = mel_filterbank(512, 48, SAMPLE_RATE) @ spec.abs().square()
    torch.testing.assert_close(log_mel.reshape(6, -1, 48), mel.transpose(1, 2).log(), atol=1e-4, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as the training loop runs losses on CUDA: still float32
        under_autocast = log_mel_spectrogram(wave, n_fft=512, hop=128, n_mels=48)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, log_mel, atol=1e-5, rtol=1e-5)


def test_mel_l1_is_zero_for_identical_signals_and_twice_ln_the_gain():
    g = torch.Generator().manual_seed(5)
    target = 0.1 * torch.randn(3, 2, 5000, generator=g)
    assert mel_l1_loss(target, target).abs().max() == 0.0
    # ln of mel power: a gain g shifts every band by 2 ln g (no band is empty, none at the floor)
    torch.testing.assert_close(mel_l1_loss(2 * target, target), torch.full((3, 2), 2 * math.log(2)), atol=1e-4,
                               rtol=0)
    values = [float(mel_l1_loss(gain * target, target).mean()) for gain in (1.1, 1.5, 3.0)]
    assert values[0] < values[1] < values[2]
    assert mel_l1_loss(2 * target, target, signal_dims=2).shape == (3,)
    assert mel_l1_loss(target, target, resolutions=((256, 64, 32),)).shape == (3, 2)
    with pytest.raises(ValueError):
        mel_l1_loss(target, target[..., :-1])
    with pytest.raises(ValueError):
        mel_l1_loss(target, target, resolutions=())


def test_restoration_reconstruction_loss_parts_and_gradients():
    g = torch.Generator().manual_seed(6)
    target = 0.1 * torch.randn(4, 4411, generator=g)
    total, parts = restoration_reconstruction_loss(target.clone(), target)
    assert set(parts) == {"stft", "mel_l1", "reconstruction"}
    assert float(total) == pytest.approx(0.0, abs=1e-5)
    estimate = (target + 0.05 * torch.randn(4, 4411, generator=g)).requires_grad_()
    total, parts = restoration_reconstruction_loss(estimate, target)
    assert parts["stft"] == pytest.approx(float(multi_resolution_stft_loss(estimate.detach(), target).mean()), rel=1e-6)
    assert parts["mel_l1"] == pytest.approx(float(mel_l1_loss(estimate.detach(), target).mean()), rel=1e-6)
    assert parts["reconstruction"] == pytest.approx(parts["stft"] + parts["mel_l1"], rel=1e-6) == float(total.detach())
    assert parts["mel_l1"] > 0 and parts["stft"] > 0
    total.backward()
    assert torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0
    worse, _ = restoration_reconstruction_loss(target + 0.2 * torch.randn(4, 4411, generator=g), target)
    assert float(worse) > float(total.detach())
    bf, _ = restoration_reconstruction_loss(estimate.detach().bfloat16(), target.bfloat16())
    assert bf.dtype == torch.float32 and torch.isfinite(bf)
