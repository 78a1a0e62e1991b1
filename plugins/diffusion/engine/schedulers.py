"""Samplers and sigma schedules by the names AUTOMATIC1111 gives them, both ways.

A sampler setting is one string in A1111's older combined spelling, ``"DPM++ 2M Karras"``: the
sampler (``DPM++ 2M``) and, optionally, the schedule (``Karras``). :func:`split` takes it apart,
:func:`canonical` puts it back in the canonical spelling, and :func:`make_scheduler` builds the
diffusers scheduler, with the schedule as diffusers' own switches (``use_karras_sigmas``,
``use_exponential_sigmas``, ``use_beta_sigmas``, ``timestep_spacing="trailing"`` for "SGM
Uniform"). Accepted spellings also include the studio's older keys (``dpm++``, ``euler-a``),
ComfyUI's (``dpmpp_2m`` with scheduler ``karras``) and InvokeAI's (``dpmpp_2m_k``), so other
tools' PNGs map onto the same samplers.

Every scheduler is created with ``from_config(model_scheduler.config)`` so the model's training
choices (beta schedule, prediction type, timestep spacing for SD-Turbo-like models) carry over;
only the solving algorithm and the schedule change. A sampler diffusers does not have (DPM++ 2S
a, DPM fast, Restart) or a schedule a sampler cannot use (Karras for DDIM) is refused with a
message naming what would work, never silently replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.errors import UserError


@dataclass(frozen=True)
class Sampler:
    """One A1111 sampler as a diffusers scheduler class plus the config that makes it so."""

    cls: str
    config: dict[str, Any] = field(default_factory=dict)
    schedules: bool = True  # takes the sigma schedules (Karras, exponential, beta)


#: A1111's sampler names (the ``Sampler:`` field) -> the diffusers scheduler that implements it
#: (the correspondence diffusers documents in its scheduler overview)
SAMPLERS: dict[str, Sampler] = {
    "DPM++ 2M": Sampler("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ SDE": Sampler("DPMSolverSDEScheduler"),
    "DPM++ 2M SDE": Sampler("DPMSolverMultistepScheduler",
                            {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "DPM++ 2M SDE Heun": Sampler("DPMSolverMultistepScheduler",
                                 {"algorithm_type": "sde-dpmsolver++", "solver_order": 2,
                                  "solver_type": "heun"}),
    "DPM++ 3M SDE": Sampler("DPMSolverMultistepScheduler",
                            {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    "Euler a": Sampler("EulerAncestralDiscreteScheduler", schedules=False),
    "Euler": Sampler("EulerDiscreteScheduler"),
    "LMS": Sampler("LMSDiscreteScheduler"),
    "Heun": Sampler("HeunDiscreteScheduler"),
    "DPM2": Sampler("KDPM2DiscreteScheduler"),
    "DPM2 a": Sampler("KDPM2AncestralDiscreteScheduler"),
    "UniPC": Sampler("UniPCMultistepScheduler", {"solver_order": 2}),
    "DDIM": Sampler("DDIMScheduler", schedules=False),
    "PLMS": Sampler("PNDMScheduler", {"skip_prk_steps": True}, schedules=False),
    "LCM": Sampler("LCMScheduler", schedules=False),
    "DDPM": Sampler("DDPMScheduler", schedules=False),
}

#: A1111's schedule types (the ``Schedule type:`` field) -> diffusers config switches.
#: "Automatic" keeps the model's own spacing.
SCHEDULES: dict[str, dict[str, Any]] = {
    "Automatic": {},
    "Uniform": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "Beta": {"use_beta_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
}
_SIGMA_SCHEDULES = ("Karras", "Exponential", "Beta")

#: the six samplers tests run end to end on real models (one per family of solver)
SCHEDULER_NAMES: tuple[str, ...] = ("DDPM", "DDIM", "DPM++ 2M", "Euler", "Euler a", "UniPC")

#: what the editor's sampler list offers first (any other valid combination can be typed)
SUGGESTIONS: tuple[str, ...] = (
    "DPM++ 2M Karras", "DPM++ 2M", "DPM++ SDE Karras", "DPM++ 2M SDE Karras", "DPM++ 2M SDE",
    "DPM++ 2M SDE Exponential", "DPM++ 3M SDE Exponential", "Euler a", "Euler",
    "Euler Karras", "Heun", "LMS", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "UniPC",
    "DDIM", "PLMS", "LCM", "DDPM")

# other spellings of the samplers: the studio's older keys, ComfyUI's and InvokeAI's names
_ALIASES: dict[str, str] = {
    "dpm++": "DPM++ 2M", "dpmpp": "DPM++ 2M", "dpm-solver++": "DPM++ 2M",
    "dpmsolver++": "DPM++ 2M", "dpmpp_2m": "DPM++ 2M", "dpmpp-2m": "DPM++ 2M",
    "dpmpp_sde": "DPM++ SDE", "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m_sde": "DPM++ 2M SDE", "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE", "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "euler-a": "Euler a", "euler_a": "Euler a", "euler a": "Euler a",
    "euler_ancestral": "Euler a", "euler-ancestral": "Euler a", "k_euler_a": "Euler a",
    "k_euler": "Euler", "lms": "LMS", "k_lms": "LMS", "heun": "Heun", "k_heun": "Heun",
    "dpm_2": "DPM2", "kdpm_2": "DPM2", "k_dpm_2": "DPM2", "dpm_2_ancestral": "DPM2 a",
    "kdpm_2_a": "DPM2 a", "k_dpm_2_a": "DPM2 a", "uni_pc": "UniPC", "uni-pc": "UniPC",
    "unipc": "UniPC", "ddim": "DDIM", "pndm": "PLMS", "plms": "PLMS", "lcm": "LCM",
    "ddpm": "DDPM", "euler": "Euler",
}
_SCHEDULE_ALIASES: dict[str, str] = {
    "automatic": "Automatic", "normal": "Automatic", "default": "Automatic", "": "Automatic",
    "uniform": "Uniform", "simple": "Uniform", "karras": "Karras", "k": "Karras",
    "exponential": "Exponential", "beta": "Beta", "sgm uniform": "SGM Uniform",
    "sgm_uniform": "SGM Uniform",
}


def _sampler_of(text: str) -> str | None:
    s = text.strip()
    for name in SAMPLERS:
        if s.lower() == name.lower():
            return name
    return _ALIASES.get(s.lower().replace(" ", "_")) or _ALIASES.get(s.lower())


def schedule_of(text: str) -> str:
    """A1111's name of a schedule written any of the accepted ways (raises on others)."""
    found = _SCHEDULE_ALIASES.get(text.strip().lower())
    if found is None:
        raise UserError(f"unknown schedule {text!r}: choose {', '.join(SCHEDULES)}")
    return found


def split(name: str) -> tuple[str, str]:
    """``"DPM++ 2M Karras"`` -> ``("DPM++ 2M", "Karras")``; a name without a schedule gets
    ``"Automatic"``. Raises :class:`UserError` naming the samplers for an unknown name."""
    text = " ".join(str(name).split())
    sampler = _sampler_of(text)
    if sampler is not None:
        return sampler, "Automatic"
    low = text.lower()
    # InvokeAI writes Karras as a "_k" suffix (dpmpp_2m_k)
    if low.endswith("_k") and _sampler_of(text[:-2]):
        return str(_sampler_of(text[:-2])), "Karras"
    for sched in sorted(SCHEDULES, key=len, reverse=True):
        if low.endswith(" " + sched.lower()):
            sampler = _sampler_of(text[: -len(sched) - 1])
            if sampler is not None:
                return sampler, sched
    raise UserError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}, "
                    f"optionally followed by a schedule ({', '.join(_SIGMA_SCHEDULES)}, "
                    "SGM Uniform), e.g. 'DPM++ 2M Karras'")


def join(sampler: str, schedule: str = "Automatic") -> str:
    """The combined spelling: ``join("DPM++ 2M", "Karras") == "DPM++ 2M Karras"``."""
    return sampler if schedule in ("Automatic", "") else f"{sampler} {schedule}"


def canonical(name: str) -> str:
    """``name`` in the canonical combined spelling, checked (``"euler-a"`` -> ``"Euler a"``,
    ``"dpmpp_2m_k"`` -> ``"DPM++ 2M Karras"``)."""
    sampler, schedule = split(name)
    check(sampler, schedule)
    return join(sampler, schedule)


def normalise(name: str) -> str:
    """Kept for callers of the older API: the canonical spelling of ``name``."""
    return canonical(name)


def check(sampler: str, schedule: str) -> None:
    """Refuse a schedule the sampler cannot use, naming what would work."""
    if schedule in _SIGMA_SCHEDULES and not SAMPLERS[sampler].schedules:
        able = ", ".join(n for n, s in SAMPLERS.items() if s.schedules)
        raise UserError(f"{sampler} has no {schedule} schedule here (diffusers' {sampler} "
                        f"sampler takes none): choose {sampler} alone, or a sampler that "
                        f"takes it: {able}")


def make_scheduler(name: str, base_config: Any) -> Any:
    """A new scheduler for ``name`` (sampler and schedule) configured like ``base_config`` (a
    scheduler config)."""
    import diffusers

    sampler, schedule = split(name)
    check(sampler, schedule)
    spec = SAMPLERS[sampler]
    if spec.cls == "DPMSolverSDEScheduler":
        _need_torchsde(sampler)
    cls = getattr(diffusers, spec.cls)
    config = dict(base_config)
    extra: dict[str, Any] = dict(spec.config)
    extra |= SCHEDULES[schedule]
    if schedule in _SIGMA_SCHEDULES:
        for other in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
            extra.setdefault(other, False)  # a model config may carry another one
    if config.get("clip_sample") and spec.cls in ("DPMSolverMultistepScheduler",
                                                  "UniPCMultistepScheduler"):
        # The model was trained to make images in [-clip, clip] and its DDPM/DDIM schedulers
        # clip the predicted image; these solvers spell the same clip as thresholding with a
        # ceiling of the clip range (the percentile threshold is floored at 1, so it is a clip).
        extra |= {"thresholding": True,
                  "sample_max_value": float(config.get("clip_sample_range", 1.0))}
    # An SD scheduler config carries PNDM-only keys; ``from_config`` drops unknown keys.
    return cls.from_config(config, **extra)


def _need_torchsde(sampler: str) -> None:
    try:
        import torchsde  # noqa: F401
    except ImportError:
        raise UserError(f"{sampler} needs the torchsde package (pip install torchsde); choose "
                        "DPM++ 2M SDE or another sampler meanwhile") from None


def a1111_fields(name: str) -> list[tuple[str, str]]:
    """The ``Sampler`` and ``Schedule type`` fields A1111 (1.9 and later) writes for ``name``."""
    sampler, schedule = split(name)
    out = [("Sampler", sampler)]
    if schedule != "Automatic":
        out.append(("Schedule type", schedule))
    return out


def from_fields(sampler: str, schedule: str | None) -> str:
    """The combined name from A1111's ``Sampler`` (old: ``DPM++ 2M Karras``; new:
    ``DPM++ 2M``) and ``Schedule type`` fields."""
    base, implied = split(sampler)
    sched = schedule_of(schedule) if schedule else implied
    if implied != "Automatic" and sched == "Automatic":
        sched = implied
    return join(base, sched)
