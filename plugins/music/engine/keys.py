"""Keys of melodies, and transposing them to (and from) C major / A minor.

Melody models learn phrases *key-normalised*: each phrase is transposed so that its key becomes
C major (or A minor, the relative minor, so both modes share one scale), by the smallest shift
(-6..+5 semitones, keeping the register). What the model learns is then a melody's shape within
its key, not which of 12 keys it is in. That is what augmenting by transposition aims at, made
exact: on the Bach chorales, a model trained with random transpositions (+-5) samples phrases
that drift between keys (in-key rate about 0.90, random pitches score 0.87), because a code
drawn from the prior lands between keys; a key-normalised one stays in key. A phrase's key comes
back on the way out: reconstructions, interpolations and variations are transposed back to their
source's key, new samples to a key the user picks (or one drawn from the training data's mix).

The key estimate: the major or harmonic-minor scale holding most of the phrase's notes, ties
broken by the weight on the tonic triad, then in favour of major.
"""

from __future__ import annotations

import torch

from plugins.music.engine.phrase import FIRST_PITCH_TOKEN, MAX_PITCH, MIN_PITCH

N_KEYS = 24  # 12 major, then 12 harmonic minor (tonic C, C#, ...)
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 11)
KEY_NAMES = [*["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"],
             *(f"{n}m" for n in ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"])]
_ALIASES = {"DB": "C#", "D#": "EB", "GB": "F#", "G#": "AB", "A#": "BB", "CB": "B", "E#": "F",
            "FB": "E", "B#": "C", "DBM": "C#M", "D#M": "EBM", "GBM": "F#M", "ABM": "G#M",
            "A#M": "BBM"}


def _tables() -> tuple[torch.Tensor, torch.Tensor]:
    scale = torch.zeros(N_KEYS, 12)
    triad = torch.zeros(N_KEYS, 12)
    for k in range(N_KEYS):
        root, steps = k % 12, (_MAJOR if k < 12 else _MINOR)
        for s in steps:
            scale[k, (root + s) % 12] = 1.0
        for s in (steps[0], steps[2], steps[4]):
            triad[k, (root + s) % 12] = 1.0
    return scale, triad


KEY_SCALES, KEY_TRIADS = _tables()


def estimate_keys(tokens: torch.Tensor) -> torch.Tensor:
    """The key (0..23) of each melody in ``(B, T)`` tokens."""
    pitched = tokens >= FIRST_PITCH_TOKEN
    pcs = torch.where(pitched, (tokens - FIRST_PITCH_TOKEN + MIN_PITCH) % 12, 0)
    hist = torch.zeros(tokens.shape[0], 12, device=tokens.device)
    hist.scatter_add_(1, pcs, pitched.float())
    weights = KEY_SCALES.to(hist.device).T * 100.0 + KEY_TRIADS.to(hist.device).T
    weights[:, :12] += 0.01  # a tie between relative keys goes to major
    return (hist @ weights).argmax(-1)


def to_normal_shift(keys: torch.Tensor) -> torch.Tensor:
    """Semitones (-6..+5) taking each key to C major (major keys) or A minor (minor keys)."""
    target = torch.where(keys < 12, 0, 9)
    return (target - keys % 12 + 6) % 12 - 6


def transpose(tokens: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift every pitch token of each row by ``shift[row]`` semitones; notes pushed off the
    keyboard move by octaves until they fit."""
    pitched = tokens >= FIRST_PITCH_TOKEN
    p = tokens - FIRST_PITCH_TOKEN + MIN_PITCH + shift.view(-1, 1)
    p = torch.where(p < MIN_PITCH, p + 12 * ((MIN_PITCH - p + 11) // 12), p)
    p = torch.where(p > MAX_PITCH, p - 12 * ((p - MAX_PITCH + 11) // 12), p)
    return torch.where(pitched, p - MIN_PITCH + FIRST_PITCH_TOKEN, tokens)


def normalise(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Phrases transposed to C major / A minor, and their keys (to transpose back)."""
    keys = estimate_keys(tokens)
    return transpose(tokens, to_normal_shift(keys)), keys


def denormalise(tokens: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Normalised phrases back into ``keys``."""
    return transpose(tokens, -to_normal_shift(keys))


def key_index(name: str) -> int:
    """"C", "F#", "Bb", "Am", "c#m", "G minor" ... -> 0..23."""
    t = name.strip().replace(" ", "").lower().replace("major", "").replace("maj", "")
    t = t.replace("minor", "m").replace("min", "m").upper()
    t = _ALIASES.get(t, t)
    for i, k in enumerate(KEY_NAMES):
        if k.upper() == t:
            return i
    raise ValueError(f"unknown key {name!r} (examples: C, F#, Bb, Am, C#m, or random)")


def key_prior(keys: torch.Tensor) -> list[float]:
    """Weights for drawing keys of new samples: the training data's major/minor mix, spread
    evenly over the 12 tonics."""
    counts = torch.bincount(keys, minlength=N_KEYS).float()
    major, minor = float(counts[:12].sum()), float(counts[12:].sum())
    total = max(1.0, major + minor)
    return [round(major / total / 12, 5)] * 12 + [round(minor / total / 12, 5)] * 12


def sample_keys(n: int, prior: list[float] | None, generator: torch.Generator | None
                ) -> torch.Tensor:
    """``n`` keys drawn from ``prior`` (24 weights; uniform when None)."""
    p = torch.tensor(prior if prior else [1.0] * N_KEYS, dtype=torch.float)
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=generator)
