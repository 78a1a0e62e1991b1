"""The chat plugin's audit probe: how the privacy and bias audit reads, scores and samples a
chat run (a model trained from scratch on dialogs, or a LoRA adapter fine-tuned from feedback).

The protocol is :mod:`plugins.common.probes`; the audit imports this module only when it audits
a chat run (``ChatPlugin.audit_probe``), so nothing here loads at startup.

- **Items** are texts: a dialog (train runs: ``dialog i`` of a dialog file, read with the chat's
  own reader, the file checked against its recorded hash) or a rated reply with its prompt
  (finetune runs: the ``feedback.jsonl`` the run saved, since the chat store changes after
  training), written as ``role: content`` lines.
- **Loss**: the negative log-likelihood of the assistant's replies, in the model's chat template
  as it trained (every reply of a dialog; the last, rated reply of feedback), in nats per
  *character* of those replies: each from-scratch run trains its own tokenizer, so nats per token
  of two reference models would not compare.
- **Samples**: replies (``assistant: ...``) to a fixed, seeded choice among :data:`OPENERS`,
  the chat's usual sampler settings; a reply that reproduces a training reply is what the
  memorisation audit looks for.
- **Features**: hashed word 1-2-gram counts, log-scaled and L2-normalised (as the writer's
  probe, for the same reason: a small model's hidden states point alike for any text).
- **Canaries**: ``log_perplexity`` in bits of a text as an assistant reply to an empty user
  turn; ``corpus_job`` trains a chatbot from scratch on the canaried copy (a text file's lines
  are alternating turns, the chat's plain-text reader), nothing held out.
- **Bias probes**: a template sentence is spoken by the assistant (the reply prefilled with the
  prompt, after a user asking to finish a sentence), so a chat model is probed in its own role;
  ``continuation_logprob`` scores the continuation after that prefix, ``generate`` continues it.
- **Reference models**: the run's own job with the held-out share as its ``val_fraction``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plugins.common.probes import ProbeBase, ProbeExample
from studio.errors import UserError

#: the user turns samples answer (chosen by seed)
OPENERS = ("Hello", "Hi, how are you?", "What can you do?", "Tell me something.",
           "What do you like?", "Who are you?", "Can you help me?", "What is new?")
#: what the user says before the assistant speaks a bias template's sentence
FINISH = "Finish this sentence."
SAMPLE_TOKENS = 96
CONTINUATION_TOKENS = 24
EMBED_DIM = 4096
TEXT_BATCH = 32
LN2 = math.log(2.0)


class ChatProbe(ProbeBase):
    """A chat run (its ``model`` artifact: a causal LM folder or a LoRA adapter) for the audit."""

    item_kind = "text"

    def __init__(self, run_dir: Path, device: str = "cpu") -> None:
        super().__init__(run_dir, device)
        self._dialogs: dict[str, list[Any]] = {}
        self._feedback: dict[str, dict[str, Any]] | None = None

    def open(self) -> None:
        from plugins.chat.engine import templates as templates_mod
        from plugins.common.lm.loading import inspect_model_dir, load_causal_lm

        models = self.manifest.models()
        if not models:
            raise UserError(f"the run {self.run_dir.name} has no model yet: let its training "
                            "finish (or Stop it, which saves the model so far) before auditing")
        folder = self.run_dir / models[-1].path
        info = inspect_model_dir(folder)
        self.model, self.tokenizer, _ = load_causal_lm(folder, device=self.device,
                                                       dtype="float32")
        self.model.eval()
        found = templates_mod.detect(info.path)
        if found is None and info.base is not None:
            found = templates_mod.detect(info.base)
        if found is None:
            raise UserError(f"the model of {self.run_dir.name} has no chat template, so the "
                            "audit cannot know how it reads a conversation")
        self.template = found.pick()

    def close(self) -> None:
        for name in ("model", "tokenizer"):
            if hasattr(self, name):
                delattr(self, name)
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # -- items ----------------------------------------------------------------------------------
    def _messages(self, example: ProbeExample) -> list[dict[str, str]]:
        if self.dataset.unit == "reply":  # a finetune run: the feedback it saved
            if self._feedback is None:
                path = self.run_dir / "feedback.jsonl"
                if not path.exists():
                    raise UserError(f"the fine-tuning run {self.run_dir.name} lost its "
                                    "feedback.jsonl, so its examples cannot be read")
                self._feedback = {}
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        d = json.loads(line)
                        self._feedback[str(d["id"])] = d
            d = self._feedback.get(example.id)
            if d is None:
                raise UserError(f"the rated reply {example.path} is not in the run's "
                                "feedback.jsonl")
            return [*d["messages"], {"role": "assistant", "content": d["target"]}]
        from plugins.chat.engine.dialogs import read_file

        turns = self._dialogs.get(example.path)
        if turns is None:
            turns = read_file(self.example_path(example, verify=True))
            self._dialogs[example.path] = turns
        try:
            index = int(example.part.split()[-1])
            return [{"role": r, "content": c} for r, c in turns[index]]
        except (ValueError, IndexError):
            raise UserError(f"the dialog {example.part} of {example.path} is gone: the file "
                            "changed since the run") from None

    def read(self, example: ProbeExample) -> str:
        return "\n".join(f"{m['role']}: {m['content']}" for m in self._messages(example))

    @staticmethod
    def _parse(item: str) -> list[dict[str, str]]:
        """An item's ``role: content`` lines back into messages (a line without a known role
        continues the message before it)."""
        msgs: list[dict[str, str]] = []
        for line in item.split("\n"):
            role, sep, content = line.partition(": ")
            if sep and role in ("system", "user", "assistant"):
                msgs.append({"role": role, "content": content})
            elif msgs:
                msgs[-1]["content"] += "\n" + line
            else:
                msgs.append({"role": "user", "content": line})
        return msgs

    def per_example_loss(self, items: Sequence[str]) -> np.ndarray:
        """Nats per character of the item's assistant replies (0 when it has none)."""
        from plugins.chat.engine.sequences import conversation_sequence

        train = "last" if self.dataset.unit == "reply" else "all"
        out = np.zeros(len(items), dtype=np.float64)
        for i, item in enumerate(items):
            msgs = self._parse(item)
            chars = sum(len(m["content"]) for m in msgs if m["role"] == "assistant")
            if not chars:
                continue
            try:
                seq = conversation_sequence(self.tokenizer, self.template, msgs, train=train)
            except UserError:
                continue
            nll = -_masked_logprob(self.model, seq.ids, seq.mask)
            if train == "last":
                chars = len(msgs[-1]["content"]) if msgs[-1]["role"] == "assistant" else chars
            out[i] = nll / max(chars, 1)
        return out

    def log_perplexity(self, texts: Sequence[str]) -> np.ndarray:
        """``-log2 P(text)`` in bits, the text as the assistant's reply to an empty user turn."""
        from plugins.common.lm.scoring import continuation_logprobs

        head = self._reply_prefix("")
        conts = [self._encode(t) or self._encode(" ") for t in texts]
        lp = continuation_logprobs(self.model, [head] * len(conts), conts, batch=TEXT_BATCH)
        return -lp / LN2

    # -- samples and features -------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> list[str]:
        """Replies to openers chosen by ``seed``; the replies to one opener are decoded
        together in one batch."""
        if n <= 0:
            return []
        rng = np.random.default_rng(seed)
        pick = [int(rng.integers(len(OPENERS))) for _ in range(n)]
        out = [""] * n
        for o in sorted(set(pick)):
            where = [k for k, p in enumerate(pick) if p == o]
            ids = self._chat_ids([{"role": "user", "content": OPENERS[o]}])
            replies = self._continue(ids, len(where), int(seed) * 65_536 + o, SAMPLE_TOKENS)
            for k, reply in zip(where, replies, strict=True):
                out[k] = f"assistant: {reply.strip()}"
        return out

    def embed(self, items: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        vec = HashingVectorizer(n_features=EMBED_DIM, ngram_range=(1, 2), alternate_sign=False,
                                norm=None, lowercase=True)
        counts = vec.transform(list(items)).astype(np.float64)
        counts.data = np.log1p(counts.data)
        dense = counts.toarray()
        return dense / np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)

    # -- bias probes ----------------------------------------------------------------------------
    def continuation_logprob(self, prompts: Sequence[str], continuations: Sequence[str]
                             ) -> np.ndarray:
        """``log P(continuation | the assistant has said prompt)`` in nats."""
        from plugins.common.lm.scoring import continuation_logprobs

        conts = [self._encode(c) for c in continuations]
        if any(not c for c in conts):
            raise UserError("a continuation to score is empty: give each word some text")
        return continuation_logprobs(self.model, [self._reply_prefix(p) for p in prompts],
                                     conts, batch=TEXT_BATCH)

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        """``n`` continuations of the assistant's reply that begins with ``prompt``."""
        if n <= 0:
            return []
        return self._continue(self._reply_prefix(prompt), n, int(seed), CONTINUATION_TOKENS)

    # -- reference models and the canary corpus -------------------------------------------------
    def reference_job(self, holdout: float, seed: int) -> tuple[str, Any]:
        job, params = super().reference_job(holdout, seed)
        params.pop("holdout", None)
        params["val_fraction"] = holdout
        if job == "train" and str(params.get("data", "")).lower() != "builtin":
            params["data"] = self.dataset.location
        return job, params

    @classmethod
    def corpus_job(cls, corpus: Path, preset: str, steps: int) -> tuple[str, Any]:
        return "train", {"data": str(corpus), "preset": preset, "steps": steps,
                         "val_fraction": 0.0}

    # -- helpers --------------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def _chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return self._encode(self.template.render(messages, add_generation_prompt=True))

    def _reply_prefix(self, prompt: str) -> list[int]:
        """A user asking to finish a sentence, then the assistant's reply begun with ``prompt``
        (an empty prompt: the reply's start)."""
        user = FINISH if prompt else ""
        return self._chat_ids([{"role": "user", "content": user}]) + self._encode(prompt)

    def _continue(self, ids: list[int], n: int, seed: int, tokens: int) -> list[str]:
        from plugins.common.lm.generation import Generator
        from plugins.common.lm.sampling import SamplingSettings

        gen = Generator(self.model, self.tokenizer)
        room = max(1, min(tokens, gen.context - len(ids) - 1))
        settings = SamplingSettings(max_new_tokens=room, seed=seed,
                                    stop=tuple(self.template.stop))
        return [str(t) for t in gen.generate_many(ids, n, settings)]


def _masked_logprob(model: Any, ids: Sequence[int], mask: Sequence[int]) -> float:
    """Summed log-probability of the tokens whose mask is 1 (each from the tokens before it),
    the sequence cut to the model's context from the end."""
    import torch

    from plugins.common.lm.loading import context_length

    limit = context_length(model.config)
    ids, mask = list(ids)[-limit:], list(mask)[-limit:]
    if len(ids) < 2:
        return 0.0
    dev = next(model.parameters()).device
    x = torch.tensor([ids], dtype=torch.long, device=dev)
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
        got = logp.gather(-1, x[0, 1:].unsqueeze(-1)).squeeze(-1)
        m = torch.tensor(mask[1:], dtype=torch.float32, device=dev)
        return float((got * m).sum())
