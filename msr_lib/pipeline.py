"""The full system: a finished song → separated stems → each stem restored by its expert.

:func:`restore` takes an array and returns arrays (notebooks); :func:`restore_file` streams a file through the same
stages to one audio file per stem, so its memory stays flat however long the song (``msr restore`` is a thin layer
over it). One block of the song at a time flows through

    read (any rate; mono or stereo, more channels folded to stereo)
      → resample to the separator's rate (:class:`msr_lib.audio.Resampler`, soxr's streaming filter)
      → the separator, chunked with crossfaded overlap-add (:func:`msr_lib.separate.separator_stream`)
      → per stem: its restorer, chunked the same way (``other``: the generalist)
      → resample back to the input's rate and length → write (or collect).

Every stage hands on only the samples that are final, so none holds more than about a chunk plus a batch of
hops: the peers (demucs' ``apply_model``, MSST's ``demix``) keep every stem of the whole song in memory.

Which restorer a stem gets (``restorers=``): ``"bundled"`` — the shipped expert of that stem, else the shipped
generalist; a restorer (or anything :func:`~msr_lib.models.load_restorer` reads) — that one for every stem; a
folder of restorer folders named by stem (``bass/``, ``generalist/``) — the same rule as the bundled ones; a
mapping ``{stem: restorer}`` (key ``"generalist"``: every other stem) — stems it does not name are not restored;
``None`` — separation only.

Lesson: notebooks/06_full_pipeline.ipynb
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from msr_lib.audio import (
    AUDIO_EXTENSIONS, SAMPLE_RATE, Resampler, atomic_output_dir, check_audio, check_output_dir,
    check_resampled_length, open_audio, read_audio_blocks, song_files, to_stereo, write_error,
)
from msr_lib.environment import resolve_device
from msr_lib.errors import AudioError, MSRError
from msr_lib.models.checkpoint import DEFAULT_SEPARATOR, GENERALIST_STEM, Restorer
from msr_lib.separate import (
    OUTPUT_FORMATS, SECONDS_BAR, OverlapAdd, _as_mixture, _DEFAULT_SUBTYPES, chunking, inference, separator_stream,
)

DEFAULT_RESTORERS = "bundled"
GENERALIST = "generalist"  # the folder (and mapping key) of the restorer for stems without an expert
#: seconds of input read per block
READ_SECONDS = 2.0
RECORD_NAME = "restore.json"  # what a restore_file output folder says about how it was made
SEPARATED_DIR = "separated"  # with keep_separated: the separator's stems, before restoration


# ---------------------------------------------------------------- models

def _restorer_folder_rule(names, stem: str, where: str):
    """The rule for bundled (and folder) restorers: the stem's expert, else the generalist."""
    if stem != "other" and stem in names:
        return stem
    if GENERALIST in names:
        return GENERALIST
    raise MSRError(f"{where}: no restorer for {stem} (no {stem}/ and no {GENERALIST}/); train one with "
                   "`msr train restorer --stem all`, or separate only (--no-restore)")


def load_restorers(restorers, stems, *, device="cpu") -> dict[str, Restorer]:
    """``{stem: Restorer}`` for the ``stems`` that get one, chosen from ``restorers`` as the module docstring says;
    each checkpoint is loaded once however many stems share it."""
    from msr_lib.models import bundled_restorers, load_restorer

    loaded: dict[str, Restorer] = {}

    def get(ref) -> Restorer:
        if isinstance(ref, Restorer):
            return ref
        key = str(ref)
        if key not in loaded:
            loaded[key] = load_restorer(ref, device=device)
            loaded[key].source = key
        return loaded[key]

    if restorers is None:
        return {}
    if isinstance(restorers, Restorer):
        return dict.fromkeys(stems, restorers)
    if isinstance(restorers, Mapping):
        fallback = restorers.get(GENERALIST)
        chosen = {stem: restorers.get(stem, fallback) for stem in stems}
        return {stem: get(ref) for stem, ref in chosen.items() if ref is not None}
    if restorers == "bundled":
        names = bundled_restorers()
        return {stem: get(f"bundled:{_restorer_folder_rule(names, stem, 'bundled restorers')}") for stem in stems}
    folder = Path(restorers)
    if folder.is_dir() and not (folder / "config.json").is_file() and not (folder / "checkpoint").is_dir():
        names = [p.name for p in folder.iterdir() if (p / "config.json").is_file() or (p / "checkpoint").is_dir()]
        return {stem: get(folder / _restorer_folder_rule(names, stem, str(folder))) for stem in stems}
    return dict.fromkeys(stems, get(restorers))


def untrained_models(preset) -> tuple:
    """A preset's separator (9 stems) and generalist restorer, freshly initialised (seed 0): what ``--preset
    quick`` runs, so tests and smoke checks go through the real code with tiny models. (The restorer starts as the
    identity; the separator's stems are meaningless but add up to the input.)"""
    from msr_lib.models import BSRoformer, HiFiPlusPlus, Separator
    from msr_lib.stems import STEMS

    torch.manual_seed(0)
    model = BSRoformer(**{"stereo": True, **preset.model, "num_stems": len(STEMS)}).eval()
    separator = Separator(model, STEMS, SAMPLE_RATE, {"inference": {"chunk_seconds": preset.pipeline["chunk_seconds"]}})
    restorer = Restorer(HiFiPlusPlus(**preset.restorer["model"]).eval(), stem=GENERALIST_STEM)
    separator.source = restorer.source = f"untrained ({preset.name} preset)"
    return separator, restorer


def pipeline_models(preset=None, *, separator=None, restorers=DEFAULT_RESTORERS, device="cpu"):
    """The separator and restorers the pipeline runs: the given ones, else the preset's (``pipeline`` section:
    ``"bundled"`` models, or ``"untrained"`` tiny ones for the quick preset). Returns ``(Separator, restorers)``
    where ``restorers`` is what :func:`load_restorers` takes."""
    from msr_lib.models import Separator, load_separator
    from msr_lib.presets import get_preset

    preset = get_preset(preset) if preset is None or isinstance(preset, str) else preset
    untrained = preset.pipeline.get("models") == "untrained"
    tiny = untrained_models(preset) if untrained and (separator is None or restorers == DEFAULT_RESTORERS) else None
    if separator is None:
        separator = tiny[0] if tiny else DEFAULT_SEPARATOR
    if not isinstance(separator, Separator):
        ref, separator = str(separator), load_separator(separator, device=device)
        separator.source = ref
    if tiny and restorers == DEFAULT_RESTORERS:
        restorers = tiny[1]
    return separator, restorers


# ---------------------------------------------------------------- streaming

class _Chain:
    """Streaming stages one after another (each with ``push(block) → blocks`` and ``finish() → blocks``), the
    last one's blocks handed to ``sink``."""

    def __init__(self, stages, sink):
        self.stages, self.sink = list(stages), sink

    def push(self, block: np.ndarray) -> None:
        blocks = [block]
        for stage in self.stages:
            blocks = [out for b in blocks for out in stage.push(b)]
        for b in blocks:
            self.sink(b)

    def finish(self) -> None:
        blocks: list[np.ndarray] = []
        for stage in self.stages:
            blocks = [out for b in blocks for out in stage.push(b)] + stage.finish()
        for b in blocks:
            self.sink(b)


def _restorer_stages(restorer: Restorer, *, rate: int, length: int, out_rate: int, out_length: int,
                     channels: int, device, chunk_seconds: float, overlap: float, batch_size: int) -> list:
    """Streaming stages that restore one stem of ``length`` samples at ``rate``: resample to the restorer's rate,
    the restorer chunked with crossfades, resample to ``out_rate`` and fit to ``out_length`` samples."""
    inner = restorer.model.sample_rate
    into = Resampler(rate, inner, channels=channels, length_in=length)
    chunk, hop = chunking(chunk_seconds, overlap, batch_size, inner)
    model = OverlapAdd(lambda x: restorer(x.to(device)).float().cpu(), length=into.length, chunk=chunk, hop=hop,
                       channels=channels, out_shape=(channels,), batch_size=batch_size)
    return [into, model, Resampler(inner, out_rate, channels=channels, length_in=into.length, length_out=out_length)]


def _stream(blocks, *, rate: int, length: int, channels: int, separator, restorers: dict[str, Restorer],
            stems, sinks: dict, separated_sinks: dict, device, chunk_seconds, overlap: float, batch_size: int,
            restorer_chunk_seconds: float, progress: bool, desc: str) -> None:
    """Push ``blocks`` (``(channels, n)`` at ``rate``, ``length`` samples in all) through every stage into
    ``sinks[stem](block)`` (restored, at ``rate``) and ``separated_sinks[stem](block)``."""
    from tqdm.auto import tqdm

    sep_rate = separator.sample_rate
    into_separator = Resampler(rate, sep_rate, channels=channels, length_in=length)
    sep_length = into_separator.length
    separation = separator_stream(separator, length=sep_length, channels=channels, device=device,
                                  chunk_seconds=chunk_seconds, overlap=overlap, batch_size=batch_size)
    index = {stem: k for k, stem in enumerate(separator.stems)}
    chains = []
    for stem in stems:
        restorer = restorers.get(stem)
        if restorer is not None:
            stages = _restorer_stages(restorer, rate=sep_rate, length=sep_length, out_rate=rate, out_length=length,
                                      channels=channels, device=device, chunk_seconds=restorer_chunk_seconds,
                                      overlap=overlap, batch_size=batch_size)
        else:
            stages = [Resampler(sep_rate, rate, channels=channels, length_in=sep_length, length_out=length)]
        chains.append((index[stem], _Chain(stages, sinks[stem])))
        if stem in separated_sinks:
            chains.append((index[stem], _Chain([Resampler(sep_rate, rate, channels=channels, length_in=sep_length,
                                                          length_out=length)], separated_sinks[stem])))

    def fan_out(separated: list[np.ndarray]) -> None:
        for block in separated:  # (stems, channels, n)
            for k, chain in chains:
                chain.push(block[k])

    models = [separator, *{id(r): r for r in restorers.values()}.values()]
    with contextlib.ExitStack() as running, tqdm(total=length / rate, desc=desc, unit="s", bar_format=SECONDS_BAR,
                                                 disable=not progress) as bar:
        for model in models:
            running.enter_context(inference(model, device))
        for block in blocks:
            for resampled in into_separator.push(block):
                fan_out(separation.push(resampled))
            bar.update(block.shape[1] / rate)
        for resampled in into_separator.finish():
            fan_out(separation.push(resampled))
        fan_out(separation.finish())
        for _, chain in chains:
            chain.finish()


def selected_stems(stems, separator) -> list[str]:
    """Canonical names of the ``stems`` asked for (names or ``"a,b"``; ``None``: all the separator's), checked."""
    from msr_lib.stems import canonical_stem

    if stems is None:
        return list(separator.stems)
    if isinstance(stems, str):
        stems = [s for s in stems.split(",") if s.strip()]
    chosen = []
    for name in stems:
        stem = canonical_stem(name.strip())
        if stem not in separator.stems:
            raise MSRError(f"stem {name!r}: this separator has {', '.join(separator.stems)}")
        if stem not in chosen:
            chosen.append(stem)
    if not chosen:
        raise MSRError("stems: name at least one stem")
    return chosen


def _options(separator, restorers, stems, device, preset):
    from msr_lib.presets import get_preset

    preset = get_preset(preset) if preset is None or isinstance(preset, str) else preset
    device = resolve_device(device)
    separator, restorers = pipeline_models(preset, separator=separator, restorers=restorers, device=device)
    stems = selected_stems(stems, separator)
    return preset, device, separator, load_restorers(restorers, stems, device=device), stems


def _model_name(model) -> str:
    """Where a model came from (the reference it was loaded by), for restore.json."""
    return getattr(model, "source", None) or f"{type(model).__name__} given in memory"


# ---------------------------------------------------------------- arrays

def restore(
    mixture,
    *,
    sample_rate: int = SAMPLE_RATE,
    separator=None,
    restorers=DEFAULT_RESTORERS,
    stems=None,
    keep_separated: bool = False,
    device=None,
    chunk_seconds: float | None = None,
    overlap: float | None = None,
    batch_size: int | None = None,
    preset=None,
    progress: bool = True,
):
    """Separate ``mixture`` (channels, samples) at ``sample_rate`` and restore each stem; returns
    ``{stem: float32 array}`` at the input's rate, channel count and length (with ``keep_separated``:
    ``(restored, separated)``, two such dicts).

    ``separator``: a :class:`~msr_lib.models.Separator` or anything ``load_separator`` reads (default: the
    preset's, ``bundled:8stem``); ``restorers``: see the module docstring (``None``: separation only); ``stems``:
    the stems to return (names or ``"a,b"``; default all). ``chunk_seconds`` (the separator's; default its
    checkpoint's), ``overlap`` and ``batch_size`` default to the preset's ``pipeline`` section; ``device``
    ``"auto"``/``None`` picks CUDA when present (bf16 there). Bad input raises one-line :class:`MSRError`.
    """
    audio = _as_mixture(mixture)
    preset, device, separator, chosen, names = _options(separator, restorers, stems, device, preset)
    check_resampled_length("mixture", audio.shape[1], sample_rate, separator.sample_rate)
    restored = {stem: [] for stem in names}
    separated = {stem: [] for stem in names} if keep_separated else {}
    settings = preset.pipeline
    _stream(iter([audio]), rate=sample_rate, length=audio.shape[1], channels=audio.shape[0], separator=separator,
            restorers=chosen, stems=names, sinks={s: restored[s].append for s in names},
            separated_sinks={s: separated[s].append for s in separated}, device=device,
            chunk_seconds=chunk_seconds, overlap=settings["overlap"] if overlap is None else overlap,
            batch_size=settings["batch_size"] if batch_size is None else batch_size,
            restorer_chunk_seconds=settings["restorer_chunk_seconds"], progress=progress,
            desc="restore" if chosen else "separate")
    restored = {s: np.concatenate(b, axis=-1) for s, b in restored.items()}
    if keep_separated:
        return restored, {s: np.concatenate(b, axis=-1) for s, b in separated.items()}
    return restored


def restore_stems(stems: Mapping, restorers=DEFAULT_RESTORERS, *, sample_rate: int = SAMPLE_RATE, device=None,
                  overlap: float | None = None, batch_size: int | None = None, chunk_seconds: float | None = None,
                  preset=None) -> dict[str, np.ndarray]:
    """Restore stems already separated (``{stem: (channels, samples)}`` at ``sample_rate``) with the restorer
    each gets (module docstring; a stem without one comes back as it was): the restoration half of
    :func:`restore`, with the same chunking (``chunk_seconds``: the restorer's chunk, default the preset's)."""
    from msr_lib.presets import get_preset

    preset = get_preset(preset) if preset is None or isinstance(preset, str) else preset
    settings = preset.pipeline
    device = resolve_device(device)
    chosen = load_restorers(restorers, list(stems), device=device)
    out = {}
    for stem, audio in stems.items():
        audio = check_audio(np.atleast_2d(np.asarray(audio, dtype=np.float32)), f"{stem} stem")
        restorer = chosen.get(stem)
        if restorer is None:
            out[stem] = audio
            continue
        channels, length = audio.shape
        chain = _restorer_stages(restorer, rate=sample_rate, length=length, out_rate=sample_rate, out_length=length,
                                 channels=channels, device=device,
                                 chunk_seconds=(settings["restorer_chunk_seconds"] if chunk_seconds is None
                                                else chunk_seconds),
                                 overlap=settings["overlap"] if overlap is None else overlap,
                                 batch_size=settings["batch_size"] if batch_size is None else batch_size)
        blocks = []
        with inference(restorer, device):
            stage = _Chain(chain, blocks.append)
            stage.push(audio)
            stage.finish()
        out[stem] = np.concatenate(blocks, axis=-1)
    return out


# ---------------------------------------------------------------- files

def output_names() -> set[str]:
    """What a :func:`restore_file` output folder may hold: a folder holding anything else is never replaced."""
    from msr_lib.stems import STEMS

    return {f"{stem}.{ext}" for stem in STEMS for ext in OUTPUT_FORMATS} | {RECORD_NAME, SEPARATED_DIR}


class _StemFile:
    """A stem's output file at ``path``, written block by block (a sink of :func:`_stream`): every block clipped to
    [-1, 1] (``clipped`` counts the samples beyond), NaN/inf refused; a full or failing disk is one line naming the
    file as ``shown`` (where it ends up)."""

    def __init__(self, path: Path, shown: Path, *, rate: int, channels: int, subtype: str, output_format: str):
        import soundfile as sf

        self.shown, self.clipped = shown, 0
        try:
            self._file = sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype=subtype,
                                      format=output_format.upper())
        except (OSError, sf.SoundFileError) as exc:
            raise write_error(shown, exc) from None

    def __call__(self, block: np.ndarray) -> None:
        import soundfile as sf

        if not np.all(np.isfinite(block)):
            raise AudioError(f"{self.shown}: the models produced NaN or infinite samples (a broken checkpoint?)")
        self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))
        try:
            self._file.write(np.clip(block, -1.0, 1.0).T)
        except (OSError, sf.SoundFileError) as exc:
            raise write_error(self.shown, exc, self._file) from None

    def close(self) -> None:
        """Finish the file (its header); a failure is a failed write."""
        import soundfile as sf

        try:
            self._file.close()
        except (OSError, sf.SoundFileError) as exc:
            raise write_error(self.shown, exc) from None

    def abandon(self) -> None:
        """Close after a failure (the file is deleted with its temporary folder; that failure is the one to report)."""
        with contextlib.suppress(Exception):
            self._file.close()


def restore_file(
    input_path,
    out_dir,
    *,
    separator=None,
    restorers=DEFAULT_RESTORERS,
    stems=None,
    keep_separated: bool = False,
    output_format: str = "wav",
    subtype: str | None = None,
    device=None,
    chunk_seconds: float | None = None,
    overlap: float | None = None,
    batch_size: int | None = None,
    preset=None,
    progress: bool = True,
) -> dict[str, Path]:
    """Stream an audio file through the pipeline into ``out_dir/<stem>.<wav|flac>``; returns ``{stem: path}``.

    Options as in :func:`restore`. Stems have the input's rate, channel count (mono stays mono, more than two
    channels are folded to stereo) and length. ``subtype`` defaults to 32-bit float for WAV and 24-bit PCM for
    FLAC; every written sample is clipped to [-1, 1] (``restore.json`` counts the clipped samples per stem in
    ``clipped_samples``) and NaN/inf from a model is refused. ``keep_separated`` also writes the separator's stems
    to ``out_dir/separated/``; ``restore.json`` records the models, options and timing. Memory does not grow with
    the song's length. The folder is written under a temporary name and moved into place at the end
    (:func:`msr_lib.audio.atomic_output_dir`): an interrupted or failed run (a truncated input, a full disk) leaves
    nothing half-written and an existing output as it was; an existing ``out_dir`` is replaced only if it holds
    nothing but such output (:func:`output_names`); a second run writing the same ``out_dir`` at once is refused.
    """
    import soundfile as sf

    if output_format not in OUTPUT_FORMATS:
        raise MSRError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
    subtype = subtype or _DEFAULT_SUBTYPES[output_format]
    if not sf.check_format(output_format.upper(), subtype):
        raise MSRError(f"subtype {subtype!r} is not available for {output_format} files")
    input_path, out_dir = Path(input_path), Path(out_dir)
    check_output_dir(out_dir, output_names())
    open_audio(input_path).close()  # a bad input fails before the models load
    preset, device, separator, chosen, names = _options(separator, restorers, stems, device, preset)
    settings = preset.pipeline
    overlap = settings["overlap"] if overlap is None else overlap
    batch_size = settings["batch_size"] if batch_size is None else batch_size
    started = time.perf_counter()
    with open_audio(input_path) as handle, atomic_output_dir(out_dir, replaces=output_names()) as tmp:
        rate, length = handle.samplerate, handle.frames
        check_resampled_length(input_path, length, rate, separator.sample_rate)
        channels = min(handle.channels, 2)
        sinks, separated, files = {}, {}, []
        try:
            for folder, targets in [(tmp, sinks)] + ([(tmp / SEPARATED_DIR, separated)] if keep_separated else []):
                folder.mkdir(exist_ok=True)
                for stem in names:
                    name = folder.relative_to(tmp) / f"{stem}.{output_format}"
                    files.append(_StemFile(tmp / name, out_dir / name, rate=rate, channels=channels,
                                           subtype=subtype, output_format=output_format))
                    targets[stem] = files[-1]
            blocks = (to_stereo(b) if b.shape[0] > 2 else b
                      for b in read_audio_blocks(handle, input_path, max(1, round(READ_SECONDS * rate))))
            _stream(blocks, rate=rate, length=length, channels=channels, separator=separator, restorers=chosen,
                    stems=names, sinks=sinks, separated_sinks=separated, device=device, chunk_seconds=chunk_seconds,
                    overlap=overlap, batch_size=batch_size, restorer_chunk_seconds=settings["restorer_chunk_seconds"],
                    progress=progress, desc=input_path.stem)
            for f in files:
                f.close()
        except BaseException:
            for f in files:
                f.abandon()
            raise
        wall = time.perf_counter() - started
        record = {
            "input": str(input_path), "sample_rate": rate, "channels": channels, "seconds": length / rate,
            "separator": _model_name(separator), "stems": names,
            "restorers": {stem: _model_name(r) for stem, r in chosen.items()},
            "chunk_seconds": chunk_seconds, "overlap": overlap, "batch_size": batch_size, "device": str(device),
            "preset": preset.name, "format": output_format, "subtype": subtype, "wall_seconds": round(wall, 3),
            "real_time_factor": round(wall / (length / rate), 4),
            "clipped_samples": {stem: f.clipped for stem, f in sinks.items()},
        }
        (tmp / RECORD_NAME).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return {stem: out_dir / f"{stem}.{output_format}" for stem in names}


def song_inputs(path, out_dir) -> list[tuple[Path, Path]]:
    """``(input file, output folder)`` for each song ``msr restore`` gets: a file → ``out_dir``; a song folder
    (``msr synth`` layout) → its mastered mix (else its clean mix) → ``out_dir``; any other folder → each song
    folder in it and each audio file directly in it → ``out_dir/<name>``."""
    path, out_dir = Path(path), Path(out_dir)
    if not path.exists():
        raise AudioError(f"{path}: no such file or folder")
    if not path.is_dir():
        return [(path, out_dir)]
    mix = _song_mix(path)
    if mix is not None:
        return [(mix, out_dir)]
    inputs = []
    for item in sorted(path.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_dir():
            mix = _song_mix(item)
            if mix is not None:
                inputs.append((mix, out_dir / item.name))
        elif item.suffix.lower() in AUDIO_EXTENSIONS:
            inputs.append((item, out_dir / item.stem))
    if not inputs:
        raise AudioError(f"{path}: no audio files or song folders in it")
    names = [out for _, out in inputs]
    if len(set(names)) != len(names):
        raise MSRError(f"{path}: two inputs would share an output folder (e.g. song.wav and song.flac); rename one")
    return inputs


def _song_mix(folder: Path) -> Path | None:
    files = song_files(folder, unknown="keep")
    return files.mastered_mix or files.clean_mix

