"""Held-out evaluation: perplexity, nats and bits per character.

Perplexity depends on the tokenizer (a model with longer tokens has a higher perplexity for the
same text), so we also report the loss per *character*: total negative log-likelihood of the text
divided by its number of characters. That number compares any two models on the same text,
whatever their tokenizers (nanoGPT's character-level loss is exactly this).

Every token of the text is scored: the tokenizer's bos (or eos) token is put in front as context
for the first one. The text is read in windows of the model's context length; with ``stride``
smaller than the window, each window re-reads ``window - stride`` tokens of context and scores
only its new tokens (the Hugging Face "perplexity of fixed-length models" method).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from studio.errors import UserError

LN2 = math.log(2.0)


@dataclass
class EvalResult:
    """Scores of one model on one text."""

    nll: float  # total negative log-likelihood in nats
    tokens: int  # tokens scored
    chars: int  # characters those tokens cover
    window: int
    stride: int

    @property
    def loss(self) -> float:
        """Mean nats per token."""
        return self.nll / max(1, self.tokens)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def nats_per_char(self) -> float:
        return self.nll / max(1, self.chars)

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / LN2

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(loss=self.loss, perplexity=self.perplexity, nats_per_char=self.nats_per_char,
                 bits_per_char=self.bits_per_char)
        return d

    def summary(self) -> str:
        return (f"perplexity: {self.perplexity:.3f}\n"
                f"bits per character: {self.bits_per_char:.4f}\n"
                f"nats per character: {self.nats_per_char:.4f}\n"
                f"loss per token: {self.loss:.4f} nats over {self.tokens:,} tokens "
                f"({self.chars:,} characters, window {self.window}, stride {self.stride})")


def token_nll(model: Any, ids: Any, score_from: int = 0) -> tuple[float, int]:
    """Sum of next-token NLL over a batch of windows ``ids`` (B, T), scoring predictions for
    positions ``score_from+1 .. T-1``; returns ``(nll, count)``."""
    import torch

    logits = model(input_ids=ids).logits[:, :-1].float()
    targets = ids[:, 1:]
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    nll = nll[:, score_from:]
    return float(nll.sum()), int(nll.numel())


def evaluate_ids(model: Any, ids: Sequence[int], window: int, stride: int | None = None,
                 max_batch_elems: int = 1 << 25,
                 check: Callable[[], None] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[float, int]:
    """Total NLL of ``ids[1:]`` given what precedes each (``ids[0]`` is context only).

    Windows of ``window`` tokens advance by ``stride`` (default: ``window``, no overlap); each
    scores only tokens not scored before. Returns ``(nll, tokens_scored)``.
    """
    import torch

    from plugins.writer.engine.generation import context_length

    if len(ids) < 2:
        return 0.0, 0
    window = max(2, min(int(window), context_length(model.config)))
    stride = window if not stride else max(1, min(int(stride), window))
    device = next(model.parameters()).device
    data = torch.tensor(list(ids), dtype=torch.long)
    n = len(ids)
    # Window ids[s:e] predicts positions s+1 .. e-1; only positions after ``prev`` (the last one
    # already scored) count. Consecutive windows overlap by at least one token of context.
    jobs: list[tuple[int, int, int]] = []  # start, length, score_from
    prev, s = 0, 0
    while prev < n - 1:
        e = min(n, s + window)
        jobs.append((s, e - s, max(0, prev - s)))
        prev = e - 1
        if e == n:
            break
        s = min(s + stride, e - 1)
    vocab = int(getattr(model.config, "vocab_size", 50000) or 50000)
    per_batch = max(1, max_batch_elems // (window * vocab))
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            i = 0
            while i < len(jobs):
                if check is not None:
                    check()
                length, score_from = jobs[i][1], jobs[i][2]
                group = [jobs[i]]
                while (len(group) < per_batch and i + len(group) < len(jobs)
                       and jobs[i + len(group)][1:] == (length, score_from)):
                    group.append(jobs[i + len(group)])
                batch = torch.stack([data[s:s + length] for s, _, _ in group]).to(device)
                nll, c = token_nll(model, batch, score_from)
                total += nll
                count += c
                i += len(group)
                if progress is not None:
                    progress(i, len(jobs))
    finally:
        model.train(was_training)
    return total, count


def evaluate_text(model: Any, tokenizer: Any, text: str, window: int | None = None,
                  stride: int | None = None, check: Callable[[], None] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Perplexity and bits per character of ``model`` on ``text``.

    Args:
        window: tokens per window (default: the model's context length, at most 1024).
        stride: new tokens per window (default: ``window``, i.e. no overlap).
    """
    from plugins.writer.engine.generation import context_length

    if not text:
        raise UserError("the evaluation text is empty")
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not ids:
        raise UserError("the evaluation text gives no tokens")
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else \
        tokenizer.eos_token_id
    chars = len(text)
    if start is not None:
        ids = [int(start), *ids]
    else:  # no context token: the first token cannot be predicted; do not count its characters
        chars -= len(tokenizer.decode(ids[:1]))
    ctx_len = context_length(model.config)
    window = min(int(window or min(ctx_len, 1024)), ctx_len)
    nll, count = evaluate_ids(model, ids, window, stride, check=check, progress=progress)
    if count == 0:
        raise UserError("the evaluation text is too short to score (it needs two tokens)")
    return EvalResult(nll=nll, tokens=count, chars=max(1, chars), window=window,
                      stride=int(stride or window))


class EvalReport(dict[str, Any]):
    """An evaluation as the eval job returns it: a plain dict for panels and scripts (the
    :class:`EvalResult` fields and scores, plus what was evaluated) that prints as the command
    line promises."""

    @classmethod
    def of(cls, result: EvalResult, **about: Any) -> EvalReport:
        report = cls(result.to_json())
        report.update(about)
        return report

    def __str__(self) -> str:
        return (f"perplexity: {self['perplexity']:.3f}\n"
                f"bits per character: {self['bits_per_char']:.4f}\n"
                f"(nats per character {self['nats_per_char']:.4f}; {self['tokens']:,} tokens, "
                f"{self['chars']:,} characters)")
