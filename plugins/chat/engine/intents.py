"""Intents: the classic chatbot design, so a small model can serve a help desk.

The user defines intents (a name, a few example phrases, a canned answer). A message is matched
against the examples *before* the model runs; above a threshold the canned answer is the reply.
A wrong route is worse than none (the user gets a confidently wrong canned answer), so the
defaults favour precision: a score is the best cosine similarity to any single example; the
message must clear the threshold, and beat the second-best intent by a margin (an ambiguous
message goes to the model). Words of the message that no example uses still count in its
length: without that, "How do I export my data?" would look like "How do I reset my password?"
because only "how do I ... my" is known to the vectoriser.

Two scorers: TF-IDF (word 1-2 grams and character 3-5 grams inside words, fitted on the
examples; always available) or, when the user has a local embedding model, its vectors through
the :class:`Embedder` protocol.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from studio.errors import UserError

#: Thresholds chosen on the help-desk set of ``tests/chat/chat_helpdesk.py``: off-topic queries
#: score at most 0.34 there, paraphrases at least 0.45; an ambiguous paraphrase ("can I track
#: my order", refund vs shipping) is 0.10 ahead of the runner-up, clear ones at least 0.20.
TFIDF_THRESHOLD = 0.40
EMBED_THRESHOLD = 0.80
MARGIN = 0.15


class Embedder(Protocol):
    """A local sentence-embedding model: one row per text (any scale; rows are normalised)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Intent:
    name: str
    examples: tuple[str, ...]
    answer: str
    enabled: bool = True

    def validate(self) -> Intent:
        if not self.name.strip():
            raise UserError("An intent needs a name.")
        if not [e for e in self.examples if e.strip()]:
            raise UserError(f"Intent '{self.name}' needs at least one example phrase.")
        if not self.answer.strip():
            raise UserError(f"Intent '{self.name}' needs an answer.")
        return self


@dataclass(frozen=True)
class IntentMatch:
    intent: Intent
    score: float          # cosine similarity to the closest example, 0..1
    example: str          # that example


class IntentRouter:
    """Routes a message to an intent's canned answer, or to nobody (``match`` returns None)."""

    def __init__(self, intents: Sequence[Intent], *, threshold: float | None = None,
                 embedder: Embedder | None = None, margin: float = MARGIN) -> None:
        self.margin = margin
        self.intents = [i.validate() for i in intents if i.enabled]
        self.embedder = embedder
        self.threshold = (threshold if threshold is not None
                          else EMBED_THRESHOLD if embedder is not None else TFIDF_THRESHOLD)
        self._owner: list[int] = []
        self._examples: list[str] = []
        for k, intent in enumerate(self.intents):
            for e in intent.examples:
                if e.strip():
                    self._owner.append(k)
                    self._examples.append(e)
        self._tfidf: list[_TfIdf] = []
        self._emb: np.ndarray | None = None
        if not self._examples:
            return
        if embedder is not None:
            self._emb = _normalise(np.asarray(embedder.embed(self._examples), dtype=np.float32))
        else:
            self._tfidf = [
                _TfIdf(self._examples, analyzer="word", ngram_range=(1, 2),
                       token_pattern=r"(?u)\b\w+\b"),
                _TfIdf(self._examples, analyzer="char_wb", ngram_range=(3, 5))]

    def scores(self, text: str) -> list[tuple[Intent, float, str]]:
        """Every intent with its best score and closest example, best first."""
        if not self._examples or not text.strip():
            return []
        sims = self._similarities(text)
        best: dict[int, tuple[float, str]] = {}
        norm = _normalise_text(text)
        for j, (owner, sim) in enumerate(zip(self._owner, sims, strict=True)):
            if _normalise_text(self._examples[j]) == norm:
                sim = 1.0
            if owner not in best or sim > best[owner][0]:
                best[owner] = (float(sim), self._examples[j])
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
        return [(self.intents[k], s, e) for k, (s, e) in ranked]

    def match(self, text: str) -> IntentMatch | None:
        """The intent to answer with, or None: the model should reply."""
        ranked = self.scores(text)
        if not ranked or ranked[0][1] < self.threshold:
            return None
        if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < self.margin:
            return None
        intent, score, example = ranked[0]
        return IntentMatch(intent, score, example)

    def _similarities(self, text: str) -> np.ndarray:
        if self._emb is not None and self.embedder is not None:
            q = _normalise(np.asarray(self.embedder.embed([text]), dtype=np.float32))[0]
            return np.clip(self._emb @ q, 0.0, 1.0)
        return sum(t.cosine(text) for t in self._tfidf) / len(self._tfidf)


class _TfIdf:
    """scikit-learn's TF-IDF on the examples; a query's unknown terms count in its norm with
    the highest idf (a word no example has is as rare as it gets)."""

    def __init__(self, examples: list[str], **kw: Any) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vec = TfidfVectorizer(preprocessor=_normalise_text, sublinear_tf=True, **kw)
        self.matrix = self.vec.fit_transform(examples)      # rows L2-normalised
        self.analyze = self.vec.build_analyzer()
        self.vocab: dict[str, int] = self.vec.vocabulary_
        self.idf = self.vec.idf_
        self.max_idf = float(self.idf.max())

    def cosine(self, text: str) -> np.ndarray:
        counts = Counter(self.analyze(text))
        q = np.zeros(len(self.vocab))
        unknown = 0.0
        for term, n in counts.items():
            w = 1.0 + np.log(n)
            j = self.vocab.get(term)
            if j is None:
                unknown += (w * self.max_idf) ** 2
            else:
                q[j] = w * self.idf[j]
        norm = float(np.sqrt(q @ q + unknown))
        if norm == 0.0:
            return np.zeros(self.matrix.shape[0])
        return np.asarray(self.matrix @ q).ravel() / norm


def _normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text)).strip()


def _normalise(m: np.ndarray) -> np.ndarray:
    if m.ndim != 2:
        raise UserError("The embedding model returned vectors of an unexpected shape.")
    n = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(n == 0, 1.0, n)
