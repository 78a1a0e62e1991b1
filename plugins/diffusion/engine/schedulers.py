"""The six samplers by their command-line names, built from a model's own scheduler config.

Every scheduler is created with ``from_config(model_scheduler.config)`` so the model's training
choices (beta schedule, prediction type, timestep spacing for SD-Turbo-like models) carry over;
only the solving algorithm changes.
"""

from __future__ import annotations

from typing import Any, Literal

from studio.errors import UserError

SchedulerName = Literal["ddpm", "ddim", "dpm++", "euler", "euler-a", "unipc"]
SCHEDULER_NAMES: tuple[str, ...] = ("ddpm", "ddim", "dpm++", "euler", "euler-a", "unipc")

#: what A1111 calls them (the ``Sampler:`` field of the ``parameters`` text)
A1111_NAMES: dict[str, str] = {
    "ddpm": "DDPM",
    "ddim": "DDIM",
    "dpm++": "DPM++ 2M",
    "euler": "Euler",
    "euler-a": "Euler a",
    "unipc": "UniPC",
}
LABELS: dict[str, str] = {
    "ddpm": "DDPM (ancestral, slow)",
    "ddim": "DDIM",
    "dpm++": "DPM-Solver++ 2M",
    "euler": "Euler",
    "euler-a": "Euler ancestral",
    "unipc": "UniPC",
}

_CLASSES = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def normalise(name: str) -> str:
    """Our name for ``name``: accepts ours (``dpm++``), A1111's (``DPM++ 2M Karras``) and a few
    spellings (``euler_a``, ``dpmpp``, ``dpm-solver++``)."""
    s = name.strip().lower().replace("_", "-")
    if s in _CLASSES:
        return s
    aliases = {"dpmpp": "dpm++", "dpm-solver++": "dpm++", "dpmsolver++": "dpm++",
               "euler a": "euler-a", "euler-ancestral": "euler-a", "uni-pc": "unipc"}
    if s in aliases:
        return aliases[s]
    for ours, theirs in A1111_NAMES.items():
        if s == theirs.lower() or s.startswith(theirs.lower() + " "):
            return ours
    raise UserError(f"unknown scheduler {name!r}: choose {', '.join(SCHEDULER_NAMES)}")


def make_scheduler(name: str, base_config: Any) -> Any:
    """A new scheduler of kind ``name`` configured like ``base_config`` (a scheduler config)."""
    import diffusers

    name = normalise(name)
    cls = getattr(diffusers, _CLASSES[name])
    config = dict(base_config)
    extra: dict[str, Any] = {}
    if name == "dpm++":
        extra = {"algorithm_type": "dpmsolver++", "solver_order": 2}
    elif name == "unipc":
        extra = {"solver_order": 2}
    if config.get("clip_sample") and name in ("dpm++", "unipc"):
        # The model was trained to make images in [-clip, clip] and its DDPM/DDIM schedulers
        # clip the predicted image; these solvers spell the same clip as thresholding with a
        # ceiling of the clip range (the percentile threshold is floored at 1, so it is a clip).
        extra |= {"thresholding": True,
                  "sample_max_value": float(config.get("clip_sample_range", 1.0))}
    # An SD scheduler config carries PNDM-only keys; ``from_config`` drops unknown keys.
    return cls.from_config(config, **extra)
