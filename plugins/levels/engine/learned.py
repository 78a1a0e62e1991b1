"""Learned level generators: a MarioGAN-style DCGAN and a VAE on one-hot tile windows.

Data: every ``h x w`` window (default 14x28, stride 1) of the training levels, one channel per
legend tile. 15 Super Mario Bros levels give about 2,400 windows.

GAN: a DCGAN generator (latent -> 256x4x7 -> transposed convolutions -> tile logits, cropped to
the window) against a convolutional critic with spectral normalisation, hinge loss. The critic
sees the generator's *hard* one-hot output (argmax) with straight-through softmax gradients, so
it cannot tell real from fake merely because real windows are exactly one-hot and soft
probabilities are not (the usual failure of GANs on discrete tiles).

VAE: a convolutional encoder to a Gaussian latent and the same decoder, trained on cross-entropy
reconstruction plus a KL term (``beta``). Its prior gives samples; its encoder gives the latent of
any segment (so existing segments can seed a search).

Both sample levels by drawing segments and stitching them along the game's direction (left to
right, or stacked from the bottom up for a climbed game); an optional CMA-ES latent search per
segment looks for segments the platformer agent can finish, that join the previous
segment, and that match targets such as "more enemies" or "more gaps".

Training is a task (:class:`LevelTrainer`) run by the shared loop
(:class:`plugins.common.training.TrainLoop`): the loop owns budgets, cadences, keep-best,
checkpoints and exact resume; the task owns the losses, the EMA and the evaluation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from plugins.common.ema import EMA, recalibrated
from plugins.common.training import (
    LoopState,
    Outcome,
    Reporter,
    Schedule,
    TrainLoop,
    refuse_to_overwrite,
)
from studio import storage
from studio.errors import UserError

from . import agents, metrics, render
from .config import TrainConfig
from .level import Legend, Level, from_indices, levels_legend
from .physics import Physics, resolve

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoints/last.safetensors"


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@dataclass
class SegmentSet:
    legend: Legend
    windows: np.ndarray  # (N, h, w) legend indices
    levels: list[Level]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.windows.shape[1]), int(self.windows.shape[2])


def make_segments(levels: list[Level], height: int | None, width: int, stride: int = 1,
                  legend: Legend | None = None) -> SegmentSet:
    """Every ``height x width`` window of ``levels`` (``height`` None: the levels' height,
    capped at 32), as legend indices. ``legend`` (default: the union of the levels') fixes the
    tile channels, e.g. to include tiles only held-out levels use. Levels smaller than the
    window are left out (``SegmentSet.levels`` lists those used)."""
    if not levels:
        raise UserError("no levels to train on")
    legend = legend or levels_legend(levels)
    for lv in levels:
        lv.legend = legend
    h = height or min(min(lv.height for lv in levels), 32)
    usable = [lv for lv in levels if lv.height >= h and lv.width >= width]
    if not usable:
        raise UserError(f"every level is smaller than the {width}x{h} training window (width x "
                        f"height): {sizes(levels)}. {window_advice(levels)}")
    codes = metrics.windows(usable, h, width, stride)
    windows = legend.index_lut()[codes]
    return SegmentSet(legend, windows.astype(np.int64), usable)


MIN_WIDTH, MIN_HEIGHT = 8, 4  # the train job's smallest window


def sizes(levels: Sequence[Level]) -> str:
    """``name (WxH)`` for each level, every one of them."""
    return ", ".join(f"{lv.name} ({lv.width}x{lv.height})" for lv in levels)


def window_advice(levels: Sequence[Level]) -> str:
    """Which ``--width``/``--height`` would take every level (or as many as can be)."""
    fit = [lv for lv in levels if lv.width >= MIN_WIDTH and lv.height >= MIN_HEIGHT]
    if not fit:
        return (f"A training window is at least {MIN_WIDTH} tiles wide and {MIN_HEIGHT} high: "
                "these levels are too small to train on")
    w = min(lv.width for lv in fit)
    h = min(min(lv.height for lv in fit), 32)
    left = len(levels) - len(fit)
    return (f"--width {w} --height {h} fits every level" if not left else
            f"--width {w} --height {h} fits all but the {left} smaller than "
            f"{MIN_WIDTH}x{MIN_HEIGHT} tiles")


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class Generator(nn.Module):
    """latent -> (C, h, w) tile logits; also the VAE's decoder."""

    def __init__(self, channels: int, latent: int, h: int, w: int, base: int = 64) -> None:
        super().__init__()
        self.h, self.w = h, w
        self.h0, self.w0 = math.ceil(h / 4), math.ceil(w / 4)
        self.fc = nn.Linear(latent, base * 4 * self.h0 * self.w0)
        self.bn0 = nn.BatchNorm2d(base * 4)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(base * 4, base * 2, 4, 2, 1), nn.BatchNorm2d(base * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(base * 2, base, 4, 2, 1), nn.BatchNorm2d(base), nn.ReLU(True),
            nn.Conv2d(base, channels, 3, 1, 1),
        )
        self.base = base

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, self.base * 4, self.h0, self.w0)
        x = F.relu(self.bn0(x))
        return self.net(x)[:, :, :self.h, :self.w]


class Critic(nn.Module):
    """Convolutional critic with spectral normalisation and a minibatch standard-deviation
    feature (Karras et al.): seeing how varied a batch is lets it punish a generator that
    repeats itself, the usual way GANs lose diversity on small tile datasets."""

    def __init__(self, channels: int, h: int, w: int, base: int = 64, mbstd: bool = True
                 ) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.mbstd = mbstd
        self.net = nn.Sequential(
            sn(nn.Conv2d(channels, base, 3, 1, 1)), nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(base, base * 2, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            sn(nn.Conv2d(base * 2, base * 4, 4, 2, 1)), nn.LeakyReLU(0.2, True),
        )
        with torch.no_grad():
            f = self.net(torch.zeros(1, channels, h, w))
        n = f.numel() + (f.shape[2] * f.shape[3] if mbstd else 0)
        self.out = sn(nn.Linear(n, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.net(x)
        if self.mbstd:
            std = f.std(0, unbiased=False).mean().view(1, 1, 1, 1)
            f = torch.cat([f, std.expand(f.shape[0], 1, f.shape[2], f.shape[3])], 1)
        return self.out(f.flatten(1)).squeeze(1)


class Encoder(nn.Module):
    def __init__(self, channels: int, latent: int, h: int, w: int, base: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, base, 3, 1, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(base, base * 2, 4, 2, 1), nn.BatchNorm2d(base * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(base * 2, base * 4, 4, 2, 1), nn.BatchNorm2d(base * 4),
            nn.LeakyReLU(0.2, True),
        )
        with torch.no_grad():
            n = self.net(torch.zeros(1, channels, h, w)).numel()
        self.mu = nn.Linear(n, latent)
        self.logvar = nn.Linear(n, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.net(x).flatten(1)
        return self.mu(f), self.logvar(f).clamp(-10, 10)


def straight_through(logits: torch.Tensor) -> torch.Tensor:
    """Hard one-hot forward, softmax gradient backward."""
    soft = logits.softmax(1)
    hard = F.one_hot(soft.argmax(1), logits.shape[1]).permute(0, 3, 1, 2).to(soft.dtype)
    return hard + soft - soft.detach()


# ----------------------------------------------------------------------------------------------
# Training: a task for the shared loop (plugins.common.training)
# ----------------------------------------------------------------------------------------------
def _one_hot(idx: torch.Tensor, c: int) -> torch.Tensor:
    return F.one_hot(idx, c).permute(0, 3, 1, 2).float()


def build(cfg: TrainConfig, channels: int, h: int, w: int) -> dict[str, nn.Module]:
    if cfg.model == "gan":
        return {"G": Generator(channels, cfg.latent, h, w, cfg.base),
                "D": Critic(channels, h, w, cfg.base, cfg.mbstd)}
    if cfg.model == "vae":
        return {"E": Encoder(channels, cfg.latent, h, w, cfg.base),
                "G": Generator(channels, cfg.latent, h, w, cfg.base)}
    raise UserError(f"unknown model {cfg.model!r}: choose gan or vae")


SCORE = "quality/score"


class LevelTrainer:
    """One GAN or VAE training run on level windows, as a :class:`TrainTask`.

    The generator's weights are also kept as an exponential moving average (``cfg.ema_decay``,
    :class:`plugins.common.ema.EMA`), which evens out the oscillation of GAN training. Every
    ``eval_every`` steps the averaged generator, with batch-norm statistics re-estimated for its
    own weights, is measured on a fixed set of latents (playable fraction, tile-distribution
    distance, novelty, variety); the loop keeps the best score and :meth:`on_best` writes that
    snapshot to ``model.safetensors`` (model selection on a validation metric; sampling uses
    fresh latents). Levels held out of training, when there are any, give one more number: the
    tile-distribution distance of the samples to them.

    Everything random draws from ``self.gen`` (batches, latents, the VAE's noise), so the same
    seed gives the same model and a stopped run resumes exactly.
    """

    def __init__(self, data: SegmentSet, cfg: TrainConfig, run_dir: Path, reporter: Reporter,
                 device: str = "cpu", held_out: Sequence[Level] = ()) -> None:
        h, w = data.shape
        self.c = c = len(data.legend)
        cfg.height, cfg.width = h, w
        cfg.chars = data.legend.chars
        cfg.game = data.legend.name
        cfg.held_out = len(held_out)
        self.physics = resolve(data.legend, data.levels)
        data.legend.direction = cfg.direction = self.physics.direction
        cfg.legend = data.legend.to_json()
        cfg.physics = self.physics.to_json()
        self.cfg, self.data, self.run_dir, self.rep = cfg, data, run_dir, reporter
        self.dev = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.nets = build(cfg, c, h, w)
        for m in self.nets.values():
            m.to(self.dev)
        self.ema = EMA(self.nets["G"], cfg.ema_decay)
        betas = (0.5, 0.999) if cfg.model == "gan" else (0.9, 0.999)
        if cfg.model == "gan":
            self.opts: dict[str, torch.optim.Optimizer] = {
                "G": torch.optim.Adam(self.nets["G"].parameters(), cfg.lr, betas=betas),
                "D": torch.optim.Adam(self.nets["D"].parameters(), cfg.lr * 2, betas=betas)}
        else:
            params = list(self.nets["E"].parameters()) + list(self.nets["G"].parameters())
            self.opts = {"VAE": torch.optim.Adam(params, cfg.lr * 5, betas=betas)}
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.real = torch.from_numpy(data.windows)
        # what evaluations compare with, fixed for the whole run
        self.train_hist = metrics.histogram(data.levels, data.legend)
        self.held_hist = metrics.histogram(list(held_out), data.legend) if held_out else None
        self.ref_windows = data.legend.codes()[data.windows[:: max(1, len(data.windows) // 600)]]
        self.eval_z = torch.from_numpy(np.random.default_rng(cfg.seed + 1).standard_normal(
            (256, cfg.latent)).astype(np.float32))
        pick = np.random.default_rng(cfg.seed + 2).choice(
            len(data.windows), min(64, len(data.windows)), replace=False)
        self.real_div = metrics.diversity([from_indices(data.windows[i], data.legend)
                                           for i in pick])
        self.evaluated: nn.Module | None = None  # the snapshot the last evaluation measured
        self.segments: list[Level] = []  # its samples (the preview shows them)
        self.legacy_best: float | None = None  # the best score of a checkpoint from before

    # -- one step -------------------------------------------------------------------------------
    def train_step(self, state: LoopState) -> dict[str, torch.Tensor]:
        nets, cfg = self.nets, self.cfg
        nets["G"].train()
        nets["D" if "D" in nets else "E"].train()
        idx = torch.randint(0, len(self.real), (cfg.batch,), generator=self.gen)
        x = _one_hot(self.real[idx], self.c).to(self.dev)
        if cfg.model == "gan":
            losses = _gan_step(nets, self.opts, x, cfg, self.gen, self.dev)
        else:
            losses = _vae_step(nets, self.opts, x, cfg, self.gen)
        self.ema.update(nets["G"])
        return losses

    def message(self, state: LoopState, stats: Mapping[str, Any]) -> str:
        rate = state.step / max(1e-6, state.elapsed)
        return f"step {state.step:,} of {state.horizon:,} · {rate:.1f} steps/s"

    # -- evaluation, preview, keep-best ---------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, state: LoopState) -> dict[str, float]:
        """Quality of the averaged generator on fixed latents, and the model-selection score:
        the playable fraction, minus the tile-distribution distance, minus a penalty when
        samples are much less varied than real windows (a generator of flat ground is always
        playable, close in tile counts, and useless)."""
        cfg, dev, gen = self.cfg, self.dev, self.gen

        def forward(model: nn.Module) -> None:
            model(torch.randn(128, cfg.latent, generator=gen).to(dev))

        G = recalibrated(self.ema.model, forward, passes=4)
        legend = self.data.legend
        idx = G(self.eval_z.to(dev)).argmax(1).cpu().numpy()
        segs = [from_indices(i, legend) for i in idx]
        playable = float(np.mean([agents.check(s, physics=self.physics, runway=True).playable
                                  for s in segs]))
        js = metrics.js_divergence(metrics.histogram(segs, legend), self.train_hist)
        nov = float(metrics.nearest_distance(np.stack([s.grid for s in segs[:32]]),
                                             self.ref_windows).mean())
        div = metrics.diversity(segs[:64])
        self.evaluated, self.segments = G, segs
        out = {"quality/playable": playable, "quality/tile_js": js, "quality/novelty": nov,
               "quality/diversity": div}
        if self.held_hist is not None:
            out["quality/held_out_tile_js"] = metrics.js_divergence(
                metrics.histogram(segs, legend), self.held_hist)
        out[SCORE] = playable - 4.0 * js - 3.0 * max(0.0, 0.9 * self.real_div - div)
        return out

    def preview(self, state: LoopState) -> None:
        """Six samples of the last evaluated snapshot, as a picture."""
        if not self.segments:
            return
        from plugins.common.images import make_grid

        tiles = render.colour_tiles(self.data.legend, 6, glyphs=False)
        picture = make_grid(np.stack([render.render(s, tiles=tiles) for s in self.segments[:6]]),
                            nrow=3, pad=3, pad_value=255)
        self.rep.preview("image", picture, step=state.step)

    def on_best(self, state: LoopState) -> None:
        """The snapshot just evaluated scored best so far: it becomes ``model.safetensors``."""
        if self.evaluated is None:
            return
        weights = {f"G.{n}": t for n, t in self.evaluated.state_dict().items()}
        if "E" in self.nets:
            weights.update({f"E.{n}": t for n, t in self.nets["E"].state_dict().items()})
        storage.save_tensors(self.run_dir / WEIGHTS, weights,
                             {"config": json.dumps(asdict(self.cfg)), "step": str(state.step),
                              "score": f"{state.best_value:.4f}"})

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"nets": {k: m.state_dict() for k, m in self.nets.items()},
                "ema": self.ema.state_dict(),
                "opts": {k: o.state_dict() for k, o in self.opts.items()},
                "gen": self.gen.get_state(), "config": asdict(self.cfg)}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        """Restore; also reads checkpoints written before the shared loop (the averaged
        generator as ``nets/G_ema``, the step and best score beside it)."""
        saved = st.get("config", {})
        cfg = self.cfg
        if saved.get("model") != cfg.model or list(saved.get("chars", [])) != cfg.chars or \
                [saved.get("height"), saved.get("width")] != [cfg.height, cfg.width]:
            raise UserError("the checkpoint was trained with another model, tile set or window "
                            "size; start a new run instead of resuming")
        nets = dict(st["nets"])
        legacy_ema = nets.pop("G_ema", None)
        for k, m in self.nets.items():
            m.load_state_dict(nets[k])
        if "ema" in st:
            self.ema.load_state_dict(st["ema"])
        elif legacy_ema is not None:
            self.ema.load_state_dict(legacy_ema, updates=int(st.get("step", 0)))
            if "best" in st:
                self.legacy_best = float(st["best"])
        for k, o in self.opts.items():
            o.load_state_dict(st["opts"][k])
        self.gen.set_state(st["gen"].to(torch.uint8))


def train(reporter: Reporter, data: SegmentSet, cfg: TrainConfig, run_dir: Path, *,
          resume: bool = False, device: str = "cpu", max_seconds: float | None = None,
          held_out: Sequence[Level] = ()) -> Outcome:
    """Train ``cfg.model`` on ``data`` into ``run_dir``: ``config.json``, metrics (through
    ``reporter``), ``checkpoints/last.safetensors`` (every ``cfg.checkpoint_every`` steps, on
    Stop and at the end) and ``model.safetensors`` (the best evaluated snapshot).

    ``max_seconds`` ends training after that much training time (benchmarks train for a fixed
    budget, with ``cfg.steps`` as the upper bound).
    """
    task = LevelTrainer(data, cfg, run_dir, reporter, device, held_out)
    schedule = Schedule(steps=cfg.steps, max_seconds=max_seconds, log_every=10,
                        eval_every=cfg.eval_every, preview_every=cfg.eval_every,
                        checkpoint_every=cfg.checkpoint_every, best=SCORE, best_mode="max")
    ckpt = run_dir / CHECKPOINT
    loop = TrainLoop(task, schedule, reporter, ckpt)
    if resume:
        step = loop.resume()
        if task.legacy_best is not None and loop.state.best_value is None:
            loop.state.best_value = task.legacy_best
        reporter.log(f"resumed from step {step}")
    else:
        refuse_to_overwrite(run_dir, ckpt, resume, "level model")
    storage.atomic_write_json(run_dir / CONFIG, asdict(cfg))
    outcome = loop.run()
    if outcome.best_value is not None:
        reporter.log(f"kept the best snapshot: score {outcome.best_value:.3f} at step "
                     f"{outcome.best_step} (playable fraction, penalised for tile distance and "
                     "lack of variety)")
    return outcome


def _gan_step(nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer],
              x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, dev: torch.device
              ) -> dict[str, torch.Tensor]:
    G, D = nets["G"], nets["D"]
    b = x.shape[0]
    z = torch.randn(b, cfg.latent, generator=gen).to(dev)
    fake = straight_through(G(z))
    d_loss = F.relu(1 - D(x)).mean() + F.relu(1 + D(fake.detach())).mean()
    opts["D"].zero_grad(set_to_none=True)
    d_loss.backward()
    opts["D"].step()
    z = torch.randn(b, cfg.latent, generator=gen).to(dev)
    g_loss = -D(straight_through(G(z))).mean()
    opts["G"].zero_grad(set_to_none=True)
    g_loss.backward()
    opts["G"].step()
    return {"loss/D": d_loss.detach(), "loss/G": g_loss.detach()}


def _vae_step(nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer],
              x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator
              ) -> dict[str, torch.Tensor]:
    E, G = nets["E"], nets["G"]
    mu, logvar = E(x)
    # the noise comes from the run's generator: the same seed gives the same model
    noise = torch.randn(mu.shape, generator=gen).to(mu.device)
    z = mu + noise * (0.5 * logvar).exp()
    logits = G(z)
    rec = F.cross_entropy(logits, x.argmax(1), reduction="sum") / x.shape[0]
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.shape[0]
    loss = rec + cfg.beta * kl
    opts["VAE"].zero_grad(set_to_none=True)
    loss.backward()
    opts["VAE"].step()
    return {"loss/reconstruction": rec.detach(), "loss/KL": kl.detach()}


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------
@dataclass
class Targets:
    """What the latent search aims at (None: do not care)."""

    enemies: float | None = None
    gaps: float | None = None

    def error(self, feats: dict[str, float]) -> float:
        e = 0.0
        if self.enemies is not None:
            e += abs(feats.get("enemies", 0.0) - self.enemies) / max(1.0, self.enemies)
        if self.gaps is not None:
            e += abs(feats.get("gaps", 0.0) - self.gaps) / max(1.0, self.gaps)
        return e

    @property
    def any(self) -> bool:
        return self.enemies is not None or self.gaps is not None


class LevelModel:
    """A trained GAN or VAE loaded from its run folder (or that folder's model.safetensors),
    ready to sample."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        run_dir = Path(run_dir).expanduser()
        if run_dir.is_file() and run_dir.name == WEIGHTS:
            run_dir = run_dir.parent
        cfg_path = run_dir / CONFIG
        weights = run_dir / WEIGHTS
        if not cfg_path.exists():
            raise UserError(f"{run_dir} is not a levels model folder (no {CONFIG}); pass the "
                            "RUN_DIR a 'train' job wrote")
        if not weights.exists():
            if (run_dir / CHECKPOINT).exists():
                raise UserError(f"{run_dir} holds an unfinished run (only a checkpoint): resume "
                                "training to finish it, or train again")
            raise UserError(f"{run_dir} has no {WEIGHTS}")
        try:
            self.cfg = TrainConfig.from_json(storage.read_json(cfg_path))
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{cfg_path} is unreadable ({exc})") from None
        from .vglc import legend_from_json

        self.legend = legend_from_json(self.cfg.legend, str(cfg_path))
        self.direction = self.cfg.direction or self.legend.direction or "right"
        self.legend.direction = self.direction
        #: the physics the model's samples are checked with (the training data's)
        self.physics = (Physics.from_json(self.cfg.physics, "legend", str(cfg_path))
                        if self.cfg.physics else resolve(self.legend, direction=self.direction))
        if self.cfg.physics:
            saved = self.cfg.physics
            self.physics = replace(self.physics, source=str(saved.get("source", "legend")),
                                   basis=str(saved.get("basis", "")),
                                   direction_from=str(saved.get("direction_from", "legend")))
        h, w = self.cfg.height, self.cfg.width
        self.G = Generator(len(self.legend), self.cfg.latent, h, w, self.cfg.base)
        tensors = storage.load_tensors(weights)
        g_state = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
        try:
            self.G.load_state_dict(g_state)
        except RuntimeError as exc:
            raise UserError(f"{weights} does not match its config.json ({exc})") from None
        self.E: Encoder | None = None
        if self.cfg.model == "vae":
            self.E = Encoder(len(self.legend), self.cfg.latent, h, w, self.cfg.base)
            self.E.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("E.")})
            self.E.eval()
        self.G.eval()
        self.device = device
        self.run_dir = run_dir

    @property
    def segment_shape(self) -> tuple[int, int]:
        return self.cfg.height, self.cfg.width

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latents ``(N, latent)`` to tile codes ``(N, h, w)``."""
        t = torch.as_tensor(np.asarray(z, dtype=np.float32))
        idx = self.G(t).argmax(1).numpy()
        return self.legend.codes()[idx]

    def latents(self, n: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, self.cfg.latent))

    def segments(self, n: int, seed: int) -> list[Level]:
        return [Level(g, self.legend) for g in self.decode(self.latents(n, seed))]

    def search_segment(self, seed: int, targets: Targets, before: np.ndarray | None = None,
                       budget: int = 240, check: Callable[[], None] | None = None
                       ) -> tuple[np.ndarray, dict[str, Any]]:
        """CMA-ES in latent space for a segment that is playable (joined to ``before``, the
        previous segment: its last columns, or its top rows when the game is climbed) and close
        to ``targets``. Returns ``(codes, info)``.

        The search starts from the plain sample for ``seed`` and returns it unchanged when it
        already qualifies, so searching only replaces the segments that needed it."""
        cache: dict[bytes, float] = {}
        up = self.direction == "up"

        def cost(zs: np.ndarray) -> np.ndarray:
            grids = self.decode(zs)
            out = np.empty(len(grids))
            for k, g in enumerate(grids):
                key = g.tobytes()
                if key not in cache:
                    joined = g if before is None else join(g, before, up)
                    res = agents.check(Level(joined, self.legend), physics=self.physics)
                    feats = metrics.features(Level(g, self.legend))
                    length = joined.shape[0 if up else 1]
                    penalty = 0.0 if res.playable else 10.0 + 5.0 * (
                        1 - res.furthest / max(1, length - 1))
                    cache[key] = penalty + targets.error(feats)
                out[k] = cache[key]
            return out

        z0 = self.latents(1, seed)[0]
        good = 0.05 if targets.any else 0.0
        f0 = float(cost(z0[None])[0])
        if f0 <= good:  # the plain sample already qualifies: keep the model's distribution
            return self.decode(z0[None])[0], {"cost": f0, "evaluations": 1, "playable": True}
        z, f, evals = _search(cost, self.cfg.latent, seed, budget - 1, z0, good, check)
        evals += 1
        codes = self.decode(z[None])[0]
        return codes, {"cost": f, "evaluations": evals, "playable": f < 10.0}

    def generate(self, n: int, seed: int, segments: int = 4, search: bool = False,
                 targets: Targets | None = None, budget: int = 240,
                 check: Callable[[], None] | None = None) -> list[Level]:
        """``n`` levels of ``segments`` stitched segments each."""
        targets = targets or Targets()
        out = []
        rng = np.random.default_rng(seed)
        for i in range(n):
            parts: list[np.ndarray] = []
            infos: list[dict[str, Any]] = []
            for _ in range(segments):
                if check is not None:
                    check()
                sub_seed = int(rng.integers(0, 2**31))
                if search:
                    prev = parts[-1] if parts else None
                    codes, info = self.search_segment(sub_seed, targets, prev, budget, check)
                    infos.append(info)
                else:
                    codes = self.decode(self.latents(1, sub_seed))[0]
                parts.append(codes)
            lv = Level(stitch(parts, self.direction), self.legend, f"{self.cfg.model}-{i:03d}",
                       {"method": self.cfg.model, "seed": seed, "index": i,
                        "segments": segments, "search": search, "direction": self.direction,
                        "model": str(self.run_dir)})
            if infos:
                lv.meta["search_evaluations"] = int(sum(x["evaluations"] for x in infos))
            out.append(lv)
        return out

    @torch.no_grad()
    def encode(self, codes: np.ndarray) -> np.ndarray:
        if self.E is None:
            raise UserError("only a VAE can encode segments into its latent space")
        idx = torch.as_tensor(self.legend.index_lut()[codes])
        mu, _ = self.E(_one_hot(idx, len(self.legend)))
        return mu.numpy()


def stitch(parts: Sequence[np.ndarray], direction: str) -> np.ndarray:
    """Segments joined along the game's direction: side by side from the left, or stacked from
    the bottom up (the first segment is where a climbed level starts)."""
    if direction == "up":
        return np.concatenate(list(parts)[::-1], axis=0)
    return np.concatenate(list(parts), axis=1)


def join(segment: np.ndarray, before: np.ndarray, up: bool, context: int = 8) -> np.ndarray:
    """``segment`` after the end of the previous one (its last columns, or its top rows)."""
    if up:
        return np.concatenate([segment, before[:min(before.shape[0], context)]], axis=0)
    return np.concatenate([before[:, -min(before.shape[1], context):], segment], axis=1)


def _search(cost: Callable[[np.ndarray], np.ndarray], dim: int, seed: int, budget: int,
            x0: np.ndarray, good: float, check: Callable[[], None] | None
            ) -> tuple[np.ndarray, float, int]:
    from .search import minimise

    return minimise(cost, dim, seed, budget, 0.8, x0, good, check)
