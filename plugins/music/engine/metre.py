"""Metres: what a time signature means on the 16th-note grid, and which metres a model can use.

Every phrase lives on the same grid, four steps per quarter note, whatever its metre: a bar of
``n/d`` is ``16 * n / d`` steps (2/4 is 8, 3/4 and 6/8 are 12, 4/4 is 16, 9/8 is 18, 12/8 is 24).
All the subdivisions these metres use (eighths and sixteenths in 6/8 as in 4/4) fall on it, so
one grid serves simple and compound metres alike, and the models saved before metres existed
(4/4 on this grid) keep their exact meaning: their token strings and piano-roll widths are
unchanged. A triplet grid would instead change every saved model's phrase length, and triple
the sequences the melody LSTMs run through.

A model learns phrases of one metre (its bars have one length; the hierarchical decoder runs one
unit per bar). Bars of a related metre are joined or split to fit, as a musician counts them:

* **simple duple** (2/4, 4/4, 2/2, 4/8, ...): two 2/4 bars make one 4/4 bar, a 4/2 bar two;
* **compound duple** (6/8, 12/8; the same beat, three eighths): a 12/8 bar is two 6/8 bars;
* triple metres (3/4, 9/8) and irregular ones (5/4, 7/8) only take bars of their own metre:
  two 3/4 bars are not a 6/8 bar, whose beats fall elsewhere.

Light: no torch, no Qt (the params and the panel import it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

STEPS_PER_WHOLE = 16  # sixteenth notes in a whole note (the grid: four steps per quarter)
MAX_BAR_STEPS = 64  # 16/4 at most: longer "bars" are a broken file, not a metre
SIMPLE_DUPLE = "simple duple"
SIMPLE_TRIPLE = "simple triple"
COMPOUND_DUPLE = "compound duple"
COMPOUND_TRIPLE = "compound triple"
IRREGULAR = "irregular"
#: what ``--metre`` suggests (any n/d on the grid is accepted)
COMMON = ("4/4", "3/4", "6/8", "9/8", "12/8", "2/4", "5/4", "7/8")
NAMES = {"c": "4/4", "common": "4/4", "c|": "2/2", "cut": "2/2", "alla breve": "2/2"}


class MetreError(ValueError):
    """A time signature that cannot be a phrase metre; the message says why."""


@dataclass(frozen=True, order=True)
class Metre:
    """A time signature, ``numerator/denominator`` (``Metre(6, 8)`` is 6/8)."""

    numerator: int
    denominator: int

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @classmethod
    def parse(cls, text: str | Metre) -> Metre:
        """``"6/8"``, ``"C"`` (4/4), ``"C|"`` (2/2) -> a metre on the grid; raises
        :class:`MetreError` with the reason otherwise."""
        if isinstance(text, Metre):
            metre = text
        else:
            t = str(text).strip().lower()
            t = NAMES.get(t, t)
            num, sep, den = t.partition("/")
            try:
                if not sep:
                    raise ValueError
                metre = cls(int(num.strip()), int(den.strip()))
            except ValueError:
                raise MetreError(f"{str(text)!r} is not a time signature (write it as 4/4, "
                                 "3/4, 6/8, …)") from None
        reason = metre.unusable()
        if reason:
            raise MetreError(f"{metre} {reason}")
        return metre

    @property
    def bar_length(self) -> Fraction:
        """Steps in one bar (a fraction for bars off the grid, such as 3/32)."""
        if self.denominator <= 0:
            return Fraction(0)
        return Fraction(STEPS_PER_WHOLE * self.numerator, self.denominator)

    @property
    def steps_per_bar(self) -> int:
        """Steps in one bar; 0 when the bar does not fill whole steps (see :meth:`unusable`)."""
        length = self.bar_length
        return int(length) if length.denominator == 1 else 0

    def unusable(self) -> str:
        """Why bars of this metre cannot be cut into phrases ("" when they can)."""
        if self.numerator <= 0 or self.denominator <= 0:
            return "is not a time signature"
        if self.denominator & (self.denominator - 1):
            return "has a beat that is not a power of two"
        if not self.steps_per_bar:
            return "has bars that do not fill whole sixteenth notes"
        if self.steps_per_bar > MAX_BAR_STEPS:
            return f"has bars longer than {MAX_BAR_STEPS // 16} whole notes"
        return ""

    @property
    def family(self) -> str:
        """Simple or compound, duple or triple, or irregular (5/4, 7/8, ...)."""
        n = self.numerator
        if n & (n - 1) == 0:  # 1, 2, 4, 8, 16
            return SIMPLE_DUPLE
        if n == 3:
            return SIMPLE_TRIPLE
        if n in (6, 12, 24):
            return COMPOUND_DUPLE
        if n == 9:
            return COMPOUND_TRIPLE
        return IRREGULAR

    @property
    def beat_steps(self) -> int:
        """Steps in one beat: the note value for simple metres, three of them for compound
        ones (the panel draws its beat lines here)."""
        unit = max(1, self.steps_per_bar // max(1, self.numerator))
        return unit * 3 if self.family in (COMPOUND_DUPLE, COMPOUND_TRIPLE) else unit

    def fits(self, model: Metre) -> bool:
        """Whether bars of this metre can be counted as bars of ``model``'s metre (joined, as
        two 2/4 bars make a 4/4 bar, or split, as a 12/8 bar is two 6/8 bars)."""
        if self.unusable() or model.unusable() or self.family != model.family:
            return False
        a, b = self.steps_per_bar, model.steps_per_bar
        if self.family == SIMPLE_DUPLE:
            return a % b == 0 or b % a == 0
        if self.family == COMPOUND_DUPLE:
            return self.denominator == model.denominator and (a % b == 0 or b % a == 0)
        return self == model


FOUR_FOUR = Metre(4, 4)


def model_metre_for(metre: Metre) -> Metre:
    """The metre a model learning bars of ``metre`` is given when the user leaves it to the
    data: 4/4 for every simple duple metre (2/4 and 2/2 tunes make 4/4 phrases, as MusicVAE's
    do), the metre itself otherwise."""
    return FOUR_FOUR if metre.family == SIMPLE_DUPLE else metre


def describe(metres: Iterable[Metre]) -> str:
    """Time signatures as a reader writes them, in order of first appearance ("2/4, 6/8")."""
    seen: list[str] = []
    for m in metres:
        s = str(m)
        if s not in seen:
            seen.append(s)
    return ", ".join(seen) or "none"


def what_fits(model: Metre) -> str:
    """The other metres whose bars a model of ``model``'s metre also learns from, in words
    ("2/4 and 2/2 bars fit too"), or ""."""
    others = [m for m in (Metre(2, 4), Metre(4, 4), Metre(2, 2), Metre(6, 8), Metre(12, 8))
              if m != model and m.fits(model)]
    if not others:
        return ""
    names = [str(m) for m in others]
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{text} bars fit too"
