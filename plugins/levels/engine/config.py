"""What a learned level model is trained with, and what its ``config.json`` records.

Kept apart from :mod:`.learned` (which needs torch) so the params module can build one without
importing torch. The settings an artist chooses (model, steps, batch, window size...) have no
defaults here: they come from the train job's params, the one place their defaults live; only the
engine's own knobs (the EMA decay, the critic's batch-variety feature) keep theirs. The fields the
training data decides (tile characters, legend, game) are filled in by the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


@dataclass(kw_only=True)
class TrainConfig:
    model: str  # "gan" or "vae"
    steps: int
    batch: int
    lr: float
    latent: int
    width: int  # window width in tiles
    height: int  # window height in tiles (0: the levels' height, capped at 32)
    base: int  # channel width of the networks
    beta: float  # VAE weight of the KL term
    seed: int
    eval_every: int
    checkpoint_every: int  # 0: only on Stop and at the end
    ema_decay: float = 0.999
    mbstd: bool = True
    chars: list[str] = field(default_factory=list)
    legend: dict[str, Any] = field(default_factory=dict)
    game: str = ""
    held_out: int = 0  # levels held out of training (recorded for the model's reader)
    #: the game's direction ("right", "up"): segments are stitched along it when sampling
    direction: str = ""
    #: the physics the samples are checked with (``Physics.to_json``), found from the data
    physics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A saved ``config.json``: unknown keys are dropped, and a training setting an older
        file lacks reads as 0 (sampling needs only the model, window, latent and legend)."""
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name, f in known.items():
            if name not in values and f.default is MISSING and f.default_factory is MISSING:
                values[name] = "" if f.type in ("str", str) else 0
        return cls(**values)
