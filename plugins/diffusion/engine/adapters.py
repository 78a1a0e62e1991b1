"""The files artists add to a checkpoint: LoRAs (several at once, each with its weight),
textual-inversion embeddings (by trigger word) and a replacement VAE.

They are applied to the cached pipeline and remembered on it (:class:`Extras`), so generating
again with the same LoRAs costs nothing, and a request without them switches them off instead
of reloading the model. LoRA files in kohya/A1111 or diffusers/PEFT layout are read by diffusers'
``load_lora_weights`` (PEFT adapters, combined with ``set_adapters``); embeddings by
``load_textual_inversion`` with the file's name as the trigger word (A1111's rule), for SDXL
into both text encoders; a VAE file in the original (LDM) layout by
``AutoencoderKL.from_single_file`` with the model's own VAE configuration, one in diffusers'
layout by loading its tensors into that configuration. Only ``.safetensors`` is read.

What was applied comes back as :class:`Applied`, which the PNG parameters record as A1111 does
(``Lora hashes``, ``TI hashes``, ``VAE``, ``VAE hash``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import UserError

from . import hashes
from .loading import PICKLE_EXTS, SAFE_EXT, LoadedModel, _first_line


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    weight: float = 1.0

    @property
    def name(self) -> str:
        return self.path.stem


def parse_lora(text: str | Path) -> LoraSpec:
    """``FILE`` or ``FILE:WEIGHT`` (the command line's ``--lora``); the weight is what follows
    the last colon when it is a number, so ``C:\\loras\\x.safetensors`` stays a path."""
    s = str(text).strip()
    head, sep, tail = s.rpartition(":")
    if sep and head and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*", tail):
        return LoraSpec(Path(head).expanduser(), float(tail))
    return LoraSpec(Path(s).expanduser(), 1.0)


def format_lora(spec: LoraSpec) -> str:
    return f"{spec.path}:{spec.weight:g}"


def _check_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"the {what} {path.name} does not exist ({path.parent})")
    if path.is_file() and path.suffix.lower() in PICKLE_EXTS:
        raise UserError(f"{path.name} is a pickle file ({path.suffix}): loading it could run "
                        f"code hidden in it, so only .safetensors {what}s are read. Download the "
                        ".safetensors version")
    if path.is_file() and path.suffix.lower() != SAFE_EXT:
        raise UserError(f"{path.name} is not a .safetensors {what}")
    return path


@dataclass
class Applied:
    """What a generation used, for its PNG parameters."""

    loras: list[tuple[str, float, str]] = field(default_factory=list)  # name, weight, hash
    embeddings: list[tuple[str, str]] = field(default_factory=list)  # trigger, hash
    vae: tuple[str, str] | None = None  # file name, hash

    def infotext(self, prompt: str, negative: str) -> dict[str, str]:
        """A1111's fields: LoRA and TI hashes (only embeddings the prompts use), VAE."""
        out: dict[str, str] = {}
        if self.loras:
            out["Lora hashes"] = ", ".join(f"{n}: {h}" for n, _w, h in self.loras)
        text = f"{prompt}\n{negative}"
        used = [(t, h) for t, h in self.embeddings
                if re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", text)]
        if used:
            out["TI hashes"] = ", ".join(f"{t}: {h}" for t, h in used)
        if self.vae is not None:
            out["VAE hash"] = self.vae[1]
            out["VAE"] = self.vae[0]
        return out


@dataclass
class Extras:
    """What has been loaded into one cached pipeline."""

    loras: dict[tuple[str, int], str] = field(default_factory=dict)  # (path, mtime) -> adapter
    embeddings: dict[str, tuple[str, int]] = field(default_factory=dict)  # trigger -> file
    vae: tuple[str, int] | None = None
    original_vae: Any = None


def extras(lm: LoadedModel) -> Extras:
    found = lm.derived.get("extras")
    if not isinstance(found, Extras):
        found = Extras()
        lm.derived["extras"] = found
    return found


def _stamp(path: Path) -> tuple[str, int]:
    return str(path.resolve()), path.stat().st_mtime_ns


def _pipes(lm: LoadedModel) -> list[Any]:
    return [lm.pipe] + [p for k, p in lm.derived.items() if k in ("img2img", "inpaint")]


# ----------------------------------------------------------------------------------------------
# LoRA
# ----------------------------------------------------------------------------------------------
def apply_loras(lm: LoadedModel, loras: list[LoraSpec], log: Any = None
                ) -> list[tuple[str, float, str]]:
    """Load the LoRAs not loaded yet and activate exactly ``loras`` with their weights (none:
    LoRAs are switched off). Returns (name, weight, hash) of each."""
    pipe = lm.pipe
    state = extras(lm)
    if loras and not hasattr(pipe, "load_lora_weights"):
        raise UserError(f"{lm.info.pipeline_class} models take no LoRA")
    merged: dict[Path, float] = {}
    for spec in loras:
        path = _check_file(spec.path, "LoRA")
        merged[path] = merged.get(path, 0.0) + spec.weight  # the same file twice adds up
    names, weights, out = [], [], []
    for path, weight in merged.items():
        key = _stamp(path)
        adapter = state.loras.get(key)
        if adapter is None:
            adapter = f"lora_{len(state.loras)}"
            if log:
                log(f"loading LoRA {path.name}")
            try:
                load_lora(pipe, path, adapter)
            except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
                raise UserError(f"{path.name} could not be loaded as a LoRA for "
                                f"{lm.info.name} ({_first_line(exc)}): is it made for this "
                                "kind of model (SD 1.x, SD 2.x or SDXL)?") from None
            state.loras[key] = adapter
        names.append(adapter)
        weights.append(weight)
        out.append((path.stem, weight, hashes.addnet_hash(path)))
    if state.loras:
        if names:
            pipe.enable_lora()
            pipe.set_adapters(names, adapter_weights=weights)
        else:
            pipe.disable_lora()
    return out


def load_lora(pipe: Any, path: Path, adapter: str) -> None:
    """Load one LoRA file as adapter ``adapter``: diffusers reads and converts it (kohya/A1111,
    diffusers or PEFT layouts) and loads the UNet part; the text-encoder part is injected with
    PEFT directly. (diffusers hands text encoders to transformers' ``load_adapter``, which
    refuses the installed PEFT: transformers 5 asks for a PEFT release that does not exist yet.
    The injected layers are the same PEFT LoRA layers, so ``set_adapters``/``disable_lora``
    treat them as diffusers' own.)"""
    state, alphas, metadata = pipe.lora_state_dict(
        str(path.parent), weight_name=path.name, local_files_only=True,
        return_lora_metadata=True)
    unet_part = {k: v for k, v in state.items() if k.startswith("unet.")}
    if not unet_part and not any(k.startswith("text_encoder") for k in state):
        raise ValueError("no LoRA weights for the UNet or the text encoder in it")
    if unet_part:
        pipe.load_lora_into_unet(unet_part, network_alphas=alphas, unet=pipe.unet,
                                 adapter_name=adapter, _pipeline=pipe, metadata=metadata)
    for prefix in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, prefix, None)
        part = {k: v for k, v in state.items() if k.startswith(prefix + ".")}
        if encoder is not None and part:
            _inject_text_encoder(encoder, part, alphas, prefix, adapter)


def _inject_text_encoder(encoder: Any, state: dict[str, Any], alphas: Any, prefix: str,
                         adapter: str) -> None:
    """diffusers' ``_load_lora_into_text_encoder`` with PEFT's own injection."""
    from diffusers.utils.peft_utils import _create_lora_config
    from diffusers.utils.state_dict_utils import (
        StateDictType,
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
    )
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    sd = {k.removeprefix(f"{prefix}."): v for k, v in state.items()}
    if not any(".lora_A." in k for k in sd):  # already PEFT's layout: nothing to convert
        # diffusers guesses the old layout from an out-projection key, which a LoRA on q and
        # v only lacks: name it
        if any(re.search(r"\.to_(q|k|v|out)_lora\.", k) for k in sd):
            sd = convert_state_dict_to_diffusers(sd, original_type=StateDictType.DIFFUSERS_OLD)
        sd = convert_state_dict_to_peft(sd)
    if not hasattr(encoder, "text_model"):  # transformers 5 flattened CLIPTextModel
        sd = {k.removeprefix("text_model."): v for k, v in sd.items()}
    rank = {}
    for name, _ in encoder.named_modules():
        key = f"{name}.lora_B.weight"
        if name.endswith((".q_proj", ".k_proj", ".v_proj", ".out_proj", ".fc1", ".fc2")) \
                and key in sd:
            rank[key] = sd[key].shape[1]
    if alphas:
        alphas = {k.removeprefix(f"{prefix}."): v for k, v in alphas.items()
                  if k.split(".")[0] == prefix}
    config = _create_lora_config(sd, alphas or None, None, rank, is_unet=False)
    before = dict(getattr(encoder, "peft_config", None) or {})
    import warnings

    with warnings.catch_warnings():  # several adapters in one encoder is what is wanted here
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(config, encoder, adapter_name=adapter)
    result = set_peft_model_state_dict(encoder, sd, adapter_name=adapter)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) or [] if ".lora_" in k]
    if unexpected:
        raise ValueError(f"{len(unexpected)} text-encoder LoRA tensors fit no layer "
                         f"({unexpected[0]})")
    encoder.peft_config = {**before, adapter: config}
    encoder.to(device=encoder.device, dtype=encoder.dtype)


# ----------------------------------------------------------------------------------------------
# Textual inversion
# ----------------------------------------------------------------------------------------------
def apply_embeddings(lm: LoadedModel, files: list[Path], log: Any = None
                     ) -> list[tuple[str, str]]:
    """Load each embedding under its file name as trigger word (kept loaded: the trigger only
    acts where a prompt uses it). Returns (trigger, hash) of each."""
    pipe = lm.pipe
    if files and not hasattr(pipe, "load_textual_inversion"):
        raise UserError(f"{lm.info.pipeline_class} models take no textual-inversion embeddings")
    state = extras(lm)
    out = []
    for f in files:
        path = _check_file(Path(f), "embedding")
        trigger = path.stem
        key = _stamp(path)
        if state.embeddings.get(trigger) != key:
            if trigger in state.embeddings:  # another file of the same name: replace it
                _unload_embedding(pipe, trigger)
            if log:
                log(f"loading embedding {path.name} as '{trigger}'")
            _load_embedding(pipe, path, trigger)
            state.embeddings[trigger] = key
        out.append((trigger, hashes.ti_hash(path)))
    return out


def _unload_embedding(pipe: Any, trigger: str) -> None:
    """Take out every token of ``trigger`` (a vector per token: ``name``, ``name_1``, ...)
    from each tokenizer and text encoder that has them."""
    pattern = re.compile(rf"{re.escape(trigger)}(_\d+)?")
    for tok_name, enc_name in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")):
        tokenizer, encoder = getattr(pipe, tok_name, None), getattr(pipe, enc_name, None)
        if tokenizer is None or encoder is None:
            continue
        tokens = [t for t in tokenizer.get_added_vocab() if pattern.fullmatch(t)]
        if tokens:
            pipe.unload_textual_inversion(tokens, tokenizer=tokenizer, text_encoder=encoder)


def _load_embedding(pipe: Any, path: Path, trigger: str) -> None:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise UserError(f"{path.name} is not a readable safetensors file "
                        f"({_first_line(exc)})") from None
    try:
        if getattr(pipe, "text_encoder_2", None) is not None:
            if not {"clip_l", "clip_g"} <= set(tensors):
                raise UserError(f"{path.name} is not an SDXL embedding (it needs clip_l and "
                                "clip_g vectors): use an embedding made for SDXL")
            pipe.load_textual_inversion(tensors["clip_l"], token=trigger,
                                        text_encoder=pipe.text_encoder,
                                        tokenizer=pipe.tokenizer)
            pipe.load_textual_inversion(tensors["clip_g"], token=trigger,
                                        text_encoder=pipe.text_encoder_2,
                                        tokenizer=pipe.tokenizer_2)
        else:
            pipe.load_textual_inversion(str(path), token=trigger)
    except UserError:
        raise
    except (ValueError, KeyError, RuntimeError, TypeError, OSError) as exc:
        text = _first_line(exc)
        if "already in tokenizer vocabulary" in text:
            raise UserError(f"the embedding's trigger '{trigger}' (its file name) is already a "
                            "word the model knows: rename the file to a word of its own") from None
        raise UserError(f"{path.name} could not be loaded as an embedding ({text}): is it "
                        "made for this kind of model?") from None


# ----------------------------------------------------------------------------------------------
# VAE
# ----------------------------------------------------------------------------------------------
def apply_vae(lm: LoadedModel, vae: Path | None, log: Any = None) -> tuple[str, str] | None:
    """Use ``vae`` (a .safetensors file or a diffusers folder) instead of the model's own; None
    puts the model's own back. Returns (file name, hash) of the one used."""
    state = extras(lm)
    pipe = lm.pipe
    if vae is None:
        if state.vae is not None:
            for p in _pipes(lm):
                p.vae = state.original_vae
            state.vae = None
        return None
    path = Path(vae).expanduser()
    if not path.exists():
        raise UserError(f"the VAE {path.name} does not exist ({path.parent})")
    if getattr(pipe, "vae", None) is None:
        raise UserError(f"{lm.info.pipeline_class} models have no VAE to replace")
    key = _stamp(path)
    if state.vae != key:
        if log:
            log(f"loading VAE {path.name}")
        new = _read_vae(path, state.original_vae or pipe.vae)
        new.to(device=lm.device, dtype=pipe.vae.dtype)
        if state.original_vae is None:
            state.original_vae = pipe.vae
        for p in _pipes(lm):
            p.vae = new
        state.vae = key
    weights = path if path.is_file() else hashes.model_file_of_vae(path)
    return path.name, hashes.autov2(weights) if weights else ""


def _read_vae(path: Path, current: Any) -> Any:
    import tempfile

    from diffusers import AutoencoderKL

    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"{path.name} is not a VAE folder (no config.json)")
        try:
            return AutoencoderKL.from_pretrained(str(path), use_safetensors=True,
                                                 local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"could not load the VAE in {path.name}: "
                            f"{_first_line(exc)}") from None
    _check_file(path, "VAE")
    from studio.models import safetensors_keys

    keys, _meta = safetensors_keys(path)
    try:
        if any(k.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for k in keys):
            # diffusers' own layout: the model's VAE configuration with these tensors
            from safetensors.torch import load_file

            vae = AutoencoderKL.from_config(current.config)
            missing, unexpected = vae.load_state_dict(load_file(str(path)), strict=False)
            if missing or unexpected:
                raise UserError(f"{path.name} does not fit this model's VAE ("
                                f"{len(missing)} missing and {len(unexpected)} unexpected "
                                "tensors): it is made for another kind of model")
            return vae
        with tempfile.TemporaryDirectory() as tmp:
            current.save_config(tmp)
            return AutoencoderKL.from_single_file(str(path), config=tmp, local_files_only=True)
    except UserError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{path.name} could not be loaded as a VAE for this model "
                        f"({_first_line(exc)})") from None


# ----------------------------------------------------------------------------------------------
# Finding files by name in the model library
# ----------------------------------------------------------------------------------------------
def library_finders(library: Any, also: list[Path] = ()  # type: ignore[assignment]
                    ) -> tuple[Any, Any]:
    """``(find_lora(name), find_embeddings(text))`` over the model library's LoRAs and
    embeddings (and the files in ``also``): A1111 finds a ``<lora:name>`` by its file name,
    and loads every embedding whose file name the prompt uses as a word."""

    def entries(kind: str, refresh: bool = False) -> list[Path]:
        try:
            found = [e.path for e in library.scan([kind], refresh=refresh)] \
                if library is not None else []
        except OSError:
            found = []
        return [Path(p) for p in also] + found

    def find_lora(name: str) -> Path | None:
        want = name.strip().lower()
        for refresh in (False, True):  # a file added a moment ago: look again once
            for path in entries("lora", refresh):
                if path.stem.lower() == want or path.name.lower() == want:
                    return path
        return None

    def find_embeddings(text: str) -> list[Path]:
        out = []
        for path in entries("embedding"):
            if path.suffix.lower() == SAFE_EXT and re.search(
                    rf"(?<![\w-]){re.escape(path.stem)}(?![\w-])", text):
                out.append(path)
        return out

    return find_lora, find_embeddings
