"""Job export and run import: an exported writer job runs from its own folder with torchrun (2
CPU processes) and comes back into the workspace with its curves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from studio import cli, exportjob

ROOT = Path(__file__).resolve().parents[2]


def test_export_runs_with_torchrun_and_imports_back(tmp_path: Path, studio_home: Path) -> None:
    text = tmp_path / "mine" / "corpus.txt"
    text.parent.mkdir()
    text.write_text("\n".join(f"line {i} of a small corpus for the exported job" for i in
                              range(200)))
    job = tmp_path / "job"
    args = ["writer", "train", "--data", str(text), "--tokenizer", "char", "--preset", "small",
            "--steps", "4", "--batch-size", "4", "--block-size", "16", "--eval-every", "2"]
    assert cli.cmd_export_job([*args, "--to", str(job), "--copy-data"]) == 0
    names = sorted(p.name for p in job.iterdir())
    assert names == ["README.txt", "data", "data.json", "params.json", "run_slurm.sbatch",
                     "run_torchrun.sh"]
    for f in ("params.json", "data.json", "run_torchrun.sh", "run_slurm.sbatch"):
        body = (job / f).read_text()
        assert str(tmp_path) not in body and os.environ.get("USER", "\0") not in body
    params = json.loads((job / "params.json").read_text())
    assert params["params"]["data"] == "data/corpus.txt" and params["params"]["steps"] == 4
    data = json.loads((job / "data.json").read_text())["datasets"][0]
    import hashlib

    assert data["files"][0]["sha256"] == hashlib.sha256(text.read_bytes()).hexdigest()

    # the other machine: a studio with a home of its own
    env = {**os.environ, "PYTHON": sys.executable, "NPROC": "2", "OMP_NUM_THREADS": "1",
           "STUDIO_HOME": str(tmp_path / "elsewhere"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(["sh", str(job / "run_torchrun.sh")], env=env, capture_output=True,
                         text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (job / "run" / "metrics.jsonl").exists() and (job / "run" / "model").is_dir()

    out_lines: list[str] = []

    class Out:
        def write(self, s: str) -> None:
            out_lines.append(s)

    assert cli.cmd_runs_import([str(job)], Out()) == 0  # type: ignore[arg-type]
    imported = Path("".join(out_lines).strip())
    workspace = imported.parents[2]
    assert imported.parent == workspace / "runs" / "writer"
    assert (imported / "metrics.jsonl").read_text() == (job / "run" / "metrics.jsonl").read_text()
    from studio import runindex

    runs = runindex.scan(workspace, "writer")
    assert [r.path for r in runs] == [imported] and runs[0].state == "done"


def test_export_refuses_reserved_flags_and_import_needs_a_run(tmp_path: Path) -> None:
    import pytest

    from studio.errors import UserError

    with pytest.raises(UserError, match="--out"):
        exportjob.export_job("writer", "train", ["--out", "x"], tmp_path / "j")
    with pytest.raises(UserError, match="no run"):
        exportjob.import_run(tmp_path, tmp_path / "ws")
