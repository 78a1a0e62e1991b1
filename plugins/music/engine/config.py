"""Model and training configuration: presets, and the ``config.json`` a trained model carries.

Plain dataclasses (no torch) so the panel can read a model folder's configuration cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from plugins.music.engine.phrase import ROLL_PITCHES, STEPS_PER_BAR
from studio.errors import UserError
from studio.storage import atomic_write_json, read_json

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
PRESETS = ("tiny", "small", "default", "large")


@dataclass
class AudioConfig:
    """How audio becomes log-mel clips and back."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 64
    frames: int = 128  # clip length in frames (128 * 256 / 16 kHz = 2.05 s)
    top_db: float = 80.0  # log-mel range mapped to [0, 1]
    griffin_lim_iters: int = 64

    @property
    def clip_samples(self) -> int:
        return (self.frames - 1) * self.hop


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (stored in ``config.json`` under ``"model"``)."""

    mode: str = "melody"  # melody | pianoroll | audio
    bars: int = 2
    latent: int = 64
    # melody VAE
    embed: int = 32
    enc_hidden: int = 256
    enc_layers: int = 1
    dec_hidden: int = 256
    dec_layers: int = 1
    conductor_hidden: int = 128  # hierarchical decoder (4+ bars)
    hierarchical: bool | None = None  # None: on for 4+ bars
    key_normalise: bool = True  # melodies are learned transposed to C major / A minor
    dropout: float = 0.0
    # convolutional VAE (piano-roll / mel)
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    audio: AudioConfig | None = None

    @property
    def steps(self) -> int:
        return self.bars * STEPS_PER_BAR

    @property
    def use_conductor(self) -> bool:
        return self.bars >= 4 if self.hierarchical is None else bool(self.hierarchical)

    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) seen by the convolutional VAE."""
        if self.mode == "pianoroll":
            return (2, ROLL_PITCHES, self.steps)
        a = self.audio or AudioConfig()
        return (1, a.n_mels, a.frames)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("audio") is not None:
            kw["audio"] = AudioConfig(**{k: v for k, v in kw["audio"].items()
                                         if k in {f.name for f in fields(AudioConfig)}})
        return cls(**kw)


@dataclass
class TrainConfig:
    steps: int = 6000
    batch_size: int = 128
    lr: float = 2e-3
    lr_final: float = 1e-4  # cosine decay to this over ``steps``
    beta: float = 0.2
    free_bits: float = 48.0  # nats per phrase left unpenalised (MusicVAE's free bits)
    kl_warmup: int = 1000  # steps to ramp beta from 0
    transpose: int = 5  # random transposition of +-N semitones (melody / piano-roll)
    holdout: float = 0.1
    seed: int = 0
    eval_every: int = 250
    checkpoint_every: int = 500
    grad_clip: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def preset(name: str, mode: str, bars: int) -> tuple[ModelConfig, TrainConfig]:
    """Model widths and training settings for a preset.

    ``default`` is sized for a 2-core CPU: the 2-bar melody preset reaches the Bach-chorale bar in
    the bench's budget (see ``bench/music_bach.py``); ``large`` is for a GPU; ``tiny`` for tests.
    """
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}': choose {', '.join(PRESETS)}")
    if mode == "melody":
        m = {
            "tiny": ModelConfig(latent=16, embed=16, enc_hidden=32, dec_hidden=48,
                                conductor_hidden=32),
            "small": ModelConfig(latent=32, embed=24, enc_hidden=64, dec_hidden=128,
                                 conductor_hidden=64),
            # a bidirectional encoder half the decoder's width: 4x cheaper than an equal one
            # (its forward pass is 0.012 s instead of 0.05 s per 128 phrases on one core) and
            # it reconstructs the Bach soprano phrases as well
            "default": ModelConfig(latent=64, embed=32, enc_hidden=128, dec_hidden=256,
                                   conductor_hidden=128),
            "large": ModelConfig(latent=256, embed=64, enc_hidden=1024, enc_layers=2,
                                 dec_hidden=1024, dec_layers=2, conductor_hidden=512,
                                 dropout=0.1),
        }[name]
        t = {
            "tiny": TrainConfig(batch_size=32, lr=3e-3, kl_warmup=100, free_bits=16.0,
                                eval_every=50, checkpoint_every=100),
            "small": TrainConfig(batch_size=32, kl_warmup=800, eval_every=500,
                                 checkpoint_every=1000),
            # batches of 32: on a CPU the LSTMs run ~4x more phrases per second per step than
            # at 128 here (cache-sized matrices), and the extra steps help more than big batches
            "default": TrainConfig(steps=6000, batch_size=32, kl_warmup=1000, eval_every=500,
                                   checkpoint_every=1000),
            "large": TrainConfig(steps=20000, batch_size=256, lr=1e-3, kl_warmup=5000),
        }[name]
    else:
        widths = {"tiny": [8, 16, 16], "small": [16, 32, 64], "default": [32, 64, 128],
                  "large": [64, 128, 256]}[name]
        latent = {"tiny": 8, "small": 32, "default": 64, "large": 128}[name]
        m = ModelConfig(latent=latent, widths=widths)
        t = TrainConfig(batch_size={"tiny": 16, "small": 64, "default": 64, "large": 128}[name],
                        lr=1e-3, beta=1.0, free_bits={"tiny": 4.0}.get(name, 16.0),
                        kl_warmup={"tiny": 50}.get(name, 1000),
                        eval_every={"tiny": 50}.get(name, 250),
                        checkpoint_every={"tiny": 100}.get(name, 500))
        if mode == "audio":
            m.audio = AudioConfig()
            t.transpose = 0
    m.mode, m.bars = mode, bars
    if mode == "melody" and bars > 2:
        t.free_bits *= bars / 2  # a longer phrase carries proportionally more to encode
    return m, t


# ----------------------------------------------------------------------------------------------
# Model folders
# ----------------------------------------------------------------------------------------------
def model_dir(path: str | Path) -> Path:
    """A model folder from what a user may pass: the run folder, its config.json or weights."""
    p = Path(path).expanduser()
    if p.is_file():
        p = p.parent
    if not (p / CONFIG_FILE).exists():
        raise UserError(f"{p} is not a music model folder (no {CONFIG_FILE}): pass the folder a "
                        "`studio run music train` run wrote")
    if not (p / MODEL_FILE).exists():
        raise UserError(f"{p} has no trained weights yet ({MODEL_FILE} is missing): train it "
                        "first, or wait for its first checkpoint")
    return p


def read_config(path: str | Path) -> dict[str, Any]:
    d = model_dir(path)
    try:
        cfg = read_json(d / CONFIG_FILE)
    except (OSError, ValueError) as exc:
        raise UserError(f"{d / CONFIG_FILE} is unreadable ({exc})") from None
    if not isinstance(cfg, dict) or cfg.get("plugin") != "music" or "model" not in cfg:
        raise UserError(f"{d / CONFIG_FILE} is not a music model configuration")
    return cfg


def write_config(run_dir: Path, model: ModelConfig, train: TrainConfig, **extra: Any) -> Path:
    return atomic_write_json(run_dir / CONFIG_FILE, {
        "plugin": "music", "format": 1, "model": model.to_json(), "train": train.to_json(),
        **extra})
