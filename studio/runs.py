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
from pathlib import Path
from typing import Any

from studio import manifest as manifest_mod
from studio import storage
from studio.manifest import Manifest

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


class MetricsWriter:
    """Appends metric lines; thread-safe; flushes at most once a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115 - long-lived
        self._lock = threading.Lock()
        self.lines = 0
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
            self.lines += 1
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
    """The run's manifest as plain JSON of the current schema (upgraded when older); None when
    the folder has none. Typed access: :func:`studio.manifest.read`."""
    m = manifest_mod.read(run_dir)
    return m.to_json() if m is not None else None


def list_runs(workspace: Path, plugin_id: str | None = None) -> list[Path]:
    """Every run folder of the workspace, newest first (see :mod:`studio.runindex` for runs
    kept elsewhere too)."""
    root = workspace / "runs"
    if not root.exists():
        return []
    pattern = f"{plugin_id}/*/{RUN_MANIFEST}" if plugin_id else f"*/*/{RUN_MANIFEST}"
    found = [p.parent for p in root.glob(pattern)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


class RunDir:
    """The host's handle on a run folder while a job writes into it."""

    def __init__(self, path: Path, manifest: Manifest,
                 previous: Manifest | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.metrics = MetricsWriter(path / METRICS_FILE)
        self.previous = previous  # the folder's run before this session, if it had one
        self._lock = threading.Lock()
        self._t0 = time.time()
        self._seconds_before = manifest.seconds
        self._changed = False

    @classmethod
    def open(cls, path: Path, plugin: str, job: str, params: dict[str, Any], device: str,
             title: str = "", workspace: Path | None = None) -> RunDir:
        """Start (or, in a folder that holds a run, continue) a run: the earlier session is
        kept in ``sessions`` with its datasets and artifacts."""
        path.mkdir(parents=True, exist_ok=True)
        now = manifest_mod.Manifest(plugin=plugin, job=job, params=_jsonable(params),
                                    title=title, device=device,
                                    code=manifest_mod.code_version(), pid=os.getpid())
        old = manifest_mod.read(path)
        if old is not None:
            now.sessions = [*old.sessions, manifest_mod.Session(
                job=old.job, params=old.params, state=old.state, started=old.started,
                finished=old.finished, error=old.error, device=old.device, code=old.code)]
            now.datasets = list(old.datasets)
            now.artifacts = list(old.artifacts)
            now.seconds = old.seconds
        run = cls(path, now, old)
        run.save_manifest()
        if workspace is not None:
            from studio import runindex

            runindex.remember(workspace, path)
        return run

    def save_manifest(self) -> None:
        with self._lock:
            self.manifest.seconds = round(self._seconds_before + time.time() - self._t0, 3)
            manifest_mod.write(self.path, self.manifest)

    def record_data(self, dataset: manifest_mod.Dataset) -> manifest_mod.Dataset | None:
        """Record a dataset (replacing the one with the same role); returns the one it
        replaced, so a resumed run can tell whether its data changed."""
        with self._lock:
            old = self.manifest.dataset(dataset.role)
            self._changed = True
            self.manifest.datasets = [d for d in self.manifest.datasets
                                      if d.role != dataset.role] + [dataset]
        self.save_manifest()
        return old

    def add_dataset(self, path: str | os.PathLike[str], **info: Any) -> None:
        """A dataset described without its examples (jobs that read no training data)."""
        role = str(info.pop("role", "train"))
        n = next((int(v) for k in ("files", "images", "phrases", "windows", "levels")
                  if isinstance(v := info.get(k), int | float)), 0)
        self.record_data(manifest_mod.Dataset(
            role=role, name=Path(path).name, location=str(path),
            fingerprint=str(info.pop("fingerprint", "") or ""), examples=n, train=n,
            held_out=0, info=_jsonable(info)))

    def add_artifact(self, path: str | os.PathLike[str], kind: str, model_kind: str = "",
                     **info: Any) -> manifest_mod.Artifact:
        """Record a file or folder the run made, with its size and (files) content hash."""
        p = Path(path)
        try:
            rel = p.resolve().relative_to(self.path.resolve()).as_posix()
        except ValueError:
            rel = str(p)
        sha, size = "", 0
        if p.is_file():
            sha, size = manifest_mod.sha256_file(p), p.stat().st_size
        elif p.is_dir():
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        entry = manifest_mod.Artifact(rel, kind, model_kind, sha, size, _jsonable(info))
        with self._lock:
            self._changed = True
            self.manifest.artifacts = [a for a in self.manifest.artifacts
                                       if a.path != entry.path] + [entry]
        self.save_manifest()
        return entry

    def truncate_metrics(self, after_step: float) -> None:
        """Drop curve points after ``after_step`` (resume) and keep logging into the new file.

        The open writer must be closed and reopened around the swap: ``os.replace`` leaves it
        appending to the old, unlinked file otherwise, and every later point would be lost.
        """
        with self._lock:
            self._changed = True
            self.metrics.close()
            truncate_metrics(self.path, after_step)
            self.metrics = MetricsWriter(self.path / METRICS_FILE)

    @property
    def touched(self) -> bool:
        """Whether this session changed the run: wrote a curve point, data or an artifact."""
        return self.metrics.lines > 0 or self._changed

    def finish(self, state: str, result: Any = None, error: str | None = None) -> None:
        """Record how the session ended. A session that failed before changing anything in a
        folder that already held a run (a new run refused there, a wrong setting) leaves that
        run's manifest as it was: the user was told, and the run is not the worse for it."""
        self.metrics.close()
        if state == "failed" and self.previous is not None and not self.touched:
            with self._lock:
                manifest_mod.write(self.path, self.previous)
            return
        self.manifest.state = state
        self.manifest.finished = time.time()
        self.manifest.result = None if result is None else _relative(self.path, result)
        self.manifest.error = error
        self.save_manifest()


def _relative(run_dir: Path, result: Any) -> str:
    """A result inside the run folder is recorded relative to it (the folder can move)."""
    text = str(result)
    try:
        p = Path(text)
        if p.is_absolute() and p.exists():
            rel = p.resolve().relative_to(run_dir.resolve()).as_posix()
            return rel or "."
    except (ValueError, OSError):
        pass
    return text


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=storage._json_default))


def iter_metric_records(path: Path) -> Iterable[dict[str, Any]]:
    return _iter_jsonl(path)
