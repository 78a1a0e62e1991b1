"""Chat templates: the same text as Hugging Face's apply_chat_template, the built-in formats
against known renderings, detection in model folders and GGUF files, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plugins.chat.engine import templates as T
from studio.errors import UserError

CONV = [
    {"role": "system", "content": "You are a helpful assistant"},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi there"},
    {"role": "user", "content": "Who are you"},
    {"role": "assistant", "content": "   I am an assistant   "},
    {"role": "user", "content": "Another question"},
]

# The usual renderings of each format for CONV with a generation prompt (the same strings as
# llama.cpp's chat-template tests use for these model families, with their BOS tokens).
KNOWN = {
    "chatml": "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n"
              "Hello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\n"
              "Who are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
              "<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
              "assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "llama2": "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there "
              "</s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another "
              "question [/INST]",
    "mistral": "<s> [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who "
               "are you [/INST]    I am an assistant   </s> [INST] Another question [/INST]",
    "gemma": "<bos><start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
             "<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are you"
             "<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n"
             "<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n",
    "zephyr": "<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\n"
              "Hi there</s>\n<|user|>\nWho are you</s>\n<|assistant|>\n   I am an assistant   "
              "</s>\n<|user|>\nAnother question</s>\n<|assistant|>\n",
    "phi3": "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n"
            "<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n"
            "   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n",
    "alpaca": "You are a helpful assistant\n\n### Instruction:\nHello\n\n### Response:\nHi there"
              "\n\n### Instruction:\nWho are you\n\n### Response:\n   I am an assistant   \n\n"
              "### Instruction:\nAnother question\n\n### Response:\n",
}

# Templates that use the parts of the Jinja environment HF sets up.
TRICKY = {
    "tojson": "{% for m in messages %}{{ m | tojson }}\n{% endfor %}{{ tools | tojson(indent=2) }}",
    "namespace": "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                 "{% endfor %}{{ ns.n }} messages",
    "loopcontrols": "{% for m in messages %}{% if m.role == 'assistant' %}{% break %}{% endif %}"
                    "{{ m.content }};{% endfor %}",
    "generation": "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
                  "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}"
                  "{% endfor %}",
    "whitespace": "{% for m in messages %}\n    {% if m.role == 'user' %}\n"
                  "U: {{ m.content }}\n    {% else %}\nA: {{ m.content }}\n    {% endif %}\n"
                  "{% endfor %}\n{% if add_generation_prompt %}A:{% endif %}",
    "dict": "{% set d = dict(a=1, b=eos_token) %}{{ d.b }}{{ d | length }}{{ custom_var }}",
    "none-keys": "{% for m in messages %}{{ m.name is defined }}{% endfor %}",
}


def _hf_tokenizer(special: dict[str, str], template: str):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
        **special)
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_builtin_templates_render_the_known_formats(name: str) -> None:
    assert T.builtin(name).render(CONV) == KNOWN[name]
    assert T.builtin(name).preview()


def test_every_builtin_has_a_known_rendering() -> None:
    assert set(T.BUILTINS) == set(KNOWN)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_builtins_render_as_transformers_does(name: str) -> None:
    b = T.BUILTINS[name]
    tok = _hf_tokenizer(dict(b.special_tokens), b.source)
    for agp in (True, False):
        assert T.render(b.source, CONV, add_generation_prompt=agp,
                        special_tokens=b.special_tokens) == \
            tok.apply_chat_template(CONV, tokenize=False, add_generation_prompt=agp)


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_templates_render_as_transformers_does(name: str) -> None:
    special = {"bos_token": "<s>", "eos_token": "</s>"}
    tok = _hf_tokenizer(special, TRICKY[name])
    msgs = [{"role": "user", "content": "héllo <b>\"x\"</b>", "name": None},
            {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    kwargs = {"custom_var": np.int64(3)} if name == "dict" else {}
    ours = T.render(TRICKY[name], msgs, add_generation_prompt=True, special_tokens=special,
                    tools=tools, **kwargs)
    theirs = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True,
                                     tools=tools, **kwargs)
    assert ours == theirs


def test_continue_final_message_matches_transformers() -> None:
    b = T.BUILTINS["chatml"]
    tok = _hf_tokenizer(dict(b.special_tokens), b.source)
    msgs = [*CONV[:2], {"role": "assistant", "content": "Once upon a"}]
    ours = T.render(b.source, msgs, continue_final_message=True,
                    special_tokens=b.special_tokens)
    assert ours == tok.apply_chat_template(msgs, tokenize=False, continue_final_message=True)
    assert ours.endswith("<|im_start|>assistant\nOnce upon a")
    with pytest.raises(UserError, match="exclusive"):
        T.render(b.source, msgs, continue_final_message=True, add_generation_prompt=True)


def test_keyword_arguments_override_special_tokens() -> None:
    out = T.render("{{ bos_token }}|{{ eos_token }}", [{"role": "user", "content": "x"}],
                   special_tokens={"bos_token": "<s>", "eos_token": "</s>"}, eos_token="END")
    assert out == "<s>|END"


def test_a_syntax_error_names_the_line() -> None:
    with pytest.raises(UserError, match=r"error on line 2: .*"):
        T.ChatTemplate("{% for m in messages %}\n{{ m.content }\n{% endfor %}")


def test_a_runtime_error_names_the_jinja_message_and_line() -> None:
    src = ("{% for m in messages %}\n{% if m.role == 'system' %}\n"
           "{{ raise_exception('System role not supported') }}\n{% endif %}{% endfor %}")
    with pytest.raises(UserError, match=r"\(line 3\): System role not supported"):
        T.render(src, CONV)
    with pytest.raises(UserError, match=r"could not render.*line 2"):
        T.render("hello\n{{ messages[0].content + 1 }}", CONV)


def test_the_sandbox_refuses_unsafe_templates() -> None:
    with pytest.raises(UserError, match="namespace"):
        T.render("{% set ns = namespace(_secret=1) %}", CONV)
    with pytest.raises(UserError):
        T.render("{{ messages.append(1) }}", CONV)          # immutable
    assert T.render("{{ ''.__class__ }}", CONV) == ""           # unsafe attributes are hidden


def test_a_template_without_a_system_role_gets_the_system_text_in_the_first_turn() -> None:
    strict = ("{% for m in messages %}{% if m.role == 'system' %}"
              "{{ raise_exception('System role not supported') }}{% endif %}"
              "<{{ m.role }}>{{ m.content }}{% endfor %}")
    t = T.ChatTemplate(strict)
    assert not t.supports_system_role()
    assert t.render(CONV[:2]) == "<user>You are a helpful assistant\n\nHello"
    assert T.builtin("chatml").supports_system_role()
    dropping = "{% for m in messages if m.role != 'system' %}{{ m.content }}{% endfor %}"
    assert not T.ChatTemplate(dropping).supports_system_role()


def test_detect_reads_a_folder_saved_by_transformers(tmp_path: Path) -> None:
    tok = _hf_tokenizer({"bos_token": "<s>", "eos_token": "</s>"},
                        T.BUILTINS["zephyr"].source)
    tok.save_pretrained(tmp_path)
    info = T.detect(tmp_path)
    assert info is not None
    t = info.pick()
    assert t.special_tokens["eos_token"] == "</s>"
    assert t.render(CONV) == tok.apply_chat_template(CONV, tokenize=False,
                                                     add_generation_prompt=True)


def test_detect_reads_tokenizer_config_strings_and_named_lists(tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    (one / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": "{{ bos_token }}{{ messages[0].content }}",
        "bos_token": {"content": "<|begin|>", "lstrip": False}}))
    info = T.detect(one)
    assert info.origin == "tokenizer_config.json" and info.names == ["default"]
    assert info.pick().render(CONV[1:2]) == "<|begin|>Hello"

    many = tmp_path / "many"
    many.mkdir()
    (many / "tokenizer_config.json").write_text(json.dumps({"chat_template": [
        {"name": "default", "template": "D{{ messages[0].content }}"},
        {"name": "tool_use", "template": "T{{ messages[0].content }}"}]}))
    info = T.detect(many)
    assert info.names == ["default", "tool_use"]
    assert info.pick().render(CONV[1:2]) == "DHello"
    assert info.pick(tools=True).render(CONV[1:2]) == "THello"
    assert info.pick("tool_use").source.startswith("T")
    with pytest.raises(UserError, match="no chat template named 'rag'"):
        info.pick("rag")

    nodefault = tmp_path / "nodefault"
    nodefault.mkdir()
    (nodefault / "tokenizer_config.json").write_text(json.dumps({"chat_template": [
        {"name": "a", "template": "a"}, {"name": "b", "template": "b"}]}))
    with pytest.raises(UserError, match="choose one of: a, b"):
        T.detect(nodefault).pick()


def test_detect_says_none_for_a_model_without_a_template(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    assert T.detect(tmp_path) is None
    with pytest.raises(UserError, match="No model folder"):
        T.detect(tmp_path / "missing")
    (tmp_path / "tokenizer_config.json").write_text("{broken")
    with pytest.raises(UserError, match="not valid JSON"):
        T.detect(tmp_path)


def _write_gguf(path: Path, template: str | None) -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    if template is not None:
        w.add_chat_template(template)
    w.add_token_list(["<unk>", "<s>", "</s>", "hi"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_detect_reads_gguf_metadata(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "tiny.gguf", T.BUILTINS["llama2"].source)
    info = T.detect(path)
    assert info is not None and info.origin == "GGUF metadata"
    assert info.special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    assert info.pick().render(CONV) == KNOWN["llama2"]
    assert T.detect(_write_gguf(tmp_path / "none.gguf", None)) is None
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF but not really")
    with pytest.raises(UserError, match=r"bad\.gguf is not a readable GGUF"):
        T.detect(bad)


def test_unknown_builtin_lists_the_names() -> None:
    with pytest.raises(UserError, match="chatml, llama3"):
        T.builtin("vicuna")
    assert T.builtin("ChatML", {"eos_token": "<end>"}).special_tokens["eos_token"] == "<end>"


def test_fold_system_without_a_user_message() -> None:
    assert T.fold_system([{"role": "system", "content": "S"},
                          {"role": "assistant", "content": "hi"}]) == \
        [{"role": "user", "content": "S"}, {"role": "assistant", "content": "hi"}]
