"""What a phrase is, in the three forms the models use, and conversions between them.

Every phrase can be shown and played as a list of notes ``(pitch, start, end, velocity)`` in
16th-note steps, whatever the model saw and whatever its metre (a bar of 6/8 is 12 steps: see
:mod:`.metre`):

* **melody** tokens (MusicVAE's event encoding): one token per 16th step; ``REST`` (silence),
  ``HOLD`` (the previous note sounds on) or a pitch onset ``2 + pitch - MIN_PITCH``.
* **piano-roll**: a ``(2, ROLL_PITCHES, steps)`` float array, channel 0 onsets, channel 1 frames
  (a note sounding), so repeated notes stay distinct.
* **audio**: a log-mel spectrogram plus the waveform it decodes to (Griffin-Lim); no notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_PITCH, MAX_PITCH = 21, 108  # the 88 piano keys, as in MusicVAE
REST, HOLD = 0, 1
FIRST_PITCH_TOKEN = 2
VOCAB = FIRST_PITCH_TOKEN + (MAX_PITCH - MIN_PITCH + 1)  # 90
STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16  # a 4/4 bar (other metres: plugins.music.engine.metre)
ROLL_LOW, ROLL_PITCHES = 21, 96  # piano-roll rows: MIDI 21..116 (96 divides by 8 for the CNN)
DEFAULT_VELOCITY = 90
# major keys, then harmonic minor
KEY_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
             *(f"{n}m" for n in ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"])]


@dataclass
class Phrase:
    """One phrase as the panel, the synth and the MIDI writer see it.

    Attributes:
        notes: int32 ``(K, 4)``: pitch, start step, end step (exclusive), velocity.
        steps: length in 16th steps (bars * steps per bar of its metre).
        kind: "melody", "pianoroll" or "audio".
        label: a short caption ("sample 3", "A", "2/5").
        mel: audio phrases: the log-mel spectrogram scaled to [0, 1], ``(n_mels, frames)``.
        audio: audio phrases: the mono waveform (float32) at ``sample_rate``.
        metre: its time signature ("4/4", "6/8"): written into MIDI files, drawn as bar lines.
    """

    notes: np.ndarray
    steps: int
    kind: str = "melody"
    label: str = ""
    mel: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    metre: str = "4/4"

    @property
    def bar_steps(self) -> int:
        """Steps in one of its bars (16 for 4/4, 12 for 6/8)."""
        from plugins.music.engine.metre import Metre, MetreError

        try:
            return Metre.parse(self.metre).steps_per_bar
        except MetreError:
            return STEPS_PER_BAR

    @property
    def bars(self) -> int:
        return max(1, self.steps // self.bar_steps)

    def to_payload(self) -> dict[str, Any]:
        """A plain dict (arrays and scalars) for job previews: the CLI prints shapes, the panel
        rebuilds the phrase with :meth:`from_payload`."""
        return {"notes": self.notes, "steps": self.steps, "kind": self.kind, "label": self.label,
                "mel": self.mel, "audio": self.audio, "sample_rate": self.sample_rate,
                "meta": dict(self.meta), "metre": self.metre}

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Phrase:
        """The phrase of a :meth:`to_payload` dict (a preview, perhaps read back from a
        ``--events jsonl`` line). Raises ValueError saying what is wrong with it."""
        if not isinstance(d, dict):
            raise ValueError(f"a phrase is a mapping, not {type(d).__name__}")
        try:
            notes = np.asarray(d["notes"], dtype=np.int32).reshape(-1, 4)
            steps = int(d["steps"])
            meta = d.get("meta") or {}
            if not isinstance(meta, dict):
                raise ValueError("its meta is not a mapping")
            mel, audio = d.get("mel"), d.get("audio")
            phrase = cls(notes, steps, str(d.get("kind", "melody")), str(d.get("label", "")),
                         None if mel is None else np.asarray(mel, dtype=np.float32),
                         None if audio is None else np.asarray(audio, dtype=np.float32),
                         int(d.get("sample_rate", 0) or 0), dict(meta),
                         str(d.get("metre") or "4/4"))
        except KeyError as exc:
            raise ValueError(f"a phrase needs {exc.args[0]!r}") from None
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"not a phrase ({exc})") from None
        if steps < 0 or phrase.kind not in ("melody", "pianoroll", "audio"):
            raise ValueError("not a phrase (negative length or unknown kind)")
        from plugins.music.engine.metre import Metre

        Metre.parse(phrase.metre)  # a MetreError (a ValueError) says what is wrong
        return phrase

    def with_label(self, label: str) -> Phrase:
        return Phrase(self.notes, self.steps, self.kind, label, self.mel, self.audio,
                      self.sample_rate, dict(self.meta), self.metre)

    def seconds(self, tempo: float) -> float:
        """Duration at ``tempo`` quarter notes per minute (audio phrases: their own length)."""
        if self.kind == "audio" and self.audio is not None and self.sample_rate:
            return len(self.audio) / self.sample_rate
        return self.steps * step_seconds(tempo)


def describe_phrase(phrase: Phrase) -> dict[str, Any]:
    """What a phrase given to a job was, for its recorded settings (never the notes)."""
    out: dict[str, Any] = {"phrase": phrase.label, "kind": phrase.kind, "bars": phrase.bars}
    if phrase.metre != "4/4":
        out["metre"] = phrase.metre
    if phrase.kind != "audio":
        out["notes"] = int(np.asarray(phrase.notes).reshape(-1, 4).shape[0])
    return out


def step_seconds(tempo: float) -> float:
    """Seconds per 16th note at ``tempo`` quarter notes per minute."""
    return 60.0 / float(tempo) / STEPS_PER_QUARTER


def empty_notes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.int32)


# ----------------------------------------------------------------------------------------------
# Melody tokens
# ----------------------------------------------------------------------------------------------
def pitch_token(pitch: int | np.ndarray) -> Any:
    return np.asarray(pitch) - MIN_PITCH + FIRST_PITCH_TOKEN


def canonical_tokens(tokens: np.ndarray) -> np.ndarray:
    """A HOLD with nothing to hold (at step 0 or after a rest) means silence: make it REST, so
    two token strings that sound the same compare equal."""
    t = np.array(tokens, dtype=np.int64).reshape(-1)
    sounding = False
    for i, tok in enumerate(t):
        if tok == HOLD and not sounding:
            t[i] = REST
        elif tok >= FIRST_PITCH_TOKEN:
            sounding = True
        elif tok == REST:
            sounding = False
    return t


def tokens_to_notes(tokens: np.ndarray, velocity: int = DEFAULT_VELOCITY) -> np.ndarray:
    """Melody tokens into ``(K, 4)`` notes (a HOLD after silence counts as silence)."""
    notes: list[tuple[int, int, int, int]] = []
    current: list[int] | None = None
    toks = np.asarray(tokens).reshape(-1)
    for i, tok in enumerate(toks.tolist()):
        if tok >= FIRST_PITCH_TOKEN:
            if current is not None:
                notes.append((current[0], current[1], i, velocity))
            current = [int(tok) - FIRST_PITCH_TOKEN + MIN_PITCH, i]
        elif tok == REST and current is not None:
            notes.append((current[0], current[1], i, velocity))
            current = None
    if current is not None:
        notes.append((current[0], current[1], len(toks), velocity))
    return np.asarray(notes, dtype=np.int32).reshape(-1, 4)


def skyline(notes: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The highest sounding note at each step: ``(pitch, note_id)`` arrays (-1 where silent).

    Notes are painted lowest first so higher ones overwrite, which is the "highest voice" rule
    MusicVAE and most melody extractors use.
    """
    pitch = np.full(steps, -1, dtype=np.int32)
    ident = np.full(steps, -1, dtype=np.int64)
    if len(notes):
        order = np.lexsort((notes[:, 1], notes[:, 0]))  # by pitch, then start
        for k in order:
            p, s, e = int(notes[k, 0]), max(0, int(notes[k, 1])), min(steps, int(notes[k, 2]))
            if e > s:
                pitch[s:e] = p
                ident[s:e] = k
    return pitch, ident


def notes_to_tokens(notes: np.ndarray, steps: int) -> np.ndarray:
    """Monophonic token string of the highest voice of ``notes`` over ``steps`` steps.

    A step starts a note where the sounding note changes; a note still sounding at step 0 is
    struck again there, so a phrase cut from the middle of a piece stands on its own.
    """
    pitch, ident = skyline(notes, steps)
    tokens = np.full(steps, REST, dtype=np.int64)
    sounding = ident >= 0
    onset = sounding.copy()
    onset[1:] &= ident[1:] != ident[:-1]
    tokens[sounding] = HOLD
    tokens[onset] = pitch_token(pitch[onset])
    return tokens


def tokens_in_range(notes: np.ndarray) -> bool:
    return not len(notes) or (notes[:, 0].min() >= MIN_PITCH and notes[:, 0].max() <= MAX_PITCH)


# ----------------------------------------------------------------------------------------------
# Piano-roll
# ----------------------------------------------------------------------------------------------
def notes_to_roll(notes: np.ndarray, steps: int) -> np.ndarray:
    """``(2, ROLL_PITCHES, steps)`` float32: onsets and sounding frames."""
    roll = np.zeros((2, ROLL_PITCHES, steps), dtype=np.float32)
    for p, s, e, _v in np.asarray(notes).reshape(-1, 4).tolist():
        row = p - ROLL_LOW
        if not 0 <= row < ROLL_PITCHES:
            continue
        s, e = max(0, s), min(steps, e)
        if e <= s:
            continue
        roll[0, row, s] = 1.0
        roll[1, row, s:e] = 1.0
    return roll


def roll_to_notes(roll: np.ndarray, threshold: float = 0.5,
                  velocity: int = DEFAULT_VELOCITY) -> np.ndarray:
    """Inverse of :func:`notes_to_roll` (probabilities are thresholded): a note starts at an
    onset (or where a frame begins without one) and lasts while its frame stays on."""
    onsets = np.asarray(roll[0]) >= threshold
    frames = (np.asarray(roll[1]) >= threshold) | onsets
    out: list[tuple[int, int, int, int]] = []
    rows, steps = frames.shape
    for r in range(rows):
        start = -1
        for t in range(steps):
            on = frames[r, t]
            if start >= 0 and (not on or onsets[r, t]):
                out.append((r + ROLL_LOW, start, t, velocity))
                start = -1
            if on and start < 0:
                start = t
        if start >= 0:
            out.append((r + ROLL_LOW, start, steps, velocity))
    arr = np.asarray(out, dtype=np.int32).reshape(-1, 4)
    return arr[np.lexsort((arr[:, 0], arr[:, 1]))] if len(arr) else arr


def sort_notes(notes: np.ndarray) -> np.ndarray:
    notes = np.asarray(notes, dtype=np.int32).reshape(-1, 4)
    return notes[np.lexsort((notes[:, 0], notes[:, 1]))] if len(notes) else notes
