"""Samplers and schedules by their A1111 names, both ways: every accepted spelling maps to one
diffusers scheduler with the right switches, runs a few steps, and is written back into PNG
parameters the way A1111 (1.9 and later) writes it; the command line takes A1111's names; the
model hash is A1111's AutoV2."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from plugins.diffusion.engine import schedulers as S
from plugins.diffusion.engine.infotext import (
    GenerationParams,
    format_parameters,
    parse_parameters,
)
from studio.errors import UserError

SD_CONFIG = {"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear",
             "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": False,
             "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
             "steps_offset": 1, "prediction_type": "epsilon"}


@pytest.mark.parametrize(("text", "sampler", "schedule"), [
    ("DPM++ 2M Karras", "DPM++ 2M", "Karras"),
    ("DPM++ 2M", "DPM++ 2M", "Automatic"),
    ("dpm++", "DPM++ 2M", "Automatic"),
    ("Euler a", "Euler a", "Automatic"),
    ("euler-a", "Euler a", "Automatic"),
    ("DPM++ SDE Karras", "DPM++ SDE", "Karras"),
    ("DPM++ 2M SDE", "DPM++ 2M SDE", "Automatic"),
    ("DPM++ 2M SDE Exponential", "DPM++ 2M SDE", "Exponential"),
    ("DPM++ 2M SDE Heun Karras", "DPM++ 2M SDE Heun", "Karras"),
    ("Euler SGM Uniform", "Euler", "SGM Uniform"),
    ("dpmpp_2m_k", "DPM++ 2M", "Karras"),  # InvokeAI
    ("euler_ancestral", "Euler a", "Automatic"),  # ComfyUI
    ("uni_pc", "UniPC", "Automatic"),
    ("  lms   karras ", "LMS", "Karras"),
])
def test_names_split_into_sampler_and_schedule(text: str, sampler: str, schedule: str) -> None:
    assert S.split(text) == (sampler, schedule)
    assert S.canonical(text) == S.join(sampler, schedule)


@pytest.mark.parametrize(("name", "cls", "config"), [
    ("DPM++ 2M Karras", "DPMSolverMultistepScheduler",
     {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    ("DPM++ 2M", "DPMSolverMultistepScheduler",
     {"algorithm_type": "dpmsolver++", "use_karras_sigmas": False}),
    ("DPM++ 2M SDE Exponential", "DPMSolverMultistepScheduler",
     {"algorithm_type": "sde-dpmsolver++", "use_exponential_sigmas": True,
      "use_karras_sigmas": False}),
    ("DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler",
     {"algorithm_type": "sde-dpmsolver++", "solver_type": "heun"}),
    ("DPM++ 3M SDE", "DPMSolverMultistepScheduler", {"solver_order": 3}),
    ("DPM++ SDE Karras", "DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    ("Euler a", "EulerAncestralDiscreteScheduler", {}),
    ("Euler Karras", "EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    ("Euler SGM Uniform", "EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    ("Heun Beta", "HeunDiscreteScheduler", {"use_beta_sigmas": True}),
    ("LMS Karras", "LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    ("DPM2 Karras", "KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    ("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    ("UniPC", "UniPCMultistepScheduler", {}),
    ("DDIM", "DDIMScheduler", {}),
    ("PLMS", "PNDMScheduler", {"skip_prk_steps": True}),
    ("LCM", "LCMScheduler", {}),
])
def test_each_name_builds_its_diffusers_scheduler_and_steps(name: str, cls: str,
                                                            config: dict[str, Any]) -> None:
    """The scheduler class and switches, the model's betas kept, and five real steps on a
    stand-in model (finite, and the sigma schedule is the one asked for)."""
    import torch

    s = S.make_scheduler(name, SD_CONFIG)
    assert type(s).__name__ == cls
    for key, value in config.items():
        assert s.config[key] == value, key
    assert s.config.beta_schedule == "scaled_linear" and s.config.beta_end == 0.012
    s.set_timesteps(5)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    x = x * s.init_noise_sigma
    gen = torch.Generator().manual_seed(1)
    for t in s.timesteps:
        inp = s.scale_model_input(x, t)
        kwargs = {"generator": gen} if "generator" in __import__("inspect").signature(
            s.step).parameters else {}
        x = s.step(0.1 * inp, t, x, **kwargs).prev_sample
    assert torch.isfinite(x).all()


def test_karras_and_exponential_sigmas_differ_from_the_default() -> None:
    """The schedule really changes the noise levels: Karras spends more steps at low noise."""
    import numpy as np

    def sigmas(name: str) -> Any:
        s = S.make_scheduler(name, SD_CONFIG)
        s.set_timesteps(10)
        return np.asarray(s.sigmas[:-1], dtype=np.float64)

    plain, karras, expo = sigmas("Euler"), sigmas("Euler Karras"), sigmas("Euler Exponential")
    assert not np.allclose(plain, karras) and not np.allclose(karras, expo)
    # rho = 7: sigma_i^(1/7) is evenly spaced (Karras et al. 2022)
    np.testing.assert_allclose(np.diff(karras ** (1 / 7)), np.diff(karras ** (1 / 7))[0],
                               rtol=1e-4)
    np.testing.assert_allclose(np.diff(np.log(expo)), np.diff(np.log(expo))[0], rtol=1e-4)


def test_unknown_or_impossible_names_say_what_works() -> None:
    with pytest.raises(UserError, match="unknown sampler 'DPM fast'"):
        S.canonical("DPM fast")
    with pytest.raises(UserError, match="DDIM has no Karras schedule"):
        S.make_scheduler("DDIM Karras", SD_CONFIG)
    with pytest.raises(UserError, match="Euler a has no Karras"):
        S.canonical("Euler a Karras")


def test_infotext_writes_sampler_and_schedule_type_and_reads_both_forms() -> None:
    p = GenerationParams(prompt="x", scheduler="DPM++ 2M Karras", steps=20)
    text = format_parameters(p)
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in text
    assert parse_parameters(text).scheduler == "DPM++ 2M Karras"
    # A1111 before 1.9 wrote the schedule into the sampler's name
    old = "x\nSteps: 20, Sampler: DPM++ SDE Karras, CFG scale: 7, Seed: 1"
    assert parse_parameters(old).scheduler == "DPM++ SDE Karras"
    new = "x\nSteps: 20, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 7, Seed: 1"
    assert parse_parameters(new).scheduler == "DPM++ 2M SDE Exponential"
    plain = format_parameters(GenerationParams(scheduler="Euler a"))
    assert "Sampler: Euler a," in plain and "Schedule type" not in plain
    # a sampler the studio does not have is kept as written (generating with it says so)
    odd = parse_parameters("x\nSteps: 20, Sampler: Restart, CFG scale: 7, Seed: 1")
    assert odd.scheduler == "Restart" and "Sampler: Restart," in format_parameters(odd)


def test_model_hash_is_autov2(tmp_path: Path) -> None:
    from plugins.diffusion.engine import hashes

    f = tmp_path / "model.safetensors"
    data = bytes(range(256)) * 9000
    f.write_bytes(data)
    assert hashes.autov2(f) == hashlib.sha256(data).hexdigest()[:10]
    assert hashes.model_hash(f) == hashlib.sha256(data).hexdigest()[:10]
    # the LoRA hash skips the safetensors header (A1111's addnet hash)
    import struct

    header = b'{"__metadata__":{"a":"b"}}'
    lora = tmp_path / "l.safetensors"
    lora.write_bytes(struct.pack("<Q", len(header)) + header + b"\x01" * 100)
    assert hashes.addnet_hash(lora) == hashlib.sha256(b"\x01" * 100).hexdigest()[:12]


def test_cli_takes_a1111_sampler_names(run_job: Any, text_model: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from plugins.diffusion.engine.infotext import read_png_parameters
    from plugins.diffusion.engine.loading import model_hash
    from studio.cli import cmd_run

    out = tmp_path / "k.png"
    assert cmd_run("diffusion", "sample", ["--model", str(text_model), "--prompt", "a cat",
                                           "--scheduler", "DPM++ 2M Karras", "--steps", "3",
                                           "--n", "1", "--out", str(out)]) == 0
    p = read_png_parameters(out)
    assert p.scheduler == "DPM++ 2M Karras"
    unet = next((text_model / "unet").glob("*.safetensors"))
    assert p.model_hash == hashlib.sha256(unet.read_bytes()).hexdigest()[:10]
    assert model_hash(text_model) == p.model_hash
