"""transformers backends: a Hugging Face model folder, or a GGUF file dequantised.

Both run the shared language-model engine's :class:`~plugins.common.lm.generation.Generator`
(our own decoding loop: Stop between two tokens, exact stop strings, min-p, time to first
token), so a seed means the same sampler as the writer's.

- :class:`TransformersBackend` for any local causal-LM folder the shared loader accepts
  (safetensors only, never remote code; a training run's ``model/``; a LoRA adapter, merged).
- :func:`open_gguf_transformers` for a ``.gguf`` file through transformers' GGUF loading
  (``gguf_file=``): the weights are dequantised to float32, which works for the architectures
  transformers knows and is slower and larger than llama.cpp; its info says so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from plugins.common.lm.generation import GenerationStats, Generator
from plugins.common.lm.sampling import SamplingSettings
from studio.errors import UserError

from ..templates import TemplateInfo
from .base import (
    DEQUANTISED_NOTE,
    TRANSFORMERS,
    TRANSFORMERS_GGUF,
    BackendInfo,
    Cancel,
    model_label,
    room_for_reply,
)


class TransformersBackend:
    """A transformers model behind the chat backend protocol (see :mod:`.base`)."""

    def __init__(self, generator: Generator, info: BackendInfo,
                 templates: TemplateInfo | None) -> None:
        self.gen = generator
        self.info = info
        self._templates = templates
        self.last_stats = GenerationStats()
        self.lock = threading.Lock()

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.gen.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def template_info(self) -> TemplateInfo | None:
        return self._templates

    def stream(self, prompt: str, settings: SamplingSettings,
               cancel: Cancel | None = None) -> Iterator[str]:
        ids = self.encode(prompt)
        if not ids:
            raise UserError("the prompt is empty")
        room = room_for_reply(len(ids), self.info.context_length, self.info.model)
        s = replace(settings, max_new_tokens=min(settings.max_new_tokens, room))
        try:
            yield from self.gen.stream(ids, s, cancel)
        finally:
            self.last_stats = self.gen.last_stats

    def close(self) -> None:
        pass


def open_transformers(folder: str | Path, device: str = "cpu",
                      precision: str = "auto") -> TransformersBackend:
    """A model folder (or run folder, or adapter folder) through transformers."""
    from plugins.common.lm.generation import load_generator
    from plugins.common.lm.loading import inspect_model_dir

    from .. import templates

    info = inspect_model_dir(folder)
    gen = load_generator(info.path, device=device, dtype=precision)
    found = templates.detect(info.path)
    if found is None and info.base is not None:
        found = templates.detect(info.base)
    dtype = str(next(gen.model.parameters()).dtype).replace("torch.", "")
    label = f"transformers ({dtype}, {device})"
    return TransformersBackend(gen, BackendInfo(TRANSFORMERS, label, model_label(info.path),
                                                gen.context), found)


def gguf_architecture(path: Path) -> tuple[str, dict[str, Any]]:
    """A GGUF file's architecture and the few metadata values the backends need, read with
    llama.cpp's own reader (a file that is not GGUF is a clear message)."""
    try:
        from gguf import GGUFReader

        fields = GGUFReader(str(path), "r").fields
    except Exception as exc:  # any parse failure of a user's file is bad input
        raise UserError(f"{path.name} is not a readable GGUF file ({exc})") from None

    def value(key: str) -> Any:
        f = fields.get(key)
        return f.contents() if f is not None else None

    arch = value("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise UserError(f"{path.name} does not say which model architecture it holds "
                        "(general.architecture): it is not a model file")
    meta = {"context_length": value(f"{arch}.context_length"), "name": value("general.name"),
            "file_type": value("general.file_type")}
    return arch, meta


def open_gguf_transformers(path: str | Path, device: str = "cpu") -> TransformersBackend:
    """A GGUF file through transformers (dequantised: slower, and said so)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    from plugins.common.lm.loading import quiet_transformers, torch_dtype

    from .. import templates

    path = Path(path).expanduser()
    arch, _ = gguf_architecture(path)
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise UserError(f"{path.name} holds a '{arch}' model, which transformers cannot load "
                        "from a GGUF file (it reads "
                        f"{', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES)[:12])}...). Install "
                        "the gguf extra for llama.cpp (pip install .[gguf]), which knows more "
                        "architectures, or choose the model's Hugging Face folder.")
    quiet_transformers()
    kw: dict[str, Any] = {"gguf_file": path.name, "local_files_only": True,
                          "trust_remote_code": False}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kw)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=torch_dtype(device),
                                                     **kw)
    except (ValueError, KeyError, OSError, NotImplementedError) as exc:
        raise UserError(f"transformers cannot load {path.name}: "
                        f"{str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    gen = Generator(model, tokenizer)
    info = BackendInfo(TRANSFORMERS_GGUF, f"transformers (GGUF dequantised, {device})",
                       path.name, gen.context, (DEQUANTISED_NOTE,))
    return TransformersBackend(gen, info, templates.detect_gguf(path))


class TokenizerView(TransformersBackend):
    """A model's tokenizer and chat template without its weights: what a template preview
    needs (exact token counts) at a fraction of a model's loading time. It cannot generate."""

    def __init__(self, tokenizer: Any, info: BackendInfo, templates: TemplateInfo | None) -> None:
        self.tokenizer = tokenizer
        self.info = info
        self._templates = templates
        self.last_stats = GenerationStats()
        self.lock = threading.Lock()

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]

    def stream(self, prompt: str, settings: SamplingSettings,
               cancel: Cancel | None = None) -> Iterator[str]:
        raise UserError("this view of the model has no weights loaded: it cannot reply")


def open_tokenizer_view(model: str | Path) -> TokenizerView:
    """The tokenizer and template of a model folder or GGUF file (weights not loaded)."""
    from plugins.common.lm.loading import context_length, inspect_model_dir, load_tokenizer_for

    from .. import templates

    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf":
        from transformers import AutoTokenizer

        _, meta = gguf_architecture(path)
        try:
            tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name,
                                                local_files_only=True, trust_remote_code=False)
        except (ValueError, KeyError, OSError) as exc:
            raise UserError(f"cannot read the tokenizer of {path.name}: "
                            f"{str(exc).splitlines()[0]}") from None
        ctx = meta.get("context_length")
        info = BackendInfo(TRANSFORMERS_GGUF, "tokenizer only", path.name,
                           int(ctx) if isinstance(ctx, int) else 2048)
        return TokenizerView(tok, info, templates.detect_gguf(path))
    folder = inspect_model_dir(path)
    tok = load_tokenizer_for(folder)
    from types import SimpleNamespace

    config = folder.config if folder.kind == "full" else inspect_model_dir(folder.base).config \
        if folder.base else {}
    ctx_len = context_length(SimpleNamespace(**config))
    found = templates.detect(folder.path)
    if found is None and folder.base is not None:
        found = templates.detect(folder.base)
    return TokenizerView(tok, BackendInfo(TRANSFORMERS, "tokenizer only",
                                          model_label(folder.path), ctx_len), found)
