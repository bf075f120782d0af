"""Audio I/O (soundfile), resampling (soxr), channel handling and level measurements.

Inside the library audio is float32, shape ``(channels, samples)``, stereo, at :data:`SAMPLE_RATE`.
Conversions done on load (all documented, none silent about failures):

- mono → stereo by duplicating the channel;
- more than two channels → stereo by averaging even-numbered channels into left and odd-numbered into right;
- any sample rate → ``sample_rate`` with soxr's high-quality resampler;
- integer PCM → float32 in [-1, 1).

Refused with one clear :class:`~msr_lib.errors.AudioError` line: missing, empty (0 samples), unreadable/corrupt
and truncated files (a header announcing more audio than the file holds: a WAV cut short, an interrupted
download), sample rates outside :data:`MIN_FILE_RATE`–:data:`MAX_FILE_RATE`, and NaN or infinite samples.

Output folders are written by :func:`atomic_output_dir`: under a temporary name, moved into place when complete,
one command at a time (a second one writing the same folder at once is refused), replacing an existing folder only
if it holds nothing but what the new output may hold (when the caller says what that is).

Metadata files (``song.json``, ``data.json``, cache records, configs) are read by :func:`read_json_object` alone.

Song folders (``<song>/<stem>.<ext>``, with a clean and/or a mastered mix) are read by :func:`song_files` alone; its
docstring is the naming policy every reader follows.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import soxr

from msr_lib.errors import AudioError, MSRError

SAMPLE_RATE = 44_100
#: the sample rates a file may have: soxr converts any of them; outside, a header is corrupt rather than real
MIN_FILE_RATE, MAX_FILE_RATE = 1_000, 768_000
#: frames per read when a file is loaded whole (read in blocks, so a header's frame count never sizes a buffer)
LOAD_BLOCK_FRAMES = 1 << 18
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
#: Digital silence: a signal (or channel) whose sample peak is at or below this (−120 dBFS, under 24-bit dither)
#: carries nothing — no metric is defined against it and no effect chain processes it.
SILENT_PEAK = 1e-6
#: A training target whose RMS over its chunk is below this (−60 dBFS) counts as not playing and its loss is masked:
#: a 2 s chunk often holds only a fade or a reverb tail, whose error relative to its own tiny level would dominate
#: the batch (losses of 30–250 against ~4 when such tails counted).
ACTIVE_STEM_RMS = 1e-3
#: the largest metadata JSON file read (``song.json``, ``data.json``, cache records): metadata, not data
#: (``msr synth``'s are < 10 kB)
MAX_JSON_BYTES = 2**20


def unreadable(path, exc: BaseException) -> AudioError:
    """The one-line error for an audio file a decoder refused (first line of its message)."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return AudioError(f"{path}: cannot read audio ({reason})")


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """Return ``(2, samples)``: mono is duplicated, >2 channels are folded (even → left, odd → right)."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise AudioError(f"expected audio of shape (channels, samples), got shape {audio.shape}")
    channels = audio.shape[0]
    if channels == 2:
        return audio
    if channels == 1:
        return np.repeat(audio, 2, axis=0)
    return np.stack([audio[0::2].mean(axis=0), audio[1::2].mean(axis=0)])


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(channels, samples)`` audio with soxr (high quality). A no-op when the rates match."""
    if orig_sr == target_sr:
        return audio
    if orig_sr <= 0 or target_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} → {target_sr}")
    out = soxr.resample(np.ascontiguousarray(audio.T), orig_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def resampled_length(length: int, orig_sr: int, target_sr: int) -> int:
    """Samples that :func:`resample` (soxr) returns for ``length`` input samples: ``length·target/orig`` rounded
    half up."""
    return (2 * length * target_sr + orig_sr) // (2 * orig_sr)


def check_resampled_length(name, length: int, orig_sr: int, target_sr: int) -> int:
    """:func:`resampled_length`, or one-line :class:`AudioError` when the signal is shorter than one sample at
    ``target_sr`` (e.g. 1 sample at 96 kHz read at 44.1 kHz)."""
    resampled = resampled_length(length, orig_sr, target_sr)
    if resampled < 1:
        raise AudioError(f"{name}: {length} sample{'s' if length > 1 else ''} at {orig_sr} Hz is shorter than one "
                         f"sample at {target_sr} Hz")
    return resampled


class Resampler:
    """:func:`resample` as a stream (soxr's own streaming resampler, the same filter): push ``(channels, n)``
    blocks, get resampled blocks back; :meth:`finish` flushes. The blocks add up to exactly ``length_out`` samples
    (default :func:`resampled_length` of ``length_in``): trimmed past it, zero-padded up to it."""

    def __init__(self, orig_sr: int, target_sr: int, *, channels: int, length_in: int, length_out: int | None = None):
        if orig_sr <= 0 or target_sr <= 0:
            raise AudioError(f"sample rates must be positive, got {orig_sr} → {target_sr}")
        self.channels = channels
        self.length = resampled_length(length_in, orig_sr, target_sr) if length_out is None else length_out
        self._stream = None if orig_sr == target_sr else soxr.ResampleStream(
            orig_sr, target_sr, channels, dtype="float32", quality="HQ")
        self._done = 0

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        if self._stream is not None:
            block = self._stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32)).T
        return self._fit(block)

    def finish(self) -> list[np.ndarray]:
        blocks = []
        if self._stream is not None:
            blocks += self._fit(self._stream.resample_chunk(np.zeros((0, self.channels), np.float32), last=True).T)
        if self._done < self.length:
            blocks += self._fit(np.zeros((self.channels, self.length - self._done), np.float32))
        return blocks

    def _fit(self, block: np.ndarray) -> list[np.ndarray]:
        block = block[:, :max(0, self.length - self._done)]
        self._done += block.shape[1]
        return [np.ascontiguousarray(block, dtype=np.float32)] if block.shape[1] else []


def check_audio(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """Validate an in-memory signal: 2-D ``(channels, samples)``, non-empty, finite. Returns float32."""
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise AudioError(f"{name}: expected shape (channels, samples), got {audio.shape}")
    if audio.shape[1] == 0:
        raise AudioError(f"{name}: contains no samples")
    try:
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused below
            audio = audio.astype(np.float32, copy=False)
    except (TypeError, ValueError):
        raise AudioError(f"{name}: not a numeric array (dtype {audio.dtype})") from None
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return audio


def load_audio(path, sample_rate: int | None = SAMPLE_RATE, *, stereo: bool = True) -> np.ndarray:
    """Read an audio file as float32 ``(channels, samples)``, converted as the module docstring says.

    ``sample_rate=None`` keeps the file's rate (see :func:`load_audio_with_rate`).
    """
    audio, _ = load_audio_with_rate(path, sample_rate, stereo=stereo)
    return audio


def check_audio_path(path) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it names a non-empty file, else one-line :class:`AudioError`."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, expected an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")
    return path


#: libsndfile's log line for a WAV/AIFF data chunk the file does not hold in full: ``data : 88200 (should be 44078)``
_SHORT_DATA_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: data-chunk sizes a streaming writer leaves in the header (length unknown, not short)
_UNKNOWN_CHUNK_SIZES = (0, 0xFFFFFFFF)


def open_audio(path):
    """Open an audio file for reading (a :class:`soundfile.SoundFile`; close it, e.g. ``with``), checked: a missing,
    empty, unreadable or truncated file, a rate outside :data:`MIN_FILE_RATE`–:data:`MAX_FILE_RATE` or no samples
    raise one-line :class:`AudioError`. :func:`read_audio_blocks` reads it."""
    path = check_audio_path(path)
    try:
        handle = sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError… for bad files
        raise unreadable(path, exc) from None
    try:
        short = _SHORT_DATA_CHUNK.search(handle.extra_info)
        if short and int(short[1]) not in _UNKNOWN_CHUNK_SIZES and int(short[2]) < int(short[1]):
            raise AudioError(f"{path}: truncated (its header announces {int(short[1])} bytes of audio, the file "
                             f"holds {int(short[2])}); export or download it again")
        if not MIN_FILE_RATE <= handle.samplerate <= MAX_FILE_RATE:
            raise AudioError(f"{path}: sample rate {handle.samplerate} Hz is outside {MIN_FILE_RATE}–"
                             f"{MAX_FILE_RATE} Hz")
        if handle.frames <= 0:
            raise AudioError(f"{path}: contains no samples")
    except BaseException:
        handle.close()
        raise
    return handle


def read_audio_blocks(handle, path, frames: int):
    """The samples of a file opened by :func:`open_audio`, as float32 ``(channels, n)`` blocks of up to ``frames``,
    each checked by :func:`check_audio`; a file that ends before the frames its header announces is truncated
    (one-line :class:`AudioError` after the last block)."""
    read = 0
    while True:
        try:
            data = handle.read(frames, dtype="float32", always_2d=True)
        except Exception as exc:  # a corrupt file fails part-way
            raise unreadable(path, exc) from None
        if data.shape[0] == 0:
            break
        read += data.shape[0]
        yield check_audio(data.T, str(path))
    if read < handle.frames:
        raise AudioError(f"{path}: truncated (it announces {handle.frames} frames and holds {read}); export or "
                         "download it again")


def load_audio_with_rate(path, sample_rate: int | None = SAMPLE_RATE, *, stereo: bool = True):
    """Like :func:`load_audio` but also returns the rate of the returned audio."""
    with open_audio(path) as handle:
        audio = np.concatenate(list(read_audio_blocks(handle, path, LOAD_BLOCK_FRAMES)), axis=1)
        file_sr = handle.samplerate
    if stereo:
        audio = to_stereo(audio)
    if sample_rate is not None and file_sr != sample_rate:
        check_resampled_length(path, audio.shape[1], file_sr, sample_rate)
        audio = resample(audio, file_sr, sample_rate)
        file_sr = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), file_sr


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _subtype_for(path: Path) -> str | None:
    ext = path.suffix.lower()
    if ext == ".flac":
        return "PCM_24"
    if ext in (".wav", ".aiff", ".aif"):
        return "FLOAT"
    return None


def save_audio(path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, *, subtype: str | None = None) -> Path:
    """Write ``(channels, samples)`` audio atomically (temp file + rename); the format follows the extension.

    FLAC is written as 24-bit PCM (clipped to [-1, 1]); WAV as 32-bit float (lossless).
    """
    path = Path(path)
    audio = check_audio(np.asarray(audio), str(path))
    subtype = subtype or _subtype_for(path)
    if subtype is not None and subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    encoded = io.BytesIO()  # encoded in memory, so that a full disk is an OSError with its reason
    sf.write(encoded, audio.T, sample_rate, subtype=subtype, format=_format_for(path))
    with atomic_file(path) as tmp:
        try:
            with open(tmp, "wb") as file:
                file.write(encoded.getbuffer())
        except OSError as exc:
            raise cannot_write(path, exc) from None
    return path


def _format_for(path: Path) -> str:
    """soundfile's format name for a file name's extension (``.aif`` is AIFF)."""
    ext = path.suffix.lower().lstrip(".")
    return {"aif": "AIFF"}.get(ext, ext.upper())


def write_error(path, exc: Exception, handle=None) -> MSRError:
    """The one-line error for audio that could not be written to ``path``: libsndfile's system error where it has
    one (e.g. "No space left on device", which soundfile's exception leaves out), else the exception's reason.
    ``handle``: the :class:`soundfile.SoundFile` that failed, if it was opened."""
    reason = getattr(exc, "strerror", None)
    with contextlib.suppress(Exception):
        raw = handle._file if handle is not None and handle._file is not None else sf._ffi.NULL
        text = sf._ffi.string(sf._snd.sf_strerror(raw)).decode()
        if text.startswith("System error : "):
            reason = text.removeprefix("System error : ").rstrip(".")
    return MSRError(f"{path}: cannot write ({reason or str(exc).splitlines()[0] or type(exc).__name__})")


def cannot_write(path, exc: OSError) -> MSRError:
    """The one-line error for an output the file system refused (read-only, full, no permission)."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):  # from mkdir of the folders above it
        return MSRError(f"{path}: cannot write there (a folder on its path is a file)")
    return MSRError(f"{path}: cannot write there ({exc.strerror or exc})")


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path next to ``path`` to write; it replaces ``path`` only if the block succeeds.

    A failure leaves the old file (if any) untouched and no temporary file behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output_dir(path, replaces=None) -> None:
    """Refuse (one-line :class:`MSRError`) an output folder ``path`` that is a file, or a folder holding anything
    but the names in ``replaces`` (what the output replacing it may hold; ``None``: anything). A missing folder is
    fine."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise MSRError(f"{path}: exists and is not a folder")
    if replaces is None:
        return
    others = sorted(p.name for p in path.iterdir() if p.name not in replaces)
    if others:
        raise MSRError(f"{path}: exists and holds other files ({', '.join(others[:3])}"
                       f"{', …' if len(others) > 3 else ''}); choose a new output folder")


@contextlib.contextmanager
def _writing_lock(path: Path):
    """Hold an exclusive ``flock`` on ``.<name>.lock`` beside ``path`` (removed when done); one-line
    :class:`MSRError` if another process holds it."""
    import fcntl

    lock = path.parent / f".{path.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as exc:
            raise cannot_write(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MSRError(f"{path}: another command is writing this folder now; wait until it is done or "
                           "choose another output folder") from None
        try:
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # the holder removed the file while we opened it: lock the one there now
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (``True`` for a number no process can have: such a folder is left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid <= 0
    except (PermissionError, OverflowError):  # another user's process; not a process id
        return True
    return True


def _dead_writers_folders(path: Path, kind: str) -> list[Path]:
    """The folders :func:`atomic_output_dir` names beside ``path`` (``kind`` "old": ``.<name>.old-<pid>``, "tmp":
    ``.<name>.tmp-<pid>-<random>``) whose writing process no longer runs, oldest first."""
    suffix = r"-(\d+)" if kind == "old" else r"-(\d+)-[^-]+"
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{kind}{suffix}")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    found = []
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(OSError):  # it vanished: another process recovered it
                folder = path.parent / name
                if folder.is_dir():
                    found.append((folder.stat().st_mtime, folder))
    return [folder for _, folder in sorted(found)]


def _recover_output_dir(path: Path) -> None:
    """Undo what a killed :func:`atomic_output_dir` writer left beside ``path``: with nothing at ``path``, its old
    folder (``.<name>.old-<pid>``, the newest of them) goes back there, with one warning line on stderr; the
    unfinished ``.<name>.tmp-<pid>-…`` folders of dead writers are removed (and their ``.old`` folders once
    ``path`` is back)."""
    leftovers = _dead_writers_folders(path, "old")
    if leftovers and not os.path.lexists(path):
        newest = leftovers.pop()
        try:
            os.replace(newest, path)
        except OSError:  # another recovering process was first (caches: exclusive=False)
            leftovers.append(newest)
        else:
            print(f"msr: warning: {path} was missing after an interrupted write; put back its previous version "
                  f"from {newest.name}", file=sys.stderr)
    if os.path.lexists(path):
        for folder in leftovers:
            shutil.rmtree(folder, ignore_errors=True)
    for folder in _dead_writers_folders(path, "tmp"):
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_output_dir(path, *, replaces=None, exclusive: bool = True):
    """Build a folder under a temporary name next to ``path``; rename it into place only if the block succeeds.

    An existing folder at ``path`` is replaced only after success, so a failure never leaves a half-written output;
    with ``replaces`` (the names the new output may hold) only if it holds nothing else (:func:`check_output_dir`,
    on entry and again before the swap), else it stays as it was and one-line :class:`MSRError` says why. A file
    at ``path`` is never replaced. ``exclusive``: one writer at a time — while a block runs, another process
    entering one for the same ``path`` gets one-line :class:`MSRError` (an ``flock`` on ``.<name>.lock`` beside
    it); ``False`` for writers of identical content (caches), where the last one to finish wins.

    A writer killed between its two renames leaves the old folder as ``.<name>.old-<pid>`` and nothing at
    ``path``: on entry that folder is put back (:func:`_recover_output_dir`, one warning line on stderr).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    with _writing_lock(path) if exclusive else contextlib.nullcontext():
        _recover_output_dir(path)
        check_output_dir(path, replaces)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
        except OSError as exc:
            raise cannot_write(path, exc) from None
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
        try:
            yield tmp
            check_output_dir(path, replaces)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)


# ---------------------------------------------------------------- metadata

def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} overflows a float")
    return value


def read_json_object(path, *, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """The JSON object in the metadata file ``path``, checked before and while it is read: at most ``max_bytes``,
    UTF-8, valid JSON without ``NaN``/``Infinity``, an object at the top. Anything else raises one
    :class:`MSRError` line naming the file (never a parser's traceback, never a gigabyte read)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise MSRError(f"{path}: {size:,} bytes, more than the {max_bytes:,} a JSON file read here may have")
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant,
                          parse_float=_finite_float)
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, UTF-8 or a too-long integer
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MSRError(f"cannot read {path}: {reason[:200]}") from None
    if not isinstance(data, dict):
        raise MSRError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------- levels and simple descriptors

def db(x: float, floor: float = 1e-12) -> float:
    """Amplitude ratio → decibels (20·log10), with a floor to avoid -inf."""
    return float(20.0 * np.log10(max(float(x), floor)))


def peak_dbfs(audio: np.ndarray) -> float:
    """Sample peak in dBFS (all channels)."""
    return db(np.max(np.abs(audio)) if np.size(audio) else 0.0)


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level in dBFS (all channels together)."""
    return db(np.sqrt(np.mean(np.square(audio, dtype=np.float64))) if np.size(audio) else 0.0)


def crest_factor_db(audio: np.ndarray) -> float:
    """Peak-to-RMS ratio in dB: high for punchy material, lowered by compression and limiting."""
    return peak_dbfs(audio) - rms_dbfs(audio)


def true_peak_dbtp(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, oversample: int = 4) -> float:
    """True-peak level (dBTP) estimated by 4× oversampling (ITU-R BS.1770 style)."""
    audio = np.asarray(audio, dtype=np.float32)
    up = resample(audio, sample_rate, sample_rate * oversample)
    # the resampler's edge transients can read a short signal below its own samples; the true peak never is
    return max(peak_dbfs(up), peak_dbfs(audio))


def loudness_lufs(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Integrated loudness (ITU-R BS.1770-4, LUFS) via pyloudnorm; -inf for silence.

    Signals shorter than one 400 ms gating block are zero-padded to it.
    """
    import pyloudnorm

    audio = np.asarray(audio, dtype=np.float64)
    block = int(0.4 * sample_rate) + 1
    if audio.shape[-1] < block:
        audio = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, block - audio.shape[-1])])
    meter = pyloudnorm.Meter(sample_rate)
    with np.errstate(divide="ignore"):
        return float(meter.integrated_loudness(audio.T))


def spectral_centroid_hz(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Power-weighted mean frequency of the whole signal (mono sum), in Hz; 0 for silence."""
    mono = np.asarray(audio, dtype=np.float64).reshape(-1, np.shape(audio)[-1]).mean(axis=0)
    power = np.abs(np.fft.rfft(mono)) ** 2
    total = power.sum()
    if total <= 0:
        return 0.0
    freqs = np.fft.rfftfreq(mono.size, 1.0 / sample_rate)
    return float((freqs * power).sum() / total)


def band_energy_db(audio: np.ndarray, sample_rate: int, low_hz: float, high_hz: float) -> float:
    """Energy (dB, relative to full scale) of the mono sum between ``low_hz`` and ``high_hz``."""
    mono = np.asarray(audio, dtype=np.float64).reshape(-1, np.shape(audio)[-1]).mean(axis=0)
    spec = np.abs(np.fft.rfft(mono)) ** 2 / max(mono.size, 1)
    freqs = np.fft.rfftfreq(mono.size, 1.0 / sample_rate)
    sel = (freqs >= low_hz) & (freqs < high_hz)
    return float(10 * np.log10(spec[sel].sum() + 1e-20))


# ---------------------------------------------------------------- song folders

#: File names (extension and case aside) of a song's **clean mix**: the exact sum of its clean stems (``msr synth``).
CLEAN_MIX_NAMES: tuple[str, ...] = ("clean_mix",)
#: File names of a song's **mastered mix**, the finished song: ours (``msr degrade``) and the names other datasets
#: give their released song (MUSDB18-HQ's ``mixture``, a ``mix``, ``master`` or ``mastered`` file). Such a file is
#: what someone produced from the stems, so it is never taken for their plain sum.
MASTERED_MIX_NAMES: tuple[str, ...] = ("mastered_mix", "mixture", "mix", "master", "mastered")
#: What :func:`song_files` does with a file whose name is neither a stem nor a mix.
UNKNOWN_NAME_POLICIES = ("error", "other", "keep")


@dataclass(frozen=True, kw_only=True)
class SongFiles:
    """The audio files of one song folder, by role (see :func:`song_files`)."""

    folder: Path
    #: canonical stem → its files (one, or several to be summed), stems in canonical order
    stems: dict[str, tuple[Path, ...]]
    clean_mix: Path | None = None
    mastered_mix: Path | None = None
    #: files whose name is no stem (with ``unknown="other"`` they are in ``stems["other"]`` too)
    unknown: tuple[Path, ...] = ()


#: the two mixes a song has: ``"clean"`` (the plain sum of its stems) and ``"mastered"`` (produced by
#: :func:`msr_lib.degrade.degrade_mix`) — what a curriculum stage trains on and what a separator is scored on
MIXES = ("clean", "mastered")


def mix_kind(name: str) -> str | None:
    """``"clean_mix"`` or ``"mastered_mix"`` when a file name (without extension, any case) names a mix, else
    ``None``."""
    key = name.strip().lower()
    if key in CLEAN_MIX_NAMES:
        return "clean_mix"
    if key in MASTERED_MIX_NAMES:
        return "mastered_mix"
    return None


def song_files(folder, *, unknown: str = "error") -> SongFiles:
    """The audio files directly in a ``<song>/<stem>.<ext>`` folder, by role: the one reader of song folders.

    Policy (names compared without extension and case; hidden files and non-audio files such as ``song.json``
    ignored):

    - ``clean_mix`` (:data:`CLEAN_MIX_NAMES`) is the clean mix; ``mastered_mix``, ``mixture``, ``mix``, ``master``
      and ``mastered`` (:data:`MASTERED_MIX_NAMES`) are the mastered mix — another dataset's mixture is its
      finished song. Two files for one mix (``mix.wav`` and ``mixture.flac``) are ambiguous: :class:`AudioError`.
    - Every other name is a stem name, mapped by :func:`msr_lib.stems.known_stem` (aliases such as ``piano`` →
      keyboards, RawStems groups such as ``Voc_LV`` → vocals). Several files of one stem (``guitar.wav`` and
      ``guitars.flac``) are all listed; :func:`load_song_stems` sums them.
    - A name that is no stem: ``unknown="error"`` raises one :class:`AudioError` line, ``"other"`` files it under
      ``other``, ``"keep"`` leaves it out of the stems; both list it in :attr:`SongFiles.unknown`.

    A folder without stems is not an error here (callers probing folders check ``.stems``); a missing path is.
    """
    from msr_lib.stems import known_stem, sort_stems

    if unknown not in UNKNOWN_NAME_POLICIES:
        raise MSRError(f"unknown={unknown!r}: choose one of {', '.join(UNKNOWN_NAME_POLICIES)}")
    folder = Path(folder)
    if not folder.exists():
        raise AudioError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise AudioError(f"{folder}: is not a folder")
    stems: dict[str, list[Path]] = {}
    mixes: dict[str, Path] = {}
    unknown_files: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
            continue
        kind = mix_kind(path.stem)
        if kind is not None:
            if kind in mixes:
                raise AudioError(f"{folder}: two files for the {kind.replace('_', ' ')}: "
                                 f"{mixes[kind].name} and {path.name} (keep one)")
            mixes[kind] = path
            continue
        stem = known_stem(path.stem)
        if stem is None:
            if unknown == "error":
                raise AudioError(f"{path}: unknown stem name {path.stem!r}; expected a stem name "
                                 f"(vocals, bass, drums, …), {CLEAN_MIX_NAMES[0]} or {MASTERED_MIX_NAMES[0]}")
            unknown_files.append(path)
            if unknown == "keep":
                continue
            stem = "other"
        stems.setdefault(stem, []).append(path)
    return SongFiles(folder=folder, stems={s: tuple(stems[s]) for s in sort_stems(stems)},
                     clean_mix=mixes.get("clean_mix"), mastered_mix=mixes.get("mastered_mix"),
                     unknown=tuple(unknown_files))


def load_stem(files: Sequence[Path], sample_rate: int | None = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """The files of one stem as one stereo float32 ``(2, samples)`` array, summed (zero-padded at the end to the
    longest): ``(audio, rate)``; ``sample_rate=None`` keeps the first file's rate."""
    audio, rate = load_audio_with_rate(files[0], sample_rate)
    parts = [audio] + [load_audio(path, rate) for path in files[1:]]
    length = max(a.shape[1] for a in parts)
    return np.sum([fit_length(a, length) for a in parts], axis=0, dtype=np.float32), rate


def load_stem_files(stems: dict[str, Sequence[Path]], sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """Load ``{stem: files}`` as ``{stem: float32 (2, samples)}``: the files of a stem summed (:func:`load_stem`),
    every stem zero-padded at the end to the longest (documented conversion). Keeps the order of ``stems``."""
    loaded = {stem: load_stem(files, sample_rate)[0] for stem, files in stems.items()}
    if not loaded:
        return {}
    length = max(a.shape[1] for a in loaded.values())
    return {stem: fit_length(a, length) for stem, a in loaded.items()}


def load_song_stems(folder, sample_rate: int = SAMPLE_RATE, *, unknown: str = "error") -> dict[str, np.ndarray]:
    """Load every stem of a song folder (read by :func:`song_files`) as stereo float32 at ``sample_rate``, in
    canonical order: several files of one stem are summed, stems zero-padded at the end to the longest."""
    files = song_files(folder, unknown=unknown)
    if not files.stems:
        raise AudioError(f"{files.folder}: no stem audio files (expected e.g. vocals.flac, bass.flac, …)")
    return load_stem_files(files.stems, sample_rate)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """``audio`` (channels, samples) cut or zero-padded at the end to ``length`` samples."""
    if audio.shape[1] >= length:
        return audio[:, :length]
    return np.pad(audio, ((0, 0), (0, length - audio.shape[1])))


def group_stems(stems: dict[str, np.ndarray], names) -> dict[str, np.ndarray]:
    """Stems (same shapes) regrouped into ``names`` (e.g. a separator's 4 stems), in that order: a stem not among
    ``names`` is summed into ``other`` when ``names`` has it (else dropped); a name without audio gets silence."""
    if not stems:
        raise AudioError("group_stems: no stems given")
    shape = next(iter(stems.values())).shape
    grouped = {name: np.zeros(shape, np.float32) for name in names}
    for name, audio in stems.items():
        target = name if name in grouped else "other"
        if target in grouped:
            grouped[target] = grouped[target] + audio
    return grouped


def third_octave_levels_db(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Energy (dB) of the mono sum in third-octave bands from 25 Hz to 20 kHz: ``(centre_freqs_hz, levels_db)``."""
    centres = 1000.0 * 2.0 ** (np.arange(-16, 14) / 3.0)
    centres = centres[centres < sample_rate / 2 / 2 ** (1 / 6)]
    mono = np.asarray(audio, dtype=np.float64).reshape(-1, np.shape(audio)[-1]).mean(axis=0)
    power = np.abs(np.fft.rfft(mono)) ** 2 / max(mono.size, 1)
    freqs = np.fft.rfftfreq(mono.size, 1.0 / sample_rate)
    edges = np.searchsorted(freqs, np.concatenate([centres * 2 ** (-1 / 6), centres[-1:] * 2 ** (1 / 6)]))
    sums = np.add.reduceat(power, edges[:-1])[: len(centres)] if power.size else np.zeros(len(centres))
    sums = np.where(edges[1:] > edges[:-1], sums, 0.0)
    return centres, 10 * np.log10(sums + 1e-20)


def largest_band_change(before: np.ndarray, after: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """The third-octave band whose energy changed most from ``before`` to ``after``: ``(centre_hz, change_db)``.

    Bands where both signals are silent (below −120 dB) are ignored.
    """
    centres, a = third_octave_levels_db(before, sample_rate)
    _, b = third_octave_levels_db(after, sample_rate)
    change = np.where(np.maximum(a, b) > -120, b - a, 0.0)
    i = int(np.argmax(np.abs(change)))
    return float(centres[i]), float(change[i])
