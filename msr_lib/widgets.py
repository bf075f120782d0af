"""Listening and exploration widgets for the lessons.

Lessons: notebooks/00_welcome.ipynb, notebooks/01_data_and_mastering.ipynb (players appear in every lesson);
the listening desk (stem browser, mixing desk): notebooks/06_full_pipeline.ipynb.

Rules every player here follows (docs/DESIGN.md): never autoplay, never loop, never peak-normalise. When several
signals are compared they share **one** gain: 1.0, unless one of them would clip the player, in which case all are
scaled by the same factor and the label says so — so louder stays louder and an A/B comparison stays honest.
Players embed lossless 16-bit FLAC, each sound once (a player of the same samples reuses its control); ``seconds``
plays only the first seconds of a signal (the label says so). Both keep an executed lesson small.

What a player, the stem browser and the mixing desk take (:func:`playable`): ``(channels, samples)`` or 1-D
arrays at any positive rate, of any length down to one sample; more than two channels are folded to stereo, integer
PCM becomes float. Silence plays as silence (its level line says ``-inf LUFS``). Empty signals, NaN or infinite
samples and ``(samples, channels)`` arrays are refused with one :class:`~msr_lib.errors.AudioError` line — at
construction, so a widget never fails in a callback.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from msr_lib.audio import SAMPLE_RATE, crest_factor_db, fit_length, loudness_lufs, peak_dbfs, to_stereo
from msr_lib.errors import AudioError, MSRError
from msr_lib.plots import as_signal, check_rate


def playable(audio, name: str = "audio") -> np.ndarray:
    """``audio`` as the players take it: float32 ``(channels ≤ 2, samples)`` (:func:`msr_lib.plots.as_signal`,
    whose refusals apply; more than two channels folded to stereo by :func:`msr_lib.audio.to_stereo`)."""
    audio = as_signal(audio, name)
    return to_stereo(audio) if audio.shape[0] > 2 else audio


def shared_gain(signals) -> float:
    """The single gain that keeps every signal within ±1 (1.0 when none would clip); bad audio: :func:`playable`."""
    peak = max((float(np.max(np.abs(playable(s)))) for s in signals), default=0.0)
    return 1.0 if peak <= 1.0 else 1.0 / peak


def _gain(gain, audio) -> float:
    """``gain`` checked (finite, not negative); ``None``: :func:`shared_gain` of ``audio`` alone."""
    if gain is None:
        return shared_gain([audio])
    if not (np.isfinite(gain) and gain >= 0):
        raise MSRError(f"a player's gain must be a finite number ≥ 0, got {gain!r}")
    return float(gain)


def flac_bytes(audio, sample_rate: int = SAMPLE_RATE, *, gain: float | None = None) -> bytes:
    """Lossless 16-bit FLAC bytes of ``audio * gain`` (clipped to ±1, never normalised). ``gain=None``: 1.0, or
    the gain that just keeps a signal peaking over full scale from clipping (:func:`shared_gain`)."""
    import io

    import soundfile as sf

    audio, sample_rate = playable(audio), check_rate(sample_rate)
    data = np.clip(audio * np.float32(_gain(gain, audio)), -1.0, 1.0)
    buffer = io.BytesIO()
    try:
        sf.write(buffer, data.T, sample_rate, format="FLAC", subtype="PCM_16")
    except Exception as exc:  # soundfile: LibsndfileError, ValueError… (e.g. a rate FLAC cannot hold)
        raise AudioError(f"cannot encode audio at {sample_rate} Hz as FLAC ({str(exc).splitlines()[0]})") from None
    return buffer.getvalue()


#: The latest audio controls by the SHA-1 of their FLAC: a player of the same samples at the same gain shows the
#: control it already has, so a lesson embeds each sound once (kept to the latest ``_CONTROLS_KEPT``).
_controls: OrderedDict = OrderedDict()
_CONTROLS_KEPT = 64


def audio_control(audio, sample_rate: int = SAMPLE_RATE, *, gain: float | None = None):
    """An ``ipywidgets.Audio`` control: no autoplay, no loop, no normalisation (``gain`` applied first; ``None``
    as in :func:`flac_bytes`).

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


def _excerpt_length(sample_rate, seconds) -> int:
    try:
        positive = float(seconds) > 0  # False for NaN
    except (TypeError, ValueError):
        positive = False
    if not positive:
        raise MSRError(f"seconds must be a positive number (or None for all of it), got {seconds!r}")
    return max(1, int(round(seconds * check_rate(sample_rate))))


def excerpt(audio, sample_rate: int = SAMPLE_RATE, seconds: float | None = None) -> np.ndarray:
    """The first ``seconds`` of ``audio`` (all of it for ``None``; at least one sample)."""
    audio = np.asarray(audio)
    return audio if seconds is None else audio[..., : _excerpt_length(sample_rate, seconds)]


def is_cut(audio, sample_rate: int = SAMPLE_RATE, seconds: float | None = None) -> bool:
    """Does ``excerpt(audio, sample_rate, seconds)`` leave part of ``audio`` out?"""
    return seconds is not None and np.shape(audio)[-1] > _excerpt_length(sample_rate, seconds)


def level_text(audio, sample_rate: int = SAMPLE_RATE) -> str:
    """A one-line level summary: integrated loudness, sample peak, crest factor (bad audio: :func:`playable`)."""
    audio, sample_rate = playable(audio), check_rate(sample_rate)
    return (f"{loudness_lufs(audio, sample_rate):6.1f} LUFS · peak {peak_dbfs(audio):6.1f} dBFS · "
            f"crest {crest_factor_db(audio):4.1f} dB")


def player(audio, sample_rate: int = SAMPLE_RATE, *, label: str = "", gain: float | None = None,
           levels: bool = True, seconds: float | None = None):
    """A labelled player widget (label, level line, audio control) of the whole signal or its first ``seconds``.

    The label says "first N s" when the excerpt leaves part of the signal out. ``gain=None``: 1.0, unless the
    signal would clip; then it is scaled just under full scale and the label says by how much.
    """
    import ipywidgets as widgets

    audio, sample_rate = playable(audio, label or "audio"), check_rate(sample_rate)
    text = f"<b>{label}</b>" if label else ""
    if is_cut(audio, sample_rate, seconds):
        text += f" <i>(first {seconds:g} s)</i>"
    audio = excerpt(audio, sample_rate, seconds)
    if gain is None:
        gain = shared_gain([audio])
        if gain != 1.0:
            text += f" <i>(scaled by {20 * np.log10(gain):.1f} dB so it does not clip)</i>"
    if levels:
        text += f" <span style='font-family:monospace;color:#555'>{level_text(audio, sample_rate)}</span>"
    return widgets.VBox([widgets.HTML(text), audio_control(audio, sample_rate, gain=gain)],
                        layout=widgets.Layout(margin="0 0 6px 0"))


def compare_players(signals: dict, sample_rate: int = SAMPLE_RATE, *, levels: bool = True, title: str = "",
                    seconds: float | None = None):
    """Players for several signals (or their first ``seconds``) at one shared gain, stacked with their labels
    (bad audio: :func:`playable`, the label names the signal)."""
    import ipywidgets as widgets

    sample_rate = check_rate(sample_rate)
    signals = {name: playable(a, str(name)) for name, a in signals.items()}
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
    Returns the widget; ``widget.result()`` gives the latest processed audio (handy for self-checks). Audio a
    player refuses (:func:`playable`: e.g. NaN samples) raises at construction; if ``process`` returns such audio
    after a slider moved, ``widget.status`` says so in one line instead of the plots.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from msr_lib.plots import plot_spectrogram

    playable(audio, "before")
    sample_rate = check_rate(sample_rate)
    for control in controls.values():
        control.continuous_update = False
    out, status = widgets.Output(), widgets.HTML()
    state = {"after": audio}

    def render():
        values = {name: c.value for name, c in controls.items()}
        after = np.asarray(process(audio, **values))
        state["after"] = after.astype(np.float32, copy=False) if after.dtype.kind == "f" else after
        playable(after, "after (what process returned)")
        status.value = ""
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

    def on_change(_change):
        try:
            render()
        except MSRError as exc:  # in a callback: shown in the widget, not raised where no one sees it
            out.clear_output()
            status.value = _error_html(exc)

    for control in controls.values():
        control.observe(on_change, names="value")
    render()
    box = widgets.VBox(([widgets.HTML(f"<h4>{title}</h4>")] if title else []) + list(controls.values())
                       + [status, out])
    box.result = lambda: state["after"]
    box.status = status
    return box


def _error_html(message) -> str:
    """One red line of a widget's status (``message`` on one line, HTML-escaped)."""
    import html

    return f"<span style='color:#b00'>{html.escape(' '.join(str(message).split()))}</span>"


# ---------------------------------------------------------------- the listening desk (lesson 06)

def _rows_html(rows: dict) -> str:
    """A small HTML table of ``{row: {column: number}}``."""
    columns = list(dict.fromkeys(c for values in rows.values() for c in values))
    head = "".join(f"<th style='padding:0 8px'>{c}</th>" for c in columns)
    body = "".join(
        f"<tr><td style='padding:0 8px'><b>{row}</b></td>" + "".join(
            f"<td style='padding:0 8px;text-align:right'>{values[c]:+.2f}</td>"
            if isinstance(values.get(c), float) and np.isfinite(values[c])
            else f"<td style='padding:0 8px'>{values.get(c, '')}</td>" for c in columns) + "</tr>"
        for row, values in rows.items())
    return f"<table style='font-family:monospace'><tr><th></th>{head}</tr>{body}</table>"


def stem_browser(versions: dict, sample_rate: int = SAMPLE_RATE, *, mix=None, scores: dict | None = None,
                 stem: str | None = None, seconds: float | None = None, spectrograms: bool = True):
    """Pick a stem; hear and see every version of it side by side.

    ``versions`` maps a version name (e.g. ``"separated"``, ``"restored"``, ``"reference"``) to ``{stem: audio}``;
    ``mix`` (optional) plays first. The players of one stem share one gain (:func:`compare_players`), so a quieter
    version sounds quieter; spectrograms use one colour range. ``scores`` maps a version to ``{stem: {metric: dB}}``
    and shows that stem's rows. Returns the widget; ``widget.chooser.value`` is the stem on show,
    ``widget.select(stem)`` switches (what the dropdown does), ``widget.players()`` is its players' box. Every
    signal is checked here (:func:`playable`), so switching stems never fails.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from msr_lib.plots import plot_spectrogram
    from msr_lib.stems import sort_stems

    sample_rate = check_rate(sample_rate)
    versions = {version: {stem: playable(audio, f"{version} · {stem}") for stem, audio in stems.items()}
                for version, stems in versions.items()}
    mix = None if mix is None else playable(mix, "mix")
    stems = sort_stems({s for v in versions.values() for s in v})
    if not stems:
        raise MSRError("stem_browser: no stems in any version")
    chooser = widgets.Dropdown(options=stems, value=stem if stem in stems else stems[0], description="stem")
    out = widgets.Output()

    def render(_change=None):
        name = chooser.value
        signals = ({"mix": mix} if mix is not None else {}) | {
            version: audio[name] for version, audio in versions.items() if name in audio}
        out.clear_output(wait=True)
        with out:
            if spectrograms:
                heard = {k: excerpt(v, sample_rate, seconds) for k, v in signals.items()}
                fig, axes = plt.subplots(1, len(heard), figsize=(3.6 * len(heard), 2.6), sharey=True, squeeze=False)
                for ax, (label, audio) in zip(axes[0], heard.items()):
                    plot_spectrogram(ax, audio, sample_rate, title=label)
                    if ax is not axes[0][0]:
                        ax.set_ylabel("")
                fig.tight_layout()
                plt.show()
            if scores:
                rows = {version: dict(per_stem[name]) for version, per_stem in scores.items() if name in per_stem}
                if rows:
                    display(widgets.HTML(_rows_html(rows)))
            shown["players"] = compare_players(signals, sample_rate, seconds=seconds, title=f"<b>{name}</b>")
            display(shown["players"])

    shown = {}
    chooser.observe(render, names="value")
    render()
    box = widgets.VBox([chooser, out])
    box.chooser = chooser
    box.players = lambda: shown["players"]
    box.select = lambda name: setattr(chooser, "value", name)
    return box


def aligned_stems(stems: dict) -> dict[str, np.ndarray]:
    """Stems as one array shape, ready to add: each checked (:func:`playable`); if their channel counts differ,
    all as stereo (mono duplicated); if their lengths differ, zero-padded at the end to the longest."""
    if not stems:
        raise MSRError("no stems given")
    stems = {name: playable(audio, str(name)) for name, audio in stems.items()}
    if len({a.shape[0] for a in stems.values()}) > 1:
        stems = {name: to_stereo(a) for name, a in stems.items()}
    length = max(a.shape[1] for a in stems.values())
    return {name: fit_length(a, length) for name, a in stems.items()}


def remix(stems: dict, gains_db: dict | None = None, *, mute=(), solo=()) -> np.ndarray:
    """The sum of ``stems`` with per-stem gains in dB; muted stems left out; if any stem is soloed, only the soloed
    ones (a muted solo stays muted). All gains 0 dB, nothing muted: the plain sum (the song, for stems that add up).
    Stems of different lengths or channel counts are aligned first (:func:`aligned_stems`); the result is
    float32 ``(channels, samples)``."""
    gains_db = gains_db or {}
    unknown = (set(gains_db) | set(mute) | set(solo)) - set(stems)
    if unknown:
        raise MSRError(f"remix: no such stems {sorted(unknown)}; the stems are {list(stems)}")
    bad = {name: g for name, g in gains_db.items() if not np.isfinite(g)}
    if bad:
        raise MSRError(f"remix: gains must be finite numbers of dB, got {bad}")
    stems = aligned_stems(stems)
    playing = [s for s in stems if s not in mute and (not solo or s in solo)]
    total = np.zeros_like(next(iter(stems.values())))
    for name in playing:
        total += stems[name] * np.float32(10 ** (gains_db.get(name, 0.0) / 20))
    return total


def mixing_desk(stems: dict, sample_rate: int = SAMPLE_RATE, *, seconds: float | None = None, min_db: float = -30.0,
                max_db: float = 12.0):
    """A fader (dB), mute and solo per stem → a remix to play and save.

    The remix is recomputed when a fader is released or a button toggled (:func:`remix`); with every fader at 0 dB
    and nothing muted it is the sum of the stems — the song itself when the stems add up to it. Its player keeps
    its level (scaled down only if it would clip, and then says so). "save" writes the whole remix (not only the
    ``seconds`` heard) to the path in the text box, as 24-bit WAV, atomically. ``widget.remix()`` returns the current
    remix, ``widget.faders`` / ``widget.mutes`` / ``widget.solos`` map stems to their controls. The stems are
    checked and aligned here (:func:`aligned_stems`), so moving a fader never fails.
    """
    import ipywidgets as widgets
    from IPython.display import display

    from msr_lib.audio import save_audio

    stems, sample_rate = aligned_stems(stems), check_rate(sample_rate)
    faders, mutes, solos = {}, {}, {}
    rows = []
    for name in stems:
        faders[name] = widgets.FloatSlider(value=0.0, min=min_db, max=max_db, step=0.5, description=name,
                                           continuous_update=False, readout_format="+.1f",
                                           layout=widgets.Layout(width="420px"))
        mutes[name] = widgets.ToggleButton(value=False, description="mute", layout=widgets.Layout(width="64px"))
        solos[name] = widgets.ToggleButton(value=False, description="solo", layout=widgets.Layout(width="64px"))
        rows.append(widgets.HBox([faders[name], mutes[name], solos[name]]))
    path = widgets.Text(value="remix.wav", description="save to", layout=widgets.Layout(width="420px"))
    save = widgets.Button(description="save", icon="save")
    status = widgets.HTML()
    out = widgets.Output()
    state = {}

    def current() -> np.ndarray:
        return remix(stems, {n: f.value for n, f in faders.items()},
                     mute=[n for n, b in mutes.items() if b.value], solo=[n for n, b in solos.items() if b.value])

    def render(_change=None):
        state["remix"] = current()
        settings = ", ".join(f"{n} {f.value:+.1f} dB" for n, f in faders.items() if f.value != 0.0) or "all faders 0 dB"
        out.clear_output(wait=True)
        with out:
            display(compare_players({f"remix ({settings})": state["remix"]}, sample_rate, seconds=seconds))

    def on_save(_button):
        try:
            written = save_audio(path.value, state["remix"], sample_rate, subtype="PCM_24")
            status.value = f"saved {written} ({state['remix'].shape[-1] / sample_rate:.1f} s)"
        except Exception as exc:  # shown in the widget: a typo in the path must not raise in a callback
            status.value = _error_html(f"not saved: {exc}")

    for control in [*faders.values(), *mutes.values(), *solos.values()]:
        control.observe(render, names="value")
    save.on_click(on_save)
    render()
    box = widgets.VBox(rows + [out, widgets.HBox([path, save]), status])
    box.remix = lambda: state["remix"]
    box.faders, box.mutes, box.solos = faders, mutes, solos
    box.save = lambda: on_save(save)
    return box


def desk_song(folder, *, reference=None, sample_rate: int | None = None):
    """What the listening desk shows for a folder: ``(versions, mix, sample_rate)``.

    ``folder`` is a :func:`msr_lib.pipeline.restore_file` output (its stems are ``"restored"``, or ``"separated"``
    when it ran without restorers; a ``separated/`` subfolder adds those; the input it records is the mix) or a
    song folder (its stems are ``"reference"``, its mix the mix). ``reference``: a song folder whose stems join as
    ``"reference"`` and whose mix is played first.

    Folders are read by :func:`msr_lib.audio.song_files` and :func:`msr_lib.audio.load_stem_files`, converted as
    they document: every signal stereo float32 at ``sample_rate`` (default: the rate of the folder's first stem
    file), several files of one stem summed, the stems of a folder zero-padded at the end to the longest. A file
    whose name is no stem joins ``other`` (as training reads it). A missing folder, one without stems, or an
    unreadable file: one :class:`~msr_lib.errors.AudioError` line.
    """
    from pathlib import Path

    from msr_lib.audio import load_audio_with_rate, load_stem_files, read_json_object, song_files
    from msr_lib.pipeline import RECORD_NAME, SEPARATED_DIR

    folder = Path(folder)
    versions, mix, rate = {}, None, sample_rate

    def stems_of(path: Path) -> dict:
        nonlocal rate
        files = song_files(path, unknown="other")
        if not files.stems:
            raise AudioError(f"{path}: no stem audio files (expected e.g. vocals.wav, bass.wav, …)")
        if rate is None:
            rate = load_audio_with_rate(next(iter(files.stems.values()))[0], None)[1]
        return load_stem_files(files.stems, rate)

    def mix_of(path: Path):
        nonlocal rate
        files = song_files(path, unknown="other")
        chosen = files.mastered_mix or files.clean_mix
        if chosen is None:
            return None
        audio, rate = load_audio_with_rate(chosen, rate)
        return audio

    record_path = folder / RECORD_NAME
    if record_path.is_file():
        try:
            record = read_json_object(record_path)
        except MSRError as exc:
            reason = str(exc).replace(f"cannot read {record_path}: ", "").replace(f"{record_path}: ", "")
            raise MSRError(f"{record_path}: cannot read it ({reason})") from None
        if (folder / SEPARATED_DIR).is_dir():
            versions["separated"] = stems_of(folder / SEPARATED_DIR)
        versions["restored" if record.get("restorers") else "separated"] = stems_of(folder)
        if Path(str(record.get("input", ""))).is_file():  # the song it was made from
            mix, rate = load_audio_with_rate(record["input"], rate)
    else:
        versions["reference"] = stems_of(folder)
        mix = mix_of(folder)
    if reference is not None:
        versions["reference"] = stems_of(Path(reference))
        mix = mix_of(Path(reference))
    return versions, mix, rate
