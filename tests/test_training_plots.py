"""Training curves: the figure holds the log's numbers; the live plot collects rows and redraws."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from msr_lib.training_plots import LiveLossPlot, plot_training_log, training_rows, validation_rows  # noqa: E402


def fake_log(steps=6, validate_every=3, stems=("vocals", "bass", "drums", "other")):
    """A log as the training loop writes it: validation at step 0 (before training), then every few steps."""
    rows = []
    for step in range(0, steps + 1):
        if step:
            rows.append({"step": step, "loss": 6.0 - 0.5 * step, "l1": 1.0 - 0.1 * step, "stft": 2.0 - 0.1 * step,
                         "neg_si_snr": 30.0 - step, "lr": 1e-3, "grad_norm": 3.0, "seconds": 0.1 * step})
        if step % validate_every == 0:
            per_stem = {f"valid/mms/{s}": 0.5 * step + i for i, s in enumerate(stems)}
            rows.append({"step": step, **per_stem, "valid/mms": float(np.mean(list(per_stem.values())))})
    return rows


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.lines}


def test_split_rows():
    rows = fake_log()
    assert len(training_rows(rows)) == 6 and len(validation_rows(rows)) == 3


def test_plot_training_log_draws_the_numbers():
    rows = fake_log()
    fig = plot_training_log(rows, title="pretrain")
    ax_loss, ax_snr, ax_valid = fig.axes[:3]
    assert len(fig.axes) == 3 and all(ax.get_title() for ax in fig.axes)
    loss = lines_by_label(ax_loss)
    assert set(loss) == {"total", "l1", "stft"}
    np.testing.assert_allclose(loss["total"].get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(loss["total"].get_ydata(), [6.0 - 0.5 * s for s in range(1, 7)])
    np.testing.assert_allclose(loss["stft"].get_ydata(), [2.0 - 0.1 * s for s in range(1, 7)])
    snr = lines_by_label(ax_snr)
    np.testing.assert_allclose(snr["neg_si_snr"].get_ydata(), [30.0 - s for s in range(1, 7)])
    valid = lines_by_label(ax_valid)
    assert list(valid) == ["vocals", "bass", "drums", "other", "mean"]  # the log's stem order, then the mean
    np.testing.assert_allclose(valid["bass"].get_xdata(), [0, 3, 6])  # step 0: the model before training
    np.testing.assert_allclose(valid["bass"].get_ydata(), [1.0, 2.5, 4.0])
    np.testing.assert_allclose(valid["mean"].get_ydata(), [1.5, 3.0, 4.5])
    assert fig._suptitle.get_text() == "pretrain"
    plt.close(fig)


def test_plot_training_log_empty_and_training_only():
    fig = plot_training_log([])
    assert len(fig.axes) == 3 and all(not ax.lines for ax in fig.axes)
    assert all(any(t.get_text() == "no data yet" for t in ax.texts) for ax in fig.axes)
    plt.close(fig)
    fig = plot_training_log(training_rows(fake_log()))
    assert len(fig.axes[0].lines) == 3 and not fig.axes[2].lines
    plt.close(fig)


def test_redraw_reuses_the_figure():
    fig = plot_training_log(fake_log(steps=3))
    again = plot_training_log(fake_log(steps=6), fig=fig)
    assert again is fig and len(fig.axes) == 3
    assert len(lines_by_label(fig.axes[0])["total"].get_xdata()) == 6
    plt.close(fig)


def test_live_plot_collects_and_redraws_every_n_rows():
    live = LiveLossPlot(title="live", every=2)
    for row in fake_log(steps=6, validate_every=3):
        live(row)
    # training rows 2, 4, 6 → 3 redraws; validation rows at steps 0, 3 and 6 → 3 more
    assert live.redraws == 6
    assert len(live.rows) == 9
    assert live.handle is None  # no notebook here: nothing displayed
    assert not plt.get_fignums()  # every redraw closed its figure


def test_live_plot_finish_reads_the_saved_log(tmp_path):
    rows = fake_log(steps=4, validate_every=2)
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    live = LiveLossPlot()
    assert live.finish(tmp_path) == rows  # a reused run: no row arrived live, the saved log is drawn
    assert live.redraws == 1


@pytest.mark.parametrize("every", [0, 1])
def test_every_is_at_least_one(every):
    live = LiveLossPlot(every=every)
    live({"step": 1, "loss": 1.0})
    assert live.redraws == 1


def test_plot_restorer_log_draws_the_reconstruction_the_gan_phase_and_validation():
    from msr_lib.training_plots import plot_restorer_log

    rows = [{"step": 0, "valid/mms": 1.0, "valid/mms_input": 1.0}]
    for step in range(1, 7):
        row = {"step": step, "loss": 2.0, "reconstruction": 2.0 - 0.1 * step, "stft": 1.0, "mel_l1": 1.0}
        if step > 3:
            row.update({"adversarial": 0.9, "feature_matching": 0.2, "d_loss": 0.5})
        rows.append(row)
    rows.append({"step": 6, "valid/mms": 1.5, "valid/mms_input": 1.0})
    fig = plot_restorer_log(rows, title="t", adversarial_from=3)
    reconstruction, adversarial, valid = fig.axes[:3]
    assert [line.get_label() for line in reconstruction.get_lines()] == ["reconstruction", "STFT part", "mel L1 part"]
    gan = {line.get_label(): list(line.get_xdata()) for line in adversarial.get_lines() if not line.get_label().startswith("_")}
    assert gan == {"generator (LSGAN)": [4, 5, 6], "feature matching": [4, 5, 6], "discriminator (LSGAN)": [4, 5, 6]}
    assert [list(line.get_ydata()) for line in valid.get_lines()] == [[1.0, 1.5], [1.0, 1.0]]
