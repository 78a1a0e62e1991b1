"""Tiny chat models built in the tests (nothing is downloaded): a 2-layer Llama with a ChatML
template written into its tokenizer config, and GGUF files written with the ``gguf`` package."""

from __future__ import annotations

import json
from pathlib import Path

DIALOGS = [
    ["Hello", "Hi! How can I help you today?", "What is your name?", "I am a small assistant."],
    ["Good morning", "Good morning to you too.", "How are you?", "I am fine, thank you."],
    ["Can you help me?", "Of course, what do you need?", "Tell me a joke",
     "Why did the cat sit on the computer? To keep an eye on the mouse."],
    ["What is the capital of France?", "The capital of France is Paris."],
    ["Café crème, s'il vous plaît", "Voilà, un café crème. ☕"],
] * 4

CHATML = ("{%- for message in messages %}"
          "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
          "{%- endfor %}"
          "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}")


def dialog_texts() -> list[str]:
    return [t for d in DIALOGS for t in d]


def build_tiny_llama(folder: Path, *, kv_heads: int = 2, fit_steps: int = 40,
                     template: str | None = CHATML, seed: int = 0) -> Path:
    """A 2-layer Llama (64 wide, 4 heads, ``kv_heads`` key/value heads) with a byte-level BPE
    tokenizer trained on :data:`DIALOGS` and ``template`` in its tokenizer_config.json; fitted
    for a few steps so it writes varied text (on one thread: tensors this small only wait at
    OpenMP's barriers on a second one, badly so on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build(folder, kv_heads, fit_steps, template, seed)
    finally:
        torch.set_num_threads(threads)


def _build(folder: Path, kv_heads: int, fit_steps: int, template: str | None, seed: int) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from plugins.chat.engine.scratch import IM_END, PAD, train_chat_tokenizer
    from plugins.common.lm.tokens import save_tokenizer

    tok = train_chat_tokenizer(dialog_texts(), 400)
    eos, pad = tok.convert_tokens_to_ids(IM_END), tok.convert_tokens_to_ids(PAD)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=kv_heads,
                      max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
                      bos_token_id=None, eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    if fit_steps:
        text = "".join(f"<|im_start|>user\n{d[0]}<|im_end|>\n<|im_start|>assistant\n{d[1]}"
                       "<|im_end|>\n" for d in DIALOGS)
        ids = torch.tensor(tok(text, add_special_tokens=False)["input_ids"])
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(fit_steps):
            ix = torch.randint(0, len(ids) - 33, (8,), generator=g)
            x = torch.stack([ids[i:i + 33] for i in ix])
            model(input_ids=x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = None
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    if template is None:
        tok.chat_template = None
    save_tokenizer(tok, folder)
    cfg_path = folder / "tokenizer_config.json"
    data = json.loads(cfg_path.read_text(encoding="utf-8"))
    data.pop("chat_template", None)
    if template is not None:
        data["chat_template"] = template
    cfg_path.write_text(json.dumps(data), encoding="utf-8")
    jinja = folder / "chat_template.jinja"
    if jinja.exists():  # the template lives in the tokenizer config, as the issue asks
        jinja.unlink()
    return folder


def write_gguf_of(folder: Path, target: Path, file_type: str = "f16") -> Path:
    """The tiny model as a GGUF file, written with the gguf package (the studio's exporter)."""
    from plugins.chat.engine.gguf_export import export_folder

    return export_folder(folder, target, file_type=file_type)  # type: ignore[arg-type]


def write_unsupported_gguf(target: Path) -> Path:
    """A GGUF file of an architecture nobody supports (metadata and one tensor)."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(target), "quantum-brain")
    w.add_name("mystery")
    w.add_context_length(128)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c"])
    w.add_token_types([1, 1, 1])
    w.add_tensor("token_embd.weight", np.zeros((3, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return target
