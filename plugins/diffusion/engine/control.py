"""ControlNet: guide a Stable Diffusion model with an edge map (canny) or a drawn scribble.

The user's ControlNet weights come from the model library: a diffusers folder
(``config.json`` with ``ControlNetModel``) or one ``.safetensors`` file, in diffusers' layout or
the original one (``control_model.…`` tensors, what model sites ship). A single file has no
configuration; a ControlNet mirrors its base model's UNet encoder, so the configuration is taken
from the loaded model's UNet (``ControlNetModel.from_unet``, built on the meta device: no
weights allocated twice) and the original layout is converted with diffusers' own converter.
No file is downloaded and nothing is read with pickle.

The pipelines are diffusers' ControlNet variants of the loaded one (SD 1.x/2.x and SDXL;
txt2img, img2img, inpainting) made with ``AutoPipeline…from_pipe(pipe, controlnet=…)``, which
shares every weight with the loaded model, so LoRAs and a swapped VAE apply to them too.

Edges are computed here (:func:`canny`: OpenCV when installed, else a numpy/scipy Canny on
OpenCV's gradient scale, so A1111's thresholds mean the same); a scribble is the
user's layer, made white-on-black as ControlNet scribble models expect (:func:`scribble`).

What was used is recorded as A1111's ControlNet extension does::

    ControlNet 0: "Module: canny, Model: control_sd15_canny [fef5e48e], Weight: 1, ..."
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import UserError

from . import hashes
from .loading import PICKLE_EXTS, SAFE_EXT, LoadedModel, _first_line

KINDS = ("canny", "scribble")
#: A1111's preprocessor names for ours: a scribble drawn dark on light is inverted first
_MODULES = {"canny": "canny", "scribble": "none"}
_CONTROL_KEY = "ControlNet 0"


@dataclass
class ControlSpec:
    """One ControlNet unit: the model, the picture it follows and how strongly."""

    model: Path
    image: np.ndarray  # uint8 RGB: the source (canny) or the scribble itself
    kind: str = "canny"
    scale: float = 1.0
    low: int = 100  # canny thresholds (A1111's defaults)
    high: int = 200
    start: float = 0.0  # share of the steps where the control starts / ends
    end: float = 1.0


def check(spec: ControlSpec) -> None:
    if spec.kind not in KINDS:
        raise UserError(f"unknown control {spec.kind!r}: choose {' or '.join(KINDS)}")
    if not 0.0 <= spec.scale <= 2.0:
        raise UserError(f"the control strength must be between 0 and 2, not {spec.scale:g}")
    if not 0 <= spec.low <= spec.high <= 255:
        raise UserError(f"canny thresholds must be 0 <= low <= high <= 255, not "
                        f"{spec.low}/{spec.high}")
    if not 0.0 <= spec.start < spec.end <= 1.0:
        raise UserError("the control must start before it ends (shares of the steps, 0 to 1)")
    if spec.image is None or spec.image.ndim != 3:
        raise UserError("the control needs an image (an RGB picture or a layer)")


# ----------------------------------------------------------------------------------------------
# Preprocessors
# ----------------------------------------------------------------------------------------------
def canny(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of ``image`` (uint8 RGB or gray) as uint8 RGB, white on black.

    OpenCV's ``cv2.Canny`` when installed (what A1111's canny preprocessor calls); otherwise
    the same algorithm here, on OpenCV's scale so the same thresholds give the same edges: 3x3
    Sobel gradients of the unblurred picture, L1 magnitude ``|gx| + |gy|``, non-maximum
    suppression along the gradient direction, hysteresis between ``low`` and ``high``
    (connected components that touch a strong edge)."""
    gray = _gray(image)
    try:
        import cv2  # type: ignore[import-not-found]

        edges = cv2.Canny(gray, low, high)
    except ImportError:
        edges = _canny_numpy(gray, low, high)
    return np.repeat(edges[..., None], 3, axis=-1)


def _gray(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _canny_numpy(gray: np.ndarray, low: float, high: float) -> np.ndarray:
    from scipy import ndimage

    g = gray.astype(np.float32)
    gx = ndimage.sobel(g, axis=1, mode="nearest")
    gy = ndimage.sobel(g, axis=0, mode="nearest")
    mag = np.abs(gx) + np.abs(gy)
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    # neighbours along the gradient: 0, 45, 90, 135 degrees
    pad = np.pad(mag, 1)
    h, w = mag.shape

    def at(dy: int, dx: int) -> np.ndarray:
        return pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    sector = (np.floor((angle + 22.5) / 45.0).astype(int)) % 4
    offsets = [((0, 1), (0, -1)), ((1, 1), (-1, -1)), ((1, 0), (-1, 0)), ((1, -1), (-1, 1))]
    keep = np.zeros_like(mag, dtype=bool)
    for s, (a, b) in enumerate(offsets):
        sel = sector == s
        keep |= sel & (mag >= at(*a)) & (mag >= at(*b))
    thin = np.where(keep, mag, 0.0)
    weak = thin >= low
    strong = thin >= high
    labels, n = ndimage.label(weak, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros_like(gray)
    hit = np.zeros(n + 1, bool)
    hit[np.unique(labels[strong])] = True
    hit[0] = False
    return np.where(hit[labels], 255, 0).astype(np.uint8)


def scribble(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """A drawn scribble as ControlNet scribble models read it: white lines on black. A drawing
    on a light background (dark lines on white, or a transparent layer flattened on white) is
    inverted. Returns the image and whether it was inverted."""
    gray = _gray(image)
    inverted = float(gray.mean()) > 127.0
    if inverted:
        gray = 255 - gray
    return np.repeat(gray[..., None], 3, axis=-1), inverted


def control_image(spec: ControlSpec) -> tuple[np.ndarray, str]:
    """The picture handed to the ControlNet, and A1111's name for the preprocessor used."""
    if spec.kind == "canny":
        return canny(spec.image, spec.low, spec.high), "canny"
    img, inverted = scribble(spec.image)
    return img, "invert" if inverted else _MODULES["scribble"]


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
def _check_path(path: Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"the ControlNet {path.name} does not exist ({path.parent})")
    if path.is_file() and path.suffix.lower() in PICKLE_EXTS:
        raise UserError(f"{path.name} is a pickle file ({path.suffix}): loading it could run "
                        "code hidden in it, so only .safetensors ControlNets are read. Download "
                        "the .safetensors version")
    if path.is_file() and path.suffix.lower() != SAFE_EXT:
        raise UserError(f"{path.name} is not a .safetensors ControlNet")
    if path.is_dir() and not (path / "config.json").is_file():
        raise UserError(f"{path.name} is not a ControlNet folder (no config.json)")
    return path


def load_controlnet(lm: LoadedModel, path: Path, log: Any = None) -> Any:
    """The ControlNet at ``path`` for the loaded model, cached on it (one at a time)."""
    path = _check_path(path)
    if lm.kind != "text" or getattr(lm.pipe, "unet", None) is None:
        raise UserError(f"{lm.info.name} is not a Stable Diffusion model: ControlNets guide "
                        "SD 1.x, SD 2.x and SDXL models")
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    cached = lm.derived.get("controlnet")
    if cached is not None and cached[0] == key:
        return cached[1]
    if log:
        log(f"loading ControlNet {path.name}")
    try:
        net = _read(path, lm.pipe.unet)
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise UserError(f"{path.name} could not be read as a ControlNet for {lm.info.name}: "
                        f"{_first_line(exc)}") from None
    net.to(device=lm.device, dtype=lm.dtype).eval()
    lm.derived["controlnet"] = (key, net)
    return net


def _read(path: Path, unet: Any) -> Any:
    import torch
    from diffusers import ControlNetModel

    if path.is_dir():
        return ControlNetModel.from_pretrained(str(path), local_files_only=True)
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    from safetensors.torch import load_file

    state = load_file(str(path))
    with torch.device("meta"):
        net = ControlNetModel.from_unet(unet, load_weights_from_unet=False,
                                        **_embedding_channels(state))
    if not any(k.startswith("controlnet_cond_embedding.") for k in state):
        state = convert_controlnet_checkpoint(state, dict(net.config))
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        what = "has other layers" if missing else "has other sizes"
        raise UserError(f"{path.name} {what} than a ControlNet for this model ({len(missing)} "
                        f"missing, {len(wrong)} of another size): it was made for another base "
                        "model (SD 1.x, SD 2.x and SDXL ControlNets do not mix)")
    net.load_state_dict({k: state[k] for k in own}, assign=True)
    return net


def _embedding_channels(state: dict[str, Any]) -> dict[str, Any]:
    """A diffusers-layout file's conditioning-embedding widths (its hint encoder: original
    files all have SD's, 16-32-96-256, which is the default)."""
    first = state.get("controlnet_cond_embedding.conv_in.weight")
    if first is None:
        return {}
    chans = [int(first.shape[0])]
    i = 1
    while f"controlnet_cond_embedding.blocks.{i}.weight" in state:
        chans.append(int(state[f"controlnet_cond_embedding.blocks.{i}.weight"].shape[0]))
        i += 2
    return {"conditioning_embedding_out_channels": tuple(chans)}


def pipeline(lm: LoadedModel, mode: str, net: Any) -> Any:
    """The ControlNet variant of the loaded pipeline for ``mode`` (sharing its weights)."""
    from diffusers import (
        AutoPipelineForImage2Image,
        AutoPipelineForInpainting,
        AutoPipelineForText2Image,
    )

    auto = {"txt2img": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image}.get(
        mode, AutoPipelineForInpainting)
    try:
        pipe = auto.from_pipe(lm.pipe, controlnet=net)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{lm.info.pipeline_class} has no ControlNet {mode} variant in "
                        f"diffusers ({_first_line(exc)})") from None
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe


def model_label(path: Path) -> str:
    """``name [hash]`` as A1111's ControlNet extension names a model (8 hex digits)."""
    path = Path(path)
    weights = path if path.is_file() else hashes.model_file_of_vae(path)
    short = hashes.autov2(weights)[:8] if weights else ""
    name = path.stem if path.is_file() else path.name
    return f"{name} [{short}]" if short else name


# ----------------------------------------------------------------------------------------------
# The A1111 record
# ----------------------------------------------------------------------------------------------
def infotext(spec: ControlSpec, module: str) -> dict[str, str]:
    """The ``ControlNet 0`` field, in the extension's order and words."""
    parts = [("Module", module), ("Model", model_label(spec.model)),
             ("Weight", _num(spec.scale)), ("Resize Mode", "Just Resize"),
             ("Low Vram", "False")]
    if spec.kind == "canny":
        parts += [("Threshold A", _num(spec.low)), ("Threshold B", _num(spec.high))]
    parts += [("Guidance Start", _num(spec.start)), ("Guidance End", _num(spec.end)),
              ("Pixel Perfect", "False"), ("Control Mode", "Balanced")]
    return {_CONTROL_KEY: ", ".join(f"{k}: {v}" for k, v in parts)}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass
class ControlRecord:
    """A ``ControlNet N`` field read back."""

    kind: str  # "canny" or "scribble"
    module: str
    model: str  # the name, without the hash
    model_hash: str
    scale: float
    low: int = 100
    high: int = 200
    start: float = 0.0
    end: float = 1.0


def read_control(extra: dict[str, str]) -> ControlRecord | None:
    """The first ControlNet unit an A1111 text records (ours or the extension's), or None."""
    text = extra.get(_CONTROL_KEY)
    if not text:
        return None
    fields: dict[str, str] = {}
    for part in text.split(", "):
        k, sep, v = part.partition(": ")
        if sep:
            fields[k.strip()] = v.strip()
    model = fields.get("Model", "")
    name, _, tail = model.partition(" [")
    module = fields.get("Module", "none")

    def num(key: str, default: float) -> float:
        try:
            return float(fields.get(key, default))
        except ValueError:
            return default

    return ControlRecord(kind="canny" if module.startswith("canny") else "scribble",
                         module=module, model=name.strip(), model_hash=tail.rstrip("]"),
                         scale=num("Weight", 1.0), low=int(num("Threshold A", 100)),
                         high=int(num("Threshold B", 200)), start=num("Guidance Start", 0.0),
                         end=num("Guidance End", 1.0))
