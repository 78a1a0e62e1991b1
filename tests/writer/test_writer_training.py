"""Training: from scratch, exact resume after a cancel, early stop, LoRA (merged and adapter)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from plugins.writer.engine.pipeline import TrainRequest, run_training
from plugins.writer.engine.reporting import NullReporter
from plugins.writer.engine.training import TrainConfig, lr_factor
from studio.errors import Cancelled, UserError


def _req(corpus: Path, **kw) -> TrainRequest:
    extra = {"log_every": 1, **kw.pop("extra", {})}
    return TrainRequest(data=[str(corpus)], extra=extra, **kw)


def test_from_scratch_saves_a_folder_plain_transformers_loads(
        tmp_path: Path, corpus_file: Path, micro_preset: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rep = NullReporter()
    out = run_training(_req(corpus_file, preset=micro_preset, steps=30, eval_every=10,
                            extra={"log_every": 5}), tmp_path / "run", rep)
    names = {p.name for p in out.model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    model = AutoModelForCausalLM.from_pretrained(str(out.model_dir))
    tok = AutoTokenizer.from_pretrained(str(out.model_dir))
    assert model.config.model_type == "llama"
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tok("Speak")["input_ids"]])).logits
    assert logits.shape[-1] == len(tok)
    train = [v for _, v in rep.metrics_seen["loss/train"]]
    assert train[-1] < train[0] - 0.5  # it learnt something
    for name in ("loss/val", "perplexity/val", "bits_per_char/val", "tokens_per_s", "lr"):
        assert rep.metrics_seen.get(name), name
    assert out.stats.train_tokens > 0 and out.stats.val_chars > 0
    assert out.params[0] == out.params[1] == sum(p.numel() for p in model.parameters())


def test_dropout_only_while_training(tiny_llama: Path) -> None:
    import torch

    from plugins.writer.engine.loading import load_causal_lm
    from plugins.writer.engine.training import add_dropout

    model, _, _ = load_causal_lm(tiny_llama)
    x = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        clean = model(input_ids=x).logits
        handles = add_dropout(model, 0.3)
        assert len(handles) == 2 * 2 + 1  # two branches per layer + the embeddings
        assert torch.equal(model(input_ids=x).logits, clean)  # eval mode: no effect
        model.train()
        assert not torch.allclose(model(input_ids=x).logits, clean)
        for h in handles:
            h.remove()
        assert torch.allclose(model(input_ids=x).logits, clean)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_after_cancel_is_exact(tmp_path: Path, corpus_file: Path, micro_preset: str,
                                      optimizer: str) -> None:
    from studio.storage import load_state

    req = dict(preset=micro_preset, steps=8, eval_every=4,
               extra={"dropout": 0.2, "optimizer": optimizer})
    run_training(_req(corpus_file, **req), tmp_path / "straight", NullReporter())

    cancel = threading.Event()

    def on_metric(name: str, step: float, value: float) -> None:
        if name == "loss/train" and step == 5:
            cancel.set()  # lands at the next check: after step 5, between two checkpoints

    with pytest.raises(Cancelled):
        run_training(_req(corpus_file, **req), tmp_path / "resumed",
                     NullReporter(cancel=cancel, on_metric=on_metric))
    stopped = load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors")
    assert stopped["step"] == 5
    run_training(_req(corpus_file, **req), tmp_path / "resumed", NullReporter(), resume=True)
    a = load_state(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    b = load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors")
    assert a["step"] == b["step"] == 8
    for key, value in a["model"].items():
        assert (value == b["model"][key]).all(), key
    assert a["history"] == b["history"]


def test_resume_needs_a_run_and_runs_are_not_overwritten(tmp_path: Path, corpus_file: Path,
                                                         micro_preset: str) -> None:
    with pytest.raises(UserError, match="nothing to resume"):
        run_training(_req(corpus_file, preset=micro_preset, steps=2), tmp_path / "none",
                     NullReporter(), resume=True)
    run_training(_req(corpus_file, preset=micro_preset, steps=2, eval_every=2),
                 tmp_path / "run", NullReporter())
    with pytest.raises(UserError, match="already holds a training run"):
        run_training(_req(corpus_file, preset=micro_preset, steps=2), tmp_path / "run",
                     NullReporter())


def test_early_stop_on_validation_loss(tmp_path: Path, corpus_file: Path,
                                       micro_preset: str) -> None:
    out = run_training(_req(corpus_file, preset=micro_preset, steps=40, eval_every=2,
                            patience=2, lr=1e-12, warmup=0), tmp_path / "run", NullReporter())
    assert out.result.stopped_early
    assert out.result.step == 6  # best at 2, no improvement at 4 and 6


def test_lora_fine_tune_merged_and_as_adapter(tmp_path: Path, corpus_file: Path,
                                              tiny_gpt2: Path) -> None:
    import torch

    from plugins.writer.engine.loading import inspect_model_dir, load_causal_lm

    merged = run_training(_req(corpus_file, base_model=str(tiny_gpt2), method="lora", steps=4,
                               eval_every=2, lr=5e-2), tmp_path / "merged", NullReporter())
    assert merged.params[0] < merged.params[1] / 5  # only the adapters train
    assert inspect_model_dir(merged.model_dir).kind == "full"
    base, _, _ = load_causal_lm(tiny_gpt2)
    tuned, _, _ = load_causal_lm(merged.model_dir)
    x = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=x).logits, tuned(input_ids=x).logits)

    adapter = run_training(_req(corpus_file, base_model=str(tiny_gpt2), method="lora", steps=4,
                                eval_every=2, lr=5e-2, merge_lora=False),
                           tmp_path / "adapter", NullReporter())
    info = inspect_model_dir(tmp_path / "adapter")
    assert info.kind == "adapter" and info.base == tiny_gpt2
    assert (adapter.model_dir / "adapter_model.safetensors").exists()
    via_adapter, _, _ = load_causal_lm(adapter.model_dir)
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=x).logits, via_adapter(input_ids=x).logits)


def test_full_fine_tune_of_a_local_folder(tmp_path: Path, corpus_file: Path,
                                          tiny_llama: Path) -> None:
    out = run_training(_req(corpus_file, base_model=str(tiny_llama), method="full", steps=3,
                            eval_every=3), tmp_path / "run", NullReporter())
    assert out.params[0] == out.params[1]
    assert (out.model_dir / "model.safetensors").exists()


def test_learning_rate_schedule() -> None:
    cfg = TrainConfig(steps=100, warmup=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(1 / 11)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(55, cfg) == pytest.approx(0.55)
    assert lr_factor(100, cfg) == pytest.approx(0.1)
    timed = TrainConfig(steps=10**9, warmup=0, max_seconds=60.0)
    assert lr_factor(5, timed, elapsed=60.0) == pytest.approx(timed.min_lr_ratio)
    assert lr_factor(5, timed, elapsed=30.0) == pytest.approx(0.55)


def test_stop_keeps_the_model_so_far(tmp_path: Path, corpus_file: Path,
                                     micro_preset: str) -> None:
    cancel = threading.Event()

    def on_metric(name: str, step: float, value: float) -> None:
        if name == "loss/train" and step == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        run_training(_req(corpus_file, preset=micro_preset, steps=50, eval_every=25),
                     tmp_path / "run", NullReporter(cancel=cancel, on_metric=on_metric))
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()
