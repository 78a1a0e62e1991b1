"""Language-model training as a task of the studio's one training loop.

The same task trains a model from scratch, fine-tunes all the weights of a local Hugging Face
model, or fine-tunes LoRA adapters (peft, :func:`apply_lora`; saved alone or merged into the
base weights, :func:`save_trained_model`).

:class:`LMTask` is one optimisation step, a validation loss and the keep-best weights;
:class:`plugins.common.training.TrainLoop` runs it (step or time budget, logging, evaluation
and checkpoint cadences, keep-best on ``loss/val``, early stop after ``patience`` evaluations,
the checkpoint on Stop and exact resume).

What it learns from is a data source (:mod:`.data`): one flat token stream where every
position is trained (a writer's corpus), or masked sequences where only the reply tokens of
(prompt, reply) pairs are (a chatbot's fine-tuning). The loss is the cross-entropy over the
trained positions (:meth:`LMTask.loss`; a preference-pair task overrides it). Batches draw
from the task's own generator, so a resumed run draws the same batches. Linear warmup then
cosine decay over the loop's horizon; under a time budget the decay also follows the clock, so
the learning rate reaches its floor when the budget ends.

Checkpoints (``RUN/checkpoints/last.safetensors``) hold the trainable weights, the optimiser
state, the sampler's generator and the data source's place (the loop adds its own state and the
global generators); ``best.safetensors`` beside it holds the best-validation weights.

Under torchrun (:mod:`plugins.common.distributed`) the model trains in DistributedDataParallel:
every rank draws the same global batch from the task's generator and trains on its share, so
the steps are those of one process with the whole batch, and the checkpoint (the bare model's
weights) resumes with any number of processes. Only rank 0 writes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from plugins.common import distributed
from plugins.common.lm.data import Batch, TrainData
from plugins.common.privacy import PrivacySpec
from plugins.common.training import LoopState, Reporter
from studio.errors import UserError


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
    eval_every: int = 250  # steps between validations (and checkpoints, unless checkpoint_every)
    eval_tokens: int = 65536  # validation tokens per evaluation (0: all)
    patience: int = 0  # evaluations without improvement before stopping (0: never stop early)
    keep_best: bool = True  # the saved model is the one with the best validation loss
    checkpoint_every: int = 0  # steps between checkpoints (0: at every evaluation)
    log_every: int = 10
    max_seconds: float = 0.0  # time budget (0: none); the LR schedule then follows time too
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
    """How a run ended (from the loop's outcome and the task)."""

    step: int
    best_val: float | None
    best_step: int | None
    last_val: float | None
    stopped_early: bool
    seconds: float
    tokens_seen: int


def lr_factor(step: int, horizon: int, warmup: int, min_lr_ratio: float = 0.1,
              time_fraction: float = 0.0, warmup_share: float = 0.1) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``min_lr_ratio`` at
    ``horizon`` (the loop's expected final step).

    Under a time budget, ``time_fraction`` (elapsed / budget) rules as well: the warm-up ends
    once ``warmup_share`` of the budget is spent even if fewer steps ran, and the decay is
    pushed on when steps run slower than the loop expected, so the schedule ends on time. (On
    a busy machine, two minutes gave 16 steps of a 50-step warm-up: the learning rate never
    passed a third of its target.)
    """
    if step < warmup and time_fraction < warmup_share:
        by_time = time_fraction / warmup_share if time_fraction > 0 else 0.0
        return max((step + 1) / (warmup + 1), by_time)
    warmup = min(warmup, step)
    frac = (step - warmup) / max(1, horizon - warmup)
    frac = min(1.0, max(0.0, frac, time_fraction))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))


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


def save_trained_model(model: Any, tokenizer: Any, target: str | os.PathLike[str],
                       merge_lora: bool = True, extra: dict[str, Any] | None = None) -> Path:
    """Save what a run trained as a model folder, atomically (``studio.json`` holds ``extra``).

    A LoRA model is merged into its base weights (a plain model folder anyone can load) or,
    with ``merge_lora=False``, saved as its adapter alone (``adapter_config.json`` +
    ``adapter_model.safetensors``, naming its base folder); any other model as it is. Merging
    happens in place, so call this when the run is over.
    """
    from plugins.common.lm.loading import save_pretrained_folder

    to_save = model
    if merge_lora and hasattr(model, "merge_and_unload"):
        to_save = model.merge_and_unload()
    return save_pretrained_folder(to_save, tokenizer, target, extra)


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


# the layout the writer's runs wrote as "studio-writer-checkpoint-2", plus the data's place
CHECKPOINT_FORMAT = "studio-lm-checkpoint-2"


class LMTask:
    """A causal language model's training, as a :class:`~plugins.common.training.TrainLoop`
    task.

    Args:
        model: a transformers causal LM (already wrapped by :func:`apply_lora` for LoRA).
        data: what it learns from (:class:`~.data.StreamData`, :class:`~.data.SequenceData`).
        cfg: hyper-parameters (``block_size`` may be shortened to what the data allows).
        reporter: where warnings go; ``check`` cancels a long validation.
        device: torch device string.
        best_path: where the best-validation weights are kept on disk (None: in memory only).
        val_chars_per_token: characters per validation token, to report bits per character.
        export: called as ``export(state, reason)`` when the run stops or ends (the pipeline
            saves the model folder there); checkpoints in between do not export.
    """

    def __init__(self, model: Any, data: TrainData, cfg: TrainConfig,
                 reporter: Reporter, device: str = "cpu", best_path: Path | None = None,
                 val_chars_per_token: float | None = None,
                 export: Callable[[LoopState, str], None] | None = None,
                 privacy: PrivacySpec | None = None) -> None:
        import torch

        cfg.validate()
        self.torch = torch
        self.model = model
        self.cfg = cfg
        self.rep = reporter
        self.device = device
        self.best_path = best_path
        self.val_cpt = val_chars_per_token
        self._export = export
        self.data = data
        cfg.block_size = data.fit(cfg.block_size, reporter)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise UserError("the model has no trainable parameters")
        self.opts = make_optimizers(model, self.params, cfg, device)
        #: the torchrun job this task is one rank of (None: training alone)
        self.dist = distributed.current()
        if self.dist is not None:
            if privacy is not None:
                raise UserError("private training runs in one process: start it without "
                                "torchrun (--nproc-per-node)")
            self.dist.local_batch(cfg.batch_size)  # a global batch every rank can share
        #: DP-SGD (plugins.common.privacy) when training privately, else None
        self.dp: Any = self._private(privacy) if privacy is not None else None
        self.sampler = torch.Generator().manual_seed(cfg.seed)
        self.tokens_seen = 0
        self.best_step: int | None = None
        self.best_state: dict[str, Any] | None = None
        self.last_val: float | None = None
        self.last_lr = cfg.lr
        self.autocast_dtype = self._autocast_dtype()
        self._dropout_hooks = add_dropout(model, cfg.dropout)
        self.forward: Callable[..., Any] = model
        if self.dist is not None:
            self.forward = self.dist.wrap(model)
        if cfg.compile:
            self.forward = torch.compile(self.forward)
        # the current logging window (progress line and speed; never part of a checkpoint)
        self._bad: Any = None  # a device flag: some loss since the last check was not finite
        self._win_loss: Any = None
        self._win_steps = 0
        self._win_tokens = 0
        self._win_start: float | None = None
        self._message = ""
        model.train()

    @property
    def has_validation(self) -> bool:
        return bool(self.data.has_validation)

    def _private(self, spec: PrivacySpec) -> Any:
        """DP-SGD over fixed passages of the data (its ``records``): one optimiser (per-example
        clipping bounds the norm over all weights together), full precision, no compiling,
        no accumulation; the caller's config must say so."""
        from plugins.common.privacy import PrivateTraining

        cfg = self.cfg
        records = getattr(self.data, "records", None)
        if not callable(records):
            raise UserError("this kind of training data cannot be trained privately yet")
        if len(self.opts) != 1 or cfg.grad_accum != 1 or cfg.compile or cfg.amp != "off":
            raise ValueError("private training needs one optimiser (AdamW), grad_accum 1, "
                             "amp 'off' and no compile")
        dp = PrivateTraining(self.model, self.opts[0], spec,
                             records=records(cfg.block_size), batch_size=cfg.batch_size,
                             steps=cfg.steps, device=self.device, loss_reduction="mean",
                             unit=f"passage of {cfg.block_size} tokens")
        self.opts = [dp.optimizer]
        return dp

    # -- helpers --------------------------------------------------------------------------------
    def _autocast_dtype(self) -> Any:
        torch = self.torch
        if self.cfg.amp == "off":
            return None
        if self.cfg.amp == "bf16":
            return torch.bfloat16
        if str(self.device).startswith("cpu"):
            # studio.device.autocast_dtype never autocasts on CPU; on CPUs with native
            # bf16 instructions (avx512_bf16 / AMX) bf16 autocast trains these models about
            # twice as fast (bench/writer_shakespeare.py), so language models opt in here.
            return torch.bfloat16 if cpu_has_native_bf16() else None
        from studio.device import autocast_dtype

        return autocast_dtype(self.device)

    def _autocast(self) -> Any:
        import contextlib

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        kind = str(self.device).split(":")[0]
        return self.torch.autocast(kind, dtype=self.autocast_dtype)

    def batch(self) -> Batch:
        """The next batch; under torchrun this rank's share of the global batch (``tokens``
        still counts the global batch's, so the count and its speed are the run's)."""
        if self.dist is None:
            return self.data.batch(self.cfg.batch_size, self.cfg.block_size, self.sampler,
                                   self.device)
        whole = self.data.batch(self.cfg.batch_size, self.cfg.block_size, self.sampler, "cpu")
        mine = self.dist.shard(self.cfg.batch_size)
        inputs, labels = whole.inputs[mine], whole.labels[mine]
        return Batch(inputs.to(self.device, non_blocking=True),
                     labels.to(self.device, non_blocking=True), whole.tokens)

    def _no_sync(self, last: bool) -> Any:
        """Gradient accumulation under DDP: the gradients are averaged over the ranks once,
        with the last micro-batch, not after each."""
        import contextlib

        if self.dist is None or last:
            return contextlib.nullcontext()
        return self.forward.no_sync() if hasattr(self.forward, "no_sync") else \
            contextlib.nullcontext()

    def loss(self, batch: Batch) -> Any:
        """Mean cross-entropy over the batch's trained positions (labels other than
        :data:`~.data.IGNORE`): a prompt's tokens, masked out, add nothing to it."""
        with self._autocast():
            logits = self.forward(input_ids=batch.inputs).logits
        return self.torch.nn.functional.cross_entropy(
            logits.float().view(-1, logits.size(-1)), batch.labels.reshape(-1))

    def trainable_state(self) -> dict[str, Any]:
        names = {id(p) for p in self.params}
        return {k: v.detach().to("cpu").clone() for k, v in self.model.named_parameters()
                if id(v) in names}

    def load_trainable_state(self, state: Mapping[str, Any]) -> None:
        params = dict(self.model.named_parameters())
        missing = [k for k in state if k not in params]
        if missing:
            raise UserError(f"the checkpoint does not fit this model ({len(missing)} unknown "
                            f"weights, e.g. {missing[0]})")
        with self.torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v.to(params[k].device, params[k].dtype))

    def lr_at(self, state: LoopState) -> float:
        """The learning rate of the step after ``state.step``."""
        cfg = self.cfg
        time_fraction = state.elapsed / cfg.max_seconds if cfg.max_seconds > 0 else 0.0
        return cfg.lr * lr_factor(state.step, state.horizon or cfg.steps, cfg.warmup,
                                  cfg.min_lr_ratio, time_fraction)

    def _check_finite(self, step: int | None = None) -> None:
        """Refuse to go on (or to checkpoint) after the loss became infinite or NaN; checked
        once per logging window and before each checkpoint, so the device is not synchronised
        every step and a diverged model never overwrites a good checkpoint."""
        if self._bad is not None and bool(self._bad):
            when = f" by step {step}" if step is not None else ""
            raise UserError(f"training diverged{when} (the loss became infinite or NaN): "
                            "lower the learning rate and start again")
        self._bad = None

    # -- the loop's hooks -----------------------------------------------------------------------
    def train_step(self, state: LoopState) -> dict[str, Any]:
        torch, cfg = self.torch, self.cfg
        if self._win_start is None:
            self._win_start = time.perf_counter()
        lr = self.last_lr = self.lr_at(state)
        for opt in self.opts:
            for group in opt.param_groups:
                group["lr"] = lr
        if self.dp is not None:
            return self._private_step(state)
        total: Any = None
        for i in range(cfg.grad_accum):
            batch = self.batch()
            with self._no_sync(i == cfg.grad_accum - 1):
                loss = self.loss(batch)
                (loss / cfg.grad_accum).backward()
            total = loss.detach() if total is None else total + loss.detach()
            self.tokens_seen += batch.tokens
            self._win_tokens += batch.tokens
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        for opt in self.opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        mean = total / cfg.grad_accum
        bad = ~torch.isfinite(mean)
        self._bad = bad if self._bad is None else self._bad | bad
        self._win_loss = mean if self._win_loss is None else self._win_loss + mean
        self._win_steps += 1
        done = state.step + 1
        if done % cfg.log_every == 0 or done >= (state.horizon or cfg.steps):
            self._check_finite(done)
        return {"loss/train": mean}

    def _private_step(self, state: LoopState) -> dict[str, Any]:
        """One DP-SGD step: a Poisson draw of passages (possibly none: the step then adds only
        noise, and logs no loss), each one's gradient clipped, noise added, the update."""
        torch, dp = self.torch, self.dp
        idx = dp.sample()
        dp.zero_grad()
        stats: dict[str, Any] = {}
        if idx.numel():
            batch = self.data.record_batch(idx, self.cfg.block_size,  # type: ignore[attr-defined]
                                           self.device)
            loss = self.loss(batch)
            dp.backward(loss)
            mean = loss.detach()
            self.tokens_seen += batch.tokens
            self._win_tokens += batch.tokens
            bad = ~torch.isfinite(mean)
            self._bad = bad if self._bad is None else self._bad | bad
            self._win_loss = mean if self._win_loss is None else self._win_loss + mean
            self._win_steps += 1
            stats["loss/train"] = mean
        dp.step()
        dp.zero_grad()
        done = state.step + 1
        if done % self.cfg.log_every == 0 or done >= (state.horizon or self.cfg.steps):
            self._check_finite(done)
        return stats

    def log_values(self, state: LoopState) -> dict[str, float]:
        """Speed and learning rate beside the averaged training loss (and a private run's
        spent ε)."""
        now = time.perf_counter()
        tps = self._win_tokens / max(1e-9, now - (self._win_start or now))
        if self._win_steps:
            loss = float(self._win_loss) / self._win_steps
            self._message = f"loss {loss:.3f}, {tps:,.0f} tok/s"
        self._win_loss, self._win_steps, self._win_tokens, self._win_start = None, 0, 0, now
        out = {"tokens_per_s": tps, "lr": self.last_lr}
        if self.dp is not None:
            from plugins.common.privacy import METRIC

            out[METRIC] = self.dp.epsilon()
        return out

    def message(self, state: LoopState, stats: Mapping[str, Any]) -> str:
        return self._message or f"step {state.step:,} of {state.horizon:,}"

    def validation_loss(self) -> float | None:
        """Mean validation loss (nats per trained token), or None without validation data."""
        if not self.has_validation:
            return None
        with self._autocast():
            nll, count = self.data.validation_nll(self.model, self.cfg.block_size,
                                                  self.cfg.batch_size, self.cfg.eval_tokens,
                                                  check=self.rep.check)
        return nll / max(1, count)

    def evaluate(self, state: LoopState) -> dict[str, float]:
        """``loss/val`` (the keep-best and early-stop metric), perplexity and bits per
        character of the held-out text."""
        val = self.validation_loss()
        if val is None:
            return {}
        self.last_val = val
        out = {"loss/val": val, "perplexity/val": math.exp(min(val, 50.0))}
        if self.val_cpt:
            out["bits_per_char/val"] = val / self.val_cpt / math.log(2)
        return out

    def on_best(self, state: LoopState) -> None:
        """Keep the new best weights (in memory, and on disk for a resumed run)."""
        self.best_step = state.step
        if not self.cfg.keep_best:
            return
        self.best_state = self.trainable_state()
        if self.best_path is not None and distributed.is_main():
            from studio import storage

            storage.save_state(self.best_path, {"step": state.step, "model": self.best_state})

    def export(self, state: LoopState, reason: str) -> None:
        if self._export is not None and reason in ("stopped", "end"):
            self._export(state, reason)

    def restore_best(self, step: int) -> int | None:
        """Put the best-validation weights back into the model (at ``step``, the run's last);
        returns their step, or None when no best was kept."""
        if self.best_state is None or self.best_step is None:
            return None
        if self.best_step != step:
            self.load_trainable_state(self.best_state)
        return self.best_step

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self._check_finite()
        st: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "model": self.trainable_state(),
            "optimizer": [opt.state_dict() for opt in self.opts],
            "sampler": self.sampler.get_state(),
            "tokens_seen": self.tokens_seen,
            "best_step": self.best_step,
            "last_val": self.last_val,
            "config": self.cfg.to_json(),
        }
        data_state = getattr(self.data, "state_dict", None)
        if callable(data_state):
            st["data"] = data_state()
        if self.dp is not None:
            st["privacy"] = self.dp.state_dict()
        return st

    def upgrade_state(self, state: dict[str, Any]) -> None:
        """Bring an older checkpoint's layout up to date, in place, before it is loaded (a
        subclass that once wrote another layout overrides this; the loop reads its own keys
        after the task has loaded)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (after :meth:`upgrade_state`)."""
        from studio import storage

        self.upgrade_state(state)
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
        self.sampler.set_state(state["sampler"].to("cpu", dtype=self.torch.uint8))
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.last_val = state.get("last_val")
        self.best_step = state.get("best_step")
        load_data = getattr(self.data, "load_state_dict", None)
        if callable(load_data) and "data" in state:
            load_data(state["data"])
        if self.dp is not None:
            if "privacy" not in state:
                raise UserError("this run did not train privately: resume it without privacy")
            self.dp.load_state_dict(state["privacy"])
        self.best_state = None
        if self.best_step is not None and self.best_path is not None and self.best_path.exists():
            best = storage.load_state(self.best_path)
            if int(best.get("step", -1)) == self.best_step:
                self.best_state = best["model"]
            else:
                self.rep.warn(f"the best weights on disk are from step {best.get('step')}, "
                              f"not {self.best_step}: the last weights will be saved instead")
