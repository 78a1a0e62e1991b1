"""The model library: every model the user has, wherever it is, with its kind.

Four places are searched:

- **studio runs**: the models training runs recorded in their manifests (``kind="model"``
  artifacts carry a ``model_kind``), so a GAN trained yesterday is offered to the GAN panel;
- **the workspace's** ``models/`` folder (where downloads and imports go);
- **the Hugging Face cache** (``huggingface_hub.scan_cache_dir``): models other tools already
  downloaded are reused, never fetched again;
- **folders the user adds** in Settings: an A1111 ``models/`` folder (``Stable-diffusion``,
  ``Lora``, ``VAE``...), a ComfyUI ``models`` folder, a folder of ``.gguf`` files.

A file or folder's kind is read from what it holds, never from its name: a diffusers folder has
``model_index.json``, a causal LM a ``config.json`` naming a ``...ForCausalLM``, a single-file
checkpoint's tensor names say whether it is a Stable Diffusion checkpoint (and which), a LoRA,
a textual-inversion embedding or a VAE (only the safetensors header is read: a few kilobytes).
Pickled weights (``.ckpt``, ``.bin``) are listed as such and never opened.

No Qt, no torch. Scanning touches the disk: panels run it off the GUI thread.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import manifest as manifest_mod

#: kind -> what the window calls it
KINDS: dict[str, str] = {
    "diffusers-pipeline": "Diffusion pipeline",
    "sd-checkpoint": "Stable Diffusion checkpoint",
    "lora": "LoRA",
    "embedding": "Textual-inversion embedding",
    "vae": "VAE",
    "controlnet": "ControlNet",
    "causal-lm": "Language model",
    "lm-adapter": "Language-model adapter (LoRA)",
    "gguf": "GGUF language model",
    "gan": "GAN",
    "music-vae": "Music VAE",
    "level-model": "Level model",
    "pickle": "Pickle file (not loaded: it could run code)",
}
SOURCES = {"run": "Studio run", "workspace": "Workspace", "hf-cache": "Hugging Face cache",
           "folder": "Model folder"}
# runs written before manifests named their model kind
_LEGACY_RUN_KINDS = {"gan": "gan", "music": "music-vae", "diffusion": "diffusers-pipeline",
                     "writer": "causal-lm", "levels": "level-model"}
_PICKLE = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
_MAX_DEPTH = 4
_HEADER_LIMIT = 64 << 20


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    name: str
    kind: str
    source: str  # run, workspace, hf-cache, folder
    size: int = 0
    modified: float = 0.0
    plugin: str = ""  # the plugin whose run made it
    info: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def kind_label(self) -> str:
        return KINDS.get(self.kind, self.kind)

    @property
    def source_label(self) -> str:
        return str(self.info.get("folder_label") or SOURCES.get(self.source, self.source))


# ----------------------------------------------------------------------------------------------
# What is this file or folder?
# ----------------------------------------------------------------------------------------------
def safetensors_keys(path: Path) -> tuple[list[str], dict[str, str]]:
    """Tensor names and ``__metadata__`` of a safetensors file, from its header only."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError("too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n <= 0 or n > _HEADER_LIMIT:
            raise ValueError("not a safetensors header")
        header = json.loads(fh.read(n))
    if not isinstance(header, dict):
        raise ValueError("not a safetensors header")
    meta = header.pop("__metadata__", None) or {}
    return list(header), {str(k): str(v) for k, v in meta.items()}


def classify_safetensors(path: Path) -> tuple[str | None, dict[str, Any]]:
    """A single ``.safetensors`` file's kind from its tensor names (None: not a model the
    studio uses)."""
    try:
        keys, _meta = safetensors_keys(path)
    except (OSError, ValueError, UnicodeDecodeError):
        return None, {}
    ks = set(keys)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in ks)

    def contains(part: str) -> bool:
        return any(part in k for k in ks)

    if has("model.diffusion_model."):
        if has("conditioner.embedders.1."):
            base = "SDXL"
        elif has("cond_stage_model.model."):
            base = "SD 2.x"
        else:
            base = "SD 1.x"
        return "sd-checkpoint", {"base": base}
    if has("lora_unet_") or has("lora_te") or contains(".lora_down.") or contains("lora_A.") \
            or contains(".lora.down."):
        return "lora", {}
    if "emb_params" in ks or has("string_to_param") or (ks and ks <= {"clip_l", "clip_g"}):
        return "embedding", {}
    if has("control_model.") or has("controlnet_"):
        return "controlnet", {}
    if (has("encoder.down.") and has("decoder.up.")) or has("first_stage_model.") \
            or (has("encoder.down_blocks.") and has("decoder.up_blocks.")):
        return "vae", {}
    return None, {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def classify_folder(path: Path) -> tuple[str | None, dict[str, Any]]:
    """A folder's kind from its configuration files (None: not one model)."""
    if (path / "model_index.json").is_file():
        index = _read_json(path / "model_index.json")
        return "diffusers-pipeline", {"class": str(index.get("_class_name", ""))}
    if (path / "adapter_config.json").is_file():
        cfg = _read_json(path / "adapter_config.json")
        return "lm-adapter", {"base": str(cfg.get("base_model_name_or_path") or "")}
    cfg_path = path / "config.json"
    if cfg_path.is_file():
        cfg = _read_json(cfg_path)
        cls = str(cfg.get("_class_name", ""))
        if cls == "ControlNetModel":
            return "controlnet", {}
        if cls.startswith("Autoencoder"):
            return "vae", {}
        archs = [str(a) for a in cfg.get("architectures") or []]
        if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            safe = any(path.glob("*.safetensors"))
            info = {"architecture": archs[0], "model_type": str(cfg.get("model_type", ""))}
            if not safe and any(path.glob("*.bin")):
                return "pickle", info
            return "causal-lm", info
    return None, {}


def classify(path: Path) -> tuple[str | None, dict[str, Any]]:
    """The kind of a file or folder (None: not a model)."""
    if path.is_dir():
        return classify_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return classify_safetensors(path)
    if suffix == ".gguf":
        try:
            with open(path, "rb") as fh:
                magic = fh.read(4)
        except OSError:
            return None, {}
        return ("gguf", {}) if magic == b"GGUF" else (None, {})
    if suffix in (".ckpt", ".pt", ".pth"):
        return "pickle", {}
    return None, {}


def _size(path: Path) -> int:
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def scan_folder(root: Path, source: str = "folder", label: str = "") -> Iterator[ModelEntry]:
    """Models under ``root``: a folder that is one model is not searched further; hidden
    folders and deep trees (over four levels) are skipped."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return

    def walk(folder: Path, depth: int) -> Iterator[ModelEntry]:
        try:
            children = sorted(folder.iterdir())
        except OSError:
            return
        for child in children:
            if child.name.startswith("."):
                continue
            kind, info = classify(child)
            if kind is not None:
                if label:
                    info = {**info, "folder_label": label}
                yield ModelEntry(child, child.stem if child.is_file() else child.name, kind,
                                 source, _size(child), _mtime(child), info=info)
            elif child.is_dir() and depth < _MAX_DEPTH:
                yield from walk(child, depth + 1)

    kind, info = classify(root)
    if kind is not None:
        yield ModelEntry(root, root.name, kind, source, _size(root), _mtime(root),
                         info={**info, "folder_label": label} if label else info)
        return
    yield from walk(root, 1)


def default_hf_cache() -> Path:
    """Where huggingface_hub keeps downloads, read from the environment now (its own constant
    is fixed when it is first imported): ``HF_HUB_CACHE``, else ``HF_HOME/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def scan_hf_cache(cache_dir: Path | None = None) -> Iterator[ModelEntry]:
    """Models in the Hugging Face cache (the newest snapshot of each model repository)."""
    try:
        from huggingface_hub import scan_cache_dir
    except ImportError:  # pragma: no cover - transformers depends on it
        return
    cache_dir = cache_dir or default_hf_cache()
    if not cache_dir.is_dir():
        return
    try:
        info = scan_cache_dir(cache_dir)
    except Exception:  # a missing or unreadable cache is simply empty: the library still works
        return
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        rev = max(repo.revisions, key=lambda r: r.last_modified)
        snap = Path(rev.snapshot_path)
        kind, extra = classify(snap)
        if kind is not None:
            yield ModelEntry(snap, repo.repo_id, kind, "hf-cache", int(rev.size_on_disk),
                             float(rev.last_modified),
                             info={**extra, "repo": repo.repo_id, "revision": rev.commit_hash})
            continue
        for f in sorted(snap.iterdir()):  # single files in a repo (checkpoints, GGUF)
            k, extra = classify(f)
            if k is not None and k != "pickle":
                yield ModelEntry(f, f"{repo.repo_id}/{f.name}", k, "hf-cache", _size(f),
                                 _mtime(f), info={**extra, "repo": repo.repo_id})


def scan_runs(workspace: Path) -> Iterator[ModelEntry]:
    """The models studio training runs made (done or stopped with a checkpoint)."""
    from studio import runindex

    for run in runindex.scan(workspace):
        m = run.manifest
        for art in m.models():
            path = Path(art.path)
            path = path if path.is_absolute() else run.path / path
            if not path.exists():
                continue
            kind = art.model_kind or _LEGACY_RUN_KINDS.get(m.plugin, "")
            if not kind:
                continue
            name = run.path.name + ("" if path == run.path else f" ({path.name})")
            yield ModelEntry(path, name, kind, "run", art.bytes, _mtime(path), m.plugin,
                             info={"run": str(run.path), "state": run.state, "job": m.job,
                                   "data": ", ".join(d.name for d in m.datasets)})


# ----------------------------------------------------------------------------------------------
# The library
# ----------------------------------------------------------------------------------------------
class ModelLibrary:
    """Every model from the four places, cached for ``ttl`` seconds between scans.

    Args:
        workspace: the studio workspace (its runs and ``models/``).
        folders: folders the user added (``(path, label)`` or paths).
        hf_cache: the Hugging Face cache folder (default: huggingface_hub's, honouring
            ``HF_HUB_CACHE`` / ``HF_HOME``); ``False`` to skip it.
    """

    def __init__(self, workspace: Path, folders: Iterable[str | Path] = (),
                 hf_cache: Path | bool | None = None, ttl: float = 10.0) -> None:
        self.workspace = Path(workspace)
        self.folders = [Path(f).expanduser() for f in folders]
        self.hf_cache = hf_cache
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: list[ModelEntry] | None = None
        self._when = 0.0

    def scan(self, kinds: Iterable[str] | None = None, refresh: bool = False
             ) -> list[ModelEntry]:
        """Models of the given kinds (all when None): runs first (newest first), then the
        workspace, the user's folders and the Hugging Face cache."""
        with self._lock:
            if refresh or self._entries is None or time.monotonic() - self._when > self.ttl:
                self._entries = self._scan_all()
                self._when = time.monotonic()
            entries = list(self._entries)
        if kinds is None:
            return entries
        wanted = set(kinds)
        return [e for e in entries if e.kind in wanted]

    def newest(self, kinds: Iterable[str]) -> ModelEntry | None:
        """The most recently changed model of these kinds (a panel's first suggestion)."""
        found = self.scan(kinds)
        return max(found, key=lambda e: e.modified) if found else None

    def invalidate(self) -> None:
        with self._lock:
            self._entries = None

    def find(self, path: str | Path) -> ModelEntry | None:
        """The entry for a path (a model chosen by hand is classified on the spot)."""
        p = Path(path).expanduser()
        for e in self.scan():
            if e.path == p:
                return e
        kind, info = classify(p) if p.exists() else (None, {})
        if kind is None:
            return None
        return ModelEntry(p, p.stem if p.is_file() else p.name, kind, "folder", _size(p),
                          _mtime(p), info=info)

    def _scan_all(self) -> list[ModelEntry]:
        out: list[ModelEntry] = []
        seen: set[Path] = set()

        def add(entries: Iterable[ModelEntry]) -> None:
            for e in entries:
                key = e.path.resolve() if e.path.exists() else e.path
                if key not in seen:
                    seen.add(key)
                    out.append(e)

        runs = sorted(scan_runs(self.workspace), key=lambda e: e.modified, reverse=True)
        add(runs)
        add(scan_folder(self.workspace / "models", "workspace"))
        for folder in self.folders:
            add(scan_folder(folder, "folder", folder.name))
        if self.hf_cache is not False:
            cache = self.hf_cache if isinstance(self.hf_cache, Path) else default_hf_cache()
            add(scan_hf_cache(cache))
        return out


_shared: dict[tuple[str, tuple[str, ...]], ModelLibrary] = {}
_shared_lock = threading.Lock()


def library(settings: Any | None = None) -> ModelLibrary:
    """The library for the user's settings (one per workspace and folder list, shared by every
    panel and job of the process)."""
    if settings is None:
        from studio import settings as settings_mod

        settings = settings_mod.load()
    key = (str(settings.workspace_path()), tuple(getattr(settings, "model_folders", ()) or ()))
    with _shared_lock:
        lib = _shared.get(key)
        if lib is None:
            lib = _shared[key] = ModelLibrary(settings.workspace_path(), key[1])
        return lib


def kind_of_run_model(run_dir: Path) -> str:
    """The model kind a run folder recorded (empty when none)."""
    m = manifest_mod.read(run_dir)
    if m is None:
        return ""
    for art in m.models():
        return art.model_kind or _LEGACY_RUN_KINDS.get(m.plugin, "")
    return ""


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
