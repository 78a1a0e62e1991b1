"""Every plugin's panel fits a laptop screen mid-job (issue 16): at 1280x720 and 1366x768,
with the Jobs strip and the Live plots dock open, the panel's primary button is on screen
without scrolling, and the panel itself does not scroll (so no scroll area ends up inside
another one).

A panel names its main button with ``setObjectName("primary")`` (the window's Ctrl+Enter
presses it); a panel with tabs has one per tab, and each tab is checked.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QTabWidget, QWidget

from studio.registry import discover
from studio.window import MainWindow

#: plugins other sessions are still fitting: the test documents where they stand
NOT_YET: dict[str, str] = {}
SIZES = [(1280, 720), (1366, 768)]
#: the studio's own plugins (the test suite's fake ones use the generic job-form page)
PLUGINS = [r.id for r in discover()
           if r.plugin is not None and type(r.plugin).__module__.startswith("plugins.")]


def _tabs(panel: QWidget) -> list[tuple[QTabWidget, int]]:
    """Every (tab widget, index) of the panel's top-level tab widgets."""
    out = []
    for tabs in panel.findChildren(QTabWidget):
        if any(isinstance(p, QTabWidget) for p in _ancestors(tabs, panel)):
            continue
        out += [(tabs, i) for i in range(tabs.count())]
    return out


def _ancestors(w: QWidget, stop: QWidget) -> list[QWidget]:
    out = []
    p = w.parentWidget()
    while p is not None and p is not stop:
        out.append(p)
        p = p.parentWidget()
    return out


def _visible_primaries(panel: QWidget) -> list[QAbstractButton]:
    return [b for b in panel.findChildren(QAbstractButton, "primary") if b.isVisible()]


def _check_page(win: MainWindow, pid: str, where: str) -> None:
    QTest.qWait(30)
    area = win._containers[pid]
    panel = win.panels[pid]
    vp = area.viewport()
    assert panel.height() <= vp.height() and panel.width() <= vp.width(), (
        f"{pid} {where}: the panel scrolls (it needs {panel.minimumSizeHint().width()}x"
        f"{area.minimum_for(vp.width())[1]}, the window has {vp.width()}x{vp.height()})")
    buttons = _visible_primaries(panel)
    assert buttons, f"{pid} {where}: no visible button named 'primary'"
    for b in buttons:
        top_left = b.mapTo(vp, QPoint(0, 0))
        rect = QRect(top_left, b.size())
        assert vp.rect().contains(rect), (
            f"{pid} {where}: '{b.text()}' at {rect.getRect()} is outside the visible "
            f"{vp.width()}x{vp.height()}")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("pid", PLUGINS)
def test_primary_action_visible_mid_job(qtbot, pid: str, size: tuple[int, int],
                                        request: pytest.FixtureRequest) -> None:
    if pid in NOT_YET:
        request.applymarker(pytest.mark.xfail(reason=NOT_YET[pid], strict=False))
    win = MainWindow()
    qtbot.addWidget(win)
    win._force_close = True
    try:
        win.resize(*size)
        win.show()
        win.select_plugin(pid)
        # mid-job: the Jobs strip and the plots dock are open (as a job's first metric opens
        # them), so the panel has the room it has while a job runs
        win._reveal(win.jobs_dock)
        win._reveal(win.plots_dock)
        QTest.qWait(30)
        panel = win.panels[pid]
        tabs = _tabs(panel)
        if not tabs:
            _check_page(win, pid, f"at {size}")
        for tab_widget, i in tabs:
            tab_widget.setCurrentIndex(i)
            _check_page(win, pid, f"at {size}, tab '{tab_widget.tabText(i)}'")
    finally:
        win.shutdown(5)
