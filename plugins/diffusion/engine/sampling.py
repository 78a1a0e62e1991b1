"""The denoising loop for pixel-space models (diffusers ``UNet2DModel``), written out so that it
can preview, cancel, start from an image (img2img) and keep the unmasked part of an image
(RePaint-style inpainting) with any of the six schedulers.

It is the loop of ``DDPMPipeline`` plus three cheap things per step: ``check()`` (Cancel lands
within one step), a lazily computed predicted-x0 for the preview, and, when a mask is given, the
known region re-noised to the next timestep and pasted back (the same blending diffusers'
inpainting pipelines do for 4-channel UNets). ``bench/diffusion_speed.py`` holds it to the
plain pipeline's speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from studio.errors import UserError

from .preview import predict_x0

StepCallback = Callable[[int, int, Callable[[], Any]], None]


def plan_timesteps(scheduler: Any, steps: int, strength: float, device: Any) -> tuple[Any, int]:
    """Set the scheduler up for ``steps`` and return the timesteps to run, skipping the first
    ``1 - strength`` of them for img2img (diffusers' own rule, so results match its pipelines)."""
    if steps < 1:
        raise UserError(f"steps must be at least 1, not {steps}")
    if not 0.0 < strength <= 1.0:
        raise UserError(f"strength must be in (0, 1], not {strength}")
    scheduler.set_timesteps(steps, device=device)
    init_steps = min(int(steps * strength), steps)
    t_start = max(steps - init_steps, 0)
    timesteps = scheduler.timesteps[t_start * scheduler.order:]
    if len(timesteps) == 0:
        raise UserError(f"strength {strength} with {steps} steps leaves no denoising step: raise "
                        "the strength or the number of steps")
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * scheduler.order)
    return timesteps, t_start


def denoise(
    model: Callable[[Any, Any], Any],
    scheduler: Any,
    *,
    shape: tuple[int, ...],
    generators: list[Any],
    steps: int,
    device: Any,
    dtype: Any,
    init: Any | None = None,
    strength: float = 1.0,
    mask: Any | None = None,
    check: Callable[[], None] | None = None,
    on_step: StepCallback | None = None,
) -> Any:
    """Run the reverse process; returns the final sample (model space, roughly [-1, 1]).

    Args:
        model: ``model(x, t) -> prediction`` (noise, v or x0, as the scheduler's config says).
        shape: ``(N, C, H, W)``.
        generators: one ``torch.Generator`` per image (image ``i`` uses seed ``seed + i``).
        init: ``(N, C, H, W)`` starting image for img2img / inpainting, in [-1, 1].
        strength: how much of the schedule to run from ``init`` (1.0: from pure noise).
        mask: ``(N, 1, H, W)`` in [0, 1], 1 where new content is generated; needs ``init``.
        check: raises to cancel; called before every step.
        on_step: ``on_step(i, total, x0)`` after every step; ``x0()`` computes the prediction.
    """
    from diffusers.utils.torch_utils import randn_tensor

    if mask is not None and init is None:
        raise ValueError("a mask needs an init image")
    use_init = init is not None and (strength < 1.0 or mask is not None)
    timesteps, _ = plan_timesteps(scheduler, steps, strength if use_init else 1.0, device)
    noise = randn_tensor(shape, generator=generators, device=device, dtype=dtype)
    if init is not None and strength < 1.0:
        x = scheduler.add_noise(init, noise, timesteps[:1].repeat(shape[0]))
    else:
        x = noise * scheduler.init_noise_sigma
    total = len(timesteps)
    step_kwargs = {"generator": generators} if _takes_generator(scheduler) else {}
    for i, t in enumerate(timesteps):
        if check is not None:
            check()
        model_in = scheduler.scale_model_input(x, t)
        out = model(model_in, t)
        x = scheduler.step(out, t, x, **step_kwargs).prev_sample
        if mask is not None:
            if i + 1 < total:
                known = scheduler.add_noise(init, noise, timesteps[i + 1:i + 2].repeat(shape[0]))
            else:
                known = init
            x = mask * x + (1.0 - mask) * known
        if on_step is not None:
            on_step(i, total, lambda mi=model_in, o=out, tt=t: predict_x0(scheduler, mi, o, tt))
    return x


def _takes_generator(scheduler: Any) -> bool:
    """Stochastic schedulers (DDPM, Euler ancestral) take the generators; UniPC refuses the
    keyword."""
    import inspect

    return "generator" in inspect.signature(scheduler.step).parameters


def make_generators(seed: int, n: int) -> list[Any]:
    """CPU generators seeded ``seed, seed+1, ...``: the same seed gives the same image on every
    device (noise is drawn on the CPU and moved), as in A1111."""
    import torch

    return [torch.Generator(device="cpu").manual_seed(int(seed) + i) for i in range(n)]
