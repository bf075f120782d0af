"""SoundFont discovery and sample-accurate, dry rendering of one note part with TinySoundFont (``.sf2``, and
``.sf3`` whose Ogg-compressed samples it decodes on loading).

Loaded SoundFonts are kept per process, up to :data:`SOUNDFONT_CACHE_MB` of decoded samples (the least recently
used one is dropped first), and a synthesiser is reused for every stem: :func:`render_part` stops
all voices after a part and renders their quick release away, so nothing rings over into the next stem (a real
risk: TinySoundFont's reset fades voices out over ~10 ms rather than cutting them), and splits the rendering at
every note event, so events land on their exact sample.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from msr_lib.audio import SAMPLE_RATE
from msr_lib.errors import MSRError

#: Where Linux distributions install General-MIDI SoundFonts, best first.
SYSTEM_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
)
ENV_VAR = "MSR_SOUNDFONT"

#: GM drum kits (bank 128 presets) by style, tried in order; preset 0 (Standard) always exists.
STYLE_DRUM_KITS = {"electronic": (25, 24), "rock": (16, 8), "bossa": (40, 32), "ballad": (8, 0), "shuffle": (32, 0)}


def bundled_soundfont() -> Path:
    """``TimGM6mb.sf2`` shipped inside the ``pretty_midi`` package (small, always available)."""
    import importlib.util

    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.origin:
        raise MSRError("no SoundFont found: install fluid-soundfont-gm or the pretty_midi package")
    return Path(spec.origin).parent / "TimGM6mb.sf2"


def pinned_soundfont(explicit=None) -> Path | None:
    """The SoundFont a caller pinned: ``explicit`` if given, else ``$MSR_SOUNDFONT``, else ``None``."""
    if explicit is None and not os.environ.get(ENV_VAR):
        return None
    return find_soundfont(explicit)


def find_soundfont(explicit=None) -> Path:
    """The SoundFont to render with: ``explicit`` if given, else ``$MSR_SOUNDFONT``, else the best installed one
    (FluidR3_GM from Debian's ``fluid-soundfont-gm`` …), else ``pretty_midi``'s ``TimGM6mb.sf2``."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise MSRError(f"{path}: no such SoundFont file")
        if not path.is_file():
            raise MSRError(f"{path}: is not a file, expected a .sf2/.sf3 SoundFont")
        return path
    if os.environ.get(ENV_VAR):
        return find_soundfont(os.environ[ENV_VAR])
    for candidate in SYSTEM_SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    return bundled_soundfont()


#: Decoded SoundFonts a process keeps loaded, in MB. Measured here: FluidR3_GM 285 MB, OPL-3 258 MB,
#: MuseScore_General.sf3 488 MB (its Ogg samples decoded), TimGM6mb 12 MB; reloading takes 0.3 s (.sf2) to 2 s (.sf3).
#: Without a bound each song-rendering worker held all of them (1.1 GB) and a lesson's render passed 3 GB.
SOUNDFONT_CACHE_MB = 600
#: Decoded size per byte of file: 16-bit samples become float32 (.sf2); Ogg-compressed samples decode to ~12x (.sf3).
_DECODED_PER_FILE_BYTE = {".sf2": 2.0, ".sf3": 12.5}
_LOADED: dict[str, tuple] = {}      # insertion order = least recently used first
_FLUSH_SAMPLES = 4096


def _decoded_mb(key: str) -> float:
    path = Path(key)
    return path.stat().st_size * _DECODED_PER_FILE_BYTE.get(path.suffix.lower(), 2.0) / 2**20


def _make_room(mb: float) -> None:
    """Drop the least recently used SoundFonts until ``mb`` more fit in :data:`SOUNDFONT_CACHE_MB`."""
    while _LOADED and sum(_decoded_mb(k) for k in _LOADED) + mb > SOUNDFONT_CACHE_MB:
        del _LOADED[next(iter(_LOADED))]


def load_soundfont(path) -> tuple:
    """``(synth, sfid)`` for a SoundFont, kept loaded within :data:`SOUNDFONT_CACHE_MB` (least recently used out)."""
    key = str(Path(path).resolve())
    if key in _LOADED:
        _LOADED[key] = _LOADED.pop(key)       # now the most recently used
    else:
        _make_room(_decoded_mb(key))
        try:
            import tinysoundfont
        except ImportError:
            raise MSRError("the SoundFont renderer is missing: pip install --no-deps tinysoundfont "
                           "(make setup does this)") from None

        synth = tinysoundfont.Synth(gain=0.0, samplerate=SAMPLE_RATE)
        try:
            sfid = synth.sfload(key, max_voices=256)
        except Exception as exc:  # tinysoundfont raises SoundFontException or RuntimeError on bad files
            raise MSRError(f"{path}: cannot load SoundFont ({type(exc).__name__}: {exc})") from None
        if not synth.sfpreset_name(sfid, 0, 0):
            raise MSRError(f"{path}: SoundFont has no preset 0 in bank 0 (a General-MIDI piano or a drum kit)")
        _warm_up(synth, sfid)
        _LOADED[key] = (synth, sfid)
    return _LOADED[key]


def _warm_up(synth, sfid) -> None:
    """Play one note and silence it, so the first part rendered meets the same state as every later one."""
    synth.program_select(0, sfid, 0, 0)
    synth.noteon(0, 60, 100)
    synth.generate_simple(2048)
    _silence(synth, sfid)


def _silence(synth, sfid) -> None:
    """Stop every voice: TinySoundFont's reset ends voices with a ~10 ms quick release, so render that away."""
    synth.soundfonts[sfid].reset()
    synth.generate_simple(_FLUSH_SAMPLES)


def _select(synth, sfid, channel: int, program: int, is_drums: bool, kits=(), drum_bank: int = 128) -> int:
    """Select a program (for drums: the first kit of ``kits`` in ``drum_bank`` the SoundFont has, else preset 0
    there); returns it. A kit-only SoundFont (avldrums) keeps its kit as preset 0 of bank 0."""
    bank = drum_bank if is_drums else 0
    choices = list(kits) + [program] if is_drums else [program]
    preset = next((p for p in choices if synth.sfpreset_name(sfid, bank, p)), 0)
    if bank == 128:
        synth.program_select(channel, sfid, 0, preset, True)
    else:
        synth.program_select(channel, sfid, bank, preset, False)
    return preset


def _events(notes, n_samples: int) -> list[tuple[int, int, int, int]]:
    """(sample, on?, pitch, velocity) sorted; a note ends before the next note of the same pitch starts."""
    by_pitch: dict[int, list] = {}
    for note in notes:
        by_pitch.setdefault(note.pitch, []).append(note)
    events = []
    for pitch in sorted(by_pitch):
        seq = sorted(by_pitch[pitch], key=lambda n: (n.start, n.end))
        for k, note in enumerate(seq):
            start = int(round(note.start * SAMPLE_RATE))
            end = int(round(note.end * SAMPLE_RATE))
            if k + 1 < len(seq):
                end = min(end, int(round(seq[k + 1].start * SAMPLE_RATE)))
            if start >= n_samples or end <= start:
                continue
            events.append((start, 1, pitch, note.velocity))
            if end < n_samples:
                events.append((end, 0, pitch, 0))
    events.sort()
    return events


def render_part(part, n_samples: int, soundfont, *, drum_kits=(), drum_bank: int = 128) -> tuple[np.ndarray, int, str]:
    """Render one part dry to ``(2, n_samples)`` float32; returns the audio, the program/kit actually used and its
    preset name in the SoundFont."""
    synth, sfid = load_soundfont(soundfont)
    channel = 9 if part.is_drums else 0
    program = _select(synth, sfid, channel, part.program or 0, part.is_drums, drum_kits, drum_bank)
    name = (synth.sfpreset_name(sfid, drum_bank if part.is_drums else 0, program) or "").strip()
    out = np.zeros((n_samples, 2), dtype=np.float32)
    pos = 0
    for sample, on, pitch, velocity in _events(part.notes, n_samples):
        if sample > pos:
            synth.generate_simple(sample - pos, buffer=memoryview(out[pos:sample]).cast("B"))
            pos = sample
        if on:
            synth.noteon(channel, pitch, velocity)
        else:
            synth.noteoff(channel, pitch)
    if pos < n_samples:
        synth.generate_simple(n_samples - pos, buffer=memoryview(out[pos:]).cast("B"))
    _silence(synth, sfid)
    return np.ascontiguousarray(out.T), program, name
