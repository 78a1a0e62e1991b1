"""What generation jobs return: the levels themselves (for the editor) and where they were
saved (what the command line prints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .level import Level


@dataclass
class LevelBatch:
    levels: list[Level]
    folder: Path | None = None
    files: list[Path] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    #: the agent's results (with their paths) for the levels, where they were checked
    results: list[Any] = field(default_factory=list)
    #: what the command line prints instead of the folder (e.g. a JSON description)
    text: str | None = None

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
