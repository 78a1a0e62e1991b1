"""Helpers the writer's tests share (a module of its own name: see DEVELOPERS, Tests)."""

from __future__ import annotations

from plugins.common.training import QuietReporter


class StopAt(QuietReporter):
    """A quiet reporter that presses Stop once ``name`` is logged at ``step`` (the loop sees
    it at its next check, as it would a Stop from the window)."""

    def __init__(self, name: str = "", step: float = -1) -> None:
        super().__init__()
        self.stop_name, self.stop_step = name, step

    def metric(self, name: str, step: float, value: float) -> None:
        super().metric(name, step, value)
        if name == self.stop_name and step == self.stop_step:
            self.cancel.set()

    def go_on(self) -> None:
        """Let the next run (a resume) go to its end."""
        self.cancel.clear()
        self.stop_name = ""
