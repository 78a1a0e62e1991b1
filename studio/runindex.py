"""Every run of every plugin, in one list: what the window's Runs list, ``studio runs``, the
model library and the audit panel start from.

Runs live under ``<workspace>/runs/<plugin>/`` unless the user gave ``--out`` elsewhere; those
folders are remembered in ``<workspace>/runs/elsewhere.json`` when they start, so they are
listed too (and dropped from the list once their folder is gone). A run whose manifest says
"running" but whose process is gone is reported as interrupted.

No Qt, no torch.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio import manifest as manifest_mod
from studio import storage
from studio.manifest import Manifest

ELSEWHERE = "elsewhere.json"
_lock = threading.Lock()


@dataclass
class RunInfo:
    path: Path
    manifest: Manifest

    @property
    def plugin(self) -> str:
        return self.manifest.plugin

    @property
    def state(self) -> str:
        """The recorded state, or "interrupted" for a run whose process died mid-way."""
        m = self.manifest
        if m.state == "running" and not _alive(m.pid):
            return "interrupted"
        return m.state

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "path": str(self.path), "plugin": m.plugin, "job": m.job, "title": m.title,
            "state": self.state, "started": m.started, "finished": m.finished,
            "seconds": m.seconds, "result": m.result, "params": m.params,
            "datasets": [{"role": d.role, "name": d.name, "location": d.location,
                          "fingerprint": d.fingerprint, "examples": d.examples,
                          "train": d.train, "held_out": d.held_out, "unit": d.unit,
                          "examples_file": d.examples_file} for d in m.datasets],
            "models": [{"path": a.path, "model_kind": a.model_kind} for a in m.models()],
        }


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but not ours to signal
    return True


def _elsewhere_file(workspace: Path) -> Path:
    return workspace / "runs" / ELSEWHERE


def _read_elsewhere(workspace: Path) -> list[str]:
    try:
        data = json.loads(_elsewhere_file(workspace).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(p) for p in data if isinstance(p, str)] if isinstance(data, list) else []


def remember(workspace: Path, run_dir: Path) -> None:
    """Note a run folder outside the workspace's ``runs/`` so the index finds it."""
    run_dir = Path(run_dir).resolve()
    root = (Path(workspace) / "runs").resolve()
    if root in run_dir.parents:
        return
    with _lock:
        known = _read_elsewhere(workspace)
        if str(run_dir) in known:
            return
        try:
            storage.atomic_write_json(_elsewhere_file(workspace), [*known, str(run_dir)])
        except OSError:
            pass  # an unwritable workspace must not stop the run; it is just not indexed


def interrupted(workspace: Path) -> list[RunInfo]:
    """Runs the system stopped, newest first: marked "interrupted", or left "running" by a
    process that is gone (a crash, kill -9, a power cut); those are marked interrupted now,
    so they read the same everywhere."""
    out = []
    for run in scan(workspace):
        if run.state != "interrupted":
            continue
        if run.manifest.state == "running":
            run.manifest.state = "interrupted"
            try:
                manifest_mod.write(run.path, run.manifest)
            except OSError:
                pass  # a read-only folder: it still reads as interrupted
        out.append(run)
    return out


def scan(workspace: Path, plugin: str | None = None) -> list[RunInfo]:
    """Every readable run, newest first; ``plugin`` narrows it to one plugin's runs."""
    workspace = Path(workspace)
    folders: list[Path] = []
    root = workspace / "runs"
    if root.exists():
        folders += [p.parent for p in root.glob(f"*/*/{manifest_mod.FILE}")]
    folders += [Path(p) for p in _read_elsewhere(workspace)]
    seen: set[Path] = set()
    out: list[RunInfo] = []
    for folder in folders:
        key = folder.resolve()
        if key in seen:
            continue
        seen.add(key)
        m = manifest_mod.read(folder)
        if m is None or (plugin is not None and m.plugin != plugin):
            continue
        out.append(RunInfo(folder, m))
    out.sort(key=lambda r: r.manifest.started or 0.0, reverse=True)
    return out
