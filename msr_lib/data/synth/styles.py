"""Groove styles: tempo range, meter, step patterns per instrument, GM programs and how often each stem plays.

Patterns are strings with one character per step of a bar (16th notes; a 3/4 bar has 12 steps):
``X`` accent, ``x`` normal hit, ``g`` ghost note, ``o`` open hi-hat, ``.`` rest. Bass patterns use ``R`` root,
``F`` fifth, ``O`` octave, ``A`` approach note to the next chord, ``-`` hold the previous note, ``.`` rest.
Comping patterns use ``x`` for a chord hit and ``-`` to hold it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: General-MIDI drum-map notes of the drum *kit* (channel 10).
KIT_NOTES = {
    "kick": 36, "sidestick": 37, "snare": 38, "clap": 39, "low_tom": 45, "mid_tom": 48, "high_tom": 50,
    "floor_tom": 41, "closed_hat": 42, "pedal_hat": 44, "open_hat": 46, "crash": 49, "ride": 51, "ride_bell": 53,
}
#: General-MIDI drum-map notes of *hand percussion* (distinct from the kit notes).
PERCUSSION_NOTES = {
    "tambourine": 54, "cowbell": 56, "high_bongo": 60, "low_bongo": 61, "mute_conga": 62, "open_conga": 63,
    "low_conga": 64, "high_timbale": 65, "low_timbale": 66, "high_agogo": 67, "low_agogo": 68, "cabasa": 69,
    "maracas": 70, "short_guiro": 73, "long_guiro": 74, "claves": 75, "high_woodblock": 76, "low_woodblock": 77,
    "mute_triangle": 80, "open_triangle": 81, "shaker": 82,
}

#: GM program families allowed per stem (0-based program numbers).
PROGRAM_FAMILIES: dict[str, tuple[int, ...]] = {
    "bass": tuple(range(32, 40)),
    "guitars": tuple(range(24, 32)),
    "keyboards": tuple(range(0, 8)) + tuple(range(16, 21)),
    "synthesizers": tuple(range(80, 96)),
    "orchestral": tuple(range(40, 50)) + tuple(range(56, 61)) + tuple(range(68, 76)),
}
SYNTH_LEADS = tuple(range(80, 88))
SYNTH_PADS = tuple(range(88, 96))
ORCHESTRAL_PADS = (48, 49, 44, 42, 60)       # string ensembles, tremolo strings, cello, french horn
ORCHESTRAL_LINES = (40, 41, 42, 56, 57, 60, 68, 70, 71, 73)   # violin … flute: solo lines


@dataclass(frozen=True)
class Style:
    """One groove: everything the arranger needs to know to play in it."""

    name: str
    tempo: tuple[int, int]
    beats_per_bar: int
    kick: tuple[str, ...]
    snare: tuple[str, ...]
    hats: tuple[str, ...]
    bass: tuple[str, ...]
    comp: tuple[str, ...]
    percussion: dict = field(default_factory=dict)
    swing: float = 0.0                 # delay of every second 8th note, as a fraction of a 16th
    modes: tuple[str, ...] = ("major", "minor")
    programs: dict = field(default_factory=dict)   # stem → preferred GM programs
    presence: dict = field(default_factory=dict)   # stem → probability the stem plays in a song
    guitar_mode: tuple[str, ...] = ("strum", "arpeggio")
    snare_note: str = "snare"

    @property
    def steps_per_bar(self) -> int:
        return 4 * self.beats_per_bar


_DEFAULT_PRESENCE = {"vocals": 0.85, "bass": 0.95, "drums": 0.9, "guitars": 0.6, "keyboards": 0.65,
                     "synthesizers": 0.45, "percussion": 0.45, "orchestral": 0.4}


def _presence(**changes) -> dict:
    return {**_DEFAULT_PRESENCE, **changes}


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("pop", (92, 126), 4,
          kick=("x.......x.x.....", "x.....x...x....."), snare=("....X.......X...",),
          hats=("x.x.x.x.x.x.x.x.", "x.xxx.x.x.xxx.x."),
          bass=("R-.R..R-R-.R..A.", "R-R-R-R-F-F-R-R-"), comp=("x-.x-.x-x-.x-.x-", "x---x---x---x-x-"),
          percussion={"tambourine": "....x.......x...", "shaker": "xxxxxxxxxxxxxxxx"},
          programs={"bass": (33, 34, 38), "guitars": (25, 27, 24), "keyboards": (0, 1, 4, 5), "synthesizers": (81, 88, 89, 90),
                    "orchestral": (48, 49, 40, 73)}),
    Style("rock", (100, 150), 4,
          kick=("x.....x.x.......", "x.x...x.x.x....."), snare=("....X.......X...",),
          hats=("x.x.x.x.x.x.x.x.",),
          bass=("R-R-R-R-R-R-R-R-", "R-R-R-R-F-F-O-A-"), comp=("x-x-x-x-x-x-x-x-", "x-----x-x-----x-"),
          percussion={"tambourine": "..x...x...x...x.", "cowbell": "x...x...x...x..."},
          modes=("major", "minor", "mixolydian"), guitar_mode=("power", "strum"),
          programs={"bass": (33, 34), "guitars": (29, 30, 27), "keyboards": (16, 17, 18, 0), "synthesizers": (81, 84, 87),
                    "orchestral": (48, 60, 56)},
          presence=_presence(guitars=0.95, synthesizers=0.25, orchestral=0.2)),
    Style("funk", (90, 116), 4,
          kick=("x..x..x...x..x..", "x.x...x..x..x..."), snare=("....X..g.g..X..g", "....X.g.....X.g."),
          hats=("xgxgxgxgxgxgxgxg",),
          bass=("R..RO.R..F.R.AR.", "R.R..RF.O..R.R.A"), comp=(".x.x.x.x.x.x.x.x", "..x-..x...x-..x."),
          percussion={"mute_conga": "..x...x...x.x...", "cowbell": "x...x...x...x...", "shaker": "xxxxxxxxxxxxxxxx"},
          modes=("dorian", "mixolydian", "minor"), guitar_mode=("chop",),
          programs={"bass": (36, 37, 33, 38), "guitars": (27, 28, 26), "keyboards": (7, 4, 16), "synthesizers": (80, 81, 87),
                    "orchestral": (56, 57, 60)},
          presence=_presence(guitars=0.8, keyboards=0.75, percussion=0.55)),
    Style("ballad", (66, 86), 4,
          kick=("x.......x.......", "x.......x.x....."), snare=("........X.......",),
          hats=("x.x.x.x.x.x.x.x.", "x...x...x...x..."),
          bass=("R-------F-------", "R-----------A---"), comp=("x---------------", "x-------x-------"),
          percussion={"open_triangle": "x...............", "shaker": "..x...x...x...x."},
          guitar_mode=("arpeggio",),
          programs={"bass": (32, 33, 35), "guitars": (24, 25), "keyboards": (0, 1, 4, 19), "synthesizers": (88, 89, 91, 94),
                    "orchestral": (48, 49, 42, 40, 60, 73)},
          presence=_presence(drums=0.7, orchestral=0.65, percussion=0.25, keyboards=0.8)),
    Style("electronic", (118, 132), 4,
          kick=("x...x...x...x...",), snare=("....x.......x...",),
          hats=("..o...o...o...o.", "x.o.x.o.x.o.x.o."),
          bass=("..R...R...R...R.", "R.RRR.RRR.RRR.RO"), comp=("x-.x-.x-.x-.x-.x", "x---------------"),
          percussion={"shaker": "xxxxxxxxxxxxxxxx", "claves": "x..x..x...x.x..."},
          modes=("minor", "major", "dorian"), guitar_mode=("arpeggio",), snare_note="clap",
          programs={"bass": (38, 39), "guitars": (27,), "keyboards": (4, 5), "synthesizers": (80, 81, 87, 88, 89, 90, 95),
                    "orchestral": (48, 49)},
          presence=_presence(synthesizers=0.97, guitars=0.2, keyboards=0.4, orchestral=0.2)),
    Style("bossa", (120, 146), 4,
          kick=("x..xx..xx..xx..x",), snare=("x..x..x...x..x..",),
          hats=("x.x.x.x.x.x.x.x.",),
          bass=("R..F-.R.R..F-.R.",), comp=("x..x..x...x..x..", "x-.x-.x...x-.x.."),
          percussion={"shaker": "xxxxxxxxxxxxxxxx", "low_conga": "......x.......x.", "open_conga": "..x-...x..x....x",
                      "claves": "x..x..x...x.x...", "cabasa": "x.x.x.x.x.x.x.x."},
          modes=("major", "minor", "dorian"), guitar_mode=("arpeggio", "strum"), snare_note="sidestick",
          programs={"bass": (32, 33, 35), "guitars": (24,), "keyboards": (0, 4, 2), "synthesizers": (88, 89),
                    "orchestral": (73, 71, 48, 56)},
          presence=_presence(percussion=0.85, guitars=0.8, synthesizers=0.2)),
    Style("waltz", (84, 150), 3,
          kick=("x...........",), snare=("....x...x...",), hats=("x...x...x...", "x.x.x.x.x.x."),
          bass=("R-..F-..F-..", "R-------F-.."), comp=("....x-..x-..", "x-..x-..x-.."),
          percussion={"tambourine": "x...x...x...", "open_triangle": "x..........."},
          guitar_mode=("arpeggio", "strum"),
          programs={"bass": (32, 33), "guitars": (24, 25), "keyboards": (0, 1, 20, 6), "synthesizers": (88, 89),
                    "orchestral": (48, 40, 45, 71, 73)},
          presence=_presence(orchestral=0.7, drums=0.75)),
    Style("shuffle", (80, 120), 4,
          kick=("x.....x.x.......", "x.......x.....x."), snare=("....X.......X...",),
          hats=("x.xxx.xxx.xxx.xx", "x.x.x.x.x.x.x.x."),
          bass=("R-F-O-F-R-F-O-A-", "R-R-F-F-O-O-F-F-"), comp=("..x-..x-..x-..x-", "x-.xx-.xx-.xx-.x"),
          percussion={"tambourine": "....x.......x...", "cowbell": "x...x...x...x..."},
          swing=0.66, modes=("mixolydian", "major", "minor"), guitar_mode=("strum", "chop"),
          programs={"bass": (33, 32, 34), "guitars": (26, 27, 29), "keyboards": (16, 17, 0, 4), "synthesizers": (81, 82),
                    "orchestral": (56, 57, 60, 71)},
          presence=_presence(synthesizers=0.25)),
)}
