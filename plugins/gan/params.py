"""The GAN plugin's job parameters: one dataclass per job.

Each class is the job's command line (``studio run gan train --data DIR --steps 10``), its
``--help``, its checks and the panel's widgets. A field that is ``None`` means "the preset's" or
"the architecture's": those defaults live in the engine's tables
(``plugins.gan.engine.config.PRESETS`` / ``ARCH_DEFAULTS``), nowhere else.

Light on purpose: no torch, no Qt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from plugins.common.privacy import (
    DEFAULT_EPSILON,
    DEFAULT_MAX_GRAD_NORM,
    Delta,
    Epsilon,
    MaxGradNorm,
    NoiseMultiplier,
    NoiseSeed,
    Private,
    spec_of,
)
from studio.errors import UserError
from studio.params import Choices, Group, Help, Label, Range, Special, Unit, Widget

Arch = Literal["dcgan", "wgan-gp", "sngan"]
SEED = Range(0, 2**31 - 1)
MODEL = Widget("model", kinds=("gan",))
MODEL_HELP = Help("a GAN run folder (or its generator.safetensors)")
#: augmentation names DiffAugment knows ("off"/"none": no augmentation)
DIFFAUG_WORDS = ("color", "translation", "cutout", "off", "none")


def _check_png(out: Path | None, flag: str = "--out") -> None:
    if out is not None and Path(out).suffix.lower() != ".png":
        raise UserError(f"{flag} must name a .png file, not {Path(out).name}")


def _check_edits(edits: list[float]) -> None:
    if any(not math.isfinite(e) for e in edits):
        raise UserError("--edits: every slider value must be a finite number (e.g. 1.5,0,-2)")


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class TrainParams:
    """Train a GAN on a folder of images (sub-folders are classes)."""

    data: Annotated[str | None, Label("Images"), Widget("folder"),
                    Help("folder of images, searched recursively (first-level sub-folders are "
                         "classes); \"digits\" for the built-in handwritten digits. Resume "
                         "finds the run's own data when this is empty"),
                    Special("choose a folder, or use the built-in digits")] = None
    size: Annotated[Literal[32, 64, 128], Label("Image size"),
                    Choices({32: "32 px", 64: "64 px", 128: "128 px"}),
                    Help("output image size in pixels")] = 32
    steps: Annotated[int, Range(1, 10_000_000, step=500), Label("Training steps"),
                     Help("total generator steps (a resumed run continues up to this number)")
                     ] = 5000
    arch: Annotated[Arch | None, Label("Architecture"),
                    Choices({"sngan": "SNGAN: spectral norm + hinge",
                             "dcgan": "DCGAN (the book's)",
                             "wgan-gp": "WGAN-GP: Wasserstein + gradient penalty"}),
                    Special("the preset's (SNGAN)"),
                    Help("dcgan (the book's), wgan-gp or sngan (spectral norm + hinge)")] = None
    preset: Annotated[Literal["fast", "balanced", "quality"], Label("Model size"),
                      Choices(fast="Fast: small, for a CPU (minutes)", balanced="Balanced",
                              quality="Quality: wide, for a GPU"),
                      Help("model size: fast (CPU, minutes), balanced, quality (GPU)")] = "fast"
    conditional: Annotated[Literal["auto", "yes", "no"], Label("Learn the classes"),
                           Choices(auto="auto (when there are class folders)", yes="yes",
                                   no="no"),
                           Help("learn the class sub-folders, so you can ask for a class (auto: "
                                "when there are at least two)")] = "auto"
    color: Annotated[Literal["auto", "rgb", "gray"], Label("Colour"),
                     Choices(auto="auto", rgb="colour", gray="grayscale"),
                     Help("auto detects grayscale folders; colour or grayscale force it")
                     ] = "auto"
    train_size: Annotated[int | None, Range(8, 128), Label("Learning resolution"), Unit(" px"),
                          Special("the images' own"), Group("Advanced"),
                          Help("resolution the networks work at; default: the images' native "
                               "resolution (smaller only when enlarging loses nothing, e.g. "
                               "upscaled scans)")] = None
    batch_size: Annotated[int | None, Range(2, 4096, step=16), Label("Batch size"),
                          Special("the preset's"),
                          Help("images per step (default: the preset's)")] = None
    lr: Annotated[float | None, Range(1e-5, 1e-2, step=1e-5), Label("Learning rate"),
                  Special("the architecture's"), Group("Advanced"),
                  Help("learning rate for both networks (default: the architecture's)")] = None
    diffaug: Annotated[str | None, Label("DiffAugment"), Special("the preset's"),
                       Help("DiffAugment policy: a comma list of color, translation, cutout "
                            "(\"off\" or \"\" for none); default: translation")] = None
    ema_decay: Annotated[float | None, Range(0.0, 0.9999, step=0.0001), Label("Weight averaging"),
                         Special("standard (0.999)"), Group("Advanced"),
                         Help("generator weight averaging used for sampling (EMA decay)")] = None
    amp: Annotated[Literal["auto", "off", "bf16", "fp16"], Label("Mixed precision"),
                   Choices(auto="auto (GPU only)", off="off", bf16="bfloat16", fp16="float16"),
                   Group("Advanced"),
                   Help("mixed precision on CUDA (auto: bf16 where supported, else fp16)")
                   ] = "auto"
    preview_every: Annotated[int, Range(1, 1_000_000, step=50), Label("Preview every"),
                             Unit(" steps"), Help("steps between preview grids")] = 200
    checkpoint_every: Annotated[int, Range(1, 10_000_000, step=100), Label("Checkpoint every"),
                                Unit(" steps"),
                                Help("steps between checkpoints (one is also written at Stop)")
                                ] = 1000
    log_every: Annotated[int, Range(1, 100_000), Label("Plot every"), Unit(" steps"),
                         Group("Advanced"), Help("steps between metric points")] = 10
    collapse_threshold: Annotated[float, Range(0.0, 1.0, step=0.05),
                                  Label("Collapse warning below"), Group("Advanced"),
                                  Help("warn when sample diversity falls below this share of "
                                       "the real images' diversity")] = 0.3
    collapse_after: Annotated[int, Range(0, 10_000_000, step=100), Label("Collapse watch from"),
                              Unit(" steps"), Group("Advanced"),
                              Help("steps before the collapse watch starts (early samples all "
                                   "look alike)")] = 500
    max_images: Annotated[int | None, Range(8, 100_000_000), Label("Use at most"),
                          Unit(" images"), Special("all images"), Group("Advanced"),
                          Help("use at most this many images")] = None
    max_minutes: Annotated[float | None, Range(0.0001, 10_000_000, step=1.0),
                           Label("Time limit"), Unit(" min"), Special("none"),
                           Help("stop after this much training time over the whole run "
                                "(checkpoint kept; Resume continues)")] = None
    holdout: Annotated[float, Range(0.0, 0.9, step=0.05), Label("Hold out"),
                       Special("none (train on every image)"),
                       Help("share of the images kept out of training (recorded with the run; "
                            "the discriminator's score on them shows memorising). 0: train on "
                            "every image")] = 0.0
    seed: Annotated[int, SEED, Label("Seed"), Widget("seed"),
                    Help("random seed (weights, batches, noise, the held-out choice)")] = 0
    # differential privacy for the discriminator (plugins.common.privacy)
    private: Private = False
    epsilon: Epsilon = DEFAULT_EPSILON
    delta: Delta = 0.0
    noise_multiplier: NoiseMultiplier = 0.0
    max_grad_norm: MaxGradNorm = DEFAULT_MAX_GRAD_NORM
    noise_seed: NoiseSeed = None
    resume: Annotated[bool, Widget("hidden"),
                      Help("continue the run in --out from its last checkpoint")] = False

    def rules(self) -> None:
        if self.private:
            spec_of(self)
            if self.arch == "wgan-gp":
                raise UserError("--private: WGAN-GP cannot train privately (its gradient "
                                "penalty needs what Opacus cannot give); choose --arch sngan "
                                "or dcgan")
        if self.train_size is not None and (self.train_size & (self.train_size - 1)
                                            or self.train_size > self.size):
            raise UserError(f"--train-size must be a power of two no larger than the image size "
                            f"({self.size}), not {self.train_size}")
        if self.diffaug is not None:
            bad = [w for w in (s.strip() for s in self.diffaug.split(","))
                   if w and w.lower() not in DIFFAUG_WORDS]
            if bad:
                raise UserError(f"--diffaug: unknown augmentation {bad[0]!r} (use a comma list "
                                "of color, translation, cutout, or off)")


# ----------------------------------------------------------------------------------------------
# sample / eval
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class SampleParams:
    """Generate a grid of samples as a PNG that records how it was made."""

    model: Annotated[Path, Label("Model"), MODEL, MODEL_HELP]
    n: Annotated[int, Range(1, 4096), Label("Images"), Help("number of images")] = 64
    seed: Annotated[int, SEED, Label("Seed"), Widget("seed"),
                    Help("image i uses seed + i (so any single image can be made again)")] = 1
    out: Annotated[Path | None, Label("Save as"), Widget("save", filter="PNG image (*.png)"),
                   Special("samples/seed-SEED.png in the run folder"),
                   Help("PNG to write (default: samples/seed-SEED.png in the run folder)")
                   ] = None
    label: Annotated[str | None, Label("Class"), Special("classes in turn"),
                     Help("class name or index for conditional models (default: classes in "
                          "turn)")] = None
    edits: Annotated[list[float], Label("Direction edits"),
                     Help("GANSpace slider values, comma separated (e.g. 2,0,-1)")
                     ] = field(default_factory=list)
    scale: Annotated[int, Range(1, 32), Label("Enlarge"), Unit("x"),
                     Help("enlarge each image this many times (nearest neighbour)")] = 1
    individual: Annotated[bool, Label("Also save each image"),
                          Help("also write each image as its own PNG with full metadata")
                          ] = False

    def rules(self) -> None:
        _check_png(self.out)
        _check_edits(self.edits)


@dataclass(kw_only=True)
class EvalParams:
    """Fréchet distance and KID between real images and generated ones.

    With --inception (pytorch-fid's pt_inception-2015-12-05 weights, or torchvision's
    inception_v3) the numbers are in InceptionV3 feature space. Without it, a small classifier
    is trained on the real images and its features are used: a "domain FD" that tracks progress
    on this data set but is not comparable with published FID.
    """

    model: Annotated[Path, Label("Model"), MODEL, Help("a GAN run folder")]
    data: Annotated[str, Label("Real images"), Widget("folder"),
                    Help("the real images (a folder, or \"digits\")")]
    n: Annotated[int, Range(10, 1_000_000, step=500), Label("Generated images"),
                 Help("number of generated images (1000 or more for stable numbers)")] = 1000
    inception: Annotated[Path | None, Label("InceptionV3 weights"),
                         Widget("file", filter="Weights (*.pth *.pt *.bin *.safetensors)"),
                         Special("a classifier trained on your images instead"),
                         Help("InceptionV3 weights file (.pth or .safetensors) for FID you can "
                              "compare with papers")] = None
    classifier_steps: Annotated[int, Range(10, 100_000, step=100), Label("Classifier steps"),
                                Help("training steps of the domain classifier, used when no "
                                     "Inception weights are given (cached in the run folder)")
                                ] = 300
    max_real: Annotated[int, Range(8, 100_000_000), Label("Real images at most"),
                        Help("use at most this many real images")] = 5000
    seed: Annotated[int, SEED, Label("Seed"), Widget("seed"),
                    Help("seeds of the generated images start here")] = 0


# ----------------------------------------------------------------------------------------------
# Explore (interactive lane)
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class GenerateParams:
    """Generate n images (image i from seed + i), optionally of one class and with GANSpace
    edits."""

    model: Annotated[Path, Label("Model"), MODEL, Help("a GAN run folder")]
    n: Annotated[int, Range(1, 4096), Label("Images"), Help("number of images")] = 16
    seed: Annotated[int, SEED, Label("Seed"), Widget("seed"), Help("first seed")] = 1
    label: Annotated[str | None, Label("Class"), Widget("hidden"),
                     Help("class name or index (conditional models; default: classes in turn)")
                     ] = None
    edits: Annotated[list[float], Label("Direction edits"), Widget("hidden"),
                     Help("GANSpace slider values, comma separated (e.g. 1.5,0,-2)")
                     ] = field(default_factory=list)
    out: Annotated[Path | None, Label("Save grid as"), Widget("save", filter="PNG (*.png)"),
                   Help("also save the images as one PNG grid that records how it was made")
                   ] = None

    def rules(self) -> None:
        _check_png(self.out)
        _check_edits(self.edits)


@dataclass(kw_only=True)
class InterpolateParams:
    """Slerp between two samples (their class embeddings are blended too); --out writes a
    GIF."""

    model: Annotated[Path, Label("Model"), MODEL, Help("a GAN run folder")]
    seed_a: Annotated[int, SEED, Label("Seed A"), Widget("hidden"),
                      Help("seed of the first sample")]
    seed_b: Annotated[int, SEED, Label("Seed B"), Widget("hidden"),
                      Help("seed of the second sample")]
    label_a: Annotated[str | None, Widget("hidden"),
                       Help("class of the first sample (default: picked by its seed)")] = None
    label_b: Annotated[str | None, Widget("hidden"), Help("class of the second sample")] = None
    frames: Annotated[int, Range(2, 256), Label("Frames"), Help("images in the strip")] = 8
    edits: Annotated[list[float], Widget("hidden"),
                     Help("GANSpace slider values applied to both ends")
                     ] = field(default_factory=list)
    out: Annotated[Path | None, Label("GIF file"), Widget("save", filter="GIF (*.gif)"),
                   Help("GIF file to write (it plays forth and back, looping)")] = None
    ms_per_frame: Annotated[int, Range(10, 10_000), Label("Frame time"), Unit(" ms"),
                            Help("GIF frame time in milliseconds")] = 120
    scale: Annotated[int, Range(1, 32), Label("GIF enlargement"), Unit("x"),
                     Help("GIF enlargement (nearest neighbour)")] = 4

    def rules(self) -> None:
        if self.out is not None and Path(self.out).suffix.lower() != ".gif":
            raise UserError(f"--out must name a .gif file, not {Path(self.out).name}")
        _check_edits(self.edits)


@dataclass(kw_only=True)
class DirectionsParams:
    """GANSpace: the top k principal directions of the generator (cached in the run folder)."""

    model: Annotated[Path, Label("Model"), MODEL, Help("a GAN run folder")]
    k: Annotated[int, Range(1, 64), Label("Directions"), Help("number of directions")] = 8


@dataclass(kw_only=True)
class ExportParams:
    """Save one sample as a PNG carrying model, seed, class, edits and latent in its
    metadata."""

    model: Annotated[Path, Label("Model"), MODEL, Help("a GAN run folder")]
    seed: Annotated[int, SEED, Label("Seed"), Widget("seed"), Help("the sample's seed")]
    out: Annotated[Path, Label("Save as"), Widget("save", filter="PNG image (*.png)"),
                   Help("PNG file to write")]
    label: Annotated[str | None, Widget("hidden"),
                     Help("class name or index (default: picked by the seed)")] = None
    edits: Annotated[list[float], Widget("hidden"), Help("GANSpace slider values")
                     ] = field(default_factory=list)
    scale: Annotated[int, Range(1, 32), Label("Enlarge"), Unit("x"),
                     Help("enlarge this many times (nearest neighbour)")] = 1

    def rules(self) -> None:
        _check_png(self.out)
        _check_edits(self.edits)


@dataclass(kw_only=True)
class RegenerateParams:
    """Draw an exported PNG again from the metadata it carries."""

    png: Annotated[Path, Label("PNG"), Widget("file", filter="PNG image (*.png)"),
                   Help("a PNG exported by the GAN plugin")]
    out: Annotated[Path | None, Label("Save as"), Widget("save", filter="PNG image (*.png)"),
                   Special("beside it, with -again added"),
                   Help("where to write the regenerated PNG (default: beside it, \"-again\" "
                        "added)")] = None
    model: Annotated[Path | None, Label("Model"), MODEL,
                     Help("use this run folder instead of the one named in the PNG")] = None

    def rules(self) -> None:
        _check_png(self.out)
