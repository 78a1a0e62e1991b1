"""Model folders: check, load and save Hugging Face causal LMs safely (the writer's and the
chatbot's models alike).

What is accepted, and why:
- A local folder with ``config.json`` and safetensors weights (``model.safetensors``, or a sharded
  ``model.safetensors.index.json``): GPT-2, Llama, Qwen, SmolLM, Mistral and anything else
  ``AutoModelForCausalLM`` knows natively.
- A LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``) whose base model
  is such a folder.
- A studio run folder (a writer or chat training run): its ``model/`` (or ``adapter/``)
  sub-folder is used.

What is refused, with a message saying so: pickle-only checkpoints (``pytorch_model.bin``,
``.pt``, ``.ckpt``: unpickling can run arbitrary code), models that need their own Python code
(``auto_map`` in the config: we never pass ``trust_remote_code=True``) and folders without
weights. Loading never touches the network (``local_files_only=True``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugins.common.lm.tokens import TOKENIZER_FILES, load_tokenizer, save_tokenizer
from studio.errors import UserError

PICKLE_EXTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


@dataclass
class ModelFolder:
    """What :func:`inspect_model_dir` found in a folder (no torch needed)."""

    path: Path
    kind: str  # "full" or "adapter"
    weights: list[Path]
    config: dict[str, Any]
    base: Path | None = None  # the base model folder of an adapter
    notes: list[str] = field(default_factory=list)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", "?"))

    def describe(self) -> str:
        size = sum(w.stat().st_size for w in self.weights if w.exists()) / 1e6
        if self.kind == "adapter":
            return f"LoRA adapter on {self.base} ({size:.1f} MB)"
        return f"{self.model_type} model ({size:.1f} MB of weights)"


def resolve_model_dir(path: str | os.PathLike[str]) -> Path:
    """A model folder from what the user named: the folder itself, or a run folder's ``model/``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"the model folder {p} does not exist")
    if not p.is_dir():
        raise UserError(f"{p} is a file: choose the model's folder (the one holding config.json "
                        "and the .safetensors weights)")
    if not _is_model_folder(p):
        for sub in ("model", "adapter"):
            if _is_model_folder(p / sub):
                return p / sub
    return p


def _is_model_folder(p: Path) -> bool:
    """An adapter folder, or a config.json that describes a model (a training run folder also has
    a config.json, holding its training settings instead)."""
    if (p / "adapter_config.json").exists():
        return True
    cfg = p / "config.json"
    if not cfg.exists():
        return False
    try:
        return "model_type" in json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return True  # unreadable: let inspect_model_dir report it


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return data


def _pickle_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in PICKLE_EXTS and f.is_file())


def _refuse_pickle(folder: Path, files: list[Path]) -> UserError:
    names = ", ".join(f.name for f in files[:3])
    return UserError(
        f"{folder} only has pickle checkpoints ({names}). The studio refuses them because "
        "unpickling can run arbitrary code. Use a safetensors version of the model (most Hub "
        "models have one), or convert it on a trusted machine: load it with transformers and "
        "call save_pretrained(), which writes model.safetensors.")


def inspect_model_dir(path: str | os.PathLike[str]) -> ModelFolder:
    """Check a model folder without loading it; a clear :class:`UserError` for every problem."""
    folder = resolve_model_dir(path)
    if (folder / "adapter_config.json").exists():
        cfg = _read_json(folder / "adapter_config.json")
        weights = [folder / "adapter_model.safetensors"]
        if not weights[0].exists():
            pickles = _pickle_files(folder)
            if pickles:
                raise _refuse_pickle(folder, pickles)
            raise UserError(f"the adapter folder {folder} has no adapter_model.safetensors")
        base_name = cfg.get("base_model_name_or_path")
        if not base_name:
            raise UserError(f"{folder}/adapter_config.json does not name its base model")
        base = Path(base_name).expanduser()
        if not base.is_absolute():
            base = (folder / base).resolve() if (folder / base).exists() else base
        if not base.exists():
            raise UserError(f"the adapter in {folder} was trained on {base_name}, which is not a "
                            "folder on this machine. Put the base model there (or edit "
                            "base_model_name_or_path in adapter_config.json).")
        inspect_model_dir(base)  # the base must pass the same checks
        return ModelFolder(folder, "adapter", weights, cfg, base=resolve_model_dir(base))
    if not (folder / "config.json").exists():
        raise UserError(f"{folder} is not a Hugging Face model folder: it has no config.json")
    cfg = _read_json(folder / "config.json")
    if cfg.get("auto_map"):
        raise UserError(f"the model in {folder} needs its own Python code (auto_map in "
                        "config.json). The studio never runs code shipped with a model "
                        "(trust_remote_code); choose a model that transformers supports natively.")
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        weights = [folder / s for s in shards]
        missing = [w.name for w in weights if not w.exists()]
        if missing:
            raise UserError(f"{folder} is missing weight shard(s): {', '.join(missing[:3])}")
    else:
        weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = _pickle_files(folder)
        if pickles:
            raise _refuse_pickle(folder, pickles)
        raise UserError(f"{folder} has a config.json but no weights (no .safetensors file). "
                        "Copy the model's .safetensors file(s) into it, or train a model first.")
    return ModelFolder(folder, "full", weights, cfg)


def load_tokenizer_for(info: ModelFolder) -> Any:
    """The tokenizer beside the weights (an adapter falls back to its base model's)."""
    for folder in (info.path, info.base):
        if folder is not None and any((folder / f).exists() for f in TOKENIZER_FILES):
            return load_tokenizer(folder)
    raise UserError(f"{info.path} has no tokenizer files (tokenizer.json, vocab.json, "
                    "tokenizer.model): copy them from where the model came from")


def torch_dtype(device: str, dtype: str = "auto") -> Any:
    """float32 on CPU (fast and exact for small models), bf16/fp16 on GPUs for inference."""
    import torch

    if dtype == "float32" or (dtype == "auto" and str(device).startswith("cpu")):
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    if dtype == "float16":
        return torch.float16
    if str(device).startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_causal_lm(folder: str | os.PathLike[str], device: str = "cpu", dtype: str = "auto",
                   trainable_adapter: bool = False) -> tuple[Any, Any, ModelFolder]:
    """Load a model folder for generation, evaluation or fine-tuning.

    Args:
        folder: a model, adapter or run folder.
        device: torch device string.
        dtype: ``"auto"`` (float32 on CPU, bf16/fp16 on GPU), ``"float32"``, ``"bfloat16"``, ...
        trainable_adapter: keep a LoRA adapter separate and trainable (to continue training it);
            otherwise it is merged into the base weights, which makes generation as fast as a
            plain model.

    Returns:
        ``(model, tokenizer, info)``; the model is in eval mode on ``device``.
    """
    info = inspect_model_dir(folder)
    tokenizer = load_tokenizer_for(info)
    td = torch_dtype(device, dtype)
    base_dir = info.base if info.kind == "adapter" else info.path
    assert base_dir is not None
    model = _from_pretrained(base_dir, td)
    if info.kind == "adapter":
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(info.path), is_trainable=trainable_adapter)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise UserError(f"the adapter in {info.path} does not fit its base model "
                            f"{base_dir}: {str(exc).splitlines()[0]}") from None
        if not trainable_adapter:
            model = model.merge_and_unload()
    model.to(device)
    model.eval()
    return model, tokenizer, info


def quiet_transformers() -> None:
    """No tqdm bars from transformers: they would pollute the CLI's stderr and the Log dock."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _from_pretrained(folder: Path, dtype: Any) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    quiet_transformers()

    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True,
                                            trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read the model configuration in {folder}: "
                        f"{str(exc).splitlines()[0]}") from None
    try:
        return AutoModelForCausalLM.from_pretrained(
            str(folder), config=config, use_safetensors=True, local_files_only=True,
            trust_remote_code=False, dtype=dtype)
    except ValueError as exc:
        text = str(exc).splitlines()[0]
        if "Unrecognized configuration class" in text or "does not recognize" in text:
            raise UserError(f"{folder} holds a {config.model_type} model, which is not a causal "
                            "(text-continuing) language model transformers can load") from None
        raise UserError(f"cannot load the model in {folder}: {text}") from None
    except OSError as exc:
        raise UserError(f"cannot load the model in {folder}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # safetensors' own error is none of the above
        if type(exc).__name__ != "SafetensorError":
            raise
        raise UserError(f"cannot load the model in {folder}: {_damaged_weights(folder)} "
                        f"({str(exc).splitlines()[0]})") from None


def _damaged_weights(folder: Path) -> str:
    """Which weight file of ``folder`` is damaged, in words (read header by header: cheap)."""
    from safetensors import safe_open

    bad = []
    for f in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt"):
                pass
        except Exception:  # any failure to read the header means damaged
            bad.append(f.name)
    if not bad:
        return "a weights file is damaged"
    return f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} damaged or not safetensors"


def save_model_folder(target: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write a model folder atomically: ``write(tmp_dir)`` fills a temporary folder beside
    ``target``, which then replaces ``target`` in one rename. A crash or a full disk mid-save
    leaves the previous folder intact (``save_pretrained`` alone writes file by file)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    old: Path | None = None
    try:
        write(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            with contextlib.suppress(OSError):
                os.replace(old / target.name, target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def save_pretrained_folder(model: Any, tokenizer: Any, target: str | os.PathLike[str],
                           extra: dict[str, Any] | None = None) -> Path:
    """``model.save_pretrained`` (safetensors) + tokenizer (+ ``studio.json`` with ``extra``),
    atomically. A peft model saves its adapter (``adapter_model.safetensors``)."""
    from studio.storage import atomic_write_json

    quiet_transformers()

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        save_tokenizer(tokenizer, tmp)
        if extra:
            atomic_write_json(tmp / "studio.json", extra)

    return save_model_folder(target, write)


def context_length(config: Any) -> int:
    """The model's context window in tokens (2048 when the config does not say)."""
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048
