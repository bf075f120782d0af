"""Metric curves (lesson 02): sweeps score each transform value, bisection finds a target score."""
import numpy as np
import pytest

from msr_lib.errors import MSRError
from msr_lib.metric_curves import (
    add_noise, default_metrics, delay, find_value, metric_curve, plot_metric_curves, standard_transforms,
)
from msr_lib.metrics import METRICS, si_snr, snr

SR = 44_100


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(SR)
    return np.stack([tone, np.roll(tone, 17)]).astype(np.float32)


def test_default_metrics_are_the_registry_entries_by_label():
    assert default_metrics() == {"SNR": METRICS["snr"], "SI-SNR": METRICS["si_snr"],
                                 "Multi-Mel-SNR": METRICS["multi_mel_snr"], "Zimtohrli": METRICS["zimtohrli"]}
    assert list(default_metrics(zimtohrli=False)) == ["SNR", "SI-SNR", "Multi-Mel-SNR"]


def test_gain_curve_snr_punishes_level_si_snr_does_not(reference):
    metrics = default_metrics(zimtohrli=False)
    curve = metric_curve(reference, lambda x, g: x * np.float32(10 ** (g / 20)), [-6.0, 0.0, 6.0], metrics, SR)
    assert list(curve) == ["values", "SNR", "SI-SNR", "Multi-Mel-SNR"]
    assert np.allclose(curve["values"], [-6, 0, 6])
    assert curve["SNR"][0] == pytest.approx(6.02, abs=0.05)
    assert curve["SNR"][1] > 80                        # unchanged signal
    assert np.all(curve["SI-SNR"] > 60) and np.all(curve["Multi-Mel-SNR"] > 60)


def test_add_noise_hits_the_snr_exactly(reference):
    noisy = add_noise(reference, -20.0, seed=3)
    assert noisy.shape == reference.shape and noisy.dtype == np.float32
    assert snr(noisy, reference) == pytest.approx(20.0, abs=0.3)   # per-channel mean; energy split is close to even


def test_delay_shifts_and_keeps_length(reference):
    shifted = delay(reference, 1.0, SR)
    n = round(SR / 1000)
    assert shifted.shape == reference.shape
    assert np.all(shifted[:, :n] == 0) and np.array_equal(shifted[:, n:], reference[:, :-n])
    assert np.array_equal(delay(reference, 0.0, SR), reference)


def test_find_value_matches_a_target_score(reference):
    metric = lambda est, ref, sr: si_snr(est, ref)
    value = find_value(reference, lambda x, d: add_noise(x, d), 15.0, metric, -60.0, 10.0, SR)
    assert si_snr(add_noise(reference, value), reference) == pytest.approx(15.0, abs=0.01)
    with pytest.raises(MSRError):
        find_value(reference, lambda x, d: add_noise(x, d), 200.0, metric, -60.0, 10.0, SR)


def test_transform_must_keep_shape(reference):
    with pytest.raises(MSRError):
        metric_curve(reference, lambda x, v: x[:, :100], [1.0], {"SNR": lambda e, r, sr: snr(e, r)}, SR)


def test_standard_transforms_are_identity_at_their_identity_value(reference):
    sweeps = standard_transforms(SR, points=3)
    assert {"gain", "EQ", "delay", "reverb", "compression", "MP3", "noise"} <= set(sweeps)
    for name, sweep in sweeps.items():
        assert len(sweep.values) == 3
        out = sweep.transform(reference, float(sweep.values[-1]))
        assert out.shape == reference.shape, name
        if sweep.identity is not None and name != "compression":   # a 1:1 compressor still runs its detector
            assert np.allclose(sweep.transform(reference, sweep.identity), reference, atol=1e-5), name


def test_plot_has_one_panel_per_transform(reference):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {"a": {"values": np.arange(3.0), "SNR": np.array([1.0, 2, 3]), "Zimtohrli": np.array([0.0, 0.1, 0.2])},
              "b": {"values": np.arange(3.0), "SNR": np.array([3.0, 2, 1]), "Zimtohrli": np.array([0.0, 0.3, 0.4])}}
    fig = plot_metric_curves(curves, ncols=2)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["a", "b"]
    twins = [ax for ax in fig.axes if not ax.get_title() and ax.get_ylabel()]
    assert len(twins) == 2 and all(t.get_ylim()[0] == twins[0].get_ylim()[0] for t in twins)   # one shared axis
    assert twins[0].get_ylim()[0] > twins[0].get_ylim()[1]                  # inverted: up is better there too
    assert [line.get_label() for line in twins[0].get_lines()] == ["Zimtohrli (right axis)"]
    assert [line.get_label() for line in titled[0].get_lines()] == ["SNR"]  # a dB metric stays on the left axis
    plt.close(fig)
