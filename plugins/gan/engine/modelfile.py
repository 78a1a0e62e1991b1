"""A trained GAN on disk: the run folder's ``config.json`` + ``generator.safetensors``.

The generator file holds the EMA generator with batch-norm statistics re-estimated for the
averaged weights, i.e. exactly what previews show. Its header repeats the configuration, so the
file alone is enough to sample from it. The resumable training state lives apart, in
``checkpoints/last.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugins.gan.engine.config import GanConfig
from studio import storage
from studio.errors import UserError

GENERATOR_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
CHECKPOINT = Path("checkpoints") / "last.safetensors"
META_KEY = "studio_gan"

_cache: dict[tuple[str, int, str], LoadedModel] = {}
_cache_lock = threading.Lock()


@dataclass
class LoadedModel:
    """A generator ready to sample (eval mode) and what it was trained on."""

    generator: Any  # plugins.gan.engine.models.Generator
    config: GanConfig
    info: dict[str, Any]  # step, data summary, ...
    path: Path  # the generator file
    model_id: str  # short content hash: PNG metadata names the exact weights

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def class_names(self) -> list[str]:
        return self.config.class_names or [str(i) for i in range(self.config.num_classes)]


def export_generator(run_dir: Path, generator: Any, cfg: GanConfig, info: dict[str, Any]
                     ) -> Path:
    """Write ``generator.safetensors`` and ``config.json`` (both atomically)."""
    meta = {META_KEY: json.dumps({"config": cfg.to_json(), "info": info})}
    path = storage.save_tensors(run_dir / GENERATOR_FILE, generator.state_dict(), meta)
    storage.atomic_write_json(run_dir / CONFIG_FILE, {"config": cfg.to_json(), **info})
    return path


def resolve(model: str | Path) -> Path:
    """The generator file for ``model``: a run folder or the ``.safetensors`` file itself."""
    p = Path(model).expanduser()
    if p.is_dir():
        p = p / GENERATOR_FILE
        if not p.exists():
            ckpt = p.parent / CHECKPOINT
            hint = (" (a checkpoint exists: the run was stopped before its first export; resume "
                    "it)" if ckpt.exists() else "")
            raise UserError(f"{p.parent} holds no trained generator ({GENERATOR_FILE} is "
                            f"missing){hint}: pick a GAN run folder")
    elif not p.exists():
        raise UserError(f"model {p} does not exist: pick a GAN run folder")
    return p


def load_model(model: str | Path, device: str = "cpu") -> LoadedModel:
    """Load (and cache, keyed by file time) a generator for sampling."""
    import torch

    from plugins.gan.engine.models import Generator

    path = resolve(model)
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(device))
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        meta = storage.read_tensor_metadata(path)
        state = storage.load_tensors(path)
    except storage.CorruptFileError as exc:
        raise UserError(str(exc)) from None
    if META_KEY not in meta:
        raise UserError(f"{path.name} is a safetensors file but not a Generative Studio GAN")
    blob = json.loads(meta[META_KEY])
    cfg = GanConfig.from_json(blob["config"])
    with torch.random.fork_rng(devices=[]):
        gen = Generator(cfg)
    try:
        gen.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{path.name} does not match its own configuration ({exc})") from None
    gen = gen.to(device).eval()
    for p in gen.parameters():
        p.requires_grad_(False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    loaded = LoadedModel(gen, cfg, blob.get("info", {}), path, digest)
    with _cache_lock:
        for k in [k for k in _cache if k[0] == key[0]]:
            del _cache[k]
        _cache[key] = loaded
    return loaded


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of a run's checkpoint, read from its header (cheap); None without one."""
    from plugins.common.training import checkpoint_step as step_of

    return step_of(Path(run_dir) / CHECKPOINT)


def run_config(run_dir: Path) -> GanConfig:
    """The configuration a run was started with, to rebuild its networks before resuming:
    from ``config.json`` (written before the first step), else from the checkpoint itself."""
    data = read_config(run_dir) or {}
    if isinstance(data.get("config"), dict):
        return GanConfig.from_json(data["config"])
    try:
        state = storage.load_state(Path(run_dir) / CHECKPOINT, device="cpu")
    except storage.CorruptFileError as exc:
        raise UserError(f"the checkpoint in {run_dir} cannot be read ({exc})") from None
    return GanConfig.from_json(state["config"])


def read_config(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = storage.read_json(Path(run_dir) / CONFIG_FILE)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
