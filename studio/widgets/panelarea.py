"""The scroll area around each plugin panel: the panel fills the window, and scroll bars
appear only when the window is smaller than the panel's *minimum* size.

Why not ``QScrollArea.setWidgetResizable(True)``: for a panel whose layout has a height for
its width (any word-wrapped label makes it so), Qt sizes the panel to its *preferred*
height for the viewport's width. Panels then grew to their children's size hints (a canvas's
or an editor's preferred size), taller than the window, and the whole panel scrolled while
its own inner scroll areas and stretchy editors never got the chance to shrink: the canvas
ended below the fold at 1280x720. Here the panel gets the viewport's size, bounded below by
its minimum size (its minimum height for that width), so stretch factors share the room that
is really there.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


class PanelArea(QScrollArea):
    """Holds one panel; ``fit()`` sizes it to the viewport (see the module docstring)."""

    def __init__(self, panel: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(False)
        self.setWidget(panel)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes into the panel, not the frame
        panel.installEventFilter(self)

    def minimum_for(self, width: int) -> tuple[int, int]:
        """The smallest size the panel accepts at ``width`` (its minimum size hint, widened
        to ``width``, and its minimum height for that width when it has one)."""
        panel = self.widget()
        if panel is None:
            return width, 0
        hint = panel.minimumSizeHint().expandedTo(panel.minimumSize())
        w = max(width, hint.width())
        h = hint.height()
        lay = panel.layout()
        if lay is not None and lay.hasHeightForWidth():
            h = max(h, lay.minimumHeightForWidth(w))
        return w, h

    def fit(self) -> None:
        panel = self.widget()
        if panel is None:
            return
        vp = self.maximumViewportSize()  # the viewport without scroll bars
        bar_v = self.verticalScrollBar().sizeHint().width()
        bar_h = self.horizontalScrollBar().sizeHint().height()
        w, h = self.minimum_for(vp.width())
        need_v = h > vp.height()
        avail_w = vp.width() - (bar_v if need_v else 0)
        if need_v:  # the width left beside the vertical bar
            w, h = self.minimum_for(avail_w)
        need_h = w > avail_w
        avail_h = vp.height() - (bar_h if need_h else 0)
        if need_h and not need_v and h > avail_h:
            avail_w = vp.width() - bar_v
        size_w, size_h = max(w, avail_w), max(h, avail_h)
        if panel.width() != size_w or panel.height() != size_h:
            panel.resize(size_w, size_h)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A panel whose minimum size changed (a section unfolded) is fitted again."""
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.fit()
        return super().eventFilter(watched, event)
