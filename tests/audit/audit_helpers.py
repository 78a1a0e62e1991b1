"""Helpers shared by the audit tests (a uniquely named module, not conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_job(plugin: str, job: str, params: Any, out: Path | None = None,
            events: list[Any] | None = None) -> Any:
    """Run one job through the studio's job runner, as the CLI and the window do."""
    from studio import registry
    from studio.jobs import JobRunner
    from studio.settings import Settings

    runner = JobRunner(events.append if events is not None else None,
                       settings=Settings(device="cpu"))
    try:
        rec = runner.submit(plugin, registry.get(plugin).job(job), params, out=out)
        runner.wait(rec.id, timeout=240)
        return rec
    finally:
        runner.shutdown()
