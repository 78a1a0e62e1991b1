"""Continue a phrase: what might come next after a clip (as Magenta Studio's Continue).

Our models are VAEs over fixed-length phrases, not open-ended language models, so a
continuation is built bar by bar in a sliding window the length of the model's phrase: the last
``window - 1`` bars heard so far are the window's opening (its *context*) and the model writes
the bar after them; the window then slides on by a bar until the asked-for bars are written.
For each window:

1. **Search: which phrase is this the start of?** Draw ``candidates`` latent codes from the
   prior and weigh each by how likely the decoder finds the context under it (teacher-forced
   log-likelihood of the context's tokens; for piano rolls, of its onsets and frames).
   Resampling codes in proportion to those weights is self-normalised importance sampling of
   p(z | context). (Encoding the clip alone would describe a phrase that *ends* where the clip
   ends: the opposite of what we want.)
2. **Refine, with the encoder.** A prior draw rarely lands where a trained model keeps its
   phrases (posteriors are narrow and far from the origin), so ``rounds`` times: decode a whole
   window that opens with the context (melodies: the context's tokens are teacher-forced and
   the rest sampled; piano rolls: the decoded roll with the context pasted over its opening),
   then encode that window and take its posterior mean. Each round is a step of an alternating
   (Gibbs-like) chain between "the window" and "its code", which keeps the code on the model's
   own phrases and the window's opening on the clip. Measured on a model that learnt two
   phrases: prior draws alone continued the clip correctly in 0 of 6 tries, three rounds in 5.
3. **Write the bar.** Melodies: the decoder is fed the context (teacher forcing: it continues
   from exactly those notes, not from a paraphrase of them) and runs free at
   ``temperature``. Piano rolls: the refined code's phrase after the context.

Melody models that learn in C major / A minor (``key_normalise``) hear the clip transposed
there and write the continuation back in the clip's key. Sound (audio) models are not
continued: they have no notes to hold the clip's place. No Qt.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from plugins.music.engine import keys as keys_mod
from plugins.music.engine.generate import LoadedModel
from plugins.music.engine.midi import window
from plugins.music.engine.phrase import (
    Phrase,
    canonical_tokens,
    notes_to_roll,
    notes_to_tokens,
    roll_to_notes,
    tokens_to_notes,
)
from studio.errors import UserError

MAX_BARS = 64


def _check(lm: LoadedModel, clip: Phrase, bars: int, n: int) -> int:
    """The steps in one bar; raises UserError for what cannot be continued."""
    if lm.mode == "audio":
        raise UserError("Continue works with melody and piano-roll models: a sound model has no "
                        "notes to continue")
    if clip.kind == "audio":
        raise UserError("the clip is sound, not notes: choose a phrase of notes to continue")
    if clip.metre != lm.cfg.metre:
        raise UserError(f"the clip is in {clip.metre} and the model writes {lm.cfg.metre}: "
                        "choose a clip in the model's metre")
    if not 1 <= bars <= MAX_BARS:
        raise UserError(f"--bars should be 1 to {MAX_BARS}")
    if not 1 <= n <= 100:
        raise UserError("--n should be 1 to 100 continuations")
    if not len(np.asarray(clip.notes).reshape(-1, 4)):
        raise UserError("the clip has no notes: choose a phrase with notes to continue")
    return lm.cfg.steps // lm.cfg.bars


def continue_phrase(lm: LoadedModel, clip: Phrase, bars: int = 2, n: int = 4,
                    temperature: float = 1.0, seed: int = 1, candidates: int = 256,
                    rounds: int = 3, check: Callable[[], None] | None = None) -> list[Phrase]:
    """``n`` continuations of ``clip``, each ``bars`` bars long (only the new bars: they go
    right after the clip). Same seed, same continuations."""
    bar = _check(lm, clip, bars, n)
    g = torch.Generator().manual_seed(int(seed))
    clip_steps = max(1, int(clip.steps))
    notes = np.asarray(clip.notes, dtype=np.int32).reshape(-1, 4)
    if lm.mode == "melody":
        new = _continue_melody(lm, notes, clip_steps, bars * bar, bar, n, temperature, g,
                               candidates, rounds, check)
        return [Phrase(t, bars * bar, "melody", f"continuation {i + 1}",
                       meta={"continues": clip.label} if clip.label else {},
                       metre=lm.cfg.metre) for i, t in enumerate(new)]
    rolls = _continue_roll(lm, notes, clip_steps, bars * bar, bar, n, temperature, g,
                           candidates, rounds, check)
    return [Phrase(roll_to_notes(r), bars * bar, "pianoroll", f"continuation {i + 1}",
                   meta={"continues": clip.label} if clip.label else {}, metre=lm.cfg.metre)
            for i, r in enumerate(rolls)]


def _resample(scores: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """For each row of log-weights ``(n, K)``, one index drawn in proportion to the weights."""
    return torch.multinomial(torch.softmax(scores, -1), 1, generator=g)[:, 0]


@torch.no_grad()
def _continue_melody(lm: LoadedModel, notes: np.ndarray, clip_steps: int, new_steps: int,
                     bar: int, n: int, temperature: float, g: torch.Generator, k: int,
                     rounds: int, check: Callable[[], None] | None) -> list[np.ndarray]:
    model, steps = lm.model, lm.cfg.steps
    history = torch.from_numpy(canonical_tokens(notes_to_tokens(notes, clip_steps)))
    key = None
    if lm.cfg.key_normalise:  # the model hears the clip in C major / A minor
        norm, keys = keys_mod.normalise(history[None])
        history, key = norm[0], keys[:1]
    context = _context(steps, bar)
    hist = history[None].expand(n, -1).clone()
    written = 0
    while written < new_steps:
        if check is not None:
            check()
        ctx = hist[:, -context:]
        p = ctx.shape[1]
        z = _pick_codes(model, ctx[:1], steps, n, k, g, lm.device)
        forced = ctx.to(lm.device)
        for _ in range(rounds):  # decode a window opening with the context; encode it
            z, _ = model.encode(model.generate(z, 1.0, g, prefix=forced))
        out = model.generate(z, temperature, g, prefix=forced).cpu()
        fresh = out[:, p:p + min(steps - p, new_steps - written)]
        hist = torch.cat([hist, fresh], 1)
        written += fresh.shape[1]
    if key is not None:
        hist = keys_mod.denormalise(hist, key.expand(n))
    # notes of the whole line, cut after the clip: a note held over the join is struck again
    return [window(tokens_to_notes(t), clip_steps, new_steps) for t in hist.numpy()]


def _pick_codes(model: torch.nn.Module, ctx: torch.Tensor, steps: int, n: int, k: int,
                g: torch.Generator, device: str) -> torch.Tensor:
    """``n`` latent codes resampled from ``k`` prior draws by the teacher-forced likelihood of
    the context ``(1, P)`` (the decoder is causal: positions past P do not change it)."""
    p = ctx.shape[1]
    z = torch.randn(k, model.cfg.latent, generator=g).to(device)
    tokens = torch.zeros(k, steps, dtype=torch.long, device=device)
    tokens[:, :p] = ctx.to(device)
    _, logits = model.reconstruction(tokens, z)
    ll = -F.cross_entropy(logits[:, :p].transpose(1, 2), tokens[:, :p], reduction="none").sum(1)
    # the same weights for every continuation: each draws its own code from them
    return z[_resample(ll[None].expand(n, -1).cpu(), g).to(device)]


@torch.no_grad()
def _continue_roll(lm: LoadedModel, notes: np.ndarray, clip_steps: int, new_steps: int,
                   bar: int, n: int, temperature: float, g: torch.Generator, k: int,
                   rounds: int, check: Callable[[], None] | None) -> list[np.ndarray]:
    """Piano rolls are decoded in one shot: codes resampled by how well their phrase's opening
    matches the context (``temperature`` sharpens or flattens the weights; 0 takes the best),
    refined by decoding, pasting the context over the opening and encoding again."""
    model, steps = lm.model, lm.cfg.steps
    context = _context(steps, bar)
    hist = np.repeat(notes_to_roll(notes, clip_steps)[None], n, 0)
    written = 0
    while written < new_steps:
        if check is not None:
            check()
        p = min(context, hist.shape[-1])
        take = min(steps - p, new_steps - written)
        ctx = torch.from_numpy(np.ascontiguousarray(hist[..., -p:])).to(lm.device)
        z = torch.randn(k, model.cfg.latent, generator=g).to(lm.device)
        logits = model.decode_logits(z)
        ll = -F.binary_cross_entropy_with_logits(
            logits[..., :p], ctx[:1].expand(k, -1, -1, -1), reduction="none"
        ).flatten(1).sum(1).cpu()
        if temperature <= 0:
            pick = ll.argmax().expand(n)
        else:
            pick = _resample(ll[None].expand(n, -1) / temperature, g)
        z = z[pick.to(lm.device)]
        for _ in range(rounds):
            roll = torch.sigmoid(model.decode_logits(z))
            roll[..., :p] = ctx
            z, _ = model.encode((roll > 0.5).float())
        roll = torch.sigmoid(model.decode_logits(z)).cpu().numpy()
        # binarised, so the next window's context is notes, not probabilities
        fresh = np.stack([notes_to_roll(roll_to_notes(r[:, :, p:p + take]), take)
                          for r in roll])
        hist = np.concatenate([hist, fresh], -1)
        written += take
    return list(hist[..., clip_steps:clip_steps + new_steps])


def _context(steps: int, bar: int) -> int:
    """Steps of context a window holds: all its bars but the one it writes (half of a one-bar
    model's window)."""
    return steps - bar if steps > bar else max(1, steps // 2)
