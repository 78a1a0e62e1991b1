"""What generation jobs return: the levels themselves (for the editor), their checks, and where
they were saved (what the command line prints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .level import Level
from .report import LevelReport


@dataclass
class LevelBatch:
    levels: list[Level]
    #: each level's check (None where it was not checked), with the agent's path
    reports: list[LevelReport | None] = field(default_factory=list)
    folder: Path | None = None
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    #: what the command line prints instead of the folder (e.g. a JSON description)
    text: str | None = None

    def report(self, index: int = 0) -> LevelReport | None:
        return self.reports[index] if 0 <= index < len(self.reports) else None

    @property
    def checked(self) -> list[LevelReport]:
        return [r for r in self.reports if r is not None]

    def __str__(self) -> str:
        """The CLI prints this: the output folder, or a one-line summary when nothing was
        saved."""
        if self.text is not None:
            return self.text
        if self.folder is not None:
            return str(self.folder)
        if self.files:
            return "\n".join(str(f) for f in self.files)
        sizes = ", ".join(f"{lv.width}x{lv.height}" for lv in self.levels[:3])
        return f"{len(self.levels)} level(s) ({sizes}) not saved"
