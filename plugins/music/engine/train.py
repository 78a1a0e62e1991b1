"""One music VAE's training, as a task the shared loop runs (``plugins.common.training``).

beta-VAE objective with MusicVAE's two tricks against posterior collapse: beta ramps up from 0
over ``kl_warmup`` steps, and the KL is only penalised above ``free_bits`` nats per phrase. The
learning rate follows a cosine from ``lr`` to ``lr_final`` over the run: the loop's
``LoopState.fraction`` measures it in steps, or, under a time budget, against the step the budget
is expected to end at.

The loop owns the budgets, the cadences (held-out evaluation and the phrase previews together,
every ``eval_every`` steps; checkpoints every ``checkpoint_every``), the checkpoint on Stop and
exact resume; :class:`MusicTask` brings one step, the evaluation, the previews and the model
folder (``model.safetensors`` + ``config.json``, written at every checkpoint and at the end).
Everything random in a step draws from the batcher's generator (its state is in the
checkpoint) or the global one (the loop saves it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plugins.common.privacy import METRIC, PrivacySpec, PrivateTraining, prepare_model
from plugins.common.training import LoopState, Reporter, Schedule
from plugins.music.engine import config as cfg_mod
from plugins.music.engine import keys as keys_mod
from plugins.music.engine.config import ModelConfig, TrainConfig
from plugins.music.engine.data import PhraseSet, transpose_range
from plugins.music.engine.models import build_model, kl_divergence, reparameterise
from plugins.music.engine.phrase import FIRST_PITCH_TOKEN, Phrase, roll_to_notes, tokens_to_notes
from studio import storage
from studio.errors import UserError

CHECKPOINT = "checkpoints/last.safetensors"
LOG_EVERY = 10


@dataclass
class Batcher:
    """Shuffled mini-batches from tensors in memory, with random transposition for melodies and
    piano-rolls. Its generator state is checkpointed, so resume replays the same order."""

    data: torch.Tensor
    batch_size: int
    mode: str
    transpose: int
    seed: int
    generator: torch.Generator = field(init=False)
    lo: torch.Tensor | None = field(init=False, default=None)
    hi: torch.Tensor | None = field(init=False, default=None)
    _perm: torch.Tensor | None = field(init=False, default=None)
    _pos: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)
        if self.mode == "melody" and self.transpose:
            lo, hi = transpose_range(self.data.cpu().numpy())
            self.lo = torch.from_numpy(np.maximum(lo, -self.transpose)).to(self.data.device)
            self.hi = torch.from_numpy(np.minimum(hi, self.transpose)).to(self.data.device)

    def state(self) -> dict[str, Any]:
        return {"gen": self.generator.get_state(), "pos": self._pos,
                "perm": self._perm if self._perm is not None else torch.zeros(0)}

    def load_state(self, st: dict[str, Any]) -> None:
        self.generator.set_state(st["gen"])
        self._pos = int(st["pos"])
        self._perm = st["perm"].long() if st["perm"].numel() else None

    def next(self) -> torch.Tensor:
        n = self.data.shape[0]
        bs = min(self.batch_size, n)
        if self._perm is None or self._pos + bs > n:
            self._perm = torch.randperm(n, generator=self.generator)
            self._pos = 0
        idx = self._perm[self._pos:self._pos + bs].to(self.data.device)
        self._pos += bs
        return self.take(idx)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """The phrases ``idx`` with their augmentation (a private run draws ``idx`` by Poisson
        sampling; its piano-rolls are not transposed: see ``MusicTask``)."""
        idx = idx.to(self.data.device)
        bs = int(idx.numel())
        x = self.data[idx]
        if self.mode == "melody" and self.lo is not None and self.hi is not None:
            lo, hi = self.lo[idx], self.hi[idx]
            r = torch.rand(bs, generator=self.generator).to(x.device)
            shift = lo + (r * (hi - lo + 1).float()).long().clamp(max=hi - lo)
            x = torch.where(x >= FIRST_PITCH_TOKEN, x + shift[:, None], x)
        elif self.mode == "pianoroll" and self.transpose and bs:
            rows = x.amax(dim=(0, 1, 3)).nonzero()
            if len(rows):
                low, high = int(rows.min()), int(rows.max())
                k_lo = max(-self.transpose, -low)
                k_hi = min(self.transpose, x.shape[2] - 1 - high)
                k = int(torch.randint(k_lo, k_hi + 1, (1,), generator=self.generator))
                x = torch.roll(x, k, dims=2)
        return x if self.mode == "melody" else x.float()


def phrase_tensor(ps: PhraseSet, device: str = "cpu") -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(ps.data))
    return (t.long() if ps.mode == "melody" else t).to(device)


def beta_at(step: int, tc: TrainConfig) -> float:
    return tc.beta * min(1.0, step / max(1, tc.kl_warmup))


def lr_at(frac: float, step: int, tc: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / 50)
    frac = min(1.0, max(0.0, frac))
    return warm * (tc.lr_final + 0.5 * (tc.lr - tc.lr_final) * (1 + math.cos(math.pi * frac)))


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: Any, data: torch.Tensor, *, sample_z: bool = False, temperature: float = 0.0,
             limit: int | None = 512, seed: int = 0, batch: int = 256) -> dict[str, float]:
    """Held-out reconstruction: teacher-forced and free-running ("sampled") per-step accuracy.

    ``sample_z`` draws z from q(z|x) instead of taking its mean; ``temperature`` 0 decodes with
    argmax, above 0 it samples each step. Piano-rolls report frame F1, mels their error in dB.
    """
    from plugins.music.engine import metrics

    was_training = model.training
    model.eval()
    x_all = data if limit is None else data[:limit]
    g = torch.Generator().manual_seed(seed)
    mode = model.cfg.mode
    tf_hits = samp_hits = onset_hits = onsets = total = 0.0
    f1_num = f1_den = err = 0.0
    for i in range(0, x_all.shape[0], batch):
        x = x_all[i:i + batch]
        keys = None
        if mode == "melody" and model.cfg.key_normalise:
            x, keys = keys_mod.normalise(x)
        mu, logvar = model.encode(x)
        z = reparameterise(mu, logvar, g) if sample_z else mu
        _, logits = model.reconstruction(x, z)
        if mode == "melody":
            tf = logits.argmax(-1)
            out = model.generate(z, temperature, g)
            if keys is not None:  # compare in the phrases' own keys
                x, tf, out = (keys_mod.denormalise(t, keys) for t in (x, tf, out))
            tf_hits += float((tf == x).sum())
            pred = out.cpu().numpy()
            target = x.cpu().numpy()
            samp_hits += metrics.token_accuracy(pred, target) * target.size
            mask = target >= FIRST_PITCH_TOKEN
            onset_hits += float((pred[mask] == target[mask]).sum())
            onsets += float(mask.sum())
            total += target.size
        else:
            p = torch.sigmoid(logits)
            if mode == "pianoroll":
                pb, tb = p[:, 1] > 0.5, x[:, 1] > 0.5
                f1_num += 2 * float((pb & tb).sum())
                f1_den += float(pb.sum() + tb.sum())
            else:
                top_db = (model.cfg.audio.top_db if model.cfg.audio else 80.0)
                err += float((p - x).abs().sum()) * top_db
                total += x.numel()
    model.train(was_training)
    if mode == "melody":
        return {"tf_accuracy": tf_hits / total, "sampled_accuracy": samp_hits / total,
                "onset_accuracy": onset_hits / max(1.0, onsets)}
    if mode == "pianoroll":
        return {"frame_f1": f1_num / f1_den if f1_den else 1.0}
    return {"mel_error_db": err / max(1.0, total)}


@torch.no_grad()
def prior_phrases(model: Any, n: int, temperature: float = 1.0, seed: int = 0,
                  device: str = "cpu", key_prior: list[float] | None = None) -> list[Phrase]:
    """``n`` phrases decoded from z ~ N(0, I), in random keys (live previews)."""
    from plugins.music.engine.generate import decode

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.cfg.latent, generator=g).to(device)
    keys = None
    if model.cfg.mode == "melody" and model.cfg.key_normalise:
        keys = keys_mod.sample_keys(n, key_prior, g).to(device)
    return decode(model, z, temperature, g, keys=keys)


# ----------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------
def schedule(tc: TrainConfig, max_seconds: float | None = None) -> Schedule:
    """The loop's schedule for a training configuration: evaluation and previews together every
    ``eval_every`` steps (and at the end), a checkpoint every ``checkpoint_every``."""
    return Schedule(steps=tc.steps, max_seconds=max_seconds, log_every=LOG_EVERY,
                    eval_every=tc.eval_every, preview_every=tc.eval_every,
                    checkpoint_every=tc.checkpoint_every)


class MusicTask:
    """Trains one model into ``run_dir`` (``config.json`` and ``model.safetensors``; the loop
    keeps the checkpoint).

    Args:
        model_cfg, train_cfg: what to build and how to train it.
        train_set, val_set: phrases (``val_set`` may be None or empty: no held-out metrics).
        run_dir: the run folder (the model folder is the run folder).
        reporter: a job context or ``plugins.common.training.QuietReporter`` (previews and
            evaluation lines go to it).
        device: torch device string.
        extra_config: stored in config.json (data description, tempo, ...).
    """

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, train_set: PhraseSet,
                 val_set: PhraseSet | None, run_dir: Path, reporter: Reporter,
                 device: str = "cpu", extra_config: dict[str, Any] | None = None,
                 privacy: PrivacySpec | None = None) -> None:
        self.mc, self.tc = model_cfg, train_cfg
        self.run_dir = Path(run_dir)
        self.rep = reporter
        self.device = device
        self.extra = dict(extra_config or {})
        torch.manual_seed(train_cfg.seed)
        self.model = build_model(model_cfg).to(device)
        #: the weight names of the plain model: a private model (Opacus's LSTMs) is saved
        #: under these, so it loads like any other
        self._plain_keys = list(self.model.state_dict())
        self.private_notes: list[str] = []
        if privacy is not None:
            self.model, self.private_notes = prepare_model(self.model, "the music model")
        self.opt = torch.optim.Adam(self.model.parameters(), lr=train_cfg.lr)
        self.train_x = phrase_tensor(train_set, device)
        self.val_x = phrase_tensor(val_set, device) if val_set is not None and len(val_set) \
            else None
        self.last_eval: dict[str, float] = {}
        self.lr = self.beta = 0.0  # what the last step used (logged with the averages)
        self._message = ""
        if model_cfg.mode == "melody" and model_cfg.key_normalise:
            self.train_x, keys = keys_mod.normalise(self.train_x)
            # the data's major/minor mix is a statistic of the data: a private model draws
            # keys evenly instead (said in the log)
            self.extra["key_prior"] = ([round(1 / keys_mod.N_KEYS, 5)] * keys_mod.N_KEYS
                                       if privacy is not None else keys_mod.key_prior(keys))
        # transposing a key-normalised phrase would only move it out of C: no augmentation then
        shifts = 0 if model_cfg.mode == "audio" or (model_cfg.mode == "melody"
                                                     and model_cfg.key_normalise) \
            else train_cfg.transpose
        if privacy is not None and model_cfg.mode == "pianoroll" and shifts:
            # a piano-roll batch is transposed by one shift that fits every phrase in it: one
            # phrase would change how the others are shifted
            shifts = 0
            self.private_notes.append("Piano-rolls are not transposed at random: the shift "
                                      "fits a whole batch, so one phrase would change the "
                                      "others.")
        self.batcher = Batcher(self.train_x, train_cfg.batch_size, model_cfg.mode, shifts,
                               train_cfg.seed)
        #: DP-SGD (one record = one phrase) when training privately, else None
        self.dp: Any = None
        if privacy is not None:
            self.dp = PrivateTraining(self.model, self.opt, privacy,
                                      records=int(self.train_x.shape[0]),
                                      batch_size=train_cfg.batch_size, steps=train_cfg.steps,
                                      device=device, loss_reduction="mean", unit="phrase")
            self.opt = self.dp.optimizer
            self.extra["privacy_settings"] = privacy.to_json()

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        st = {"model": self.model.state_dict(), "optim": self.opt.state_dict(),
              "batcher": self.batcher.state(), "last_eval": dict(self.last_eval)}
        if self.dp is not None:
            st["privacy"] = self.dp.state_dict()
        return st

    def load_state_dict(self, st: dict[str, Any]) -> None:
        """Also reads checkpoints written before the shared loop: they hold the same keys (the
        loop takes their ``step``, ``elapsed`` and ``rng``)."""
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optim"])
        self.batcher.load_state(st["batcher"])
        self.last_eval = {k: float(v) for k, v in (st.get("last_eval") or {}).items()}
        if self.dp is not None:
            if "privacy" not in st:
                raise UserError("this run did not train privately: resume it without privacy")
            self.dp.load_state_dict(st["privacy"])

    # -- one step -------------------------------------------------------------------------------
    def train_step(self, state: LoopState) -> dict[str, torch.Tensor]:
        tc = self.tc
        self.beta = beta_at(state.step, tc)
        self.lr = lr_at(state.fraction, state.step, tc)
        for group in self.opt.param_groups:
            group["lr"] = self.lr
        if self.dp is not None:
            idx = self.dp.sample()
            if not idx.numel():  # nothing drawn: a step of noise only (no loss to log)
                self.dp.zero_grad()
                self.dp.step()
                return {}
            x = self.batcher.take(idx)
        else:
            x = self.batcher.next()
        mu, logvar = self.model.encode(x)
        z = reparameterise(mu, logvar)
        nll, logits = self.model.reconstruction(x, z)
        kl = kl_divergence(mu, logvar)
        kl_cost = torch.relu(kl - tc.free_bits)
        loss = (nll + self.beta * kl_cost).mean()
        self.opt.zero_grad(set_to_none=True)
        if self.dp is not None:  # each phrase's gradient clipped, noise added to their sum
            self.dp.backward(loss)
            self.dp.step()
        else:
            loss.backward()
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            self.opt.step()
        out = {"loss/recon": nll.detach().mean(), "loss/kl": kl.detach().mean()}
        with torch.no_grad():
            if self.mc.mode == "melody":
                out["accuracy/train"] = (logits.argmax(-1) == x).float().mean()
            elif self.mc.mode == "pianoroll":
                p = logits[:, 1] > 0
                t = x[:, 1] > 0.5
                den = (p.sum() + t.sum()).float()
                hits = 2 * (p & t).sum().float()
                out["accuracy/train_f1"] = torch.where(den > 0, hits / den.clamp(min=1.0),
                                                       torch.ones_like(den))
        return out

    def log_values(self, state: LoopState) -> dict[str, float]:
        out = {"beta": self.beta, "lr": self.lr}
        if self.dp is not None:
            out[METRIC] = self.dp.epsilon()
        return out

    def log_privacy(self) -> None:
        """What training privately means for this run, in words (at its start)."""
        dp = self.dp
        self.rep.log(dp.describe())
        for note in self.private_notes:
            self.rep.log(note)
        if self.mc.mode == "melody" and self.mc.key_normalise:
            self.rep.log("New phrases are drawn in every key evenly: the share of major and "
                         "minor keys in your music is not kept with a private model.")
        self.rep.log("One record is one phrase: a piece that gives k phrases is protected "
                     "about k times less (k·ε). The live curves and the held-out checks read "
                     "the music directly and are not covered (they stay on this computer).")
        projected = dp.projected_epsilon(self.tc.steps)
        if dp.spec.noise_multiplier <= 0 and projected > dp.spec.epsilon * 1.02:
            self.rep.warn(f"Training to step {self.tc.steps:,} will spend ε = {projected:.2f}, "
                          f"more than the target {dp.spec.epsilon:g} this run's noise was "
                          "chosen for (it started with fewer steps).")

    def message(self, state: LoopState, stats: dict[str, Any]) -> str:
        if "loss/recon" not in stats:  # a private step that drew no phrase
            return self._message or f"step {state.step:,}"
        if not self._message or state.step % LOG_EVERY == 0:  # reading a value waits for it
            self._message = (f"recon {float(stats['loss/recon']):.2f}  "
                             f"kl {float(stats['loss/kl']):.1f}")
        return self._message

    # -- evaluation, previews, the model folder -------------------------------------------------
    def evaluate(self, state: LoopState) -> dict[str, float]:
        """Held-out reconstruction accuracy (melodies), frame F1 (piano-rolls) or mel error in
        dB (audio), under the curve names the plots group them by."""
        if self.val_x is None:
            return {}
        ev = evaluate(self.model, self.val_x, limit=256)
        self.last_eval = {k: round(v, 5) for k, v in ev.items()}
        self.rep.log(f"step {state.step}: " + ", ".join(f"{k} {v:.3f}" for k, v in ev.items()))
        return {CURVES.get(k, k): v for k, v in ev.items()}

    def preview(self, state: LoopState) -> None:
        """Four phrases from the prior (melody and piano-roll models; an audio preview would
        need Griffin-Lim every time)."""
        if self.mc.mode == "audio":
            return
        self.model.eval()
        phrases = prior_phrases(self.model, 4, 1.0, seed=state.step, device=self.device,
                                key_prior=self.extra.get("key_prior"))
        self.model.train()
        self.rep.preview("phrases", {"phrases": [p.to_payload() for p in phrases],
                                     "title": f"samples at step {state.step}"})

    def export(self, state: LoopState, reason: str) -> None:
        """The usable model: weights and the configuration that rebuilds it, atomically."""
        weights = self.model.state_dict()
        privacy: dict[str, Any] = {}
        if self.dp is not None:  # Opacus's LSTMs hold the plain names too: save only those
            weights = {k: weights[k] for k in self._plain_keys}
            privacy["privacy"] = self.dp.summary()
            if reason in ("stopped", "end"):
                self.rep.log(self.dp.words())
        storage.save_tensors(self.run_dir / cfg_mod.MODEL_FILE, weights,
                             {"format": "studio-music-vae"})
        cfg_mod.write_config(self.run_dir, self.mc, self.tc, trained_steps=state.step,
                             train_seconds=round(state.elapsed, 1),
                             evaluation=dict(self.last_eval), **self.extra, **privacy)


#: evaluation results as the live plots name them
CURVES = {"tf_accuracy": "accuracy/val", "sampled_accuracy": "accuracy/val_sampled",
          "onset_accuracy": "accuracy/val_onsets", "frame_f1": "accuracy/val_f1",
          "mel_error_db": "mel_error_db/val"}


def tokens_to_phrases(tokens: np.ndarray, label: str = "") -> list[Phrase]:
    steps = tokens.shape[-1]
    return [Phrase(tokens_to_notes(t), steps, "melody", label) for t in tokens]


def rolls_to_phrases(rolls: np.ndarray, label: str = "") -> list[Phrase]:
    return [Phrase(roll_to_notes(r), r.shape[-1], "pianoroll", label) for r in rolls]
