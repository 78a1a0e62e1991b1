"""FluidSynth and a SoundFont (plugins.music.engine.soundfont / render), instruments and tracks
(plugins.music.engine.arrange) in exported MIDI files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from music_helpers import PHRASE_A
from sf2_helpers import harmonic_ratio, write_sine_sf2

from plugins.music.engine import soundfont as sf_mod
from plugins.music.engine.phrase import Phrase
from studio.errors import UserError


def _has_fluidsynth() -> bool:
    try:
        sf_mod.load_fluidsynth()
    except ImportError:
        return False
    return True


needs_fluidsynth = pytest.mark.skipif(not _has_fluidsynth(),
                                      reason="the FluidSynth library is not installed")


@pytest.fixture
def sine_sf2(tmp_path: Path) -> Path:
    return write_sine_sf2(tmp_path / "sine.sf2")


@pytest.fixture
def no_system_soundfont(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sf_mod, "SYSTEM_SOUNDFONTS", ())
    monkeypatch.delenv(sf_mod.ENV, raising=False)


@needs_fluidsynth
def test_render_job_uses_the_soundfont(tmp_path: Path, sine_sf2: Path, run_job) -> None:
    """With a SoundFont the render job plays it: stereo, and the pure sine of the test
    SoundFont (no overtones: every built-in voice has a strong second harmonic), and it says
    which synth played."""
    import soundfile as sf

    from plugins.music.engine.midi import write_midi

    mid = write_midi(Phrase(np.array([[69, 0, 32, 100]], np.int32), 32), tmp_path / "a.mid")
    rec = run_job("render", midi=str(mid), out=str(tmp_path / "sf.wav"), soundfont=str(sine_sf2))
    assert rec.state == "done", rec.error
    data, rate = sf.read(rec.result)
    assert rate == 44100 and data.ndim == 2 and data.shape[1] == 2
    assert harmonic_ratio(data[: rate], rate, 440.0) < 0.01
    rec = run_job("render", midi=str(mid), out=str(tmp_path / "builtin.wav"), synth="builtin")
    data, rate = sf.read(rec.result)
    assert data.ndim == 1 and harmonic_ratio(data[: rate], rate, 440.0) > 0.3


class _Ctx:
    """What the render job tells its context."""

    def __init__(self) -> None:
        self.said: list[str] = []
        self.previews: list[dict] = []

    def progress(self, *args: object) -> None:
        pass

    def log(self, text: str, *args: object) -> None:
        self.said.append(text)

    def preview(self, kind: str, payload: dict) -> None:
        self.previews.append(payload)


@needs_fluidsynth
def test_render_job_tells_which_synth_played(tmp_path: Path, sine_sf2: Path,
                                             no_system_soundfont: None) -> None:
    from plugins.music import jobs
    from plugins.music.engine.midi import write_midi
    from plugins.music.params import RenderParams

    mid = write_midi(Phrase(PHRASE_A, 32), tmp_path / "a.mid")
    ctx = _Ctx()
    jobs.render(ctx, RenderParams(midi=mid, out=tmp_path / "a.wav", soundfont=sine_sf2))
    assert ctx.said[-1].startswith("rendered with FluidSynth with sine.sf2: 6 notes")
    assert ctx.previews[-1]["synth"] == "FluidSynth"
    ctx = _Ctx()
    jobs.render(ctx, RenderParams(midi=mid, out=tmp_path / "b.wav"))
    assert ctx.said[-1].startswith("rendered with the built-in synth (no General MIDI "
                                   "SoundFont found): 6 notes")
    with pytest.raises(UserError, match="cannot render with a SoundFont"):
        jobs.render(_Ctx(), RenderParams(midi=mid, out=tmp_path / "c.wav", synth="soundfont"))


@needs_fluidsynth
def test_the_render_says_which_synth_played(tmp_path: Path, sine_sf2: Path,
                                           no_system_soundfont: None) -> None:
    from plugins.music.engine.render import render_strip

    phrases = [Phrase(PHRASE_A, 32, "melody", "a")]
    done = render_strip(phrases, 120.0, choice=sf_mod.choose("auto", sine_sf2))
    assert done.synth.uses_soundfont and done.describe() == "rendered with FluidSynth with sine.sf2"
    assert done.audio.shape[1] == 2 and done.bounds == [0, 4 * 44100]
    # nothing installed, nothing chosen: the built-in synth, and the reason
    fallback = sf_mod.choose("auto")
    assert not fallback.uses_soundfont
    done = render_strip(phrases, 120.0, choice=fallback)
    assert done.audio.ndim == 1
    assert "built-in synth (no General MIDI SoundFont found)" in done.describe()
    # asking for a SoundFont and not getting one is an error that says what to install
    with pytest.raises(UserError, match="fluid-soundfont-gm"):
        sf_mod.choose("soundfont")


def test_a_missing_library_falls_back_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                 sine_sf2: Path) -> None:
    def missing() -> None:
        raise ImportError("the FluidSynth library is not installed (Couldn't find it)")

    monkeypatch.setattr(sf_mod, "load_fluidsynth", missing)
    choice = sf_mod.choose("auto", sine_sf2)
    assert not choice.uses_soundfont and "FluidSynth library is not installed" in choice.note
    with pytest.raises(UserError, match="FluidSynth library"):
        sf_mod.choose("soundfont", sine_sf2)


def test_a_chosen_soundfont_must_be_one(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="was not found"):
        sf_mod.choose("auto", tmp_path / "gone.sf2")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="not a SoundFont"):
        sf_mod.choose("auto", tmp_path / "notes.txt")


def test_environment_can_turn_the_search_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sf_mod.ENV, "none")
    assert sf_mod.find_soundfont() is None


@needs_fluidsynth
def test_drums_play_on_channel_ten(sine_sf2: Path) -> None:
    """Parts get their own channels; the drum part is on channel 10 and plays the kit."""
    from plugins.music.engine.arrange import Instruments
    from plugins.music.engine.render import render_strip

    tracks = [sf_mod.Track(0, False, np.zeros((0, 4))), sf_mod.Track(40, False, np.zeros((0, 4))),
              sf_mod.Track(0, True, np.zeros((0, 4))), sf_mod.Track(40, False, np.zeros((0, 4)))]
    assert sf_mod.channels_for(tracks) == [0, 1, 9, 1]
    silent = Phrase(np.zeros((0, 4), np.int32), 32, "melody")
    done = render_strip([silent], 120.0, choice=sf_mod.SynthChoice(sine_sf2),
                        instruments=Instruments(drums=True))
    assert np.abs(done.audio).max() > 0.5  # only the beat sounds
    done = render_strip([silent], 120.0, choice=sf_mod.SynthChoice(None, ""),
                        instruments=Instruments(drums=True))
    assert "plays no drums" in done.describe()


@pytest.mark.skipif(not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file()
                    or not _has_fluidsynth(), reason="no system General MIDI SoundFont")
def test_the_installed_general_midi_soundfont_is_found_and_used(monkeypatch) -> None:
    """Where `make` installed fluid-soundfont-gm, a render with nothing chosen uses it."""
    from plugins.music.engine.render import render_strip

    monkeypatch.delenv(sf_mod.ENV, raising=False)
    choice = sf_mod.choose("auto")
    assert choice.soundfont is not None and choice.soundfont.name == "FluidR3_GM.sf2"
    done = render_strip([Phrase(PHRASE_A, 32, "melody")], 120.0, choice=choice)
    assert done.audio.ndim == 2 and np.abs(done.audio).max() > 0.5


# ----------------------------------------------------------------------------------------------
# Instruments and tracks in MIDI files
# ----------------------------------------------------------------------------------------------
def test_midi_files_carry_parts_programs_drums_tempo_and_metre(tmp_path: Path) -> None:
    """A piano-roll strip exports as a melody track (the top line), an accompaniment track and
    drums on channel 10, each with its program, under the tempo and time signatures."""
    import mido

    from plugins.music.engine.arrange import Instruments
    from plugins.music.engine.midi import write_midi

    chords = np.array([[72, 0, 8, 90], [60, 0, 8, 80], [64, 0, 8, 80], [74, 8, 16, 90],
                       [59, 8, 16, 80]], np.int32)
    waltz = np.array([[67, 0, 12, 90], [55, 0, 12, 70]], np.int32)
    strip = [Phrase(chords, 16, "pianoroll"), Phrase(waltz, 12, "pianoroll", metre="3/4")]
    path = write_midi(strip, tmp_path / "band.mid", tempo=96.0,
                      instruments=Instruments(melody=73, accompaniment=48, drums=True))
    mid = mido.MidiFile(str(path))
    msgs = [m for t in mid.tracks for m in t]
    tempos = [m.tempo for m in msgs if m.type == "set_tempo"]
    assert [round(mido.tempo2bpm(t), 3) for t in tempos] == [96.0]
    sigs = [(m.numerator, m.denominator) for m in msgs if m.type == "time_signature"]
    assert sigs == [(4, 4), (3, 4)]
    names, programs, channels = {}, {}, {}
    for t in mid.tracks:
        for m in t:
            if m.type == "track_name":
                name = m.name
            if m.type == "program_change":
                programs[name] = m.program
            if m.type == "note_on":
                channels.setdefault(name, set()).add(m.channel)
                names.setdefault(name, []).append(m.note) if m.velocity else None
    assert programs["Melody"] == 73 and programs["Accompaniment"] == 48
    assert channels["Drums"] == {9} and 9 not in channels["Melody"] | channels["Accompaniment"]
    assert sorted(names["Melody"]) == [67, 72, 74]  # the top line of each chord
    assert sorted(names["Accompaniment"]) == [55, 59, 60, 64]
    assert {36, 38, 42} <= set(names["Drums"])  # kick, snare, hat


def test_the_beat_follows_the_metre() -> None:
    from plugins.music.engine.arrange import beat
    from plugins.music.engine.metre import Metre

    four = beat(Metre(4, 4), 1)
    kicks = sorted(int(s) for p, s, _e, _v in four.tolist() if p == 36)
    snares = sorted(int(s) for p, s, _e, _v in four.tolist() if p == 38)
    assert kicks == [0, 8] and snares == [4, 12]
    six = beat(Metre(6, 8), 2)  # two dotted-quarter beats a bar: snare on the second
    assert sorted(int(s) for p, s, _e, _v in six.tolist() if p == 38) == [6, 18]


def test_program_names() -> None:
    from plugins.music.engine import gm

    assert len(gm.PROGRAMS) == 128 and gm.program_name(40) == "Violin"
    assert gm.program_index("flute") == 73 and gm.program_index("0") == 0
    with pytest.raises(ValueError, match="could be"):
        gm.program_index("grand piano")
