"""One GAN training run in memory: models, optimisers, EMA, its own random generator, and the
step that updates them. The shared training loop (``plugins.common.training.TrainLoop``) runs
it through :class:`plugins.gan.engine.task.GanTask`; benches call :meth:`GanTrainer.train_step`
directly.

Everything random in training (batches, noise, DiffAugment, label noise, dropout, gradient-penalty
mixing) draws from one ``torch.Generator`` owned by the trainer, never from torch's global one, so
:meth:`GanTrainer.state_dict` captures the complete state and a resumed run takes exactly the
steps the uninterrupted run would have taken (tested bit-for-bit on the CPU), whatever other jobs
do with the global generator meanwhile.

Mixed precision (CUDA only): the forward passes run under ``torch.autocast`` with the dtype from
:func:`studio.device.autocast_dtype` (bf16 where supported, else fp16); fp16 uses one
``GradScaler`` per optimiser; losses are computed in float32 and the gradient penalty runs outside
autocast.

Under torchrun (:mod:`plugins.common.distributed`) both networks train in
DistributedDataParallel: every rank draws the same global batch of images and noise from the
trainer's generator (identical on every rank) and trains on its share; the generator's step
goes through the bare discriminator (its weights are frozen there), and evaluation, previews
and exports use the bare networks too, so nothing outside a training step waits on the others.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from plugins.common import distributed
from plugins.common.ema import EMA, recalibrated
from plugins.gan.engine import losses
from plugins.gan.engine.config import GanConfig
from plugins.gan.engine.diffaug import diff_augment, parse_policy
from plugins.gan.engine.models import (
    Discriminator,
    Generator,
    SeededDropout,
    build,
    downscale,
    upscale,
)

#: 2: the EMA is stored with its update count; 1 (before the shared loop): bare EMA weights
STATE_FORMAT = 2
STAT_NAMES = ("loss/D", "loss/G", "D/real", "D/fake", "gp")
PREVIEW_COLS = 8


def amp_dtype(cfg: GanConfig, device: str) -> torch.dtype | None:
    """The autocast dtype for this run (None: full float32, always on the CPU)."""
    from studio.device import autocast_dtype

    if cfg.amp == "off":
        return None
    return autocast_dtype(device, "auto" if cfg.amp == "auto" else cfg.amp)


class GanTrainer:
    """Build with a config and the training images (uint8 ``(N, C, H, W)``) already on
    ``device``; call :meth:`train_step` repeatedly."""

    def __init__(self, cfg: GanConfig, images: torch.Tensor, labels: torch.Tensor | None,
                 device: str = "cpu", planned_steps: int | None = None) -> None:
        cfg.validate()
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("images must be a uint8 (N, C, H, W) tensor")
        if tuple(images.shape[1:]) != (cfg.channels, cfg.size, cfg.size):
            raise ValueError(f"images are {tuple(images.shape[1:])}, the config wants "
                             f"{(cfg.channels, cfg.size, cfg.size)}")
        if cfg.conditional and labels is None:
            raise ValueError("a conditional model needs labels")
        self.cfg = cfg
        self.device = torch.device(device)
        if self.device.type == "cuda":  # fixed shapes every step: let cuDNN pick its fastest
            torch.backends.cudnn.benchmark = True
        self.images = _at_size(images.to(self.device), cfg.net_size)
        self.labels = labels.to(self.device) if (labels is not None and cfg.conditional) else None
        self.policy = parse_policy(cfg.diffaug)
        if self.labels is not None:  # image indices sorted by class, for class-grouped batches
            order = torch.argsort(self.labels.cpu(), stable=True)
            counts = torch.bincount(self.labels.cpu(), minlength=cfg.num_classes)
            self._class_index = order.to(self.device)
            self._class_count = counts.to(self.device)
            self._class_start = (torch.cumsum(counts, 0) - counts).to(self.device)
        self.step = 0

        with torch.random.fork_rng(devices=[]):  # weight init from the run's seed only
            torch.manual_seed(cfg.seed)
            g, d = build(cfg)
        self.G: Generator = g.to(self.device)
        self.D: Discriminator = d.to(self.device)
        self.ema = EMA(self.G, cfg.ema_decay)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g,
                                      betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d,
                                      betas=(cfg.beta1, cfg.beta2))
        self.amp = amp_dtype(cfg, str(self.device))
        use_scaler = self.amp == torch.float16
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=use_scaler)

        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        for m in self.D.modules():
            if isinstance(m, SeededDropout):
                m.generator = self.gen
        #: DP-SGD for the discriminator, the only network that sees the images (the generator
        #: learns only through it, so it inherits its guarantee); None: trained normally
        self.dp: Any = None
        if cfg.private:
            from plugins.common.privacy import PrivacySpec, PrivateTraining

            spec = PrivacySpec.from_json(cfg.private)
            assert spec is not None
            # every critic step is a private step (a draw of real images)
            steps = (planned_steps or 1) * cfg.n_critic
            self.dp = PrivateTraining(self.D, self.opt_d, spec, records=self.images.shape[0],
                                      batch_size=cfg.batch_size, steps=steps,
                                      device=self.device, loss_reduction="sum", unit="image")
            self.opt_d = self.dp.optimizer
        self.fixed_z, self.fixed_y = self._fixed_inputs()
        self._real_diversity: float | None = None
        #: the torchrun job this trainer is one rank of (None: alone); the networks a training
        #: step runs through (DDP wrappers under torchrun, else the networks themselves)
        self.dist = distributed.current()
        self._G_step: Any = self.G
        self._D_step: Any = self.D
        if self.dist is not None:
            from studio.errors import UserError

            if self.dp is not None:
                raise UserError("private training runs in one process: start it without "
                                "torchrun (--nproc-per-node)")
            b = self.dist.local_batch(cfg.batch_size)
            if cfg.mbstd_group > 1 and b % cfg.mbstd_group:
                raise UserError(f"each process's share of the batch ({b}) must be a multiple "
                                f"of the minibatch-std group ({cfg.mbstd_group}): raise the "
                                "batch size")
            self._G_step = self.dist.wrap(self.G)
            self._D_step = self.dist.wrap(self.D)

    # -- inputs -----------------------------------------------------------------------------
    def _fixed_inputs(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The preview's noise: one row per class (up to 10) for conditional models, else 8x8."""
        g = torch.Generator().manual_seed(self.cfg.seed + 7919)
        if self.cfg.conditional:
            rows = min(self.cfg.num_classes, 10)
            z = torch.randn(PREVIEW_COLS, self.cfg.z_dim, generator=g).repeat(rows, 1)
            y = torch.arange(rows).repeat_interleave(PREVIEW_COLS)
            return z.to(self.device), y.to(self.device)
        z = torch.randn(PREVIEW_COLS * PREVIEW_COLS, self.cfg.z_dim, generator=g)
        return z.to(self.device), None

    def _noise(self, n: int) -> torch.Tensor:
        """Noise for ``n`` images (under torchrun, ``n`` is the global batch: this rank's
        share of it comes back)."""
        z = torch.randn(n, self.cfg.z_dim, generator=self.gen, device=self.gen.device)
        return z[self.dist.shard(n)] if self.dist is not None else z

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, n = self.cfg.batch_size, self.images.shape[0]
        group = self.cfg.mbstd_group
        if self.labels is not None and group > 1 and B % group == 0:
            # Class-grouped batch: consecutive groups share a class, so the discriminator's
            # minibatch-std feature sees variety *within* a class and can catch a generator
            # that draws one image per class (the usual failure of small conditional GANs).
            anchors = torch.randint(0, n, (B // group,), generator=self.gen,
                                    device=self.gen.device).to(self.device)
            cls = self.labels[anchors].repeat_interleave(group)
            u = torch.rand(B, generator=self.gen, device=self.gen.device).to(self.device)
            pos = (u * self._class_count[cls]).long().clamp_max(self._class_count[cls] - 1)
            idx = self._class_index[self._class_start[cls] + pos]
        else:
            idx = torch.randint(0, n, (B,), generator=self.gen, device=self.gen.device)
            idx = idx.to(self.device)
        if self.dist is not None:  # the global batch was drawn: this rank's share of it
            idx = idx[self.dist.shard(B)]
        x = self.images[idx].float().div_(127.5).sub_(1.0)
        return x, (self.labels[idx] if self.labels is not None else None)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy, self.gen, self.cfg.mbstd_group) if self.policy else x

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    # -- training -------------------------------------------------------------------------
    def train_step(self, state: Any = None) -> dict[str, torch.Tensor]:
        """One generator update (after ``n_critic`` discriminator updates). Returns the step's
        statistics (:data:`STAT_NAMES`; ``gp`` only with a gradient penalty) as 0-d device
        tensors: the loop averages them without synchronising the device every step. ``state``
        (the loop's) is not needed: the GAN has no learning-rate schedule."""
        if self.dp is not None:
            return self._private_step()
        cfg, G, D = self.cfg, self._G_step, self._D_step
        B = cfg.batch_size if self.dist is None else self.dist.local_batch(cfg.batch_size)
        gp = torch.zeros((), device=self.device)
        fake = real_scores = fake_scores = loss_d = y = None
        for i in range(cfg.n_critic):
            x, y = self._real_batch()
            z = self._noise(cfg.batch_size)
            last = i == cfg.n_critic - 1
            with self._autocast():
                # The last critic step's fakes are reused for the generator step (one generator
                # forward per iteration, as in the PyTorch DCGAN recipe).
                with torch.set_grad_enabled(last):
                    fake = G(z, y)
                xr, xf = self._augment(x), self._augment(fake.detach())
                if self.D.has_batchnorm:  # separate batches: batch norm must not mix real and fake
                    real_scores, fake_scores = D(xr, y), D(xf, y)
                else:
                    both = D(torch.cat([xr, xf]), None if y is None else torch.cat([y, y]))
                    real_scores, fake_scores = both.float().split(B)
                loss_d = losses.d_loss(cfg.arch, real_scores.float(), fake_scores.float(),
                                       cfg.label_noise, self.gen)
            if cfg.gp_weight > 0:
                gp = losses.gradient_penalty(functools.partial(D, y=y), xr, xf, self.gen)
                loss_d = loss_d + cfg.gp_weight * gp
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(loss_d).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()

        assert fake is not None and loss_d is not None
        D = self.D  # the bare network: its weights are frozen for the generator's step
        D.requires_grad_(False)  # the generator step needs no discriminator weight gradients
        try:
            with self._autocast():
                loss_g = losses.g_loss(cfg.arch, D(self._augment(fake), y).float())
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(loss_g).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        finally:
            D.requires_grad_(True)
        self.step += 1
        self.ema.update(self.G)
        with torch.no_grad():
            stats = {
                "loss/D": loss_d.detach().float(), "loss/G": loss_g.detach().float(),
                "D/real": losses.d_outputs_as_probability(
                    cfg.arch, real_scores.detach().float()).mean(),
                "D/fake": losses.d_outputs_as_probability(
                    cfg.arch, fake_scores.detach().float()).mean()}
            if cfg.gp_weight > 0:
                stats["gp"] = gp.detach().float()
        return stats

    def _private_step(self) -> dict[str, torch.Tensor]:
        """:meth:`train_step` under DP-SGD. Each critic step draws its real images by Poisson
        sampling (the privacy engine's secret generator) and as many fakes as the batch size,
        whatever the draw (their number must not depend on the data). Fakes get classes drawn
        uniformly, not the real images' (those would tie a fake row to a real one, doubling
        what one image can change). Real and fake rows pass through the discriminator
        together; every row's gradient is clipped on its own and the noise added to their sum.
        The generator's step sees the discriminator with its per-example hooks off."""
        cfg, G, D, dp = self.cfg, self.G, self.D, self.dp
        B = cfg.batch_size
        fake = yf = loss_d = real_scores = fake_scores = None
        m = 0
        for i in range(cfg.n_critic):
            idx = dp.sample().to(self.device)
            m = int(idx.numel())
            x = self.images[idx].float().div_(127.5).sub_(1.0)
            y = self.labels[idx] if self.labels is not None else None
            z = self._noise(B)
            yf = None
            if self.labels is not None:
                yf = torch.randint(0, cfg.num_classes, (B,), generator=self.gen,
                                   device=self.gen.device).to(self.device)
            with torch.set_grad_enabled(i == cfg.n_critic - 1):
                fake = G(z, yf)
            xr, xf = self._augment(x), self._augment(fake.detach())
            scores = D(torch.cat([xr, xf]), None if y is None else torch.cat([y, yf]))
            real_scores, fake_scores = scores.float().split([m, B])
            rows_r, rows_f = losses.d_loss_rows(cfg.arch, real_scores, fake_scores,
                                                cfg.label_noise, self.gen)
            dp.zero_grad()
            dp.backward(rows_r.sum() + rows_f.sum())
            dp.step()
            loss_d = rows_r.sum() / max(1, m) + rows_f.mean()

        assert fake is not None and loss_d is not None
        D.requires_grad_(False)
        try:
            with dp.hooks_off():  # forward and backward: the hooks fire in both
                loss_g = losses.g_loss(cfg.arch, D(self._augment(fake), yf).float())
                self.opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
            self.opt_g.step()
        finally:
            D.requires_grad_(True)
        self.step += 1
        self.ema.update(G)
        with torch.no_grad():
            real_p = losses.d_outputs_as_probability(cfg.arch, real_scores.detach())
            return {
                "loss/D": loss_d.detach().float(), "loss/G": loss_g.detach().float(),
                "D/real": real_p.sum() / max(1, m),
                "D/fake": losses.d_outputs_as_probability(
                    cfg.arch, fake_scores.detach()).mean()}

    @torch.no_grad()
    def real_score(self, images: torch.Tensor, labels: torch.Tensor | None) -> float:
        """How real the discriminator finds ``images`` (uint8 ``(N, C, H, W)`` at any size): its
        mean output as the D/real plot shows it (a probability for DCGAN, the raw score
        otherwise), without augmentation and in evaluation mode, so nothing in the training
        state changes. Compared between trained and held-out images it shows the
        discriminator memorising its training set."""
        D = self.D
        was_training = D.training
        D.eval()
        try:
            scores = []
            for i in range(0, images.shape[0], 256):
                x = _at_size(images[i:i + 256].to(self.device), self.cfg.net_size)
                x = x.float().div_(127.5).sub_(1.0)
                y = None
                if self.cfg.conditional and labels is not None:
                    y = labels[i:i + 256].to(self.device)
                with self._autocast():
                    out = D(x, y).float()
                scores.append(losses.d_outputs_as_probability(self.cfg.arch, out).flatten())
            return float(torch.cat(scores).mean())
        finally:
            D.train(was_training)

    # -- sampling -------------------------------------------------------------------------
    def _calibration_batches(self, n: int = 4) -> Iterator[tuple[torch.Tensor,
                                                                 torch.Tensor | None]]:
        g = torch.Generator().manual_seed(self.cfg.seed + 104729)
        for _ in range(n):
            z = torch.randn(self.cfg.batch_size, self.cfg.z_dim, generator=g).to(self.device)
            y = None
            if self.cfg.conditional:
                y = torch.randint(0, self.cfg.num_classes, (self.cfg.batch_size,),
                                  generator=g).to(self.device)
            yield z, y

    def sampling_generator(self) -> Generator:
        """The EMA generator with batch-norm statistics re-estimated for its weights (a copy:
        the training state is untouched)."""
        batches = iter(list(self._calibration_batches()))

        def forward(model: torch.nn.Module) -> None:
            z, y = next(batches)
            model(z, y)

        return recalibrated(self.ema.model, forward, passes=4)  # type: ignore[return-value]

    @torch.no_grad()
    def preview(self, model: Generator | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Samples of the fixed noise as uint8 ``(N, H, W, C)``, their grid picture, and their
        diversity relative to real images (about 1 when healthy, near 0 when collapsed)."""
        from plugins.common.images import make_grid, to_uint8

        model = model or self.sampling_generator()
        low = model(self.fixed_z, self.fixed_y).float()
        ratio = diversity(low, self.fixed_y) / max(self.real_diversity(), 1e-8)
        images = to_uint8(upscale(low, self.cfg.size))
        return images, make_grid(images, nrow=PREVIEW_COLS), ratio

    def real_diversity(self) -> float:
        """Diversity of real images, grouped by class like the preview (computed once)."""
        if self._real_diversity is None:
            g = torch.Generator().manual_seed(self.cfg.seed + 31)
            if self.labels is not None and self.fixed_y is not None:
                labels = self.labels.cpu()
                idx = []
                for c in self.fixed_y.unique().tolist():
                    members = torch.nonzero(labels == c).flatten()
                    pick = members[torch.randperm(len(members), generator=g)[:PREVIEW_COLS]]
                    idx.append(pick)
                take = torch.cat(idx)
                groups = labels[take]
            else:
                take = torch.randperm(self.images.shape[0], generator=g)[:64]
                groups = None
            x = self.images[take.to(self.device)].float().div(127.5).sub(1.0)
            self._real_diversity = diversity(x, groups)
        return self._real_diversity

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "step": self.step,
            "config": self.cfg.to_json(),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "generator": self.gen.get_state(),
            **({"privacy": self.dp.state_dict()} if self.dp is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; also reads checkpoints written before the
        shared training loop (format 1: bare EMA weights, whose update count is the step)."""
        if state.get("format") not in (1, STATE_FORMAT):
            raise ValueError(f"unsupported checkpoint format {state.get('format')!r}")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.load_state_dict(state["G_ema"], updates=int(state["step"]))
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for scaler, key in ((self.scaler_g, "scaler_g"), (self.scaler_d, "scaler_d")):
            if state.get(key) and scaler.is_enabled():
                scaler.load_state_dict(state[key])
        self.gen.set_state(state["generator"].to("cpu", torch.uint8))
        self.step = int(state["step"])
        if self.dp is not None:
            if "privacy" not in state:
                raise ValueError("the checkpoint is of a run that did not train privately")
            self.dp.load_state_dict(state["privacy"])


def _at_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images reduced to the training resolution (once, at start)."""
    if images.shape[-1] == size:
        return images
    out = [downscale(images[i:i + 1024].float(), size).round_().clamp_(0, 255).to(torch.uint8)
           for i in range(0, images.shape[0], 1024)]
    return torch.cat(out)


def diversity(x: torch.Tensor, groups: torch.Tensor | None = None) -> float:
    """Mean pairwise RMS pixel distance between images, within each group (class), averaged.

    A collapsed generator makes near-identical images for different noise, so this falls towards
    zero; the trainer compares it with the same number for real images.
    """
    x = x.detach().float().flatten(1)
    if groups is None:
        groups = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    groups = groups.to(x.device)
    values = []
    for g in groups.unique():
        members = x[groups == g]
        n = members.shape[0]
        if n < 2:
            continue
        d = torch.cdist(members, members) / members.shape[1] ** 0.5
        values.append(d.sum() / (n * (n - 1)))
    return float(torch.stack(values).mean()) if values else 0.0
