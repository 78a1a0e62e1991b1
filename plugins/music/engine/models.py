"""The VAEs: a MusicVAE-style melody model and a convolutional one for piano-rolls and mels.

Both expose the same small interface so one training loop and one set of generation jobs serve
every mode: ``encode(x) -> (mu, logvar)``, ``reconstruction(x, z) -> (nll per phrase, logits)``,
``generate(z, temperature) -> phrases as arrays``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from plugins.music.engine.config import ModelConfig
from plugins.music.engine.phrase import FIRST_PITCH_TOKEN, HOLD, VOCAB


class MelodyVAE(nn.Module):
    """MusicVAE for monophonic melodies (Roberts et al., 2018), scaled for a CPU.

    A bidirectional LSTM reads the token string; its final states give the posterior mean and
    log-variance. The decoder is an autoregressive LSTM fed the previous token and a context: z
    itself for short phrases, or, for 4+ bars, one embedding per bar from a "conductor" LSTM run
    over z (the hierarchical decoder, which stops the bottom decoder from ignoring z on long
    phrases because its state is reset at every bar).

    With ``key_normalise`` (the default) the model works on phrases transposed to C major / A
    minor (see :mod:`.keys`); callers normalise before encoding and transpose results back.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.steps = cfg.steps
        self.start_token = VOCAB
        drop = cfg.dropout if cfg.enc_layers > 1 else 0.0
        self.embed = nn.Embedding(VOCAB + 1, cfg.embed)
        self.encoder = nn.LSTM(cfg.embed, cfg.enc_hidden, cfg.enc_layers, batch_first=True,
                               bidirectional=True, dropout=drop)
        self.to_mu = nn.Linear(2 * cfg.enc_hidden * cfg.enc_layers, cfg.latent)
        self.to_logvar = nn.Linear(2 * cfg.enc_hidden * cfg.enc_layers, cfg.latent)
        self.units = cfg.bars if cfg.use_conductor else 1
        if cfg.use_conductor:
            self.conductor_init = nn.Linear(cfg.latent, 2 * cfg.conductor_hidden)
            self.conductor = nn.LSTM(cfg.latent, cfg.conductor_hidden, batch_first=True)
            ctx_dim = cfg.conductor_hidden
        else:
            ctx_dim = cfg.latent
        self.dec_init = nn.Linear(ctx_dim, 2 * cfg.dec_layers * cfg.dec_hidden)
        self.decoder = nn.LSTM(cfg.embed + ctx_dim, cfg.dec_hidden, cfg.dec_layers,
                               batch_first=True, dropout=cfg.dropout if cfg.dec_layers > 1 else 0)
        self.out = nn.Linear(cfg.dec_hidden, VOCAB)

    # -- encoder --------------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, (h, _c) = self.encoder(self.embed(tokens))
        h = h.transpose(0, 1).reshape(tokens.shape[0], -1)  # every layer, both directions
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 6.0)

    # -- decoder --------------------------------------------------------------------------------
    def contexts(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, units, ctx)``: z itself, or the conductor's per-bar embeddings."""
        if not self.cfg.use_conductor:
            return z[:, None]
        h0, c0 = torch.tanh(self.conductor_init(z)).chunk(2, dim=-1)
        inp = z[:, None].expand(-1, self.units, -1)
        out, _ = self.conductor(inp, (h0[None].contiguous(), c0[None].contiguous()))
        return out

    def _init_state(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, layers, hid = ctx.shape[0], self.cfg.dec_layers, self.cfg.dec_hidden
        s = torch.tanh(self.dec_init(ctx)).view(n, 2, layers, hid).permute(1, 2, 0, 3)
        return s[0].contiguous(), s[1].contiguous()

    def reconstruction(self, tokens: torch.Tensor, z: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced negative log-likelihood per phrase (nats) and the logits."""
        b, t = tokens.shape
        prev = torch.cat([tokens.new_full((b, 1), self.start_token), tokens[:, :-1]], 1)
        emb = self.embed(prev)
        ctx = self.contexts(z)
        u = self.units
        length = t // u
        c = ctx.reshape(b * u, -1)
        x = torch.cat([emb.reshape(b * u, length, -1), c[:, None].expand(-1, length, -1)], -1)
        y, _ = self.decoder(x, self._init_state(c))
        logits = self.out(y.reshape(b, t, -1))
        nll = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none").sum(1)
        return nll, logits

    @torch.no_grad()
    def generate(self, z: torch.Tensor, temperature: float = 1.0,
                 generator: torch.Generator | None = None,
                 prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Token strings decoded from ``z``: sampled at ``temperature`` (0 means argmax), each
        step fed back as the next input. A HOLD is only allowed while a note sounds.

        ``prefix`` ``(B, P)`` is teacher-forced: the first P steps are those tokens (fed to the
        decoder as if it had chosen them), the rest is free-run from there (continuation)."""
        b = z.shape[0]
        forced = 0 if prefix is None else min(int(prefix.shape[1]), self.steps)
        ctx = self.contexts(z)
        prev = z.new_full((b,), self.start_token, dtype=torch.long)
        out = torch.empty(b, self.steps, dtype=torch.long, device=z.device)
        sounding = torch.zeros(b, dtype=torch.bool, device=z.device)
        length = self.steps // self.units
        hold_mask = torch.zeros(VOCAB, dtype=torch.bool, device=z.device)
        hold_mask[HOLD] = True
        i = 0
        for u in range(self.units):
            c = ctx[:, u]
            state = self._init_state(c)
            for _ in range(length):
                x = torch.cat([self.embed(prev), c], -1)[:, None]
                y, state = self.decoder(x, state)
                logits = self.out(y[:, 0])
                logits = logits.masked_fill((~sounding)[:, None] & hold_mask, float("-inf"))
                if i < forced:
                    assert prefix is not None
                    tok = prefix[:, i].to(z.device)
                elif temperature <= 0:
                    tok = logits.argmax(-1)
                else:
                    probs = torch.softmax(logits / temperature, -1)
                    tok = torch.multinomial(probs, 1, generator=generator)[:, 0]
                out[:, i] = tok
                sounding = (tok >= FIRST_PITCH_TOKEN) | (sounding & (tok == HOLD))
                prev = tok
                i += 1
        return out


class ConvVAE(nn.Module):
    """A convolutional VAE over 2-D "images": piano-rolls ``(2, 96, steps)`` (onsets, frames)
    or log-mel spectrograms ``(1, n_mels, frames)``, with Bernoulli outputs (the targets are in
    [0, 1])."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, h, w = cfg.input_shape()
        n = len(cfg.widths)
        if h % (1 << n):
            raise ValueError(f"input height {h} must divide by {1 << n} for {n} conv layers")
        # a width the strides do not divide (two 9/8 bars: 36 steps) is padded with silence
        # on the right and the output cropped back; widths that divide (every 4/4 phrase,
        # the models saved before metres) are untouched
        self.width = w
        w = -(-w // (1 << n)) * (1 << n)
        self.pad = w - self.width
        layers: list[nn.Module] = []
        ch = c
        for width in cfg.widths:
            layers += [nn.Conv2d(ch, width, 4, 2, 1), nn.GroupNorm(min(8, width), width),
                       nn.SiLU()]
            ch = width
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.grid = (ch, h >> n, w >> n)
        flat = ch * (h >> n) * (w >> n)
        self.to_mu = nn.Linear(flat, cfg.latent)
        self.to_logvar = nn.Linear(flat, cfg.latent)
        self.from_z = nn.Linear(cfg.latent, flat)
        dec: list[nn.Module] = []
        for width in reversed(cfg.widths[:-1]):
            dec += [nn.ConvTranspose2d(ch, width, 4, 2, 1), nn.GroupNorm(min(8, width), width),
                    nn.SiLU()]
            ch = width
        dec += [nn.ConvTranspose2d(ch, c, 4, 2, 1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.float()
        if self.pad:
            x = F.pad(x, (0, self.pad))
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 6.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(F.silu(self.from_z(z)).view(z.shape[0], *self.grid))
        return out[..., :self.width] if self.pad else out

    def reconstruction(self, x: torch.Tensor, z: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.decode_logits(z)
        nll = F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")
        return nll.flatten(1).sum(1), logits

    @torch.no_grad()
    def generate(self, z: torch.Tensor, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Output probabilities (piano-roll cells or mel bins); ``temperature`` is applied to z
        by the caller, as sampling every cell independently only adds noise."""
        return torch.sigmoid(self.decode_logits(z))


def build_model(cfg: ModelConfig) -> Any:
    if cfg.mode == "melody":
        return MelodyVAE(cfg)
    if cfg.mode in ("pianoroll", "audio"):
        return ConvVAE(cfg)
    raise ValueError(f"unknown mode {cfg.mode}")


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per phrase, in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + eps * (0.5 * logvar).exp()


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (MusicVAE interpolates this way: points stay at the norm the prior
    expects, where a straight line would pass through the unlikely region near the origin)."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return (1 - t) * a + t * b
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b
