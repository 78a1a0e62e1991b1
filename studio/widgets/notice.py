"""A notice across the top of the window: runs the system interrupted, offered to resume.

Not a dialog: the studio opens straight into work (and renders offscreen in tests) while the
notice waits; each run has its own Resume, and Dismiss hides them until another run is
interrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio import fmt
from studio.runindex import RunInfo


class InterruptedNotice(QFrame):
    """'These runs were interrupted' with Resume and Open for each (at most three shown)."""

    def __init__(self, runs: list[RunInfo], names: dict[str, str],
                 resume: Callable[[Path], None], open_run: Callable[[Path], None],
                 dismiss: Callable[[list[Path]], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.runs = runs
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 4, 10, 4)
        lay.setSpacing(2)
        n = len(runs)
        head = QLabel(f"{n} training run{'s were' if n > 1 else ' was'} interrupted and kept "
                      f"{'their' if n > 1 else 'its'} last checkpoint:")
        head.setToolTip("The computer shut down, the session ended, or the studio was stopped "
                        "while it trained.")
        close = QPushButton("Dismiss")
        close.setToolTip("Hide this; the runs stay under File → Recent runs")
        close.clicked.connect(lambda: self._dismiss(dismiss))
        top = QHBoxLayout()
        top.addWidget(head, 1)
        top.addWidget(close)
        lay.addLayout(top)
        self.resume_buttons: list[QPushButton] = []
        for run in runs[:3]:
            m = run.manifest
            row = QHBoxLayout()
            text = QLabel(f"{m.title or m.job} ({names.get(m.plugin, m.plugin)}), "
                          f"started {fmt.when(m.started)}")
            row.addWidget(text, 1)
            go = QPushButton("Resume")
            go.setToolTip("Continue training where it stopped")
            go.clicked.connect(lambda _=False, p=run.path: self._resume(p, resume))
            show = QPushButton("Open")
            show.setToolTip("Show its curves and settings")
            show.clicked.connect(lambda _=False, p=run.path: open_run(p))
            row.addWidget(go)
            row.addWidget(show)
            self.resume_buttons.append(go)
            lay.addLayout(row)
        if n > 3:
            lay.addWidget(QLabel(f"… and {n - 3} more under File → Recent runs."))

    def _dismiss(self, dismiss: Callable[[list[Path]], None]) -> None:
        dismiss([r.path for r in self.runs])
        self.hide()

    def _resume(self, path: Path, resume: Callable[[Path], None]) -> None:
        resume(path)
        self.runs = [r for r in self.runs if r.path != path]
        if not self.runs:
            self.hide()
