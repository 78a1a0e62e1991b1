"""MIDI in and out, phrases, melody extraction, keys and the built-in chorales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from music_helpers import write_song

from plugins.music.engine import midi as midi_mod
from plugins.music.engine.data import load_midi_folder
from plugins.music.engine.phrase import (
    FIRST_PITCH_TOKEN,
    HOLD,
    REST,
    Phrase,
    canonical_tokens,
    notes_to_roll,
    notes_to_tokens,
    roll_to_notes,
    tokens_to_notes,
)
from studio.errors import UserError


def random_tokens(rng: np.random.Generator, steps: int = 32) -> np.ndarray:
    """A random valid melody: onsets, holds and rests, repeated pitches included."""
    toks = np.zeros(steps, dtype=np.int64)
    sounding = False
    for i in range(steps):
        r = rng.random()
        if r < 0.3 or (i and r < 0.4 and toks[i - 1] >= FIRST_PITCH_TOKEN):
            toks[i] = FIRST_PITCH_TOKEN + rng.integers(30, 60)
            sounding = True
        elif r < 0.85 and sounding:
            toks[i] = HOLD
        else:
            toks[i] = REST
            sounding = False
    return toks


def test_phrase_midi_round_trip_is_identity(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(25):
        tokens = random_tokens(rng)
        phrase = Phrase(tokens_to_notes(tokens), 32, label=f"p{i}")
        path = midi_mod.write_midi(phrase, tmp_path / f"p{i}.mid", tempo=97.0)
        piece = midi_mod.read_midi(path)
        back = midi_mod.melody_tokens(piece, 2)[0]
        assert np.array_equal(back, canonical_tokens(tokens)), (tokens, back)


def test_strip_round_trip_and_tempo(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    toks = [random_tokens(rng) for _ in range(3)]
    phrases = [Phrase(tokens_to_notes(t), 32) for t in toks]
    path = midi_mod.write_midi(phrases, tmp_path / "strip.mid", tempo=150.0)
    piece = midi_mod.read_midi(path)
    assert piece.tempo == pytest.approx(150.0)
    got = midi_mod.melody_tokens(piece, 2, hop_bars=2)
    assert [g.tolist() for g in got] == [canonical_tokens(t).tolist() for t in toks]


def test_pianoroll_round_trip(tmp_path: Path) -> None:
    notes = np.array([[60, 0, 8, 90], [64, 0, 8, 90], [67, 4, 6, 90], [67, 6, 8, 90],
                      [48, 8, 32, 90]], dtype=np.int32)
    roll = notes_to_roll(notes, 32)
    assert roll.shape == (2, 96, 32)
    back = roll_to_notes(roll)
    key = np.lexsort((notes[:, 0], notes[:, 1]))
    assert np.array_equal(back[:, :3], notes[key][:, :3])
    path = midi_mod.write_midi(Phrase(notes, 32, "pianoroll"), tmp_path / "chords.mid")
    windows = midi_mod.pianoroll_windows(midi_mod.read_midi(path), 2)
    assert np.array_equal(windows[0][:, :3], notes[key][:, :3])


def test_window_restrikes_a_held_note() -> None:
    notes = np.array([[60, 0, 20, 90], [62, 20, 24, 90]], dtype=np.int32)
    toks = notes_to_tokens(midi_mod.window(notes, 16, 16), 16)
    assert toks[0] == FIRST_PITCH_TOKEN + 60 - 21 and toks[1:4].tolist() == [HOLD] * 3
    assert toks[4] == FIRST_PITCH_TOKEN + 62 - 21 and toks[8] == REST


def test_melody_choice(tmp_path: Path) -> None:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    low = pretty_midi.Instrument(0, name="Strings")
    lead = pretty_midi.Instrument(0, name="Lead voice")
    for i in range(8):
        low.notes.append(pretty_midi.Note(80, 72, i * 0.5, i * 0.5 + 0.5))  # higher than lead
        lead.notes.append(pretty_midi.Note(80, 60 + i, i * 0.5, i * 0.5 + 0.5))
    pm.instruments += [low, lead]
    pm.write(str(tmp_path / "two.mid"))
    piece = midi_mod.read_midi(tmp_path / "two.mid")
    assert piece.melody_notes("auto")[0, 0] == 60  # the track named like a melody
    assert set(piece.melody_notes("highest")[:, 0]) >= {72}
    assert notes_to_tokens(piece.melody_notes("highest"), 16)[0] == FIRST_PITCH_TOKEN + 72 - 21
    assert piece.melody_notes("0")[0, 0] == 72
    assert piece.melody_notes("strings")[0, 0] == 72
    with pytest.raises(midi_mod.MidiError, match=r"no track named 'violin'.*Lead voice"):
        piece.melody_notes("violin")


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    write_song(tmp_path / "good.mid", 1)
    write_song(tmp_path / "sub" / "also_good.midi", 2, tracks=2, drums=True)
    write_song(tmp_path / "waltz.mid", 3, numerator=3)
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage-not-midi" * 3)
    (tmp_path / "notes.txt").write_text("not music")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    ps = load_midi_folder(tmp_path, bars=2)
    reasons = {r.path.name: r.reason for r in ps.reports}
    assert set(reasons) == {"good.mid", "also_good.midi", "waltz.mid", "empty.mid",
                            "corrupt.mid"}
    assert reasons["good.mid"] == "" and reasons["also_good.midi"] == ""
    assert "empty" in reasons["empty.mid"]
    assert "not a readable MIDI file" in reasons["corrupt.mid"]
    assert "3/4" in reasons["waltz.mid"]
    assert len(ps) == 6 and ps.data.shape == (6, 32)  # 3 windows per 4-bar song
    report = ps.report()
    assert "corrupt.mid" in report and "3 file(s) skipped" in report
    assert before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}  # nothing touched


def test_folders_without_usable_midi_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no MIDI files"):
        load_midi_folder(tmp_path)
    (tmp_path / "bad.mid").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match=r"none of the 1 MIDI files.*bad\.mid"):
        load_midi_folder(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_midi_folder(tmp_path / "missing")


def test_held_out_split_is_by_file_and_fixed(melody_folder: Path) -> None:
    ps = load_midi_folder(melody_folder, bars=2)
    train, held = ps.split(0.25, seed=0)
    assert len(train) + len(held) == len(ps)
    assert not set(train.file_index.tolist()) & set(held.file_index.tolist())
    assert len(set(held.file_index.tolist())) == 2
    again = load_midi_folder(melody_folder, bars=2).split(0.25, seed=0)[1]
    assert np.array_equal(again.data, held.data)


def test_keys_normalise_and_back() -> None:
    import torch

    from plugins.music.engine import keys

    rng = np.random.default_rng(3)
    toks = torch.from_numpy(np.stack([random_tokens(rng) for _ in range(64)]))
    norm, k = keys.normalise(toks)
    assert torch.equal(keys.denormalise(norm, k), toks)
    g_major = notes_to_tokens(np.array([[67 + s, i * 2, i * 2 + 2, 90] for i, s in
                                        enumerate([0, 2, 4, 5, 7, 9, 11, 12])]), 16)
    est = keys.estimate_keys(torch.from_numpy(g_major)[None])
    assert keys.KEY_NAMES[int(est[0])] == "G"
    n, _ = keys.normalise(torch.from_numpy(g_major)[None])
    assert int(n[0, 0]) - FIRST_PITCH_TOKEN + 21 == 67 + 5  # G4 -> C5: the nearer way
    assert keys.key_index("f# minor") == keys.KEY_NAMES.index("F#m")
    assert keys.key_index("Db") == keys.KEY_NAMES.index("C#")
    with pytest.raises(ValueError, match="unknown key"):
        keys.key_index("H")


def test_builtin_bach_chorales(tmp_path: Path) -> None:
    from plugins.music.engine import bach

    root = bach.builtin_bach(tmp_path, limit=3)
    files = sorted(root.glob("*.mid"))
    assert len(files) == 3 and (root / ".complete").exists()
    stamp = files[0].stat().st_mtime_ns
    assert bach.builtin_bach(tmp_path, limit=3) == root
    assert files[0].stat().st_mtime_ns == stamp  # written once
    piece = midi_mod.read_midi(files[1])  # bwv347: 4/4 with a pickup
    assert [t.name for t in piece.tracks][:4] == ["Soprano", "Alto", "Tenor", "Bass"]
    from music21 import corpus

    score = corpus.parse(bach.chorale_names(3)[1])
    soprano = [p.midi for n in score.parts[0].stripTies().flatten().notes for p in n.pitches]
    assert piece.melody_notes("auto")[:, 0].tolist() == soprano
    starts = piece.melody_notes("auto")[:, 1]
    assert starts[0] % 16 == 12  # the one-beat pickup ends on a bar line
    assert not list(tmp_path.glob("datasets/.bach*"))  # no temporary folder left behind


def test_the_chorales_are_shipped_ready_to_use(tmp_path: Path) -> None:
    """Issue 17: a fresh workspace spent 75 s to 2.5 minutes parsing 371 scores before the
    first step. The studio ships them as MIDI (made by this module at build time): the
    built-in data set is that folder, nothing is written into the workspace, and the shipped
    files are the ones the module writes (the same bytes, so runs on either share one
    fingerprint)."""
    from plugins.music.engine import bach

    root = bach.builtin_bach(tmp_path / "workspace")
    assert root == bach.resource_folder()
    assert not (tmp_path / "workspace").exists()
    shipped = sorted(root.glob("*.mid"))
    assert len(shipped) == 371 and (root / ".complete").exists()
    written = sorted(bach.builtin_bach(tmp_path, limit=3).glob("*.mid"))
    assert [f.name for f in written] == [f.name for f in shipped[:3]]
    assert [f.read_bytes() for f in written] == [f.read_bytes() for f in shipped[:3]]


def test_a_midi_folder_read_before_comes_from_the_cache(
        tmp_path: Path, melody_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing hundreds of MIDI files (or decoding audio) is the slow part of a short run:
    the phrases of a folder read before with the same settings come back from the
    workspace's cache, exactly; other settings or an edited file are read again."""
    import shutil

    from plugins.music.engine import data as data_mod
    from plugins.music.engine import midi as midi_mod
    from studio.cache import PrepCache

    folder = tmp_path / "songs"
    shutil.copytree(melody_folder, folder)
    cache = PrepCache(tmp_path / "cache", limit_bytes=10**9)
    reads: list[Path] = []
    real = midi_mod.read_midi
    monkeypatch.setattr(midi_mod, "read_midi", lambda f: reads.append(f) or real(f))

    def load(bars: int = 2) -> data_mod.PhraseSet:
        return data_mod.cached_phrases(
            cache, folder, midi_mod.MIDI_EXTS, {"bars": bars},
            lambda: data_mod.load_midi_folder(folder, bars, "melody"))

    first = load()
    assert len(reads) == 8 and first.hashes is not None and len(first.hashes) == 8
    again = load()
    assert len(reads) == 8  # nothing parsed
    assert np.array_equal(again.data, first.data) and again.data.dtype == first.data.dtype
    assert np.array_equal(again.file_index, first.file_index)
    assert (again.files, again.parts, again.metre) == (first.files, first.parts, first.metre)
    assert [(r.path, r.phrases, r.reason) for r in again.reports] == \
        [(r.path, r.phrases, r.reason) for r in first.reports]
    assert again.hashes == first.hashes
    load(bars=4)
    assert len(reads) == 16  # other settings: read again
    (folder / "song_3.mid").write_bytes((folder / "song_5.mid").read_bytes())
    load()
    assert len(reads) == 24  # an edited file: read again
