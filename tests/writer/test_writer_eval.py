"""Evaluation math: perplexity and bits per character of a known distribution."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from plugins.common.lm.loading import load_causal_lm
from plugins.writer.engine.evaluation import EvalResult, evaluate_ids, evaluate_text
from studio.errors import UserError


def _uniform(folder: Path):
    """The model with every weight zero: its logits are all 0, i.e. a uniform distribution."""
    import torch

    model, tok, _ = load_causal_lm(folder)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model, tok


@pytest.mark.parametrize("stride", [None, 16])
def test_uniform_model_has_perplexity_equal_to_vocab_size(tiny_gpt2: Path, sample_text: str,
                                                          stride: int | None) -> None:
    model, tok = _uniform(tiny_gpt2)
    text = sample_text[:700]
    n_tokens = len(tok(text, add_special_tokens=False)["input_ids"])
    r = evaluate_text(model, tok, text, window=48, stride=stride)
    V = model.config.vocab_size
    assert r.tokens == n_tokens  # every token scored exactly once (bos gives the first context)
    assert r.chars == len(text)
    assert r.perplexity == pytest.approx(V, rel=1e-4)
    assert r.nats_per_char == pytest.approx(n_tokens * math.log(V) / len(text), rel=1e-4)
    assert r.bits_per_char == pytest.approx(n_tokens * math.log2(V) / len(text), rel=1e-4)


def test_windows_cover_each_token_once(tiny_gpt2: Path) -> None:
    model, _, _ = load_causal_lm(tiny_gpt2)
    ids = list(range(5, 105))
    for window, stride in ((10, None), (10, 3), (64, 64), (200, None), (7, 6)):
        _, count = evaluate_ids(model, ids, window, stride)
        assert count == len(ids) - 1, (window, stride)
    # more context per prediction never changes what is counted, only the loss
    nll_a, _ = evaluate_ids(model, ids, 16, None)
    nll_b, _ = evaluate_ids(model, ids, 16, 4)
    assert nll_a != nll_b


def test_result_arithmetic_and_bad_text(tiny_gpt2: Path) -> None:
    r = EvalResult(nll=100 * math.log(2), tokens=50, chars=100, window=8, stride=8)
    assert r.bits_per_char == pytest.approx(1.0)
    assert r.perplexity == pytest.approx(4.0)
    assert "bits per character: 1.0000" in r.summary()
    model, tok, _ = load_causal_lm(tiny_gpt2)
    with pytest.raises(UserError, match="empty"):
        evaluate_text(model, tok, "")
