"""What a GAN run is made of: one dataclass, saved as ``config.json`` in the run folder.

Presets set the model widths, the batch size and the default architecture; the architecture
(``arch``) sets the losses and the discriminator's normalisation, following the papers each one
comes from:

* ``dcgan``: Radford et al. 2015, as in Foster's *Generative Deep Learning* (2nd ed., ch. 4):
  transposed convolutions with batch norm, a batch-normed discriminator with dropout, the
  non-saturating BCE loss, a little label noise, Adam(2e-4, beta1 = 0.5).
* ``wgan-gp``: Gulrajani et al. 2017: a critic without normalisation, Wasserstein loss with a
  gradient penalty of 10, five critic steps per generator step, Adam(1e-4, 0.0, 0.9).
* ``sngan``: Miyato et al. 2018: spectral normalisation on every discriminator layer and the
  hinge loss; one discriminator step per generator step, which makes it the cheapest stable
  choice on a CPU (the default).

Class-conditional variants feed a class embedding to the generator and use a projection
discriminator (Miyato & Koyama 2018) for every architecture.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

ARCHS = ("dcgan", "wgan-gp", "sngan")
SIZES = (32, 64, 128)

#: model widths and batch sizes; the others want a GPU. ``fast`` is tuned to learn the built-in
#: digits on 2 CPU cores in 10 minutes: with SNGAN, translation DiffAugment and the digits' native
#: 16 px it reached (bench judge, 1,000 samples) 92% confident samples at 2,500 steps and 97-98%
#: from 3,000 to 6,000 steps, every class 9.6-9.8%, diversity ~0.92 of the real digits'. One step
#: took 0.11-0.2 s on one busy CPU thread.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"arch": "sngan", "g_width": 16, "d_width": 32, "z_dim": 64, "batch_size": 64},
    "balanced": {"arch": "sngan", "g_width": 32, "d_width": 64, "z_dim": 100, "batch_size": 64},
    "quality": {"arch": "sngan", "g_width": 64, "d_width": 128, "z_dim": 128,
                "batch_size": 128},
}

#: per-architecture training defaults (the papers' values)
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "dcgan": {"lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999, "n_critic": 1,
              "label_noise": 0.1, "d_dropout": 0.3},
    "wgan-gp": {"lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.0, "beta2": 0.9, "n_critic": 5,
                "gp_weight": 10.0},
    "sngan": {"lr_g": 2e-4, "lr_d": 4e-4, "beta1": 0.5, "beta2": 0.999, "n_critic": 1},
}


@dataclass
class GanConfig:
    """Everything needed to rebuild and continue a run (stored in ``config.json``)."""

    arch: str = "sngan"
    preset: str = "fast"
    size: int = 32
    train_size: int = 0  # resolution the networks work at (0: ``size``); see ``native_size``
    channels: int = 1
    z_dim: int = 64
    num_classes: int = 0  # 0: unconditional
    class_names: list[str] = field(default_factory=list)
    g_width: int = 16  # channels at the output resolution; doubled at each lower level
    d_width: int = 16
    max_width: int = 512
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.99
    n_critic: int = 1
    gp_weight: float = 0.0
    label_noise: float = 0.0
    d_dropout: float = 0.0
    mbstd_group: int = 4  # minibatch standard deviation feature in D (0: off), against collapse
    diffaug: str = "translation"  # comma list of color, translation, cutout; "" for none
    ema_decay: float = 0.999
    amp: str = "auto"  # auto | off | bf16 | fp16 (CUDA only)
    seed: int = 0
    holdout: float = 0.0  # share of the images held out of training (chosen by seed)
    # differential privacy for the discriminator (plugins.common.privacy.PrivacySpec as JSON;
    # empty: trained normally). See ``private_adjustments``.
    private: dict[str, Any] = field(default_factory=dict)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def net_size(self) -> int:
        """The resolution the generator draws and the discriminator judges."""
        return self.train_size or self.size

    @property
    def levels(self) -> int:
        """Number of 2x up-samplings from the 4x4 start to ``net_size``."""
        return int(math.log2(self.net_size)) - 2

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GanConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> None:
        from studio.errors import UserError

        if self.arch not in ARCHS:
            raise UserError(f"arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        if self.size < 8 or self.size > 256 or self.size & (self.size - 1):
            raise UserError(f"image size must be a power of two (32, 64 or 128), not {self.size}")
        if self.train_size and (self.train_size < 8 or self.train_size > self.size
                                or self.train_size & (self.train_size - 1)):
            raise UserError(f"the training resolution must be a power of two between 8 and "
                            f"{self.size}, not {self.train_size}")
        if self.channels not in (1, 3):
            raise UserError("channels must be 1 (grayscale) or 3 (colour)")
        if self.batch_size < 2:
            raise UserError("batch size must be at least 2")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError("EMA decay must be in [0, 1)")
        if not 0.0 <= self.holdout < 1.0:
            raise UserError("the held-out share must be at least 0 and below 1")
        if self.private and self.arch == "wgan-gp":
            raise UserError("WGAN-GP cannot train privately: its gradient penalty needs second "
                            "derivatives of each example's gradient, which Opacus cannot "
                            "give. Choose SNGAN or DCGAN (--arch sngan)")
        from plugins.gan.engine.diffaug import parse_policy

        parse_policy(self.diffaug)


def make_config(arch: str | None = None, preset: str = "fast", **overrides: Any) -> GanConfig:
    """A config from a preset and an architecture (``None``: the preset's), then explicit
    overrides (``None`` = keep). The job's optional parameters mean "the preset's" or "the
    architecture's" by being ``None``, so these tables are the one place those defaults live."""
    from studio.errors import UserError

    if preset not in PRESETS:
        raise UserError(f"preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    arch = arch or PRESETS[preset]["arch"]
    if arch not in ARCHS:
        raise UserError(f"arch must be one of {', '.join(ARCHS)}, not {arch!r}")
    values: dict[str, Any] = {"preset": preset, **PRESETS[preset], **ARCH_DEFAULTS[arch],
                              "arch": arch}
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = GanConfig.from_json(values)
    private_adjustments(cfg)
    cfg.validate()
    return cfg


def private_adjustments(cfg: GanConfig) -> list[str]:
    """Settings a private run must change, changed in ``cfg``; returns them in words (the
    job logs them). The discriminator's own layers are made private in
    :class:`~plugins.gan.engine.models.Discriminator`."""
    if not cfg.private:
        return []
    notes = []
    if cfg.mbstd_group:
        cfg.mbstd_group = 0
        notes.append("The discriminator's minibatch-variety feature is off: it compares the "
                     "images of a batch with each other, so one image's gradient would depend "
                     "on the others and could not be clipped on its own.")
    if cfg.amp != "off":
        cfg.amp = "off"
        notes.append("Mixed precision is off: private steps run in full precision.")
    return notes
