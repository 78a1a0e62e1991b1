"""Training a DDPM (diffusers ``UNet2DModel``) on a folder of images.

What a run folder holds (``RUN`` is the job's ``--out``)::

    RUN/config.json                     data, size, channels, preset and hyper-parameters
    RUN/metrics.jsonl                   loss and learning rate per step (written by the host)
    RUN/samples/step_000500.png         preview grids from the EMA weights
    RUN/checkpoints/last.safetensors    model + EMA + optimiser + step + every RNG state
    RUN/model/                          a standard diffusers DDPMPipeline folder (EMA weights)

Choices that make a small CPU budget go far: a cosine noise schedule (better than linear at
32 px) with v-prediction (well conditioned at every noise level, so the few-step ODE samplers
work from the first step), min-SNR loss weighting (Hang et al., 2023: much faster convergence,
no extra cost), a short warm-up then cosine decay of the learning rate, and an EMA of the weights
with warm-up. All
the randomness of a step (batch indices, noise, timesteps) comes from one generator whose state is
checkpointed, so a resumed run continues exactly where the interrupted one would have gone.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio import runs, storage
from studio.errors import Cancelled, UserError

from .context import Reporter
from .ema import EMA
from .presets import build_unet, unet_config

CHECKPOINT = "checkpoints/last.safetensors"
_FIXED_ON_RESUME = ("data", "size", "channels", "preset", "prediction", "unet", "seed",
                    "min_snr_gamma", "flip", "ema_decay")
MODEL_DIR = "model"
TRAIN_TIMESTEPS = 1000


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as the run's ``config.json``."""

    data: str = "digits"
    size: int = 32
    channels: int = 0  # 0: decide from the data (grayscale folders train 1-channel models)
    preset: str = "small"
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 100
    ema_decay: float = 0.995
    prediction: str = "v_prediction"
    min_snr_gamma: float = 5.0
    flip: bool = False
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 500
    minutes: float = 0.0  # wall-clock budget for the training loop (0: none)
    unet: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def lr_factor(step: int, warmup: int, horizon: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak at ``horizon`` steps."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    span = max(1, horizon - warmup)
    progress = min(1.0, (step - warmup) / span)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_noise_scheduler(prediction: str) -> Any:
    from diffusers import DDPMScheduler

    if prediction not in ("epsilon", "v_prediction"):
        raise UserError(f"prediction must be epsilon or v_prediction, not {prediction!r}")
    # v-prediction with "trailing" spacing (Lin et al., 2024): sampling starts at the last
    # training timestep, where the pure noise it starts from belongs, and v stays well
    # conditioned there even though the cosine schedule's signal is ~0. On the digits this fixed
    # DPM-Solver++ under-drawing thin digits (a "1" share of 4.8% with "leading", which starts
    # 40 steps early at 25 steps). An epsilon model cannot predict the image at ~0 signal (Euler
    # diverges from there), so epsilon keeps diffusers' default "leading" spacing.
    return DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="squaredcos_cap_v2",
                         prediction_type=prediction, clip_sample=True, variance_type="fixed_small",
                         timestep_spacing="trailing" if prediction == "v_prediction"
                         else "leading")


def load_training_images(cfg: TrainConfig, workspace: Path, ctx: Reporter) -> tuple[Any, Path]:
    """The dataset as uint8 NHWC with the channel count decided (and stored in ``cfg``)."""
    from plugins.common.images import load_image_folder, resolve_data_folder

    root = resolve_data_folder(cfg.data, workspace)
    ds = load_image_folder(root, size=cfg.size, channels=3,
                           progress=lambda d, t: ctx.progress(d, t, "reading images"),
                           check=ctx.check)
    ctx.log(ds.report())
    if ds.skipped:
        ctx.warn(f"{len(ds.skipped)} unreadable file(s) skipped (see the log for the list)")
    images = ds.images
    gray = bool(np.all(images[..., 0] == images[..., 1])
                and np.all(images[..., 1] == images[..., 2]))
    if cfg.channels == 0:
        cfg.channels = 1 if gray else 3
        ctx.log(f"training a {'grayscale' if gray else 'colour'} model ({cfg.channels} channel(s))")
    if cfg.channels == 1:
        images = images[..., :1] if gray else np.asarray(
            np.round(images @ np.array([0.299, 0.587, 0.114])), dtype=np.uint8)[..., None]
    if len(images) < 2:
        raise UserError(f"{root} has only {len(images)} usable image: a model needs more (at "
                        "least dozens, ideally hundreds)")
    return (images, ds), root


def train(ctx: Reporter, cfg: TrainConfig, run_dir: Path, *, workspace: Path, device: str = "cpu",
          resume: bool = False, truncate_metrics: Callable[[int], None] | None = None) -> Path:
    """Train (or continue training) and return the exported pipeline folder.

    ``truncate_metrics(step)`` drops logged metrics after the checkpoint's step on resume
    (default: :func:`studio.runs.truncate_metrics` on ``run_dir``).
    """
    import torch

    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT
    state: dict[str, Any] | None = None
    if ckpt_path.exists():
        if not resume:
            raise UserError(f"{run_dir} already holds a training run (checkpoint at step "
                            f"{_ckpt_step(ckpt_path)}): pass --resume to continue it, or choose a "
                            "new --out folder")
        try:
            state = storage.load_state(ckpt_path)
        except storage.CorruptFileError as exc:
            raise UserError(f"the checkpoint {ckpt_path} cannot be read ({exc}); start a new "
                            "run or restore the file") from None
        saved = TrainConfig.from_json(storage.read_json(run_dir / "config.json"))
        for key in _FIXED_ON_RESUME:  # what defines the model and its data cannot change
            setattr(cfg, key, getattr(saved, key))
        ctx.log("resuming with the run's data and model: " + ", ".join(
            f"{k}={getattr(cfg, k)!r}" for k in _FIXED_ON_RESUME if k != "unet"))
    elif resume:
        ctx.warn(f"nothing to resume in {run_dir}: starting a new run there")

    (images, ds), root = load_training_images(cfg, workspace, ctx)
    if hasattr(ctx, "add_dataset"):
        ctx.add_dataset(root, files=len(ds), skipped=len(ds.skipped), classes=ds.classes,
                        fingerprint=ds.fingerprint())
    if not cfg.unet:
        cfg.unet = unet_config(cfg.preset, cfg.size, cfg.channels)
    storage.atomic_write_json(run_dir / "config.json", asdict(cfg))

    torch.manual_seed(cfg.seed)
    from diffusers import UNet2DModel

    unet = UNet2DModel(**cfg.unet) if cfg.unet else build_unet(cfg.preset, cfg.size, cfg.channels)
    unet.to(device).train()
    ema = EMA(unet, cfg.ema_decay)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    noise_sched = make_noise_scheduler(cfg.prediction)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    step, elapsed, horizon = 0, 0.0, cfg.steps
    if state is not None:
        unet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"].to(torch.uint8))
        storage.restore_rng(state["rng"])
        step = int(state["step"])
        elapsed = float(state.get("elapsed", 0.0))
        horizon = int(state.get("horizon", cfg.steps)) if cfg.minutes else cfg.steps
        if truncate_metrics is not None:
            truncate_metrics(step)
        else:
            runs.truncate_metrics(run_dir, after_step=step)
        ctx.log(f"resumed from step {step}")
    n_params = sum(p.numel() for p in unet.parameters())
    ctx.log(f"UNet '{cfg.preset}' {n_params / 1e6:.2f}M parameters, {cfg.size}px, "
            f"{cfg.channels} channel(s), {len(images)} images, device {device}")

    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    alphas = noise_sched.alphas_cumprod.to(torch.float32)
    snr_all = alphas / (1.0 - alphas)
    budget = cfg.minutes * 60.0 if cfg.minutes and cfg.minutes > 0 else None
    autocast = _autocast(device)
    loss_avg, avg_weight = 0.0, 0.0  # bias-corrected moving average (no lag at the start)
    t_loop = time.monotonic() - elapsed
    step_times: list[float] = []

    def save(reason: str) -> None:
        _save_checkpoint(run_dir, unet, ema, opt, gen, step, time.monotonic() - t_loop, horizon)
        export_pipeline(ema.model, noise_sched, run_dir / MODEL_DIR)
        ctx.log(f"checkpoint at step {step} ({reason})")

    def sample_preview() -> None:
        grid = preview_grid(ema.model, noise_sched, device, seed=cfg.seed)
        from plugins.common.pngmeta import save_png

        save_png(grid, run_dir / "samples" / f"step_{step:06d}.png",
                 {"parameters": f"training preview, step {step}, DPM++ 2M 20 steps"})
        ctx.preview("image", grid, step=step)

    try:
        while step < horizon:
            ctx.check()
            t0 = time.monotonic()
            idx = torch.randint(len(x_all), (cfg.batch_size,), generator=gen)
            noise = torch.randn((cfg.batch_size, *x_all.shape[1:]), generator=gen)
            ts = torch.randint(0, TRAIN_TIMESTEPS, (cfg.batch_size,), generator=gen)
            x0 = x_all[idx]
            if cfg.flip:
                flip = torch.rand(cfg.batch_size, generator=gen) < 0.5
                x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
            x0, noise, ts = x0.to(device), noise.to(device), ts.to(device)
            noisy = noise_sched.add_noise(x0, noise, ts)
            target = noise if cfg.prediction == "epsilon" else noise_sched.get_velocity(x0, noise,
                                                                                         ts)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, cfg.warmup, horizon)
            with autocast:
                pred = unet(noisy, ts).sample
            per = (pred.float() - target).pow(2).mean(dim=(1, 2, 3))
            if cfg.min_snr_gamma > 0:
                snr = snr_all.to(device)[ts]
                w = snr.clamp(max=cfg.min_snr_gamma) / (snr if cfg.prediction == "epsilon"
                                                        else snr + 1.0)
                loss = (per * w).mean()
            else:
                loss = per.mean()
            if not torch.isfinite(loss):
                raise UserError(f"the loss became {loss.item()} at step {step}: lower the "
                                "learning rate (--lr) and resume from the last checkpoint")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            ema.update(unet)
            step += 1
            value = float(loss.detach())
            loss_avg = 0.98 * loss_avg + 0.02 * value
            avg_weight = 0.98 * avg_weight + 0.02
            loss_smooth = loss_avg / avg_weight
            ctx.metric("loss/train", step, value)
            ctx.metric("loss/smoothed", step, loss_smooth)
            ctx.metric("lr", step, opt.param_groups[0]["lr"])
            step_times.append(time.monotonic() - t0)
            spent = time.monotonic() - t_loop
            if budget is not None:
                horizon = _budget_horizon(step, horizon, cfg.steps, spent, budget, step_times)
            ctx.progress(step, horizon, f"step {step}/{horizon}, loss {loss_smooth:.4f}")
            if step % cfg.sample_every == 0 and step < horizon:
                sample_preview()
            if step % cfg.checkpoint_every == 0 and step < horizon:
                save("periodic")
    except Cancelled:
        if step > 0:
            save("cancelled: progress kept, resume with --resume")
        raise
    save("finished")
    sample_preview()
    return run_dir / MODEL_DIR


def _budget_horizon(step: int, horizon: int, max_steps: int, spent: float, budget: float,
                    step_times: list[float]) -> int:
    """With a wall-clock budget the learning-rate schedule needs a step count: estimate it from
    the recent step time (re-estimated every 25 steps until 80% of the way, then frozen so the
    end of the cosine is not chased). Running out of time always ends the run."""
    if spent >= budget:
        return step
    if step < 10 or step % 25 or step > 0.8 * horizon:
        return horizon
    recent = step_times[-50:]
    per_step = float(np.median(recent)) * 1.05  # a little slack for previews and checkpoints
    return max(step + 1, min(max_steps, step + int((budget - spent) / max(per_step, 1e-6))))


def _autocast(device: str) -> Any:
    import contextlib

    import torch

    from studio.device import autocast_dtype

    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=str(device).split(":")[0], dtype=dtype)


def _ckpt_step(path: Path) -> str:
    """The checkpoint's step for a message; says so when the checkpoint cannot be read (the
    caller is already reporting a problem with this folder, so this must not raise)."""
    try:
        return str(int(storage.state_field(path, "step")))
    except (OSError, ValueError, TypeError):  # CorruptFileError is a ValueError
        return "unknown: the checkpoint cannot be read"


def _save_checkpoint(run_dir: Path, unet: Any, ema: EMA, opt: Any, gen: Any, step: int,
                     elapsed: float, horizon: int) -> None:
    storage.save_state(run_dir / CHECKPOINT, {
        "step": step,
        "elapsed": float(elapsed),
        "horizon": int(horizon),
        "model": unet.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "rng": storage.capture_rng(),
    })


def export_pipeline(unet: Any, scheduler: Any, target: Path) -> Path:
    """Save a standard ``DDPMPipeline`` folder (safetensors) that plain diffusers loads; written
    to a temporary folder first and swapped in, so a crash never leaves half a model."""
    from diffusers import DDPMPipeline

    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def preview_grid(unet: Any, noise_sched: Any, device: str, *, seed: int, n: int = 16,
                 steps: int = 20) -> np.ndarray:
    """``n`` samples from ``unet`` with DPM-Solver++ as one uint8 grid (fixed seed, so grids from
    successive previews are comparable)."""
    import torch

    from plugins.common.images import make_grid, to_uint8

    from .sampling import denoise, make_generators
    from .schedulers import make_scheduler

    sched = make_scheduler("dpm++", noise_sched.config)
    cfg = unet.config
    shape = (n, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    with torch.no_grad():
        x = denoise(lambda xx, t: unet(xx, t).sample, sched, shape=shape,
                    generators=make_generators(seed, n), steps=steps, device=device,
                    dtype=next(unet.parameters()).dtype)
    imgs = to_uint8(x.clamp(-1, 1))
    if imgs.shape[-1] == 1:
        imgs = np.repeat(imgs, 3, axis=-1)
    return make_grid(imgs, nrow=int(math.ceil(math.sqrt(n))))
