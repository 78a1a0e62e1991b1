"""Generation: every scheduler, previews, cancel within a step, img2img, inpainting (outside the
mask unchanged), outpainting, for a pixel model and a tiny text-conditioned latent model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plugins.diffusion.engine.schedulers import SCHEDULER_NAMES
from studio.errors import Cancelled


def _png(path: str | Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_every_scheduler_samples_a_pixel_model(run_job: Any, pixel_model: Path, tmp_path: Path,
                                               scheduler: str) -> None:
    out = tmp_path / f"{scheduler}.png"
    res = run_job("sample", model=str(pixel_model), n=2, steps=4, scheduler=scheduler, seed=3,
                  out=str(out))
    assert res.state == "done", res.error
    grid = _png(out)
    assert grid.shape == (20, 38, 3)  # two 16 px images side by side, 2 px padding
    results = res.previews("result")
    assert len(results) == 1 and len(results[0]["payload"]) == 2
    a, b = results[0]["payload"]
    assert a.shape == (16, 16, 3) and not np.array_equal(a, b)  # seeds 3 and 4 differ
    assert [p["seed"] for p in results[0]["params"]] == [3, 4]
    steps = [p["step"] for p in res.previews("image")]
    assert steps and steps[-1] == 4  # the last step's preview always goes out


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_every_scheduler_runs_a_text_model(run_job: Any, text_model: Path, tmp_path: Path,
                                           scheduler: str) -> None:
    res = run_job("sample", model=str(text_model), prompt="a red fox", n=1, steps=3,
                  scheduler=scheduler, seed=5, guidance=4.0, out=str(tmp_path / "x.png"))
    assert res.state == "done", res.error
    img = _png(tmp_path / "x.png")
    assert img.shape == (32, 32, 3)
    preview = res.previews("image")[-1]
    assert preview["payload"].shape[2] == 3 and preview["step"] == 3


def test_same_seed_same_image_and_parameters_reproduce_it(run_job: Any, text_model: Path,
                                                         tmp_path: Path) -> None:
    from plugins.diffusion.engine.infotext import read_png_parameters

    first = tmp_path / "first.png"
    res = run_job("sample", model=str(text_model), prompt="a blue bird", negative_prompt="fog",
                  n=1, steps=3, scheduler="euler-a", seed=42, guidance=3.0, out=str(first))
    assert res.state == "done", res.error
    p = read_png_parameters(first)
    assert (p.prompt, p.negative_prompt, p.steps, p.scheduler, p.seed, p.guidance) == (
        "a blue bird", "fog", 3, "Euler a", 42, 3.0)
    again = tmp_path / "again.png"
    res = run_job("sample", model=str(text_model), prompt=p.prompt,
                  negative_prompt=p.negative_prompt, n=1, steps=p.steps, scheduler=p.scheduler,
                  seed=p.seed, guidance=p.guidance, out=str(again))
    assert res.state == "done"
    np.testing.assert_array_equal(_png(first), _png(again))


class _Ctx:
    """A job context that cancels after ``cancel_after`` progress reports (denoising steps)."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.cancel_after = cancel_after
        self.steps = 0
        self.previews: list[tuple[str, Any, dict[str, Any]]] = []
        self.warnings: list[str] = []

    def check(self) -> None:
        if self.cancel_after is not None and self.steps >= self.cancel_after:
            raise Cancelled()

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        if "step" in message:
            self.steps += 1

    def metric(self, *a: Any) -> None:
        pass

    def preview(self, kind: str, payload: Any, *, replace: bool = True, **extra: Any) -> None:
        self.previews.append((kind, payload, extra))

    def log(self, text: str, level: str = "info") -> None:
        pass

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def _count_unet_calls(unet: Any) -> list[int]:
    calls = [0]

    def hook(*_: Any) -> None:
        calls[0] += 1

    unet.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize("which", ["pixel", "text"])
def test_cancel_stops_within_one_step(which: str, pixel_model: Path, text_model: Path) -> None:
    from plugins.diffusion.engine.generate import Request, generate
    from plugins.diffusion.engine.loading import clear_cache, load_model

    clear_cache()
    lm = load_model(pixel_model if which == "pixel" else text_model)
    calls = _count_unet_calls(lm.pipe.unet)
    ctx = _Ctx(cancel_after=2)
    with pytest.raises(Cancelled):
        generate(ctx, lm, Request(prompt="a cat" if which == "text" else "", steps=20, n=3))
    # pixel loop: checked before each step, so the third step never starts; a diffusers
    # pipeline is checked in its end-of-step callback, so at most the step in flight finishes
    assert calls[0] == (2 if which == "pixel" else 3)
    assert not [p for p in ctx.previews if p[0] == "result"]
    clear_cache()  # the hook stays on this cached copy otherwise


def test_img2img_strength_controls_how_much_changes(run_job: Any, pixel_model: Path,
                                                    photo: Path, tmp_path: Path) -> None:
    src = _png(photo).astype(float)
    diffs = []
    for strength in (0.2, 1.0):
        out = tmp_path / f"{strength}.png"
        res = run_job("img2img", model=str(pixel_model), image=str(photo), strength=strength,
                      steps=10, seed=1, out=str(out))
        assert res.state == "done", res.error
        got = _png(out)
        assert got.shape == src.shape  # the image keeps its size (40x48)
        diffs.append(np.abs(got - src).mean())
        assert res.previews("result")[0]["params"][0]["strength"] == strength
    assert diffs[0] < diffs[1], diffs


def test_img2img_on_a_text_model_runs_strength_times_steps(text_model: Path, photo: Path) -> None:
    """(A random tiny VAE cannot reconstruct an image, so here the strength is checked by the
    number of denoising steps it leaves, which is what it means.)"""
    from plugins.diffusion.engine.generate import Request, generate
    from plugins.diffusion.engine.imageio import read_image
    from plugins.diffusion.engine.loading import clear_cache, load_model

    clear_cache()
    lm = load_model(text_model)
    calls = _count_unet_calls(lm.pipe.unet)
    for strength, expected in ((0.3, 3), (1.0, 10)):
        calls[0] = 0
        res = generate(_Ctx(), lm, Request(mode="img2img", prompt="a cat", steps=10,
                                           strength=strength, image=read_image(photo)))
        assert calls[0] == expected
        assert res.images[0].shape == (48, 40, 3)
        assert res.params[0].strength == strength and res.params[0].mode == "img2img"
    clear_cache()


@pytest.mark.parametrize("which", ["pixel", "text", "inpaint-model"])
def test_inpaint_keeps_everything_outside_the_mask(run_job: Any, which: str, pixel_model: Path,
                                                   text_model: Path, inpaint_model: Path,
                                                   photo: Path, photo_mask: Path,
                                                   tmp_path: Path) -> None:
    model = {"pixel": pixel_model, "text": text_model, "inpaint-model": inpaint_model}[which]
    out = tmp_path / "inpainted.png"
    res = run_job("inpaint", model=str(model), image=str(photo), mask=str(photo_mask), steps=4,
                  seed=2, prompt="a window", out=str(out))
    assert res.state == "done", res.error
    src, got = _png(photo).astype(int), _png(out).astype(int)
    mask = _png(photo_mask)[..., 0] > 0
    assert got.shape == src.shape
    assert np.abs(got - src)[~mask].max() <= 1  # outside the mask: the original pixels
    assert np.abs(got - src)[mask].mean() > 5  # inside: repainted


def test_repaint_sampler_holds_the_known_region_during_sampling(pixel_model: Path) -> None:
    """RePaint-style sampling: at every step the unmasked region is the original re-noised to
    that step, so the model's output there is consistent with it; at the end it *is* the
    original, before any compositing."""
    import torch

    from plugins.diffusion.engine.loading import load_model
    from plugins.diffusion.engine.sampling import denoise, make_generators
    from plugins.diffusion.engine.schedulers import make_scheduler

    lm = load_model(pixel_model)
    init = torch.linspace(-1, 1, 16 * 16 * 3).reshape(1, 3, 16, 16)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    for name in ("ddpm", "dpm++", "euler"):
        with torch.no_grad():
            x = denoise(lambda a, t: lm.pipe.unet(a, t).sample,
                        make_scheduler(name, lm.base_scheduler_config), shape=(1, 3, 16, 16),
                        generators=make_generators(0, 1), steps=5, device="cpu",
                        dtype=torch.float32, init=init, mask=mask)
        keep = mask.expand_as(x) == 0
        torch.testing.assert_close(x[keep], init[keep])
        assert (x - init)[~keep].abs().mean() > 0.05


def test_outpaint_grows_the_canvas_and_keeps_the_old_image(run_job: Any, pixel_model: Path,
                                                           text_model: Path, photo: Path,
                                                           tmp_path: Path) -> None:
    src = _png(photo).astype(int)
    for model in (pixel_model, text_model):
        out = tmp_path / f"out-{model.name}.png"
        res = run_job("outpaint", model=str(model), image=str(photo), right=16, top=8,
                      overlap=4, steps=3, prompt="sky", out=str(out))
        assert res.state == "done", res.error
        got = _png(out).astype(int)
        assert got.shape == (48 + 8, 40 + 16, 3)
        # the old image sits at (8, 0); away from the seam it is unchanged
        np.testing.assert_array_equal(got[8 + 4:, :40 - 4], src[4:, :40 - 4])


def test_grayscale_model_edits_colour_images(run_job: Any, gray_model: Path, photo: Path,
                                             photo_mask: Path, tmp_path: Path) -> None:
    res = run_job("inpaint", model=str(gray_model), image=str(photo), mask=str(photo_mask),
                  steps=3, out=str(tmp_path / "g.png"))
    assert res.state == "done", res.error
    assert _png(tmp_path / "g.png").shape == (48, 40, 3)


def test_solvers_clip_like_the_model_was_trained() -> None:
    """A model trained with clip_sample (DDPM/DDIM clip the predicted image to [-1, 1]) gets the
    same clip in DPM-Solver++ and UniPC (as thresholding); an SD config, which does not clip,
    does not."""
    from plugins.diffusion.engine.schedulers import make_scheduler
    from plugins.diffusion.engine.train import make_noise_scheduler

    trained = make_noise_scheduler("v_prediction").config
    for name in ("dpm++", "unipc"):
        s = make_scheduler(name, trained)
        assert s.config.thresholding and s.config.sample_max_value == 1.0
        assert s.config.prediction_type == "v_prediction"
    sd = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
          "clip_sample": False, "num_train_timesteps": 1000}
    assert not make_scheduler("dpm++", sd).config.thresholding
    assert make_scheduler("DPM++ 2M Karras", sd).config.algorithm_type == "dpmsolver++"
