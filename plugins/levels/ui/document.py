"""The level being edited: the level, its pinned tiles, its last check, the tileset it is drawn
with, and an undo stack for every change.

Kept apart from the view (``view.py``), the toolbar and the tabs, so each of them reads and
changes the same state through the same methods (as the diffusion editor's ``CanvasDocument``
does for pictures). Every paint stroke and every replacement of the whole level (generate,
regenerate a region, repair, open, pick a sample) is a ``QUndoCommand`` on :attr:`undo_stack`;
consecutive live previews fold into one step.

Jobs never see the document: they get :meth:`snapshot` (a copy, so a queued job is not changed
by later painting) and :meth:`pinned` (the painted tiles as a ``Pins`` object).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from plugins.levels.engine.level import Level
from plugins.levels.engine.pins import Pins
from plugins.levels.engine.render import TilesetImage
from plugins.levels.engine.report import LevelReport
from studio.errors import UserError

PREVIEW_ID = 1001
Cells = list[tuple[int, int, int]]  # (x, y, tile code)


class LevelDocument(QObject):
    """The edited level and everything that belongs to it."""

    #: a different level (or none): the view redraws it whole, palettes refill
    level_changed = Signal()
    #: tiles changed in place (painting, undo of painting): ``[(x, y, code)]``
    cells_changed = Signal(list)
    #: the content changed by an edit, an undo or a redo (a check is due)
    edited = Signal()
    #: the check result or the path changed
    report_changed = Signal()
    #: the tiles the level is drawn with changed
    tiles_changed = Signal()
    #: pinned tiles were added or cleared
    pins_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.level: Level | None = None
        self.pins: np.ndarray | None = None  # bool (H, W): tiles the user painted
        self.report: LevelReport | None = None  # the last check of the current content
        self.path: list[tuple[int, int]] = []  # the agent's path (kept while painting)
        self.tileset: TilesetImage | None = None
        self.tiles: np.ndarray | None = None  # the tileset's tiles for the level's legend
        self.tiles_error = ""
        self.undo_stack = QUndoStack(self)

    # -- what jobs get --------------------------------------------------------------------------
    def snapshot(self) -> Level | None:
        """A copy of the level for a job (later edits do not reach it)."""
        return self.level.copy() if self.level is not None else None

    def pin_count(self) -> int:
        return int(self.pins.sum()) if self.pins is not None else 0

    def pinned(self) -> Pins | None:
        """The painted tiles with their current codes (None when nothing is pinned)."""
        if self.level is None or not self.pin_count():
            return None
        return Pins.from_mask(self.pins, self.level.grid)

    # -- replacing the whole level (undoable) ---------------------------------------------------
    def set_level(self, level: Level, text: str, merge: bool = False,
                  clear_pins: bool = False) -> None:
        """Replace the edited level (one undo step; ``merge``: fold into the previous live
        preview's step; ``clear_pins``: a level of its own (opened, sampled), not a variant
        of this one, so the painted marks go)."""
        if clear_pins:
            self.pins = None
        self.undo_stack.push(_Replace(self, self.level, level, text, merge))

    def start(self, level: Level) -> None:
        """The first level: where editing starts, not an edit (no undo step)."""
        self._apply(level)
        self.undo_stack.clear()

    def _apply(self, level: Level | None) -> None:
        old = self.level
        legend_changed = level is None or old is None or old.legend != level.legend
        self.level = level
        if level is None or self.pins is None or self.pins.shape != level.grid.shape:
            self.pins = None if level is None else np.zeros(level.grid.shape, dtype=bool)
        self.report, self.path = None, []
        if legend_changed:
            self._load_tiles()
        self.level_changed.emit()
        self.report_changed.emit()
        self.edited.emit()

    # -- painting -------------------------------------------------------------------------------
    def set_cells(self, cells: Cells, pin: bool | None = True) -> None:
        """Change tiles in place (a stroke while it is painted; undo and redo of one).
        ``pin``: mark them painted (True), unmark (False) or leave the marks (None)."""
        lv = self.level
        if lv is None or not cells:
            return
        for x, y, code in cells:
            lv.grid[y, x] = code
            if self.pins is not None and pin is not None:
                self.pins[y, x] = pin
        self.cells_changed.emit(list(cells))

    def push_stroke(self, changes: list[tuple[int, int, int, int]], text: str = "Paint") -> None:
        """A finished stroke ``[(x, y, old, new)]`` (already on the level) as one undo step."""
        if changes:
            self.undo_stack.push(_Paint(self, changes, text))
            self.report = None  # stale until the next check; the path stays meanwhile
            self.report_changed.emit()
            self.edited.emit()

    def clear_pins(self) -> None:
        if self.pins is not None and self.pins.any():
            self.pins[:] = False
            self.pins_changed.emit()

    # -- checks ---------------------------------------------------------------------------------
    def set_report(self, report: LevelReport | None) -> None:
        """The check of the current content, with the agent's path."""
        self.report = report
        if report is not None:
            self.path = list(report.path)
        self.report_changed.emit()

    # -- tileset --------------------------------------------------------------------------------
    def set_tileset(self, tileset: TilesetImage | None) -> None:
        """Draw with tiles cut from an image (None: colour tiles). Raises ``UserError`` when
        the image cannot be read; the document then keeps colour tiles."""
        self.tileset = tileset
        self._load_tiles()
        if self.tiles_error:
            msg, self.tileset, self.tiles_error = self.tiles_error, None, ""
            self._load_tiles()
            raise UserError(msg)

    def _load_tiles(self) -> None:
        self.tiles, self.tiles_error = None, ""
        if self.tileset is not None and self.level is not None:
            try:
                self.tiles = self.tileset.tiles_for(self.level.legend)
            except UserError as exc:
                self.tiles_error = str(exc)
        self.tiles_changed.emit()


class _Paint(QUndoCommand):
    def __init__(self, doc: LevelDocument, changes: list[tuple[int, int, int, int]],
                 text: str) -> None:
        super().__init__(f"{text} {len(changes)} tile(s)")
        self.doc = doc
        self.changes = changes
        self._first = True

    def redo(self) -> None:
        if self._first:  # the level already shows the stroke
            self._first = False
            return
        self.doc.set_cells([(x, y, new) for x, y, _old, new in self.changes], pin=True)
        self.doc.edited.emit()

    def undo(self) -> None:
        self.doc.set_cells([(x, y, old) for x, y, old, _new in self.changes], pin=False)
        self.doc.edited.emit()


class _Replace(QUndoCommand):
    """Swap the level for another; ``merge`` folds consecutive live previews together."""

    def __init__(self, doc: LevelDocument, before: Level | None, after: Level, text: str,
                 merge: bool) -> None:
        super().__init__(text)
        self.doc = doc
        self.before = before.copy() if before is not None else None
        self.after = after.copy()
        self.merge = merge

    def id(self) -> int:
        return PREVIEW_ID if self.merge else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, _Replace) or not other.merge:
            return False
        self.after = other.after
        self.setText(other.text())
        return True

    def redo(self) -> None:
        self.doc._apply(self.after.copy())

    def undo(self) -> None:
        self.doc._apply(self.before.copy() if self.before is not None else None)
