"""A small sampler for Hydrogen drum kits (``drumkit.xml`` + WAV/FLAC/AIFF samples, as Debian's
``hydrogen-drumkits`` installs them): plays the General-MIDI drum notes of our drum and percussion parts.

A kit's instruments are found by name (kick, snare, closed hat, crash, conga…): each GM note has a list of name
rules, tried in order, so a kit without a ride plays its crash, a kit without congas plays its djembes. Velocity
picks the layer (Hydrogen's ``min``/``max`` in 0–1) and scales it; a hi-hat hit chokes the hi-hat still ringing.
Both kit formats are read: instruments with ``<layer>``s, and older ones with one ``<filename>`` each.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msr_lib.audio import SAMPLE_RATE, load_audio
from msr_lib.errors import MSRError

#: Where Debian's hydrogen-drumkits puts its kits.
HYDROGEN_DRUMKITS = Path("/usr/share/hydrogen/data/drumkits")

_TOMS = ((("tom",), ()),)
_CRASH = ((("crash",), ("ride", "choke")), (("crash",), ()), (("splash",), ("choke",)), (("china",), ()),
          (("cymbal",), ()))
#: GM drum note → name rules tried in order; a rule is (words that all begin a word of the name, words none of
#: which begins one).
NOTE_RULES: dict[int, tuple] = {
    36: ((("kick",), ()), (("bassdrum",), ()), (("bass drum",), ())),
    37: ((("side", "stick"), ()), (("stick",), ()), (("rim",), ("rimshot",))),
    38: ((("snare",), ("rim", "roll", "low")), (("snare",), ("roll",))),
    39: ((("clap",), ()), (("snap",), ())),
    41: ((("floor",), ()), (("tom", "low"), ()), (("tom", "lo"), ())) + _TOMS,
    45: ((("tom", "low"), ()), (("tom", "2"), ()), (("tom", "mid"), ())) + _TOMS,
    48: ((("tom", "mid"), ()), (("middle", "tom"), ()), (("tom", "2"), ()), (("tom", "1"), ())) + _TOMS,
    50: ((("tom", "hi"), ()), (("high", "tom"), ()), (("tom", "1"), ())) + _TOMS,
    42: ((("hat", "closed"), ()), (("hh", "closed"), ()), (("hat", "cl"), ()), (("hh", "cl"), ()),
         (("hat",), ("open", "op", "pedal", "pd", "choke", "swish", "semi")), (("hh",), ("open", "pedal"))),
    44: ((("pedal",), ()), (("hat", "pd"), ())),
    46: ((("hat", "open"), ()), (("hh", "open"), ()), (("hat", "op"), ()), (("hh", "op"), ()),
         (("semi",), ())),
    49: _CRASH,
    51: ((("ride",), ("bell", "cup", "crash")), (("ride",), ("bell", "cup"))) + _CRASH,
    53: ((("ride", "bell"), ()), (("ride", "cup"), ()), (("bell",), ("cow",)), (("ride",), ())),
    54: ((("tambourine",), ("pedal",)), (("tamb",), ())),
    56: ((("cowbell",), ()),),
    60: ((("bongo", "hi"), ()), (("bongo",), ()), (("djembe", "slap"), ())),
    61: ((("bongo", "lo"), ()), (("bongo",), ()), (("djembe", "tone"), ())),
    62: ((("conga",), ()), (("djembe", "slap"), ()), (("cajon", "slap"), ()), (("bongo",), ())),
    63: ((("conga",), ()), (("djembe", "tone"), ()), (("bongo",), ())),
    64: ((("conga",), ()), (("djembe", "bass"), ()), (("cajon",), ())),
    65: ((("timbale",), ()), (("kenkeni", "hit"), ()), (("sangban", "head"), ())),
    66: ((("timbale",), ()), (("sangban", "head"), ()), (("dununba", "head"), ())),
    67: ((("agogo", "hi"), ()), (("agogo",), ()), (("bell", "hit"), ())),
    68: ((("agogo", "lo"), ()), (("agogo",), ()), (("bell", "mute"), ())),
    69: ((("cabasa",), ()), (("maraca",), ()), (("shaker",), ())),
    70: ((("maraca",), ()), (("shaker",), ()), (("cabasa",), ())),
    73: ((("guiro",), ()),),
    74: ((("guiro",), ()),),
    75: ((("clave",), ()), (("woodblock",), ())),
    76: ((("woodblock", "hi"), ()), (("woodblock",), ()), (("clave",), ())),
    77: ((("woodblock", "lo"), ()), (("woodblock",), ()), (("clave",), ())),
    80: ((("triangle",), ()), (("waterglass", "hi"), ())),
    81: ((("triangle",), ()), (("waterglass",), ())),
    82: ((("shaker",), ()), (("maraca",), ()), (("cabasa",), ())),
}
HAT_NOTES = (42, 44, 46)
#: The notes a kit must play to serve as a drum *kit* (not a hand-percussion set).
KIT_CORE_NOTES = (36, 38, 42)
_CHOKE_SECONDS = 0.02


@dataclass(frozen=True)
class Layer:
    low: float                   # velocity range, 0–1
    high: float
    gain: float
    path: Path


@dataclass(frozen=True)
class KitInstrument:
    name: str
    gain: float
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class DrumKit:
    """A Hydrogen kit: its name, folder and the instruments that have samples."""

    name: str
    folder: Path
    instruments: tuple[KitInstrument, ...]

    def note_map(self) -> dict[int, int]:
        """GM drum note → index into :attr:`instruments`, for every note some rule finds in this kit."""
        names = [_words(inst.name) for inst in self.instruments]
        mapping = {}
        for note, rules in NOTE_RULES.items():
            for required, forbidden in rules:
                hit = next((i for i, words in enumerate(names)
                            if all(f" {w}" in words for w in required)
                            and not any(f" {w}" in words for w in forbidden)), None)
                if hit is not None:
                    mapping[note] = hit
                    break
        return mapping

    def is_drum_kit(self) -> bool:
        return all(n in self.note_map() for n in KIT_CORE_NOTES)


def _words(name: str) -> str:
    """A name lower-cased with separators as spaces and camel case split ("BassDrum" → "bass drum bassdrum")."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return f" {re.sub(r'[^a-z0-9]+', ' ', spaced.lower())} {re.sub(r'[^a-z0-9]+', '', name.lower())} "


def _text(element, tag: str, default: str = "") -> str:
    for child in element:
        if child.tag.rsplit("}", 1)[-1] == tag:
            return (child.text or default).strip()
    return default


def _children(element, tag: str) -> list:
    return [e for e in element.iter() if e.tag.rsplit("}", 1)[-1] == tag]


def read_drumkit(folder) -> DrumKit:
    """Read a Hydrogen kit folder (``drumkit.xml`` and its samples)."""
    folder = Path(folder)
    try:
        root = ET.parse(folder / "drumkit.xml").getroot()
    except (OSError, ET.ParseError) as exc:
        raise MSRError(f"{folder}: cannot read drumkit.xml ({exc})") from None
    instruments = []
    for inst in _children(root, "instrument"):
        gain = float(_text(inst, "volume", "1") or 1) * float(_text(inst, "gain", "1") or 1)
        layers = [Layer(float(_text(layer, "min", "0")), float(_text(layer, "max", "1")),
                        float(_text(layer, "gain", "1")), folder / _text(layer, "filename"))
                  for layer in _children(inst, "layer") if _text(layer, "filename")]
        if not layers and _text(inst, "filename"):
            layers = [Layer(0.0, 1.0, 1.0, folder / _text(inst, "filename"))]
        layers = [layer for layer in layers if layer.path.is_file()]
        if layers:
            instruments.append(KitInstrument(_text(inst, "name", "?"), gain, tuple(layers)))
    return DrumKit(_text(root, "name", folder.name), folder, tuple(instruments))


def find_drumkits(root=HYDROGEN_DRUMKITS) -> list[DrumKit]:
    """Every kit under ``root`` with at least one playable instrument, sorted by folder name."""
    root = Path(root)
    if not root.is_dir():
        return []
    kits = [read_drumkit(d) for d in sorted(root.iterdir()) if (d / "drumkit.xml").is_file()]
    return [kit for kit in kits if kit.instruments]


_SAMPLES: dict[Path, np.ndarray] = {}


def _sample(path: Path) -> np.ndarray:
    if path not in _SAMPLES:
        _SAMPLES[path] = load_audio(path)
    return _SAMPLES[path]


def _layer(instrument: KitInstrument, velocity: int) -> Layer:
    v = velocity / 127
    inside = [layer for layer in instrument.layers if layer.low <= v <= layer.high]
    if inside:
        return inside[-1]
    return min(instrument.layers, key=lambda layer: min(abs(layer.low - v), abs(layer.high - v)))


def coverage(kit: DrumKit, notes) -> float:
    """The fraction of ``notes`` the kit can play."""
    mapping = kit.note_map()
    return sum(n.pitch in mapping for n in notes) / max(len(notes), 1)


def render_drumkit_part(notes, n_samples: int, kit: DrumKit) -> np.ndarray:
    """Play GM drum ``notes`` on ``kit`` into stereo float32 ``(2, n_samples)``; notes the kit lacks are silent."""
    mapping = kit.note_map()
    out = np.zeros((2, n_samples), dtype=np.float32)
    hats = np.zeros_like(out)                          # hi-hats apart, so a choke cuts nothing else
    hat_end = 0                                        # where the hi-hat sample still sounding ends
    choke = int(_CHOKE_SECONDS * SAMPLE_RATE)
    for note in sorted(notes, key=lambda n: n.start):
        start = int(round(note.start * SAMPLE_RATE))
        if note.pitch not in mapping or start >= n_samples:
            continue
        instrument = kit.instruments[mapping[note.pitch]]
        layer = _layer(instrument, note.velocity)
        audio = _sample(layer.path)
        n = min(audio.shape[1], n_samples - start)
        target = out
        if note.pitch in HAT_NOTES:
            if hat_end > start:
                fade_end = min(hat_end, start + choke)
                hats[:, start:fade_end] *= np.linspace(1.0, 0.0, fade_end - start, dtype=np.float32)
                hats[:, fade_end:hat_end] = 0.0
            hat_end, target = start + n, hats
        target[:, start:start + n] += audio[:, :n] * np.float32(layer.gain * instrument.gain * note.velocity / 127)
    return out + hats
