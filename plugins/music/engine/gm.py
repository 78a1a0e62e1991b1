"""General MIDI: the 128 program names and the drum channel. No torch, no Qt, no imports.

Light on purpose: the job params, the panel's instrument pickers and the engine all read it.
Programs are numbered from 0 here (as in MIDI bytes and pretty_midi); menus show them from 1,
as synthesisers and DAWs do.
"""

from __future__ import annotations

#: the General MIDI level 1 instrument names, by program number (0-127)
PROGRAMS: tuple[str, ...] = (
    'Acoustic Grand Piano', 'Bright Acoustic Piano', 'Electric Grand Piano', 'Honky-tonk Piano',
    'Electric Piano 1', 'Electric Piano 2', 'Harpsichord', 'Clavinet', 'Celesta', 'Glockenspiel',
    'Music Box', 'Vibraphone', 'Marimba', 'Xylophone', 'Tubular Bells', 'Dulcimer',
    'Drawbar Organ', 'Percussive Organ', 'Rock Organ', 'Church Organ', 'Reed Organ', 'Accordion',
    'Harmonica', 'Tango Accordion', 'Acoustic Guitar (nylon)', 'Acoustic Guitar (steel)',
    'Electric Guitar (jazz)', 'Electric Guitar (clean)', 'Electric Guitar (muted)',
    'Overdriven Guitar', 'Distortion Guitar', 'Guitar Harmonics', 'Acoustic Bass',
    'Electric Bass (finger)', 'Electric Bass (pick)', 'Fretless Bass', 'Slap Bass 1',
    'Slap Bass 2', 'Synth Bass 1', 'Synth Bass 2', 'Violin', 'Viola', 'Cello', 'Contrabass',
    'Tremolo Strings', 'Pizzicato Strings', 'Orchestral Harp', 'Timpani', 'String Ensemble 1',
    'String Ensemble 2', 'Synth Strings 1', 'Synth Strings 2', 'Choir Aahs', 'Voice Oohs',
    'Synth Choir', 'Orchestra Hit', 'Trumpet', 'Trombone', 'Tuba', 'Muted Trumpet', 'French Horn',
    'Brass Section', 'Synth Brass 1', 'Synth Brass 2', 'Soprano Sax', 'Alto Sax', 'Tenor Sax',
    'Baritone Sax', 'Oboe', 'English Horn', 'Bassoon', 'Clarinet', 'Piccolo', 'Flute', 'Recorder',
    'Pan Flute', 'Blown Bottle', 'Shakuhachi', 'Whistle', 'Ocarina', 'Lead 1 (square)',
    'Lead 2 (sawtooth)', 'Lead 3 (calliope)', 'Lead 4 (chiff)', 'Lead 5 (charang)',
    'Lead 6 (voice)', 'Lead 7 (fifths)', 'Lead 8 (bass + lead)', 'Pad 1 (new age)',
    'Pad 2 (warm)', 'Pad 3 (polysynth)', 'Pad 4 (choir)', 'Pad 5 (bowed)', 'Pad 6 (metallic)',
    'Pad 7 (halo)', 'Pad 8 (sweep)', 'FX 1 (rain)', 'FX 2 (soundtrack)', 'FX 3 (crystal)',
    'FX 4 (atmosphere)', 'FX 5 (brightness)', 'FX 6 (goblins)', 'FX 7 (echoes)', 'FX 8 (sci-fi)',
    'Sitar', 'Banjo', 'Shamisen', 'Koto', 'Kalimba', 'Bagpipe', 'Fiddle', 'Shanai', 'Tinkle Bell',
    'Agogo', 'Steel Drums', 'Woodblock', 'Taiko Drum', 'Melodic Tom', 'Synth Drum',
    'Reverse Cymbal', 'Guitar Fret Noise', 'Breath Noise', 'Seashore', 'Bird Tweet',
    'Telephone Ring', 'Helicopter', 'Applause', 'Gunshot',
)
DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0: General MIDI's percussion channel
PIANO, STRINGS, BASS = 0, 48, 32
#: General MIDI percussion keys the beat part plays
KICK, SNARE, CLOSED_HAT, CRASH = 36, 38, 42, 49


def program_name(program: int) -> str:
    """ "Acoustic Grand Piano" for 0; a number out of range says so rather than raising."""
    return PROGRAMS[program] if 0 <= program < len(PROGRAMS) else f"program {program}"


def program_index(text: str | int) -> int:
    """A program from its number (0-127) or its name (any case, a unique part of it:
    "violin", "grand piano"). Raises ValueError listing close names."""
    if isinstance(text, int) or str(text).strip().isdigit():
        n = int(text)
        if not 0 <= n < len(PROGRAMS):
            raise ValueError(f"a General MIDI program is 0 to 127, not {n}")
        return n
    low = str(text).strip().lower()
    exact = [i for i, name in enumerate(PROGRAMS) if name.lower() == low]
    if exact:
        return exact[0]
    hits = [i for i, name in enumerate(PROGRAMS) if low and low in name.lower()]
    if len(hits) == 1:
        return hits[0]
    if hits:
        names = ", ".join(PROGRAMS[i] for i in hits[:6])
        raise ValueError(f"{text!r} could be {names}: say which")
    raise ValueError(f"{text!r} is not a General MIDI instrument (try piano, violin, flute, "
                     "or a number 0-127)")
