"""Generation settings from other tools' PNGs, as the studio's own record
(:class:`~.infotext.GenerationParams`), as far as they map.

- **A1111** (and Forge, SD.Next, Fooocus in A1111 mode, Civitai downloads): the ``parameters``
  text chunk (:mod:`.infotext`).
- **ComfyUI**: the ``prompt`` chunk, the executed graph in API form. The sampler node
  (``KSampler``/``KSamplerAdvanced``) gives seed, steps, CFG, sampler and scheduler, denoise; its
  positive and negative inputs lead to the ``CLIPTextEncode`` texts; its model input leads
  through ``LoraLoader`` nodes (each becomes a ``<lora:name:weight>`` tag, as A1111 writes it) to
  the checkpoint; its latent input to the size. A graph with several samplers maps its first
  (ComfyUI's ``workflow`` chunk is the editor layout of the same graph and adds nothing here).
- **InvokeAI**: the ``invokeai_metadata`` chunk (JSON: prompts, seed, steps, ``cfg_scale``,
  scheduler such as ``dpmpp_2m_k``, size, model, LoRAs, VAE, strength).

What does not map (ComfyUI's custom nodes, InvokeAI's regional prompts) is left out; the
fields that do map are enough to make the picture again with the same model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.errors import UserError

from .infotext import PNG_KEY, GenerationParams, parse_parameters
from .schedulers import canonical, from_fields

COMFY_KEY = "prompt"
INVOKE_KEY = "invokeai_metadata"


def _texts(path: Any) -> dict[str, str]:
    from plugins.common.pngmeta import read_png_text

    return read_png_text(path)


def has_generation(path: Any) -> bool:
    """Whether a PNG carries settings any of the readers understands."""
    try:
        texts = _texts(path)
    except (UserError, OSError, ValueError):
        return False
    return any(k in texts for k in (PNG_KEY, COMFY_KEY, INVOKE_KEY))


def read_generation(path: Any) -> GenerationParams:
    """The settings a PNG carries, whichever tool wrote it (raises ``UserError`` when none)."""
    texts = _texts(path)
    name = Path(str(path)).name
    try:
        if texts.get(PNG_KEY):
            return parse_parameters(texts[PNG_KEY])
        if texts.get(INVOKE_KEY):
            return from_invokeai(json.loads(texts[INVOKE_KEY]))
        if texts.get(COMFY_KEY):
            return from_comfyui(json.loads(texts[COMFY_KEY]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UserError(f"{name}: its generation settings cannot be read ({exc})") from None
    raise UserError(f"{name} carries no generation parameters (no A1111 '{PNG_KEY}', "
                    "ComfyUI 'prompt' or InvokeAI metadata)")


def _sampler(sampler: str, schedule: str | None) -> str:
    try:
        return canonical(from_fields(sampler, schedule))
    except UserError:  # kept as written: generating with it says what works instead
        return f"{sampler} {schedule}".strip() if schedule else sampler


def _stem(name: Any) -> str:
    return Path(str(name).replace("\\", "/")).stem if name else ""


def _tag(name: str, weight: float) -> str:
    return f"<lora:{name}:{weight:g}>"


# ----------------------------------------------------------------------------------------------
# ComfyUI
# ----------------------------------------------------------------------------------------------
_SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")


def from_comfyui(graph: dict[str, Any]) -> GenerationParams:
    """The first sampler of a ComfyUI API graph and what feeds it."""
    if not isinstance(graph, dict):
        raise ValueError("the ComfyUI graph is not an object")
    nodes = {str(k): v for k, v in graph.items() if isinstance(v, dict)}
    sampler_id = next((k for k in sorted(nodes, key=_node_order)
                       if nodes[k].get("class_type") in _SAMPLER_NODES), None)
    if sampler_id is None:
        raise ValueError("the ComfyUI graph has no KSampler node")
    inputs = nodes[sampler_id].get("inputs", {})

    def follow(link: Any) -> dict[str, Any] | None:
        if isinstance(link, list) and link:
            return nodes.get(str(link[0]))
        return None

    def text_of(link: Any, depth: int = 0) -> str:
        node = follow(link)
        if node is None or depth > 8:
            return str(link) if isinstance(link, str) else ""
        ins = node.get("inputs", {})
        for key in ("text", "text_g", "string", "value", "positive", "conditioning",
                    "conditioning_1"):
            if key in ins:
                val = ins[key]
                return val if isinstance(val, str) else text_of(val, depth + 1)
        return ""

    p = GenerationParams()
    p.prompt = text_of(inputs.get("positive"))
    p.negative_prompt = text_of(inputs.get("negative"))
    seed = inputs.get("seed", inputs.get("noise_seed"))
    if isinstance(seed, int | float):
        p.seed = int(seed)
    for key, attr, kind in (("steps", "steps", int), ("cfg", "guidance", float)):
        if isinstance(inputs.get(key), int | float):
            setattr(p, attr, kind(inputs[key]))
    p.scheduler = _sampler(str(inputs.get("sampler_name", "euler")),
                           str(inputs.get("scheduler", "normal")))
    denoise = inputs.get("denoise")
    if isinstance(denoise, int | float) and float(denoise) < 1.0:
        p.strength, p.mode = float(denoise), "img2img"
    # the model chain: LoRA loaders down to the checkpoint
    tags: list[str] = []
    node, seen = follow(inputs.get("model")), 0
    while node is not None and seen < 32:
        seen += 1
        ins = node.get("inputs", {})
        cls = str(node.get("class_type", ""))
        if "lora_name" in ins:
            weight = ins.get("strength_model", ins.get("strength", 1.0))
            tags.append(_tag(_stem(ins["lora_name"]), float(weight)))
        if "ckpt_name" in ins:
            p.model = _stem(ins["ckpt_name"])
            break
        if cls.startswith("CheckpointLoader") or "model" not in ins:
            break
        node = follow(ins.get("model"))
    if tags:
        p.prompt = " ".join([p.prompt.strip(), *reversed(tags)]).strip()
    latent = follow(inputs.get("latent_image"))
    if latent is not None:
        ins = latent.get("inputs", {})
        if isinstance(ins.get("width"), int) and isinstance(ins.get("height"), int):
            p.width, p.height = int(ins["width"]), int(ins["height"])
    for node in nodes.values():  # a VAE loaded on its own
        if node.get("class_type") == "VAELoader" and node.get("inputs", {}).get("vae_name"):
            p.extra["VAE"] = Path(str(node["inputs"]["vae_name"])).name
        if node.get("class_type") == "CLIPSetLastLayer":
            layer = node.get("inputs", {}).get("stop_at_clip_layer")
            if isinstance(layer, int) and layer < -1:
                p.extra["Clip skip"] = str(-layer)
    return p


def _node_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


# ----------------------------------------------------------------------------------------------
# InvokeAI
# ----------------------------------------------------------------------------------------------
def from_invokeai(meta: dict[str, Any]) -> GenerationParams:
    """InvokeAI 3.x-5.x ``invokeai_metadata``."""
    if not isinstance(meta, dict):
        raise ValueError("the InvokeAI metadata is not an object")
    p = GenerationParams(prompt=str(meta.get("positive_prompt", "") or ""),
                         negative_prompt=str(meta.get("negative_prompt", "") or ""))
    if isinstance(meta.get("seed"), int | float):
        p.seed = int(meta["seed"])
    if isinstance(meta.get("steps"), int | float):
        p.steps = int(meta["steps"])
    if isinstance(meta.get("cfg_scale"), int | float):
        p.guidance = float(meta["cfg_scale"])
    if meta.get("scheduler"):
        p.scheduler = _sampler(str(meta["scheduler"]), None)
    if isinstance(meta.get("width"), int) and isinstance(meta.get("height"), int):
        p.width, p.height = int(meta["width"]), int(meta["height"])
    model = meta.get("model") or {}
    if isinstance(model, dict):
        p.model = str(model.get("name") or model.get("model_name") or "")
        if model.get("hash"):
            p.extra["Model hash (InvokeAI)"] = str(model["hash"])
    elif isinstance(model, str):
        p.model = model
    tags = []
    for lora in meta.get("loras") or []:
        if not isinstance(lora, dict):
            continue
        ref = lora.get("model") or lora.get("lora") or {}
        name = ref.get("name") or ref.get("model_name") if isinstance(ref, dict) else ref
        if name:
            tags.append(_tag(_stem(name), float(lora.get("weight", 1.0))))
    if tags:
        p.prompt = " ".join([p.prompt.strip(), *tags]).strip()
    vae = meta.get("vae")
    if isinstance(vae, dict) and (vae.get("name") or vae.get("model_name")):
        p.extra["VAE"] = str(vae.get("name") or vae.get("model_name"))
    strength = meta.get("strength", meta.get("denoising_strength"))
    mode = str(meta.get("generation_mode", ""))
    if isinstance(strength, int | float) and ("img2img" in mode or "inpaint" in mode
                                              or (float(strength) < 1.0 and mode != "txt2img")):
        p.strength = float(strength)
        p.mode = "inpaint" if "inpaint" in mode else "img2img"
    if isinstance(meta.get("clip_skip"), int) and meta["clip_skip"] > 0:
        p.extra["Clip skip"] = str(int(meta["clip_skip"]) + 1)
    return p
