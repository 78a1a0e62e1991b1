"""A scroll area for a column of settings: it scrolls vertically only and is never narrower
than its contents.

Why: with the horizontal bar switched off, a ``QScrollArea`` whose minimum width is a guess
clips the right edge of its contents as soon as the vertical bar appears (buttons cut in half,
group borders missing). Deriving the width from the contents' own minimum plus the bar fixes
that for every plugin that puts its controls in a side column.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QScrollArea, QWidget


def vertical_scroll(content: QWidget, min_width: int = 0,
                    max_width: int | None = None) -> QScrollArea:
    """Wrap ``content`` (fully built) in a vertically scrolling area at least as wide as it."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(content)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    need = (content.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width()
            + 2 * area.frameWidth())
    area.setMinimumWidth(max(min_width, need))
    if max_width is not None:
        area.setMaximumWidth(max(max_width, area.minimumWidth()))
    return area
