"""Chunked inference: split a whole song into stems with a :class:`~msr_lib.models.Separator`.

A song is cut into overlapping chunks of ``chunk_seconds`` (hop = chunk·(1 − overlap)), the separator runs on
``batch_size`` chunks at a time, and the stem chunks are overlap-added with crossfade weights (raised-cosine ramps
where chunks overlap, flat elsewhere) normalised so that the weights sum to 1 at every sample. The signal's own
start and end are never faded; the last chunk is zero-padded.

Channel conversions (documented, not silent): a 1-D array is mono; mono input to a stereo model is duplicated to
stereo and the stereo stems are averaged back to mono; a mono model separates each input channel on its own. So
stems always have the input's channel count and length.

Lesson: notebooks/03_bs_roformer.ipynb
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch

from msr_lib.audio import atomic_output_dir, fit_length, load_audio_with_rate, resample, save_audio, to_stereo
from msr_lib.environment import resolve_device
from msr_lib.errors import MSRError

DEFAULT_CHUNK_SECONDS = 8.0
OUTPUT_FORMATS = ("wav", "flac")
_DEFAULT_SUBTYPES = {"wav": "FLOAT", "flac": "PCM_24"}


# ---------------------------------------------------------------- crossfade weights

def chunk_starts(length: int, chunk: int, hop: int) -> list[int]:
    """Start sample of every chunk needed to cover ``length`` samples (at least one; the last may run past the end)."""
    if length <= chunk:
        return [0]
    return [i * hop for i in range(math.ceil((length - chunk) / hop) + 1)]


def crossfade_weights(length: int, chunk: int, hop: int) -> tuple[list[int], np.ndarray]:
    """Overlap-add weights for chunks of ``chunk`` samples every ``hop`` samples over a ``length``-sample signal.

    Returns ``(starts, weights)``, ``weights`` float64 of shape ``(len(starts), chunk)``: chunk ``i`` covers samples
    ``starts[i] : starts[i] + chunk``. Each chunk's window ramps in (sin²) over the samples it shares with the
    previous chunk and out over those it shares with the next; the first chunk's start and the last chunk's end are
    flat, so the signal edges are not faded. Windows are divided by their sum, so for every sample in ``[0, length)``
    the weights of the chunks covering it add up to exactly 1 (to rounding).
    """
    if length < 1 or chunk < 1 or not 1 <= hop <= chunk:
        raise MSRError(f"crossfade_weights: need length ≥ 1, chunk ≥ 1 and 1 ≤ hop ≤ chunk; got {length}, {chunk}, "
                       f"{hop}")
    starts = chunk_starts(length, chunk, hop)
    fade = chunk - hop
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2 if fade else np.zeros(0)  # strictly in (0, 1)
    windows = np.ones((len(starts), chunk))
    for i in range(len(starts)):
        if i > 0:
            windows[i, :fade] = ramp
        if i < len(starts) - 1:
            windows[i, chunk - fade:] = ramp[::-1]
    total = np.zeros(starts[-1] + chunk)
    for start, window in zip(starts, windows):
        total[start:start + chunk] += window
    weights = np.stack([window / total[start:start + chunk] for start, window in zip(starts, windows)])
    return starts, weights


# ---------------------------------------------------------------- separation

def _model_channels(separator) -> int:
    channels = getattr(getattr(separator, "model", None), "audio_channels", None)
    return int(channels) if channels in (1, 2) else 2


def _default_chunk_seconds(separator) -> float:
    config = getattr(separator, "config", None) or {}
    inference = config.get("inference") if isinstance(config.get("inference"), dict) else {}
    if inference.get("chunk_seconds"):
        return float(inference["chunk_seconds"])
    audio = config.get("audio") if isinstance(config.get("audio"), dict) else {}
    if audio.get("chunk_size"):  # MSST configs give the training chunk in samples
        return float(audio["chunk_size"]) / separator.sample_rate
    return DEFAULT_CHUNK_SECONDS


def _as_mixture(mixture) -> np.ndarray:
    if isinstance(mixture, torch.Tensor):
        mixture = mixture.detach().cpu().numpy()
    try:
        audio = np.asarray(mixture, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise MSRError(f"mixture: not a numeric array ({' '.join(str(exc).split())})") from None
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise MSRError(f"mixture: expected shape (channels, samples) or (samples,), got {audio.shape}")
    if audio.shape[0] not in (1, 2):
        raise MSRError(f"mixture: expected 1 or 2 channels, got {audio.shape[0]} (shape {audio.shape})")
    if audio.shape[1] == 0:
        raise MSRError("mixture: contains no samples")
    if not np.all(np.isfinite(audio)):
        raise MSRError("mixture: contains NaN or infinite samples")
    return audio


def separate(
    mixture,
    separator,
    *,
    chunk_seconds: float | None = None,
    overlap: float = 0.25,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Separate ``mixture`` (channels, samples) at ``separator.sample_rate`` into ``{stem: float32 array}``.

    Stems come in the separator's order, each with the input's channel count and length (see the module docstring
    for mono handling). ``chunk_seconds`` defaults to the checkpoint's ``inference.chunk_seconds`` (else MSST's
    ``audio.chunk_size``, else 8 s); ``overlap`` in [0, 1) is the fraction of a chunk shared with the next one;
    ``batch_size`` chunks go through the model per forward pass. ``device`` ``"auto"``/``None`` picks CUDA when
    available, else the CPU; the separator is moved there and run in eval mode under ``torch.inference_mode``
    (bf16 autocast on CUDA). ``progress`` shows a tqdm bar over chunks. Bad input raises one-line
    :class:`MSRError`.
    """
    from tqdm.auto import tqdm

    audio = _as_mixture(mixture)
    if chunk_seconds is None:
        chunk_seconds = _default_chunk_seconds(separator)
    if not (isinstance(chunk_seconds, (int, float)) and math.isfinite(chunk_seconds) and chunk_seconds > 0):
        raise MSRError(f"chunk_seconds must be a positive number, got {chunk_seconds!r}")
    if not (isinstance(overlap, (int, float)) and 0.0 <= overlap < 1.0):
        raise MSRError(f"overlap must be in [0, 1), got {overlap!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise MSRError(f"batch_size must be a positive integer, got {batch_size!r}")
    chunk = max(1, round(chunk_seconds * separator.sample_rate))
    hop = max(1, round(chunk * (1.0 - overlap)))
    device = resolve_device(device)

    channels_in, length = audio.shape
    model_channels = _model_channels(separator)
    if model_channels == 2:
        signals = to_stereo(audio)[None]  # (1, 2, samples)
    else:
        signals = audio[:, None, :]  # mono model: each channel on its own, (channels, 1, samples)
    stems = tuple(separator.stems)
    starts, weights = crossfade_weights(length, chunk, hop)
    padded = starts[-1] + chunk
    signals = torch.from_numpy(np.pad(signals, ((0, 0), (0, 0), (0, padded - length))))
    weights = torch.from_numpy(weights.astype(np.float32))
    out = torch.zeros(signals.shape[0], len(stems), model_channels, padded)
    jobs = [(item, i) for item in range(signals.shape[0]) for i in range(len(starts))]

    was_training = separator.training
    separator.to(device).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    try:
        with torch.inference_mode(), autocast, tqdm(total=len(jobs), desc="separate", unit="chunk",
                                                    disable=not progress) as bar:
            for first in range(0, len(jobs), batch_size):
                batch = jobs[first:first + batch_size]
                x = torch.stack([signals[item, :, starts[i]:starts[i] + chunk] for item, i in batch]).to(device)
                y = separator(x)
                expected = (len(batch), len(stems), model_channels, chunk)
                if tuple(y.shape) != expected:
                    raise MSRError(f"separator returned shape {tuple(y.shape)}, expected {expected}")
                y = y.float().cpu()
                for (item, i), stem_chunk in zip(batch, y):
                    out[item, :, :, starts[i]:starts[i] + chunk] += stem_chunk * weights[i]
                bar.update(len(batch))
    finally:
        separator.train(was_training)

    out = out[..., :length]
    if model_channels == 2:
        result = out[0] if channels_in == 2 else out[0].mean(dim=1, keepdim=True)  # (stems, channels_in, samples)
    else:
        result = out[:, :, 0].transpose(0, 1)  # (stems, channels_in, samples)
    return {name: np.ascontiguousarray(result[k].numpy(), dtype=np.float32) for k, name in enumerate(stems)}


# ---------------------------------------------------------------- files

def _check_out_dir(out_dir: Path, stems) -> None:
    """Refuse to replace a file, or a folder holding anything but a previous run's stem files."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise MSRError(f"{out_dir}: exists and is not a folder")
    ours = {f"{stem}.{ext}" for stem in stems for ext in OUTPUT_FORMATS}
    others = sorted(p.name for p in out_dir.iterdir() if p.name not in ours)
    if others:
        raise MSRError(f"{out_dir}: exists and holds other files ({', '.join(others[:3])}"
                       f"{', …' if len(others) > 3 else ''}); choose a new output folder")


def separate_file(
    input_path,
    out_dir,
    separator,
    *,
    output_format: str = "wav",
    subtype: str | None = None,
    **separate_kwargs,
) -> dict[str, Path]:
    """Separate an audio file into ``out_dir/<stem>.<wav|flac>``, one file per stem; returns ``{stem: path}``.

    The file is read at its own rate (more than two channels are folded to stereo), resampled to the separator's
    rate, separated with :func:`separate` (``separate_kwargs``), and each stem is resampled back, so stems have the
    input's rate, channel count and length. ``subtype`` defaults to 32-bit float for WAV and 24-bit PCM for FLAC
    (clipped to [-1, 1]). The folder is written atomically: on any failure nothing is left half-written and an
    existing folder stays as it was. An existing ``out_dir`` is replaced only if it holds nothing but stem files.
    """
    import soundfile as sf

    if output_format not in OUTPUT_FORMATS:
        raise MSRError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
    subtype = subtype or _DEFAULT_SUBTYPES[output_format]
    if not sf.check_format(output_format.upper(), subtype):
        raise MSRError(f"subtype {subtype!r} is not available for {output_format} files")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, separator.stems)
    audio, rate = load_audio_with_rate(input_path, None, stereo=False)
    if audio.shape[0] > 2:
        audio = to_stereo(audio)
    length = audio.shape[1]
    stems = separate(resample(audio, rate, separator.sample_rate), separator, **separate_kwargs)
    paths = {}
    with atomic_output_dir(out_dir) as tmp:
        for name, stem in stems.items():
            stem = fit_length(resample(stem, separator.sample_rate, rate), length)
            file_name = f"{name}.{output_format}"
            save_audio(tmp / file_name, stem, rate, subtype=subtype)
            paths[name] = out_dir / file_name
    return paths
