"""The levels plugin's audit probe: how the privacy audit reads, scores and samples a level model.

The protocol is :mod:`plugins.common.probes`; the audit imports this module only when it audits
a levels run (``LevelsPlugin.audit_probe``), so nothing here loads at startup.

- **Items** are levels as rows of VGLC characters: an example is a level file of the run's data
  (VGLC text or a Tiled map), read with the plugin's own reader and the run's legend, before
  anything is cut into windows.
- **Loss**, on the model's own unit, the ``h x w`` training window: every window of the level
  (stride 1, at most :data:`MAX_WINDOWS` evenly spaced ones; a level smaller than the window is
  padded with the empty tile above and to the right), scored by the networks as training left
  them (``checkpoints/last.safetensors``), averaged over the windows:

  * **VAE**: the negative ELBO per tile, ``(cross-entropy of the reconstruction from the
    posterior mean + KL of the posterior) / (h * w)``: an upper bound on the tile NLL that
    needs no noise draw, so it is deterministic.
  * **GAN**: the critic's ``softplus(-D(x))`` (``-log sigmoid``, LOGAN, Hayes et al. 2019): a
    critic that memorised its levels rates their windows as more real than unseen ones. The
    critic's minibatch-variety feature is a statistic of a batch, not of one window; it is
    fixed to its value on a fixed batch of real windows (windows spread evenly over every
    example, members or not, in id order: the same for every model of the same data), so each
    window is scored on its own and reference models are scored alike.
- **Samples**: the model's levels, :data:`SEGMENTS` segments stitched along the game's direction
  (the sample job's default), from the exported (best, averaged) generator.
- **Features** (``embed``): the plugin's own level measures (:mod:`.engine.metrics`): the tile
  histogram and the density of enemies, collectables, gaps and solid tiles, standardised by
  their mean and spread over the run's examples. Raw tile histograms of one game point almost
  the same way (mostly sky and ground), so without the standardisation every pair of levels
  would be a near copy under a cosine threshold.
- **Reference models**: the run's own ``train`` job with ``holdout`` and ``seed`` replaced, the
  data where the run found it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from plugins.common.probes import ProbeBase, ProbeExample
from studio.errors import UserError

#: windows scored per level at most (evenly spaced over the level when it has more)
MAX_WINDOWS = 256
#: segments per sampled level
SEGMENTS = 4
#: real windows whose batch statistic stands in for the critic's minibatch-variety feature
STD_WINDOWS = 64
#: the per-width level measures in the features (beside the tile histogram)
FEATURES = ("enemies", "collectables", "gaps", "gap_tiles")


class LevelsProbe(ProbeBase):
    """A levels train run (``model.safetensors`` + ``checkpoints/last.safetensors``)."""

    item_kind = "level"

    def open(self) -> None:
        import torch

        from plugins.levels.engine import learned
        from studio import storage

        self.model = learned.LevelModel(self.run_dir, "cpu")  # a clear message when absent
        cfg = self.model.cfg
        ckpt = self.run_dir / learned.CHECKPOINT
        if not ckpt.exists():
            raise UserError(f"{self.run_dir.name} has a model but no training checkpoint, so "
                            "its critic (or encoder) as trained is gone: the audit needs it "
                            "(resume the run for a step, or train it again)")
        try:
            state = storage.load_state(ckpt, device="cpu")
        except storage.CorruptFileError as exc:
            raise UserError(f"the checkpoint of {self.run_dir.name} cannot be read ({exc})"
                            ) from None
        self.legend = self.model.legend
        self.h, self.w = cfg.height, cfg.width
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: not ours
            nets = learned.build(cfg, len(self.legend), self.h, self.w)
        try:
            for name, net in nets.items():
                net.load_state_dict(state["nets"][name])
        except (RuntimeError, KeyError) as exc:
            raise UserError(f"the checkpoint of {self.run_dir.name} does not match its "
                            f"configuration ({exc})") from None
        self.nets = {k: n.to(self.device).eval().requires_grad_(False) for k, n in nets.items()}
        self._std: float | None = None
        self._scale: tuple[np.ndarray, np.ndarray] | None = None

    def close(self) -> None:
        for name in ("nets", "model"):
            if hasattr(self, name):
                delattr(self, name)
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # -- items ----------------------------------------------------------------------------------
    def read(self, example: ProbeExample) -> list[str]:
        from plugins.levels.engine import files

        legend = self.manifest.params.get("legend")
        level = files.load_level(self.example_path(example, verify=True), legend or None)
        return level.lines()

    def _indices(self, rows: Sequence[str]) -> np.ndarray:
        """A level item as legend indices ``(H, W)`` in the model's tile channels."""
        from plugins.levels.engine.level import Level

        return Level.from_lines(list(rows), self.legend).indices()

    def _windows(self, rows: Sequence[str]) -> np.ndarray:
        """Every training-sized window of a level ``(N, h, w)`` as legend indices."""
        idx = self._indices(rows)
        rows_, cols = idx.shape
        if (rows_, cols) != (max(rows_, self.h), max(cols, self.w)):
            # smaller than the window: padded with the empty tile above and to the right
            empty = list(self.legend.tiles).index(self.legend.empty)
            grown = np.full((max(rows_, self.h), max(cols, self.w)), empty, dtype=np.int64)
            grown[grown.shape[0] - rows_:, :cols] = idx
            idx = grown
        v = np.lib.stride_tricks.sliding_window_view(idx, (self.h, self.w))
        v = v.reshape(-1, self.h, self.w)
        if len(v) > MAX_WINDOWS:
            v = v[np.linspace(0, len(v) - 1, MAX_WINDOWS).round().astype(int)]
        return np.ascontiguousarray(v)

    def _one_hot(self, windows: np.ndarray) -> Any:
        import torch
        from torch.nn import functional as F

        t = torch.from_numpy(np.array(windows, dtype=np.int64)).to(self.device)
        return F.one_hot(t, len(self.legend)).permute(0, 3, 1, 2).float()

    def per_example_loss(self, items: Sequence[Sequence[str]]) -> np.ndarray:
        """Per level, the mean over its windows of the VAE's negative ELBO per tile or the
        critic's ``softplus(-D)``: lower means more familiar to the model."""
        import torch

        out = np.empty(len(items), dtype=np.float64)
        with torch.no_grad():
            for i, rows in enumerate(items):
                x = self._one_hot(self._windows(rows))
                out[i] = float(self._vae_loss(x) if "E" in self.nets else self._critic_loss(x))
        return out

    def _vae_loss(self, x: Any) -> Any:
        import torch
        from torch.nn import functional as F

        mu, logvar = self.nets["E"](x)
        logits = self.nets["G"](mu)
        rec = F.cross_entropy(logits, x.argmax(1), reduction="none").sum((1, 2))
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), 1)
        return ((rec + kl) / (self.h * self.w)).mean()

    def _critic_scores(self, x: Any) -> Any:
        """The critic's score of each window on its own, the batch-variety feature fixed."""
        import torch

        D = self.nets["D"]
        f = D.net(x)
        if D.mbstd:
            fill = torch.full((f.shape[0], 1, f.shape[2], f.shape[3]), self._std_value(),
                              device=f.device, dtype=f.dtype)
            f = torch.cat([f, fill], 1)
        return D.out(f.flatten(1)).squeeze(1)

    def _critic_loss(self, x: Any) -> Any:
        from torch.nn import functional as F

        return F.softplus(-self._critic_scores(x)).mean()

    def _std_value(self) -> float:
        """The critic's batch-variety feature on a fixed batch of real windows: up to
        :data:`STD_WINDOWS` windows spread evenly over every example (in id order)."""
        if self._std is None:
            import torch

            examples = sorted(self.examples(), key=lambda e: e.id)
            wins = np.concatenate([self._windows(self.read(e)) for e in examples])
            pick = np.linspace(0, len(wins) - 1, min(STD_WINDOWS, len(wins))).round()
            with torch.no_grad():
                f = self.nets["D"].net(self._one_hot(wins[pick.astype(int)]))
                self._std = float(f.std(0, unbiased=False).mean())
        return self._std

    # -- samples and features -------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> list[list[str]]:
        if n <= 0:
            return []
        return [lv.lines() for lv in self.model.generate(n, int(seed), SEGMENTS)]

    def embed(self, items: Sequence[Sequence[str]]) -> np.ndarray:
        """The level measures of each item, standardised over the run's examples."""
        if self._scale is None:
            raw = np.stack([self._measures(self.read(e)) for e in self.examples()])
            self._scale = raw.mean(0), raw.std(0) + 1e-3
        mean, spread = self._scale
        return np.stack([(self._measures(rows) - mean) / spread for rows in items])

    def _measures(self, rows: Sequence[str]) -> np.ndarray:
        """Tile histogram (legend order), solid fraction, and enemies, collectables and gaps
        per column."""
        from plugins.levels.engine import metrics
        from plugins.levels.engine.level import Level

        lv = Level.from_lines(list(rows), self.legend)
        feats = metrics.features(lv)
        per_col = [feats.get(k, 0.0) / lv.width for k in FEATURES]
        return np.concatenate([metrics.histogram([lv], self.legend),
                               [feats["solid_fraction"]], per_col])

    # -- reference models -----------------------------------------------------------------------
    def reference_job(self, holdout: float, seed: int) -> tuple[str, Any]:
        """The run's own train job on a random ``1 - holdout`` of its levels."""
        job, params = super().reference_job(holdout, seed)
        params["data"] = self.dataset.location
        return job, params
