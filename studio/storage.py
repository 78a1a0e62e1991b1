"""Workspace folders, atomic writes and safetensors state files.

Everything a job writes goes through here so that a crash, a cancel or a full disk never leaves a
half-written checkpoint behind: each write goes to a temporary file in the same folder, is flushed
to disk, and only then replaces the target with ``os.replace`` (atomic on POSIX and Windows).

Checkpoints hold more than tensors (optimiser step counts, hyper-parameters, RNG states), yet we
never pickle: :func:`save_state` splits any nested structure into a safetensors tensor table plus a
JSON skeleton stored in the safetensors header, and :func:`load_state` puts it back together.
torch is imported lazily so the window can start without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from studio.errors import UserError

APP_NAME = "Generative Studio"
APP_SLUG = "generative-studio"
_STATE_KEY = "__studio_state__"


# ----------------------------------------------------------------------------------------------
# Workspace
# ----------------------------------------------------------------------------------------------
def studio_home() -> Path | None:
    """The folder named by ``STUDIO_HOME``, if set: it holds settings and the workspace."""
    env = os.environ.get("STUDIO_HOME")
    return Path(env).expanduser() if env else None


def default_workspace() -> Path:
    """Where runs and models live unless the user chose another folder in Settings."""
    home = studio_home()
    if home is not None:
        return home / "workspace"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "workspace"


def config_dir() -> Path:
    """Where settings are stored (``STUDIO_HOME`` keeps tests away from the user's own)."""
    home = studio_home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


# ----------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------
def _read_umask() -> int:
    """The process's umask (read once: setting it to read it back is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "", *, private: bool = False
                ) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it atomically becomes ``target``.

    Use it with writers that want a file name (``safetensors.save_file``, ``PIL.Image.save``).
    On any exception the temporary file is removed and ``target`` is left as it was. The file
    gets the permissions the user's umask gives new files (exports are meant to be shared),
    or owner-only with ``private`` (settings that may hold a secret).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp",
                                   dir=target.parent)
    except OSError as exc:  # name the file the user asked for, not our temporary one
        raise OSError(exc.errno, f"cannot write {target.name} in {target.parent}: "
                                 f"{exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.chmod(tmp_path, 0o600 if private else 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w", *, private: bool = False,
                **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``target`` only when the block succeeds."""
    if "r" in mode or "a" in mode or "+" in mode:
        raise ValueError("atomic_open only supports write modes")
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "\n")
    with atomic_path(target, private=private) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_open(target, "wb") as fh:
        fh.write(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str, *, private: bool = False
                      ) -> Path:
    with atomic_open(target, "w", private=private) as fh:
        fh.write(text)
    return Path(target)


def atomic_write_json(target: str | os.PathLike[str], obj: Any, *, indent: int = 2,
                      private: bool = False) -> Path:
    return atomic_write_text(target, json.dumps(obj, indent=indent, default=_json_default)
                             + "\n", private=private)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------
# Tensors: safetensors only, never pickle
# ----------------------------------------------------------------------------------------------
def save_tensors(
    target: str | os.PathLike[str],
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a flat ``{name: tensor}`` mapping as safetensors, atomically.

    Tensors are made contiguous and moved to CPU; tied weights (shared storage) are cloned so that
    safetensors accepts them.
    """
    from safetensors.torch import save_file

    seen: set[int] = set()
    clean: dict[str, Any] = {}
    for key, tensor in tensors.items():
        t = tensor.detach().to("cpu")
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        if ptr in seen:
            t = t.clone()
        seen.add(ptr)
        clean[key] = t.contiguous()
    with atomic_path(target, suffix=".safetensors") as tmp:
        save_file(clean, str(tmp), metadata=dict(metadata or {}))
    return Path(target)


def load_tensors(path: str | os.PathLike[str], device: str = "cpu") -> dict[str, Any]:
    """Read a safetensors file (raises :class:`CorruptFileError` with the file name if broken)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises SafetensorError / OSError with terse text
        raise CorruptFileError(f"{path} is not a readable safetensors file ({exc})") from exc


def read_tensor_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:
        raise CorruptFileError(f"{path} is not a readable safetensors file ({exc})") from exc


class CorruptFileError(UserError, ValueError):
    """A file the studio wrote (or was handed) cannot be read back: a message for the user
    (it names the file), and a ValueError for code that checks values."""


def save_state(target: str | os.PathLike[str], state: Any) -> Path:
    """Save any nested structure of tensors, numbers, strings, lists, tuples and dicts.

    Tensors go into the safetensors table under generated keys; everything else goes into a JSON
    skeleton in the file header. Used for resumable checkpoints (model + optimiser + RNG + step).
    """
    tensors: dict[str, Any] = {}
    skeleton = _flatten(state, tensors)
    return save_tensors(target, tensors, {_STATE_KEY: json.dumps(skeleton)})


def load_state(path: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Inverse of :func:`save_state`."""
    tensors = load_tensors(path, device=device)
    meta = read_tensor_metadata(path)
    if _STATE_KEY not in meta:
        raise CorruptFileError(f"{path} is a safetensors file but not a studio state file")
    return _unflatten(json.loads(meta[_STATE_KEY]), tensors)


def state_field(path: str | os.PathLike[str], key: str) -> Any:
    """One plain value (a step count, a format tag) of a state file, read from its header
    only: no tensor is loaded, so asking a large checkpoint "which step?" is cheap. A dotted
    key reaches into nested dicts (``"__loop__.step"``)."""
    meta = read_tensor_metadata(path)
    if _STATE_KEY not in meta:
        raise CorruptFileError(f"{path} is a safetensors file but not a studio state file")
    try:
        node = json.loads(meta[_STATE_KEY])
        for part in key.split("."):
            node = node["__d__"][part]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"{path} has no readable {key!r} ({exc})") from None
    if isinstance(node, dict | list):
        raise CorruptFileError(f"{path}: {key!r} is not a plain value")
    return node


def _flatten(obj: Any, tensors: dict[str, Any]) -> Any:
    if _is_tensor(obj):
        key = f"t{len(tensors)}"
        tensors[key] = obj
        return {"__t__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__d__": {k: _flatten(v, tensors) for k, v in obj.items()}}
        return {"__kv__": [[_flatten(k, tensors), _flatten(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_flatten(v, tensors) for v in obj]
    if hasattr(obj, "dtype") and hasattr(obj, "shape") and hasattr(obj, "tolist"):  # numpy
        import torch

        return _flatten(torch.from_numpy(obj.copy()), tensors) | {"np": True}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a state file")


def _unflatten(node: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_unflatten(v, tensors) for v in node]
    if isinstance(node, dict):
        if "__t__" in node:
            t = tensors[node["__t__"]]
            return t.numpy() if node.get("np") else t
        if "__d__" in node:
            return {k: _unflatten(v, tensors) for k, v in node["__d__"].items()}
        if "__kv__" in node:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in node["__kv__"]}
        if "__tuple__" in node:
            return tuple(_unflatten(v, tensors) for v in node["__tuple__"])
    return node


def _is_tensor(obj: Any) -> bool:
    mod = type(obj).__module__
    return mod.startswith("torch") and hasattr(obj, "untyped_storage")


def safe_torch_load(path: str | os.PathLike[str], map_location: str = "cpu") -> Any:
    """Load a ``.pt``/``.bin`` file with ``weights_only=True``: tensors and plain containers only.

    A file that needs arbitrary unpickling is refused with a clear message instead of running
    code from it.
    """
    import torch

    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CorruptFileError(
            f"{Path(path).name} could not be loaded safely: only plain weight files are accepted "
            f"(pickled Python objects are refused). Convert it to .safetensors. ({exc})"
        ) from exc


# ----------------------------------------------------------------------------------------------
# RNG state (for exact resume)
# ----------------------------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states, storable with :func:`save_state`."""
    import random

    import numpy as np
    import torch

    py = random.getstate()
    np_state: Any = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"].to("cpu", dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to("cpu", dtype=torch.uint8) for s in state["cuda"]])
