"""Offline multitrack song generator: procedural or corpus arrangements, one dry render per stem, exact clean mix.

- :func:`render_song` — one song in memory (a :class:`Song`: stems, clean mix, facts), for notebooks;
- :func:`synthesize_songs` — many songs on disk (``<out>/<song_id>/<stem>.flac``, ``clean_mix.flac``,
  ``song.json``);
- :data:`SOUND_SOURCES` — where each stem's sounds come from (SoundFont sets, drum kits, synthesizers, voices),
  :func:`choose_sources`, :func:`require_sound_sources`, :func:`render_with_source`;
- :func:`find_soundfont` — the best installed General-MIDI SoundFont (``soundfont=`` pins one for every
  sampled GM set).

Modules: :mod:`.theory` (keys, chords) · :mod:`.styles` (grooves) · :mod:`.arrangement` (procedural composition) ·
:mod:`.corpus` (music21 pieces) · :mod:`.voice` (singing voices) · :mod:`.sounds` (the sound-source registry) ·
:mod:`.render` (SoundFont rendering) · :mod:`.drumkit` (Hydrogen kit sampler) · :mod:`.synthesizer` (subtractive
and FM voices) · :mod:`.song` (levels, normalisation, exact clean mix) · :mod:`.batch` (folders on disk, parallel).

Lessons: notebooks/00_welcome.ipynb, notebooks/01_data_and_mastering.ipynb
"""
from msr_lib.data.synth.batch import song_id, song_seed, synthesize_songs
from msr_lib.data.synth.render import find_soundfont
from msr_lib.data.synth.song import SOURCES, Song, render_song, summarize_song
from msr_lib.data.synth.sounds import (SOUND_SOURCES, available_sources, choose_sources, render_with_source,
                                       require_sound_sources)

__all__ = ["synthesize_songs", "render_song", "find_soundfont", "Song", "SOURCES", "song_id", "song_seed",
           "summarize_song", "SOUND_SOURCES", "available_sources", "choose_sources", "require_sound_sources",
           "render_with_source"]
