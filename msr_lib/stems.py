"""The stem taxonomy: one canonical order, used everywhere (docs/DESIGN.md).

Lesson: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

from msr_lib.errors import MSRError

#: Canonical order: the 8 instrument classes of the MSR challenge, then the auxiliary ``other``.
STEMS: tuple[str, ...] = (
    "vocals", "bass", "drums", "guitars", "keyboards", "synthesizers", "percussion", "orchestral", "other",
)
#: The 8 instrument classes (everything but ``other``).
INSTRUMENT_STEMS: tuple[str, ...] = STEMS[:8]
#: The MUSDB-style 4-stem set.
FOUR_STEMS: tuple[str, ...] = ("vocals", "bass", "drums", "other")

#: RawStems group prefixes → canonical stems (anything not listed → ``other``).
RAWSTEMS_GROUPS: dict[str, str] = {
    "Voc": "vocals", "Gtr": "guitars", "Kbs": "keyboards", "Synth": "synthesizers", "Bass": "bass",
    "Rhy_DK": "drums", "Rhy_PERC": "percussion", "Orch": "orchestral",
}
#: First tokens of RawStems group names (``Voc_LV`` → ``Voc``), including the groups that map to ``other``.
RAWSTEMS_PREFIXES: frozenset[str] = frozenset({p.split("_")[0] for p in RAWSTEMS_GROUPS} | {"Rhy", "Misc"})

#: Common spellings in other datasets and file names → canonical stems.
ALIASES: dict[str, str] = {
    "vocal": "vocals", "voice": "vocals", "vox": "vocals", "voc": "vocals", "lead_vocals": "vocals",
    "guitar": "guitars", "gtr": "guitars",
    "keyboard": "keyboards", "keys": "keyboards", "piano": "keyboards", "other_keys": "keyboards",
    "synth": "synthesizers", "synthesizer": "synthesizers", "synths": "synthesizers",
    "drum": "drums", "kit": "drums",
    "perc": "percussion",
    "orchestra": "orchestral", "strings": "orchestral", "bowed_strings": "orchestral", "wind": "orchestral",
    "brass": "orchestral",
}


def canonical_stem(name: str, *, strict: bool = True) -> str:
    """Map a stem name or common alias (case-insensitive) to its canonical name.

    With ``strict=False`` unknown names map to ``"other"``; otherwise they raise :class:`MSRError`.
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in STEMS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    if strict:
        raise MSRError(f"unknown stem name {name!r}; expected one of {', '.join(STEMS)}")
    return "other"


def rawstems_group_to_stem(group: str) -> str:
    """Map a RawStems group name such as ``Rhy_DK`` or ``Voc_LV`` to a canonical stem.

    The most specific prefix wins (``Rhy_DK`` before ``Rhy``); unknown groups (``Misc``, bare ``Rhy``) → ``other``.
    """
    for prefix in sorted(RAWSTEMS_GROUPS, key=len, reverse=True):
        if group == prefix or group.startswith(prefix + "_"):
            return RAWSTEMS_GROUPS[prefix]
    return "other"


def known_stem(name: str) -> str | None:
    """The canonical stem for a stem name, an alias (``piano``) or a RawStems group name (``Voc_LV``); ``None`` for
    any other name."""
    try:
        return canonical_stem(name)
    except MSRError:
        pass
    if name.split("_")[0] in RAWSTEMS_PREFIXES:
        return rawstems_group_to_stem(name)
    return None


def sort_stems(names) -> list[str]:
    """Sort canonical stem names into the canonical order."""
    return sorted(names, key=STEMS.index)
