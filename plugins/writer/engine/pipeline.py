"""From a corpus to a saved model folder: the whole training recipe in one place.

The train job, the Shakespeare bench and (later) the chatbot's fine-tuning call it in two
steps: :func:`prepare_training` reads the corpus, trains or loads the tokenizer and builds or
loads the model (the job records the data between the two), then :func:`train_prepared` runs
the shared language-model task (:class:`~.training.WriterTask`, on the corpus as one token
stream) in the shared :class:`~plugins.common.training.TrainLoop` and saves a standard Hugging
Face folder. :func:`run_training` does both.

Run folder layout (``RUN``)::

    RUN/config.json                   what was asked (request + resolved hyper-parameters)
    RUN/tokenizer/                    the tokenizer trained on the corpus (new models)
    RUN/checkpoints/last.safetensors  resumable state; best.safetensors: best validation weights
    RUN/model/                        the result: config.json + model.safetensors + tokenizer
                                      (or adapter_config.json + adapter_model.safetensors)

Under torchrun only rank 0 writes here (its tokenizer, read by the other ranks after a
barrier, so every rank encodes the text alike); see :mod:`plugins.common.distributed`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from plugins.common import distributed
from plugins.common.lm.training import LMTask, TrainConfig, TrainResult
from plugins.common.privacy import PrivacySpec
from plugins.common.training import LoopState, Reporter
from plugins.writer.engine import presets as presets_mod
from plugins.writer.engine.corpus import Corpus, Plan, load_corpus
from studio.errors import UserError

if TYPE_CHECKING:
    from studio.cache import Entry, PrepCache, Writer

CONFIG_NAME = "config.json"
FORMAT = "studio-writer-run-1"
CHECKPOINT = Path("checkpoints") / "last.safetensors"
BEST = Path("checkpoints") / "best.safetensors"


@dataclass
class TrainRequest:
    """What the user asked for. Zero means "choose for me" for the numeric settings."""

    data: list[str]  # absolute paths, so a resumed run finds its text from anywhere
    preset: str = "tiny"
    base_model: str | None = None  # a local model folder to fine-tune; None: new model
    method: Literal["full", "lora"] = "full"
    merge_lora: bool = True
    tokenizer: Literal["bpe", "char"] = "bpe"
    byte_fallback: bool = True  # char tokenizers: unseen characters as bytes, not <unk>
    vocab_size: int = 0
    val_fraction: float = 0.1
    steps: int = 2000
    batch_size: int = 0
    block_size: int = 0
    lr: float = 0.0
    warmup: int = -1
    eval_every: int = 0
    patience: int = 0
    max_seconds: float = 0.0
    seed: int = 0
    optimizer: Literal["auto", "adamw", "muon"] = "auto"  # auto: the preset's / AdamW to tune
    lora_r: int = 8
    extra: dict[str, Any] = field(default_factory=dict)  # any other TrainConfig field (benches)
    # training privately: plugins.common.privacy.PrivacySpec as JSON (empty: normally)
    privacy: dict[str, Any] = field(default_factory=dict)
    #: a run folder: train on the text ranges it recorded, ``val_fraction`` of them held out
    #: at random by ``seed`` (the privacy audit's reference models; see Corpus.plan_from)
    examples_of: str | None = None

    @property
    def from_scratch(self) -> bool:
        return not self.base_model

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CorpusStats:
    """Counts shown to the user before training starts."""

    files: int
    chars: int
    train_chars: int
    val_chars: int
    train_tokens: int
    val_tokens: int
    vocab_size: int
    tokenizer: str

    @property
    def chars_per_token(self) -> float:
        return self.train_chars / max(1, self.train_tokens)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["chars_per_token"] = self.chars_per_token
        return d

    def summary(self) -> str:
        return (f"{self.files} file(s), {self.chars:,} characters: {self.train_chars:,} for "
                f"training ({self.train_tokens:,} tokens), {self.val_chars:,} held out "
                f"({self.val_tokens:,} tokens); {self.chars_per_token:.2f} characters per "
                f"token, vocabulary {self.vocab_size:,} ({self.tokenizer})")


@dataclass
class TrainOutcome:
    model_dir: Path
    result: TrainResult
    stats: CorpusStats
    params: tuple[int, int]  # trainable, total
    adapter: bool = False  # the folder holds a LoRA adapter (not merged)
    privacy: dict[str, Any] | None = None  # what a private run spent (PrivateTraining.summary)


@dataclass
class PreparedRun:
    """Everything :func:`train_prepared` needs, made by :func:`prepare_training`: the job
    records the corpus (which characters trained, which were held out) between the two."""

    req: TrainRequest
    cfg: TrainConfig
    run_dir: Path
    corpus: Corpus
    tokenizer: Any
    model: Any
    train_ids: list[int]
    val_ids: list[int]
    stats: CorpusStats
    params: tuple[int, int]
    device: str
    resume: bool
    plan: Plan | None = None  # which passages train and which are held out (the manifest's)

    @property
    def model_dir(self) -> Path:
        return self.run_dir / "model"

    @property
    def saves_adapter(self) -> bool:
        return self.cfg.method == "lora" and not self.req.merge_lora


def resolve_config(req: TrainRequest, context: int | None = None) -> TrainConfig:
    """Fill the "auto" settings: a preset's defaults for new models, fine-tuning defaults
    (small LR, shorter warmup) for existing ones."""
    extra = dict(req.extra)
    extra.setdefault("lora_r", req.lora_r)
    if req.from_scratch:
        p = presets_mod.get_preset(req.preset)
        batch, block, lr, warmup = p.batch_size, p.block_size, p.lr, p.warmup
        extra.setdefault("dropout", p.dropout)
        extra.setdefault("optimizer", p.optimizer)
    else:
        batch, block = 8, min(256, context or 256)
        lr = 2e-4 if req.method == "lora" else 5e-5
        warmup = 20
    if req.optimizer != "auto":
        extra["optimizer"] = req.optimizer
    cfg = TrainConfig.from_json(extra)
    cfg.steps = req.steps
    cfg.batch_size = req.batch_size or batch
    cfg.block_size = req.block_size or block
    if context is not None and cfg.block_size > context:
        cfg.block_size = context
    cfg.lr = req.lr or lr
    cfg.warmup = warmup if req.warmup < 0 else req.warmup
    cfg.warmup = min(cfg.warmup, max(0, req.steps // 5))
    cfg.eval_every = req.eval_every or max(10, min(250, req.steps // 10))
    cfg.patience = req.patience
    cfg.max_seconds = req.max_seconds
    cfg.seed = req.seed
    cfg.method = req.method if not req.from_scratch else "full"
    private_adjustments(cfg, req)
    cfg.validate()
    return cfg


def private_adjustments(cfg: TrainConfig, req: TrainRequest) -> list[str]:
    """What a private run changes in ``cfg``, in words for the log (nothing otherwise)."""
    if not req.privacy:
        return []
    notes = []
    if cfg.optimizer != "adamw":
        notes.append("The optimizer is AdamW: each example's gradient is clipped over all the "
                     "weights together, which one optimizer does in one place.")
        cfg.optimizer = "adamw"
    if cfg.amp != "off":
        notes.append("Training runs in full precision (private steps do not use bfloat16).")
        cfg.amp = "off"
    cfg.compile = False
    cfg.grad_accum = 1
    return notes


def read_corpus(req: TrainRequest, rep: Reporter) -> tuple[Corpus, Plan]:
    """The corpus and what of it trains: the end of each document held out, or, with
    ``req.examples_of``, a random share of that run's recorded ranges."""
    from studio import manifest

    corpus = load_corpus(req.data)
    if req.examples_of:
        rows = list(manifest.read_examples(Path(req.examples_of)))
        plan = corpus.plan_from(rows, req.val_fraction, req.seed, check=rep.check)
        rep.log(f"training on {len(plan.examples) - len(plan.held_out)} of the "
                f"{len(plan.examples)} passages of run {Path(req.examples_of).name}")
    else:
        plan = corpus.plan(req.val_fraction, check=rep.check)
    if not plan.train:
        raise UserError("no training text is left after holding out validation text: lower "
                        "the validation fraction or add text")
    if corpus.ignored:
        rep.log(f"{len(corpus.ignored)} file(s) without a .txt/.md extension were not used "
                f"(e.g. {corpus.ignored[0].name})")
    return corpus, plan


def build_new_model(preset: presets_mod.Preset, tokenizer: Any, block_size: int,
                    seed: int) -> Any:
    """A freshly initialised Llama-style model for ``tokenizer`` (see :mod:`.presets`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    eot = tokenizer.eos_token_id
    config = LlamaConfig(**preset.model_kwargs(len(tokenizer), max(block_size, preset.block_size)),
                         bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id = eot
    model.generation_config.eos_token_id = eot
    model.generation_config.pad_token_id = eot
    return model


def prepare_training(req: TrainRequest, run_dir: Path, rep: Reporter, device: str = "cpu",
                     resume: bool = False, cache: PrepCache | None = None) -> PreparedRun:
    """Read the corpus, get the tokenizer and the model ready for :func:`train_prepared`.

    With the workspace's prepared-data ``cache`` a new model's tokenizer and the token ids of a
    corpus prepared before with the same tokenizer settings come from the cache (training a
    tokenizer and tokenising a large corpus cost more than a short run).

    With ``resume`` the run folder's own ``config.json`` and tokenizer are used (``req.steps``
    and ``req.max_seconds`` may extend the run); :func:`train_prepared` continues from the
    checkpoint.
    """
    from plugins.common.lm.loading import context_length, load_causal_lm
    from plugins.common.lm.tokens import load_tokenizer, save_tokenizer
    from plugins.common.lm.training import apply_lora, count_parameters
    from plugins.common.training import refuse_to_overwrite
    from plugins.writer.engine.tokenizer import (
        describe_unseen,
        encode_documents,
        train_tokenizer,
        unseen_characters,
    )
    from studio import storage

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_NAME
    saved: dict[str, Any] | None = None
    if resume:
        if not cfg_path.exists():
            raise UserError(f"{run_dir} is not a writer training run (no config.json): there is "
                            "nothing to resume")
        saved = storage.read_json(cfg_path)
        if saved.get("format") != FORMAT:
            raise UserError(f"{run_dir} was not made by the writer's train job")
        old = TrainRequest(**saved["request"])
        old.steps, old.max_seconds = req.steps, req.max_seconds
        if req.data and req.data != old.data:  # an explicit --data wins: the text moved, or
            old.data = req.data  # the user means it (the job warns when its passages differ);
            if distributed.is_main():  # kept
                storage.atomic_write_json(cfg_path, {**saved, "request": old.to_json()})
        req = old
    refuse_to_overwrite(run_dir, run_dir / CHECKPOINT, resume, "training")

    corpus, plan = read_corpus(req, rep)
    train_texts, val_texts = plan.train, plan.val
    rep.log(f"corpus: {corpus.summary()}")
    rep.check()

    # -- tokenizer and model --------------------------------------------------------------------
    cached: tuple[Any, list[int], list[int]] | None = None
    key = None
    if cache is not None and cache.enabled and req.from_scratch and not resume \
            and distributed.current() is None:
        key = corpus_key(req, train_texts, val_texts)
        cached = cache.load(CORPUS_CACHE, key, lambda e: _from_entry(e, run_dir / "tokenizer"))
        if cached is not None:
            rep.log("tokenizer and token ids: prepared before, read from the cache")
    if req.from_scratch:
        preset = presets_mod.get_preset(req.preset)
        tok_dir = run_dir / "tokenizer"
        if resume:
            tokenizer = load_tokenizer(tok_dir)
        elif cached is not None:
            tokenizer = cached[0]
        elif distributed.is_main():
            rep.progress(0, None, "training the tokenizer")
            tokenizer = train_tokenizer(train_texts, req.tokenizer, req.vocab_size,
                                        check=rep.check, byte_fallback=req.byte_fallback)
            save_tokenizer(tokenizer, tok_dir)
            distributed.barrier()
        else:  # rank 0's tokenizer, so every rank's token ids are the same
            distributed.barrier()
            tokenizer = load_tokenizer(tok_dir)
        context = None
        model = None
    else:
        model, tokenizer, info = load_causal_lm(req.base_model or "", device=device,
                                                dtype="float32")
        rep.log(f"fine-tuning {info.describe()} ({req.method})")
        context = context_length(model.config)
    cfg = resolve_config(req, context)
    if saved is not None:  # keep the run's own hyper-parameters, except its length
        kept = TrainConfig.from_json(saved["train"])
        kept.steps, kept.max_seconds = cfg.steps, cfg.max_seconds
        cfg = kept
    unseen = unseen_characters(tokenizer, "".join(val_texts)) if val_texts else None
    if unseen:
        rep.warn(f"The held-out text has {describe_unseen(tokenizer, unseen)}. Its score will "
                 "look worse than the model is on text like the training text.")
    if cached is not None:
        train_ids, val_ids = cached[1], cached[2]
    else:
        rep.progress(0, None, "tokenising the corpus")
        train_ids = encode_documents(tokenizer, train_texts, check=rep.check)
        val_ids = encode_documents(tokenizer, val_texts, check=rep.check) if val_texts else []
        if key is not None and cache is not None:
            cache.put(CORPUS_CACHE, key, lambda w: _fill(w, tok_dir, train_ids, val_ids))
    stats = CorpusStats(len(corpus.documents), corpus.chars, sum(map(len, train_texts)),
                        sum(map(len, val_texts)), len(train_ids), len(val_ids), len(tokenizer),
                        req.tokenizer if req.from_scratch else "the model's own")
    rep.log(stats.summary())
    rep.preview("corpus", stats.to_json())
    if model is None:
        model = build_new_model(preset, tokenizer, cfg.block_size, cfg.seed).to(device)
    if cfg.method == "lora":
        model = apply_lora(model, cfg)
    params = count_parameters(model)
    rep.log(f"model: {params[1]:,} parameters, {params[0]:,} trained")
    if not resume and distributed.is_main():
        storage.atomic_write_json(cfg_path, {
            "format": FORMAT, "request": req.to_json(), "train": cfg.to_json(),
            "corpus": stats.to_json(), "fingerprint": corpus.fingerprint(),
            "model_config": model.config.to_dict() if req.from_scratch else None,
            "params": {"trainable": params[0], "total": params[1]}})
    if not resume and cfg.max_seconds > 0:  # the budget covers reading, the tokenizer and
        cfg.max_seconds = max(1.0, cfg.max_seconds - (time.perf_counter() - t0))  # tokenising
    dist = distributed.current()
    if dist is not None:  # one budget (rank 0's clock): the learning rate follows it
        cfg.max_seconds = float(dist.broadcast_json(cfg.max_seconds))
    return PreparedRun(req, cfg, run_dir, corpus, tokenizer, model, train_ids, val_ids, stats,
                       params, device, resume, plan)


CORPUS_CACHE = "writer-corpus"
CORPUS_FORMAT = 1  # bump when the tokenizer training or encode_documents changes


def corpus_key(req: TrainRequest, train_texts: Sequence[str], val_texts: Sequence[str]) -> str:
    """The cache key of a new model's tokenizer and token ids: the texts' contents on each
    side of the split and every setting that changes the tokenizer."""
    from studio.cache import key_of, sha256_bytes

    settings = {"tokenizer": req.tokenizer, "vocab": req.vocab_size,
                "byte_fallback": req.byte_fallback, "format": CORPUS_FORMAT,
                "sides": [len(train_texts), len(val_texts)]}
    return key_of(CORPUS_CACHE, settings, (sha256_bytes(t.encode("utf-8"))
                                           for t in [*train_texts, *val_texts]))


def _fill(w: Writer, tok_dir: Path, train_ids: list[int], val_ids: list[int]) -> None:
    import numpy as np

    shutil.copytree(tok_dir, w.path / "tokenizer")
    w.array("train_ids", np.asarray(train_ids, dtype=np.int32))
    w.array("val_ids", np.asarray(val_ids, dtype=np.int32))
    w.meta.update(train_tokens=len(train_ids), val_tokens=len(val_ids))


def _from_entry(e: Entry, tok_dir: Path) -> tuple[Any, list[int], list[int]]:
    from plugins.common.lm.tokens import load_tokenizer

    train_ids, val_ids = e.array("train_ids"), e.array("val_ids")
    if len(train_ids) != e.meta["train_tokens"] or len(val_ids) != e.meta["val_tokens"]:
        raise ValueError("damaged cache entry")
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    shutil.copytree(e.path / "tokenizer", tok_dir)
    tokenizer = load_tokenizer(tok_dir)
    if int(max(train_ids.max(initial=0), val_ids.max(initial=0))) >= len(tokenizer):
        raise ValueError("damaged cache entry")
    return tokenizer, train_ids.tolist(), val_ids.tolist()


def train_prepared(prep: PreparedRun, rep: Reporter) -> TrainOutcome:
    """Run the prepared training in the shared loop and save ``RUN/model``: at the end, and on
    Stop (the model so far; the checkpoint lets Resume continue)."""
    import torch

    from plugins.common.lm.data import StreamData
    from plugins.common.training import Schedule, TrainLoop
    from plugins.writer.engine.training import WriterTask

    cfg = prep.cfg
    val_cpt = prep.stats.val_chars / max(1, prep.stats.val_tokens) if prep.val_ids else None
    saved: dict[str, Path] = {}

    def export(state: LoopState, reason: str) -> None:
        if reason == "stopped":
            rep.log(f"stopped at step {state.step}; saving the model so far")
        saved["dir"] = _save_result(prep, task, state, rep)

    spec = PrivacySpec.from_json(prep.req.privacy)
    task = WriterTask(prep.model, StreamData(prep.train_ids, prep.val_ids), cfg, rep,
                      device=prep.device, best_path=prep.run_dir / BEST,
                      val_chars_per_token=val_cpt, export=export, privacy=spec)
    schedule = Schedule(
        steps=cfg.steps, max_seconds=cfg.max_seconds or None, log_every=cfg.log_every,
        eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every or cfg.eval_every,
        best="loss/val" if task.has_validation else "", best_mode="min",
        patience=cfg.patience)
    loop = TrainLoop(task, schedule, rep, prep.run_dir / CHECKPOINT)
    if prep.resume:
        step = loop.resume()
        rep.log(f"resumed at step {step}")
    else:
        torch.manual_seed(cfg.seed)  # dropout draws from the global generator
    if task.dp is not None:
        _log_privacy(prep, task, rep)
    outcome = loop.run()
    result = TrainResult(outcome.step, outcome.best_value, outcome.best_step, task.last_val,
                         outcome.reason == "early", outcome.elapsed, task.tokens_seen)
    if "dir" not in saved:  # "already" at the requested step: the folder is from before
        saved["dir"] = prep.model_dir
    return TrainOutcome(saved["dir"], result, prep.stats, prep.params, prep.saves_adapter,
                        task.dp.summary() if task.dp is not None else None)


def _log_privacy(prep: PreparedRun, task: LMTask, rep: Reporter) -> None:
    """What training privately means for this run, in words: the settings, what changed for
    it, and what the guarantee does not cover."""
    dp, req = task.dp, prep.req
    rep.log(dp.describe())
    for note in private_adjustments(resolve_config(replace(req, privacy={})), req):
        rep.log(note)
    rep.log(f"One record is a passage of {prep.cfg.block_size} tokens (about "
            f"{prep.cfg.block_size * prep.stats.chars_per_token:,.0f} characters): ε protects "
            "each passage; something written across k passages is protected about k times "
            "less (k·ε).")
    if req.from_scratch:
        what = ("whole words and names of your text can become tokens, and the passages it "
                "learnt from cost fewer tokens, which gives them away (measured: a membership "
                "attack on a private model read AUC 0.70 with a learnt BPE tokenizer, 0.50 "
                "with characters)" if req.tokenizer == "bpe"
                else "it shows which characters your text uses")
        rep.warn(f"The tokenizer is learnt from your text without privacy and saved with the "
                 f"model: {what}. For a model private in every part, fine-tune an existing "
                 "model (its own tokenizer) instead"
                 + (", or choose the character tokenizer." if req.tokenizer == "bpe" else "."))
    if task.has_validation:
        rep.log("The held-out text is not trained on, but it chooses which weights are kept "
                "(the best validation loss): the guarantee covers the training text.")
    projected = dp.projected_epsilon(prep.cfg.steps)
    if dp.spec.noise_multiplier <= 0 and projected > dp.spec.epsilon * 1.02:
        rep.warn(f"Training to step {prep.cfg.steps:,} will spend ε = {projected:.2f}, more "
                 f"than the target {dp.spec.epsilon:g} this run's noise was chosen for (it "
                 "started with fewer steps).")


def run_training(req: TrainRequest, run_dir: Path, rep: Reporter, device: str = "cpu",
                 resume: bool = False) -> TrainOutcome:
    """Train as ``req`` says, writing into ``run_dir``; returns where the model was saved.
    (:func:`prepare_training` then :func:`train_prepared`.)"""
    return train_prepared(prepare_training(req, run_dir, rep, device, resume), rep)


def _save_result(prep: PreparedRun, task: LMTask, state: LoopState, rep: Reporter) -> Path:
    """Save the best-validation weights (or the last ones) as ``RUN/model``."""
    from plugins.common.lm.training import save_trained_model

    cfg, step = prep.cfg, state.step
    best_step = task.restore_best(step) if cfg.keep_best else None
    if best_step is not None and best_step != step and state.best_value is not None:
        rep.log(f"keeping the weights of step {best_step} (best validation loss "
                f"{state.best_value:.4f})")
    out = prep.model_dir
    val = state.best_value if best_step is not None else task.last_val
    # the run's folder name, not its path: a model folder is something people share
    extra = {"studio": "writer", "run": prep.run_dir.name, "step": step,
             "best_step": best_step, "val_loss": val, "corpus": prep.stats.to_json(),
             "train": cfg.to_json()}
    if task.dp is not None:  # the model carries what its training spent
        extra["privacy"] = task.dp.summary()
        rep.log(task.dp.words())
    # a LoRA merge happens in place: the run ends here (a resume rebuilds from the checkpoint)
    save_trained_model(prep.model, prep.tokenizer, out,
                       merge_lora=cfg.method == "lora" and prep.req.merge_lora, extra=extra)
    rep.log(f"saved the model to {out}")
    return out
