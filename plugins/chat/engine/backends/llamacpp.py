"""The llama.cpp backend (llama-cpp-python, the optional ``gguf`` extra).

Why: on a CPU llama.cpp decodes small models several times faster than transformers (issue 12:
SmolLM2-135M at 102 tokens/s in F16 against 18 in float32 transformers, on 2 threads), and it
runs the GGUF files people already have from LM Studio, GPT4All, Jan or KoboldCpp.

Two ways in:

- a GGUF file of the user's: llama.cpp tokenises and detokenises with the file's own vocabulary
  (bytes of an unfinished character are held back until it completes);
- a GGUF *copy* the studio made of a Hugging Face folder (:mod:`..gguf_export`): the original
  tokenizer tokenises and detokenises, so the prompt's token ids are exactly the ones
  transformers would see; llama.cpp only runs the network.

Sampling is llama.cpp's own chain (repetition penalty over the last 64 tokens, top-k, top-p,
min-p, then temperature), seeded per reply: the same seed gives the same reply on this backend
(the numbers differ from transformers', whose order applies temperature first). Stop lands
between two tokens: ``cancel()`` is asked before each one, and the token generator is closed
without another forward pass. The KV cache is kept between calls and llama.cpp reuses the
longest common prefix of the next prompt, so the next turn of a chat only reads its new tokens.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plugins.common.lm.generation import (
    STOP_CANCELLED,
    STOP_EOS,
    STOP_LENGTH,
    STOP_SEQUENCE,
    GenerationStats,
    StopScanner,
)
from plugins.common.lm.sampling import SamplingSettings
from studio.errors import UserError

from ..templates import TemplateInfo
from .base import LLAMA_CPP, BackendInfo, Cancel, room_for_reply

#: the context a GGUF model gets when the user does not say (its own when smaller): a 128k
#: context would reserve gigabytes of KV cache a chat on a laptop never uses
DEFAULT_CONTEXT = 8192


def available() -> bool:
    """Whether llama-cpp-python is installed (and its library loads)."""
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # ImportError, or OSError from a library that does not load
        return False
    return True


def version() -> str:
    try:
        import llama_cpp

        return str(llama_cpp.__version__)
    except (ImportError, OSError, RuntimeError, AttributeError):  # not built, or its library
        return ""  # fails to load: the caller says llama.cpp is unavailable


class LlamaCppBackend:
    """A GGUF file run by llama.cpp behind the chat backend protocol (see :mod:`.base`).

    Args:
        path: the .gguf file.
        name: the model's name to show (no path).
        context: tokens to allocate (0: the model's, at most :data:`DEFAULT_CONTEXT`).
        threads: CPU threads (0: all cores).
        tokenizer: the original Hugging Face tokenizer of a studio copy (None: the file's).
        eos: end-of-text ids of a studio copy (None: llama.cpp's end-of-generation tokens).
        templates: the chat template(s) to offer (None: the file's own).
        label: how the chat view names this backend.
    """

    def __init__(self, path: str | Path, name: str, *, context: int = 0, threads: int = 0,
                 tokenizer: Any = None, eos: set[int] | None = None,
                 templates: TemplateInfo | None = None, label: str = "",
                 notes: tuple[str, ...] = ()) -> None:
        from llama_cpp import Llama

        from .. import templates as templates_mod
        from .hf import gguf_architecture

        path = Path(path)
        arch, meta = gguf_architecture(path)
        trained = meta.get("context_length")
        n_ctx = int(trained) if isinstance(trained, int) and trained > 0 else DEFAULT_CONTEXT
        n_ctx = min(n_ctx, context or DEFAULT_CONTEXT)
        threads = threads or os.cpu_count() or 1
        try:
            self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                             n_threads_batch=threads, n_batch=min(512, n_ctx), verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise UserError(f"llama.cpp cannot load {path.name}, a '{arch}' model: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'not supported'}. "
                            "Its architecture may be newer than this llama.cpp "
                            f"({version() or 'unknown version'}): update llama-cpp-python, "
                            "or use the model's Hugging Face folder.") from None
        self.path = path
        self.tokenizer = tokenizer
        self._eos = set(eos) if eos else None
        self._templates = templates if templates is not None else templates_mod.detect_gguf(path)
        ctx = int(self.llm.n_ctx())
        self.info = BackendInfo(LLAMA_CPP, label or f"llama.cpp ({threads} threads)", name, ctx,
                                notes)
        self.last_stats = GenerationStats()
        self.lock = threading.Lock()

    # -- tokens ---------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        if self.tokenizer is not None:
            return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def template_info(self) -> TemplateInfo | None:
        return self._templates

    def _is_end(self, token: int) -> bool:
        if self._eos is not None:
            return token in self._eos
        import llama_cpp

        vocab = getattr(getattr(self.llm, "_model", None), "vocab", None)
        if vocab is not None:
            return bool(llama_cpp.llama_vocab_is_eog(vocab, token))
        return token == self.llm.token_eos()

    # -- generation -----------------------------------------------------------------------------
    def stream(self, prompt: str, settings: SamplingSettings,
               cancel: Cancel | None = None) -> Iterator[str]:
        from plugins.common.lm.tokens import Detokenizer

        t0 = time.perf_counter()
        s = settings
        s.validate()
        ids = self.encode(prompt)
        if not ids:
            raise UserError("the prompt is empty")
        room = room_for_reply(len(ids), self.info.context_length, self.info.model)
        limit = min(s.max_new_tokens, room)
        seed = s.seed if s.seed is not None else int.from_bytes(os.urandom(4), "little") >> 1
        stats = GenerationStats(prompt_tokens=len(ids), seed=seed, stop_reasons=[""])
        self.last_stats = stats
        self.llm.set_seed(seed)
        scanner = StopScanner(list(s.stop))
        detok: Any = Detokenizer(self.tokenizer, ids) if self.tokenizer is not None \
            else _ByteDetokenizer(self.llm)
        tokens = self.llm.generate(ids, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p,
                                   temp=s.temperature, repeat_penalty=s.repetition_penalty,
                                   reset=True)
        reason = STOP_LENGTH
        try:
            for step in range(limit):
                if cancel is not None and cancel():
                    reason = STOP_CANCELLED
                    break
                token = int(next(tokens))
                stats.new_tokens = step + 1
                if step == 0:
                    stats.first_token_s = time.perf_counter() - t0
                stats.seconds = time.perf_counter() - t0
                if s.stop_at_eos and step >= s.min_new_tokens and self._is_end(token):
                    reason = STOP_EOS
                    break
                text = scanner.feed(detok.push(token))
                if text:
                    yield text
                if scanner.stopped:
                    reason = STOP_SEQUENCE
                    break
        finally:
            tokens.close()
            stats.stop_reasons = [reason]
            stats.seconds = time.perf_counter() - t0
        if reason != STOP_SEQUENCE:
            tail = scanner.feed(detok.flush()) + scanner.flush()
            if tail:
                yield tail

    def close(self) -> None:
        self.llm.close()


class _ByteDetokenizer:
    """Text of llama.cpp tokens as they come, never half a character (a multi-byte character
    split over tokens is held back until its last byte arrives)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return str(self.decoder.decode(self.llm.detokenize([token])))

    def flush(self) -> str:
        return str(self.decoder.decode(b"", final=True))
