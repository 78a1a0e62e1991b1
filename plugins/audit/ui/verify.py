"""The audit panel's "Verify a file…" button: where an exported file came from, in words.

A file dialog, then the audit's ``verify`` job on the interactive lane (reading a big WAV or
hashing a large image is not the GUI thread's work); the job's words go to the status line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QLabel, QPushButton, QWidget

from plugins.audit.params import VerifyParams

FILTER = ("Exported files (*.png *.gif *.mid *.midi *.wav *.tmj *.json *.md *.txt *.csv);;"
          "All files (*)")


class VerifyButton(QPushButton):
    """Asks for a file, runs ``verify``, shows what it found in ``status``."""

    def __init__(self, host: Any, status: QLabel, parent: QWidget | None = None) -> None:
        super().__init__("Verify a file…", parent)
        self.host = host
        self.status = status
        self.handle: Any = None
        self.setToolTip("Say where a file the studio exported came from: the model, run, seed "
                        "and date it records, and whether it was edited since")
        self.clicked.connect(lambda: self.verify())

    def verify(self, path: str | Path | None = None) -> Any:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Verify a file", str(self.host.workspace),
                                                  FILTER)
            if not path:
                return None
        self.status.setText(f"Reading {Path(path).name}…")
        self.handle = self.host.submit("verify", VerifyParams(file=Path(path)),
                                       title="Verify a file", show_plots=False)
        self.handle.finished.connect(self._done)
        return self.handle

    def _done(self, rec: Any) -> None:
        if rec.state == "done":
            self.status.setText(str(rec.result))
        elif rec.state == "failed":
            self.status.setText(str(rec.error))
