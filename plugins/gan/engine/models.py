"""Generator and discriminator networks (DCGAN family), optionally class-conditional.

One generator serves every architecture: a linear projection of the latent (and class embedding)
to a 4x4 map, then 4x4 stride-2 transposed convolutions with batch norm up to the output size, a
3x3 convolution and tanh. Widths double at each lower resolution (capped at ``max_width``), so the
cost is spread evenly over the levels.

The discriminator mirrors it with 4x4 stride-2 convolutions; its normalisation depends on the
architecture (batch norm + dropout for DCGAN, none for the WGAN-GP critic since the gradient
penalty is per-sample, spectral norm for SNGAN). Conditional discriminators add the projection
term ``<embed(y), h>`` to the unconditional logit (Miyato & Koyama 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from plugins.gan.engine.config import GanConfig

EMBED_STD = 1.0


def _width(base: int, level: int, levels: int, cap: int) -> int:
    """Channels at ``level`` (0 = 4x4, ``levels`` = output size)."""
    return min(cap, base * 2 ** (levels - level))


class Generator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        self.num_classes = cfg.num_classes
        self.size = cfg.size
        self.net_size = cfg.net_size
        n = cfg.levels
        c0 = _width(cfg.g_width, 0, n, cfg.max_width)
        self.c0 = c0
        emb_dim = cfg.z_dim if cfg.num_classes else 0
        self.embed = nn.Embedding(cfg.num_classes, emb_dim) if cfg.num_classes else None
        # The book's first layer is a 4x4 "valid" transposed convolution of the 1x1 latent:
        # exactly a linear layer to a 4x4 map.
        self.project = nn.Linear(cfg.z_dim + emb_dim, c0 * 16, bias=False)
        self.bn0 = nn.BatchNorm2d(c0)
        act: type[nn.Module] = nn.LeakyReLU if cfg.arch == "dcgan" else nn.ReLU
        self.act0 = act(0.2) if cfg.arch == "dcgan" else act()
        blocks: list[nn.Module] = []
        for level in range(1, n + 1):
            cin = _width(cfg.g_width, level - 1, n, cfg.max_width)
            cout = _width(cfg.g_width, level, n, cfg.max_width)
            blocks += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                       act(0.2) if cfg.arch == "dcgan" else act()]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(_width(cfg.g_width, n, n, cfg.max_width), cfg.channels, 3, 1, 1)
        _init_dcgan(self)
        if self.embed is not None:  # as strong as the latent from the start, so classes separate
            nn.init.normal_(self.embed.weight, 0.0, EMBED_STD)

    def class_embedding(self, y: Tensor) -> Tensor:
        """Embedding of integer labels ``(N,)``; soft mixes are made by blending these."""
        assert self.embed is not None
        return self.embed(y)

    def stem(self, z: Tensor, y: Tensor | None = None, y_emb: Tensor | None = None) -> Tensor:
        """The 4x4 feature map after projection, norm and activation (GANSpace works here)."""
        if self.embed is not None:
            if y_emb is None:
                if y is None:
                    raise ValueError("a conditional generator needs class labels")
                y_emb = self.embed(y)
            z = torch.cat([z, y_emb.to(z.dtype)], dim=1)
        h = self.project(z).view(z.shape[0], self.c0, 4, 4)
        return self.act0(self.bn0(h))

    def forward(self, z: Tensor, y: Tensor | None = None, y_emb: Tensor | None = None) -> Tensor:
        """Images at the training resolution (what the discriminator sees)."""
        return torch.tanh(self.to_image(self.blocks(self.stem(z, y, y_emb))))

    def synthesize(self, z: Tensor, y: Tensor | None = None, y_emb: Tensor | None = None
                   ) -> Tensor:
        """Images at the output size: what every sample shown or saved goes through."""
        return upscale(self(z, y, y_emb), self.size)


class Discriminator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        n = cfg.levels
        sn = cfg.arch == "sngan"
        bn = cfg.arch == "dcgan"

        def wrap(m: nn.Module) -> nn.Module:
            return spectral_norm(m) if sn else m

        slope = 0.1 if sn else 0.2
        c_top = _width(cfg.d_width, n, n, cfg.max_width)
        layers: list[nn.Module] = [wrap(nn.Conv2d(cfg.channels, c_top, 3, 1, 1)),
                                   nn.LeakyReLU(slope)]
        for level in range(n, 0, -1):
            cin = _width(cfg.d_width, level, n, cfg.max_width)
            cout = _width(cfg.d_width, level - 1, n, cfg.max_width)
            layers.append(wrap(nn.Conv2d(cin, cout, 4, 2, 1, bias=not bn)))
            if bn:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(slope))
            if cfg.d_dropout > 0:
                layers.append(SeededDropout(cfg.d_dropout))
        self.body = nn.Sequential(*layers)
        self.mbstd_group = cfg.mbstd_group
        feat = (_width(cfg.d_width, 0, n, cfg.max_width) + (1 if cfg.mbstd_group else 0)) * 16
        self.head = wrap(nn.Linear(feat, 1))
        self.embed = wrap(nn.Embedding(cfg.num_classes, feat)) if cfg.num_classes else None
        self.has_batchnorm = bn
        if not sn:
            _init_dcgan(self)
        #: what training privately changed in this network, in words (empty otherwise)
        self.private_notes: list[str] = []
        if cfg.private:
            self._make_private()

    def _make_private(self) -> None:
        """The layers Opacus cannot train privately replaced (``plugins.common.privacy.
        prepare_model``: spectral norm folded into plain weights, batch norm to group norm).
        Done here, not by the trainer, so that whoever rebuilds a private run's discriminator
        from its config (resume, the audit's probe) gets the same layers."""
        from plugins.common.privacy import prepare_model

        notes: list[str] = []
        for name in ("body", "head", "embed"):
            part = getattr(self, name)
            if part is not None:
                fixed, said = prepare_model(part, "the discriminator")
                setattr(self, name, fixed)
                notes += said
        self.private_notes = _merge_notes(notes)
        self.has_batchnorm = False

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.body(x)
        if self.mbstd_group:
            h = minibatch_std(h, self.mbstd_group)
        h = h.flatten(1)
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional discriminator needs class labels")
            out = out + (self.embed(y) * h).sum(dim=1)
        return out


def _merge_notes(notes: list[str]) -> list[str]:
    """One sentence per kind of change (the parts of a network are prepared one by one)."""
    import re

    merged: dict[str, int] = {}
    for note in notes:
        m = re.search(r"\b(\d+)\b", note)
        key = note.replace(m.group(1), "{n}", 1) if m else note
        merged[key] = merged.get(key, 0) + (int(m.group(1)) if m else 0)
    return [k.replace("{n}", str(n), 1) for k, n in merged.items()]


def minibatch_std(h: Tensor, group: int) -> Tensor:
    """Append the average standard deviation across groups of consecutive samples as one more
    feature map (Karras et al. 2018): a batch of near-identical fakes is then easy to spot, which
    pushes the generator away from mode collapse. Groups are consecutive so that a batch made of
    a real half and a fake half never mixes the two."""
    n, c, hh, ww = h.shape
    g = max(k for k in range(1, min(group, n) + 1) if n % k == 0)
    if g < 2:
        return torch.cat([h, torch.zeros(n, 1, hh, ww, device=h.device, dtype=h.dtype)], 1)
    grouped = h.float().view(n // g, g, c, hh, ww)
    dev = grouped - grouped.mean(dim=1, keepdim=True)
    # (written out: torch's var over a middle dimension is ~6x slower on the CPU, forward+back)
    std = ((dev * dev).mean(dim=1) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n // g,)
    feat = std.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, hh, ww).to(h.dtype)
    return torch.cat([h, feat], 1)


class SeededDropout(nn.Module):
    """Dropout drawing from the trainer's own generator instead of torch's global one, so a run
    resumes exactly even when other jobs use the global generator meanwhile."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None  # set by the trainer

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p <= 0:
            return x
        gen = self.generator
        keep = torch.rand(x.shape, generator=gen, device=gen.device if gen else None)
        mask = (keep.to(x.device) >= self.p).to(x.dtype) / (1.0 - self.p)
        return x * mask


def upscale(x: Tensor, size: int) -> Tensor:
    """Bicubic enlargement from the training resolution to the output size (identity when they
    are equal); the inverse of :func:`downscale` for images that carry no finer detail."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def downscale(x: Tensor, size: int) -> Tensor:
    """Area-average reduction to ``size`` (identity when equal)."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="area")


def _init_dcgan(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) weights, N(1, 0.02) batch-norm scales."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build(cfg: GanConfig) -> tuple[Generator, Discriminator]:
    return Generator(cfg), Discriminator(cfg)
