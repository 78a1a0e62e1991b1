"""Run folders: where a job's metrics, configuration, samples and checkpoints live.

Layout (``RUN`` is ``--out`` or ``<workspace>/runs/<plugin>/<timestamp>-<job>``)::

    RUN/run.json        written by the host: plugin, job, params, state, times, result, datasets,
                        artifacts. The audit panel and "Open run" read this.
    RUN/config.json     written by the job: what it needs to rebuild its model
    RUN/metrics.jsonl   one {"step", "name", "value", "time"} object per line
    RUN/samples/ RUN/checkpoints/

Metrics are appended through a buffered file that is flushed every second and at the end, so a
crash loses at most a second of curve and never corrupts earlier lines (a torn last line is
skipped when read back).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import storage

RUN_MANIFEST = "run.json"
METRICS_FILE = "metrics.jsonl"


def new_run_dir(workspace: Path, plugin_id: str, job: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = workspace / "runs" / plugin_id
    path = base / f"{stamp}-{_slug(job)}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{_slug(job)}-{n}"
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "job"


@dataclass
class RunManifest:
    plugin: str
    job: str
    params: dict[str, Any]
    state: str = "running"
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: str | None = None
    error: str | None = None
    device: str = ""
    datasets: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier sessions (resumes)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class MetricsWriter:
    """Appends metric lines; thread-safe; flushes at most once a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115 - long-lived
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def write(self, name: str, step: float, value: float, t: float) -> None:
        value = float(value)
        rec = {"step": step, "name": name,
               "value": value if math.isfinite(value) else str(value), "time": round(t, 3)}
        line = json.dumps(rec) + "\n"
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(line)
            now = time.monotonic()
            if now - self._last_flush > 1.0:
                self._fh.flush()
                self._last_flush = now

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, tuple[list[float], list[float]]]:
    """``{name: (steps, values)}`` from a run's metrics.jsonl; torn or foreign lines are skipped."""
    path = Path(run_dir) / METRICS_FILE
    out: dict[str, tuple[list[float], list[float]]] = {}
    if not path.exists():
        return out
    for rec in _iter_jsonl(path):
        try:
            name = str(rec["name"])
            step = float(rec["step"])
            value = float(rec["value"])
        except (KeyError, TypeError, ValueError):
            continue
        steps, values = out.setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
    return out


def truncate_metrics(run_dir: str | os.PathLike[str], after_step: float) -> None:
    """Drop metric lines with ``step > after_step`` (resume from a checkpoint older than the
    last logged step must not leave a duplicated tail on the curves)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    keep = [json.dumps(r) for r in _iter_jsonl(path) if _step_of(r) <= after_step]
    storage.atomic_write_text(path, "".join(line + "\n" for line in keep))


def _step_of(rec: dict[str, Any]) -> float:
    try:
        return float(rec.get("step", 0))
    except (TypeError, ValueError):
        return 0.0


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn last line after a crash
            if isinstance(rec, dict):
                yield rec


def read_manifest(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(run_dir) / RUN_MANIFEST
    try:
        data = storage.read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_runs(workspace: Path, plugin_id: str | None = None) -> list[Path]:
    """Every run folder under the workspace (newest first); the audit panel starts here."""
    root = workspace / "runs"
    if not root.exists():
        return []
    pattern = f"{plugin_id}/*/{RUN_MANIFEST}" if plugin_id else f"*/*/{RUN_MANIFEST}"
    found = [p.parent for p in root.glob(pattern)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


class RunDir:
    """The host's handle on a run folder while a job writes into it."""

    def __init__(self, path: Path, manifest: RunManifest) -> None:
        self.path = path
        self.manifest = manifest
        self.metrics = MetricsWriter(path / METRICS_FILE)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, plugin: str, job: str, params: dict[str, Any], device: str
             ) -> RunDir:
        path.mkdir(parents=True, exist_ok=True)
        manifest = RunManifest(plugin=plugin, job=job, params=_jsonable(params), device=device)
        old = read_manifest(path)
        if old:  # resuming into an existing run: keep what was recorded before
            manifest.history = [*old.get("history", []),
                                {k: old.get(k) for k in ("job", "params", "state", "started",
                                                         "finished", "result", "error")}]
            manifest.datasets = list(old.get("datasets", []))
            manifest.artifacts = list(old.get("artifacts", []))
        run = cls(path, manifest)
        run.save_manifest()
        return run

    def save_manifest(self) -> None:
        with self._lock:
            storage.atomic_write_json(self.path / RUN_MANIFEST, self.manifest.to_json())

    def add_dataset(self, path: str | os.PathLike[str], **info: Any) -> None:
        entry = {"path": str(path), **_jsonable(info)}
        with self._lock:
            self.manifest.datasets = [d for d in self.manifest.datasets
                                      if d.get("path") != entry["path"]] + [entry]
        self.save_manifest()

    def add_artifact(self, path: str | os.PathLike[str], kind: str, **info: Any) -> None:
        entry = {"path": str(path), "kind": kind, **_jsonable(info)}
        with self._lock:
            self.manifest.artifacts = [a for a in self.manifest.artifacts
                                       if a.get("path") != entry["path"]] + [entry]
        self.save_manifest()

    def truncate_metrics(self, after_step: float) -> None:
        """Drop curve points after ``after_step`` (resume) and keep logging into the new file.

        The open writer must be closed and reopened around the swap: ``os.replace`` leaves it
        appending to the old, unlinked file otherwise, and every later point would be lost.
        """
        with self._lock:
            self.metrics.close()
            truncate_metrics(self.path, after_step)
            self.metrics = MetricsWriter(self.path / METRICS_FILE)

    def finish(self, state: str, result: Any = None, error: str | None = None) -> None:
        self.metrics.close()
        self.manifest.state = state
        self.manifest.finished = time.time()
        self.manifest.result = None if result is None else str(result)
        self.manifest.error = error
        self.save_manifest()


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=storage._json_default))


def iter_metric_records(path: Path) -> Iterable[dict[str, Any]]:
    return _iter_jsonl(path)
