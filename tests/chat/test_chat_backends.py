"""Chat backends on tiny models built here: transformers on a Hugging Face folder, GGUF through
transformers (dequantised, said so) and through llama.cpp when it is installed; the same reply
for the same seed, Stop between tokens, honest context limits, clear messages for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.chat.engine.backends import fast_copy, open_backend
from plugins.chat.engine.backends.llamacpp import available as llama_available
from plugins.common.lm.sampling import SamplingSettings
from studio.errors import UserError

needs_llama = pytest.mark.skipif(
    not llama_available(), reason="llama-cpp-python is not installed (the optional gguf extra: "
    "pip install .[gguf]); the llama.cpp backend is not tested here")

MESSAGES = [{"role": "system", "content": "You are brief."},
            {"role": "user", "content": "Hello"}]


def prompt_of(backend) -> str:
    return backend.template_info().pick().render(MESSAGES)


def run(backend, settings: SamplingSettings, cancel=None) -> str:
    return "".join(backend.stream(prompt_of(backend), settings, cancel))


def sampled(seed: int, n: int = 24) -> SamplingSettings:
    return SamplingSettings(max_new_tokens=n, temperature=1.0, top_k=0, top_p=1.0, seed=seed,
                            stop_at_eos=False)


def test_transformers_same_seed_same_reply(tiny_chat_model: Path) -> None:
    b = open_backend(tiny_chat_model, backend="transformers")
    assert b.info.kind == "transformers" and b.info.model == "tiny-chat"
    assert b.info.context_length == 256
    first = run(b, sampled(7))
    assert first and run(b, sampled(7)) == first
    assert b.last_stats.new_tokens == 24 and b.last_stats.seed == 7
    assert b.last_stats.first_token_s > 0 and b.last_stats.tokens_per_s > 0
    assert {run(b, sampled(s)) for s in (1, 2, 3)} != {first}  # seeds matter
    # counted exactly as the stream tokenises: the stats' prompt is the counted prompt
    assert b.count_tokens(prompt_of(b)) == b.last_stats.prompt_tokens


def test_stop_lands_between_tokens(tiny_chat_model: Path) -> None:
    b = open_backend(tiny_chat_model, backend="transformers")
    asked = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > 5

    run(b, sampled(3, 50), cancel)
    assert b.last_stats.stop_reason == "cancelled"
    assert b.last_stats.new_tokens == 5  # asked before every token; none after the yes


def test_a_prompt_without_room_is_refused_not_cut(tiny_chat_model: Path) -> None:
    b = open_backend(tiny_chat_model, backend="transformers")
    long = "word " * 400
    with pytest.raises(UserError, match="no room for a reply"):
        "".join(b.stream(long, sampled(1)))
    # a reply is cut to the room the context has left, and says so
    near = ""
    while b.count_tokens(near + "hello ") < b.info.context_length - 20:
        near += "hello "
    room = b.info.context_length - b.count_tokens(near)
    assert 0 < room < 50
    "".join(b.stream(near, sampled(1, 200)))
    assert b.last_stats.new_tokens == room and b.last_stats.stop_reason == "length"


def test_gguf_through_transformers_is_the_same_model(tiny_chat_model: Path,
                                                     tiny_gguf: Path) -> None:
    """The GGUF written with the gguf package (q/k permuted, tokenizer in metadata) gives the
    same greedy reply as the original folder; the backend says it is the slow path."""
    hf = open_backend(tiny_chat_model, backend="transformers")
    gg = open_backend(tiny_gguf, backend="transformers")
    assert gg.info.kind == "transformers-gguf"
    assert any("slower: dequantised through transformers" in n for n in gg.info.notes)
    assert gg.template_info().pick().source == hf.template_info().pick().source
    greedy = SamplingSettings(max_new_tokens=20, temperature=0.0, stop_at_eos=False)
    assert run(gg, greedy) == run(hf, greedy)
    assert gg.count_tokens(prompt_of(gg)) == hf.count_tokens(prompt_of(hf))


def test_quantised_gguf_loads(tiny_chat_model: Path, tmp_path: Path) -> None:
    from chat_models import write_gguf_of

    q8 = write_gguf_of(tiny_chat_model, tmp_path / "tiny-q8.gguf", "q8_0")
    assert q8.stat().st_size < (tmp_path / "tiny-q8.gguf").stat().st_size * 2
    b = open_backend(q8, backend="transformers")
    assert run(b, SamplingSettings(max_new_tokens=5, temperature=0.0, stop_at_eos=False))


def test_unsupported_and_broken_gguf_files_are_clear_messages(tmp_path: Path) -> None:
    from chat_models import write_unsupported_gguf

    odd = write_unsupported_gguf(tmp_path / "odd.gguf")
    with pytest.raises(UserError, match=r"'quantum-brain' model, which transformers cannot"):
        open_backend(odd, backend="transformers")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model" * 10)
    with pytest.raises(UserError, match=r"junk\.gguf is not a readable GGUF file"):
        open_backend(junk, backend="transformers")
    with pytest.raises(UserError, match="does not exist"):
        open_backend(tmp_path / "missing", backend="transformers")


def test_llama_cpp_forced_without_it_is_a_clear_message(tiny_gguf: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from plugins.chat.engine.backends import llamacpp

    monkeypatch.setattr(llamacpp, "available", lambda: False)
    with pytest.raises(UserError, match=r"llama\.cpp is not installed"):
        open_backend(tiny_gguf, backend="llama.cpp")
    # auto falls back to transformers for a GGUF file, and says why it is slower
    b = open_backend(tiny_gguf)
    assert b.info.kind == "transformers-gguf" and b.info.notes


def test_the_exporter_refuses_what_it_cannot_carry(tiny_chat_model: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from plugins.chat.engine.gguf_export import UnsupportedModel, check_convertible

    cfg = AutoConfig.from_pretrained(str(tiny_chat_model))
    tok = AutoTokenizer.from_pretrained(str(tiny_chat_model))
    assert check_convertible(cfg, tok) == "llama"
    cfg.model_type = "gpt2"
    with pytest.raises(UnsupportedModel, match="a gpt2 model cannot be copied"):
        check_convertible(cfg, tok)


# -- llama.cpp ---------------------------------------------------------------------------------
@needs_llama
def test_llama_cpp_same_seed_same_reply_and_stop(tiny_gguf: Path) -> None:
    b = open_backend(tiny_gguf, backend="llama.cpp")
    assert b.info.kind == "llama.cpp" and b.info.context_length == 256
    first = run(b, sampled(11))
    assert first and run(b, sampled(11)) == first
    assert b.last_stats.new_tokens == 24 and b.last_stats.first_token_s > 0
    asked = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > 4

    run(b, sampled(11, 50), cancel)
    assert b.last_stats.stop_reason == "cancelled" and b.last_stats.new_tokens == 4


@needs_llama
def test_llama_cpp_runs_the_same_network(tiny_chat_model: Path, tiny_gguf: Path) -> None:
    """Greedy decoding of the F32 GGUF in llama.cpp follows transformers token for token:
    the exporter's weight layout is right."""
    hf = open_backend(tiny_chat_model, backend="transformers")
    lc = open_backend(tiny_gguf, backend="llama.cpp")
    greedy = SamplingSettings(max_new_tokens=12, temperature=0.0, stop_at_eos=False)
    assert lc.count_tokens(prompt_of(lc)) == hf.count_tokens(prompt_of(hf))
    assert run(lc, greedy) == run(hf, greedy)


@needs_llama
def test_auto_makes_one_fast_copy_of_a_folder(tiny_chat_model: Path, tmp_path: Path) -> None:
    logs: list[str] = []
    b = open_backend(tiny_chat_model, workspace=tmp_path, log=logs.append)
    assert b.info.kind == "llama.cpp" and b.info.label == "llama.cpp (F16 copy)"
    copies = list((tmp_path / "chat" / "fast").glob("*.gguf"))
    assert len(copies) == 1 and any("copy" in line for line in logs)
    assert fast_copy(tiny_chat_model, tmp_path) == copies[0]  # made once
    assert run(b, sampled(5)) == run(b, sampled(5))


@needs_llama
def test_llama_cpp_unsupported_architecture(tmp_path: Path) -> None:
    from chat_models import write_unsupported_gguf

    odd = write_unsupported_gguf(tmp_path / "odd.gguf")
    with pytest.raises(UserError, match=r"llama\.cpp cannot load odd\.gguf, a 'quantum-brain'"):
        open_backend(odd, backend="llama.cpp")
