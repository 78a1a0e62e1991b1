"""Fine-tune a chat model on the user's feedback: LoRA, SFT + DPO, in the shared loop.

The model learns the replies the user liked and the corrections they wrote (supervised: the
cross-entropy of the reply's tokens, the prompt masked), and, where a reply was corrected,
to prefer the correction over what it said (Direct Preference Optimisation, Rafailov et al.
2023): with log-probabilities of whole replies under the model being trained (``π``) and a
frozen reference (``π_ref``),

    margin   = β · [(log π(chosen) - log π_ref(chosen)) - (log π(rejected) - log π_ref(rejected))]
    loss_dpo = -log σ(margin)

The reference is the model without its LoRA adapter (peft's ``disable_adapter()``): the base
weights are exactly the model before fine-tuning, so no second copy is kept in memory.
The step's loss is ``sft + dpo_weight · dpo``; ``loss/sft``, ``loss/dpo``, ``reward/margin``
(β times the log-ratio difference) and ``reward/accuracy`` (pairs where the correction is
preferred) are plotted live.

Run folder (``RUN``)::

    RUN/config.json                   the request and resolved settings
    RUN/feedback.jsonl                the exact examples this run trained on
    RUN/checkpoints/last.safetensors  resumable state (adapter weights, optimiser, data order)
    RUN/adapter/                      the result: a LoRA adapter folder naming its base model
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from plugins.common.lm.data import IGNORE, Batch, SequenceData, TokenSequence
from plugins.common.lm.training import LMTask, TrainConfig
from plugins.common.training import LoopState, Reporter
from studio.errors import UserError

from .feedback import FeedbackItem, FeedbackSet

CONFIG_NAME = "config.json"
FORMAT = "studio-chat-finetune-1"
CHECKPOINT = Path("checkpoints") / "last.safetensors"
BEST = Path("checkpoints") / "best.safetensors"
Method = Literal["sft_dpo", "sft"]


@dataclass
class FinetuneRequest:
    model: str                      # absolute model folder (or adapter folder)
    template: str = ""              # "" the model's own; a built-in name or .jinja file
    method: Method = "sft_dpo"
    steps: int = 0                  # 0: about three passes over the examples
    batch_size: int = 4
    block_size: int = 512
    lr: float = 2e-4
    lora_r: int = 8
    beta: float = 0.1
    dpo_weight: float = 1.0
    val_fraction: float = 0.0
    seed: int = 0
    chats: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["chats"] = list(self.chats)
        return d


# ----------------------------------------------------------------------------------------------
# Preference pairs
# ----------------------------------------------------------------------------------------------
class PairData:
    """(chosen, rejected) sequences sharing a prompt; a batch of ``b`` pairs is ``2b`` rows,
    the chosen ones first. Shuffled an epoch at a time from the task's generator (resumable)."""

    def __init__(self, pairs: Sequence[tuple[TokenSequence, TokenSequence]], pad_id: int) -> None:
        if not pairs:
            raise UserError("there are no preference pairs")
        self.source = list(pairs)
        self.pairs = list(pairs)
        self.pad_id = int(pad_id)
        self.order: Any = None
        self.pos = 0

    def fit(self, block_size: int) -> None:
        limit = block_size + 1

        def cut(s: TokenSequence) -> TokenSequence:
            return TokenSequence(s.ids[-limit:], s.mask[-limit:]) if len(s.ids) > limit else s

        self.pairs = [(cut(c), cut(r)) for c, r in self.source]
        self.pairs = [(c, r) for c, r in self.pairs if c.trained and r.trained]
        if not self.pairs:
            raise UserError("no preference pair has a reply left within the context length")

    def _indices(self, n: int, generator: Any) -> list[int]:
        import torch

        out: list[int] = []
        while len(out) < n:
            if self.order is None or self.pos >= len(self.order):
                self.order = torch.randperm(len(self.pairs), generator=generator)
                self.pos = 0
            take = min(n - len(out), len(self.order) - self.pos)
            out += self.order[self.pos:self.pos + take].tolist()
            self.pos += take
        return out

    def batch(self, n: int, generator: Any, device: Any) -> Batch:
        import torch

        chosen = [self.pairs[i] for i in self._indices(n, generator)]
        rows = [c for c, _ in chosen] + [r for _, r in chosen]
        width = max(len(s.ids) for s in rows) - 1
        inputs = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for k, s in enumerate(rows):
            ids = torch.tensor(s.ids, dtype=torch.long)
            mask = torch.tensor(s.mask[1:], dtype=torch.bool)
            m = len(s.ids) - 1
            inputs[k, :m] = ids[:-1]
            labels[k, :m] = torch.where(mask, ids[1:], torch.full_like(ids[1:], IGNORE))
        return Batch(inputs.to(device), labels.to(device), sum(len(s.ids) - 1 for s in rows))

    def state_dict(self) -> dict[str, Any]:
        import torch

        order = self.order if self.order is not None else torch.zeros(0, dtype=torch.long)
        return {"order": order, "pos": self.pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        order = state["order"]
        self.order = order.to("cpu").long() if order.numel() else None
        self.pos = int(state["pos"])


def sequence_logp(logits: Any, labels: Any) -> Any:
    """Summed log-probability of each row's labelled tokens: (B, T, V), (B, T) -> (B,)."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    mask = labels != IGNORE
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


class FeedbackTask(LMTask):
    """:class:`~plugins.common.lm.training.LMTask` with a DPO term on preference pairs."""

    def __init__(self, model: Any, data: SequenceData, pairs: PairData | None, cfg: TrainConfig,
                 reporter: Reporter, device: str, beta: float, dpo_weight: float,
                 best_path: Path | None = None,
                 export: Callable[[LoopState, str], None] | None = None) -> None:
        super().__init__(model, data, cfg, reporter, device=device, best_path=best_path,
                         export=export)
        self.pairs = pairs
        if pairs is not None:
            pairs.fit(cfg.block_size)
        self.beta = beta
        self.dpo_weight = dpo_weight
        self._dpo: dict[str, Any] = {}
        self._dpo_n = 0

    def loss(self, batch: Batch) -> Any:
        torch = self.torch
        sft = super().loss(batch)
        if self.pairs is None or self.dpo_weight <= 0:
            self._add({"loss/sft": sft.detach()})
            return sft
        pb = self.pairs.batch(max(1, self.cfg.batch_size // 2), self.sampler, self.device)
        with self._autocast():
            logp = sequence_logp(self.forward(input_ids=pb.inputs).logits, pb.labels)
            with torch.no_grad(), self.model.disable_adapter():
                ref = sequence_logp(self.model(input_ids=pb.inputs).logits, pb.labels)
        b = logp.shape[0] // 2
        margin = self.beta * ((logp[:b] - ref[:b]) - (logp[b:] - ref[b:]))
        dpo = -torch.nn.functional.logsigmoid(margin).mean()
        self._add({"loss/sft": sft.detach(), "loss/dpo": dpo.detach(),
                   "reward/margin": margin.detach().mean(),
                   "reward/accuracy": (margin.detach() > 0).float().mean()})
        return sft + self.dpo_weight * dpo

    def _add(self, values: dict[str, Any]) -> None:
        for k, v in values.items():
            self._dpo[k] = v if k not in self._dpo else self._dpo[k] + v
        self._dpo_n += 1

    def log_values(self, state: LoopState) -> dict[str, float]:
        out = super().log_values(state)
        n = max(1, self._dpo_n)
        out.update({k: float(v) / n for k, v in self._dpo.items()})
        self._dpo, self._dpo_n = {}, 0
        return out

    def state_dict(self) -> dict[str, Any]:
        st = super().state_dict()
        if self.pairs is not None:
            st["pairs"] = self.pairs.state_dict()
        return st

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.pairs is not None and "pairs" in state:
            self.pairs.load_state_dict(state["pairs"])


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------
@dataclass
class FinetuneOutcome:
    adapter: Path
    step: int
    best_val: float | None
    seconds: float
    sft_examples: int
    pairs: int
    held_out: int


def split(items: Sequence[FeedbackItem], val_fraction: float, seed: int
          ) -> tuple[list[FeedbackItem], list[FeedbackItem]]:
    """Held-out examples (only with ten or more; the same with the same seed)."""
    import random

    if val_fraction <= 0 or len(items) < 10:
        return list(items), []
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    val = set(order[:max(1, int(round(len(items) * val_fraction)))])
    return ([x for i, x in enumerate(items) if i not in val],
            [x for i, x in enumerate(items) if i in val])


def finetune(req: FinetuneRequest, feedback: FeedbackSet, run_dir: Path, rep: Reporter,
             device: str = "cpu", resume: bool = False) -> FinetuneOutcome:
    """LoRA fine-tuning of ``req.model`` on ``feedback`` into ``run_dir/adapter``."""
    import torch

    from plugins.common.lm.loading import inspect_model_dir, load_causal_lm, save_model_folder
    from plugins.common.lm.tokens import save_tokenizer
    from plugins.common.lm.training import apply_lora, count_parameters
    from plugins.common.training import Schedule, TrainLoop, refuse_to_overwrite
    from studio import storage

    from .feedback import require
    from .scratch import write_template_config
    from .sequences import conversation_sequence

    require(feedback)
    run_dir = Path(run_dir)
    refuse_to_overwrite(run_dir, run_dir / CHECKPOINT, resume, "fine-tuning")
    if str(req.model).lower().endswith(".gguf"):
        raise UserError("fine-tuning needs the model's Hugging Face folder (safetensors): a "
                        "GGUF file can chat but not be trained here")
    info = inspect_model_dir(req.model)
    base_dir = info.base if info.kind == "adapter" else info.path
    assert base_dir is not None
    template = _template(req.template, info)
    train_items, val_items = split(feedback.items, req.val_fraction, req.seed)
    rep.progress(0, None, "loading the model")
    torch.manual_seed(req.seed)  # the adapter's initial weights
    model, tokenizer, _ = load_causal_lm(info.path, device=device, dtype="float32",
                                         trainable_adapter=info.kind == "adapter")

    def sft(items: Sequence[FeedbackItem]) -> list[TokenSequence]:
        return [conversation_sequence(tokenizer, template, [
            *x.prompt_messages(), {"role": "assistant", "content": x.target}], train="last")
            for x in items]

    train_seqs, val_seqs = sft(train_items), sft(val_items)
    pairs = []
    if req.method == "sft_dpo":
        for x in train_items:
            if x.rejected is not None:
                prompt = x.prompt_messages()
                pairs.append((
                    conversation_sequence(tokenizer, template, [
                        *prompt, {"role": "assistant", "content": x.target}], train="last"),
                    conversation_sequence(tokenizer, template, [
                        *prompt, {"role": "assistant", "content": x.rejected}], train="last")))
    steps = req.steps or max(20, min(400, 3 * -(-len(train_seqs) // req.batch_size)))
    cfg = TrainConfig(steps=steps, batch_size=req.batch_size, block_size=req.block_size,
                      lr=req.lr, warmup=max(1, min(10, steps // 10)), weight_decay=0.0,
                      eval_every=max(5, steps // 5), eval_tokens=0, seed=req.seed,
                      method="lora", lora_r=req.lora_r, lora_alpha=2 * req.lora_r,
                      log_every=max(1, min(10, steps // 10)), min_lr_ratio=0.1)
    if info.kind != "adapter":
        model = apply_lora(model, cfg)
    trainable, total = count_parameters(model)
    rep.log(f"fine-tuning {base_dir.name} with a LoRA adapter ({trainable:,} of {total:,} "
            f"weights train) on {feedback.describe()}: {len(train_seqs)} supervised examples, "
            f"{len(pairs)} preference pairs, {len(val_seqs)} held out; {steps} steps")
    storage.atomic_write_json(run_dir / CONFIG_NAME, {
        "format": FORMAT, "request": req.to_json(), "base_model": str(base_dir.resolve()),
        "template": template.label, "steps": steps, "sft_examples": len(train_seqs),
        "pairs": len(pairs), "held_out": len(val_seqs), "train": cfg.to_json()})
    storage.atomic_write_text(run_dir / "feedback.jsonl", "".join(
        json.dumps({**x.to_json(), "held_out": x in val_items}, ensure_ascii=False) + "\n"
        for x in feedback.items))
    adapter_dir = run_dir / "adapter"
    saved: dict[str, Path] = {}

    def export(state: LoopState, reason: str) -> None:
        best = task.restore_best(state.step)

        def write(tmp: Path) -> None:
            model.save_pretrained(str(tmp))
            save_tokenizer(tokenizer, tmp)
            write_template_config(tmp, template.source)
            cfg_path = tmp / "adapter_config.json"
            acfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            acfg["base_model_name_or_path"] = str(base_dir.resolve())
            storage.atomic_write_json(cfg_path, acfg)
            storage.atomic_write_json(tmp / "studio.json", {
                "made_by": "chat finetune", "base": base_dir.name, "step": state.step,
                "best_step": best, "sft_examples": len(train_seqs), "pairs": len(pairs),
                "method": req.method, "template": template.label})

        saved["dir"] = save_model_folder(adapter_dir, write)

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    task = FeedbackTask(model, SequenceData(train_seqs, val_seqs, pad_id=pad),
                        PairData(pairs, pad) if pairs else None, cfg, rep, device,
                        beta=req.beta, dpo_weight=req.dpo_weight, best_path=run_dir / BEST,
                        export=export)
    schedule = Schedule(steps=cfg.steps, log_every=cfg.log_every, eval_every=cfg.eval_every,
                        checkpoint_every=cfg.eval_every,
                        best="loss/val" if task.has_validation else "")
    loop = TrainLoop(task, schedule, rep, run_dir / CHECKPOINT)
    if resume:
        rep.log(f"resumed at step {loop.resume()}")
    else:
        torch.manual_seed(req.seed)  # LoRA dropout draws from the global generator
    outcome = loop.run()
    return FinetuneOutcome(saved.get("dir", adapter_dir), outcome.step, outcome.best_value,
                           outcome.elapsed, len(train_seqs), len(pairs), len(val_seqs))


def _template(spec: str, info: Any) -> Any:
    from . import templates as templates_mod

    found = templates_mod.detect(info.path)
    if found is None and info.base is not None:
        found = templates_mod.detect(info.base)
    special = dict(found.special_tokens) if found is not None else {}
    if spec and spec.lower() in templates_mod.BUILTINS:
        return templates_mod.builtin(spec, special)
    if spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"unknown chat template '{spec}': choose one of "
                            f"{', '.join(templates_mod.BUILTINS)} or a .jinja file")
        return templates_mod.ChatTemplate(path.read_text(encoding="utf-8"), special,
                                          f"your template ({path.name})")
    if found is None:
        raise UserError(f"{info.path.name} has no chat template, so the studio cannot know how "
                        "it formats a conversation: choose one (--template chatml, llama3, ... "
                        "or a .jinja file); it is saved with the adapter")
    return found.pick()
