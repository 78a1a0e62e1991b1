"""Data-parallel training under torchrun (2 CPU processes, gloo), end to end through the CLI.

Tolerances (measured on 2 cores; each run: tiny configs, seeds fixed, same global batch):
- writer (no dropout: the "small" preset): a 2-process run's losses equal the 1-process run's
  within 1e-3 relative (measured: 1.3e-4; bf16 sums over half batches differ in the last
  bits). Every rank trains on its share of the same global batch, so the steps are the same.
- GAN (DiffAugment off): within 0.05 + 5% (measured: 0.025 at step 8): the label noise is
  drawn per share of the batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugins.common import distributed

ROOT = Path(__file__).resolve().parents[2]
WRITER = ["--tokenizer", "char", "--preset", "small", "--steps", "8", "--batch-size", "8",
          "--block-size", "32", "--eval-every", "4"]
GAN = ["--steps", "6", "--size", "32", "--train-size", "16", "--batch-size", "8",
       "--preview-every", "3", "--checkpoint-every", "3", "--log-every", "2", "--diffaug", "off"]


def studio(*args: str, nproc: int = 1, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    extra = ["--nproc-per-node", str(nproc)] if nproc > 1 else []
    res = subprocess.run([sys.executable, "-m", "studio", "run", *args, *extra], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def curves(run: Path) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.setdefault(rec["name"], []).append((rec["step"], rec["value"]))
    return out


def files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*"))


def corpus(folder: Path) -> Path:
    import random

    rnd = random.Random(0)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
             "singing", "songs", "of", "old", "kings", "and", "queens"]
    path = folder / "corpus.txt"
    path.write_text("\n".join(" ".join(rnd.choice(words) for _ in range(12))
                              for _ in range(200)))
    return path


def test_detect_reads_torchrun_environment() -> None:
    assert distributed.detect({}) is None
    assert distributed.detect({"RANK": "0", "WORLD_SIZE": "1"}) is None  # one process: alone
    env = distributed.detect({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                              "MASTER_ADDR": "node7", "MASTER_PORT": "29400"})
    assert env is not None and (env.rank, env.world_size, env.local_rank) == (3, 4, 1)
    assert not env.is_main and env.master_addr == "node7"
    assert distributed.backend_for("cuda:0") == "nccl" and distributed.backend_for("cpu") == "gloo"
    assert distributed.rank_device("cuda:0", env) == "cuda:1"
    assert distributed.current() is None and distributed.is_main()  # no process group here


@pytest.fixture(scope="module")
def writer_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("ddp_writer")
    text = corpus(root)
    one, two = root / "one", root / "two"
    studio("writer", "train", "--data", str(text), *WRITER, "--out", str(one))
    res = studio("writer", "train", "--data", str(text), *WRITER, "--out", str(two), nproc=2)
    assert res.stdout.strip().splitlines() == [str(two / "model")]  # rank 0 alone prints it
    return root, one, two


def test_writer_two_processes_match_one(writer_runs: tuple[Path, Path, Path]) -> None:
    _root, one, two = writer_runs
    a, b = curves(one), curves(two)
    assert set(a) == set(b)
    for name in ("loss/train", "loss/val"):
        assert [s for s, _ in a[name]] == [s for s, _ in b[name]]
        for (_s, x), (_s2, y) in zip(a[name], b[name], strict=True):
            assert abs(x - y) <= 1e-3 * abs(x), (name, a[name], b[name])
    assert files(one) == files(two)  # the run folder has the same shape
    # one line per metric and step: the other rank wrote nothing
    steps = [(json.loads(line)["name"], json.loads(line)["step"])
             for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps))
    run = json.loads((two / "run.json").read_text())
    assert run["state"] == "done"
    assert [d["train"] for d in run["datasets"]] == [d["train"] for d in
                                                     json.loads((one / "run.json").read_text())
                                                     ["datasets"]]


def test_writer_resumes_with_another_process_count(writer_runs: tuple[Path, Path, Path]
                                                   ) -> None:
    _root, _one, two = writer_runs
    before = curves(two)
    res = studio("writer", "train", "--steps", "10", "--resume", "--out", str(two))
    assert "resumed at step 8" in res.stderr
    after = curves(two)
    assert [p for p in after["loss/train"] if p[0] <= 8] == before["loss/train"]
    assert after["loss/train"][-1][0] == 10
    assert all(v == v and v < 10 for _s, v in after["loss/train"])


def test_gan_two_processes(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "gan"))
    from gan_helpers import make_folder

    data = make_folder(tmp_path / "bars", broken=False)
    one, two = tmp_path / "one", tmp_path / "two"
    studio("gan", "train", "--data", str(data), *GAN, "--out", str(one))
    studio("gan", "train", "--data", str(data), *GAN, "--out", str(two), nproc=2)
    a, b = curves(one), curves(two)
    assert set(a) == set(b)
    for name in ("loss/D", "loss/G"):
        assert [s for s, _ in a[name]] == [s for s, _ in b[name]]
        for (_s, x), (_s2, y) in zip(a[name], b[name], strict=True):
            assert abs(x - y) <= 0.05 + 0.05 * abs(x), (name, a[name], b[name])
    assert files(one) == files(two)
    assert (two / "generator.safetensors").exists() or any(two.glob("*.safetensors"))
