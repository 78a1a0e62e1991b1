"""The three GAN objectives, written so each reads like its paper.

Discriminator outputs are raw scores (logits); every loss is a mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def d_loss(arch: str, real: Tensor, fake: Tensor, label_noise: float = 0.0,
           gen: torch.Generator | None = None) -> Tensor:
    """Discriminator / critic loss on real and fake scores."""
    if arch == "dcgan":
        # Binary cross-entropy; the book softens the targets with a little uniform noise so the
        # discriminator never becomes perfectly certain.
        ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
        if label_noise > 0:
            ones = ones - label_noise * torch.rand(real.shape, generator=gen,
                                                   device=gen.device if gen else None
                                                   ).to(real.device, real.dtype)
            zeros = zeros + label_noise * torch.rand(fake.shape, generator=gen,
                                                     device=gen.device if gen else None
                                                     ).to(fake.device, fake.dtype)
        return (F.binary_cross_entropy_with_logits(real, ones)
                + F.binary_cross_entropy_with_logits(fake, zeros))
    if arch == "sngan":  # hinge loss
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if arch == "wgan-gp":  # Wasserstein critic (the penalty is added by the caller)
        return fake.mean() - real.mean()
    raise ValueError(f"unknown arch {arch!r}")


def d_loss_rows(arch: str, real: Tensor, fake: Tensor, label_noise: float = 0.0,
                gen: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """:func:`d_loss` one row at a time: each real and each fake score's own term (a private
    step clips every row's gradient on its own). ``d_loss`` is the sum of each side's mean."""
    if arch == "dcgan":
        ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
        if label_noise > 0:
            ones = ones - label_noise * torch.rand(real.shape, generator=gen,
                                                   device=gen.device if gen else None
                                                   ).to(real.device, real.dtype)
            zeros = zeros + label_noise * torch.rand(fake.shape, generator=gen,
                                                     device=gen.device if gen else None
                                                     ).to(fake.device, fake.dtype)
        return (F.binary_cross_entropy_with_logits(real, ones, reduction="none"),
                F.binary_cross_entropy_with_logits(fake, zeros, reduction="none"))
    if arch == "sngan":
        return F.relu(1.0 - real), F.relu(1.0 + fake)
    if arch == "wgan-gp":
        return -real, fake
    raise ValueError(f"unknown arch {arch!r}")


def g_loss(arch: str, fake: Tensor) -> Tensor:
    if arch == "dcgan":  # non-saturating: maximise log D(G(z))
        return F.softplus(-fake).mean()
    return -fake.mean()  # hinge and Wasserstein generators


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     gen: torch.Generator) -> Tensor:
    """WGAN-GP: ``E[(|grad D(x_hat)| - 1)^2]`` on random interpolates of real and fake.

    Computed in float32 outside autocast: the penalty's second-order gradients are the part of
    training most sensitive to reduced precision, and it is a small share of the cost.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=gen.device).to(real.device)
    x_hat = (alpha * real.detach().float() + (1 - alpha) * fake.detach().float())
    x_hat.requires_grad_(True)
    score = critic(x_hat)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def d_outputs_as_probability(arch: str, scores: Tensor) -> Tensor:
    """What the D(x) / D(G(z)) plots show: a probability for DCGAN, the raw score otherwise."""
    return torch.sigmoid(scores) if arch == "dcgan" else scores
