"""The diffusion plugin's job parameters: one dataclass per job.

Each class is the job's command line (``studio run diffusion sample --model M --n 16 ...``), its
``--help``, its validation and the panel's widgets (``studio.widgets.form.Form``). Defaults live
here and nowhere else. The editor's image and mask are fields of their real type (numpy arrays):
the panel passes the arrays, the command line a file that the field's ``Codec`` reads.

Light on purpose: no torch, no Qt (the panel and ``--help`` import it). The only engine modules
imported are the scheduler names and the A1111 parameters record, both plain Python.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np

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
from studio.params import Choices, Codec, Group, Help, Label, Range, Special, Unit, Widget

from .engine.infotext import GenerationParams
from .engine.schedulers import SUGGESTIONS, canonical

Precision = Literal["auto", "fp32", "fp16", "bf16"]
SEED_LIMIT = 2**32 - 1  # A1111 seeds are 32-bit; a PNG from it must reproduce on our CLI
MODEL_KINDS = ("diffusers-pipeline", "sd-checkpoint")
SaveEach = Annotated[bool, Label("Also save each image"),
                     Help("Save every image as its own PNG beside the grid")]

_IMAGE = Codec("plugins.diffusion.engine.imageio:read_image_field",
               what="an image file: PNG, JPEG, WebP or BMP",
               describe="plugins.diffusion.engine.imageio:describe_array")
_MASK = Codec("plugins.diffusion.engine.imageio:read_mask_field",
              what="a mask image of the same size: white (or opaque) = repaint, black = keep",
              describe="plugins.diffusion.engine.imageio:describe_array")


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class TrainParams:
    """Train a DDPM on a folder of images; saves a diffusers pipeline in RUN/model."""

    data: Annotated[str | None, Label("Images"), Widget("folder"),
                    Special("the built-in digits (Resume: the run's own images)"),
                    Help("A folder of images (sub-folders are classes), or 'digits' for the "
                         "built-in handwritten digits. Resuming, the run's own images unless "
                         "you choose others")] = None
    size: Annotated[Literal[32, 64], Label("Size"), Choices({32: "32 px", 64: "64 px"}),
                    Help("Image size in pixels: every image is cropped to a square and "
                         "resized")] = 32
    preset: Annotated[Literal["tiny", "small", "base"], Label("Model size"),
                      Choices(small="small (CPU)", base="base (GPU)",
                              tiny="tiny (smoke test)"),
                      Help("How big the network is: tiny (tests), small (the CPU default), "
                           "base (for a GPU)")] = "small"
    steps: Annotated[int, Range(1, 10_000_000), Label("Steps"),
                     Help("Training steps (batches) in total, including steps done before a "
                          "resume")] = 3000
    minutes: Annotated[float, Range(0, 100_000, 0.5), Label("Time budget"), Unit(" min"),
                       Special("no limit"),
                       Help("Stop after this many minutes of training; the learning-rate "
                            "schedule adapts to it")] = 0.0
    batch_size: Annotated[int, Range(1, 4096), Label("Batch size"),
                          Help("Images per training step")] = 32
    lr: Annotated[float, Range(1e-5, 1.0, 1e-5), Label("Learning rate"),
                  Help("Peak learning rate (a short warm-up, then cosine decay)")] = 2e-3
    flip: Annotated[bool, Label("Mirror images (not for digits or text)"),
                    Help("Augment with horizontal flips: doubles the variety of pictures whose "
                         "mirror image is still right")] = False
    holdout: Annotated[float, Range(0, 0.9, 0.05), Label("Held-out share"),
                       Special("none"),
                       Help("Share of the images kept out of training (chosen by the seed) and "
                            "used for a held-out loss; none: train on every image. The run "
                            "records which were held out")] = 0.0
    channels: Annotated[Literal["auto", "gray", "rgb"], Label("Colour"), Group("Advanced"),
                        Choices(auto="as the images (grayscale if all are)", gray="grayscale",
                                rgb="colour"),
                        Help("Automatic picks grayscale when every image is gray")] = "auto"
    prediction: Annotated[Literal["v_prediction", "epsilon"], Label("Prediction"),
                          Group("Advanced"),
                          Choices(v_prediction="velocity (v)", epsilon="noise (epsilon)"),
                          Help("What the network predicts: velocity (well-behaved with every "
                               "sampler) or the noise")] = "v_prediction"
    ema_decay: Annotated[float, Range(0.0, 0.9999, 0.0001), Label("Weight averaging"),
                         Group("Advanced"),
                         Help("Decay of the weight average used for previews and the saved "
                              "model (closer to 1: smoother, slower to follow)")] = 0.995
    sample_every: Annotated[int, Range(1, 10_000_000), Label("Preview every"), Unit(" steps"),
                            Group("Advanced"),
                            Help("Steps between preview grids (and held-out losses)")] = 500
    checkpoint_every: Annotated[int, Range(1, 10_000_000), Label("Save every"), Unit(" steps"),
                                Group("Advanced"),
                                Help("Steps between checkpoints and model exports (one is also "
                                     "saved on Stop)")] = 500
    seed: Annotated[int, Range(0, 2**31 - 1), Label("Seed"), Widget("seed"), Group("Advanced"),
                    Help("Seed for the initial weights, the batch order and the held-out "
                         "choice")] = 0
    # differential privacy (plugins.common.privacy): one record is one image
    private: Private = False
    epsilon: Epsilon = DEFAULT_EPSILON
    delta: Delta = 0.0
    noise_multiplier: NoiseMultiplier = 0.0
    max_grad_norm: MaxGradNorm = DEFAULT_MAX_GRAD_NORM
    noise_seed: NoiseSeed = None
    resume: Annotated[bool, Label("Resume the run in this folder"),
                      Help("Continue the run in the output folder from its last checkpoint "
                           "(its images, size and model stay as they were)")] = False

    def rules(self) -> None:
        spec_of(self)


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Generation:
    """What every generation job shares. The editor keeps these in one form; each job adds its
    own fields (the image, the mask, the strength)."""

    model: Annotated[Path, Label("Model"), Widget("model", kinds=MODEL_KINDS),
                     Help("A diffusers pipeline folder, a training run folder or a .safetensors "
                          "checkpoint")]
    prompt: Annotated[str, Label("Prompt"), Widget("text"),
                      Help("What to draw (text models; unconditional models ignore it)")] = ""
    negative_prompt: Annotated[str, Label("Negative"),
                               Help("What to avoid (text models)")] = ""
    scheduler: Annotated[str, Label("Sampler"), Widget(suggestions=SUGGESTIONS),
                         Help("The sampler as A1111 names it, with its schedule if any: "
                              "'DPM++ 2M Karras', 'Euler a', 'DPM++ SDE Karras', 'UniPC'; "
                              "Karras, Exponential, Beta and SGM Uniform schedules")
                         ] = "DPM++ 2M"
    steps: Annotated[int, Range(1, 1000), Label("Steps"),
                     Help("Denoising steps (img2img runs strength times as many)")] = 25
    guidance: Annotated[float, Range(0.0, 50.0, 0.5), Label("Guidance"),
                        Help("Classifier-free guidance scale (text models): how closely to "
                             "follow the prompt; 0 or 1 turns it off")] = 7.5
    seed: Annotated[int, Range(0, SEED_LIMIT), Label("Seed"), Widget("seed"),
                    Help("Seed of the first image (image i uses seed + i)")] = 1
    n: Annotated[int, Range(1, 1000), Label("Images"),
                 Help("Number of images (variations): image i uses seed + i")] = 1
    batch_size: Annotated[int, Range(0, 1024), Label("Batch size"), Special("automatic"),
                          Help("Images per model call (automatic: all at once for small pixel "
                               "models, one at a time for text models on a CPU)")] = 0
    precision: Annotated[Precision, Label("Precision"),
                         Choices(auto="automatic", fp32="fp32 (full)", fp16="fp16 (GPU)",
                                 bf16="bf16 (GPU)"),
                         Help("Automatic: fp32 on the CPU, bf16 or fp16 on a GPU")] = "auto"
    lora: Annotated[list[str], Label("LoRAs"), Widget("hidden"),
                     Help("LoRA files to apply, each FILE or FILE:WEIGHT (repeat --lora for "
                          "several); <lora:name:0.8> in the prompt finds one in the model "
                          "library by name")] = dataclasses.field(default_factory=list)
    embedding: Annotated[list[str], Label("Embeddings"), Widget("hidden"),
                         Help("Textual-inversion embedding files (repeat --embedding); the "
                              "file name is the trigger word to write in the prompt. The "
                              "library's embeddings load by themselves when the prompt uses "
                              "their name")] = dataclasses.field(default_factory=list)
    vae: Annotated[Path | None, Label("VAE"), Widget("model", kinds=("vae",)),
                   Special("the model's own"),
                   Help("A VAE file (.safetensors) or folder to decode with instead of the "
                        "model's own")] = None
    clip_skip: Annotated[int, Range(1, 12), Label("Clip skip"),
                         Help("A1111's Clip skip: 1 uses the text encoder's last layer, 2 the "
                              "one before it (what many anime models expect)")] = 1
    controlnet: Annotated[Path | None, Label("ControlNet"), Widget("hidden"),
                          Special("none"),
                          Help("A ControlNet (.safetensors file or diffusers folder) for the "
                               "model's family: it makes the picture follow the control "
                               "image's edges or scribble")] = None
    control_image: Annotated[np.ndarray | None, Label("Control image"), _IMAGE,
                             Widget("hidden"), Special("the image being edited"),
                             Help("The picture the ControlNet follows: edges are found in it "
                                  "(canny) or it is the scribble itself (img2img and inpaint: "
                                  "the image being edited when not given)")] = None
    control: Annotated[Literal["canny", "scribble"], Label("Control"), Widget("hidden"),
                       Help("canny: follow the edges found in the control image; scribble: "
                            "the control image is a drawing (lines on a plain background)")
                       ] = "canny"
    control_scale: Annotated[float, Range(0.0, 2.0, 0.05), Label("Control strength"),
                             Widget("hidden"),
                             Help("How strongly the ControlNet steers (A1111's Weight)")] = 1.0
    canny_low: Annotated[int, Range(0, 255), Label("Edge threshold low"), Widget("hidden"),
                         Help("Canny: weaker edges than this are dropped")] = 100
    canny_high: Annotated[int, Range(0, 255), Label("Edge threshold high"), Widget("hidden"),
                          Help("Canny: edges this strong are always kept")] = 200
    previews: Annotated[bool, Label("Show the picture as it forms"),
                        Help("Send a predicted-image preview while sampling")] = True
    out: Annotated[Path | None, Label("Save to"), Widget("save", filter="PNG (*.png)"),
                   Help("The PNG to write (several images: a grid; default: a new file in the "
                        "workspace's outputs folder)")] = None

    def rules(self) -> None:
        """The result is a PNG (it carries its parameters): refuse another name before the
        model is loaded, not after the images are made."""
        if self.out is not None and Path(self.out).suffix.lower() != ".png":
            raise UserError(f"--out must be a .png file, not {Path(self.out).name}")
        self.scheduler = canonical(self.scheduler)
        if self.control_image is not None and self.controlnet is None:
            raise UserError("a control image needs a ControlNet: give --controlnet FILE (a "
                            "ControlNet from the model library)")
        if self.canny_low > self.canny_high:
            raise UserError(f"the low edge threshold ({self.canny_low}) must not be above the "
                            f"high one ({self.canny_high})")

    def shared(self) -> dict[str, Any]:
        """These settings by name, to fill another generation job's params
        (``form.value(**gen.shared(), image=...)``): the names come from this class, so no list
        of keys is written twice."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Generation)}


@dataclass(kw_only=True)
class SampleParams(Generation):
    """Generate images (text-to-image, or unconditional samples); writes a PNG grid."""

    n: Annotated[int, Range(1, 1000), Label("Images"),
                 Help("Number of images (image i uses seed + i)")] = 16
    width: Annotated[int, Range(0, 8192, 8), Label("Width"), Unit(" px"),
                     Special("the model's size"),
                     Help("Output width in pixels (text models; 0: the model's native "
                          "size)")] = 0
    height: Annotated[int, Range(0, 8192, 8), Label("Height"), Unit(" px"),
                      Special("the model's size"),
                      Help("Output height in pixels (text models; 0: the model's native "
                           "size)")] = 0
    hires_scale: Annotated[float, Range(0.0, 4.0, 0.25), Label("Hires fix"), Unit("x"),
                           Widget("hidden"), Special("off"),
                           Help("A1111's Hires. fix: enlarge each picture this many times and "
                                "redraw it by img2img, for detail at sizes the model was not "
                                "trained for (0: off)")] = 0.0
    hires_steps: Annotated[int, Range(0, 1000), Label("Hires steps"), Widget("hidden"),
                           Special("as the first pass"),
                           Help("Denoising steps of the redraw")] = 0
    denoise: Annotated[float, Range(0.01, 1.0, 0.05), Label("Hires strength"),
                       Widget("hidden"),
                       Help("How much the redraw changes the enlarged picture (A1111's "
                            "Denoising strength)")] = 0.5
    hires_upscaler: Annotated[Literal["latent", "lanczos"], Label("Hires upscaler"),
                              Widget("hidden"),
                              Help("latent: enlarge the latents (sharper, changes more); "
                                   "lanczos: enlarge the picture")] = "latent"
    save_each: SaveEach = False

    def rules(self) -> None:
        """Txt2img has no image of its own: a ControlNet needs its control image; hires fix
        enlarges at least a little."""
        super().rules()
        if self.controlnet is not None and self.control_image is None:
            raise UserError("a ControlNet needs a control image: give --control-image IMG (a "
                            "picture to find edges in, or a scribble)")
        if 0.0 < self.hires_scale <= 1.0:
            raise UserError(f"hires fix enlarges: the scale must be above 1 (0: off), not "
                            f"{self.hires_scale:g}")


@dataclass(kw_only=True)
class Img2ImgParams(Generation):
    """Redraw an image: noise it to the strength and denoise it again."""

    image: Annotated[np.ndarray, Label("Image"), _IMAGE,
                     Help("The image to start from (never modified)")]
    strength: Annotated[float, Range(0.01, 1.0, 0.05), Label("Strength"),
                        Help("How much to change: near 0 keeps the picture, 1 ignores it")] = 0.6
    save_each: SaveEach = False


@dataclass(kw_only=True)
class InpaintParams(Generation):
    """Repaint the white part of a mask; everything outside it stays as it was."""

    image: Annotated[np.ndarray, Label("Image"), _IMAGE,
                     Help("The image to edit (never modified)")]
    mask: Annotated[np.ndarray, Label("Mask"), _MASK,
                    Help("Where to repaint (1 = repaint, 0 = keep; the image's size)")]
    strength: Annotated[float, Range(0.01, 1.0, 0.05), Label("Strength"),
                        Help("1 repaints from scratch; lower keeps more of what is under the "
                             "mask")] = 1.0
    mask_blur: Annotated[int, Range(-1, 256), Label("Soft edge"), Unit(" px"),
                         Special("automatic"),
                         Help("Pixels of soft edge inside the mask (automatic: about 1/128 of "
                              "the image side)")] = -1
    save_each: SaveEach = False


@dataclass(kw_only=True)
class OutpaintParams(Generation):
    """Grow the canvas by the given margins and paint the new area to match the image."""

    image: Annotated[np.ndarray, Label("Image"), _IMAGE,
                     Help("The image to extend (never modified)")]
    left: Annotated[int, Range(0, 2048, 8), Label("Left"), Unit(" px"),
                    Help("Pixels to add on the left")] = 0
    top: Annotated[int, Range(0, 2048, 8), Label("Top"), Unit(" px"),
                   Help("Pixels to add at the top")] = 0
    right: Annotated[int, Range(0, 2048, 8), Label("Right"), Unit(" px"),
                     Help("Pixels to add on the right")] = 0
    bottom: Annotated[int, Range(0, 2048, 8), Label("Bottom"), Unit(" px"),
                      Help("Pixels to add at the bottom")] = 0
    overlap: Annotated[int, Range(0, 256), Label("Seam"), Unit(" px"),
                       Help("Pixels of the old image repainted along the seam")] = 8
    mask_blur: Annotated[int, Range(-1, 256), Label("Soft edge"), Unit(" px"),
                         Special("automatic"),
                         Help("Pixels of soft edge inside the new area (automatic: about 1/128 "
                              "of the image side)")] = -1

    def rules(self) -> None:
        """At least one margin: growing by nothing has nothing to paint."""
        super().rules()
        if not (self.left or self.top or self.right or self.bottom):
            raise UserError("give at least one margin (left, top, right or bottom) to grow the "
                            "image")


@dataclass(kw_only=True)
class InfoParams:
    """Describe a model (kind, native size, inpainting or not) from its configuration files."""

    model: Annotated[Path, Label("Model"), Widget("model", kinds=MODEL_KINDS),
                     Help("A diffusers pipeline folder, a training run folder or a .safetensors "
                          "checkpoint")]


#: the editor's modes: which job each one submits, and its params class
EDIT_JOBS: dict[str, type[Generation]] = {
    "sample": SampleParams, "img2img": Img2ImgParams, "inpaint": InpaintParams}

G = TypeVar("G", bound=Generation)


def with_png_parameters(params: G, found: GenerationParams) -> G:
    """``params`` with the settings a PNG's A1111 ``parameters`` text carries (prompt, sampler,
    steps, guidance, seed and, for the jobs that have one, the strength): "Read parameters"."""
    changes: dict[str, Any] = {
        "prompt": found.prompt, "negative_prompt": found.negative_prompt, "steps": found.steps,
        "scheduler": found.scheduler, "guidance": found.guidance, "seed": found.seed}
    try:
        changes["clip_skip"] = max(1, min(12, int(found.extra.get("Clip skip", "1"))))
    except ValueError:
        pass
    if found.strength is not None and hasattr(params, "strength"):
        changes["strength"] = found.strength
    return dataclasses.replace(params, **changes)


def job_of_mode(mode: str) -> str:
    """The editor job that makes an image of the A1111 ``mode`` (outpainting is inpainting on a
    grown canvas in the editor)."""
    return {"txt2img": "sample", "img2img": "img2img"}.get(mode, "inpaint")
