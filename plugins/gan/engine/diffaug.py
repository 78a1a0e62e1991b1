"""DiffAugment (Zhao et al. 2020): the same random, differentiable augmentations applied to real
and generated images before the discriminator sees them.

On small datasets (a few thousand images or fewer) the discriminator otherwise memorises the
training set and its gradients stop helping the generator. Because the augmentations are
differentiable, the generator still receives gradients through them, and because they are applied
to both sides, the generator is not pushed to produce augmented-looking images.

All randomness comes from an explicit ``torch.Generator`` so that training resumes exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from studio.errors import UserError

POLICIES = ("color", "translation", "cutout")
#: words that mean "no augmentation" (an empty text is hard to type in a form or a shell)
OFF = ("off", "none")


def parse_policy(policy: str) -> tuple[str, ...]:
    """The augmentations of a comma list ("" or "off": none)."""
    parts = tuple(p.strip() for p in (policy or "").split(",")
                  if p.strip() and p.strip().lower() not in OFF)
    bad = [p for p in parts if p not in POLICIES]
    if bad:
        raise UserError(f"unknown DiffAugment policy {bad[0]!r}: use a comma list of "
                        f"{', '.join(POLICIES)} (or nothing)")
    return parts


def _rand(gen: torch.Generator, group: int, *shape: int, device: torch.device) -> torch.Tensor:
    """Uniform numbers shared by consecutive groups of ``group`` images."""
    n = shape[0]
    g = group if n % group == 0 else 1
    r = torch.rand(n // g, *shape[1:], generator=gen, device=gen.device).to(device)
    return r.repeat_interleave(g, dim=0)


def _randint(gen: torch.Generator, group: int, low: int, high: int, n: int,
             device: torch.device) -> torch.Tensor:
    g = group if n % group == 0 else 1
    r = torch.randint(low, high, (n // g,), generator=gen, device=gen.device).to(device)
    return r.repeat_interleave(g)


def color(x: torch.Tensor, gen: torch.Generator, group: int = 1) -> torch.Tensor:
    """Random brightness (±0.5), saturation (x0..2, colour only) and contrast (x0.5..1.5)."""
    n, dev = x.shape[0], x.device
    x = x + (_rand(gen, group, n, 1, 1, 1, device=dev) - 0.5)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_rand(gen, group, n, 1, 1, 1, device=dev) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(gen, group, n, 1, 1, 1, device=dev) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator, group: int = 1, ratio: float = 0.125
                ) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its side, filling with zeros (mid-grey)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sh == 0 and sw == 0:
        return x
    dy = _randint(gen, group, -sh, sh + 1, n, x.device)
    dx = _randint(gen, group, -sw, sw + 1, n, x.device)
    padded = F.pad(x, (sw, sw, sh, sh))
    rows = (torch.arange(h, device=x.device)[None, :] + sh - dy[:, None])  # (n, h)
    cols = (torch.arange(w, device=x.device)[None, :] + sw - dx[:, None])  # (n, w)
    c = x.shape[1]
    idx_r = rows[:, None, :, None].expand(n, c, h, padded.shape[3])
    out = padded.gather(2, idx_r)
    idx_c = cols[:, None, None, :].expand(n, c, h, w)
    return out.gather(3, idx_c)


def cutout(x: torch.Tensor, gen: torch.Generator, group: int = 1, ratio: float = 0.5
           ) -> torch.Tensor:
    """Zero a random square of ``ratio`` of the side in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = _randint(gen, group, 0, h + (1 - ch % 2), n, x.device)
    cx = _randint(gen, group, 0, w + (1 - cw % 2), n, x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= (cy - ch // 2)[:, None]) & (ys < (cy - ch // 2 + ch)[:, None])  # (n, h)
    in_x = (xs >= (cx - cw // 2)[:, None]) & (xs < (cx - cw // 2 + cw)[:, None])  # (n, w)
    mask = ~(in_y[:, :, None] & in_x[:, None, :])
    return x * mask[:, None].to(x.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator,
                 group: int = 1) -> torch.Tensor:
    """Apply ``policy``; consecutive groups of ``group`` images share one random transform.

    Shared transforms matter with the discriminator's minibatch-std feature: with independent
    shifts, a collapsed generator's identical images would look varied after augmentation and
    the feature could no longer see the collapse.
    """
    for name in policy:
        x = _OPS[name](x, gen, max(1, group))
    return x.contiguous()
