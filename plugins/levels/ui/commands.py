"""Undoable edits of the editor: a paint stroke, and replacing the whole level (generate,
regenerate a region, repair, open). Live previews merge into one undo step."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from plugins.levels.engine.level import Level

from .view import TileView

PREVIEW_ID = 1001


class PaintCommand(QUndoCommand):
    def __init__(self, view: TileView, changes: list[tuple[int, int, int, int]],
                 text: str = "Paint") -> None:
        super().__init__(f"{text} {len(changes)} tile(s)")
        self.view = view
        self.changes = changes
        self._first = True

    def redo(self) -> None:
        if self._first:  # the view already shows the stroke
            self._first = False
            return
        self.view.set_cells([(x, y, new) for x, y, _old, new in self.changes], pin=True)

    def undo(self) -> None:
        self.view.set_cells([(x, y, old) for x, y, old, _new in self.changes], pin=False)


class LevelCommand(QUndoCommand):
    """Swap the level for another; ``merge=True`` folds consecutive live previews together."""

    def __init__(self, apply: Callable[[Level | None], None], before: Level | None,
                 after: Level, text: str, merge: bool = False) -> None:
        super().__init__(text)
        self.apply = apply
        self.before = before.copy() if before is not None else None
        self.after = after.copy()
        self.merge = merge

    def id(self) -> int:
        return PREVIEW_ID if self.merge else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, LevelCommand) or not other.merge:
            return False
        self.after = other.after
        self.setText(other.text())
        return True

    def redo(self) -> None:
        self.apply(self.after.copy())

    def undo(self) -> None:
        self.apply(self.before.copy() if self.before is not None else None)
