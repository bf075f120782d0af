"""Offline multitrack song generator: procedural or corpus arrangements, one dry render per stem, exact clean mix.

- :func:`render_song` — one song in memory (a :class:`Song`: stems, clean mix, facts), for notebooks;
- :func:`synthesize_songs` — many songs on disk (``<out>/<song_id>/<stem>.flac``, ``clean_mix.flac``,
  ``song.json``);
- :func:`find_soundfont` — the General-MIDI SoundFont used for every instrument but the vocals.

Modules: :mod:`.theory` (keys, chords) · :mod:`.styles` (grooves) · :mod:`.arrangement` (procedural composition) ·
:mod:`.corpus` (music21 pieces) · :mod:`.voice` (formant singing voice) · :mod:`.render` (SoundFont rendering) ·
:mod:`.song` (levels, normalisation, exact clean mix) · :mod:`.batch` (folders on disk, parallel).

Lessons: notebooks/00_welcome.ipynb, notebooks/01_data_and_mastering.ipynb
"""
from msr_lib.data.synth.batch import song_id, song_seed, synthesize_songs
from msr_lib.data.synth.render import find_soundfont
from msr_lib.data.synth.song import SOURCES, Song, render_song, summarize_song

__all__ = ["synthesize_songs", "render_song", "find_soundfont", "Song", "SOURCES", "song_id", "song_seed", "summarize_song"]
