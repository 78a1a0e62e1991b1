"""The writer's jobs: thin glue from a job context and a params object to the engine.

Each job's params class (:mod:`plugins.writer.params`) is its command line (``studio run writer
<job> --help``) and the form its panel fills in.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from plugins.writer.params import (
    AlternativesParams,
    DownloadParams,
    EvalParams,
    GenerateParams,
    InspectParams,
    TrainParams,
)
from studio.errors import Cancelled, UserError
from studio.jobs import JobContext


class Continuation(str):
    """The generate job's result: the text (what the command line prints), with ``stats``, the
    generation's figures (time to first token, tokens/s, seed, why it stopped) for a UI."""

    stats: dict[str, Any]

    def __new__(cls, text: str, stats: dict[str, Any]) -> Continuation:
        self = super().__new__(cls, text)
        self.stats = stats
        return self


class Alternatives(list[str]):
    """The alternatives job's result: a list of texts that prints one block per text, with
    ``stats`` as :class:`Continuation`'s."""

    def __init__(self, texts: list[str], stats: dict[str, Any]) -> None:
        super().__init__(texts)
        self.stats = stats

    def __str__(self) -> str:
        return "\n".join(f"--- alternative {i + 1} ---\n{t}" for i, t in enumerate(self))


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def train(ctx: JobContext, p: TrainParams) -> str:
    """Train a new language model on your text, or fine-tune a local model folder."""
    from plugins.writer.engine.pipeline import TrainRequest, prepare_training, train_prepared

    if ctx.run_dir is None:
        raise UserError("the train job needs a run folder (--out)")
    data = [str(p.data.expanduser().resolve())] if p.data is not None else []
    req = TrainRequest(data=data, preset=p.preset,
                       base_model=str(p.model.expanduser()) if p.model else None,
                       method=p.method, merge_lora=p.merge_lora, tokenizer=p.tokenizer,
                       byte_fallback=p.byte_fallback, vocab_size=p.vocab_size,
                       val_fraction=p.val_fraction, steps=p.steps,
                       batch_size=p.batch_size, block_size=p.block_size, lr=p.lr,
                       eval_every=p.eval_every, patience=p.patience,
                       max_seconds=p.minutes * 60.0, seed=p.seed, optimizer=p.optimizer,
                       lora_r=p.lora_r, privacy=_privacy(p),
                       examples_of=str(p.examples_of.expanduser().resolve())
                       if p.examples_of is not None else None)
    prep = prepare_training(req, ctx.run_dir, ctx, device=ctx.device, resume=p.resume,
                            cache=ctx.cache)
    # what this run learns from, passage by passage: the head of each document trains, its
    # tail is held out (or a random share of another run's passages, for the audit)
    assert prep.plan is not None
    examples, held_out = prep.plan.examples, prep.plan.held_out
    root = prep.corpus.root.expanduser().resolve()
    ctx.record_data(root.name, root, examples, held_out=held_out, unit="text range",
                    files=prep.stats.files, chars=prep.stats.chars,
                    tokens=prep.stats.train_tokens, val_fraction=prep.req.val_fraction)
    kind = "lm-adapter" if prep.saves_adapter else "causal-lm"
    try:
        outcome = train_prepared(prep, ctx)
    except Cancelled:  # Stop saved the model so far: the library lists it
        if prep.model_dir.exists():
            ctx.add_artifact(prep.model_dir, "model", model_kind=kind,
                             **_recorded_privacy(prep.model_dir))
        raise
    extra = {"privacy": outcome.privacy} if outcome.privacy else {}
    ctx.add_artifact(outcome.model_dir, "model", model_kind=kind, step=outcome.result.step,
                     val_loss=outcome.result.best_val, params=outcome.params[1], **extra)
    return str(outcome.model_dir)


def _privacy(p: TrainParams) -> dict[str, Any]:
    """The request's privacy settings (empty: train normally)."""
    from plugins.common.privacy import spec_of

    spec = spec_of(p)
    return spec.to_json() if spec is not None else {}


def _recorded_privacy(model_dir: Any) -> dict[str, Any]:
    """What a stopped private run's saved model says it spent (for the manifest)."""
    from studio import storage

    try:
        info = storage.read_json(model_dir / "studio.json")
    except (OSError, ValueError):
        return {}
    return {"privacy": info["privacy"]} if isinstance(info, dict) and info.get("privacy") else {}


def inspect(ctx: JobContext, p: InspectParams) -> dict[str, Any]:
    """Count the characters and tokens of a corpus before training."""
    from plugins.common.lm.loading import inspect_model_dir, load_tokenizer_for
    from plugins.writer.engine.corpus import load_corpus
    from plugins.writer.engine.pipeline import CorpusStats
    from plugins.writer.engine.tokenizer import encode_documents, train_tokenizer

    ctx.progress(0, 3, "reading")
    corpus = load_corpus(p.data)
    train_texts, val_texts = corpus.split(p.val_fraction)
    ctx.progress(1, 3, "tokenizer")
    if p.model:
        tok = load_tokenizer_for(inspect_model_dir(p.model))
        kind = "the model's own"
    else:
        tok = train_tokenizer(train_texts, p.tokenizer, p.vocab_size, check=ctx.check)
        kind = p.tokenizer
    ctx.progress(2, 3, "counting tokens")
    train_ids = encode_documents(tok, train_texts, check=ctx.check)
    val_ids = encode_documents(tok, val_texts, check=ctx.check)
    stats = CorpusStats(len(corpus.documents), corpus.chars, sum(map(len, train_texts)),
                        sum(map(len, val_texts)), len(train_ids), len(val_ids), len(tok), kind)
    ctx.progress(3, 3, "done")
    ctx.log(stats.summary())
    out = stats.to_json()
    out["ignored"] = [str(f) for f in corpus.ignored[:20]]
    return out


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
def _stream(ctx: JobContext, model: str, prompt: str, n: int, settings: Any) -> Any:
    """Run the generator, sending every chunk to the UI as it comes; returns the
    :class:`~plugins.common.lm.generation.Completion` (texts and figures)."""
    from plugins.common.lm.generation import load_generator

    ctx.progress(0, settings.max_new_tokens, "loading the model")
    gen = load_generator(model, ctx.device)
    ctx.check()
    _warn_unseen(ctx, gen.tokenizer, prompt, "The text to continue")
    last = 0.0

    def on_text(i: int, chunk: str) -> None:
        nonlocal last
        if n == 1:
            ctx.preview("text", chunk, replace=False)
        else:
            ctx.preview("text", chunk, replace=False, index=i)
        now = time.monotonic()
        if now - last > 0.25:
            last = now
            stats = gen.last_stats
            ctx.progress(stats.new_tokens, settings.max_new_tokens,
                         f"{stats.tokens_per_s:.1f} tokens/s")
            ctx.preview("stats", stats.to_json())

    done = gen.complete(prompt, settings, cancel=lambda: ctx.cancelled, n=n, on_text=on_text)
    ctx.preview("stats", done.stats.to_json())
    ctx.check()
    ctx.progress(settings.max_new_tokens, settings.max_new_tokens, "done")
    ctx.log(done.stats.summary())
    return done


def _warn_unseen(ctx: JobContext, tokenizer: Any, text: str, what: str) -> None:
    from plugins.writer.engine.tokenizer import describe_unseen, unseen_characters

    unseen = unseen_characters(tokenizer, text)
    if unseen:
        ctx.warn(f"{what} has {describe_unseen(tokenizer, unseen)}.")


def generate(ctx: JobContext, p: GenerateParams) -> str:
    """Continue a text with a model; the continuation is streamed and returned."""
    done = _stream(ctx, str(p.model), p.prompt, 1, p.settings())
    return Continuation(done.text, done.stats.to_json())


def alternatives(ctx: JobContext, p: AlternativesParams) -> Alternatives:
    """Several different continuations of one text, to pick from."""
    done = _stream(ctx, str(p.model), p.prompt, p.n, p.settings())
    return Alternatives(done.texts, done.stats.to_json())


# ----------------------------------------------------------------------------------------------
# Evaluation and models
# ----------------------------------------------------------------------------------------------
def eval(ctx: JobContext, p: EvalParams) -> Any:
    """Perplexity and bits per character of a model on held-out text."""
    from plugins.common.lm.loading import load_causal_lm
    from plugins.writer.engine.corpus import load_corpus
    from plugins.writer.engine.evaluation import EvalReport, EvalResult, evaluate_text
    from plugins.writer.engine.tokenizer import describe_unseen, unseen_characters

    corpus = load_corpus(p.data)
    ctx.progress(0, len(corpus.documents), "loading the model")
    lm, tok, info = load_causal_lm(p.model, device=ctx.device)
    total = EvalResult(0.0, 0, 0, 0, 0)
    unseen: Counter[str] = Counter()
    for i, doc in enumerate(corpus.documents):
        ctx.check()
        unseen.update(unseen_characters(tok, doc.text))
        r = evaluate_text(lm, tok, doc.text, p.window or None, p.stride or None,
                          check=ctx.check,
                          progress=lambda d, t, i=i: ctx.progress(i + d / max(1, t),
                                                                   len(corpus.documents),
                                                                   "scoring"))
        total = EvalResult(total.nll + r.nll, total.tokens + r.tokens, total.chars + r.chars,
                           r.window, r.stride)
    ctx.log(total.summary())
    if unseen:
        ctx.warn(f"The text has {describe_unseen(tok, unseen)}. The score counts them too.")
    return EvalReport.of(total, model=str(info.path), data=str(p.data.expanduser()),
                         files=len(corpus.documents), unseen_chars=sum(unseen.values()),
                         unseen_kinds=len(unseen))


def download(ctx: JobContext, p: DownloadParams) -> str:
    """Download a model from the Hugging Face Hub into the workspace (safetensors only)."""
    from plugins.common.lm.hub import download_model
    from plugins.common.lm.loading import inspect_model_dir

    ctx.progress(0, None, f"downloading {p.repo_id}")
    folder = download_model(p.repo_id, ctx.workspace, p.revision)
    info = inspect_model_dir(folder)
    ctx.log(f"downloaded {p.repo_id}: {info.describe()} in {folder}")
    return str(folder)
