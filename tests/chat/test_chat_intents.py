"""Intents route before the model: on the help-desk set no off-topic query is routed and no
paraphrase goes to the wrong intent."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pytest
from chat_helpdesk import INTENTS, OFF_TOPIC, ON_TOPIC

from plugins.chat.engine.intents import Intent, IntentRouter
from studio.errors import UserError


def test_tfidf_routes_paraphrases_and_never_off_topic_queries() -> None:
    router = IntentRouter(INTENTS)
    routed = [(q, want, router.match(q)) for q, want in ON_TOPIC]
    wrong = [(q, m.intent.name) for q, want, m in routed if m and m.intent.name != want]
    right = sum(1 for _, want, m in routed if m and m.intent.name == want)
    false_routes = [(q, m.intent.name, round(m.score, 2)) for q in OFF_TOPIC
                    if (m := router.match(q))]
    assert false_routes == []                  # precision on off-topic queries: no false route
    assert wrong == []                         # no paraphrase to the wrong intent
    assert right >= 13, f"only {right}/{len(ON_TOPIC)} paraphrases routed"


def test_a_match_carries_its_score_and_closest_example() -> None:
    m = IntentRouter(INTENTS).match("I forgot my password")
    assert m is not None and m.intent.name == "reset_password"
    assert m.score == pytest.approx(1.0) and m.example == "I forgot my password"
    assert m.intent.answer.startswith("Open Settings")


def test_an_ambiguous_message_goes_to_the_model() -> None:
    two = [Intent("a", ("open the red door",), "A"), Intent("b", ("open the blue door",), "B")]
    router = IntentRouter(two, threshold=0.1)
    assert router.match("open the door") is None          # close call: no route
    assert router.match("open the red door").intent.name == "a"


def test_disabled_and_empty_intents() -> None:
    off = Intent("hours", ("when are you open",), "9-5", enabled=False)
    assert IntentRouter([off]).match("when are you open") is None
    assert IntentRouter([]).match("anything") is None
    assert IntentRouter(INTENTS).match("   ") is None
    with pytest.raises(UserError, match="example"):
        IntentRouter([Intent("x", ("  ",), "answer")])
    with pytest.raises(UserError, match="answer"):
        IntentRouter([Intent("x", ("hi",), "")])


class HashEmbedder:
    """A stand-in embedding model: hashed bag of words (deterministic, no model)."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace("?", "").split():
                out[i, zlib.crc32(w.encode()) % 64] += 1.0
        return out


def test_an_embedding_model_can_score_instead() -> None:
    emb = HashEmbedder()
    router = IntentRouter(INTENTS, embedder=emb)
    assert router.threshold == 0.8 and emb.calls == 1      # examples embedded once
    m = router.match("how do i reset my password")
    assert m is not None and m.intent.name == "reset_password" and m.score >= 0.8
    assert emb.calls == 2
    assert router.match("Write me a poem about the sea") is None
