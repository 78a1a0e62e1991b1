"""Tokenizers as generation and fine-tuning need them: load and save a model folder's
tokenizer, encode a prompt or a chat, find the end-of-text ids, decode a stream of tokens.

Nothing here trains a tokenizer (the writer trains its own on a corpus); everything here works
for any Hugging Face tokenizer folder, loaded without network and without remote code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from studio.errors import UserError

#: files whose presence says "a tokenizer lives in this folder"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model",
                   "tokenizer_config.json")


def load_tokenizer(folder: str | os.PathLike[str]) -> Any:
    """``AutoTokenizer`` from a local folder: no network, no remote code.

    A tokenizer without a padding token gets its eos token as padding (batched generation and
    evaluation need one).
    """
    from transformers import AutoTokenizer

    folder = Path(folder)
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                            trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from {folder}: {str(exc).splitlines()[0]}. "
                        "A model folder needs its tokenizer files (tokenizer.json or "
                        "vocab/merges files) beside config.json.") from None
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    return tok


def save_tokenizer(tokenizer: Any, folder: str | os.PathLike[str]) -> Path:
    """``save_pretrained`` plus a ``tokenizer_class`` older transformers releases also know.

    transformers 5 writes ``TokenizersBackend``; ``PreTrainedTokenizerFast`` is its alias there
    and the real class in 4.x, so the folder loads in both.
    """
    from studio.storage import atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    cfg_path = folder / "tokenizer_config.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if cfg.get("tokenizer_class") == "TokenizersBackend":
            cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
            atomic_write_json(cfg_path, cfg)
    return folder


def start_id(tokenizer: Any) -> int | None:
    """The token a new text starts from: bos, else eos (GPT-2 style), else None."""
    start = tokenizer.bos_token_id
    if start is None:
        start = tokenizer.eos_token_id
    return None if start is None else int(start)


def encode_prompt(tokenizer: Any, prompt: str | Sequence[int]) -> list[int]:
    """Prompt token ids (text, or ids as they are); an empty prompt starts from the start token
    ("a new document"), since a model needs at least one token to predict from."""
    if isinstance(prompt, str):
        ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"]) if prompt else []
    else:
        ids = [int(i) for i in prompt]
    if not ids:
        start = start_id(tokenizer)
        if start is None:
            raise UserError("this model's tokenizer has no start token: type a few words for "
                            "it to continue")
        ids = [start]
    return ids


def encode_chat_text(tokenizer: Any, text: str) -> list[int]:
    """Ids of a prompt a chat template rendered as text: it already holds its special tokens
    (a bos among them), so none are added; ``tokenizer(text)`` would start with two bos."""
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def chat_ids(tokenizer: Any, messages: Sequence[Mapping[str, str]],
             add_generation_prompt: bool = True) -> list[int]:
    """Token ids of a conversation in the model's own chat format
    (``tokenizer.apply_chat_template``); with ``add_generation_prompt`` they end where the
    assistant's reply begins. A tokenizer without a chat template gets a clear message: a base
    model does not know who is speaking."""
    if not has_chat_template(tokenizer):
        raise UserError("this model has no chat template (it is a base model, not a chat "
                        "model): choose an instruction-tuned model, or fine-tune one on "
                        "conversations first")
    try:
        out = tokenizer.apply_chat_template([dict(m) for m in messages],
                                            add_generation_prompt=add_generation_prompt,
                                            tokenize=True, return_dict=False)
    except Exception as exc:  # jinja errors: a template that rejects these roles or this order
        raise UserError(f"this model's chat template cannot format the conversation: "
                        f"{str(exc).splitlines()[0]}") from None
    if isinstance(out, Mapping):  # some releases return a BatchEncoding even so
        out = out["input_ids"]
    return [int(i) for i in out]


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every end-of-text id the model or tokenizer declares (chat models often have several:
    ``<|im_end|>`` ends a turn, ``<|endoftext|>`` a document)."""
    ids: set[int] = set()
    gen_cfg = getattr(model, "generation_config", None)
    for source in (getattr(gen_cfg, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(i) for i in source)
    return ids


class Detokenizer:
    """Incremental decoding that never emits half a character.

    Byte-level BPE can split one character over several tokens; decoding tokens one by one would
    show replacement characters. We decode a small sliding window (a few tokens of context, so
    SentencePiece's leading spaces come out right) and emit only the new, complete text.

    Args:
        tokenizer: the model's tokenizer.
        prompt_ids: the ids before the first pushed token (their last few are context only).
    """

    def __init__(self, tokenizer: Any, prompt_ids: Sequence[int]) -> None:
        self.tok = tokenizer
        self.ids: list[int] = list(prompt_ids[-6:])
        self.prefix = 0
        self.read = len(self.ids)
        self.prefix_text = self._decode(self.prefix, self.read)

    def _decode(self, start: int, end: int | None = None) -> str:
        return str(self.tok.decode(self.ids[start:end], skip_special_tokens=True))

    def push(self, token: int) -> str:
        """Add one token; returns the text it completes ("" while a character is unfinished)."""
        self.ids.append(token)
        new_text = self._decode(self.prefix)
        if len(new_text) > len(self.prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(self.prefix_text):]
            self.prefix, self.read = self.read, len(self.ids)
            if self.prefix > 64:  # keep the window short
                cut = self.prefix - 6
                self.ids = self.ids[cut:]
                self.prefix -= cut
                self.read -= cut
            self.prefix_text = self._decode(self.prefix, self.read)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back when the text ends (bytes that never completed a
        character decode as replacement characters, exactly as ``tokenizer.decode`` shows)."""
        new_text = self._decode(self.prefix)
        out = new_text[len(self.prefix_text):]
        self.prefix = self.read = len(self.ids)
        self.prefix_text = ""
        return out
