"""One training loop for every kind of language-model training the studio does.

- from scratch (a :mod:`.presets` architecture and a tokenizer trained on the corpus),
- full fine-tuning of a local Hugging Face model,
- LoRA fine-tuning (peft), the adapter saved alone or merged into the base weights.

Batches are random windows of ``block_size + 1`` tokens from the tokenised training text
(nanoGPT's sampler: cheap, and every position is a training target). AdamW with linear warmup
and cosine decay; when a time budget is given the schedule follows elapsed time, so the learning
rate reaches its floor exactly when the budget ends. Validation runs every ``eval_every`` steps on
held-out tokens; ``patience`` evaluations without improvement stop training early.

Checkpoints (``RUN/checkpoints/last.safetensors``) hold the trainable weights, the optimiser
state, the schedule position, the step and every RNG (Python, numpy, torch, and the batch
sampler's own generator) through :func:`studio.storage.save_state`, so a resumed run continues
exactly where it stopped: the same batches, the same dropout masks, the same curve.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from plugins.writer.engine.reporting import Reporter
from studio.errors import Cancelled, UserError

CHECKPOINT = "last.safetensors"
BEST = "best.safetensors"


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (stored in the run's ``config.json``)."""

    steps: int = 2000
    batch_size: int = 16
    block_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_every: int = 250
    eval_tokens: int = 65536  # validation tokens per evaluation (0: all)
    patience: int = 0  # evaluations without improvement before stopping (0: never stop early)
    keep_best: bool = True  # the saved model is the one with the best validation loss
    checkpoint_every: int = 0  # steps between checkpoints (0: at every evaluation)
    log_every: int = 10
    max_seconds: float = 0.0  # time budget (0: none); the LR schedule then follows time
    seed: int = 0
    dropout: float = 0.0  # residual + embedding dropout while training (see add_dropout)
    optimizer: Literal["adamw", "muon"] = "adamw"  # muon: hidden matrices (see make_optimizers)
    amp: Literal["auto", "bf16", "off"] = "auto"
    compile: bool = False
    method: Literal["full", "lora"] = "full"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"

    def validate(self) -> None:
        for name in ("steps", "batch_size", "block_size", "grad_accum", "eval_every",
                     "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', ' ')} must be at least 1")
        if not self.lr > 0:
            raise UserError("the learning rate must be positive")
        if self.method == "lora" and self.lora_r < 1:
            raise UserError("LoRA rank must be at least 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    step: int
    best_val: float | None
    best_step: int | None
    last_val: float | None
    stopped_early: bool
    seconds: float
    tokens_seen: int
    history: list[dict[str, float]] = field(default_factory=list)


def lr_factor(step: int, cfg: TrainConfig, elapsed: float = 0.0) -> float:
    """Warmup then cosine decay; with a time budget, progress is the larger of the step and time
    fractions (so the decay completes on time even if steps run slower than expected)."""
    if step < cfg.warmup:
        return (step + 1) / (cfg.warmup + 1)
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.max_seconds > 0:
        frac = max(frac, elapsed / cfg.max_seconds)
    frac = min(1.0, max(0.0, frac))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (avx512_bf16 or AMX). Elsewhere bf16 is
    emulated and slower than float32, so "auto" precision stays float32 there."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


RESIDUAL_BRANCHES = ("self_attn.o_proj", "mlp.down_proj")


def add_dropout(model: Any, p: float) -> list[Any]:
    """GPT-2-style dropout for Llama-family models, which have none: on the embeddings and on
    the output of every attention and MLP branch before it joins the residual stream.

    Done with forward hooks, so it exists only while training: the saved folder is a plain
    model and generation is unaffected (hooks are inactive in eval mode). Small models trained
    for many epochs on one author's text overfit quickly; this is the cure nanoGPT uses.
    Returns the hook handles (``.remove()`` them to switch it off).
    """
    import torch.nn.functional as F

    if p <= 0:
        return []

    def hook(module: Any, args: Any, output: Any) -> Any:
        return F.dropout(output, p, module.training) if module.training else output

    handles = []
    for name, module in model.named_modules():
        if name.endswith(RESIDUAL_BRANCHES):
            handles.append(module.register_forward_hook(hook))
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is not None:
        handles.append(emb.register_forward_hook(hook))
    return handles


def make_optimizers(model: Any, params: list[Any], cfg: TrainConfig, device: str) -> list[Any]:
    """AdamW for everything, or Muon for the hidden weight matrices plus AdamW for the rest.

    Muon (torch.optim.Muon: momentum orthogonalised by Newton-Schulz iterations) learns small
    transformers from scratch in fewer steps than AdamW; embeddings, the output head and norm
    gains stay on AdamW as its authors advise. ``match_rms_adamw`` scales Muon's step so the
    same learning rate suits both.
    """
    import torch

    fused = {"fused": True} if str(device).startswith("cuda") else {}
    betas = (cfg.beta1, cfg.beta2)
    embed_ids: set[int] = set()
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter, lambda: None)()
        if module is not None and getattr(module, "weight", None) is not None:
            embed_ids.add(id(module.weight))
    hidden = [p for p in params if p.dim() == 2 and id(p) not in embed_ids]
    if cfg.optimizer == "muon" and hidden:
        hidden_ids = {id(p) for p in hidden}
        rest = [p for p in params if id(p) not in hidden_ids]
        muon = torch.optim.Muon(hidden, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                adjust_lr_fn="match_rms_adamw")
        adam = torch.optim.AdamW(
            [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay},
             {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}],
            lr=cfg.lr, betas=betas, **fused)
        return [adam, muon]
    return [torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=cfg.lr, betas=betas, **fused)]


def apply_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap ``model`` with LoRA adapters (peft); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    targets: Any = cfg.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in str(targets).split(",") if t.strip()]
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lcfg)
    except ValueError as exc:
        raise UserError(f"LoRA cannot be applied to this model: {str(exc).splitlines()[0]}") \
            from None


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts (tied weights counted once)."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


class Trainer:
    """Trains ``model`` on token ids; reports through ``reporter`` (a JobContext or a
    :class:`~.reporting.NullReporter`).

    Args:
        model: a transformers causal LM (already wrapped by :func:`apply_lora` for LoRA).
        train_ids / val_ids: 1-D sequences of token ids (val may be empty).
        cfg: hyper-parameters.
        device: torch device string.
        checkpoint_dir: where checkpoints go (None: no checkpoints, no resume).
        val_chars_per_token: characters per validation token, to report bits per character.
    """

    def __init__(self, model: Any, train_ids: Any, val_ids: Any, cfg: TrainConfig,
                 reporter: Reporter, device: str = "cpu", checkpoint_dir: Path | None = None,
                 val_chars_per_token: float | None = None) -> None:
        import torch

        cfg.validate()
        self.torch = torch
        self.model = model
        self.cfg = cfg
        self.rep = reporter
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.val_cpt = val_chars_per_token
        self.train = torch.as_tensor(train_ids, dtype=torch.long)
        self.val = torch.as_tensor(val_ids if val_ids is not None else [], dtype=torch.long)
        if self.train.numel() < 2:
            raise UserError("the training text is too short: it needs at least a few words")
        if self.train.numel() <= cfg.block_size + 1:
            new = max(1, int(self.train.numel()) - 2)
            self._warn(f"the training text has only {self.train.numel()} tokens: the context "
                       f"length is reduced from {cfg.block_size} to {new}")
            cfg.block_size = new
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise UserError("the model has no trainable parameters")
        self.opts = make_optimizers(model, self.params, cfg, device)
        self.sampler = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.elapsed = 0.0
        self.tokens_seen = 0
        self.best_val: float | None = None
        self.best_step: int | None = None
        self.last_val: float | None = None
        self.bad_evals = 0
        self.best_state: dict[str, Any] | None = None
        self._best_saved_step: int | None = None
        self.history: list[dict[str, float]] = []
        self.autocast_dtype = self._autocast_dtype()
        self._dropout_hooks = add_dropout(model, cfg.dropout)
        self.forward: Callable[..., Any] = model
        if cfg.compile:
            self.forward = torch.compile(model)

    # -- helpers --------------------------------------------------------------------------------
    def _warn(self, text: str) -> None:
        self.rep.log(text, "warning")

    def _autocast_dtype(self) -> Any:
        torch = self.torch
        if self.cfg.amp == "off":
            return None
        if self.cfg.amp == "bf16":
            return torch.bfloat16
        if str(self.device).startswith("cpu"):
            # studio.device.autocast_dtype never autocasts on CPU; on CPUs with native
            # bf16 instructions (avx512_bf16 / AMX) bf16 autocast trains these models about
            # twice as fast (bench/writer_shakespeare.py), so the writer opts in here.
            return torch.bfloat16 if cpu_has_native_bf16() else None
        from studio.device import autocast_dtype

        return autocast_dtype(self.device)

    def _autocast(self) -> Any:
        import contextlib

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        kind = str(self.device).split(":")[0]
        return self.torch.autocast(kind, dtype=self.autocast_dtype)

    def batch(self) -> tuple[Any, Any]:
        torch = self.torch
        T = self.cfg.block_size
        hi = self.train.numel() - T - 1
        ix = torch.randint(0, max(1, hi + 1), (self.cfg.batch_size,), generator=self.sampler)
        rows = torch.stack([self.train[i:i + T + 1] for i in ix.tolist()])
        rows = rows.to(self.device, non_blocking=True)
        return rows[:, :-1], rows[:, 1:]

    def trainable_state(self) -> dict[str, Any]:
        names = {id(p) for p in self.params}
        return {k: v.detach().to("cpu").clone() for k, v in self.model.named_parameters()
                if id(v) in names}

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        params = dict(self.model.named_parameters())
        missing = [k for k in state if k not in params]
        if missing:
            raise UserError(f"the checkpoint does not fit this model ({len(missing)} unknown "
                            f"weights, e.g. {missing[0]})")
        with self.torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v.to(params[k].device, params[k].dtype))

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self) -> float | None:
        """Mean validation loss (nats per token), or None without validation text."""
        from plugins.writer.engine.evaluation import evaluate_ids

        if self.val.numel() < 2:
            return None
        ids = self.val
        if self.cfg.eval_tokens and ids.numel() > self.cfg.eval_tokens:
            ids = ids[:self.cfg.eval_tokens]
        with self._autocast():
            nll, count = evaluate_ids(self.model, ids.tolist(), self.cfg.block_size,
                                      check=self.rep.check)
        return nll / max(1, count)

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        from studio import storage

        state = {
            "format": "studio-writer-checkpoint-1",
            "model": self.trainable_state(),
            "optimizer": [opt.state_dict() for opt in self.opts],
            "schedule": {"step": self.step, "elapsed": self.elapsed},
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "rng": storage.capture_rng(),
            "sampler": self.sampler.get_state(),
            "best_val": self.best_val,
            "best_step": self.best_step,
            "last_val": self.last_val,
            "bad_evals": self.bad_evals,
            "history": self.history,
            "config": self.cfg.to_json(),
        }
        path = self.checkpoint_dir / CHECKPOINT
        storage.save_state(path, state)
        if (self.best_state is not None and self.best_step is not None
                and self._best_saved_step != self.best_step):
            storage.save_state(self.checkpoint_dir / BEST,
                               {"step": self.best_step, "model": self.best_state})
            self._best_saved_step = self.best_step
        return path

    def load_checkpoint(self) -> int:
        """Restore everything from ``checkpoint_dir``; returns the step to continue from."""
        from studio import storage

        if self.checkpoint_dir is None or not (self.checkpoint_dir / CHECKPOINT).exists():
            raise UserError("there is no checkpoint to resume from in this run folder (it is "
                            "written at each evaluation); start a new run instead")
        try:
            state = storage.load_state(self.checkpoint_dir / CHECKPOINT)
        except storage.CorruptFileError as exc:
            raise UserError(f"the checkpoint cannot be read ({exc}); start a new run") from None
        self.load_trainable_state(state["model"])
        try:
            saved_opts = state["optimizer"]
            if len(saved_opts) != len(self.opts):
                raise ValueError("a different optimizer was used")
            for opt, sd in zip(self.opts, saved_opts, strict=True):
                opt.load_state_dict(sd)
        except (ValueError, KeyError) as exc:
            raise UserError(f"the checkpoint's optimiser state does not fit this model ({exc}); "
                            "was it made with other settings?") from None
        self.step = int(state["step"])
        self.elapsed = float(state["schedule"]["elapsed"])
        self.tokens_seen = int(state.get("tokens_seen", 0))
        storage.restore_rng(state["rng"])
        self.sampler.set_state(state["sampler"].to("cpu", dtype=self.torch.uint8))
        self.best_val = state.get("best_val")
        self.best_step = state.get("best_step")
        self.last_val = state.get("last_val")
        self.bad_evals = int(state.get("bad_evals", 0))
        self.history = list(state.get("history", []))
        best_path = self.checkpoint_dir / BEST
        if self.best_step is not None and best_path.exists():
            self.best_state = storage.load_state(best_path)["model"]
            self._best_saved_step = self.best_step
        return self.step

    # -- the loop -------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> TrainResult:
        torch = self.torch
        cfg = self.cfg
        if resume:
            self.load_checkpoint()
            self.rep.log(f"resumed at step {self.step}")
        else:
            torch.manual_seed(cfg.seed)
        self.model.train()
        t_start = time.perf_counter() - self.elapsed
        t_log, tok_log = time.perf_counter(), 0
        loss_acc, loss_n = 0.0, 0
        stopped_early = False
        ckpt_every = cfg.checkpoint_every or cfg.eval_every
        self.rep.progress(self.step, cfg.steps, "training")
        try:
            while self.step < cfg.steps:
                self.rep.check()
                self.elapsed = time.perf_counter() - t_start
                if cfg.max_seconds > 0 and self.elapsed >= cfg.max_seconds:
                    self.rep.log(f"time budget of {cfg.max_seconds:.0f} s reached at step "
                                 f"{self.step}")
                    break
                lr = cfg.lr * lr_factor(self.step, cfg, self.elapsed)
                for opt in self.opts:
                    for group in opt.param_groups:
                        group["lr"] = lr
                for _ in range(cfg.grad_accum):
                    x, y = self.batch()
                    with self._autocast():
                        logits = self.forward(input_ids=x).logits
                    loss = torch.nn.functional.cross_entropy(
                        logits.float().view(-1, logits.size(-1)), y.reshape(-1))
                    (loss / cfg.grad_accum).backward()
                    loss_acc += float(loss.detach())
                    loss_n += 1
                    tok_log += x.numel()
                    self.tokens_seen += x.numel()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
                for opt in self.opts:
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                self.step += 1
                if not math.isfinite(loss_acc):
                    raise UserError(f"training diverged at step {self.step} (the loss became "
                                    "infinite or NaN): lower the learning rate and start again")
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    train_loss = loss_acc / max(1, loss_n)
                    tps = tok_log / max(1e-9, now - t_log)
                    self.rep.metric("loss/train", self.step, train_loss)
                    self.rep.metric("tokens_per_s", self.step, tps)
                    self.rep.metric("lr", self.step, lr)
                    loss_acc, loss_n, t_log, tok_log = 0.0, 0, now, 0
                    self.rep.progress(self.step, cfg.steps,
                                      f"loss {train_loss:.3f}, {tps:,.0f} tok/s")
                if (self.step % cfg.eval_every == 0 or self.step == cfg.steps) and \
                        self._evaluate_and_maybe_stop():
                    stopped_early = True
                    break
                if self.step % ckpt_every == 0 and self.step < cfg.steps:
                    self.elapsed = time.perf_counter() - t_start
                    self.save_checkpoint()
        except Cancelled:
            self.elapsed = time.perf_counter() - t_start
            self.save_checkpoint()
            raise
        self.elapsed = time.perf_counter() - t_start
        if self.history and self.history[-1]["step"] != self.step and self.val.numel() >= 2:
            self._evaluate_and_maybe_stop(final=True)
        self.save_checkpoint()
        self.rep.progress(self.step, self.step, "done")
        return TrainResult(self.step, self.best_val, self.best_step, self.last_val, stopped_early,
                           self.elapsed, self.tokens_seen, self.history)

    def _evaluate_and_maybe_stop(self, final: bool = False) -> bool:
        val = self.evaluate()
        self.model.train()
        if val is None:
            return False
        self.last_val = val
        entry = {"step": float(self.step), "val_loss": val}
        self.rep.metric("loss/val", self.step, val)
        self.rep.metric("perplexity/val", self.step, math.exp(min(val, 50.0)))
        if self.val_cpt:
            bpc = val / self.val_cpt / math.log(2)
            entry["bpc"] = bpc
            self.rep.metric("bits_per_char/val", self.step, bpc)
        self.history.append(entry)
        if self.best_val is None or val < self.best_val - 1e-4:
            self.best_val, self.best_step, self.bad_evals = val, self.step, 0
            if self.cfg.keep_best:
                self.best_state = self.trainable_state()
            return False
        self.bad_evals += 1
        if not final and self.cfg.patience and self.bad_evals >= self.cfg.patience:
            self.rep.log(f"early stop at step {self.step}: validation loss has not improved for "
                         f"{self.bad_evals} evaluations (best {self.best_val:.4f} at step "
                         f"{self.best_step})")
            return True
        return False

    def restore_best(self) -> int | None:
        """Put the best-validation weights back into the model; returns their step."""
        if self.best_state is None or self.best_step == self.step:
            return self.step if self.best_state is not None else None
        self.load_trainable_state(self.best_state)
        return self.best_step
