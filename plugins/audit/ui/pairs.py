"""Closest pairs side by side: a generated sample and the training example it is nearest to.

The memorisation job writes the closest pairs' items into its folder's ``pairs/`` (images as
PNG, a text sample whole, music as JSON notes, levels as their rows); :func:`prepare` reads and
renders them off the GUI thread into :class:`Pair` objects (``QImage`` thumbnails, highlighted
HTML), and :class:`PairsView` lays them out as cards.

Text: the matched passage is highlighted inside the generated sample, and the training passage
is shown with the words that match highlighted (a near-exact match may have substituted a word
or two, which stay plain). Music: small piano rolls with the shared run of notes in colour.
Levels: small tile renders, one colour per tile character.
"""

from __future__ import annotations

import html
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ..engine.memorization import fold, tokenize
from .words import closest_caption

THUMB = 96  # pixels, the longer side of an image thumbnail
MARK = "background-color:#ffd54f;color:#000000"
MAX_PAIRS = 12
CONTEXT_CHARS = 240


@dataclass
class Pair:
    """One card: what to show for a sample and its nearest training example."""

    kind: str
    caption: str
    sample: QImage | str | None  # a picture, or HTML
    train: QImage | str | None
    distance: float


# ----------------------------------------------------------------------------------------------
# Reading and rendering (any thread)
# ----------------------------------------------------------------------------------------------
def prepare(result: dict[str, Any], folder: Path | None, limit: int = MAX_PAIRS) -> list[Pair]:
    """The closest pairs of one memorisation result, read from ``folder/pairs``."""
    kind = result.get("kind", "")
    out = []
    closest = result.get("closest", [])
    if kind in ("text", "music", "level"):  # samples that share nothing are no evidence
        closest = [p for p in closest if p.get("example")]
    for p in closest[:limit]:
        i = int(p["sample"])
        base = folder / "pairs" if folder is not None else None
        sample: QImage | str | None = None
        train: QImage | str | None = None
        if kind in ("image", "features"):
            if base is not None:
                sample = _thumb(base / f"sample-{i}.png")
                train = _thumb(base / f"train-{i}.png")
        elif kind == "text":
            text = _read(base / f"sample-{i}.txt") if base is not None else None
            sample, train = text_pair(text, p)
        elif kind == "music":
            a = _notes(base / f"sample-{i}.json") if base is not None else None
            b = _notes(base / f"train-{i}.json") if base is not None else None
            n = int(p.get("notes", 0))
            sample = piano_roll(a, int(p.get("sample_start", 0)), n) if a else None
            train = piano_roll(b, int(p.get("training_start", 0)), n) if b else None
        elif kind == "level":
            rows_a = _read(base / f"sample-{i}.txt") if base is not None else None
            rows_b = _read(base / f"train-{i}.txt") if base is not None else None
            sample = level_render(rows_a.splitlines()) if rows_a else None
            train = level_render(rows_b.splitlines()) if rows_b else None
        out.append(Pair(kind, closest_caption(p, kind), sample, train,
                        float(p.get("distance", 0.0))))
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _thumb(path: Path) -> QImage | None:
    img = QImage(str(path))
    if img.isNull():
        return None
    side = max(img.width(), img.height())
    if side < THUMB:  # small images grow with crisp pixels
        factor = max(1, THUMB // side)
        return img.scaled(img.width() * factor, img.height() * factor,
                          Qt.AspectRatioMode.KeepAspectRatio,
                          Qt.TransformationMode.FastTransformation)
    return img.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                      Qt.TransformationMode.SmoothTransformation)


def _notes(path: Path) -> list[tuple[int, float, float]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [(int(n[0]), float(n[1]), float(n[2])) for n in data]
    except (OSError, ValueError, TypeError, IndexError):
        return None


def _breakable(text: str, every: int = 16) -> str:
    """``text`` escaped for HTML, with a zero-width space every ``every`` characters of a long
    run without spaces: generated text can hold 60-letter "words", which a label cannot wrap
    and which would push the results column wider than the window."""
    out = []
    for word in re.split(r"(\s+)", text):
        if len(word) > every and not word.isspace():
            word = "\u200b".join(word[i:i + every] for i in range(0, len(word), every))
        out.append(html.escape(word))
    return "".join(out)


def _marked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` as HTML with ``spans`` (character ranges) highlighted."""
    out, last = [], 0
    for a, b in sorted(spans):
        if a < last:
            continue
        out.append(_breakable(text[last:a]))
        out.append(f'<span style="{MARK}">{_breakable(text[a:b])}</span>')
        last = b
    out.append(_breakable(text[last:]))
    return "".join(out).replace("\n", "<br>")


def _matching_spans(a: str, b: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Token spans of ``a`` and ``b`` that match position by position (a near-exact match has
    the same length on both sides; substituted words do not match)."""
    ta, sa = tokenize(a)
    tb, sb = tokenize(b)
    ma, mb = [], []
    for x, y, spa, spb in zip(ta, tb, sa, sb, strict=False):
        if fold(x) == fold(y):
            ma.append(spa)
            mb.append(spb)
    return _merge(a, ma), _merge(b, mb)


def _merge(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Neighbouring spans joined across the spaces between them (one highlight per run)."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and not text[out[-1][1]:s].strip():
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def text_pair(sample_text: str | None, pair: dict[str, Any]) -> tuple[str, str]:
    """HTML for a text pair: the generated sample with the matched passage highlighted (and
    some context around it), and the training passage with its matching words highlighted."""
    passage = str(pair.get("sample_passage", ""))
    training = str(pair.get("training_passage", ""))
    if not pair.get("example") or not passage:
        shown = (sample_text or "")[:CONTEXT_CHARS * 2]
        return _breakable(shown).replace("\n", "<br>"), \
            "<i>no run of words shared with the training text</i>"
    in_sample, in_train = _matching_spans(passage, training)
    text = sample_text if sample_text and passage in sample_text else passage
    at = text.find(passage)
    lo = max(0, at - CONTEXT_CHARS)
    hi = min(len(text), at + len(passage) + CONTEXT_CHARS)
    spans = [(at + a - lo, at + b - lo) for a, b in in_sample]
    left = "…" if lo > 0 else ""
    right = "…" if hi < len(text) else ""
    return (left + _marked(text[lo:hi], spans) + right, _marked(training, in_train))


def piano_roll(notes: list[tuple[int, float, float]], start: int, count: int,
               width: int = 180, height: int = 72) -> QImage:
    """A small piano roll; the notes ``start .. start + count`` (in the order the memorisation
    check reads them: by start, then pitch) drawn in colour, the others grey."""
    img = QImage(width, height, QImage.Format.Format_ARGB32)
    img.fill(QColor(0, 0, 0, 0))
    order = sorted(range(len(notes)), key=lambda k: (notes[k][1], notes[k][0], notes[k][2]))
    shared = set(order[start:start + count])
    pitches = [n[0] for n in notes]
    lo, hi = min(pitches) - 1, max(pitches) + 1
    end = max(n[1] + n[2] for n in notes) or 1.0
    sx, sy = width / end, height / max(hi - lo + 1, 1)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    p.fillRect(0, 0, width, height, QColor(128, 128, 128, 40))
    for k, (pitch, s, d) in enumerate(notes):
        colour = QColor("#e07b39") if k in shared else QColor(130, 130, 130)
        p.fillRect(QRectF(s * sx, (hi - pitch) * sy, max(1.5, d * sx - 1), max(2.0, sy)),
                   colour)
    p.end()
    return img


_EMPTY = set("-. ")


def level_render(rows: list[str], cell: int = 4, max_width: int = 320) -> QImage | None:
    """A level's tiles as coloured cells (empty tiles transparent), at most ``max_width``."""
    rows = [r for r in rows if r]
    if not rows:
        return None
    w = max(len(r) for r in rows)
    cell = max(1, min(cell, max_width // max(w, 1)))
    img = QImage(w * cell, len(rows) * cell, QImage.Format.Format_ARGB32)
    img.fill(QColor(128, 128, 128, 40))
    p = QPainter(img)
    for y, row in enumerate(rows):
        for x, ch in enumerate(row):
            if ch in _EMPTY:
                continue
            p.fillRect(x * cell, y * cell, cell, cell, tile_colour(ch))
    p.end()
    return img


def tile_colour(ch: str) -> QColor:
    """A fixed colour per tile character (the same in every render)."""
    h = zlib.crc32(ch.encode("utf-8"))
    return QColor.fromHsv(h % 360, 140 + h % 80, 150 + (h >> 8) % 80)


# ----------------------------------------------------------------------------------------------
# Widgets (GUI thread)
# ----------------------------------------------------------------------------------------------
def _picture(item: QImage | str | None, missing: str) -> QLabel:
    lab = QLabel()
    if isinstance(item, QImage):
        lab.setPixmap(QPixmap.fromImage(item))
    else:
        lab.setText(missing)
        lab.setObjectName("placeholder")
    lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return lab


def _text(html_text: str | None, title: str) -> QLabel:
    lab = QLabel(f"<b>{title}</b><br>{html_text or '<i>not saved</i>'}")
    lab.setWordWrap(True)
    lab.setTextFormat(Qt.TextFormat.RichText)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    lab.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    return lab


class PairCard(QFrame):
    def __init__(self, pair: Pair, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pair = pair
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(3)
        if pair.kind == "text":  # one above the other: a column is too narrow for two
            lay.addWidget(_text(pair.sample if isinstance(pair.sample, str) else None,
                                "Generated"))
            lay.addWidget(_text(pair.train if isinstance(pair.train, str) else None,
                                "Training text"))
        else:
            row = QHBoxLayout()
            row.setSpacing(4)
            row.addWidget(_picture(pair.sample, "sample not saved"))
            row.addWidget(_picture(pair.train, "training example not saved"))
            lay.addLayout(row)
            heads = QLabel("generated · nearest training example")
            heads.setObjectName("placeholder")
            heads.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lay.addWidget(heads)
        cap = QLabel(pair.caption)
        cap.setWordWrap(True)
        cap.setAlignment(Qt.AlignmentFlag.AlignCenter if pair.kind != "text"
                         else Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(cap)


class PairsView(QWidget):
    """The closest pairs as cards: pictures several to a row, text one to a row (inside the
    results column, which scrolls)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cards: list[PairCard] = []
        self._columns = 0
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)
        self.empty = QLabel("")
        self.empty.setObjectName("placeholder")
        self.empty.setWordWrap(True)
        self.grid.addWidget(self.empty, 0, 0)

    def set_pairs(self, pairs: list[Pair], empty: str = "") -> None:
        for c in self.cards:
            c.setParent(None)
            c.deleteLater()
        self.cards = [PairCard(p) for p in pairs]
        self.empty.setText(empty)
        self._columns = 0
        self._relayout()

    def _relayout(self) -> None:
        text = any(c.pair.kind == "text" for c in self.cards)
        card_w = max((c.sizeHint().width() for c in self.cards), default=220)
        cols = 1 if text or not self.cards else max(1, self.width() // (card_w + 6))
        if cols == self._columns:
            return
        self._columns = cols
        while self.grid.count():
            self.grid.takeAt(0)
        for row in range(self.grid.rowCount()):
            self.grid.setRowStretch(row, 0)
        for col in range(self.grid.columnCount()):
            self.grid.setColumnStretch(col, 0)
        self.empty.setVisible(not self.cards)
        if not self.cards:
            self.grid.addWidget(self.empty, 0, 0)
        for i, card in enumerate(self.cards):
            self.grid.addWidget(card, i // cols, i % cols)
        self.grid.setColumnStretch(0 if text else cols, 1)  # text cards take the width

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._relayout()
