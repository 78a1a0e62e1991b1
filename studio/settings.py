"""User settings: one small JSON file shared by the window and the command line.

A plain file (not QSettings) so that headless runs honour the same device and thread choices as
the window, and tests can point ``STUDIO_HOME`` at a temporary folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from studio import storage

log = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "mps", "cpu")
THEMES = ("light", "dark")


@dataclass
class Settings:
    device: str = "auto"
    cpu_threads: int = 0  # 0: torch's default (all physical cores)
    workspace: str = ""  # empty: the default workspace (STUDIO_HOME or the user data dir)
    theme: str = "light"
    last_plugin: str = ""

    def workspace_path(self) -> Path:
        return Path(self.workspace).expanduser() if self.workspace else storage.default_workspace()

    def validate(self) -> list[str]:
        """Problems a user must fix, in words (empty when all is well)."""
        problems = []
        if self.device not in DEVICES:
            problems.append(f"device must be one of {', '.join(DEVICES)}")
        if self.theme not in THEMES:
            problems.append(f"theme must be one of {', '.join(THEMES)}")
        if self.cpu_threads < 0:
            problems.append("CPU threads cannot be negative")
        return problems


def settings_path() -> Path:
    return storage.config_dir() / "settings.json"


def load() -> Settings:
    """Read settings; a missing file gives defaults, a broken one is reported and replaced."""
    path = settings_path()
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(Settings)}
        s = Settings(**{k: v for k, v in raw.items() if k in known})
    except (OSError, ValueError, TypeError) as exc:
        log.warning("settings file %s is unreadable (%s); using defaults", path, exc)
        return Settings()
    if s.validate():
        log.warning("settings file %s has invalid values (%s); using defaults", path, s.validate())
        return Settings()
    return s


def save(s: Settings) -> Path:
    problems = s.validate()
    if problems:
        raise ValueError("; ".join(problems))
    return storage.atomic_write_json(settings_path(), asdict(s))
