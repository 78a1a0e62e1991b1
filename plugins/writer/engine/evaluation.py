"""Held-out evaluation: perplexity, nats and bits per character.

Perplexity depends on the tokenizer (a model with longer tokens has a higher perplexity for the
same text), so we also report the loss per *character*: total negative log-likelihood of the text
divided by its number of characters. That number compares any two models on the same text,
whatever their tokenizers (nanoGPT's character-level loss is exactly this).

Every token of the text is scored: the tokenizer's bos (or eos) token is put in front as context
for the first one. The text is read in windows of the model's context length; with ``stride``
smaller than the window, each window re-reads ``window - stride`` tokens of context and scores
only its new tokens (the Hugging Face "perplexity of fixed-length models" method): the scoring
itself is the shared language-model engine's (:mod:`plugins.common.lm.scoring`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from plugins.common.lm.loading import context_length
from plugins.common.lm.scoring import evaluate_ids
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


def evaluate_text(model: Any, tokenizer: Any, text: str, window: int | None = None,
                  stride: int | None = None, check: Callable[[], None] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Perplexity and bits per character of ``model`` on ``text``.

    Args:
        window: tokens per window (default: the model's context length, at most 1024).
        stride: new tokens per window (default: ``window``, i.e. no overlap).
    """
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
                f"{self['chars']:,} characters)"
                + (f"\n{self['unseen_chars']:,} of those characters were never seen in training"
                   if self.get("unseen_chars") else ""))
