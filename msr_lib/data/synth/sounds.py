"""Sound sources: where each stem of a synthetic song gets its sounds from, in one registry.

:data:`SOUND_SOURCES` names every source: sampled General-MIDI SoundFont sets (FluidR3_GM, MuseScore_General,
TimGM6mb), recorded drum kits (avldrums' SoundFont kits, Hydrogen kits through :mod:`.drumkit`), synthesizers
that are not GM patches (the OPL3 FM SoundFont, and this package's own subtractive and FM voices in
:mod:`.synthesizer`), and the singing voice (:mod:`.voice`). Each says which Debian package it needs (``None``:
built in, always there) and which stems it can play.

Per song, :func:`choose_sources` draws each stem's source from the song seed on a random stream of its own, so
the arrangement (the notes) never depends on what is installed; the *choice* does: it is made among the sources
available on the machine (or those a caller allows), so the same seed gives the same song only where the same
sources are installed. ``song.json`` records the choice per stem and the pool it was drawn from.

Missing sources: by default a song draws from what is installed (a missing package only narrows the choice; the
built-in sources cover every stem); a list of sources names what must be there, and one that is missing is one
clear error naming its Debian package (:func:`require_sound_sources`, which can also install it).

Lessons: notebooks/00_welcome.ipynb, notebooks/01_data_and_mastering.ipynb
"""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msr_lib.audio import SAMPLE_RATE
from msr_lib.errors import MSRError
from msr_lib.stems import STEMS

#: Random streams drawn from the song seed: which source per stem, and the sources' own choices (patch, kit).
CHOICE_STREAM = 0x534F55
RENDER_STREAM = 0x524E44
_ALL_GM_STEMS = ("bass", "drums", "guitars", "keyboards", "synthesizers", "percussion", "orchestral", "other")


@dataclass(frozen=True, kw_only=True)
class SoundSource:
    """One place sounds come from: ``name`` (as recorded in ``song.json``), ``kind`` (``soundfont``: a sampled GM
    set; ``drumkit``; ``synth``; ``voice``), the Debian ``package`` it needs (``None``: built in), the ``stems``
    it can play and the ``files`` it reads (the first that exists is used; a drum-kit source uses all)."""

    name: str
    kind: str
    package: str | None
    stems: tuple[str, ...]
    description: str
    files: tuple[str, ...] = ()

    def paths(self) -> list[Path]:
        return [Path(f) for f in self.files if Path(f).exists()]

    def available(self) -> bool:
        return bool(self.paths())

    def render(self, part, n_samples: int, rng: np.random.Generator, *, style: str) -> tuple[np.ndarray, dict]:
        """Play ``part`` dry into ``(2, n_samples)`` float32; returns the audio and what was played (program,
        patch, kit…) for ``song.json``."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class SoundFontSource(SoundSource):
    """A General-MIDI SoundFont (or a synth SoundFont with the GM program map): plays the part's GM program.

    ``velocity_gaps``: program → (low, high) velocities whose layer TinySoundFont renders wrongly (~20 dB quiet
    and dull); notes there move to the nearest velocity outside."""

    velocity_gaps: dict = field(default_factory=dict)

    def render(self, part, n_samples, rng, *, style):
        from msr_lib.data.synth.render import STYLE_DRUM_KITS, render_part

        path = self.paths()[0]
        kits = STYLE_DRUM_KITS.get(style, ()) if part.is_drums else ()
        gap = None if part.is_drums else self.velocity_gaps.get(part.program)
        if gap is not None:
            low, high = gap
            notes = [dataclasses.replace(n, velocity=(low - 1 if n.velocity - low < high - n.velocity else high + 1))
                     if low <= n.velocity <= high else n for n in part.notes]
            part = dataclasses.replace(part, notes=notes)
        audio, program, name = render_part(part, n_samples, path, drum_kits=kits)
        if name.isdigit():                                   # OPL3's presets are named by number only
            name = f"{path.stem} {'kit' if part.is_drums else 'program'} {program}"
        return audio, {"program": program, "patch": name, "soundfont": str(path)}


@dataclass(frozen=True, kw_only=True)
class BundledSoundFontSource(SoundFontSource):
    """``pretty_midi``'s copy of TimGM6mb (a pip dependency, so always there)."""

    def paths(self):
        from msr_lib.data.synth.render import bundled_soundfont

        try:
            path = bundled_soundfont()
        except MSRError:
            return []
        return [path] if path.is_file() else []


@dataclass(frozen=True, kw_only=True)
class KitSoundFontSource(SoundSource):
    """SoundFonts that each hold one drum kit as preset 0 of bank 0 (avldrums); one kit is drawn per song."""

    def render(self, part, n_samples, rng, *, style):
        from msr_lib.data.synth.render import render_part

        paths = self.paths()
        path = paths[int(rng.integers(len(paths)))]
        audio, _, name = render_part(part, n_samples, path, drum_kits=(0,), drum_bank=0)
        return audio, {"program": 0, "patch": name, "kit": path.stem, "soundfont": str(path)}


@functools.lru_cache(maxsize=None)
def _hydrogen_kits(root: str) -> tuple:
    from msr_lib.data.synth.drumkit import find_drumkits

    return tuple(find_drumkits(root))


@dataclass(frozen=True, kw_only=True)
class HydrogenSource(SoundSource):
    """Hydrogen drum kits (recorded samples) in the folder ``files[0]``: a kit with kick, snare and hi-hat for
    the drum stem; for hand percussion, a kit that plays at least half of the part's notes (else the best one).
    The GM notes the kit has no instrument for stay silent and are recorded (``unplayed_notes``)."""

    def kits(self) -> tuple:
        return _hydrogen_kits(self.files[0]) if self.files else ()

    def available(self) -> bool:
        return any(kit.is_drum_kit() for kit in self.kits())

    def render(self, part, n_samples, rng, *, style):
        from msr_lib.data.synth.drumkit import coverage, render_drumkit_part

        kits = self.kits()
        if part.stem == "drums":
            fitting = [kit for kit in kits if kit.is_drum_kit()]
        else:
            scores = [coverage(kit, part.notes) for kit in kits]
            fitting = [kit for kit, score in zip(kits, scores) if score >= 0.5] or [kits[int(np.argmax(scores))]]
        kit = fitting[int(rng.integers(len(fitting)))]
        mapping = kit.note_map()
        unplayed = sorted({n.pitch for n in part.notes if n.pitch not in mapping})
        return render_drumkit_part(part.notes, n_samples, kit), {"program": None, "patch": kit.name,
                                                                  "kit": kit.folder.name, "unplayed_notes": unplayed}


@dataclass(frozen=True, kw_only=True)
class NumpySynthSource(SoundSource):
    """This package's own synthesizer voices (:mod:`.synthesizer`): a patch made for the part's role is drawn."""

    engine: str = "subtractive"

    def available(self) -> bool:
        return True

    def render(self, part, n_samples, rng, *, style):
        from msr_lib.data.synth.synthesizer import FM_PATCHES, SUBTRACTIVE_PATCHES, patch_role, render_synth_part

        role = patch_role(part.stem, part.role)
        patches = [p for p in (FM_PATCHES if self.engine == "fm" else SUBTRACTIVE_PATCHES) if role in p.roles]
        patch = patches[int(rng.integers(len(patches)))]
        return render_synth_part(part.notes, n_samples, patch, rng), {"program": None, "patch": patch.name}


@dataclass(frozen=True, kw_only=True)
class VoiceSource(SoundSource):
    """The singing voices of :mod:`.voice`; the part carries the voice drawn for it (``part.voice``)."""

    def available(self) -> bool:
        return True

    def render(self, part, n_samples, rng, *, style):
        from msr_lib.data.synth.voice import describe_voice, render_vocals

        audio = render_vocals(part.notes, n_samples, rng, part.voice)
        return audio, {"program": None, "patch": describe_voice(part.voice), "voice": part.voice}


SOUND_SOURCES: dict[str, SoundSource] = {s.name: s for s in (
    SoundFontSource(name="fluidr3_gm", kind="soundfont", package="fluid-soundfont-gm", stems=_ALL_GM_STEMS,
                    description="FluidR3_GM: sampled General-MIDI set (142 MB)",
                    files=("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")),
    SoundFontSource(name="musescore_general", kind="soundfont", package="musescore-general-soundfont-small",
                    stems=_ALL_GM_STEMS, description="MuseScore_General (Lite): sampled GM set, Ogg-compressed .sf3",
                    files=("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
                           "/usr/share/sounds/sf3/MuseScore_General.sf3"),
                    velocity_gaps={0: (73, 107), 1: (73, 107), 3: (73, 107)}),   # measured: the pianos' mid layer
    BundledSoundFontSource(name="timgm6mb", kind="soundfont", package=None, stems=_ALL_GM_STEMS,
                           description="TimGM6mb: small sampled GM set (pretty_midi's copy, built in)"),
    SoundFontSource(name="opl3_fm", kind="synth", package="opl3-soundfont",
                    stems=("bass", "keyboards", "synthesizers"),
                    description="OPL3 FM chip emulation with the GM program map",
                    files=("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2",)),
    KitSoundFontSource(name="avldrums", kind="drumkit", package="avldrums.lv2-soundfont", stems=("drums",),
                       description="avldrums: two multi-sampled acoustic kits (Black Pearl, Red Zeppelin)",
                       files=("/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2",
                              "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2")),
    HydrogenSource(name="hydrogen", kind="drumkit", package="hydrogen-drumkits", stems=("drums", "percussion"),
                   description="Hydrogen drum kits: recorded acoustic and electronic kits, hand percussion",
                   files=("/usr/share/hydrogen/data/drumkits",)),
    NumpySynthSource(name="msr_subtractive", kind="synth", package=None, stems=("bass", "synthesizers"),
                     description="msr_lib subtractive synthesizer: wavetable oscillators, resonant filter",
                     engine="subtractive"),
    NumpySynthSource(name="msr_fm", kind="synth", package=None, stems=("bass", "keyboards", "synthesizers"),
                     description="msr_lib two-operator FM synthesizer: bells, electric pianos, basses",
                     engine="fm"),
    VoiceSource(name="msr_voice", kind="voice", package=None, stems=("vocals",),
                description="msr_lib singing voices (msr_lib.data.synth.voice)"),
)}


def pinned_soundfont_source(path) -> SoundFontSource:
    """A source for one SoundFont file a caller pinned (``soundfont=`` / ``$MSR_SOUNDFONT``): it stands in for
    every sampled GM set drawn."""
    return SoundFontSource(name="soundfont_file", kind="soundfont", package=None, stems=_ALL_GM_STEMS,
                           description=f"the SoundFont {Path(path).name}", files=(str(path),))


def available_sources() -> list[str]:
    """Names of the sources this machine can render with, in registry order."""
    return [name for name, source in SOUND_SOURCES.items() if source.available()]


def source_pool(allowed=None) -> list[str]:
    """The sources songs draw from: the available ones (only those in ``allowed`` when given; the singing voice
    is always allowed), in registry order. Recorded in ``song.json``: the same seed gives the same song only
    from the same pool."""
    return [name for name, source in SOUND_SOURCES.items()
            if (allowed is None or name in allowed or source.kind == "voice") and source.available()]


def choose_sources(seed: int, stems, *, allowed=None) -> dict[str, str]:
    """The source of each stem of ``stems`` for a song seed, drawn from :func:`source_pool`. One draw per
    canonical stem, whatever is present, so a stem's draw does not move when another stem comes or goes."""
    pool = source_pool(allowed)
    draws = dict(zip(STEMS, np.random.default_rng([int(seed), CHOICE_STREAM]).random(len(STEMS))))
    chosen = {}
    for stem in STEMS:
        if stem not in stems:
            continue
        candidates = [name for name in pool if stem in SOUND_SOURCES[name].stems]
        if not candidates:
            raise MSRError(f"no sound source for the {stem} stem among {', '.join(pool) or 'none'}")
        chosen[stem] = candidates[int(draws[stem] * len(candidates))]
    return chosen


def require_sound_sources(names, *, install: bool) -> None:
    """Check that every named source can render; with ``install`` (and root and apt-get) install the missing
    Debian packages first. Otherwise one :class:`MSRError` line names each missing source and its package."""
    names = list(names)
    unknown = [n for n in names if n not in SOUND_SOURCES]
    if unknown:
        raise MSRError(f"unknown sound source {unknown[0]!r}; choose from {', '.join(SOUND_SOURCES)}")
    missing = [SOUND_SOURCES[n] for n in names if not SOUND_SOURCES[n].available()]
    packages = sorted({s.package for s in missing if s.package})
    if missing and packages and install and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *packages], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _hydrogen_kits.cache_clear()
        missing = [s for s in missing if not s.available()]
    if missing:
        needs = "; ".join(f"{s.name} needs the Debian package {s.package} (apt-get install {s.package})"
                          if s.package else f"{s.name} is not available" for s in missing)
        raise MSRError(f"sound source missing: {needs}")


def check_stems_covered(names) -> None:
    """A restricted list of sources must play every stem a song can have (the singing voice is always added)."""
    names = set(names) | {n for n, s in SOUND_SOURCES.items() if s.kind == "voice"}
    uncovered = [stem for stem in STEMS if not any(stem in SOUND_SOURCES[n].stems for n in names)]
    if uncovered:
        raise MSRError(f"no sound source among {', '.join(sorted(names))} plays {', '.join(uncovered)}; "
                       f"add a SoundFont set such as timgm6mb")


def render_with_source(name: str, notes_or_part, seconds: float, *, stem: str = "keyboards", program: int = 0,
                       seed: int = 0, style: str = "pop") -> np.ndarray:
    """Play a part, or a list of :class:`~msr_lib.data.synth.arrangement.Note` as ``stem`` with GM ``program``,
    on the source ``name`` for ``seconds``: ``(2, n)`` float32 at −1 dBFS peak (to hear one melody on every
    source)."""
    from msr_lib.data.synth.arrangement import Part
    from msr_lib.data.synth.voice import choose_voice

    require_sound_sources([name], install=False)
    part = notes_or_part
    if not isinstance(part, Part):
        is_drums = stem in ("drums", "percussion")
        part = Part(stem, None if stem == "vocals" else program, is_drums, "melody", list(notes_or_part))
    rng = np.random.default_rng([int(seed), RENDER_STREAM])
    if part.stem == "vocals" and not part.voice:
        part.voice = choose_voice(rng, high=True)
    audio, _ = SOUND_SOURCES[name].render(part, int(round(seconds * SAMPLE_RATE)), rng, style=style)
    peak = float(np.abs(audio).max())
    return (audio * (10 ** (-1 / 20) / peak) if peak > 0 else audio).astype(np.float32)
