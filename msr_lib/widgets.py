"""Listening and exploration widgets for the lessons.

Lessons: notebooks/00_welcome.ipynb, notebooks/01_data_and_mastering.ipynb (players appear in every lesson).

Rules every player here follows (docs/DESIGN.md): never autoplay, never loop, never peak-normalise. When several
signals are compared they share **one** gain: 1.0, unless one of them would clip the player, in which case all are
scaled by the same factor and the label says so — so louder stays louder and an A/B comparison stays honest.
Players embed lossless 16-bit FLAC, each sound once (a player of the same samples reuses its control); ``seconds``
plays only the first seconds of a signal (the label says so). Both keep an executed lesson small.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from msr_lib.audio import SAMPLE_RATE, crest_factor_db, loudness_lufs, peak_dbfs


def shared_gain(signals) -> float:
    """The single gain that keeps every signal within ±1 (1.0 when none would clip)."""
    peak = max((float(np.max(np.abs(s))) for s in signals if np.size(s)), default=0.0)
    return 1.0 if peak <= 1.0 else 1.0 / peak


def flac_bytes(audio, sample_rate: int = SAMPLE_RATE, *, gain: float = 1.0) -> bytes:
    """Lossless 16-bit FLAC bytes of ``audio * gain`` (clipped to ±1, never normalised)."""
    import io

    import soundfile as sf

    data = np.clip(np.asarray(audio, dtype=np.float32) * gain, -1.0, 1.0)
    data = data if data.ndim == 1 else data.T
    buffer = io.BytesIO()
    sf.write(buffer, data, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


#: The latest audio controls by the SHA-1 of their FLAC: a player of the same samples at the same gain shows the
#: control it already has, so a lesson embeds each sound once (kept to the latest ``_CONTROLS_KEPT``).
_controls: OrderedDict = OrderedDict()
_CONTROLS_KEPT = 64


def audio_control(audio, sample_rate: int = SAMPLE_RATE, *, gain: float = 1.0):
    """An ``ipywidgets.Audio`` control: no autoplay, no loop, no normalisation (``gain`` applied first).

    The FLAC travels as a binary widget buffer, not as base64 text in a display message, so long songs do not
    trip JupyterLab's output rate limit. The same samples at the same gain give the same control (one embed).
    """
    import hashlib

    import ipywidgets as widgets

    data = flac_bytes(audio, sample_rate, gain=gain)
    key = hashlib.sha1(data).hexdigest()
    if key not in _controls:
        _controls[key] = widgets.Audio(value=data, format="flac", autoplay=False, loop=False, controls=True,
                                       layout=widgets.Layout(width="420px"))
        while len(_controls) > _CONTROLS_KEPT:
            _controls.popitem(last=False)
    _controls.move_to_end(key)
    return _controls[key]


def excerpt(audio, sample_rate: int = SAMPLE_RATE, seconds: float | None = None) -> np.ndarray:
    """The first ``seconds`` of ``audio`` (all of it for ``None``)."""
    audio = np.asarray(audio)
    return audio if seconds is None else audio[..., : int(round(seconds * sample_rate))]


def is_cut(audio, sample_rate: int = SAMPLE_RATE, seconds: float | None = None) -> bool:
    """Does ``excerpt(audio, sample_rate, seconds)`` leave part of ``audio`` out?"""
    return seconds is not None and np.shape(audio)[-1] > int(round(seconds * sample_rate))


def level_text(audio, sample_rate: int = SAMPLE_RATE) -> str:
    """A one-line level summary: integrated loudness, sample peak, crest factor."""
    return (f"{loudness_lufs(audio, sample_rate):6.1f} LUFS · peak {peak_dbfs(audio):6.1f} dBFS · "
            f"crest {crest_factor_db(audio):4.1f} dB")


def player(audio, sample_rate: int = SAMPLE_RATE, *, label: str = "", gain: float = 1.0, levels: bool = True,
           seconds: float | None = None):
    """A labelled player widget (label, level line, audio control) of the whole signal or its first ``seconds``.

    The label says "first N s" when the excerpt leaves part of the signal out.
    """
    import ipywidgets as widgets

    text = f"<b>{label}</b>" if label else ""
    if is_cut(audio, sample_rate, seconds):
        text += f" <i>(first {seconds:g} s)</i>"
    audio = excerpt(audio, sample_rate, seconds)
    if levels:
        text += f" <span style='font-family:monospace;color:#555'>{level_text(audio, sample_rate)}</span>"
    return widgets.VBox([widgets.HTML(text), audio_control(audio, sample_rate, gain=gain)],
                        layout=widgets.Layout(margin="0 0 6px 0"))


def compare_players(signals: dict, sample_rate: int = SAMPLE_RATE, *, levels: bool = True, title: str = "",
                    seconds: float | None = None):
    """Players for several signals (or their first ``seconds``) at one shared gain, stacked with their labels."""
    import ipywidgets as widgets

    cut = any(is_cut(a, sample_rate, seconds) for a in signals.values())
    signals = {name: excerpt(a, sample_rate, seconds) for name, a in signals.items()}
    gain = shared_gain(signals.values())
    rows = [player(a, sample_rate, label=name, gain=gain, levels=levels) for name, a in signals.items()]
    head = title
    if cut:
        head += f" <i>first {seconds:g} s of each</i>"
    if gain != 1.0:
        head += f" <i>(all players scaled by the same {20 * np.log10(gain):.1f} dB so none clips)</i>"
    return widgets.VBox(([widgets.HTML(head)] if head else []) + rows)


def stem_players(stems: dict, sample_rate: int = SAMPLE_RATE, *, mix=None, levels: bool = True,
                 seconds: float | None = None):
    """The mix and every stem (or their first ``seconds``), one shared gain so their loudness relations are heard."""
    signals = ({"mix": mix} if mix is not None else {}) | dict(stems)
    return compare_players(signals, sample_rate, levels=levels, seconds=seconds)


def effect_explorer(audio, process, controls: dict, sample_rate: int = SAMPLE_RATE, *, title: str = "",
                    measure=None):
    """Sliders → ``process(audio, **values)`` → before/after spectrograms, levels and players.

    ``controls`` maps a keyword of ``process`` to an ipywidgets control (e.g. ``FloatSlider``). Processing runs when
    a slider is released (``continuous_update=False``). ``measure(before, after) -> str`` adds a line of numbers.
    Returns the widget; ``widget.result()`` gives the latest processed audio (handy for self-checks).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from msr_lib.plots import plot_spectrogram

    for control in controls.values():
        control.continuous_update = False
    out = widgets.Output()
    state = {"after": audio}

    def render(_change=None):
        values = {name: c.value for name, c in controls.items()}
        after = np.asarray(process(audio, **values), dtype=np.float32)
        state["after"] = after
        out.clear_output(wait=True)
        with out:
            fig, axes = plt.subplots(1, 2, figsize=(11, 3), sharey=True)
            plot_spectrogram(axes[0], audio, sample_rate, title="before")
            plot_spectrogram(axes[1], after, sample_rate, title="after", colorbar=True)
            fig.tight_layout()
            plt.show()
            if measure is not None:
                display(widgets.HTML(f"<pre>{measure(audio, after)}</pre>"))
            display(compare_players({"before": audio, "after": after}, sample_rate))

    for control in controls.values():
        control.observe(render, names="value")
    render()
    box = widgets.VBox(([widgets.HTML(f"<h4>{title}</h4>")] if title else []) + list(controls.values()) + [out])
    box.result = lambda: state["after"]
    return box
