"""Train a small chatbot from scratch on dialogs: tokenizer, model, chat template, training.

The recipe: a byte-level BPE tokenizer trained on the training dialogs with ChatML's special
tokens (``<|im_start|>``, ``<|im_end|>`` ends a turn and is the end-of-text token,
``<|endoftext|>`` pads), a Llama-style model of a preset size initialised fresh, every dialog
rendered with the ChatML template and only the assistant's turns trained
(:mod:`.sequences`), on the shared language-model task in the shared loop (validation on
held-out dialogs, keep-best, checkpoints, exact resume). The model folder it saves is a plain
Hugging Face folder whose ``tokenizer_config.json`` holds the chat template, so the chat (and
any other tool) formats prompts exactly as it was trained.

Run folder (``RUN``)::

    RUN/config.json                   the request and the resolved settings
    RUN/tokenizer/                    the tokenizer trained on the dialogs
    RUN/checkpoints/last.safetensors  resumable state; best.safetensors: best validation weights
    RUN/model/                        the chat model
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from plugins.common.training import LoopState, Reporter
from studio.errors import UserError

from .dialogs import Dialog, DialogSet
from .templates import BUILTINS, ChatTemplate

CONFIG_NAME = "config.json"
FORMAT = "studio-chat-train-1"
CHECKPOINT = Path("checkpoints") / "last.safetensors"
BEST = Path("checkpoints") / "best.safetensors"
IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = (PAD, IM_START, IM_END)
CHATML = BUILTINS["chatml"].source


@dataclass(frozen=True)
class Preset:
    """A model size for training from scratch."""

    name: str
    description: str
    layers: int
    width: int
    heads: int
    kv_heads: int
    ffn: int
    block_size: int
    batch_size: int
    lr: float
    vocab_size: int
    warmup: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", "about 3 million parameters: a few CPU minutes", layers=4, width=192,
                   heads=6, kv_heads=2, ffn=512, block_size=256, batch_size=16, lr=3e-3,
                   vocab_size=4096, warmup=30),
    "small": Preset("small", "about 20 million parameters: an hour on a CPU, minutes on a GPU",
                    layers=8, width=384, heads=6, kv_heads=2, ffn=1024, block_size=512,
                    batch_size=16, lr=1.5e-3, vocab_size=8192, warmup=100),
}


@dataclass
class ScratchRequest:
    """What the user asked for; zero means "the preset's"."""

    data: str                       # "builtin" or an absolute path
    language: str = "english"
    preset: str = "tiny"
    steps: int = 1000
    batch_size: int = 0
    block_size: int = 0
    lr: float = 0.0
    vocab_size: int = 0
    val_fraction: float = 0.1
    eval_every: int = 0
    patience: int = 0
    max_seconds: float = 0.0
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def train_chat_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer for chat (ChatML's special tokens, ``<|im_end|>`` as eos),
    with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not any(t.strip() for t in texts):
        raise UserError("the dialogs hold no text to train a tokenizer on")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=max(300, vocab_size),
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD)
    fast.chat_template = CHATML
    return fast


def write_template_config(folder: Path, source: str) -> None:
    """Put the chat template into ``tokenizer_config.json`` (where most tools look), beside
    the ``chat_template.jinja`` newer transformers write."""
    from studio.storage import atomic_write_json

    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    cfg["chat_template"] = source
    atomic_write_json(path, cfg)


def build_model(preset: Preset, tokenizer: Any, block_size: int, seed: int) -> Any:
    """A freshly initialised Llama-style model for ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    eos, pad = tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(PAD)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=preset.width,
                         intermediate_size=preset.ffn, num_hidden_layers=preset.layers,
                         num_attention_heads=preset.heads, num_key_value_heads=preset.kv_heads,
                         max_position_embeddings=block_size, rms_norm_eps=1e-5,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos,
                         pad_token_id=pad)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = None
    return model


def split(dialogs: Sequence[Dialog], val_fraction: float, seed: int
          ) -> tuple[list[Dialog], list[Dialog]]:
    """Held-out dialogs drawn with the run's seed (the same split on resume)."""
    order = list(range(len(dialogs)))
    random.Random(seed).shuffle(order)
    n_val = int(round(len(dialogs) * val_fraction)) if len(dialogs) >= 10 else 0
    val = set(order[:n_val])
    return ([d for i, d in enumerate(dialogs) if i not in val],
            [d for i, d in enumerate(dialogs) if i in val])


def sequences(tokenizer: Any, dialogs: Sequence[Dialog],
              check: Callable[[], None] | None = None) -> list[Any]:
    from .sequences import conversation_sequence

    template = ChatTemplate(CHATML, {"eos_token": IM_END}, "ChatML")
    out = []
    for i, d in enumerate(dialogs):
        if check is not None and i % 256 == 0:
            check()
        out.append(conversation_sequence(tokenizer, template, d.as_messages(), train="all"))
    return out


@dataclass
class ScratchOutcome:
    model_dir: Path
    step: int
    best_val: float | None
    seconds: float
    parameters: int
    sample: str


def train_from_scratch(req: ScratchRequest, dialogs: DialogSet, run_dir: Path,
                       rep: Reporter, device: str = "cpu",
                       resume: bool = False) -> ScratchOutcome:
    """Train (or resume) a chat model on ``dialogs`` in ``run_dir``; returns where the model
    is and how the run went."""
    import torch

    from plugins.common.lm.data import SequenceData
    from plugins.common.lm.loading import save_model_folder
    from plugins.common.lm.tokens import load_tokenizer, save_tokenizer
    from plugins.common.lm.training import LMTask, TrainConfig, count_parameters
    from plugins.common.training import Schedule, TrainLoop, refuse_to_overwrite
    from studio import storage

    run_dir = Path(run_dir)
    refuse_to_overwrite(run_dir, run_dir / CHECKPOINT, resume, "chat training")
    if req.preset not in PRESETS:
        raise UserError(f"unknown preset {req.preset!r}: choose one of {', '.join(PRESETS)}")
    preset = PRESETS[req.preset]
    block = req.block_size or preset.block_size
    batch = req.batch_size or preset.batch_size
    if resume:
        if not (run_dir / CONFIG_NAME).exists() or not (run_dir / "tokenizer").exists():
            raise UserError(f"{run_dir.name} is not a chat training run: nothing to resume")
        saved = storage.read_json(run_dir / CONFIG_NAME)
        block, batch = int(saved["block_size"]), int(saved["batch_size"])
    train_d, val_d = split(dialogs.dialogs, req.val_fraction, req.seed)
    if resume:
        tokenizer = load_tokenizer(run_dir / "tokenizer")
    else:
        rep.progress(0, None, "training the tokenizer")
        texts = [c for d in train_d for _, c in d.messages]
        tokenizer = train_chat_tokenizer(texts, req.vocab_size or preset.vocab_size)
        save_tokenizer(tokenizer, run_dir / "tokenizer")
    rep.check()
    train_seqs = sequences(tokenizer, train_d, rep.check)
    val_seqs = sequences(tokenizer, val_d, rep.check)
    n_tokens = sum(len(s.ids) for s in train_seqs)
    rep.log(f"{len(train_d):,} dialogs for training ({n_tokens:,} tokens), {len(val_d):,} held "
            f"out; vocabulary {len(tokenizer):,}")
    model = build_model(preset, tokenizer, block, req.seed).to(device)
    _, total = count_parameters(model)
    eval_every = req.eval_every or max(10, req.steps // 10)
    cfg = TrainConfig(steps=req.steps, batch_size=batch, block_size=block,
                      lr=req.lr or preset.lr, warmup=min(preset.warmup, max(1, req.steps // 10)),
                      eval_every=eval_every, patience=req.patience,
                      max_seconds=req.max_seconds, seed=req.seed, method="full",
                      log_every=max(1, min(10, req.steps // 20 or 1)), eval_tokens=32768)
    storage.atomic_write_json(run_dir / CONFIG_NAME, {
        "format": FORMAT, "request": req.to_json(), "block_size": block, "batch_size": batch,
        "parameters": total, "train_dialogs": len(train_d), "val_dialogs": len(val_d),
        "train": cfg.to_json()})
    pad = tokenizer.convert_tokens_to_ids(PAD)
    model_dir = run_dir / "model"
    saved_dir: dict[str, Path] = {}

    def export(state: LoopState, reason: str) -> None:
        best = task.restore_best(state.step)
        if best is not None and best != state.step:
            rep.log(f"saving the weights of step {best} (the best on held-out dialogs)")

        def write(tmp: Path) -> None:
            model.save_pretrained(str(tmp))
            save_tokenizer(tokenizer, tmp)
            write_template_config(tmp, CHATML)
            storage.atomic_write_json(tmp / "studio.json", {
                "made_by": "chat train", "data": dialogs.name, "step": state.step,
                "best_step": best, "chat_template": "ChatML"})

        saved_dir["dir"] = save_model_folder(model_dir, write)

    task = LMTask(model, SequenceData(train_seqs, val_seqs, pad_id=pad), cfg, rep,
                  device=device, best_path=run_dir / BEST, export=export)
    schedule = Schedule(steps=cfg.steps, max_seconds=cfg.max_seconds or None,
                        log_every=cfg.log_every, eval_every=cfg.eval_every,
                        checkpoint_every=cfg.eval_every,
                        best="loss/val" if task.has_validation else "",
                        patience=cfg.patience)
    loop = TrainLoop(task, schedule, rep, run_dir / CHECKPOINT)
    if resume:
        rep.log(f"resumed at step {loop.resume()}")
    else:
        torch.manual_seed(req.seed)
    outcome = loop.run()
    if "dir" not in saved_dir:
        saved_dir["dir"] = model_dir
    sample = sample_reply(model, tokenizer, "Hello, how are you?", device)
    rep.log(f"a sample reply to 'Hello, how are you?': {sample!r}")
    rep.preview("text", sample)
    return ScratchOutcome(saved_dir["dir"], outcome.step, outcome.best_value, outcome.elapsed,
                          total, sample)


def sample_reply(model: Any, tokenizer: Any, message: str, device: str) -> str:
    """One greedy reply of the trained model (shown at the end of training)."""
    from plugins.common.lm.generation import Generator
    from plugins.common.lm.sampling import SamplingSettings

    template = ChatTemplate(CHATML, {"eos_token": IM_END}, "ChatML")
    prompt = template.render([{"role": "user", "content": message}])
    model.eval()
    gen = Generator(model, tokenizer)
    ids = [int(i) for i in tokenizer(prompt, add_special_tokens=False)["input_ids"]]
    room = max(1, min(40, gen.context - len(ids) - 1))
    return gen.generate(ids, SamplingSettings(max_new_tokens=room, temperature=0.0,
                                              stop=(IM_END,))).strip()
