"""The GAN plugin's audit probe: how the privacy audit reads, scores and samples a GAN run.

The protocol is :mod:`plugins.common.probes`; the audit imports this module only when it audits
a GAN run (``GanPlugin.audit_probe``), so nothing here loads at startup.

- **Items** are images as the run's loader made them (``plugins.common.images.load_image``:
  centre crop, resize to the run's size, grey or colour as the run decided), before DiffAugment;
  samples come out at the same size, so pixel distances compare like with like.
- **Loss**: the discriminator's ``-log sigmoid(D(x))`` (LOGAN, Hayes et al. 2019; the white-box
  attack of GAN-Leaks, Chen et al. 2020): a discriminator that memorised its training images
  scores them as more real than images it never saw. The image is judged as the discriminator
  judged real images in training: reduced to the networks' resolution with the trainer's own
  area reduction and rounding, no augmentation, evaluation mode. Two things make a per-example
  score of a batch-level network: the minibatch-standard-deviation feature (a statistic of a
  group of four images) enters the discriminator's last, linear layer only, so it is fixed to
  its value on a constant group of real images (the first :data:`STD_IMAGES` examples by id,
  members or not, the same for every model of the same data) and each image is scored on its
  own; a conditional (projection) discriminator is asked for every class and the best one
  counts (an item carries no label). WGAN-GP critics are defined up to a constant, so their
  score is measured from the critic's mean score on fixed generated images, which makes
  reference models comparable; DCGAN's logit and SNGAN's hinge score are anchored by their
  losses already.
- **Samples**: the exported (EMA) generator, one latent per image drawn from its own seed
  (image ``i`` of ``sample(n, seed)`` from ``seed * 65536 + i``, so the audit's batches with
  seeds ``seed, seed + 1, ...`` never repeat an image), classes picked by the same seed.
- **Features** (``embed``): the discriminator's penultimate features (its last feature map,
  flattened), L2-normalised. Chosen by measurement on a GAN of 64 digits, finding 400 altered
  copies (1 px shift, noise, brightness, blur) of 500 digits among the originals by cosine
  distance: they found the original first for 98.0% of copies and separated copies from the
  nearest other image with an AUC of 0.958, flagging 1% of the other images at the audit's
  0.02 threshold; raw pixels 98.3%, 0.942 and 3%; the domain classifier of the eval job (a
  minute of training first, and a cache written into the audited run) 90-91% and 0.84-0.87,
  and at 0.02 it flagged 94-100% of the other images (its 64 features crowd all digits
  together).
- **Reference models**: the run's own ``train`` job with the same settings (the data by its
  recorded location, so a relative path typed elsewhere still finds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from plugins.common.probes import ProbeBase, ProbeExample
from studio.errors import UserError

#: real images whose group statistic stands in for the minibatch-std feature
STD_IMAGES = 64
#: generated images whose mean critic score anchors a WGAN-GP critic
ANCHOR_SAMPLES = 64
#: the seed of those generated images
ANCHOR_SEED = 104_729
#: images one sample call may ask for (image i of seed s uses seed s * SEED_STRIDE + i)
SEED_STRIDE = 65_536


class GanProbe(ProbeBase):
    """A GAN run (``generator.safetensors`` + ``checkpoints/last.safetensors``) for the audit."""

    item_kind = "image"

    def open(self) -> None:
        import torch

        from plugins.gan.engine import modelfile
        from plugins.gan.engine.config import GanConfig
        from plugins.gan.engine.models import Discriminator, Generator
        from studio import storage

        gen_path = modelfile.resolve(self.run_dir)  # a clear message when there is none
        ckpt = self.run_dir / modelfile.CHECKPOINT
        if not ckpt.exists():
            raise UserError(f"{self.run_dir.name} has a generator but no training checkpoint, "
                            "so its discriminator is gone: the audit needs both (train the "
                            "run again, or resume it for a step)")
        try:
            state = storage.load_state(ckpt, device="cpu")
            gen_state = storage.load_tensors(gen_path)
        except storage.CorruptFileError as exc:
            raise UserError(f"the model of {self.run_dir.name} cannot be read ({exc})") from None
        self.config = GanConfig.from_json(state["config"])
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: not ours
            G, D = Generator(self.config), Discriminator(self.config)
        try:
            G.load_state_dict(gen_state)
            D.load_state_dict(state["D"])
        except (RuntimeError, KeyError) as exc:
            raise UserError(f"the model of {self.run_dir.name} does not match its "
                            f"configuration ({exc})") from None
        self.G = G.to(self.device).eval().requires_grad_(False)
        self.D = D.to(self.device).eval().requires_grad_(False)
        self.step = int(state.get("step", 0))
        self._std: float | None = None  # the minibatch-std stand-in, computed on first use
        self._anchor: float | None = None

    def close(self) -> None:
        for name in ("G", "D"):
            if hasattr(self, name):
                delattr(self, name)
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # -- items ----------------------------------------------------------------------------------
    def read(self, example: ProbeExample) -> np.ndarray:
        from plugins.common.images import load_image

        path = self.example_path(example)
        try:
            return load_image(path, self.config.size, self.config.channels)
        except ValueError as exc:
            raise UserError(f"the training image {example.path} cannot be read: {exc}") from None

    def _net_input(self, items: Sequence[np.ndarray]) -> Any:
        """Items as the discriminator saw real images: reduced to the networks' resolution,
        rounded to whole grey levels, in [-1, 1]."""
        import torch

        from plugins.gan.engine.models import downscale

        cfg = self.config
        arr = np.stack([_channels(np.asarray(it), cfg.channels) for it in items])
        if arr.shape[1:3] != (cfg.size, cfg.size):
            raise UserError(f"this GAN judges {cfg.size} x {cfg.size} images, not "
                            f"{arr.shape[2]} x {arr.shape[1]}")
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).to(self.device)
        if cfg.net_size != cfg.size:
            x = downscale(x.float(), cfg.net_size).round_().clamp_(0, 255)
        return x.float().div_(127.5).sub_(1.0)

    def _features(self, x: Any) -> Any:
        """The discriminator's body output, ``(N, C, h, w)``."""
        return self.D.body(x)

    def _logits(self, x: Any) -> Any:
        """``(N, classes)`` discriminator scores (one column for unconditional models), each
        image on its own, the minibatch-std feature fixed to :meth:`_std_value`."""
        import torch

        D = self.D
        h = self._features(x)
        if D.mbstd_group:
            fill = torch.full((h.shape[0], 1, h.shape[2], h.shape[3]), self._std_value(),
                              device=h.device, dtype=h.dtype)
            h = torch.cat([h, fill], 1)
        h = h.flatten(1)
        out = D.head(h)  # (N, 1)
        if D.embed is not None:  # projection: <embed(y), h> for every class y
            out = out + h @ D.embed.weight.T
        return out.float()

    def _std_value(self) -> float:
        """The minibatch-std feature of a fixed group of real images, as the discriminator
        computes it in training (groups of ``mbstd_group`` consecutive images)."""
        if self._std is None:
            import torch

            from plugins.gan.engine.models import minibatch_std

            chosen = sorted(self.examples(), key=lambda e: e.id)[:STD_IMAGES]
            g = self.D.mbstd_group
            chosen = chosen[:max(g, len(chosen) - len(chosen) % g)]
            with torch.no_grad():
                h = self._features(self._net_input([self.read(e) for e in chosen]))
                self._std = float(minibatch_std(h, g)[:, -1].mean())
        return self._std

    def _anchor_value(self) -> float:
        """WGAN-GP only: the critic's mean score on fixed generated images (0 otherwise)."""
        if self.config.arch != "wgan-gp":
            return 0.0
        if self._anchor is None:
            import torch

            fakes = self.sample(ANCHOR_SAMPLES, ANCHOR_SEED)
            with torch.no_grad():
                self._anchor = float(self._logits(self._net_input(fakes)).max(1).values.mean())
        return self._anchor

    def per_example_loss(self, items: Sequence[np.ndarray]) -> np.ndarray:
        """``-log sigmoid(D(x))`` per image (its best class for conditional models): lower
        means the discriminator finds it more real."""
        import torch
        import torch.nn.functional as F

        anchor = self._anchor_value()
        with torch.no_grad():
            best = self._logits(self._net_input(items)).max(1).values - anchor
            return F.softplus(-best).double().cpu().numpy()

    # -- samples and features -------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> list[np.ndarray]:
        import torch

        from plugins.common.images import to_uint8
        from plugins.gan.engine.explore import latent

        if not 0 <= n <= SEED_STRIDE:
            raise UserError(f"a GAN audit draws at most {SEED_STRIDE} images per call, not {n}")
        if n == 0:
            return []
        seeds = [int(seed) * SEED_STRIDE + i for i in range(n)]
        z = torch.stack([latent(s, self.config.z_dim) for s in seeds]).to(self.device)
        y = None
        if self.config.conditional:
            y = torch.tensor([s % self.config.num_classes for s in seeds], device=self.device)
        out = []
        with torch.no_grad():
            for i in range(0, n, 256):
                out.append(to_uint8(self.G.synthesize(z[i:i + 256],
                                                      None if y is None else y[i:i + 256])))
        return list(np.concatenate(out))

    def embed(self, items: Sequence[np.ndarray]) -> np.ndarray:
        """The discriminator's last feature map, flattened and L2-normalised."""
        import torch

        with torch.no_grad():
            f = self._features(self._net_input(items)).flatten(1).double()
            f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return f.cpu().numpy()

    # -- reference models -----------------------------------------------------------------------
    def reference_job(self, holdout: float, seed: int) -> tuple[str, Any]:
        from plugins.common.images import is_builtin

        job, params = super().reference_job(holdout, seed)
        data = params.get("data")
        if not (isinstance(data, str) and is_builtin(data)):
            params["data"] = self.dataset.location
        return job, params


def _channels(a: np.ndarray, channels: int) -> np.ndarray:
    """An image item as ``(H, W, channels)`` uint8 (grey items of a colour model repeated,
    colour items of a grey model averaged the way Pillow's "L" conversion does)."""
    if a.dtype != np.uint8:
        raise UserError(f"an image item must be uint8, not {a.dtype}")
    a = a[:, :, None] if a.ndim == 2 else a[:, :, :3]
    if a.shape[2] == channels:
        return a
    if channels == 3:
        return np.repeat(a, 3, axis=2)
    grey = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(grey), 0, 255).astype(np.uint8)[:, :, None]
