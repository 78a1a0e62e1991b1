"""User settings: one small JSON file shared by the window and the command line.

A plain file (not QSettings) so that headless runs honour the same device and thread choices as
the window, and tests can point ``STUDIO_HOME`` at a temporary folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

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
    model_folders: list[str] = field(default_factory=list)  # searched by the model library
    notify_when_done: bool = True  # a desktop notification when a long job ends unseen
    cache_limit_gb: float = 2.0  # prepared data kept in the workspace (studio.cache); 0: off

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
        if not isinstance(self.cache_limit_gb, int | float) or self.cache_limit_gb < 0:
            problems.append("the cache size limit must be a number of gigabytes, 0 or more")
        if not isinstance(self.model_folders, list) or not all(
                isinstance(f, str) for f in self.model_folders):
            problems.append("model folders must be a list of folder paths")
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
    return storage.atomic_write_json(settings_path(), asdict(s), private=True)


class PluginStore:
    """What one plugin's panel remembers between sessions: the last values of each job's
    form and small bits of UI state. One JSON file per plugin beside ``settings.json``
    (``plugins/<id>.json``), written atomically; a broken file is replaced, never fatal."""

    def __init__(self, plugin_id: str, folder: Path | None = None) -> None:
        self.path = (folder or storage.config_dir() / "plugins") / f"{plugin_id}.json"
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self._data = raw if isinstance(raw, dict) else {}
            except (OSError, ValueError):
                self._data = {}
        return self._data

    def get(self, section: str, key: str, default: Any = None) -> Any:
        sec = self._load().get(section)
        return sec.get(key, default) if isinstance(sec, dict) else default

    def put(self, section: str, key: str, value: Any) -> None:
        data = self._load()
        sec = data.get(section)
        if not isinstance(sec, dict):
            sec = data[section] = {}
        if sec.get(key) == value:
            return
        sec[key] = value
        try:
            storage.atomic_write_json(self.path, data)
        except OSError as exc:  # a read-only config folder costs the memory, not the work
            log.warning("could not remember %s/%s in %s: %s", section, key, self.path, exc)
