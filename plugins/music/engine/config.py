"""Model and training configuration: presets, and the ``config.json`` a trained model carries.

Plain dataclasses (no torch) so the panel can read a model folder's configuration cheaply.

``config.json`` has a ``format``: 1 for models saved before metres (their phrases are 4/4, and
their data was cut from bars of exactly 16 steps), 2 since a model records its ``metre``. Both
are read; a newer format is refused with a message rather than misread. Whatever a file holds,
reading it gives a checked configuration or a :class:`~studio.errors.UserError` naming the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from plugins.music.engine.metre import FOUR_FOUR, Metre, MetreError
from plugins.music.engine.phrase import ROLL_PITCHES
from studio.errors import UserError
from studio.storage import atomic_write_json, read_json

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
PRESETS = ("tiny", "small", "default", "large")
FORMAT = 2  # config.json's format: 2 adds the model's metre (see the module's docstring)
MODES = ("melody", "pianoroll", "audio")


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
    metre: str = "4/4"  # the phrases' time signature (format-1 configs have none: 4/4)
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
        return self.bars * Metre.parse(self.metre).steps_per_bar

    @property
    def use_conductor(self) -> bool:
        return self.bars >= 4 if self.hierarchical is None else bool(self.hierarchical)

    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) seen by the convolutional VAE (it pads a width that does
        not divide by its strides, such as the 36 steps of two 9/8 bars)."""
        if self.mode == "pianoroll":
            return (2, ROLL_PITCHES, self.steps)
        a = self.audio or AudioConfig()
        return (1, a.n_mels, a.frames)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Any) -> ModelConfig:
        """The configuration stored by :meth:`to_json`, checked: raises ValueError saying which
        value is wrong (a hand-edited or damaged file must not reach torch)."""
        if not isinstance(d, dict):
            raise ValueError(f"its model settings are {type(d).__name__}, not a mapping")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        audio = kw.get("audio")
        if audio is not None:
            if not isinstance(audio, dict):
                raise ValueError("its audio settings are not a mapping")
            names = {f.name for f in fields(AudioConfig)}
            kw["audio"] = AudioConfig(**{k: v for k, v in audio.items() if k in names})
        cfg = cls(**kw)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise ValueError naming the first value a model cannot be built from."""

        def whole(name: str, value: Any, lo: int, hi: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} should be a whole number from {lo} to {hi}, "
                                 f"not {value!r}")

        if self.mode not in MODES:
            raise ValueError(f"mode should be one of {', '.join(MODES)}, not {self.mode!r}")
        whole("bars", self.bars, 0 if self.mode == "audio" else 1, 64)
        try:
            Metre.parse(self.metre)
        except MetreError as exc:
            raise ValueError(f"metre: {exc}") from None
        for name in ("latent", "embed", "enc_hidden", "dec_hidden", "conductor_hidden"):
            whole(name, getattr(self, name), 1, 65_536)
        whole("enc_layers", self.enc_layers, 1, 64)
        whole("dec_layers", self.dec_layers, 1, 64)
        if not isinstance(self.hierarchical, bool | None):
            raise ValueError(f"hierarchical should be true, false or null, not "
                             f"{self.hierarchical!r}")
        if not isinstance(self.key_normalise, bool):
            raise ValueError(f"key_normalise should be true or false, not {self.key_normalise!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) \
                or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout should be a number from 0 to 1, not {self.dropout!r}")
        if not isinstance(self.widths, list) or not 1 <= len(self.widths) <= 6:
            raise ValueError(f"widths should be a list of 1 to 6 layer widths, not "
                             f"{self.widths!r}")
        for w in self.widths:
            whole("a layer width", w, 1, 8192)
        if self.mode == "audio" or self.audio is not None:
            a = self.audio or AudioConfig()
            whole("sample_rate", a.sample_rate, 1000, 384_000)
            whole("n_fft", a.n_fft, 16, 1 << 16)
            whole("hop", a.hop, 1, a.n_fft)
            whole("n_mels", a.n_mels, 8, 1024)
            whole("frames", a.frames, 8, 1 << 16)
            whole("griffin_lim_iters", a.griffin_lim_iters, 1, 10_000)
            if isinstance(a.top_db, bool) or not isinstance(a.top_db, int | float) \
                    or not 1 <= a.top_db <= 300:
                raise ValueError(f"top_db should be a number from 1 to 300, not {a.top_db!r}")
        if self.mode != "melody":
            h = self.input_shape()[1]
            if h % (1 << len(self.widths)):
                raise ValueError(f"{h} {'pitches' if self.mode == 'pianoroll' else 'mel bands'}"
                                 f" do not divide by {1 << len(self.widths)} for "
                                 f"{len(self.widths)} layers")


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

    def check(self) -> None:
        """Raise ValueError naming the first setting that is not a sensible number (a resumed
        run reads these back from its config.json)."""
        for f in fields(self):
            v = getattr(self, f.name)
            kind = int if f.type == "int" else int | float
            if isinstance(v, bool) or not isinstance(v, kind) or v != v or not 0 <= v <= 1e9:
                raise ValueError(f"{f.name} should be a {'whole ' if kind is int else ''}"
                                 f"number from 0 up, not {v!r}")
        if self.batch_size < 1 or self.eval_every < 1 or self.checkpoint_every < 1:
            raise ValueError("batch_size, eval_every and checkpoint_every should be at least 1")


def preset(name: str, mode: str, bars: int, metre: str | Metre = FOUR_FOUR
           ) -> tuple[ModelConfig, TrainConfig]:
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
    if mode != "audio":
        m.metre = str(Metre.parse(metre))
    if mode == "melody":  # a longer phrase carries proportionally more to encode
        t.free_bits *= max(1.0, m.steps / 32)
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
    """A model folder's ``config.json``, checked: its ``model`` settings build a model (read
    them with :func:`model_config`), any format up to :data:`FORMAT`. Raises UserError naming
    the file otherwise."""
    d = model_dir(path)
    file = d / CONFIG_FILE
    try:
        cfg = read_json(file)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{file} is unreadable ({exc})") from None
    if not isinstance(cfg, dict) or cfg.get("plugin") != "music" or "model" not in cfg:
        raise UserError(f"{file} is not a music model configuration")
    fmt = cfg.get("format", 1)
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise UserError(f"{file} has no valid format number ({fmt!r})")
    if fmt > FORMAT:
        raise UserError(f"{file} was written by a newer version of the studio (format {fmt}; "
                        f"this one reads up to {FORMAT}): update the studio to use this model")
    try:
        model_config(cfg)
        tempo = cfg.get("tempo", 120.0)
        if isinstance(tempo, bool) or not isinstance(tempo, int | float) \
                or not 1 <= tempo <= 10_000:
            raise ValueError(f"tempo should be a number of beats per minute, not {tempo!r}")
        for key in ("key_prior", "data", "train", "evaluation"):
            if key in cfg and not isinstance(cfg[key], list if key == "key_prior" else dict):
                raise ValueError(f"{key} has the wrong shape")
        prior = cfg.get("key_prior")
        if prior is not None and (len(prior) != 24 or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and x >= 0
                for x in prior) or not sum(prior) > 0):
            raise ValueError("key_prior should be 24 weights, not all 0")
    except ValueError as exc:
        raise UserError(f"{file} is damaged or hand-edited: {exc}") from None
    return cfg


def model_config(cfg: dict[str, Any]) -> ModelConfig:
    """The model settings of a ``config.json`` of any format (format 1: 4/4). ValueError says
    what is wrong with them."""
    return ModelConfig.from_json(cfg["model"])


def strict_bars(cfg: dict[str, Any]) -> bool:
    """Whether a run's data is cut from bars of exactly its metre's length: the rule before 2/4
    bars joined into 4/4 phrases (format 1). A resumed format-1 run keeps it (its data records
    ``exact_bars``), so every session of it cuts the same phrases."""
    fmt = cfg.get("format", 1)
    data = cfg.get("data")
    return (isinstance(fmt, int) and fmt < 2) or (isinstance(data, dict)
                                                  and data.get("exact_bars") is True)


def write_config(run_dir: Path, model: ModelConfig, train: TrainConfig, **extra: Any) -> Path:
    return atomic_write_json(run_dir / CONFIG_FILE, {
        "plugin": "music", "format": FORMAT, "model": model.to_json(), "train": train.to_json(),
        **extra})
