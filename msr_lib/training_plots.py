"""Training curves for the lessons: a finished run's log as a figure, and a live plot that a training loop feeds.

Lessons: notebooks/03_bs_roformer.ipynb, notebooks/04_curriculum_lora.ipynb, notebooks/05_hifipp_restorer.ipynb

A run's log (:func:`msr_lib.train.loop.read_log`) is a list of rows: training rows ``{"step", "loss", "l1", "stft",
"neg_si_snr", "lr", "grad_norm", ...}`` and validation rows ``{"step", "valid/mms", "valid/mms/<stem>", ...}`` (the
first one at step 0: the model before training).
:func:`plot_training_log` draws three panels from it:

1. the total loss and the two relative-error parts (``l1``, ``stft``),
2. the SI-SNR part, logged as ``neg_si_snr`` (−SI-SNR in dB: lower is better),
3. validation Multi-Mel-SNR per stem (thin lines) and their mean (thick black line), higher is better.

:func:`plot_restorer_log` draws a restorer run's log (:mod:`msr_lib.train.restorer`): the reconstruction loss and
its parts, the adversarial phase (generator LSGAN, feature matching, discriminator), and validation Multi-Mel-SNR of
the restored stems against their inputs.

:class:`LiveLossPlot` is an ``on_log`` callback (``lesson_run(..., on_log=live)``) that redraws one of these figures
in place in a notebook every ``every`` rows (``plot=plot_restorer_log`` for a restorer).
"""
from __future__ import annotations

__all__ = ["LOSS_PARTS", "training_rows", "validation_rows", "plot_training_log", "plot_restorer_log", "LiveLossPlot"]

#: the training-row keys drawn in the first panel (total, then the relative-error parts)
LOSS_PARTS = ("loss", "l1", "stft")
VALID_PREFIX = "valid/mms"


def training_rows(rows) -> list[dict]:
    """The rows of a log that come from training steps (they carry ``loss``)."""
    return [r for r in rows if "loss" in r]


def validation_rows(rows) -> list[dict]:
    """The rows of a log that carry validation scores (``valid/…`` keys)."""
    return [r for r in rows if any(k.startswith("valid/") for k in r)]


def _series(rows, key) -> tuple[list[int], list[float]]:
    pairs = [(r["step"], r[key]) for r in rows if key in r]
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot_training_log(rows, *, title: str = "", fig=None):
    """Draw a run's log (list of rows) as three panels: loss parts, SI-SNR part, validation Multi-Mel-SNR per stem.

    Returns the figure (a new one, or ``fig`` cleared and redrawn). Rows may be empty (panels say "no data yet").
    """
    import matplotlib.pyplot as plt

    rows = list(rows)
    if fig is None:
        fig = plt.figure(figsize=(13, 3.2))
    fig.clf()
    ax_loss, ax_snr, ax_valid = fig.subplots(1, 3)
    train_rows, valid_rows = training_rows(rows), validation_rows(rows)

    for key, style in zip(LOSS_PARTS, ("-", "--", ":")):
        steps, values = _series(train_rows, key)
        if steps:
            ax_loss.plot(steps, values, style, marker="." if len(steps) < 30 else None,
                         label="total" if key == "loss" else key, color="k" if key == "loss" else None)
    ax_loss.set_title("training loss and its parts")
    steps, values = _series(train_rows, "neg_si_snr")
    if steps:
        ax_snr.plot(steps, values, color="tab:purple", marker="." if len(steps) < 30 else None, label="neg_si_snr")
    ax_snr.set_title("SI-SNR part (−SI-SNR, dB; lower is better)")

    keys = [k for r in valid_rows for k in r if k.startswith(VALID_PREFIX + "/")]
    stems = [k[len(VALID_PREFIX) + 1:] for k in dict.fromkeys(keys)]  # in the log's (model's) stem order
    for stem in stems:
        steps, values = _series(valid_rows, f"{VALID_PREFIX}/{stem}")
        ax_valid.plot(steps, values, marker="o", lw=1, label=stem)
    steps, values = _series(valid_rows, VALID_PREFIX)
    if steps:
        ax_valid.plot(steps, values, marker="o", lw=2.5, color="k", label="mean")
    ax_valid.set_title("validation Multi-Mel-SNR (dB; higher is better)")

    for ax in (ax_loss, ax_snr, ax_valid):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="0.5")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_restorer_log(rows, *, title: str = "", adversarial_from: int | None = None, fig=None):
    """Draw a restorer run's log as three panels: reconstruction (total, STFT and mel parts), the adversarial phase
    (generator LSGAN, feature matching, discriminator LSGAN; the dotted line is LSGAN's "cannot tell" level 1, the
    dashed one ``adversarial_from``), validation Multi-Mel-SNR of the restored stems and of their inputs."""
    import matplotlib.pyplot as plt

    rows = list(rows)
    if fig is None:
        fig = plt.figure(figsize=(14, 3.3))
    fig.clf()
    axes = fig.subplots(1, 3)
    train_rows, valid_rows = training_rows(rows), validation_rows(rows)
    panels = ((axes[0], {"reconstruction": "reconstruction", "stft": "STFT part", "mel_l1": "mel L1 part"}),
              (axes[1], {"adversarial": "generator (LSGAN)", "feature_matching": "feature matching",
                         "d_loss": "discriminator (LSGAN)"}),
              (axes[2], {"valid/mms": "restored", "valid/mms_input": "input"}))
    for ax, keys in panels:
        for key, label in keys.items():
            source = valid_rows if key.startswith("valid") else train_rows
            points = [(r["step"], r[key]) for r in source if key in r]
            if points:
                ax.plot(*zip(*points), marker="o" if key.startswith("valid") else ".", label=label)
    if adversarial_from is not None:
        axes[1].axvline(adversarial_from + 0.5, color="0.5", ls="--", lw=1)
    axes[1].axhline(1.0, color="0.5", ls=":", lw=1)
    for ax, name in zip(axes, ("reconstruction loss", "adversarial phase", "validation Multi-Mel-SNR (dB)")):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


class LiveLossPlot:
    """An ``on_log`` callback that keeps the rows it is given and redraws :func:`plot_training_log` in place.

    ``every``: redraw after this many training rows (validation rows always redraw). ``plot``: the figure
    (default :func:`plot_training_log`; :func:`plot_restorer_log` for a restorer), with ``plot_options`` (e.g.
    ``adversarial_from``). In a notebook the figure is
    shown once through an ``IPython.display`` handle and then updated; outside one, nothing is displayed (the rows
    are still collected). Call :meth:`finish` with the run folder at the end: it redraws from the run's whole log, so
    a reused (already finished) or resumed run shows its full history too.
    """

    def __init__(self, *, title: str = "", every: int = 5, plot=None, **plot_options):
        self.title, self.every = title, max(1, int(every))
        self.plot, self.plot_options = plot or plot_training_log, plot_options
        self.rows: list[dict] = []
        self.handle = None
        self.redraws = 0

    def __call__(self, row: dict) -> None:
        self.rows.append(dict(row))
        is_train = "loss" in row
        if not is_train or len(training_rows(self.rows)) % self.every == 0:
            self.redraw()

    def figure(self):
        """A new figure of the rows so far (the caller closes it)."""
        return self.plot(self.rows, title=self.title, **self.plot_options)

    def redraw(self) -> None:
        """Draw the rows so far into the notebook output (first call displays, later calls update it)."""
        import matplotlib.pyplot as plt

        fig = self.figure()
        self.redraws += 1
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                if self.handle is None:
                    self.handle = display(fig, display_id=True)
                else:
                    self.handle.update(fig)
        finally:
            plt.close(fig)

    def finish(self, run_dir=None) -> list[dict]:
        """Final redraw; with ``run_dir`` the rows are first replaced by the run's saved log. Returns the rows."""
        if run_dir is not None:
            from msr_lib.train.loop import read_log

            self.rows = read_log(run_dir)
        self.redraw()
        return self.rows
