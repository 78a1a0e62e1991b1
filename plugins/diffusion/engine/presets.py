"""UNet sizes offered for training, per image size.

The default (``small``) is sized for a laptop CPU: the built-in digits must train to recognisable
samples in about 15 minutes on two cores (``bench/diffusion_digits.py``). Compute in a UNet is
dominated by its full-resolution convolutions, so the presets keep the top level thin and put the
width at 8x8 and below, where a 32 px image's shapes actually live. ``base`` is for a GPU.
"""

from __future__ import annotations

from typing import Any, Literal

from studio.errors import UserError

Preset = Literal["tiny", "small", "base"]
PRESET_NAMES: tuple[str, ...] = ("tiny", "small", "base")

# (channels, attention) per resolution level for 32 px; 64 px adds one thin level on top.
_LEVELS: dict[str, list[tuple[int, bool]]] = {
    "tiny": [(16, False), (32, False)],                                # tests and smoke runs
    "small": [(16, False), (32, False), (64, True), (64, False)],      # CPU default
    "base": [(64, False), (128, True), (256, True), (256, False)],      # GPU
}
_LAYERS = {"tiny": 1, "small": 1, "base": 2}
_TOP_64 = {"tiny": 16, "small": 16, "base": 32}


def unet_config(preset: str, size: int, channels: int) -> dict[str, Any]:
    """The ``UNet2DModel`` keyword arguments for ``preset`` at ``size`` px with ``channels``."""
    if preset not in _LEVELS:
        raise UserError(f"unknown model preset {preset!r}: choose {', '.join(PRESET_NAMES)}")
    if size not in (32, 64):
        raise UserError(f"training size must be 32 or 64 pixels, not {size}")
    if channels not in (1, 3):
        raise UserError(f"images must have 1 or 3 channels, not {channels}")
    levels = list(_LEVELS[preset])
    if size == 64:
        levels.insert(0, (_TOP_64[preset], False))
    down = ["AttnDownBlock2D" if attn else "DownBlock2D" for _, attn in levels]
    up = ["AttnUpBlock2D" if attn else "UpBlock2D" for _, attn in reversed(levels)]
    return {
        "sample_size": size,
        "in_channels": channels,
        "out_channels": channels,
        "layers_per_block": _LAYERS[preset],
        "block_out_channels": tuple(c for c, _ in levels),
        "down_block_types": tuple(down),
        "up_block_types": tuple(up),
        "norm_num_groups": 8,
        "attention_head_dim": 32,
    }


def build_unet(preset: str, size: int, channels: int) -> Any:
    from diffusers import UNet2DModel

    return UNet2DModel(**unet_config(preset, size, channels))
