"""The phrase strip: every phrase as a small piano-roll tile, painted by hand.

One widget paints all tiles (QPainter rectangles only; no per-note widgets, no numpy work beyond
reading a few dozen note rows), so a strip of dozens of phrases redraws in well under a frame.
Audio phrases show their log-mel spectrogram instead of notes.

A tile dragged out of the window is a real file drag (``text/uri-list`` with a local file URL,
what DAWs and file managers accept): the panel's ``drag_provider`` writes the phrase as a file
and returns the QMimeData; the strip only starts the drag.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDrag,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QApplication, QSizePolicy, QWidget

from plugins.music.engine.metre import Metre, MetreError
from plugins.music.engine.phrase import STEPS_PER_QUARTER, Phrase

TILE_W, TILE_H, GAP = 230, 168, 8
HEADER = 20
ROLE_COLOURS = {"A": QColor("#2563eb"), "B": QColor("#db2777")}
KIND_COLOURS = {"melody": QColor("#f59e0b"), "pianoroll": QColor("#10b981"),
                "source": QColor("#64748b"), "model": QColor("#8b5cf6")}


NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def pitch_name(pitch: int) -> str:
    """A MIDI pitch as a note name with its octave (60 is C4, middle C)."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _beat_steps(ph: Phrase) -> int:
    """Steps between the light grid lines: the phrase's beat (a quarter in 4/4 and 3/4, a
    dotted quarter in 6/8 and 9/8)."""
    try:
        return Metre.parse(ph.metre).beat_steps
    except MetreError:
        return STEPS_PER_QUARTER


def _mel_image(mel: np.ndarray) -> QImage:
    """A magma-like colour image of a [0, 1] mel (low frequencies at the bottom)."""
    m = np.clip(np.asarray(mel, dtype=np.float32), 0.0, 1.0)[::-1]
    r = np.clip(m * 1.6, 0, 1)
    g = np.clip(m * 1.6 - 0.6, 0, 1)
    b = np.clip(0.35 + m * 0.9 - m * m * 0.9, 0, 1)
    rgb = (np.stack([r, g, b], -1) * 255).astype(np.uint8)
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class StripView(QWidget):
    """Tiles of phrases in rows; click selects, double-click plays, right-click for a menu."""

    selection_changed = Signal(int)
    activated = Signal(int)
    menu_requested = Signal(int, QPoint)
    delete_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.phrases: list[Phrase] = []
        self.selected = -1
        self.roles: dict[int, str] = {}
        self.playhead: tuple[int, float] | None = None
        self._images: dict[int, QImage] = {}
        self.pitch_range = (58, 74)
        self.drag_provider: Callable[[int], QMimeData | None] | None = None
        self._press: tuple[QPoint, int] | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMinimumHeight(TILE_H + 2 * GAP)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # -- data -----------------------------------------------------------------------------------
    def set_phrases(self, phrases: list[Phrase]) -> None:
        self.phrases = list(phrases)
        self.selected = 0 if phrases else -1
        self.roles = {}
        self.playhead = None
        self._images = {i: _mel_image(p.mel) for i, p in enumerate(self.phrases)
                        if p.kind == "audio" and p.mel is not None}
        # one pitch range for the whole strip, so tiles side by side compare at a glance
        rows = [np.asarray(p.notes).reshape(-1, 4) for p in self.phrases if len(p.notes)]
        if rows:
            allp = np.concatenate(rows)[:, 0]
            lo, hi = int(allp.min()) - 2, int(allp.max()) + 2
        else:
            lo, hi = 58, 74
        if hi - lo < 14:
            mid = (hi + lo) // 2
            lo, hi = mid - 7, mid + 7
        self.pitch_range = (lo, hi)
        self.updateGeometry()
        self.update()
        self.selection_changed.emit(self.selected)

    def select(self, index: int) -> None:
        if index != self.selected and -1 <= index < len(self.phrases):
            self.selected = index
            self.update()
            self.selection_changed.emit(index)

    def set_playhead(self, head: tuple[int, float] | None) -> None:
        if head != self.playhead:
            self.playhead = head
            self.update()

    # -- geometry -------------------------------------------------------------------------------
    def columns(self, width: int | None = None) -> int:
        w = self.width() if width is None else width
        return max(1, (w - GAP) // (TILE_W + GAP))

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        rows = max(1, -(-len(self.phrases) // self.columns(width)))
        return GAP + rows * (TILE_H + GAP)

    def sizeHint(self) -> QSize:
        return QSize(4 * (TILE_W + GAP) + GAP, self.heightForWidth(4 * (TILE_W + GAP) + GAP))

    def resizeEvent(self, event) -> None:
        self.setMinimumHeight(self.heightForWidth(self.width()))
        super().resizeEvent(event)

    def tile_rect(self, index: int) -> QRectF:
        cols = self.columns()
        avail = self.width() - GAP
        w = max(TILE_W, avail // cols - GAP) if len(self.phrases) >= cols else TILE_W
        r, c = divmod(index, cols)
        return QRectF(GAP + c * (w + GAP), GAP + r * (TILE_H + GAP), w, TILE_H)

    def index_at(self, pos: QPoint) -> int:
        for i in range(len(self.phrases)):
            if self.tile_rect(i).contains(pos.toPointF()):
                return i
        return -1

    # -- input ----------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        i = self.index_at(event.position().toPoint())
        self._press = None
        if i >= 0:
            self.select(i)
            if event.button() == Qt.MouseButton.RightButton:
                self.menu_requested.emit(i, event.globalPosition().toPoint())
            elif event.button() == Qt.MouseButton.LeftButton:
                self._press = (event.position().toPoint(), i)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        press = self._press
        if press is not None and event.buttons() & Qt.MouseButton.LeftButton and \
                (event.position().toPoint() - press[0]).manhattanLength() \
                >= QApplication.startDragDistance():
            self._press = None
            self.drag_out(press[1])
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._press = None
        super().mouseReleaseEvent(event)

    def drag_out(self, index: int) -> Qt.DropAction | None:
        """Drag phrase ``index`` out as a file (the provider writes it); None when there is
        nothing to drag."""
        mime = self.drag_provider(index) if self.drag_provider is not None else None
        if mime is None:
            return None
        drag = QDrag(self)
        drag.setMimeData(mime)
        rect = self.tile_rect(index).toRect()
        pix = QPixmap(self.grab(rect)).scaledToWidth(min(160, rect.width()))
        drag.setPixmap(pix)
        drag.setHotSpot(QPoint(pix.width() // 2, pix.height() // 2))
        return self.exec_drag(drag)

    def exec_drag(self, drag: QDrag) -> Qt.DropAction:
        """Run the drag (a modal loop until the drop: tests replace it)."""
        return drag.exec(Qt.DropAction.CopyAction)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        i = self.index_at(event.position().toPoint())
        if i >= 0:
            self.activated.emit(i)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Right, Qt.Key.Key_Down) and self.phrases:
            self.select(min(len(self.phrases) - 1, self.selected + 1))
        elif event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Up) and self.phrases:
            self.select(max(0, self.selected - 1))
        elif event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and \
                0 <= self.selected < len(self.phrases):
            self.delete_requested.emit(self.selected)
        else:
            super().keyPressEvent(event)

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        pal = self.palette()
        if not self.phrases:
            p.setPen(pal.color(pal.ColorRole.PlaceholderText))
            p.drawText(self.rect().adjusted(12, 0, -12, 0),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       "No phrases yet: generate some with a model, or drop a MIDI file here.")
            return
        clip = event.rect()
        for i, ph in enumerate(self.phrases):
            rect = self.tile_rect(i)
            if rect.intersects(QRectF(clip)):
                self._paint_tile(p, rect, i, ph)

    def _paint_tile(self, p: QPainter, rect: QRectF, i: int, ph: Phrase) -> None:
        pal = self.palette()
        dark = pal.color(pal.ColorRole.Window).lightness() < 128
        p.fillRect(rect, pal.color(pal.ColorRole.Base))
        role = self.roles.get(i)
        border = ROLE_COLOURS.get(role or "", pal.color(pal.ColorRole.Mid))
        if i == self.selected:
            border = pal.color(pal.ColorRole.Highlight)
        p.setPen(QPen(border, 2 if i == self.selected or role else 1))
        p.drawRect(rect.adjusted(0.5, 0.5, -0.5, -0.5))
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        p.setFont(font)
        p.setPen(self.palette().color(self.palette().ColorRole.Text))
        title = ph.label or f"phrase {i + 1}"
        key = ph.meta.get("key")
        if key:
            title += f"  ·  {key}"
        if role:
            title = f"[{role}] {title}"
        p.drawText(rect.adjusted(6, 2, -6, 0).toRect(),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, title)
        area = rect.adjusted(4, HEADER, -4, -4)
        if ph.kind == "audio":
            img = self._images.get(i)
            if img is not None:
                p.drawImage(area, img)
        else:
            self._paint_notes(p, area, ph, dark)
        if self.playhead is not None and self.playhead[0] == i:
            x = area.left() + self.playhead[1] * area.width()
            p.setPen(QPen(QColor("#ef4444"), 2))
            p.drawLine(int(x), int(area.top()), int(x), int(area.bottom()))

    def _paint_notes(self, p: QPainter, area: QRectF, ph: Phrase, dark: bool) -> None:
        """The notes on a piano roll with its pitch names (every C, and the lowest and
        highest rows) in a gutter on the left and bar numbers under the bar lines."""
        notes = np.asarray(ph.notes).reshape(-1, 4)
        steps = max(1, ph.steps)
        lo, hi = self.pitch_range
        text_colour = self.palette().color(self.palette().ColorRole.PlaceholderText)
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.7))
        p.setFont(small)
        metrics = p.fontMetrics()
        gutter = metrics.horizontalAdvance("C#8") + 4
        footer = metrics.height()
        roll = area.adjusted(gutter, 0, 0, -footer)
        rows = hi - lo + 1
        rh = roll.height() / rows
        sw = roll.width() / steps
        # black-key rows and C lines
        shade = QColor(255, 255, 255, 10) if dark else QColor(0, 0, 0, 14)
        c_line = QColor(255, 255, 255, 30) if dark else QColor(0, 0, 0, 30)
        for pitch in range(lo, hi + 1):
            y = roll.bottom() - (pitch - lo + 1) * rh
            if pitch % 12 in (1, 3, 6, 8, 10):
                p.fillRect(QRectF(roll.left(), y, roll.width(), rh), shade)
            if pitch % 12 == 0:
                p.setPen(QPen(c_line, 1))
                p.drawLine(int(roll.left()), int(y + rh), int(roll.right()), int(y + rh))
        p.setPen(text_colour)
        shown: list[float] = []  # label centres so far: labels never overlap
        for pitch in [lo, hi] + [q for q in range(lo, hi + 1) if q % 12 == 0]:
            y = roll.bottom() - (pitch - lo + 0.5) * rh
            if any(abs(y - other) < metrics.height() * 0.9 for other in shown):
                continue
            shown.append(y)
            p.drawText(QRectF(area.left(), y - footer / 2, gutter - 3, footer),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       pitch_name(pitch))
        grid = QColor(255, 255, 255, 40) if dark else QColor(0, 0, 0, 40)
        bar, beat = ph.bar_steps, _beat_steps(ph)  # a 6/8 bar: 12 steps, beats of 6
        for s in range(0, steps + 1, beat):
            x = roll.left() + s * sw
            p.setPen(QPen(grid, 1.5 if s % bar == 0 else 0.5))
            p.drawLine(int(x), int(roll.top()), int(x), int(roll.bottom()))
        p.setPen(text_colour)
        for number, s in enumerate(range(0, steps, max(1, bar)), start=1):
            x = roll.left() + s * sw
            p.drawText(QRectF(x + 2, roll.bottom(), bar * sw, footer),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, str(number))
        colour = KIND_COLOURS.get(str(ph.meta.get("role", ph.kind)), KIND_COLOURS["melody"])
        p.setPen(QPen(colour.darker(140), 1))
        for pitch, start, end, vel in notes.tolist():
            y = roll.bottom() - (pitch - lo + 1) * rh
            c = QColor(colour)
            c.setAlpha(int(120 + 135 * min(127, vel) / 127))
            p.setBrush(c)
            p.drawRect(QRectF(roll.left() + start * sw, y, max(2.0, (end - start) * sw - 1),
                              max(2.0, rh - 0.5)))
        p.setBrush(Qt.BrushStyle.NoBrush)
