"""Plots students look at instead of reading numbers: waveforms, spectrograms, stem grids, level bars.

Lessons: notebooks/00_welcome.ipynb, notebooks/01_data_and_mastering.ipynb (plots appear in every lesson).
"""
from __future__ import annotations

import numpy as np

from msr_lib.audio import SAMPLE_RATE, check_audio
from msr_lib.errors import AudioError, MSRError

#: more rows than this, and more rows than columns: a ``(samples, channels)`` array, not ``(channels, samples)``
_MAX_CHANNELS = 8


def as_signal(audio, name: str = "audio") -> np.ndarray:
    """What a student hands a plot or a player, as float32 ``(channels, samples)``: a 1-D signal is one channel,
    integer PCM becomes float in [-1, 1) (as the file reader does), float64 float32. Refused with one
    :class:`~msr_lib.errors.AudioError` line: no samples, NaN or infinite samples (also float64 values beyond
    float32), other shapes, non-numbers and a ``(samples, channels)`` array (``sf.read``'s layout: pass ``.T``)."""
    array = np.asarray(audio)
    if array.dtype.kind not in "fiu":
        raise AudioError(f"{name}: expected an array of numbers, got {array.dtype} values")
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        middle = (int(info.max) + 1 + int(info.min)) / 2  # 0 for signed PCM, 128 for unsigned 8-bit
        array = (array.astype(np.float64) - middle) / (int(info.max) + 1 - middle)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim == 2 and array.shape[0] > _MAX_CHANNELS and array.shape[0] > array.shape[1]:
        raise AudioError(f"{name}: shape {array.shape} looks like (samples, channels); "
                         f"pass it as (channels, samples), e.g. audio.T")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused just below
        array = array.astype(np.float32, copy=False)
    return check_audio(array, name)


def check_rate(sample_rate) -> int:
    """``sample_rate`` as a positive whole number of Hz, else one :class:`~msr_lib.errors.AudioError` line."""
    try:
        rate = int(sample_rate)
    except (TypeError, ValueError):
        rate = 0
    if rate <= 0 or rate != sample_rate:
        raise AudioError(f"sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    return rate


def spectrogram_db(audio, sample_rate: int = SAMPLE_RATE, *, n_fft: int = 2048, hop: int = 512,
                   floor_db: float = -100.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude spectrogram of the mono sum in dBFS: returns ``(times_s, freqs_hz, S_db)``.

    0 dBFS is a full-scale sine, so two spectrograms made with this function share one colour scale. A signal
    shorter than ``n_fft`` is zero-padded at the end to it (one frame); bad audio: :func:`as_signal`.
    """
    import librosa

    sample_rate = check_rate(sample_rate)
    mono = as_signal(audio).mean(axis=0)
    if mono.size < n_fft:
        mono = np.pad(mono, (0, n_fft - mono.size))
    window_gain = np.hanning(n_fft).sum() / 2
    spec = np.abs(librosa.stft(mono, n_fft=n_fft, hop_length=hop)) / window_gain
    s_db = np.maximum(20 * np.log10(spec + 1e-12), floor_db)
    times = np.arange(s_db.shape[1]) * hop / sample_rate
    freqs = np.linspace(0, sample_rate / 2, s_db.shape[0])
    return times, freqs, s_db


def plot_spectrogram(ax, audio, sample_rate: int = SAMPLE_RATE, *, title: str = "", vmin: float = -100.0,
                     vmax: float = 0.0, log_freq: bool = True, colorbar: bool = False):
    """Draw a dBFS spectrogram on ``ax`` (log-frequency by default, fixed colour range for fair comparison)."""
    times, freqs, s_db = spectrogram_db(as_signal(audio, title or "audio"), sample_rate)
    mesh = ax.pcolormesh(times, freqs, s_db, shading="auto", cmap="magma", vmin=vmin, vmax=vmax, rasterized=True)
    if log_freq:
        ax.set_yscale("symlog", linthresh=100, linscale=0.3)
        ax.set_ylim(20, sample_rate / 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="dBFS")
    return mesh


def plot_waveform(ax, audio, sample_rate: int = SAMPLE_RATE, *, title: str = "", color=None, label=None):
    """Draw the mono-sum waveform on ``ax`` with a fixed ±1 range (full scale); bad audio: :func:`as_signal`."""
    mono = as_signal(audio, title or label or "audio").mean(axis=0)
    t = np.arange(mono.size) / check_rate(sample_rate)
    ax.plot(t, mono, lw=0.5, color=color, label=label)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title)


def plot_stems(stems: dict, sample_rate: int = SAMPLE_RATE, *, mix=None, kind: str = "spectrogram",
               ncols: int = 3, figsize_per=(4.2, 2.6)):
    """A grid with one panel per stem (and the mix first, if given). ``kind``: ``spectrogram`` or ``waveform``.

    Spectrograms share one dBFS colour scale, shown by one colour bar.
    """
    import matplotlib.pyplot as plt

    panels = ([("mix", mix)] if mix is not None else []) + list(stems.items())
    if not panels:
        raise MSRError("plot_stems: no stems to plot")
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(figsize_per[0] * ncols, figsize_per[1] * nrows),
                             squeeze=False, sharex=True, layout="constrained")
    for ax, (name, audio) in zip(axes.flat, panels):
        if kind == "waveform":
            plot_waveform(ax, audio, sample_rate, title=name)
        else:
            mesh = plot_spectrogram(ax, audio, sample_rate, title=name)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if kind != "waveform" and panels:
        fig.colorbar(mesh, ax=axes, label="dBFS", shrink=0.8)
    return fig


def plot_levels(levels: dict, *, ax=None, unit: str = "dB", title: str = ""):
    """Horizontal bar chart of one number per name (e.g. LUFS per stem)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.35 * len(levels) + 1))
    names = list(levels)
    ax.barh(names, [levels[n] for n in names], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    if title:
        ax.set_title(title)
    return ax
