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
import functools
import math
from pathlib import Path

import numpy as np
import torch

from msr_lib.environment import resolve_device
from msr_lib.errors import MSRError

DEFAULT_CHUNK_SECONDS = 8.0
OUTPUT_FORMATS = ("wav", "flac")
_DEFAULT_SUBTYPES = {"wav": "FLOAT", "flac": "PCM_24"}
#: a tqdm bar over seconds of audio
SECONDS_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]"


# ---------------------------------------------------------------- crossfade weights

def chunk_starts(length: int, chunk: int, hop: int) -> list[int]:
    """Start sample of every chunk needed to cover ``length`` samples (at least one; the last may run past the end)."""
    return [i * hop for i in range(_chunk_count(length, chunk, hop))]


def _chunk_count(length: int, chunk: int, hop: int) -> int:
    return 1 if length <= chunk else math.ceil((length - chunk) / hop) + 1


def _check_chunking(length: int, chunk: int, hop: int, where: str) -> None:
    if length < 1 or chunk < 1 or not 1 <= hop <= chunk:
        raise MSRError(f"{where}: need length ≥ 1, chunk ≥ 1 and 1 ≤ hop ≤ chunk; got {length}, {chunk}, {hop}")


def _window(index: int, count: int, chunk: int, hop: int) -> np.ndarray:
    """Chunk ``index``'s raw window: sin² ramps over the samples it shares with its neighbours, flat elsewhere.
    Past 50 % overlap the ramp in and the ramp out overlap and multiply, so the window stays smooth."""
    fade = chunk - hop
    window = np.ones(chunk)
    if fade:
        ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade) ** 2  # strictly in (0, 1)
        if index > 0:
            window[:fade] *= ramp
        if index < count - 1:
            window[chunk - fade:] *= ramp[::-1]
    return window


def chunk_weight(index: int, length: int, chunk: int, hop: int) -> np.ndarray:
    """Overlap-add weight (float64, ``chunk`` samples) of chunk ``index`` of a ``length``-sample signal: its window
    divided by the sum of the windows of every chunk covering each sample (see :func:`crossfade_weights`)."""
    _check_chunking(length, chunk, hop, "chunk_weight")
    count = _chunk_count(length, chunk, hop)
    return _cached_weight(*_weight_key(index, count, chunk, hop), chunk, hop)


def _weight_key(index: int, count: int, chunk: int, hop: int) -> tuple[int, int]:
    """(chunks before, chunks after) that matter for chunk ``index``'s weight: the neighbours it overlaps, one more
    so the first/last chunk's flat edge is seen; interior chunks share one key and one cached weight."""
    reach = math.ceil(chunk / hop) + 1
    return min(index, reach), min(count - 1 - index, reach)


@functools.lru_cache(maxsize=64)
def _cached_weight(before: int, after: int, chunk: int, hop: int) -> np.ndarray:
    count = before + after + 1
    total = np.zeros((count - 1) * hop + chunk)
    for j in range(count):
        total[j * hop:j * hop + chunk] += _window(j, count, chunk, hop)
    weight = _window(before, count, chunk, hop) / total[before * hop:before * hop + chunk]
    weight.flags.writeable = False
    return weight


def crossfade_weights(length: int, chunk: int, hop: int) -> tuple[list[int], np.ndarray]:
    """Overlap-add weights for chunks of ``chunk`` samples every ``hop`` samples over a ``length``-sample signal.

    Returns ``(starts, weights)``, ``weights`` float64 of shape ``(len(starts), chunk)``: chunk ``i`` covers samples
    ``starts[i] : starts[i] + chunk``. Each chunk's window ramps in (sin²) over the samples it shares with the
    previous chunk and out over those it shares with the next; the first chunk's start and the last chunk's end are
    flat, so the signal edges are not faded. Windows are divided by their sum, so for every sample in ``[0, length)``
    the weights of the chunks covering it add up to exactly 1 (to rounding).
    """
    _check_chunking(length, chunk, hop, "crossfade_weights")
    starts = chunk_starts(length, chunk, hop)
    return starts, np.stack([chunk_weight(i, length, chunk, hop) for i in range(len(starts))])


# ---------------------------------------------------------------- streaming overlap-add

class OverlapAdd:
    """Chunked inference as a stream: push input blocks in order, get back the output samples that are final.

    ``process`` maps a batch of input chunks ``(batch, channels, chunk)`` (float32 tensor) to output chunks
    ``(batch, *out_shape, chunk)``; the outputs are overlap-added with :func:`chunk_weight`, so the result is the
    same whatever the block sizes pushed. The signal's ``length`` must be known up front (it fixes the last chunk,
    which is zero-padded past the end). Memory holds about one chunk plus ``batch_size`` hops, however long the
    signal: :meth:`push` returns ``(*out_shape, n)`` float32 blocks covering the output in order, and
    :meth:`finish` (after the last input sample) the rest, so that the blocks add up to ``length`` samples.
    """

    def __init__(self, process, *, length: int, chunk: int, hop: int, channels: int, out_shape: tuple = (),
                 batch_size: int = 1):
        _check_chunking(length, chunk, hop, "OverlapAdd")
        self.process, self.length, self.chunk, self.hop = process, length, chunk, hop
        self.batch_size, self.out_shape = batch_size, tuple(out_shape)
        self.count = _chunk_count(length, chunk, hop)
        self._input = np.zeros((channels, 0), np.float32)  # input samples from self._input_start on
        self._input_start = 0
        self._received = 0
        self._next = 0  # next chunk to process
        self._output = np.zeros((*self.out_shape, 0), np.float32)  # accumulated output from self._emitted on
        self._emitted = 0

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """Add the next input samples ``(channels, n)``; returns the output blocks now final (maybe none)."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self._input.shape[0]:
            raise MSRError(f"OverlapAdd: expected blocks of shape ({self._input.shape[0]}, n), got {block.shape}")
        block = block[:, :max(0, self.length - self._received)]  # samples past the announced length are dropped
        self._input = np.concatenate([self._input, block], axis=1)
        self._received += block.shape[1]
        return self._run(final=False)

    def finish(self) -> list[np.ndarray]:
        """Process what is left (the input ends here; a short input is zero-padded to ``length``)."""
        return self._run(final=True)

    def _ready(self) -> int:
        """Chunks whose input has fully arrived and that are not processed yet."""
        end = self._received if self._received < self.length else math.inf
        ready = 0
        while self._next + ready < self.count and (self._next + ready) * self.hop + self.chunk <= end:
            ready += 1
        return ready

    def _run(self, *, final: bool) -> list[np.ndarray]:
        blocks = []
        while self._next < self.count:
            ready = self.count - self._next if final else self._ready()
            if ready == 0 or (ready < self.batch_size and not final and self._next + ready < self.count):
                break
            indices = range(self._next, self._next + min(ready, self.batch_size))
            self._process(indices)
            self._next = indices[-1] + 1
            done = self.length if self._next == self.count else self._next * self.hop
            blocks.append(self._take(done))
        return blocks

    def _process(self, indices: range) -> None:
        starts = [i * self.hop for i in indices]
        need = starts[-1] + self.chunk - self._input_start
        if self._input.shape[1] < need:  # the last chunk runs past the signal's end
            self._input = np.pad(self._input, ((0, 0), (0, need - self._input.shape[1])))
        x = np.stack([self._input[:, s - self._input_start:s - self._input_start + self.chunk] for s in starts])
        y = self.process(torch.from_numpy(x))
        expected = (len(starts), *self.out_shape, self.chunk)
        if tuple(y.shape) != expected:
            raise MSRError(f"model returned shape {tuple(y.shape)}, expected {expected}")
        y = y.float().cpu().numpy()
        grow = starts[-1] + self.chunk - self._emitted - self._output.shape[-1]
        if grow > 0:
            self._output = np.concatenate([self._output, np.zeros((*self.out_shape, grow), np.float32)], axis=-1)
        for i, start, out in zip(indices, starts, y):
            weight = chunk_weight(i, self.length, self.chunk, self.hop).astype(np.float32)
            self._output[..., start - self._emitted:start - self._emitted + self.chunk] += out * weight
        keep = (indices[-1] + 1) * self.hop - self._input_start  # the next chunk starts here
        if keep > 0:
            self._input = self._input[:, keep:]
            self._input_start += keep

    def _take(self, end: int) -> np.ndarray:
        n = end - self._emitted
        block, self._output = self._output[..., :n], self._output[..., n:]
        self._emitted = end
        return np.ascontiguousarray(block)


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


def chunking(chunk_seconds, overlap, batch_size, sample_rate: int) -> tuple[int, int]:
    """Check the chunking options (one-line :class:`MSRError`) and return ``(chunk, hop)`` in samples."""
    if not (isinstance(chunk_seconds, (int, float)) and math.isfinite(chunk_seconds) and chunk_seconds > 0):
        raise MSRError(f"chunk_seconds must be a positive number, got {chunk_seconds!r}")
    if not (isinstance(overlap, (int, float)) and 0.0 <= overlap < 1.0):
        raise MSRError(f"overlap must be in [0, 1), got {overlap!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise MSRError(f"batch_size must be a positive integer, got {batch_size!r}")
    chunk = max(1, round(chunk_seconds * sample_rate))
    return chunk, max(1, round(chunk * (1.0 - overlap)))


def inference(model: torch.nn.Module, device: torch.device):
    """A context that runs ``model`` on ``device`` in eval mode under ``torch.inference_mode`` (bf16 autocast on
    CUDA) and restores its training flag afterwards."""
    @contextlib.contextmanager
    def run():
        was_training = model.training
        model.to(device).eval()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
        try:
            with torch.inference_mode(), autocast:
                yield
        finally:
            model.train(was_training)
    return run()


def _checked(y: torch.Tensor, expected: tuple) -> torch.Tensor:
    if tuple(y.shape) != expected:
        raise MSRError(f"separator returned shape {tuple(y.shape)}, expected {expected}")
    return y.float().cpu()


def separator_stream(separator, *, length: int, channels: int, device: torch.device, chunk_seconds=None,
                     overlap: float = 0.25, batch_size: int = 1) -> OverlapAdd:
    """An :class:`OverlapAdd` that splits a ``channels``-channel signal of ``length`` samples (at the separator's
    rate) into the separator's stems: its blocks are ``(stems, channels, n)``. Channel conversions as in the module
    docstring. Run it inside ``inference(separator, device)``."""
    if chunk_seconds is None:
        chunk_seconds = _default_chunk_seconds(separator)
    chunk, hop = chunking(chunk_seconds, overlap, batch_size, separator.sample_rate)
    stems = len(separator.stems)
    model_channels = _model_channels(separator)

    def process(x: torch.Tensor) -> torch.Tensor:  # (b, channels, chunk) → (b, stems, channels, chunk)
        b = x.shape[0]
        if model_channels == 1:  # each channel on its own: (b·c, 1, s) → (b·c, stems, 1, s)
            y = _checked(separator(x.reshape(b * channels, 1, chunk).to(device)), (b * channels, stems, 1, chunk))
            return y.reshape(b, channels, stems, chunk).transpose(1, 2)
        y = _checked(separator((x.expand(b, 2, chunk) if channels == 1 else x).contiguous().to(device)),
                     (b, stems, 2, chunk))
        return y.mean(dim=2, keepdim=True) if channels == 1 else y

    return OverlapAdd(process, length=length, chunk=chunk, hop=hop, channels=channels, out_shape=(stems, channels),
                      batch_size=batch_size)


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
    (bf16 autocast on CUDA). ``progress`` shows a tqdm bar over the song's seconds. Bad input raises one-line
    :class:`MSRError`. (:func:`msr_lib.pipeline.restore_file` streams a file through the same chunking to disk.)
    """
    from tqdm.auto import tqdm

    audio = _as_mixture(mixture)
    device = resolve_device(device)
    channels, length = audio.shape
    stream = separator_stream(separator, length=length, channels=channels, device=device,
                              chunk_seconds=chunk_seconds, overlap=overlap, batch_size=batch_size)
    step = stream.hop * batch_size
    blocks = []
    rate = separator.sample_rate
    with inference(separator, device), tqdm(total=length / rate, desc="separate", unit="s",
                                            bar_format=SECONDS_BAR, disable=not progress) as bar:
        for first in range(0, length, step):
            blocks += stream.push(audio[:, first:first + step])
            bar.update(min(step, length - first) / rate)
        blocks += stream.finish()
    out = np.concatenate(blocks, axis=-1)  # (stems, channels, samples)
    return {name: np.ascontiguousarray(out[k]) for k, name in enumerate(separator.stems)}


# ---------------------------------------------------------------- files

def separate_file(input_path, out_dir, separator, *, output_format: str = "wav", subtype: str | None = None,
                  **separate_kwargs) -> dict[str, Path]:
    """Separate an audio file into ``out_dir/<stem>.<wav|flac>``, one file per stem; returns ``{stem: path}``.

    :func:`msr_lib.pipeline.restore_file` without restorers: the file is streamed at its own rate (more than two
    channels folded to stereo) through the separator's rate and back, so stems have the input's rate, channel
    count and length and memory stays flat; ``separate_kwargs`` as in :func:`separate`. ``subtype`` defaults to
    32-bit float for WAV and 24-bit PCM for FLAC; samples are clipped to [-1, 1] in either (counted in
    ``restore.json``). The folder is written atomically: on any failure nothing is left half-written and an
    existing folder stays as it was. An existing ``out_dir`` is replaced only if it holds nothing but a previous
    run's output; a second run writing it at once is refused.
    """
    from msr_lib.pipeline import restore_file

    return restore_file(input_path, out_dir, separator=separator, restorers=None, output_format=output_format,
                        subtype=subtype, **separate_kwargs)
