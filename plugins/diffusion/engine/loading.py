"""Loading models: diffusers pipeline folders and single-file checkpoints, safetensors only.

Safety rules, each with a clear message instead of a silent fallback:

- weights are read with ``use_safetensors=True``; a folder or file that only has pickled weights
  (``.bin``, ``.ckpt``, ``.pt``, ``.pth``) is refused before anything is unpickled;
- ``trust_remote_code`` is never set, and a ``model_index.json`` naming code outside diffusers and
  transformers (a custom pipeline) is refused;
- nothing is downloaded: folders load with ``local_files_only=True``, and a single-file checkpoint
  needs its diffusers configuration on disk: the studio ships those of SD 1.x (and its
  inpainting variant), SD 2.x and SDXL base in ``resources/diffusion/configs`` (configs and the
  CLIP tokenizer, no weights; the architecture is read from the tensor names), else a folder
  beside the file or the local Hugging Face cache. diffusers' own fallback would go online when
  the config is missing; we stop first.

Loaded pipelines are cached (one at a time) so that generating again with the same model in the
window costs no reload.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import UserError

PICKLE_EXTS = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
SAFE_EXT = ".safetensors"
_ALLOWED_LIBRARIES = ("diffusers", "transformers")

_cache_lock = threading.Lock()
_cache: dict[tuple[Any, ...], LoadedModel] = {}


@dataclass
class ModelInfo:
    """What the panel needs to know about a model without loading its weights."""

    path: Path  # the pipeline folder or the single file
    name: str
    kind: str  # "pixel" (unconditional UNet2DModel) or "text" (text-to-image)
    pipeline_class: str
    single_file: bool = False
    size: int = 0  # native resolution in pixels (0: unknown until loaded)
    channels: int = 3
    inpaint_model: bool = False  # a dedicated inpainting UNet (9 input channels)
    family: str = ""  # "pixel", "sd15", "sd2", "sdxl", ... (for previews and defaults)

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


@dataclass
class LoadedModel:
    info: ModelInfo
    pipe: Any
    device: str
    dtype: Any
    model_hash: str
    base_scheduler_config: dict[str, Any]
    derived: dict[str, Any] = field(default_factory=dict)  # img2img / inpaint pipelines

    @property
    def kind(self) -> str:
        return self.info.kind


# ----------------------------------------------------------------------------------------------
# Finding and checking
# ----------------------------------------------------------------------------------------------
def resolve_model_path(model: str | Path) -> Path:
    """The pipeline folder or checkpoint file that ``model`` names. A training run folder works
    too (its ``model/`` sub-folder is used)."""
    if not str(model).strip():
        raise UserError("no model chosen: give a diffusers pipeline folder, a training run folder "
                        "or a .safetensors checkpoint")
    p = Path(model).expanduser()
    if not p.exists():
        raise UserError(f"the model {p} does not exist")
    if p.is_dir():
        if (p / "model_index.json").exists():
            return p
        if (p / "model" / "model_index.json").exists():
            return p / "model"
        if (p / "checkpoints").is_dir():
            raise UserError(f"{p} is a training run that has not exported a model yet: train or "
                            "resume it until its first checkpoint")
        raise UserError(f"{p} is not a diffusers pipeline folder (it has no model_index.json)")
    suffix = p.suffix.lower()
    if suffix in PICKLE_EXTS:
        raise UserError(f"{p.name} is a pickle checkpoint ({suffix}): loading it could run code "
                        "hidden in the file, so only .safetensors checkpoints are accepted. "
                        "Convert it to .safetensors with a trusted tool, or download the "
                        ".safetensors version of the model")
    if suffix != SAFE_EXT:
        raise UserError(f"{p.name} is not a model: choose a diffusers folder or a .safetensors "
                        "file")
    return p


def _read_index(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder}/model_index.json cannot be read ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("_class_name"), str):
        raise UserError(f"{folder}/model_index.json names a custom pipeline (remote code), which "
                        "the studio never runs; use a standard diffusers pipeline")
    return data


def check_folder(folder: Path) -> dict[str, Any]:
    """Refuse custom code and pickle-only weights; returns ``model_index.json``."""
    index = _read_index(folder)
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2:
            continue
        library, _cls = spec
        if library is None:
            continue
        if library not in _ALLOWED_LIBRARIES:
            raise UserError(f"component '{name}' of {folder.name} comes from '{library}', not "
                            "diffusers or transformers: custom code is never run")
        sub = folder / name
        if not sub.is_dir():
            continue
        files = [f for f in sub.iterdir() if f.is_file()]
        has_safe = any(f.name.endswith(SAFE_EXT) or f.name.endswith(SAFE_EXT + ".index.json")
                       for f in files)
        pickled = [f.name for f in files if f.suffix.lower() in PICKLE_EXTS]
        if pickled and not has_safe:
            raise UserError(f"{folder.name}/{name} only has pickle weights ({pickled[0]}): only "
                            "safetensors weights are loaded (pickle files can run code). Convert "
                            "the model to safetensors or download its safetensors version")
    return index


def _kind_of(index: dict[str, Any]) -> str:
    has = {k for k, v in index.items() if isinstance(v, list) and v[0] is not None}
    if "text_encoder" in has and ("unet" in has or "transformer" in has) and "vae" in has:
        return "text"
    if has == {"unet", "scheduler"}:
        return "pixel"
    raise UserError(f"{index.get('_class_name')} pipelines are not supported: the editor runs "
                    "unconditional DDPM/DDIM pipelines (a UNet2DModel and a scheduler) and "
                    "text-to-image pipelines with a text encoder and VAE (Stable Diffusion "
                    "1.x/2.x, SDXL, SD-Turbo and the like)")


def _family(pipeline_class: str) -> str:
    name = pipeline_class.lower()
    if "xl" in name:
        return "sdxl"
    if "stablediffusion" in name:
        return "sd15"
    return "other"


def inspect_model(model: str | Path) -> ModelInfo:
    """Describe a model from its configuration files only (fast: no weights are read)."""
    path = resolve_model_path(model)
    if path.is_file():
        model_type = detect_architecture(path)
        arch = SHIPPED_CONFIGS.get(model_type, "")
        return ModelInfo(path=path, name=path.stem, kind="text",
                         pipeline_class=f"single file ({model_type})", single_file=True,
                         family=_FAMILIES.get(arch, "other"), size=_SIZES.get(arch, 0),
                         inpaint_model=model_type.startswith("inpainting")
                         or model_type == "xl_inpaint")
    index = check_folder(path)
    kind = _kind_of(index)
    cls = str(index["_class_name"])
    name = path.parent.name if path.name == "model" else path.name
    info = ModelInfo(path=path, name=name, kind=kind, pipeline_class=cls, family=_family(cls))
    try:
        unet_cfg = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        unet_cfg = {}
    if kind == "pixel":
        size = unet_cfg.get("sample_size", 0)
        info.size = int(size[0] if isinstance(size, list) else size or 0)
        info.channels = int(unet_cfg.get("in_channels", 3))
        info.family = "pixel"
    else:
        info.inpaint_model = int(unet_cfg.get("in_channels", 4)) == 9
        try:
            vae_cfg = json.loads((path / "vae" / "config.json").read_text(encoding="utf-8"))
            factor = 2 ** (len(vae_cfg.get("block_out_channels", [0, 0, 0, 0])) - 1)
        except (OSError, ValueError):
            factor = 8
        size = unet_cfg.get("sample_size", 64)
        info.size = int(size[0] if isinstance(size, list) else size) * factor
    return info


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
def choose_dtype(device: str, precision: str = "auto") -> Any:
    """fp32 on the CPU (half precision is slow or unsupported there); on a GPU the studio's
    mixed-precision choice (bf16 where supported, else fp16) unless ``precision`` says otherwise."""
    import torch

    from studio.device import autocast_dtype

    kind = str(device).split(":")[0]
    if precision == "fp32" or kind == "cpu":
        if precision in ("fp16", "bf16"):
            raise UserError(f"{precision} is for GPUs; on the CPU models run in fp32")
        return torch.float32
    return autocast_dtype(device, precision) or torch.float32


def load_model(model: str | Path, device: str = "cpu", precision: str = "auto",
               log: Any = None) -> LoadedModel:
    """Load (or reuse) ``model`` on ``device``. ``log`` is an optional ``log(text)`` callable."""
    path = resolve_model_path(model)
    dtype = choose_dtype(device, precision)
    stamp = _stamp(path)
    key = (str(path.resolve()), stamp, device, str(dtype))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        _cache.clear()  # one model at a time: they are gigabytes
        loaded = _load_file(path, device, dtype, log) if path.is_file() else _load_folder(
            path, device, dtype, log)
        _cache[key] = loaded
        return loaded


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _stamp(path: Path) -> float:
    target = path if path.is_file() else path / "model_index.json"
    try:
        return target.stat().st_mtime
    except OSError:
        return 0.0


def _quiet_diffusers() -> None:
    """diffusers prints tqdm bars while loading; a job reports through its context instead."""
    from diffusers.utils import logging as dlog

    dlog.disable_progress_bar()


def _load_folder(path: Path, device: str, dtype: Any, log: Any) -> LoadedModel:
    from diffusers import DiffusionPipeline

    _quiet_diffusers()

    info = inspect_model(path)
    index = check_folder(path)
    kwargs: dict[str, Any] = {"use_safetensors": True, "local_files_only": True,
                              "dtype": dtype}
    if isinstance(index.get("safety_checker"), list) and index["safety_checker"][0]:
        kwargs["safety_checker"] = None  # the editor is for the user's own images (like A1111)
        kwargs["requires_safety_checker"] = False
    try:
        pipe = DiffusionPipeline.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"could not load the pipeline in {path}: {_first_line(exc)}") from None
    return _finish(pipe, info, path, device, dtype, log)


#: diffusers' checkpoint types -> the configuration folders shipped in resources/diffusion/configs
SHIPPED_CONFIGS = {"v1": "sd15", "inpainting": "sd15-inpaint", "v2": "sd2-v", "xl_base": "sdxl"}
_SIZES = {"sd15": 512, "sd15-inpaint": 512, "sd2": 512, "sd2-v": 768, "sdxl": 1024}
_FAMILIES = {"sd15": "sd15", "sd15-inpaint": "sd15", "sd2": "sd2", "sd2-v": "sd2",
             "sdxl": "sdxl"}


def shipped_config(arch: str) -> Path | None:
    """The configuration folder shipped for ``arch`` (``sd15``, ``sd2``, ``sd2-v``, ``sdxl``,
    ``sd15-inpaint``): model_index.json and the components' configs, no weights."""
    from studio.shipped import resource

    return resource("diffusion", "configs", arch)


def clip_tokenizer(folder: Path) -> Any:
    """A CLIP tokenizer configured as ``folder/tokenizer_config.json`` says, with the CLIP BPE
    vocabulary shipped once for every architecture (resources/diffusion/configs/clip-tokenizer)."""
    from transformers import CLIPTokenizer

    vocab = shipped_config("clip-tokenizer")
    if vocab is None:
        raise UserError("the studio's CLIP vocabulary (resources/diffusion/configs/"
                        "clip-tokenizer) is missing from this installation: reinstall the studio")
    cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))

    def token(v: Any) -> str:
        return str(v["content"] if isinstance(v, dict) else v)

    return CLIPTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"),
                         errors=cfg.get("errors", "replace"), unk_token=token(cfg["unk_token"]),
                         bos_token=token(cfg["bos_token"]), eos_token=token(cfg["eos_token"]),
                         pad_token=token(cfg["pad_token"]),
                         model_max_length=int(cfg.get("model_max_length", 77)))


def _load_file(path: Path, device: str, dtype: Any, log: Any) -> LoadedModel:
    config_dir, model_type = find_single_file_config(path)
    _quiet_diffusers()
    index = _read_index(config_dir)
    import diffusers

    cls = getattr(diffusers, str(index["_class_name"]), None)
    if cls is None or not hasattr(cls, "from_single_file"):
        raise UserError(f"{index['_class_name']} (from {config_dir}) cannot load single-file "
                        "checkpoints")
    kwargs: dict[str, Any] = {"config": str(config_dir), "local_files_only": True,
                              "dtype": dtype}
    for optional in ("safety_checker", "feature_extractor", "image_encoder"):
        if optional in index:
            kwargs[optional] = None
    shipped = model_type in SHIPPED_CONFIGS.values()
    if shipped:  # the tokenizers from the one shipped vocabulary
        for name in ("tokenizer", "tokenizer_2"):
            if (config_dir / name / "tokenizer_config.json").exists():
                kwargs[name] = clip_tokenizer(config_dir / name)
    if log:
        where = "the studio's own" if shipped else f"the {config_dir.name}"
        log(f"loading {path.name} as {model_type} with {where} configuration")
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    try:
        pipe = cls.from_single_file(str(path), **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError,
            SingleFileComponentError) as exc:
        raise UserError(f"could not load {path.name}: {_first_line(exc)} (is the file "
                        "complete? a checkpoint holds the UNet, the text encoder and the "
                        "VAE)") from None
    if model_type == "sd2-v" and not uses_v_prediction(pipe.unet):
        model_type = "sd2"  # SD 2.x at 512 px predicts the noise: its own scheduler config
        base = shipped_config("sd2")
        if base is not None:
            cfg = json.loads((base / "scheduler" / "scheduler_config.json").read_text("utf-8"))
            pipe.scheduler = type(pipe.scheduler).from_config(cfg)
            pipe.unet.register_to_config(sample_size=64)
        if log:
            log(f"{path.name} predicts noise (SD 2.x at 512 px), not v")
    cls_name = type(pipe).__name__
    info = ModelInfo(path=path, name=path.stem, kind=_kind_of(index), pipeline_class=cls_name,
                     single_file=True, family=_FAMILIES.get(model_type, _family(cls_name)),
                     size=_SIZES.get(model_type, 0))
    return _finish(pipe, info, path, device, dtype, log)


def uses_v_prediction(unet: Any) -> bool:
    """Whether an SD 2.x UNet predicts v rather than the noise, told apart as A1111 does:
    on a flat input at the last timestep a v-model's output sits far below the input."""
    import torch

    p = next(unet.parameters())
    with torch.no_grad():
        x = torch.full((1, 4, 8, 8), 0.5, device=p.device, dtype=p.dtype)
        cond = torch.full((1, 2, int(unet.config.cross_attention_dim)), 0.5, device=p.device,
                          dtype=p.dtype)
        out = unet(x, torch.tensor([999], device=p.device), encoder_hidden_states=cond).sample
    return float((out - x).float().mean()) < -1.0


def detect_architecture(path: Path) -> str:
    """The kind of a single-file checkpoint from its tensor names and shapes: diffusers' own
    type (``v1``, ``v2``, ``xl_base``, ``inpainting``, ...). Reads only the header."""
    shapes = _Shapes(path)
    if not shapes.keys_seen_model():
        raise UserError(f"{path.name} holds no diffusion UNet weights: it is not a complete "
                        "single-file model checkpoint (a LoRA, VAE or embedding goes in the "
                        "LoRAs, embeddings, VAE box)")
    try:
        from diffusers.loaders.single_file_utils import infer_diffusers_model_type

        return str(infer_diffusers_model_type(shapes))
    except Exception as exc:
        raise UserError(f"{path.name} does not look like a Stable Diffusion checkpoint diffusers "
                        f"can read ({_first_line(exc)})") from None


def find_single_file_config(path: Path) -> tuple[Path, str]:
    """The local diffusers configuration folder for a single-file checkpoint, and its type.

    Looked for: a folder beside the file named ``<stem>``, ``<stem>.config`` or ``<stem>-config``
    holding ``model_index.json``; then the folder the studio ships for the checkpoint's
    architecture (SD 1.x, SD 1.x inpainting, SD 2.x, SDXL base: detected from the tensor names);
    then the local Hugging Face cache of the repository diffusers associates with other types.
    Never the network.
    """
    for cand in (path.with_suffix(""), path.parent / f"{path.stem}.config",
                 path.parent / f"{path.stem}-config"):
        if (cand / "model_index.json").exists():
            return cand, "configured"
    model_type = detect_architecture(path)
    arch = SHIPPED_CONFIGS.get(model_type)
    folder = shipped_config(arch) if arch else None
    if arch and folder is not None and (folder / "model_index.json").exists():
        return folder, arch
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS

    repo = DIFFUSERS_DEFAULT_PIPELINE_PATHS.get(model_type, {}).get(
        "pretrained_model_name_or_path", "")
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(repo, local_files_only=True)) if repo else None
        if cached is not None and (cached / "model_index.json").exists():
            return cached, model_type
    except (OSError, ValueError):  # not in the Hugging Face cache: the message below says so
        pass
    raise UserError(
        f"{path.name} looks like a '{model_type}' checkpoint. The studio ships the "
        "configuration of SD 1.x, SD 2.x and SDXL base checkpoints, not of this kind, and never "
        "downloads one by itself. Put the configuration folder of that model "
        f"({repo or 'its diffusers repository'}: model_index.json, the component config.json "
        f"files and the tokenizer, no weights needed) beside the file as '{path.stem}.config', "
        "or load the model as a diffusers folder")


class _Shapes:
    """A read-only mapping of tensor names to objects with a ``shape``: enough for diffusers'
    checkpoint-type detection without reading gigabytes of weights."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                self._shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
        except Exception as exc:
            raise UserError(f"{path.name} is not a readable safetensors file "
                            f"({_first_line(exc)})") from None

    def keys_seen_model(self) -> bool:
        return any(k.startswith("model.diffusion_model.") for k in self._shapes)

    def __contains__(self, key: object) -> bool:
        return key in self._shapes

    def __getitem__(self, key: str) -> Any:
        import torch

        class _T:
            shape = torch.Size(self._shapes[key])

        return _T()

    def keys(self) -> Any:
        return self._shapes.keys()

    def __iter__(self) -> Any:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)


def _finish(pipe: Any, info: ModelInfo, path: Path, device: str, dtype: Any, log: Any
            ) -> LoadedModel:
    if info.kind == "pixel":
        from diffusers import UNet2DModel

        if not isinstance(getattr(pipe, "unet", None), UNet2DModel):
            raise UserError(f"{info.pipeline_class}: its unet is not a UNet2DModel")
        size = pipe.unet.config.sample_size
        info.size = int(size[0] if isinstance(size, list | tuple) else size)
        info.channels = int(pipe.unet.config.in_channels)
    else:
        unet = getattr(pipe, "unet", None)
        if unet is not None:
            info.inpaint_model = int(unet.config.in_channels) == 9
            size = unet.config.sample_size
            info.size = int(size[0] if isinstance(size, list | tuple) else size) * int(
                getattr(pipe, "vae_scale_factor", 8))
    pipe.to(device)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    if str(device).startswith("cpu") and info.kind == "text" and hasattr(
            pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()  # bounded memory on laptops: attention in slices
    if log:
        log(f"loaded {info.name} ({info.pipeline_class}, {info.kind}) on {device} in {dtype}")
    return LoadedModel(info=info, pipe=pipe, device=device, dtype=dtype,
                       model_hash=model_hash(path),
                       base_scheduler_config=dict(pipe.scheduler.config))


def model_hash(path: Path) -> str:
    """A1111's AutoV2 hash of the model's main weights (10 hex digits), written into PNG
    parameters (:mod:`.hashes`)."""
    from .hashes import model_hash as autov2_of

    return autov2_of(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
