"""The writer's jobs: thin glue from a job context to :mod:`plugins.writer.engine`.

Each function's signature is its command line (``studio run writer <job> --help``) and the form
its panel fills in.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

from studio.errors import UserError
from studio.jobs import JobContext

_CACHE_SIZE = 2
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()


class EvalReport(dict):
    """The eval job's result: a dict for panels and scripts that prints as the CLI promises."""

    def __str__(self) -> str:
        return (f"perplexity: {self['perplexity']:.3f}\n"
                f"bits per character: {self['bits_per_char']:.4f}\n"
                f"(nats per character {self['nats_per_char']:.4f}; {self['tokens']:,} tokens, "
                f"{self['chars']:,} characters)")


class Alternatives(list):
    """The alternatives job's result: a list of texts that prints one block per text."""

    def __str__(self) -> str:
        return "\n".join(f"--- alternative {i + 1} ---\n{t}" for i, t in enumerate(self))


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def train(ctx: JobContext, data: str, preset: Literal["tiny", "small", "base"] = "tiny",
          steps: int = 2000, model: str | None = None,
          method: Literal["full", "lora"] = "full", merge_lora: bool = True,
          tokenizer: Literal["bpe", "char"] = "bpe", vocab_size: int = 0,
          val_fraction: float = 0.1, batch_size: int = 0, block_size: int = 0,
          lr: float = 0.0, optimizer: Literal["auto", "adamw", "muon"] = "auto",
          eval_every: int = 0, patience: int = 0, minutes: float = 0.0,
          lora_r: int = 8, seed: int = 0, resume: bool = False) -> str:
    """Train a new language model on your text, or fine-tune a local model folder.

    Args:
        data: a .txt/.md file or a folder of them (UTF-8)
        preset: size of a new model (ignored when --model is given)
        steps: training steps (a resumed run continues up to this many)
        model: a local Hugging Face model folder to fine-tune instead of training a new model
        method: fine-tune all weights (full) or small LoRA adapters (lora)
        merge_lora: save LoRA merged into a full model (else only the adapter folder)
        tokenizer: for a new model: byte-level BPE or characters
        vocab_size: BPE vocabulary size (0: chosen from the corpus size)
        val_fraction: share of each file held out for validation (the end of the file)
        batch_size: sequences per step (0: the preset's)
        block_size: context length in tokens (0: the preset's)
        lr: peak learning rate (0: the preset's, or 5e-5 full / 2e-4 LoRA for fine-tuning)
        optimizer: auto (new models: the preset's, Muon for tiny; fine-tuning: AdamW)
        eval_every: steps between validations and checkpoints (0: about 10 per run)
        patience: stop after this many validations without improvement (0: never)
        minutes: stop after this many minutes (0: no limit); the LR schedule follows the clock
        lora_r: LoRA rank
        seed: random seed (initial weights, batches)
        resume: continue the run in --out from its last checkpoint
    """
    from plugins.writer.engine.pipeline import TrainRequest, run_training

    if ctx.run_dir is None:
        raise UserError("the train job needs a run folder (--out)")
    req = TrainRequest(data=[data], preset=preset, base_model=model, method=method,
                       merge_lora=merge_lora, tokenizer=tokenizer, vocab_size=vocab_size,
                       val_fraction=val_fraction, steps=steps, batch_size=batch_size,
                       block_size=block_size, lr=lr, eval_every=eval_every, patience=patience,
                       max_seconds=minutes * 60.0, seed=seed, optimizer=optimizer,
                       extra={"lora_r": lora_r})
    if resume:
        from studio.storage import state_field

        ckpt = ctx.run_dir / "checkpoints" / "last.safetensors"
        if ckpt.exists():
            try:
                ctx.truncate_metrics(int(state_field(ckpt, "step")))
            except (OSError, ValueError, TypeError) as exc:  # the trainer then says it clearly
                ctx.warn(f"could not align the metric log with the checkpoint: {exc}")
    outcome = run_training(req, ctx.run_dir, ctx, device=ctx.device, resume=resume)
    ctx.add_dataset(Path(data).expanduser().resolve(), files=outcome.stats.files,
                    chars=outcome.stats.chars, tokens=outcome.stats.train_tokens)
    ctx.add_artifact(outcome.model_dir, "model", step=outcome.result.step,
                     val_loss=outcome.result.best_val, params=outcome.params[1])
    return str(outcome.model_dir)


def inspect(ctx: JobContext, data: str, model: str | None = None,
            tokenizer: Literal["bpe", "char"] = "bpe", vocab_size: int = 0,
            val_fraction: float = 0.1) -> dict[str, Any]:
    """Count the characters and tokens of a corpus before training.

    Args:
        data: a .txt/.md file or a folder of them
        model: count with this model's tokenizer (default: a tokenizer trained on the corpus)
        tokenizer: kind of tokenizer to train when no model is given
        vocab_size: BPE vocabulary size (0: automatic)
        val_fraction: share held out for validation
    """
    from plugins.writer.engine.corpus import load_corpus
    from plugins.writer.engine.loading import inspect_model_dir, load_tokenizer_for
    from plugins.writer.engine.pipeline import CorpusStats
    from plugins.writer.engine.tokenizer import encode_documents, train_tokenizer

    ctx.progress(0, 3, "reading")
    corpus = load_corpus(data)
    train_texts, val_texts = corpus.split(val_fraction)
    ctx.progress(1, 3, "tokenizer")
    if model:
        tok = load_tokenizer_for(inspect_model_dir(model))
        kind = "the model's own"
    else:
        tok = train_tokenizer(train_texts, tokenizer, vocab_size, check=ctx.check)
        kind = tokenizer
    ctx.progress(2, 3, "counting tokens")
    train_ids = encode_documents(tok, train_texts, check=ctx.check)
    val_ids = encode_documents(tok, val_texts, check=ctx.check)
    stats = CorpusStats(len(corpus.documents), corpus.chars, sum(map(len, train_texts)),
                        sum(map(len, val_texts)), len(train_ids), len(val_ids), len(tok), kind)
    ctx.progress(3, 3, "done")
    ctx.log(stats.summary())
    out = stats.to_json()
    out["ignored"] = [str(p) for p in corpus.ignored[:20]]
    return out


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
def load_generator(model: str, device: str) -> Any:
    """A cached :class:`Generator` for ``model`` (reloaded when its weights change), so pressing
    Continue again does not reload the model."""
    from plugins.writer.engine.generation import Generator
    from plugins.writer.engine.loading import inspect_model_dir

    info = inspect_model_dir(model)
    stamp = tuple(sorted((str(w), w.stat().st_mtime_ns) for w in info.weights))
    key = (str(info.path.resolve()), stamp, device)
    with _cache_lock:
        gen = _cache.get(key)
        if gen is not None:
            _cache.move_to_end(key)
            return gen
    gen = Generator.from_folder(info.path, device=device)
    with _cache_lock:
        _cache[key] = gen
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return gen


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _settings(max_new_tokens: int, temperature: float, top_k: int, top_p: float,
              repetition_penalty: float, seed: int | None, stop: list[str] | None,
              min_new_tokens: int) -> Any:
    from plugins.writer.engine.generation import SamplingSettings, parse_stop_sequences

    s = SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                         top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                         stop=tuple(parse_stop_sequences(stop)), min_new_tokens=min_new_tokens)
    s.validate()
    return s


def _stream(ctx: JobContext, model: str, prompt: str, n: int, settings: Any) -> list[str]:
    """Run the generator, sending every chunk to the UI as it comes."""
    ctx.progress(0, settings.max_new_tokens, "loading the model")
    gen = load_generator(model, ctx.device)
    ctx.check()
    texts = [""] * n
    last = 0.0
    stats = gen.last_stats
    for i, chunk in gen.stream_many(prompt, n, settings, cancel=lambda: ctx.cancelled):
        texts[i] += chunk
        if n == 1:
            ctx.preview("text", chunk, replace=False)
        else:
            ctx.preview("text", chunk, replace=False, index=i)
        stats = gen.last_stats
        now = time.monotonic()
        if now - last > 0.25:
            last = now
            ctx.progress(stats.new_tokens, settings.max_new_tokens,
                         f"{stats.tokens_per_s:.1f} tokens/s")
            ctx.preview("stats", stats.to_json())
    stats = gen.last_stats
    ctx.preview("stats", stats.to_json())
    ctx.check()
    ctx.progress(settings.max_new_tokens, settings.max_new_tokens, "done")
    ctx.log(f"{stats.new_tokens * stats.sequences} tokens at {stats.tokens_per_s:.1f} tokens/s "
            f"(seed {stats.seed}; stopped: {', '.join(sorted(set(stats.stop_reasons)))})")
    return texts


def generate(ctx: JobContext, model: str, prompt: str = "", max_new_tokens: int = 200,
             temperature: float = 0.8, top_k: int = 50, top_p: float = 0.95,
             repetition_penalty: float = 1.0, seed: int | None = None,
             stop: list[str] | None = None, min_new_tokens: int = 0) -> str:
    """Continue a text with a model; the continuation is streamed and returned.

    Args:
        model: a model folder (or a writer run folder)
        prompt: the text to continue (empty: start a new text)
        max_new_tokens: tokens to add at most
        temperature: 0 is greedy; higher is more varied
        top_k: sample among the k most likely tokens (0: off)
        top_p: nucleus sampling threshold (1: off)
        repetition_penalty: above 1 discourages repeats (1: off)
        seed: random seed for a reproducible text (default: a fresh one, shown in the log)
        stop: stop sequences, comma separated; \\n means a new line
        min_new_tokens: do not stop at end-of-text before this many tokens
    """
    s = _settings(max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop,
                  min_new_tokens)
    return _stream(ctx, model, prompt, 1, s)[0]


def alternatives(ctx: JobContext, model: str, prompt: str = "", n: int = 3,
                 max_new_tokens: int = 60, temperature: float = 0.9, top_k: int = 50,
                 top_p: float = 0.95, repetition_penalty: float = 1.0,
                 seed: int | None = None, stop: list[str] | None = None) -> Alternatives:
    """Several different continuations of one text, to pick from.

    Args:
        model: a model folder (or a writer run folder)
        prompt: the text to continue
        n: how many continuations
        max_new_tokens: tokens per continuation
        temperature: 0 is greedy (all alike); higher is more varied
        top_k: sample among the k most likely tokens (0: off)
        top_p: nucleus sampling threshold (1: off)
        repetition_penalty: above 1 discourages repeats (1: off)
        seed: random seed (default: a fresh one)
        stop: stop sequences, comma separated; \\n means a new line
    """
    if not 1 <= n <= 16:
        raise UserError("ask for between 1 and 16 alternatives")
    s = _settings(max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop, 0)
    return Alternatives(_stream(ctx, model, prompt, n, s))


# ----------------------------------------------------------------------------------------------
# Evaluation and models
# ----------------------------------------------------------------------------------------------
def eval(ctx: JobContext, model: str, data: str, window: int = 0,
         stride: int = 0) -> EvalReport:
    """Perplexity and bits per character of a model on held-out text.

    Args:
        model: a model folder (or a writer run folder)
        data: a .txt/.md file or folder the model was not trained on
        window: tokens per window (0: the model's context, at most 1024)
        stride: new tokens scored per window (0: the window, i.e. no overlap)
    """
    from plugins.writer.engine.corpus import load_corpus
    from plugins.writer.engine.evaluation import EvalResult, evaluate_text
    from plugins.writer.engine.loading import load_causal_lm

    corpus = load_corpus(data)
    ctx.progress(0, len(corpus.documents), "loading the model")
    lm, tok, info = load_causal_lm(model, device=ctx.device)
    total = EvalResult(0.0, 0, 0, 0, 0)
    for i, doc in enumerate(corpus.documents):
        ctx.check()
        r = evaluate_text(lm, tok, doc.text, window or None, stride or None, check=ctx.check,
                          progress=lambda d, t, i=i: ctx.progress(i + d / max(1, t),
                                                                   len(corpus.documents),
                                                                   "scoring"))
        total = EvalResult(total.nll + r.nll, total.tokens + r.tokens, total.chars + r.chars,
                           r.window, r.stride)
    report = EvalReport(total.to_json())
    report.update(model=str(info.path), data=str(Path(data).expanduser()),
                  files=len(corpus.documents))
    ctx.log(total.summary())
    return report


def download(ctx: JobContext, repo_id: str, revision: str = "main") -> str:
    """Download a model from the Hugging Face Hub into the workspace (safetensors only).

    Args:
        repo_id: the model's Hub id, e.g. HuggingFaceTB/SmolLM2-135M
        revision: branch, tag or commit
    """
    from plugins.writer.engine.hub import download_model
    from plugins.writer.engine.loading import inspect_model_dir

    ctx.progress(0, None, f"downloading {repo_id}")
    folder = download_model(repo_id, ctx.workspace, revision)
    info = inspect_model_dir(folder)
    ctx.log(f"downloaded {repo_id}: {info.describe()} in {folder}")
    return str(folder)
