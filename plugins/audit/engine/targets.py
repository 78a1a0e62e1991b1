"""What the audit can audit: runs, their plugins' probes, and reading a run through its probe.

A run is auditable when its folder has a manifest, its plugin is installed and declares an
audit probe (``Plugin.audit_probe``), and it recorded its training examples. Every other case
gets a message saying which of these is missing and what to do, never a traceback.

No Qt; imports a plugin's probe module only when a run of that plugin is audited.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plugins.common.probes import BATCH, ITEM_KINDS, ProbeExample, check_item
from studio import manifest as manifest_mod
from studio import registry, runindex
from studio.errors import UserError
from studio.manifest import Manifest

Check = Callable[[], None]
Progress = Callable[[int, int], None]


def resolve_run(value: Path | str, workspace: Path | None = None) -> Path:
    """A run folder from what the user typed: a path, or a run folder's name in the
    workspace."""
    p = Path(value).expanduser()
    if p.is_dir():
        return p.resolve()
    if workspace is not None and not p.is_absolute() and len(p.parts) == 1:
        hits = [r.path for r in runindex.scan(workspace) if r.path.name == p.name]
        if len(hits) == 1:
            return hits[0].resolve()
        if len(hits) > 1:
            raise UserError(f"several runs are called {p.name}: give the run folder's path")
    raise UserError(f"{p} is not a folder: give a run folder (see `studio runs`)")


def read_manifest(run_dir: Path) -> Manifest:
    m = manifest_mod.read(run_dir)
    if m is None:
        raise UserError(f"{Path(run_dir).name} has no run manifest (run.json), so it is not a "
                        "studio run: choose a folder made by a training job (see `studio runs`)")
    return m


def probe_class(run_dir: Path) -> tuple[Manifest, type]:
    """The manifest of a run and its plugin's probe class, or a clear ``UserError``."""
    m = read_manifest(run_dir)
    try:
        plugin = registry.get(m.plugin)
    except UserError as exc:
        raise UserError(f"the run {Path(run_dir).name} was made by the {m.plugin!r} plugin, "
                        f"which is not available: {exc}") from exc
    if not plugin.audit_probe:
        raise UserError(f"runs of the {plugin.name or m.plugin} plugin are not auditable yet: "
                        "the plugin does not provide an audit probe")
    try:
        cls = plugin.load_audit_probe()
    except Exception as exc:  # a broken probe module must not look like a broken audit
        raise UserError(f"the {m.plugin} plugin's audit probe failed to load: "
                        f"{type(exc).__name__}: {exc}") from exc
    if cls is None or getattr(cls, "item_kind", "") not in ITEM_KINDS:
        raise UserError(f"the {m.plugin} plugin's audit probe does not say what its items are "
                        f"(item_kind must be one of {', '.join(ITEM_KINDS)})")
    if m.dataset(manifest_mod.TRAIN) is None or not any(
            True for _ in manifest_mod.read_examples(run_dir)):
        raise UserError(f"the run {Path(run_dir).name} did not record which examples trained "
                        "it, so it cannot be audited: train it again with this version of the "
                        "studio")
    return m, cls


@dataclass
class Target:
    run: Path
    plugin: str
    job: str
    state: str
    auditable: bool
    reason: str  # why not, in words for the user ("" when auditable)


def list_targets(workspace: Path) -> list[Target]:
    """Every run in the workspace with whether it can be audited, and if not, why: a plugin
    without a probe is listed as "not auditable yet", not hidden."""
    probes: dict[str, str] = {}
    for rec in registry.discover():
        if rec.plugin is not None:
            probes[rec.id] = rec.plugin.audit_probe
    out = []
    for r in runindex.scan(workspace):
        m = r.manifest
        if m.plugin == "audit":
            continue
        reason = ""
        if m.plugin not in probes:
            reason = f"the {m.plugin} plugin is not installed"
        elif not probes[m.plugin]:
            reason = "not auditable yet (the plugin has no audit probe)"
        elif (ds := m.dataset(manifest_mod.TRAIN)) is None or not ds.examples_file:
            reason = "the run did not record its training examples"
        elif not m.models():
            reason = "the run has no model yet"
        out.append(Target(r.path, m.plugin, m.job, r.state, not reason, reason))
    return out


# ----------------------------------------------------------------------------------------------
# Reading through a probe
# ----------------------------------------------------------------------------------------------
def read_items(probe: Any, examples: Sequence[ProbeExample], check: Check | None = None
               ) -> list[Any]:
    items = []
    for i, e in enumerate(examples):
        if check is not None and i % BATCH == 0:
            check()
        item = probe.read(e)
        problem = check_item(probe.item_kind, item)
        if problem:
            raise UserError(f"the audit probe read {e.id} wrongly: {problem}")
        items.append(item)
    return items


def losses(probe: Any, examples: Sequence[ProbeExample], check: Check | None = None,
           progress: Progress | None = None) -> np.ndarray:
    """The probe's per-example loss of every example, read and scored :data:`BATCH` at a
    time."""
    out = np.empty(len(examples), dtype=np.float64)
    for s in range(0, len(examples), BATCH):
        if check is not None:
            check()
        chunk = examples[s:s + BATCH]
        items = read_items(probe, chunk)
        v = np.asarray(probe.per_example_loss(items), dtype=np.float64).reshape(-1)
        if v.shape != (len(chunk),) or not np.all(np.isfinite(v)):
            raise UserError("the audit probe gave a wrong or non-finite loss: the plugin's "
                            "probe needs fixing")
        out[s:s + len(chunk)] = v
        if progress is not None:
            progress(s + len(chunk), len(examples))
    return out


def embed(probe: Any, items: Sequence[Any], check: Check | None = None) -> np.ndarray:
    parts = []
    for s in range(0, len(items), BATCH):
        if check is not None:
            check()
        parts.append(np.asarray(probe.embed(items[s:s + BATCH]), dtype=np.float64))
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def sample(probe: Any, n: int, seed: int, check: Check | None = None,
           progress: Progress | None = None) -> list[Any]:
    """``n`` samples, :data:`BATCH` at a time with seeds ``seed``, ``seed + 1``, ... (the same
    samples for the same seed and ``n``)."""
    out: list[Any] = []
    for k, s in enumerate(range(0, n, BATCH)):
        if check is not None:
            check()
        m = min(BATCH, n - s)
        got = list(probe.sample(m, seed + k))
        for it in got:
            problem = check_item(probe.item_kind, it)
            if problem:
                raise UserError(f"the audit probe generated a wrong item: {problem}")
        out += got[:m]
        if progress is not None:
            progress(len(out), n)
    return out
