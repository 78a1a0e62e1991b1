"""Streaming generation: chunks, seeds, stop sequences, Stop, long outputs, batches, time to
first token and tokens/s, the model cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.common.lm.generation import (
    STOP_CANCELLED,
    STOP_LENGTH,
    STOP_SEQUENCE,
    Generator,
    StopScanner,
)
from plugins.common.lm.sampling import SamplingSettings, parse_stop_sequences
from studio.errors import UserError


@pytest.fixture(scope="module")
def gen(tiny_gpt2: Path) -> Generator:
    return Generator.from_folder(tiny_gpt2)


def test_greedy_matches_model_generate(gen: Generator) -> None:
    import torch

    prompt = "First Citizen:\n"
    ids = gen.encode(prompt)
    s = SamplingSettings(max_new_tokens=20, temperature=0, stop_at_eos=False)
    text = gen.generate(prompt, s)
    ref = gen.model.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False,
                             min_new_tokens=20, pad_token_id=gen.tokenizer.eos_token_id)
    expected = gen.tokenizer.decode(ref[0, len(ids):].tolist(), skip_special_tokens=True)
    assert text == expected
    assert gen.last_stats.new_tokens == 20 and gen.last_stats.stop_reason == STOP_LENGTH


def test_stream_chunks_join_to_the_text_and_seed_reproduces(gen: Generator) -> None:
    s = SamplingSettings(max_new_tokens=40, temperature=1.0, seed=7, stop_at_eos=False)
    chunks = list(gen.stream("Speak", s))
    assert len(chunks) > 1
    assert "".join(chunks) == gen.generate("Speak", s)
    other = gen.generate("Speak", SamplingSettings(max_new_tokens=40, temperature=1.0, seed=8,
                                                   stop_at_eos=False))
    assert other != "".join(chunks)
    assert gen.last_stats.seed == 8 and gen.last_stats.tokens_per_s > 0


def test_detokenizer_never_emits_half_a_character(gen: Generator) -> None:
    from plugins.common.lm.tokens import Detokenizer

    text = " Café 😀 naïve — 漢字 done"
    ids = gen.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text) / 2  # unseen characters are split into byte tokens
    d = Detokenizer(gen.tokenizer, gen.encode("Speak"))
    chunks = [d.push(i) for i in ids]
    chunks.append(d.flush())
    assert all("\ufffd" not in c for c in chunks)
    assert "".join(chunks) == text


def test_stop_sequence_cuts_exactly(gen: Generator) -> None:
    base = SamplingSettings(max_new_tokens=40, temperature=1.0, seed=11, stop_at_eos=False)
    full = gen.generate("All:\n", base)
    words = [w for w in full.split() if len(w) >= 2]
    assert len(words) >= 2, full
    stop = words[len(words) // 2][:2]  # a stop string met part-way through
    s = SamplingSettings(max_new_tokens=40, temperature=1.0, seed=11, stop_at_eos=False,
                         stop=(stop,))
    chunks = list(gen.stream("All:\n", s))
    assert "".join(chunks) == full[:full.index(stop)]
    assert gen.last_stats.stop_reason == STOP_SEQUENCE


def test_stop_scanner_holds_back_partial_matches() -> None:
    sc = StopScanner(["THE END"])
    out = sc.feed("and so THE") + sc.feed(" EN")
    assert out == "and so "  # "THE EN" might start the stop sequence
    out += sc.feed("D of it")
    assert out == "and so " and sc.stopped
    sc = StopScanner(["\n\n"])
    assert sc.feed("a\n") == "a"
    assert sc.feed("b") == "\nb"
    assert sc.flush() == ""
    assert parse_stop_sequences(["\\n\\n", "", "x\\ty", "a\\\\n"]) == ["\n\n", "x\ty", "a\\n"]


def test_cancel_stops_between_tokens(gen: Generator) -> None:
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    s = SamplingSettings(max_new_tokens=200, temperature=1.0, seed=1, stop_at_eos=False)
    list(gen.stream("Speak", s, cancel=cancel))
    assert gen.last_stats.new_tokens == 5
    assert gen.last_stats.stop_reason == STOP_CANCELLED


def test_generation_beyond_the_context_window(gen: Generator) -> None:
    assert gen.context == 64
    s = SamplingSettings(max_new_tokens=150, temperature=1.0, seed=3, stop_at_eos=False)
    long_prompt = "Speak, speak. " * 40  # longer than the window too
    list(gen.stream(long_prompt, s))
    assert gen.last_stats.new_tokens == 150
    assert gen.last_stats.prompt_tokens <= 63


def test_many_alternatives_in_one_batch(gen: Generator, tiny_llama: Path) -> None:
    s = SamplingSettings(max_new_tokens=15, temperature=1.0, seed=5, stop_at_eos=False)
    texts = gen.generate_many("You", 3, s)
    assert len(texts) == 3 and len(set(texts)) == 3
    llama = Generator.from_folder(tiny_llama)
    assert len(llama.generate_many("", 2, s)) == 2  # empty prompt starts a new text


def test_min_new_tokens_and_settings_validation(gen: Generator,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    eos = gen.tokenizer.eos_token_id
    forward = gen._forward

    def eos_loving(ids, cache):
        logits = forward(ids, cache)
        logits[:, eos] += 1e4
        return logits

    monkeypatch.setattr(gen, "_forward", eos_loving)
    gen.generate("Speak", SamplingSettings(max_new_tokens=10, temperature=0))
    assert gen.last_stats.new_tokens == 1  # ended on eos at once
    gen.generate("Speak", SamplingSettings(max_new_tokens=10, temperature=0, min_new_tokens=4))
    assert gen.last_stats.new_tokens == 5
    for bad in (dict(max_new_tokens=0), dict(temperature=-1), dict(top_p=0),
                dict(repetition_penalty=0)):
        with pytest.raises(UserError):
            SamplingSettings(**bad).validate()


@pytest.mark.parametrize("arch", ["qwen2", "gemma2", "mistral"])
def test_other_architectures_match_model_generate(arch: str, tmp_path: Path,
                                                  tokenizer) -> None:
    """The decoding loop is generic: greedy text equals ``model.generate`` for other families
    (sliding-window and soft-capped models included)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from plugins.common.lm.tokens import save_tokenizer

    eot = tokenizer.eos_token_id
    cfg = AutoConfig.for_model(arch, vocab_size=len(tokenizer), hidden_size=32,
                               intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                               num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                               bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(str(tmp_path))
    save_tokenizer(tokenizer, tmp_path)
    gen = Generator.from_folder(tmp_path)
    s = SamplingSettings(max_new_tokens=12, temperature=0, stop_at_eos=False)
    text = gen.generate("Speak", s)
    ids = gen.encode("Speak")
    ref = gen.model.generate(torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12,
                             do_sample=False, pad_token_id=eot)
    assert text == gen.tokenizer.decode(ref[0, len(ids):].tolist(), skip_special_tokens=True)


def test_a_seed_gives_the_same_text_on_a_freshly_loaded_model(gen: Generator,
                                                             tiny_gpt2: Path) -> None:
    s = SamplingSettings(max_new_tokens=30, temperature=1.0, min_p=0.05, seed=21,
                         stop_at_eos=False)
    first = gen.generate_many("All:\n", 2, s)
    again = Generator.from_folder(tiny_gpt2).generate_many("All:\n", 2, s)
    assert first == again and first[0] != first[1]


def test_stop_lands_within_one_token(gen: Generator) -> None:
    """Stop pressed while a chunk is being shown: no further token is made (no forward pass
    runs after ``cancel()`` said yes)."""
    import threading

    stop = threading.Event()
    at_stop: list[int] = []
    calls = {"forward": 0}
    forward = gen._forward

    def counting(ids, cache):
        calls["forward"] += 1
        return forward(ids, cache)

    gen._forward = counting  # type: ignore[method-assign]
    try:
        s = SamplingSettings(max_new_tokens=500, temperature=1.0, seed=2, stop_at_eos=False)
        for chunk in gen.stream("Speak", s, cancel=stop.is_set):
            assert chunk
            if gen.last_stats.new_tokens >= 8 and not stop.is_set():
                stop.set()  # as the Stop button does, from the consumer's side
                at_stop += [gen.last_stats.new_tokens, calls["forward"]]
    finally:
        del gen._forward
    assert gen.last_stats.new_tokens - at_stop[0] <= 1
    assert gen.last_stats.new_tokens == at_stop[0]  # in fact not even one more
    assert calls["forward"] == at_stop[1]
    assert gen.last_stats.stop_reason == STOP_CANCELLED


def test_time_to_first_token_and_speed_come_with_the_result(gen: Generator) -> None:
    seen: list[tuple[int, str]] = []
    s = SamplingSettings(max_new_tokens=25, temperature=1.0, seed=9, stop_at_eos=False)
    done = gen.complete("First Citizen:\n", s, on_text=lambda i, c: seen.append((i, c)))
    st = done.stats
    assert done.text == "".join(c for _, c in seen) and done.text
    assert st.new_tokens == 25 and st.prompt_tokens > 0 and st.seed == 9
    assert 0 < st.first_token_s < st.seconds
    assert st.tokens_per_s == pytest.approx(24 / (st.seconds - st.first_token_s))
    js = st.to_json()
    assert js["first_token_s"] == st.first_token_s and js["tokens_per_s"] == st.tokens_per_s
    assert "tokens/s" in st.summary() and "seed 9" in st.summary()
    many = gen.complete("You", s, n=3)
    assert len(many.texts) == 3 and many.stats.sequences == 3
    assert many.stats.tokens_per_s == pytest.approx(
        3 * 24 / (many.stats.seconds - many.stats.first_token_s))


def test_loaded_models_are_kept_until_their_weights_change(tmp_path: Path,
                                                           tiny_gpt2: Path) -> None:
    import os
    import shutil

    from plugins.common.lm.generation import clear_generators, load_generator

    folder = tmp_path / "m"
    shutil.copytree(tiny_gpt2, folder)
    clear_generators()
    a = load_generator(folder)
    assert load_generator(folder) is a
    weights = folder / "model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # saved again
    assert load_generator(folder) is not a
    clear_generators()
