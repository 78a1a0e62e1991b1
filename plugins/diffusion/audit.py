"""The diffusion plugin's audit probe: how the privacy audit reads, scores and samples a DDPM
training run.

The protocol is :mod:`plugins.common.probes`; the audit imports this module only when it audits
a diffusion run (``DiffusionPlugin.audit_probe``). Only runs of this plugin's ``train`` job are
auditable (a downloaded pipeline has no record of its training data).

- **Items** are images as training read them (``load_image`` at the run's size, then the run's
  channel rule: grey images keep one channel, colour ones are reduced by luminance), before the
  optional mirror augmentation; samples come out with the same size and channels.
- **Loss**: the denoising error averaged over a fixed set of (timestep, noise) draws
  (:data:`TIMESTEPS`, :data:`DRAWS` noise images per timestep, each from its own seed): the
  statistic of Carlini et al. 2023 ("Extracting Training Data from Diffusion Models", the loss
  threshold and LiRA on diffusion models) and Matsumoto et al. 2023 ("Membership Inference
  Attacks against Diffusion Models"), who find the small and middle timesteps the revealing
  ones (at large ones the image is mostly noise for members and non-members alike). The error
  is measured on the noise (epsilon) whatever the model predicts (a v-prediction is converted:
  ``eps = sqrt(a) v + sqrt(1 - a) x_t``), per pixel, so models of either kind and reference
  models compare on one scale. The same draws for every item and every model: deterministic.
- **Samples**: the exported (EMA) model with DPM-Solver++ 2M, :data:`SAMPLE_STEPS` steps,
  image ``i`` of ``sample(n, seed)`` from seed ``seed * 65536 + i`` (the audit asks for
  batches with seeds ``seed, seed + 1, ...``; this keeps them from repeating an image).
- **Features** (``embed``): the UNet encoder's last downsampled feature map (the output of the
  second-to-last down block: 4 x 4 at 32 px for the small and base presets) for the clean image
  at timestep :data:`EMBED_TIMESTEP`, flattened and L2-normalised; no training needed. Chosen by
  measurement on a small-preset model of 64 digits, finding 400 altered copies (1 px shift,
  noise, brightness, blur) of 500 digits among the originals by cosine distance: this map found
  the original first for 96.8% of copies, separated copies from the nearest other image with
  an AUC of 0.941, and at the audit's 0.02 threshold flagged none of the other images; the
  mid-block 94.5%, 0.920 and 1%; raw pixels 98.3%, 0.942 and 3%; the domain classifier of the
  GAN's eval job (a minute of training first) 90-91% and 0.84-0.87, and at 0.02 it flagged
  94-100% of the other images (its 64 features crowd all digits together).
- **Reference models**: the run's own ``train`` job with the same settings (the data by its
  recorded location).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from plugins.common.probes import ProbeBase, ProbeExample
from studio import storage
from studio.errors import UserError

#: timesteps (of 1,000) at which the denoising error is measured
TIMESTEPS = (25, 50, 100, 150, 200, 300)
#: noise images per timestep
DRAWS = 2
#: the seed of the first noise image (draw k of timestep j uses NOISE_SEED + j * DRAWS + k)
NOISE_SEED = 7_919
#: sampler steps of ``sample``
SAMPLE_STEPS = 25
#: the timestep at which ``embed`` reads the encoder
EMBED_TIMESTEP = 0
#: images one sample call may ask for (image i of seed s uses seed s * SEED_STRIDE + i)
SEED_STRIDE = 65_536
#: images per model call
CHUNK = 64


class DiffusionProbe(ProbeBase):
    """A DDPM training run (``config.json`` + ``model/``) for the audit."""

    item_kind = "image"

    def open(self) -> None:
        import torch
        from diffusers import UNet2DModel

        from .engine.train import MODEL_DIR, TrainConfig, make_noise_scheduler

        model_dir = self.run_dir / MODEL_DIR
        if not (model_dir / "unet").is_dir():
            raise UserError(f"{self.run_dir.name} has no trained model yet (its model folder "
                            "is missing): train or resume it until its first checkpoint")
        try:
            self.config = TrainConfig.from_json(storage.read_json(self.run_dir / "config.json"))
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"the settings of {self.run_dir.name} (config.json) cannot be read "
                            f"({exc})") from None
        try:
            unet = UNet2DModel.from_pretrained(str(model_dir), subfolder="unet",
                                               use_safetensors=True, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"the model of {self.run_dir.name} cannot be loaded: "
                            f"{str(exc).splitlines()[0]}") from None
        self.unet = unet.to(self.device).eval().requires_grad_(False)  # loaded in float32
        self.noise_sched = make_noise_scheduler(self.config.prediction)
        self.alphas = self.noise_sched.alphas_cumprod.to(torch.float32)
        self.size = int(self.unet.config.sample_size)
        self.channels = int(self.unet.config.in_channels)
        self._noise: Any = None

    def close(self) -> None:
        if hasattr(self, "unet"):
            del self.unet
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # -- items ----------------------------------------------------------------------------------
    def read(self, example: ProbeExample) -> np.ndarray:
        from plugins.common.images import load_image

        path = self.example_path(example)
        try:
            rgb = load_image(path, self.size, 3)
        except ValueError as exc:
            raise UserError(f"the training image {example.path} cannot be read: {exc}") from None
        return _channels(rgb, self.channels)

    def _x0(self, items: Sequence[np.ndarray]) -> Any:
        import torch

        arr = np.stack([_channels(_hwc(np.asarray(it)), self.channels) for it in items])
        if arr.shape[1:3] != (self.size, self.size):
            raise UserError(f"this model works on {self.size} x {self.size} images, not "
                            f"{arr.shape[2]} x {arr.shape[1]}")
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
        return x.div_(127.5).sub_(1.0).to(self.device)

    # -- the loss -------------------------------------------------------------------------------
    def _draws(self) -> list[tuple[int, Any]]:
        """The fixed (timestep, noise image) pairs, drawn once per probe."""
        if self._noise is None:
            import torch

            shape = (self.channels, self.size, self.size)
            self._noise = [
                (t, torch.randn(shape, generator=torch.Generator().manual_seed(
                    NOISE_SEED + j * DRAWS + k)).to(self.device))
                for j, t in enumerate(TIMESTEPS) for k in range(DRAWS)]
        return self._noise

    def per_example_loss(self, items: Sequence[np.ndarray]) -> np.ndarray:
        """Mean squared error of the predicted noise per pixel, averaged over the fixed
        (timestep, noise) draws: lower means the model denoises the image better."""
        import torch

        out = []
        with torch.no_grad():
            for s in range(0, len(items), CHUNK):
                x0 = self._x0(items[s:s + CHUNK])
                n = x0.shape[0]
                total = torch.zeros(n, dtype=torch.float64, device=x0.device)
                for t, noise in self._draws():
                    eps = noise.expand_as(x0)
                    ts = torch.full((n,), t, dtype=torch.long, device=x0.device)
                    xt = self.noise_sched.add_noise(x0, eps, ts)
                    pred = self.unet(xt, ts).sample.float()
                    if self.config.prediction == "v_prediction":
                        a = float(self.alphas[t])
                        pred = a ** 0.5 * pred + (1.0 - a) ** 0.5 * xt
                    total += (pred - eps).pow(2).mean(dim=(1, 2, 3)).double()
                out.append(total / len(self._draws()))
        return torch.cat(out).cpu().numpy()

    # -- samples and features -------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> list[np.ndarray]:
        import torch

        from plugins.common.images import to_uint8

        from .engine.sampling import denoise
        from .engine.schedulers import make_scheduler

        if not 0 <= n <= SEED_STRIDE:
            raise UserError(f"a diffusion audit draws at most {SEED_STRIDE} images per call, "
                            f"not {n}")
        out: list[np.ndarray] = []
        for s in range(0, n, CHUNK):
            k = min(CHUNK, n - s)
            gens = [torch.Generator().manual_seed(int(seed) * SEED_STRIDE + s + i)
                    for i in range(k)]
            sched = make_scheduler("dpm++", self.noise_sched.config)
            with torch.no_grad():
                x = denoise(lambda xx, t: self.unet(xx, t).sample, sched,
                            shape=(k, self.channels, self.size, self.size), generators=gens,
                            steps=SAMPLE_STEPS, device=self.device, dtype=torch.float32)
            out += list(to_uint8(x.float().clamp(-1, 1)))
        return out

    def _feature_block(self) -> Any:
        """The block whose output :meth:`embed` reads: the second-to-last down block (the
        encoder's last downsampling), the mid-block for a UNet with a single level."""
        blocks = self.unet.down_blocks
        return blocks[-2] if len(blocks) > 1 else self.unet.mid_block

    def embed(self, items: Sequence[np.ndarray]) -> np.ndarray:
        """The encoder's last downsampled feature map for the clean image, flattened and
        L2-normalised."""
        import torch

        got: list[Any] = []
        hook = self._feature_block().register_forward_hook(  # down blocks give (h, skips)
            lambda _m, _a, output: got.append(output[0] if isinstance(output, tuple)
                                              else output))
        try:
            feats = []
            with torch.no_grad():
                for s in range(0, len(items), CHUNK):
                    x0 = self._x0(items[s:s + CHUNK])
                    ts = torch.full((x0.shape[0],), EMBED_TIMESTEP, dtype=torch.long,
                                    device=x0.device)
                    got.clear()
                    self.unet(x0, ts)
                    f = got[0].flatten(1).double()
                    feats.append(f / f.norm(dim=1, keepdim=True).clamp_min(1e-12))
        finally:
            hook.remove()
        return torch.cat(feats).cpu().numpy()

    # -- reference models -----------------------------------------------------------------------
    def reference_job(self, holdout: float, seed: int) -> tuple[str, Any]:
        from plugins.common.images import is_builtin

        job, params = super().reference_job(holdout, seed)
        data = params.get("data")
        if data and not (isinstance(data, str) and is_builtin(data)):
            params["data"] = self.dataset.location
        return job, params


def _hwc(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        raise UserError(f"an image item must be uint8, not {a.dtype}")
    return a[:, :, None] if a.ndim == 2 else a[:, :, :3]


def _channels(a: np.ndarray, channels: int) -> np.ndarray:
    """``(H, W, C)`` uint8 as the model's channel count, by training's rule: equal colour
    channels give their grey, others their luminance (ITU-R 601 weights, rounded)."""
    if a.shape[2] == channels:
        return a
    if channels == 3:
        return np.repeat(a, 3, axis=2)
    if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]):
        return a[..., :1]
    grey = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.asarray(np.round(grey), dtype=np.uint8)[..., None]
