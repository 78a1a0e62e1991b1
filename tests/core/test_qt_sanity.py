"""Guards against known-broken Qt bindings (see the PySide6 pin in pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import sys
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication([])
label = QLabel()
before = sys.getrefcount(None)
for _ in range(2000):
    label.setText("a")
    label.update()
pix = QPixmap(8, 8)
painter = QPainter(pix)
for _ in range(2000):
    painter.drawLine(0, 0, 4, 4)
painter.end()
print("DELTA", sys.getrefcount(None) - before)
"""


def test_void_qt_calls_do_not_leak_references_to_none() -> None:
    """PySide6 6.12.0 took one reference from None per void call; a long training run with the
    plots open then aborted the whole studio with 'Fatal Python error: none_dealloc'."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    delta = int(proc.stdout.split("DELTA")[1])
    assert delta > -100, f"None lost {-delta} references over 6000 Qt calls"
