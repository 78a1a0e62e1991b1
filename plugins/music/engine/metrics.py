"""Quality measures: per-step reconstruction accuracy, note F1, and the in-key rate.

The in-key rate is the share of a phrase's notes that lie in the phrase's best-fitting major or
harmonic-minor scale (all 24 keys tried), summed over phrases. Held-out Bach soprano phrases
score 0.993 on it and phrases of uniformly random pitches about 0.87, which is why the bench
prints both next to the model's figure.
"""

from __future__ import annotations

import numpy as np

from plugins.music.engine.phrase import FIRST_PITCH_TOKEN, MIN_PITCH, canonical_tokens

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


def _key_masks() -> np.ndarray:
    rows = []
    for scale in (_MAJOR, _HARMONIC_MINOR):
        for root in range(12):
            m = np.zeros(12, dtype=np.float64)
            m[[(root + s) % 12 for s in scale]] = 1.0
            rows.append(m)
    return np.stack(rows)


KEY_MASKS = _key_masks()  # (24, 12)


def pitch_classes(tokens: np.ndarray) -> np.ndarray:
    t = np.asarray(tokens).reshape(-1)
    return (t[t >= FIRST_PITCH_TOKEN] - FIRST_PITCH_TOKEN + MIN_PITCH) % 12


def in_key_counts(pitches: np.ndarray) -> tuple[int, int]:
    """(notes in the best-fitting key, notes) for one phrase's pitches (MIDI numbers or pcs)."""
    hist = np.bincount(np.asarray(pitches, dtype=np.int64) % 12, minlength=12)
    if hist.sum() == 0:
        return 0, 0
    return int((KEY_MASKS @ hist).max()), int(hist.sum())


def in_key_rate(token_rows: np.ndarray | list[np.ndarray]) -> float:
    """In-key rate over many melody phrases (token strings)."""
    inside = total = 0
    for row in token_rows:
        a, b = in_key_counts(pitch_classes(row))
        inside += a
        total += b
    return inside / total if total else float("nan")


def in_key_rate_notes(note_sets: list[np.ndarray]) -> float:
    """The same for note arrays (piano-roll phrases)."""
    inside = total = 0
    for notes in note_sets:
        a, b = in_key_counts(np.asarray(notes).reshape(-1, 4)[:, 0])
        inside += a
        total += b
    return inside / total if total else float("nan")


def token_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    """Share of 16th steps where two token strings agree (both made canonical first, so a HOLD
    after silence and a REST count as the same)."""
    p = np.stack([canonical_tokens(r) for r in np.asarray(pred).reshape(len(pred), -1)])
    t = np.stack([canonical_tokens(r) for r in np.asarray(target).reshape(len(target), -1)])
    return float((p == t).mean())


def onset_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    """Accuracy on the steps where the target starts a note (the hard ones)."""
    t = np.asarray(target)
    mask = t >= FIRST_PITCH_TOKEN
    return float((np.asarray(pred)[mask] == t[mask]).mean()) if mask.any() else float("nan")


def f1(pred: np.ndarray, target: np.ndarray) -> float:
    """F1 of binary arrays (piano-roll frames)."""
    p, t = np.asarray(pred) > 0.5, np.asarray(target) > 0.5
    tp = float((p & t).sum())
    denom = float(p.sum() + t.sum())
    return 2 * tp / denom if denom else 1.0
