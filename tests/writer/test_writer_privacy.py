"""Training the writer privately (DP-SGD through Opacus, one record = one passage of the
context): exact resume, the spent ε against Opacus's own accountant, a stopped run's ε, what
the run says and records."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from writer_helpers import StopAt

from plugins.common.privacy import METRIC
from plugins.common.training import QuietReporter
from plugins.writer.engine.pipeline import TrainRequest, run_training
from studio import storage
from studio.errors import Cancelled

#: a fixed noise seed makes the run reproducible (a real run keeps it secret)
PRIVATE = {"epsilon": 8.0, "noise_seed": 5}


def _opacus_epsilon(history: list[list[float]], delta: float) -> float:
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(float(s), float(q), int(n)) for s, q, n in history]
    return float(acc.get_epsilon(delta=delta))


def _req(corpus: Path, **kw) -> TrainRequest:
    return TrainRequest(data=[str(corpus)], extra={"log_every": 1}, privacy=dict(PRIVATE),
                        **kw)


def test_a_private_train_job_resumes_exactly(tmp_path: Path, corpus_file: Path) -> None:
    from resume_check import assert_exact_resume

    from plugins.writer.params import TrainParams
    from studio import manifest
    from studio.storage import load_tensors

    cut = assert_exact_resume(
        tmp_path, "writer", "train",
        lambda resume: TrainParams(data=corpus_file, preset="tiny", steps=6, batch_size=2,
                                   block_size=16, eval_every=2, seed=3, resume=resume,
                                   private=True, **PRIVATE),
        weights=lambda run: load_tensors(run / "model" / "model.safetensors"),
        measured=("tokens_per_s",))
    assert 0 < cut < 6
    run = tmp_path / "parts"
    dp = storage.load_state(run / "checkpoints" / "last.safetensors")["privacy"]
    assert sum(int(n) for _, _, n in dp["history"]) == 6
    spent = _opacus_epsilon(dp["history"], dp["delta"])
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    points = [(r["step"], r["value"]) for r in curve if r["name"] == METRIC]
    assert points[-1][0] == 6 and points[-1][1] == pytest.approx(spent, rel=1e-9)
    saved = json.loads((run / "model" / "studio.json").read_text())
    assert saved["privacy"]["epsilon"] == pytest.approx(spent)
    assert saved["privacy"]["unit"] == "passage of 16 tokens"
    m = manifest.read(run)
    assert m is not None and m.models()[-1].info["privacy"]["epsilon"] == pytest.approx(spent)


def test_a_stopped_private_run_saves_what_it_spent(tmp_path: Path, corpus_file: Path,
                                                  micro_preset: str) -> None:
    rep = StopAt(METRIC, 3)
    with pytest.raises(Cancelled):
        run_training(_req(corpus_file, preset=micro_preset, steps=30, eval_every=10,
                          batch_size=2, block_size=16), tmp_path / "run", rep)
    dp = storage.load_state(tmp_path / "run" / "checkpoints" / "last.safetensors")["privacy"]
    steps = sum(int(n) for _, _, n in dp["history"])
    assert steps == 3
    saved = json.loads((tmp_path / "run" / "model" / "studio.json").read_text())
    assert saved["privacy"]["steps"] == 3
    assert saved["privacy"]["epsilon"] == pytest.approx(_opacus_epsilon(dp["history"],
                                                                        dp["delta"]))
    assert saved["privacy"]["epsilon"] < 8.0  # the target is for step 30
    logs = " ".join(text for _, text in rep.logs)
    assert "Privacy spent: ε =" in logs
    points = rep.history[METRIC]
    assert [s for s, _ in points] == [1, 2, 3]  # logged every step, growing
    assert all(a[1] < b[1] for a, b in itertools.pairwise(points))


def test_the_run_says_what_private_training_changed(tmp_path: Path, corpus_file: Path,
                                                    micro_preset: str) -> None:
    rep = QuietReporter()
    out = run_training(_req(corpus_file, preset=micro_preset, steps=2, eval_every=2,
                            batch_size=2, block_size=16), tmp_path / "run", rep)
    logs = " ".join(text for _, text in rep.logs)
    assert "Training privately (DP-SGD with Opacus)" in logs
    assert "The optimizer is AdamW" in logs  # the tiny presets use Muon otherwise
    assert "One record is a passage of 16 tokens" in logs
    assert "The tokenizer is learnt from your text without privacy" in logs
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train"]["optimizer"] == "adamw" and cfg["request"]["privacy"]["epsilon"] == 8
    assert out.privacy is not None and out.privacy["steps"] == 2


def test_fine_tuning_a_model_privately(tmp_path: Path, corpus_file: Path,
                                       tiny_gpt2: Path) -> None:
    """A Hugging Face model fine-tuned privately (GPT-2's Conv1D layers have no Opacus
    gradient rule of their own: Opacus computes theirs with torch.func)."""
    rep = QuietReporter()
    out = run_training(_req(corpus_file, base_model=str(tiny_gpt2), steps=2, eval_every=2,
                            batch_size=2, block_size=16), tmp_path / "run", rep)
    assert out.privacy is not None and out.privacy["steps"] == 2
    logs = " ".join(text for _, text in rep.logs)
    assert "tokenizer is learnt" not in logs  # the model's own tokenizer


def test_text_too_short_for_the_batch_is_a_clear_message(tmp_path: Path, corpus_file: Path,
                                                         micro_preset: str) -> None:
    from studio.errors import UserError

    with pytest.raises(UserError, match="lower the batch size"):
        run_training(_req(corpus_file, preset=micro_preset, steps=2, batch_size=64,
                          block_size=16), tmp_path / "run", QuietReporter())
