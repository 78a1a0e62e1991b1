"""One resume test for every trainer: Stop a real training job mid-run, Resume it, and compare
with the same job run without a break.

Through the studio's own job runner (the path the window and the CLI take), each plugin's
training job must give:
- the same final weights as the uninterrupted run (bit for bit on one CPU thread);
- a ``metrics.jsonl`` with the same points: none missing after the resume step (the music
  defect), none duplicated, the same values;
- a run manifest with two sessions, the first one cancelled.

Usage from a plugin's tests::

    from resume_check import assert_exact_resume
    assert_exact_resume(tmp_path, "gan", "train", lambda resume: TrainParams(..., resume=resume),
                        weights=lambda run: load_tensors(run / "generator.safetensors"))
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from studio import jobs, manifest, registry
from studio.jobs import CANCELLED, DONE, Event, JobRunner
from studio.settings import Settings


def _metrics(run: Path) -> list[tuple[str, float, float]]:
    rows = []
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        rows.append((rec["name"], float(rec["step"]), float(rec["value"])))
    return rows


def assert_exact_resume(tmp_path: Path, plugin: str, job: str,
                        params: Callable[[bool], Any],
                        weights: Callable[[Path], Mapping[str, Any]],
                        *, cancel_after_metrics: int = 1, atol: float = 0.0,
                        workspace: Path | None = None, timeout: float = 240,
                        measured: Collection[str] = ()) -> int:
    """Run ``job`` whole into ``tmp_path/whole``; run it into ``tmp_path/parts``, Stop it once
    it has logged ``cancel_after_metrics`` metric points, Resume it to the end; compare.
    ``params(resume)`` builds the job's params. ``measured`` names metrics that measure the
    machine rather than the model (tokens per second): their points must match, their values
    cannot. Returns the step the Stop landed on."""
    spec = registry.get(plugin).job(job)
    settings = Settings(workspace=str(workspace or tmp_path / "ws"), device="cpu",
                        cpu_threads=1)
    seen = {"n": 0}
    target: dict[str, int] = {}
    lock = threading.Lock()
    runner: JobRunner

    def listen(ev: Event) -> None:
        if ev.kind != "metrics" or ev.job_id != target.get("id"):
            return
        with lock:
            before = seen["n"]
            seen["n"] += len(ev.data["points"])
            if before < cancel_after_metrics <= seen["n"]:
                runner.cancel(ev.job_id)

    import torch

    threads_before = torch.get_num_threads()
    batch_s, jobs.METRIC_BATCH_S = jobs.METRIC_BATCH_S, 0.0  # each point at once: Stop lands
    runner = JobRunner(listen, settings=settings)            # after exactly N of them
    try:
        whole = runner.submit(plugin, spec, params(False), out=tmp_path / "whole")
        runner.wait(whole.id, timeout)
        assert whole.state == DONE, whole.error
        first = runner.submit(plugin, spec, params(False), out=tmp_path / "parts")
        target["id"] = first.id
        runner.wait(first.id, timeout)
        assert first.state == CANCELLED, (first.state, first.error)
        cut = max(step for _, step, _ in _metrics(tmp_path / "parts"))
        second = runner.submit(plugin, spec, params(True), out=tmp_path / "parts")
        runner.wait(second.id, timeout)
        assert second.state == DONE, second.error
    finally:
        runner.shutdown(10)
        torch.set_num_threads(threads_before)
        jobs.METRIC_BATCH_S = batch_s

    compare_metrics(_metrics(tmp_path / "whole"), _metrics(tmp_path / "parts"), atol,
                    measured)
    wa, wb = weights(tmp_path / "whole"), weights(tmp_path / "parts")
    assert wa.keys() == wb.keys()
    for k in wa:
        x, y = np.asarray(_numpy(wa[k])), np.asarray(_numpy(wb[k]))
        assert np.allclose(x, y, rtol=0, atol=atol), k
    m = manifest.read(tmp_path / "parts")
    assert m is not None and m.state == DONE
    assert [s.state for s in m.sessions] == [CANCELLED]
    return int(cut)


def compare_metrics(a: list[tuple[str, float, float]], b: list[tuple[str, float, float]],
                    atol: float = 0.0, measured: Collection[str] = ()) -> None:
    """The resumed run's curves ``b`` against the uninterrupted ``a``: the same points, none
    duplicated, the same values (except the ``measured`` metrics' values)."""
    keys_a = sorted((n, s) for n, s, _ in a)
    keys_b = sorted((n, s) for n, s, _ in b)
    assert len(set(keys_b)) == len(keys_b), "duplicated metric points after resume"
    assert keys_a == keys_b, "the resumed run's curves differ in their points"
    values_a = {(n, s): v for n, s, v in a}
    for n, s, v in b:
        if n in measured:
            continue
        assert np.isclose(v, values_a[(n, s)], rtol=1e-5, atol=max(atol, 1e-7)), (n, s, v)


def _numpy(x: Any) -> Any:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else x
