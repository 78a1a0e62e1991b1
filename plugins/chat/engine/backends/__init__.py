"""Chat backends: one protocol (:mod:`.base`), three ways to run a model, one way to choose.

- :mod:`.hf`        transformers, through the shared language-model engine: any local Hugging
                    Face causal-LM folder (safetensors, no remote code), a writer or chat run's
                    ``model/``, a LoRA adapter folder; and GGUF files dequantised through
                    transformers' GGUF loading when llama.cpp is not installed
- :mod:`.llamacpp`  llama.cpp (llama-cpp-python, the ``gguf`` extra): GGUF files, and fast
                    copies of Hugging Face folders

:func:`open_backend` picks one (``"auto"``: the fastest that runs the model here) and keeps the
two most recently used loaded, so the next reply does not load the model again:

=================  ===========================  ==========================================
model              llama.cpp installed          llama.cpp not installed
=================  ===========================  ==========================================
``.gguf`` file     llama.cpp                    transformers, dequantised (said so)
HF folder          llama.cpp on an F16 copy     transformers
                   (made once in the workspace;
                   transformers when the model
                   cannot be copied, said why,
                   or on a GPU)
=================  ===========================  ==========================================

``backend="transformers"`` or ``"llama.cpp"`` forces one (llama.cpp when it is not installed is
a clear message). The chosen backend's :class:`~.base.BackendInfo` says which it is; every
reply records it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from studio.errors import UserError

from .base import (
    DEQUANTISED_NOTE,
    LLAMA_CPP,
    TRANSFORMERS,
    TRANSFORMERS_GGUF,
    BackendInfo,
    ChatBackend,
)

__all__ = ["BACKENDS", "DEQUANTISED_NOTE", "LLAMA_CPP", "TRANSFORMERS", "TRANSFORMERS_GGUF",
           "BackendChoice", "BackendInfo", "ChatBackend", "clear_backends", "fast_copy",
           "is_gguf", "open_backend"]

BackendChoice = Literal["auto", "transformers", "llama.cpp"]
BACKENDS: dict[str, str] = {
    "auto": "the fastest here (llama.cpp when installed)",
    "transformers": "transformers (exact float32 weights)",
    "llama.cpp": "llama.cpp (GGUF; a fast copy of a Hugging Face model)",
}
_CACHE_SIZE = 2
_cache: OrderedDict[tuple[Any, ...], ChatBackend] = OrderedDict()
_lock = threading.Lock()
_copy_lock = threading.Lock()
Log = Callable[[str], None]


def is_gguf(model: str | Path) -> bool:
    p = Path(model).expanduser()
    return p.suffix.lower() == ".gguf"


def _stamp(model: Path) -> tuple[Any, ...]:
    """What changes when the model's weights change (a new copy, a reload)."""
    from plugins.common.lm.loading import inspect_model_dir

    if is_gguf(model):
        st = model.stat()
        return (str(model.resolve()), st.st_mtime_ns, st.st_size)
    info = inspect_model_dir(model)
    files = list(info.weights)
    if info.base is not None:
        files += inspect_model_dir(info.base).weights
    return (str(info.path.resolve()),
            *sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))


def open_backend(model: str | Path, *, backend: BackendChoice = "auto", device: str = "cpu",
                 threads: int = 0, context: int = 0, precision: str = "auto",
                 workspace: Path | None = None, log: Log | None = None,
                 check: Callable[[], None] | None = None) -> ChatBackend:
    """A loaded backend for ``model`` (a model folder, run folder, adapter folder or .gguf).

    Args:
        backend: ``"auto"``, ``"transformers"`` or ``"llama.cpp"``.
        device: torch device for transformers (llama.cpp runs on the CPU).
        threads: llama.cpp's CPU threads (0: all cores).
        context: llama.cpp's context to allocate (0: the model's, at most 8,192).
        precision: transformers' weights: ``"auto"`` (float32 on a CPU), ``"float32"``,
            ``"bfloat16"``.
        workspace: where fast copies of Hugging Face models live (None: no copies).
        log: told what was chosen and why (a job's ``ctx.log``).
    """
    from . import llamacpp

    path = Path(model).expanduser()
    if not path.exists():
        raise UserError(f"the model {path} does not exist: choose a model folder or a .gguf "
                        "file")
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    have_llama = llamacpp.available()
    if backend == "llama.cpp" and not have_llama:
        raise UserError("llama.cpp is not installed: install the gguf extra "
                        "(pip install .[gguf], or llama-cpp-python), or choose the "
                        "transformers backend")
    if is_gguf(path):
        kind = LLAMA_CPP if backend != "transformers" and have_llama else TRANSFORMERS_GGUF
    elif not path.is_dir():
        raise UserError(f"{path.name} is neither a model folder nor a .gguf file")
    elif backend == "transformers" or (backend == "auto" and (
            not have_llama or workspace is None or not str(device).startswith("cpu"))):
        kind = TRANSFORMERS  # on a GPU transformers is the fast path
    else:
        kind = LLAMA_CPP
    key = (_stamp(path), kind, device, threads, context, precision)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    made = _open(path, kind, backend, device, threads, context, precision, workspace, log, check)
    with _lock:
        _cache[key] = made  # auto's fallback too: the next call falls back the same way
        while len(_cache) > _CACHE_SIZE:
            _, old = _cache.popitem(last=False)
            with contextlib.suppress(Exception):
                if old.lock.acquire(timeout=0):  # never close a model mid-reply
                    old.lock.release()
                    old.close()
    return made


def _open(path: Path, kind: str, choice: str, device: str, threads: int, context: int,
          precision: str, workspace: Path | None, log: Log | None,
          check: Callable[[], None] | None) -> ChatBackend:
    from .hf import open_gguf_transformers, open_transformers
    from .llamacpp import LlamaCppBackend

    if kind == TRANSFORMERS_GGUF:
        if log is not None:
            log(f"{path.name}: {DEQUANTISED_NOTE}")
        return open_gguf_transformers(path, device)
    if kind == TRANSFORMERS:
        return open_transformers(path, device, precision)
    if is_gguf(path):
        return LlamaCppBackend(path, path.name, context=context, threads=threads)
    # a Hugging Face folder through llama.cpp: its fast copy
    from ..gguf_export import UnsupportedModel

    assert workspace is not None or choice == "llama.cpp"
    try:
        copy = fast_copy(path, workspace or Path.home() / ".cache", log=log, check=check)
    except UnsupportedModel as exc:
        if choice == "llama.cpp":
            raise UserError(f"llama.cpp cannot run {path.name}: {exc}") from None
        backend = open_transformers(path, device, precision)
        note = f"no llama.cpp copy of this model ({exc}); transformers runs it"
        if log is not None:
            log(note)
        info = backend.info
        backend.info = BackendInfo(info.kind, info.label, info.model, info.context_length,
                                   (*info.notes, note))
        return backend
    from plugins.common.lm.loading import inspect_model_dir, load_tokenizer_for

    from .. import templates
    from .base import model_label

    info = inspect_model_dir(path)
    tokenizer = load_tokenizer_for(info)
    found = templates.detect(info.path)
    if found is None and info.base is not None:
        found = templates.detect(info.base)
    return LlamaCppBackend(copy, model_label(info.path), context=context, threads=threads,
                           tokenizer=tokenizer, eos=_eos_ids(info, tokenizer), templates=found,
                           label="llama.cpp (F16 copy)")


def _eos_ids(info: Any, tokenizer: Any) -> set[int]:
    """Every end-of-text id the model folder declares (tokenizer, generation config, config)."""
    ids: set[int] = set()
    if isinstance(tokenizer.eos_token_id, int):
        ids.add(int(tokenizer.eos_token_id))
    for folder in (info.path, info.base):
        if folder is None:
            continue
        for name in ("generation_config.json", "config.json"):
            f = Path(folder) / name
            if not f.exists():
                continue
            try:
                value = json.loads(f.read_text(encoding="utf-8")).get("eos_token_id")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list):
                ids.update(int(v) for v in value if isinstance(v, int))
    return ids


def fast_copy(folder: str | Path, workspace: Path, *, file_type: str = "f16",
              log: Log | None = None, check: Callable[[], None] | None = None) -> Path:
    """The GGUF copy of a Hugging Face model folder for llama.cpp, made once and kept in
    ``<workspace>/chat/fast/`` (made again when the weights change; the stale copy is
    removed). Raises :class:`~..gguf_export.UnsupportedModel` when it cannot be made."""
    from plugins.common.lm.loading import inspect_model_dir

    from ..gguf_export import export_folder

    info = inspect_model_dir(folder)
    stamp = _stamp(info.path)
    source = hashlib.sha256(str(info.path.resolve()).encode()).hexdigest()[:8]
    version = hashlib.sha256(repr((stamp, file_type)).encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", info.path.name)[:40] or "model"
    if info.path.name in ("model", "adapter"):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", info.path.parent.name)[:40] + "_" + safe
    target = workspace / "chat" / "fast" / f"{safe}-{source}-{version}.{file_type}.gguf"
    with _copy_lock:
        if target.exists():
            return target
        if log is not None:
            log(f"making a {file_type.upper()} copy of {info.path.name} for llama.cpp (once; "
                "kept in the workspace, removed when the model changes)")
        export_folder(info.path, target, file_type=file_type, check=check)  # type: ignore[arg-type]
        for old in target.parent.glob(f"{safe}-{source}-*.gguf"):
            if old != target:
                with contextlib.suppress(OSError):
                    old.unlink()
    return target


def clear_backends() -> None:
    """Forget (and close) the loaded backends."""
    from plugins.common.lm.generation import clear_generators

    with _lock:
        for b in _cache.values():
            with contextlib.suppress(Exception):
                b.close()
        _cache.clear()
    clear_generators()
