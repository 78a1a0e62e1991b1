"""Training a DDPM (diffusers ``UNet2DModel``) on a folder of images, as a task of the studio's
one training loop (``plugins.common.training.TrainLoop``).

What a run folder holds (``RUN`` is the job's ``--out``)::

    RUN/config.json                     data, size, channels, preset and hyper-parameters
    RUN/metrics.jsonl                   loss and learning rate per step (written by the host)
    RUN/examples-train.jsonl            every image with its hash, trained on or held out
    RUN/samples/step_000500.png         preview grids from the EMA weights
    RUN/checkpoints/last.safetensors    model + EMA + optimiser + generator + loop state
    RUN/model/                          a standard diffusers DDPMPipeline folder (EMA weights)

Choices that make a small CPU budget go far: a cosine noise schedule (better than linear at
32 px) with v-prediction (well conditioned at every noise level, so the few-step ODE samplers
work from the first step), min-SNR loss weighting (Hang et al., 2023: much faster convergence,
no extra cost), a short warm-up then cosine decay of the learning rate to the loop's horizon (the
end of the step budget, or of the time budget), and an EMA of the weights with warm-up.

The loop owns the budget, the cadences, Stop and exact resume; :class:`DDPMTask` is one step of
training plus what a preview, an evaluation and an export mean here. All the randomness of a
step (batch indices, noise, timesteps, flips) comes from one generator in the task's state, so a
resumed run continues exactly where the interrupted one would have gone.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.common.privacy import METRIC, PrivacySpec, PrivateTraining, prepare_model
from plugins.common.training import LOOP_KEY, LoopState, Reporter, Schedule
from studio import storage
from studio.errors import UserError
from studio.manifest import Example

from .presets import unet_config

if TYPE_CHECKING:
    from studio.cache import PrepCache

CHECKPOINT = "checkpoints/last.safetensors"
MODEL_DIR = "model"
TRAIN_TIMESTEPS = 1000
#: what defines the model and its data: a resumed run keeps the values it started with
_FIXED_ON_RESUME = ("data", "size", "channels", "preset", "prediction", "unet", "seed",
                    "min_snr_gamma", "flip", "ema_decay", "holdout", "private")
EVAL_IMAGES = 256  # held-out images a validation loss looks at (cheap, and stable enough)


@dataclass(kw_only=True)
class TrainConfig:
    """Everything that defines a training run; saved as the run's ``config.json``.

    The job fills it from its params (where the defaults live); the two fields with defaults
    here are not offered as settings.
    """

    data: str
    size: int
    channels: int  # 0: decide from the data (grayscale folders train 1-channel models)
    preset: str
    steps: int
    batch_size: int
    lr: float
    ema_decay: float
    prediction: str
    flip: bool
    seed: int
    sample_every: int
    checkpoint_every: int
    minutes: float  # wall-clock budget for the training loop (0: none)
    holdout: float  # share of the images held out of training
    warmup: int = 100
    min_snr_gamma: float = 5.0
    unet: dict[str, Any] = field(default_factory=dict)
    # training privately: plugins.common.privacy.PrivacySpec as JSON (empty: normally)
    private: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("holdout", 0.0)  # runs from before held-out sets trained on everything
        return cls(**known)

    def schedule(self, evaluates: bool) -> Schedule:
        """The loop's cadences: the loss every step (the curves of the old trainer), previews
        and (with held-out images) a held-out loss every ``sample_every``, a checkpoint and a
        model export every ``checkpoint_every``."""
        return Schedule(steps=self.steps,
                        max_seconds=self.minutes * 60.0 if self.minutes > 0 else None,
                        log_every=1, preview_every=self.sample_every,
                        eval_every=self.sample_every if evaluates else 0,
                        checkpoint_every=self.checkpoint_every)


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


# ----------------------------------------------------------------------------------------------
# The run folder
# ----------------------------------------------------------------------------------------------
def check_out_folder(run_dir: Path, resume: bool) -> None:
    """A new run never starts over a folder that holds one (or a checkpoint that cannot be
    read): say which step it reached and how to continue it."""
    ckpt = Path(run_dir) / CHECKPOINT
    if ckpt.exists() and not resume:
        raise UserError(f"{run_dir} already holds a training run (checkpoint at step "
                        f"{_ckpt_step(ckpt)}): pass --resume (tick Resume) to continue it, or "
                        "choose a new --out folder")


def settle_config(cfg: TrainConfig, run_dir: Path, resuming: bool, rep: Reporter) -> TrainConfig:
    """On resume, what defines the model and its data (``_FIXED_ON_RESUME``) comes back from the
    run's ``config.json``, whatever the new settings say; the budget, cadences and learning rate
    may change."""
    path = Path(run_dir) / "config.json"
    if not resuming or not path.exists():
        cfg.data = cfg.data or "digits"
        return cfg
    try:
        saved = TrainConfig.from_json(storage.read_json(path))
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"{path} cannot be read ({exc}): the run cannot be resumed") from None
    given = cfg.data  # images named for this session win over the run's (a moved folder)
    for key in _FIXED_ON_RESUME:
        setattr(cfg, key, getattr(saved, key))
    if given:
        cfg.data = given
    rep.log("resuming with the run's model: " + ", ".join(
        f"{k}={getattr(cfg, k)!r}" for k in _FIXED_ON_RESUME if k not in ("unet", "data")))
    return cfg


def save_config(cfg: TrainConfig, run_dir: Path) -> None:
    """Write ``config.json`` (after the data decided the channel count)."""
    if not cfg.unet:
        cfg.unet = unet_config(cfg.preset, cfg.size, cfg.channels)
    storage.atomic_write_json(Path(run_dir) / "config.json", asdict(cfg))


def _ckpt_step(path: Path) -> str:
    """The checkpoint's step for a message; says so when the checkpoint cannot be read (the
    caller is already reporting a problem with this folder, so this must not raise)."""
    from plugins.common.training import checkpoint_step

    step = checkpoint_step(path)
    return str(step) if step is not None else "unknown: the checkpoint cannot be read"


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """The images of a run, each with its :class:`Example` (same order), and which are held out.

    ``images`` is uint8 NHWC with the run's channel count.
    """

    name: str  # what the user calls it: "digits" or the folder's name
    root: Path  # absolute
    images: np.ndarray
    examples: list[Example]
    held_out: set[str]
    skipped: int = 0
    classes: list[str] = field(default_factory=list)

    def _mask(self) -> np.ndarray:
        return np.array([e.id in self.held_out for e in self.examples], dtype=bool)

    @property
    def train_images(self) -> np.ndarray:
        return self.images[~self._mask()]

    @property
    def held_images(self) -> np.ndarray:
        return self.images[self._mask()]


def load_data(cfg: TrainConfig, workspace: Path, rep: Reporter,
              cache: PrepCache | None = None) -> TrainingData:
    """Read the images (deciding the channel count into ``cfg`` when it is 0), hash every file
    and choose the held-out ones from their ids (``plugins.common.splits``: stable across
    machines and file orders); through the workspace's prepared-data ``cache`` when given."""
    from plugins.common.images import DIGITS_NAME, load_image_folder, resolve_data_folder
    from plugins.common.splits import held_out
    from studio.manifest import file_examples

    root = resolve_data_folder(cfg.data, workspace).resolve()
    ds = load_image_folder(root, size=cfg.size, channels=3,
                           progress=lambda d, t: rep.progress(d, t, "reading images"),
                           check=rep.check, cache=cache)
    rep.log(ds.report())
    if ds.skipped:
        rep.warn(f"{len(ds.skipped)} unreadable file(s) skipped (see the log for the list)")
    images = ds.images
    gray = bool(np.all(images[..., 0] == images[..., 1])
                and np.all(images[..., 1] == images[..., 2]))
    if cfg.channels == 0:
        cfg.channels = 1 if gray else 3
        rep.log(f"training a {'grayscale' if gray else 'colour'} model ({cfg.channels} channel(s))")
    if cfg.channels == 1:
        images = images[..., :1] if gray else np.asarray(
            np.round(images @ np.array([0.299, 0.587, 0.114])), dtype=np.uint8)[..., None]
    if len(images) < 2:
        raise UserError(f"{root} has only {len(images)} usable image: a model needs more (at "
                        "least dozens, ideally hundreds)")
    examples = file_examples(root, ds.files, check=rep.check,
                             progress=lambda d, t: rep.progress(d, t, "hashing images"),
                             hashes=ds.hashes)
    held = held_out([e.id for e in examples], cfg.holdout, cfg.seed)
    name = DIGITS_NAME if cfg.data.strip().lower() in (DIGITS_NAME, f"builtin:{DIGITS_NAME}") \
        else root.name
    data = TrainingData(name, root, images, examples, held, len(ds.skipped), list(ds.classes))
    if held:
        rep.log(f"{len(held)} of {len(examples)} images held out of training")
    return data


# ----------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------
class DDPMTask:
    """One DDPM's training for :class:`~plugins.common.training.TrainLoop`.

    Args:
        cfg: the run's settings (channels already decided).
        data: the images; only the non-held-out ones are trained on.
        run_dir: where previews and the exported model go.
        device: torch device string.
        rep: the job context (previews, log).
    """

    def __init__(self, cfg: TrainConfig, data: TrainingData, run_dir: Path, device: str,
                 rep: Reporter) -> None:
        import torch
        from diffusers import UNet2DModel

        from plugins.common.ema import EMA

        self.cfg, self.run_dir, self.device, self.rep = cfg, Path(run_dir), device, rep
        train = data.train_images
        if len(train) < 2:
            raise UserError(f"only {len(train)} image(s) are left for training after holding "
                            f"{len(data.held_out)} out: lower the held-out share or add images")
        if not cfg.unet:
            cfg.unet = unet_config(cfg.preset, cfg.size, cfg.channels)
        torch.manual_seed(cfg.seed)
        self.unet = UNet2DModel(**cfg.unet).to(device).train()
        self.private_notes: list[str] = []
        spec = PrivacySpec.from_json(cfg.private)
        if spec is not None:  # layers Opacus cannot train replaced before anything holds them
            self.unet, self.private_notes = prepare_model(self.unet, "the UNet")
        self.ema = EMA(self.unet, cfg.ema_decay)
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.noise_sched = make_noise_scheduler(cfg.prediction)
        self.gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        self.x_all = _to_tensor(train)
        self.x_held = _to_tensor(data.held_images[:EVAL_IMAGES]) if data.held_out else None
        alphas = self.noise_sched.alphas_cumprod.to(torch.float32)
        self.snr_all = (alphas / (1.0 - alphas)).to(device)
        self.autocast = _autocast(device)
        #: DP-SGD (one record = one training image) when training privately, else None
        self.dp: Any = None
        if spec is not None:
            self.dp = PrivateTraining(self.unet, self.opt, spec, records=len(self.x_all),
                                      batch_size=cfg.batch_size, steps=cfg.steps, device=device,
                                      loss_reduction="sum", unit="image")
            self.opt = self.dp.optimizer
            self.autocast = contextlib.nullcontext()  # private steps in full precision
        self.step = 0
        self.lr_now = cfg.lr
        self.loss_avg, self.avg_weight = 0.0, 0.0  # bias-corrected moving average (no lag)
        self.smoothed = 0.0
        n_params = sum(p.numel() for p in self.unet.parameters())
        rep.log(f"UNet '{cfg.preset}' {n_params / 1e6:.2f}M parameters, {cfg.size}px, "
                f"{cfg.channels} channel(s), {len(train)} images, device {device}")

    # -- one step -------------------------------------------------------------------------------
    def _loss(self, model: Any, x0: Any, noise: Any, ts: Any) -> Any:
        """Per-image min-SNR-weighted loss of ``model`` denoising ``x0`` at timesteps ``ts``."""
        cfg, sched = self.cfg, self.noise_sched
        noisy = sched.add_noise(x0, noise, ts)
        target = noise if cfg.prediction == "epsilon" else sched.get_velocity(x0, noise, ts)
        with self.autocast:
            pred = model(noisy, ts).sample
        per = (pred.float() - target).pow(2).mean(dim=(1, 2, 3))
        if cfg.min_snr_gamma > 0:
            snr = self.snr_all[ts]
            w = snr.clamp(max=cfg.min_snr_gamma) / (snr if cfg.prediction == "epsilon"
                                                    else snr + 1.0)
            return per * w
        return per

    def train_step(self, state: LoopState) -> dict[str, float]:
        import torch

        if self.dp is not None:
            return self._private_step(state)
        cfg, gen, device = self.cfg, self.gen, self.device
        bs = cfg.batch_size
        idx = torch.randint(len(self.x_all), (bs,), generator=gen)
        noise = torch.randn((bs, *self.x_all.shape[1:]), generator=gen)
        ts = torch.randint(0, TRAIN_TIMESTEPS, (bs,), generator=gen)
        x0 = self.x_all[idx]
        if cfg.flip:
            flip = torch.rand(bs, generator=gen) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        x0, noise, ts = x0.to(device), noise.to(device), ts.to(device)
        self.lr_now = cfg.lr * lr_factor(state.step, cfg.warmup, state.horizon)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_now
        loss = self._loss(self.unet, x0, noise, ts).mean()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise UserError(f"the loss became {value} at step {state.step}: lower the learning "
                            "rate (--lr) and resume from the last checkpoint")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt.step()
        self.ema.update(self.unet)
        self.step = state.step + 1
        self.loss_avg = 0.98 * self.loss_avg + 0.02 * value
        self.avg_weight = 0.98 * self.avg_weight + 0.02
        self.smoothed = self.loss_avg / self.avg_weight
        return {"loss/train": value}

    def _private_step(self, state: LoopState) -> dict[str, float]:
        """One DP-SGD step: the images drawn by Poisson sampling (the privacy engine's secret
        generator), their noise, timesteps and flips from the run's generator as usual, each
        image's weighted loss clipped on its own, noise added to the sum. An empty draw adds
        only noise (and logs no loss)."""
        import torch

        cfg, gen, device, dp = self.cfg, self.gen, self.device, self.dp
        idx = dp.sample()
        m = int(idx.numel())
        self.lr_now = cfg.lr * lr_factor(state.step, cfg.warmup, state.horizon)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_now
        dp.zero_grad()
        stats: dict[str, float] = {}
        if m:
            noise = torch.randn((m, *self.x_all.shape[1:]), generator=gen)
            ts = torch.randint(0, TRAIN_TIMESTEPS, (m,), generator=gen)
            x0 = self.x_all[idx]
            if cfg.flip:
                flip = torch.rand(m, generator=gen) < 0.5
                x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
            per = self._loss(self.unet, x0.to(device), noise.to(device), ts.to(device))
            value = float(per.detach().mean())
            if not math.isfinite(value):
                raise UserError(f"the loss became {value} at step {state.step}: lower the "
                                "learning rate (--lr) and resume from the last checkpoint")
            dp.backward(per.sum())
            self.loss_avg = 0.98 * self.loss_avg + 0.02 * value
            self.avg_weight = 0.98 * self.avg_weight + 0.02
            self.smoothed = self.loss_avg / self.avg_weight
            stats["loss/train"] = value
        dp.step()
        dp.zero_grad()
        self.ema.update(self.unet)
        self.step = state.step + 1
        return stats

    def log_values(self, state: LoopState) -> dict[str, float]:
        out = {"loss/smoothed": self.smoothed, "lr": self.lr_now}
        if self.dp is not None:
            out[METRIC] = self.dp.epsilon()
        return out

    def log_privacy(self, steps: int) -> None:
        """What training privately means for this run, in words (at its start)."""
        dp = self.dp
        self.rep.log(dp.describe())
        for note in self.private_notes:
            self.rep.log(note)
        if not self.private_notes:
            self.rep.log("Every layer of the UNet can be trained privately as it is (group "
                         "norm, convolutions, attention): nothing was replaced.")
        self.rep.log("The guarantee covers the model: the live loss curves, the previews' "
                     "held-out loss and the images read for them are not covered (they stay "
                     "on this computer).")
        projected = dp.projected_epsilon(steps)
        if dp.spec.noise_multiplier <= 0 and projected > dp.spec.epsilon * 1.02:
            self.rep.warn(f"Training to step {steps:,} will spend ε = {projected:.2f}, more "
                          f"than the target {dp.spec.epsilon:g} this run's noise was chosen "
                          "for (it started with fewer steps).")

    def message(self, state: LoopState, stats: Mapping[str, Any]) -> str:
        return f"step {state.step}/{state.horizon}, loss {self.smoothed:.4f}"

    # -- evaluation, previews, export -----------------------------------------------------------
    def evaluate(self, state: LoopState) -> dict[str, float]:
        """The EMA model's loss on (up to :data:`EVAL_IMAGES`) held-out images, with the same
        noise and timesteps every time (a generator of its own, so training's randomness is
        untouched): a curve that keeps falling while the training loss does says the model
        generalises; a widening gap says it memorises."""
        import torch

        if self.x_held is None or len(self.x_held) == 0:
            return {}
        g = torch.Generator(device="cpu").manual_seed(self.cfg.seed + 1)
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(self.x_held), self.cfg.batch_size):
                x0 = self.x_held[start:start + self.cfg.batch_size]
                noise = torch.randn(x0.shape, generator=g)
                ts = torch.randint(0, TRAIN_TIMESTEPS, (len(x0),), generator=g)
                per = self._loss(self.ema.model, x0.to(self.device), noise.to(self.device),
                                 ts.to(self.device))
                total += float(per.sum())
                count += len(x0)
        return {"loss/held_out": total / max(1, count)}

    def preview(self, state: LoopState) -> None:
        from plugins.common.pngmeta import save_png

        grid = preview_grid(self.ema.model, self.noise_sched, self.device, seed=self.cfg.seed)
        save_png(grid, self.run_dir / "samples" / f"step_{state.step:06d}.png",
                 {"parameters": f"training preview, step {state.step}, DPM++ 2M 20 steps"})
        self.rep.preview("image", grid, step=state.step)

    def export(self, state: LoopState, reason: str) -> None:
        export_pipeline(self.ema.model, self.noise_sched, self.run_dir / MODEL_DIR)
        if self.dp is not None:  # the run's config says what the model's training spent
            config = self.run_dir / "config.json"
            saved = storage.read_json(config) if config.exists() else asdict(self.cfg)
            storage.atomic_write_json(config, {**saved, "privacy_spent": self.dp.summary()})
            if reason in ("stopped", "end"):
                self.rep.log(self.dp.words())
        if reason != "stopped":  # the loop says "Stopped at step N; checkpoint saved"
            self.rep.log(f"checkpoint and model at step {state.step}"
                         + (" (finished)" if reason == "end" else ""))

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        st = {"step": self.step, "model": self.unet.state_dict(), "ema": self.ema.state_dict(),
              "optimizer": self.opt.state_dict(), "generator": self.gen.get_state(),
              "loss_avg": self.loss_avg, "avg_weight": self.avg_weight}
        if self.dp is not None:
            st["privacy"] = self.dp.state_dict()
        return st

    def load_state_dict(self, st: dict[str, Any]) -> None:
        """Also reads checkpoints of the trainer before the shared loop (same keys, without the
        loss average: the smoothed curve restarts there)."""
        import torch

        self.unet.load_state_dict(st["model"])
        self.ema.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["optimizer"])
        self.gen.set_state(st["generator"].to(torch.uint8))
        loop = st.get(LOOP_KEY)
        self.step = int(loop["step"] if isinstance(loop, Mapping) else st.get("step", 0))
        self.loss_avg = float(st.get("loss_avg", 0.0))
        self.avg_weight = float(st.get("avg_weight", 0.0))
        self.smoothed = self.loss_avg / self.avg_weight if self.avg_weight else 0.0
        if self.dp is not None:
            if "privacy" not in st:
                raise UserError("this run did not train privately: resume it without privacy")
            self.dp.load_state_dict(st["privacy"])


def _to_tensor(images: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(
        127.5).sub_(1.0)


def _autocast(device: str) -> Any:
    import torch

    from studio.device import autocast_dtype

    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=str(device).split(":")[0], dtype=dtype)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
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
