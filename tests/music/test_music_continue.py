"""Continue: new bars after a clip, conditioned on it (plugins.music.engine.continuation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from music_helpers import PHRASE_A, PHRASE_B

from plugins.music.engine.phrase import Phrase


def _bar(notes: np.ndarray, first: int, steps: int = 16) -> np.ndarray:
    """Notes starting in ``[first, first + steps)``, shifted to start at 0."""
    sel = (notes[:, 1] >= first) & (notes[:, 1] < first + steps)
    out = notes[sel].copy()
    out[:, 1:3] -= first
    return out


@pytest.mark.parametrize("phrase", [PHRASE_A, PHRASE_B], ids=["A", "B"])
def test_continuation_follows_the_clip(memorised_model: Path, phrase: np.ndarray) -> None:
    """A model that knows two phrases, given the first bar of one, goes on with that one's
    second bar (not the other's): the clip conditions what follows."""
    from plugins.music.engine.continuation import continue_phrase
    from plugins.music.engine.generate import load_model

    lm = load_model(memorised_model)
    clip = Phrase(_bar(phrase, 0), 16, "melody", "clip")
    out = continue_phrase(lm, clip, bars=1, n=3, temperature=0.0, seed=3)
    want = _bar(phrase, 16)
    assert len(out) == 3
    for ph in out:
        assert ph.steps == 16 and ph.label.startswith("continuation")
        # the same notes at the same onsets (a release may differ by a 16th)
        np.testing.assert_array_equal(ph.notes[:, :2], want[:, :2])


def test_continue_job_from_a_midi_file(memorised_model: Path, tmp_path: Path, run_job) -> None:
    """``studio run music continue --clip FILE``: the clip read at the model's phrase length,
    one file per continuation (only the new bars) plus the strip, each stamped, in the
    instruments asked for."""
    import pretty_midi

    from plugins.common import provenance
    from plugins.music.engine.midi import write_midi

    clip = write_midi(Phrase(PHRASE_A, 32, "melody"), tmp_path / "clip.mid", 110.0)
    rec = run_job("continue", model=str(memorised_model), clip=str(clip), bars=2, n=2,
                  temperature=0.5, melody_program=40, out=str(tmp_path / "out"))
    assert rec.state == "done", rec.error
    files = sorted((tmp_path / "out").glob("continuation_*.mid"))
    assert [f.name for f in files] == ["continuation_01.mid", "continuation_02.mid",
                                       "continuation_all.mid"]
    pm = pretty_midi.PrettyMIDI(str(files[0]))
    assert [i.program for i in pm.instruments] == [40]
    assert pm.get_end_time() <= 2 * 4 * 60 / 110 + 1e-6  # two bars at the model's tempo
    prov = provenance.read(files[0])
    assert prov is not None and prov.job == "continue" and prov.seed == 1


def test_continue_refuses_a_clip_in_another_metre(memorised_model: Path) -> None:
    from plugins.music.engine.continuation import continue_phrase
    from plugins.music.engine.generate import load_model
    from studio.errors import UserError

    lm = load_model(memorised_model)
    with pytest.raises(UserError, match="6/8"):
        continue_phrase(lm, Phrase(PHRASE_A[:2], 24, "melody", metre="6/8"), n=1)
    with pytest.raises(UserError, match="no notes"):
        continue_phrase(lm, Phrase(np.zeros((0, 4), np.int32), 16, "melody"), n=1)


def test_piano_roll_continuation(melody_folder: Path, tmp_path: Path, run_job) -> None:
    """A piano-roll model continues a clip too; its files hold the top line and the rest as
    two tracks (melody and accompaniment)."""
    import pretty_midi

    rec = run_job("train", data=str(melody_folder), mode="pianoroll", steps=4, preset="tiny",
                  out=str(tmp_path / "run"))
    assert rec.state == "done", rec.error
    song = melody_folder / "song_0.mid"  # it has a bass line
    rec = run_job("continue", model=str(tmp_path / "run"), clip=str(song), bars=3, n=2,
                  temperature=0.0, candidates=16, out=str(tmp_path / "out"))
    assert rec.state == "done", rec.error
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "out" / "continuation_all.mid"))
    assert [i.name for i in pm.instruments] == ["Melody", "Accompaniment"]
    # the strip file: two continuations of three 4/4 bars at 120 bpm (the data's tempo)
    assert pm.time_signature_changes[0].numerator == 4
