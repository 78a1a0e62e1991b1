"""Training: from scratch, exact resume after a cancel (also through the studio's runner and
from the writer's first checkpoint format), early stop, LoRA (merged and adapter), the record of
which text trained the model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from writer_helpers import StopAt

from plugins.common.lm.training import lr_factor
from plugins.common.training import QuietReporter
from plugins.writer.engine.pipeline import TrainRequest, run_training
from studio.errors import Cancelled, UserError


def _req(corpus: Path, **kw) -> TrainRequest:
    extra = {"log_every": 1, **kw.pop("extra", {})}
    return TrainRequest(data=[str(corpus)], extra=extra, **kw)


def test_from_scratch_saves_a_folder_plain_transformers_loads(
        tmp_path: Path, corpus_file: Path, micro_preset: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rep = QuietReporter()
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
    train = [v for _, v in rep.history["loss/train"]]
    assert train[-1] < train[0] - 0.5  # it learnt something
    for name in ("loss/val", "perplexity/val", "bits_per_char/val", "tokens_per_s", "lr"):
        assert rep.history.get(name), name
    assert out.stats.train_tokens > 0 and out.stats.val_chars > 0
    assert out.params[0] == out.params[1] == sum(p.numel() for p in model.parameters())


def test_dropout_only_while_training(tiny_llama: Path) -> None:
    import torch

    from plugins.common.lm.loading import load_causal_lm
    from plugins.common.lm.training import add_dropout

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
    straight = QuietReporter()
    run_training(_req(corpus_file, **req), tmp_path / "straight", straight)

    # lands at the next check: after step 5, between two checkpoints
    rep = StopAt("loss/train", 5)
    with pytest.raises(Cancelled):
        run_training(_req(corpus_file, **req), tmp_path / "resumed", rep)
    stopped = load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors")
    assert stopped["__loop__"]["step"] == 5
    rep.go_on()
    run_training(_req(corpus_file, **req), tmp_path / "resumed", rep, resume=True)
    a = load_state(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    b = load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors")
    assert a["__loop__"]["step"] == b["__loop__"]["step"] == 8
    for key, value in a["model"].items():
        assert (value == b["model"][key]).all(), key
    for name in ("loss/train", "loss/val", "lr"):  # the same curves: no gap, no duplicate
        assert rep.history[name] == straight.history[name], name


def test_a_checkpoint_of_the_first_format_resumes_exactly(tmp_path: Path, corpus_file: Path,
                                                          micro_preset: str) -> None:
    """Runs stopped before the shared loop (``studio-writer-checkpoint-1``) still resume."""
    from studio.storage import load_state, save_state

    req = dict(preset=micro_preset, steps=8, eval_every=4,
               extra={"dropout": 0.2, "optimizer": "adamw"})
    run_training(_req(corpus_file, **req), tmp_path / "straight", QuietReporter())
    rep = StopAt("loss/train", 5)
    with pytest.raises(Cancelled):
        run_training(_req(corpus_file, **req), tmp_path / "old", rep)
    ckpt = tmp_path / "old" / "checkpoints" / "last.safetensors"
    new = load_state(ckpt)
    loop = new["__loop__"]
    save_state(ckpt, {  # the layout the writer's own loop wrote
        "format": "studio-writer-checkpoint-1", "model": new["model"],
        "optimizer": new["optimizer"], "schedule": {"step": 5, "elapsed": loop["elapsed"]},
        "step": 5, "tokens_seen": new["tokens_seen"], "rng": new["__rng__"],
        "sampler": new["sampler"], "best_val": loop["best_value"],
        "best_step": loop["best_step"], "last_val": new["last_val"],
        "bad_evals": loop["bad_evals"], "history": [{"step": 4.0, "val_loss": 1.0}],
        "config": new["config"]})
    out = run_training(_req(corpus_file, **req), tmp_path / "old", QuietReporter(),
                       resume=True)
    assert out.result.step == 8 and out.result.best_step is not None
    a = load_state(tmp_path / "straight" / "checkpoints" / "last.safetensors")
    b = load_state(ckpt)
    for key, value in a["model"].items():
        assert (value == b["model"][key]).all(), key


def test_train_job_resumes_exactly_through_the_runner(tmp_path: Path, corpus_file: Path) -> None:
    """Stop a real train job mid-run, Resume it: the same model and curves as a run without a
    break (tokens per second measures the machine, so only its points are compared)."""
    from resume_check import assert_exact_resume

    from plugins.writer.params import TrainParams
    from studio.storage import load_tensors

    cut = assert_exact_resume(
        tmp_path, "writer", "train",
        lambda resume: TrainParams(data=corpus_file, preset="tiny", steps=6, batch_size=2,
                                   block_size=16, eval_every=2, seed=3, resume=resume),
        weights=lambda run: load_tensors(run / "model" / "model.safetensors"),
        measured=("tokens_per_s",))
    assert 0 < cut < 6


def test_resume_needs_a_run_and_runs_are_not_overwritten(tmp_path: Path, corpus_file: Path,
                                                         micro_preset: str) -> None:
    with pytest.raises(UserError, match="nothing to resume"):
        run_training(_req(corpus_file, preset=micro_preset, steps=2), tmp_path / "none",
                     QuietReporter(), resume=True)
    run_training(_req(corpus_file, preset=micro_preset, steps=2, eval_every=2),
                 tmp_path / "run", QuietReporter())
    with pytest.raises(UserError, match="already holds a training run"):
        run_training(_req(corpus_file, preset=micro_preset, steps=2), tmp_path / "run",
                     QuietReporter())


def test_early_stop_on_validation_loss(tmp_path: Path, corpus_file: Path,
                                       micro_preset: str) -> None:
    out = run_training(_req(corpus_file, preset=micro_preset, steps=40, eval_every=2,
                            patience=2, lr=1e-12, warmup=0), tmp_path / "run", QuietReporter())
    assert out.result.stopped_early
    assert out.result.step == 6  # best at 2, no improvement at 4 and 6


def test_lora_fine_tune_merged_and_as_adapter(tmp_path: Path, corpus_file: Path,
                                              tiny_gpt2: Path) -> None:
    import torch

    from plugins.common.lm.loading import inspect_model_dir, load_causal_lm

    merged = run_training(_req(corpus_file, base_model=str(tiny_gpt2), method="lora", steps=4,
                               eval_every=2, lr=5e-2), tmp_path / "merged", QuietReporter())
    assert merged.params[0] < merged.params[1] / 5  # only the adapters train
    assert inspect_model_dir(merged.model_dir).kind == "full"
    base, _, _ = load_causal_lm(tiny_gpt2)
    tuned, _, _ = load_causal_lm(merged.model_dir)
    x = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=x).logits, tuned(input_ids=x).logits)

    adapter = run_training(_req(corpus_file, base_model=str(tiny_gpt2), method="lora", steps=4,
                                eval_every=2, lr=5e-2, merge_lora=False),
                           tmp_path / "adapter", QuietReporter())
    info = inspect_model_dir(tmp_path / "adapter")
    assert info.kind == "adapter" and info.base == tiny_gpt2
    assert (adapter.model_dir / "adapter_model.safetensors").exists()
    via_adapter, _, _ = load_causal_lm(adapter.model_dir)
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=x).logits, via_adapter(input_ids=x).logits)


def test_full_fine_tune_of_a_local_folder(tmp_path: Path, corpus_file: Path,
                                          tiny_llama: Path) -> None:
    out = run_training(_req(corpus_file, base_model=str(tiny_llama), method="full", steps=3,
                            eval_every=3), tmp_path / "run", QuietReporter())
    assert out.params[0] == out.params[1]
    assert (out.model_dir / "model.safetensors").exists()


def test_learning_rate_schedule() -> None:
    assert lr_factor(0, 100, 10) == pytest.approx(1 / 11)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.55)
    assert lr_factor(100, 100, 10) == pytest.approx(0.1)
    # under a time budget the loop shortens the horizon, and the clock pushes the decay on:
    # the floor is reached when the budget ends, however many steps that took
    assert lr_factor(5, 10**9, 0, time_fraction=1.0) == pytest.approx(0.1)
    assert lr_factor(5, 10**9, 0, time_fraction=0.5) == pytest.approx(0.55)
    assert lr_factor(5, 5, 0) == pytest.approx(0.1)


def test_warm_up_follows_the_clock_under_a_time_budget() -> None:
    """Issue 18: ``--minutes 2`` on a busy machine gave 16 steps of a 50-step warm-up, and the
    learning rate never passed a third of its target. The warm-up now ends when a tenth of the
    budget is spent, and the peak is reached however few steps that took."""
    # without a budget: the step count alone (step 3 of a 50-step warm-up)
    assert lr_factor(3, 2000, 50) == pytest.approx(4 / 51)
    # 5% of the budget spent by step 3: halfway up by the clock
    assert lr_factor(3, 2000, 50, time_fraction=0.05) == pytest.approx(0.5)
    # a tenth of the budget spent: the peak, at step 3
    assert lr_factor(3, 2000, 50, time_fraction=0.1) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.1)))
    # the whole 16-step run: it ends at the floor, and most of it ran above half the peak
    factors = [lr_factor(s, 16, 50, time_fraction=(s + 1) / 16) for s in range(16)]
    assert max(factors) > 0.9 and factors[-1] == pytest.approx(0.1)
    assert sum(f > 0.5 for f in factors) >= 8


def test_stop_keeps_the_model_so_far(tmp_path: Path, corpus_file: Path,
                                     micro_preset: str) -> None:
    with pytest.raises(Cancelled):
        run_training(_req(corpus_file, preset=micro_preset, steps=50, eval_every=25),
                     tmp_path / "run", StopAt("loss/train", 3))
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()


def test_the_run_records_which_text_trained_and_which_was_held_out(
        tmp_path: Path, sample_text: str) -> None:
    """Each document's head trains and its tail is held out, both recorded passage by passage
    (``chars a-b`` of the file)."""
    from plugins.writer.engine.corpus import passages
    from studio import cli, manifest

    data = tmp_path / "stories"
    (data / "more").mkdir(parents=True)
    a, b = sample_text * 2, sample_text[:1000]
    (data / "a.txt").write_text(a, encoding="utf-8")
    (data / "more" / "b.md").write_text(b, encoding="utf-8")
    run = tmp_path / "run"
    assert cli.cmd_run("writer", "train", [
        "--data", str(data), "--steps", "2", "--out", str(run), "--batch-size", "2",
        "--block-size", "16", "--val-fraction", "0.2"]) == 0
    ka, kb = int(len(a) * 0.8), int(len(b) * 0.8)
    sha_a = manifest.sha256_file(data / "a.txt")[:16]
    sha_b = manifest.sha256_file(data / "more" / "b.md")[:16]
    expected: dict[str, str] = {}
    for name, sha, text, k in (("a.txt", sha_a, a, ka), ("more/b.md", sha_b, b, kb)):
        for lo, hi, side in ((0, k, "train"), (k, len(text), "held_out")):
            expected.update({f"{name}@{sha}#chars {s}-{e}": side
                             for s, e in passages(text, lo, hi)})
    assert manifest.membership(run) == expected
    assert len(passages(a, 0, ka)) >= 2  # a.txt's head is several passages
    m = manifest.read(run)
    assert m is not None
    ds = m.dataset()
    assert ds is not None and ds.location == str(data.resolve()) and ds.unit == "text range"
    sides = list(expected.values())
    assert (ds.train, ds.held_out) == (sides.count("train"), sides.count("held_out"))
    [model] = m.models()
    assert model.model_kind == "causal-lm" and model.path == "model"


def test_a_corpus_prepared_before_comes_from_the_cache(
        tmp_path: Path, corpus_file: Path, micro_preset: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Training a tokenizer and tokenising a large corpus cost more than a short run: a second
    run on the same text with the same tokenizer settings reads both from the workspace's
    cache, and gets exactly the same tokenizer and ids; other settings or text miss."""
    from plugins.writer.engine import pipeline, tokenizer
    from studio.cache import PrepCache

    cache = PrepCache(tmp_path / "cache", limit_bytes=10**9)
    first = pipeline.prepare_training(_req(corpus_file, preset=micro_preset, steps=2),
                                      tmp_path / "a", QuietReporter(), cache=cache)
    trained: list[int] = []
    real = tokenizer.train_tokenizer
    monkeypatch.setattr(tokenizer, "train_tokenizer",
                        lambda *a, **k: trained.append(1) or real(*a, **k))
    rep = QuietReporter()
    again = pipeline.prepare_training(_req(corpus_file, preset=micro_preset, steps=2),
                                      tmp_path / "b", rep, cache=cache)
    assert trained == [] and any("from the cache" in t for _, t in rep.logs)
    assert again.train_ids == first.train_ids and again.val_ids == first.val_ids
    assert again.tokenizer.get_vocab() == first.tokenizer.get_vocab()
    assert (tmp_path / "b" / "tokenizer" / "tokenizer.json").exists()  # the run is whole
    pipeline.prepare_training(_req(corpus_file, preset=micro_preset, steps=2, vocab_size=300),
                              tmp_path / "c", QuietReporter(), cache=cache)
    assert trained == [1]  # another vocabulary: the tokenizer is trained again
    corpus_file.write_text(corpus_file.read_text(encoding="utf-8") + "\nAll: Amen.\n",
                           encoding="utf-8")
    pipeline.prepare_training(_req(corpus_file, preset=micro_preset, steps=2),
                              tmp_path / "d", QuietReporter(), cache=cache)
    assert trained == [1, 1]  # edited text: prepared again
