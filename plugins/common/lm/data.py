"""What a language model trains on: the data side of :class:`~.training.LMTask`, pluggable.

A data source hands the task batches of ``inputs`` and ``labels`` (the next token at each
position, or :data:`IGNORE` where nothing is trained) and scores its validation part. Two
sources exist:

- :class:`StreamData`: one flat token stream (a corpus of documents, each closed by eos);
  batches are random windows of ``block_size + 1`` tokens and every position is trained
  (nanoGPT's sampler: cheap, and a resumed run draws the same windows).
- :class:`SequenceData`: separate sequences with a **loss mask** (:class:`TokenSequence`), e.g.
  a prompt and its reply, where only the reply's tokens are trained: the model learns to answer,
  not to write questions. Batches take the sequences in a shuffled order, an epoch at a time,
  padded on the right (a causal model never looks ahead, so padding needs no attention mask).

:func:`pair_sequence`, :func:`split_pair` and :func:`chat_pair` build masked sequences from a
prompt and a reply (token ids, a conversation rendered twice, or a conversation in the
tokenizer's own chat template). Preference pairs (chosen /
rejected replies) would be a third source with a task that overrides :meth:`LMTask.loss`.

Every random choice draws from the task's generator, passed in, so checkpoints resume exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from plugins.common.training import Reporter
from studio.errors import UserError

#: the label of a position that is not trained (``torch.nn.functional.cross_entropy``'s
#: default ``ignore_index``)
IGNORE = -100


@dataclass
class Batch:
    """One training batch: ``inputs`` and ``labels`` are (B, T) long tensors on the device;
    ``tokens`` counts the real (unpadded) input tokens, for the tokens-per-second figure."""

    inputs: Any
    labels: Any
    tokens: int


class TrainData(Protocol):
    """What :class:`~.training.LMTask` asks of its data. ``state_dict``/``load_state_dict`` are
    optional (a source whose only randomness is the task's generator has no state)."""

    def fit(self, block_size: int, rep: Reporter) -> int:
        """Get ready for windows of ``block_size`` tokens; returns the block size to use (a
        source may need a shorter one, and says so through ``rep``)."""
        ...

    def batch(self, batch_size: int, block_size: int, generator: Any, device: Any) -> Batch: ...

    @property
    def has_validation(self) -> bool: ...

    def validation_nll(self, model: Any, block_size: int, batch_size: int, max_tokens: int,
                       check: Callable[[], None] | None = None) -> tuple[float, int]:
        """Summed negative log-likelihood of the validation part's trained tokens, and their
        count (``max_tokens`` caps the work; 0: all)."""
        ...


# ----------------------------------------------------------------------------------------------
# One flat stream
# ----------------------------------------------------------------------------------------------
class StreamData:
    """One token stream, every position trained (a writer's corpus).

    Args:
        train_ids / val_ids: 1-D sequences of token ids (val may be empty: no validation).
    """

    def __init__(self, train_ids: Sequence[int] | Any, val_ids: Sequence[int] | Any = ()) -> None:
        import torch

        self.train = torch.as_tensor(train_ids, dtype=torch.long)
        self.val = torch.as_tensor(val_ids if val_ids is not None else [], dtype=torch.long)
        if self.train.numel() < 2:
            raise UserError("the training text is too short: it needs at least a few words")

    @property
    def has_validation(self) -> bool:
        return self.val.numel() >= 2

    def fit(self, block_size: int, rep: Reporter) -> int:
        n = int(self.train.numel())
        if n <= block_size + 1:
            new = max(1, n - 2)
            rep.warn(f"the training text has only {n} tokens: the context length is reduced "
                     f"from {block_size} to {new}")
            return new
        return block_size

    def batch(self, batch_size: int, block_size: int, generator: Any, device: Any) -> Batch:
        import torch

        T = block_size
        hi = self.train.numel() - T - 1
        ix = torch.randint(0, max(1, hi + 1), (batch_size,), generator=generator)
        rows = torch.stack([self.train[i:i + T + 1] for i in ix.tolist()])
        rows = rows.to(device, non_blocking=True)
        return Batch(rows[:, :-1], rows[:, 1:], batch_size * T)

    # -- fixed records, for private training (plugins.common.privacy) --------------------------
    def records(self, block_size: int) -> int:
        """How many training records the stream holds for private training: disjoint
        passages of ``block_size + 1`` tokens (each token in exactly one, so a record's
        influence can be bounded; the tail shorter than a passage is not trained)."""
        return int(self.train.numel()) // (block_size + 1)

    def record_batch(self, indices: Any, block_size: int, device: Any) -> Batch:
        """The passages ``indices`` (from :meth:`records`) as a batch."""
        import torch

        T = block_size + 1
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        rows = self.train[: self.records(block_size) * T].view(-1, T)[idx]
        rows = rows.to(device, non_blocking=True)
        return Batch(rows[:, :-1], rows[:, 1:], int(idx.numel()) * block_size)

    def validation_nll(self, model: Any, block_size: int, batch_size: int, max_tokens: int,
                       check: Callable[[], None] | None = None) -> tuple[float, int]:
        from plugins.common.lm.scoring import evaluate_ids

        ids = self.val
        if max_tokens and ids.numel() > max_tokens:
            ids = ids[:max_tokens]
        return evaluate_ids(model, ids.tolist(), block_size, check=check)


# ----------------------------------------------------------------------------------------------
# Masked sequences
# ----------------------------------------------------------------------------------------------
@dataclass
class TokenSequence:
    """Token ids and a loss mask: ``mask[j]`` is 1 when token ``j`` is trained (the model
    learns to predict it from the tokens before), 0 when it is context only. ``mask[0]`` is
    never used: nothing comes before the first token."""

    ids: list[int]
    mask: list[int]

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.mask):
            raise ValueError(f"{len(self.ids)} ids but {len(self.mask)} mask entries")

    @property
    def trained(self) -> int:
        """How many tokens this sequence trains."""
        return sum(1 for m in self.mask[1:] if m)


def pair_sequence(prompt_ids: Sequence[int], reply_ids: Sequence[int],
                  end_id: int | None = None) -> TokenSequence:
    """A prompt followed by its reply (and ``end_id``, so the model learns to stop); only the
    reply (and the end) is trained."""
    reply = [int(i) for i in reply_ids] + ([int(end_id)] if end_id is not None else [])
    prompt = [int(i) for i in prompt_ids]
    return TokenSequence(prompt + reply, [0] * len(prompt) + [1] * len(reply))


def split_pair(prompt_ids: Sequence[int], full_ids: Sequence[int]) -> TokenSequence:
    """A conversation rendered twice, without and with the reply (``prompt_ids`` ending with
    the generation prompt, ``full_ids`` the same conversation with the assistant's reply):
    the tokens ``full_ids`` adds are the reply, the only ones trained.

    A template that rewrites earlier turns once a reply follows (some strip "thinking" from
    the history) cannot be split this way: that is refused, not guessed."""
    prompt, full = [int(i) for i in prompt_ids], [int(i) for i in full_ids]
    if full[:len(prompt)] != prompt or len(full) == len(prompt):
        raise UserError("this model's chat template formats a conversation differently once a "
                        "reply follows, so the reply cannot be told apart from the prompt: "
                        "fine-tune with a plainer template")
    return TokenSequence(full, [0] * len(prompt) + [1] * (len(full) - len(prompt)))


def chat_pair(tokenizer: Any, messages: Sequence[Mapping[str, str]],
              reply: str) -> TokenSequence:
    """A conversation and the assistant's ``reply`` in the tokenizer's own chat template
    (``apply_chat_template``); only the reply's tokens (with the template's end-of-turn marker)
    are trained. See :func:`split_pair` for templates rendered elsewhere."""
    from plugins.common.lm.tokens import chat_ids

    prompt = chat_ids(tokenizer, messages, add_generation_prompt=True)
    full = chat_ids(tokenizer, [*messages, {"role": "assistant", "content": reply}],
                    add_generation_prompt=False)
    return split_pair(prompt, full)


class SequenceData:
    """Masked sequences (prompt/reply pairs), each trained only where its mask says.

    Args:
        train / val: the sequences (val may be empty: no validation).
        pad_id: the id padding is filled with (never trained, never attended to by a real
            token, so any id will do).

    Sequences longer than the block (``block_size + 1`` tokens) keep their end: the reply and
    the context nearest to it. Sequences with nothing left to train are left out, with a
    warning that counts them.
    """

    def __init__(self, train: Sequence[TokenSequence], val: Sequence[TokenSequence] = (),
                 pad_id: int = 0) -> None:
        self.source_train = list(train)
        self.source_val = list(val)
        self.pad_id = int(pad_id)
        if not self.source_train:
            raise UserError("there are no training examples")
        self.train: list[TokenSequence] = []
        self.val: list[TokenSequence] = []
        self.order: Any = None  # this epoch's order of the training sequences
        self.pos = 0  # the next place in it
        self.epoch = 0

    @property
    def has_validation(self) -> bool:
        return bool(self.val)

    def fit(self, block_size: int, rep: Reporter) -> int:
        limit = block_size + 1
        cut = {"train": 0, "val": 0}
        empty = {"train": 0, "val": 0}

        def prepared(seqs: list[TokenSequence], part: str) -> list[TokenSequence]:
            out = []
            for s in seqs:
                if len(s.ids) > limit:
                    s = TokenSequence(s.ids[-limit:], s.mask[-limit:])
                    cut[part] += 1
                if s.trained == 0:
                    empty[part] += 1
                    continue
                out.append(s)
            return out

        self.train = prepared(self.source_train, "train")
        self.val = prepared(self.source_val, "val")
        if cut["train"] or cut["val"]:
            rep.warn(f"{cut['train'] + cut['val']} example(s) are longer than the context "
                     f"({limit} tokens): their beginning is left out")
        if empty["train"] or empty["val"]:
            rep.warn(f"{empty['train'] + empty['val']} example(s) have no reply to learn from "
                     "and are left out")
        if not self.train:
            raise UserError("no training example has a reply to learn from")
        return block_size

    def _next_indices(self, n: int, generator: Any) -> list[int]:
        import torch

        out: list[int] = []
        while len(out) < n:
            if self.order is None or self.pos >= len(self.order):
                if self.order is not None:
                    self.epoch += 1
                self.order = torch.randperm(len(self.train), generator=generator)
                self.pos = 0
            take = min(n - len(out), len(self.order) - self.pos)
            out += self.order[self.pos:self.pos + take].tolist()
            self.pos += take
        return out

    def _collate(self, seqs: Sequence[TokenSequence], device: Any) -> Batch:
        import torch

        width = max(len(s.ids) for s in seqs) - 1
        inputs = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
        tokens = 0
        for r, s in enumerate(seqs):
            ids = torch.tensor(s.ids, dtype=torch.long)
            mask = torch.tensor(s.mask[1:], dtype=torch.bool)
            n = len(s.ids) - 1
            inputs[r, :n] = ids[:-1]
            labels[r, :n] = torch.where(mask, ids[1:], torch.full_like(ids[1:], IGNORE))
            tokens += n
        return Batch(inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True),
                     tokens)

    def batch(self, batch_size: int, block_size: int, generator: Any, device: Any) -> Batch:
        return self._collate([self.train[i] for i in self._next_indices(batch_size, generator)],
                             device)

    def validation_nll(self, model: Any, block_size: int, batch_size: int, max_tokens: int,
                       check: Callable[[], None] | None = None) -> tuple[float, int]:
        import torch

        from plugins.common.lm.scoring import labelled_nll

        device = next(model.parameters()).device
        total, count, seen = 0.0, 0, 0
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for i in range(0, len(self.val), max(1, batch_size)):
                    if check is not None:
                        check()
                    if max_tokens and seen >= max_tokens:
                        break
                    b = self._collate(self.val[i:i + batch_size], device)
                    nll, c = labelled_nll(model, b.inputs, b.labels)
                    total, count, seen = total + nll, count + c, seen + b.tokens
        finally:
            model.train(was_training)
        return total, count

    def state_dict(self) -> dict[str, Any]:
        import torch

        order = self.order if self.order is not None else torch.zeros(0, dtype=torch.long)
        return {"order": order, "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        order = state["order"]
        self.order = order.to("cpu").long() if order.numel() else None
        if self.order is not None and len(self.order) != len(self.train):
            raise UserError("the checkpoint was trained on a different number of examples: "
                            "start a new run for the changed data")
        self.pos = int(state["pos"])
        self.epoch = int(state["epoch"])
