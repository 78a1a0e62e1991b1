"""Speed bench for the diffusion plugin: seconds per image through the studio vs plain diffusers.

For each model, in the same process and on the same loaded weights:

* **plain**: the diffusers pipeline called directly (``DDPMPipeline`` for a pixel model,
  ``StableDiffusionPipeline`` for a text model), same scheduler, steps, seeds and batch;
* **studio**: the plugin's ``sample`` job submitted to the studio's own job runner, with live
  previews on (a predicted-x0 image every step, throttled to the window's 20 Hz), progress
  events, Cancel checks and the PNG with its parameters written at the end.

Runs alternate (plain, studio, plain, ...) and the medians are compared, so a busy machine slows
both sides alike. Bar: studio / plain <= 1.05 for every model.

Models: ``--model DIR`` (any diffusers folder: a trained run, SD 1.5, ...) or, by default, two
built here with random weights (speed does not depend on the weights): the default training
preset (``small``, 32 px, as trained by ``studio run diffusion train``) and a Stable-Diffusion-
shaped latent model at 256 px (CLIP text encoder, KL VAE, cross-attention UNet), small enough
for a CPU.

    python bench/diffusion_speed.py                       # both built-in models
    python bench/diffusion_speed.py --model ~/sd15 --steps 20 --n 1 --prompt "a red fox"
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BAR = 1.05


def build_pixel_model(target: Path) -> Path:
    import torch
    from diffusers import DDPMPipeline

    from plugins.diffusion.engine.presets import build_unet
    from plugins.diffusion.engine.train import make_noise_scheduler

    torch.manual_seed(0)
    DDPMPipeline(unet=build_unet("small", 32, 1), scheduler=make_noise_scheduler("epsilon")
                 ).save_pretrained(target, safe_serialization=True)
    return target


def build_text_model(target: Path) -> Path:
    """SD-shaped, 256 px output (32x32 latents), about 1/10 of SD 1.5's UNet width."""
    import json as _json

    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tok = target.parent / "tokenizer-src"
    tok.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789,.!":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (tok / "vocab.json").write_text(_json.dumps(vocab))
    (tok / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(str(tok), model_max_length=77)
    text = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=256, intermediate_size=1024,
        num_attention_heads=4, num_hidden_layers=4, vocab_size=len(tokenizer),
        max_position_embeddings=77))
    unet = UNet2DConditionModel(
        sample_size=32, block_out_channels=(64, 128, 256), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=256, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=(32, 64, 128, 128), latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=256)
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          skip_prk_steps=True, steps_offset=1)
    StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                            scheduler=sched, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(
        target, safe_serialization=True)
    return target


def plain_call(lm: Any, scheduler: str, steps: int, n: int, seed: int, prompt: str,
               guidance: float) -> None:
    """The pipeline as a diffusers user would call it (same scheduler, seeds and batch)."""
    import torch

    from plugins.diffusion.engine.sampling import make_generators
    from plugins.diffusion.engine.schedulers import make_scheduler

    sched = make_scheduler(scheduler, lm.base_scheduler_config)
    gens = make_generators(seed, n)
    if lm.kind == "pixel":
        from diffusers import DDPMPipeline

        pipe = DDPMPipeline(unet=lm.pipe.unet, scheduler=sched)
        pipe.set_progress_bar_config(disable=True)
        with torch.inference_mode():
            pipe(batch_size=n, generator=gens, num_inference_steps=steps, output_type="np")
    else:
        pipe = lm.pipe
        pipe.scheduler = sched
        pipe(prompt=prompt, num_images_per_prompt=n, generator=gens, num_inference_steps=steps,
             guidance_scale=guidance, output_type="np")


def studio_call(runner: Any, spec: Any, model: Path, scheduler: str, steps: int, n: int,
                seed: int, prompt: str, guidance: float, out: Path) -> tuple[float, int]:
    """Seconds the job ran (worker start to finish) and how many previews it sent."""
    from plugins.diffusion.params import SampleParams

    rec = runner.submit("diffusion", spec, SampleParams(
        model=model, n=n, steps=steps, scheduler=scheduler, seed=seed, prompt=prompt,
        guidance=guidance, batch_size=n, out=out, previews=True))
    runner.wait(rec.id)
    if rec.state != "done":
        raise SystemExit(f"studio job failed: {rec.error}")
    previews = [e for e in EVENTS if e.job_id == rec.id and e.kind == "preview"
                and e.data["kind"] == "image"]
    return rec.finished - rec.started, len(previews)


EVENTS: list[Any] = []


def bench_model(model: Path, *, scheduler: str, steps: int, n: int, repeats: int, prompt: str,
                guidance: float, threads: int) -> dict[str, Any]:
    from plugins.diffusion.engine.loading import load_model
    from plugins.diffusion.plugin import DiffusionPlugin
    from studio.jobs import JobRunner
    from studio.settings import Settings

    settings = Settings(device="cpu", cpu_threads=threads)
    runner = JobRunner(EVENTS.append, settings=settings)
    spec = DiffusionPlugin().job("sample")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        # warm-up: loads the model into the studio's cache (load time is not sampling speed)
        studio_call(runner, spec, model, scheduler, 2, n, 0, prompt, guidance, out)
        lm = load_model(model, "cpu")  # the very same cached weights the job used
        plain_call(lm, scheduler, 2, n, 0, prompt, guidance)
        plain_t, studio_t, n_prev = [], [], []
        for r in range(repeats):
            # alternate which side goes first, so drifting machine load hits both alike
            order = ("plain", "studio") if r % 2 == 0 else ("studio", "plain")
            for side in order:
                if side == "plain":
                    t0 = time.perf_counter()
                    plain_call(lm, scheduler, steps, n, 100 + r, prompt, guidance)
                    plain_t.append((time.perf_counter() - t0) / n)
                else:
                    secs, previews = studio_call(runner, spec, model, scheduler, steps, n,
                                                 100 + r, prompt, guidance, out)
                    studio_t.append(secs / n)
                    n_prev.append(previews)
            print(f"  {model.name} run {r + 1}/{repeats}: plain {plain_t[-1]:.3f} s/img, "
                  f"studio {studio_t[-1]:.3f} s/img ({n_prev[-1]} previews)", flush=True)
    runner.shutdown()
    plain, studio = statistics.median(plain_t), statistics.median(studio_t)
    return {"model": model.name, "kind": lm.kind, "steps": steps, "n": n,
            "scheduler": scheduler, "plain_s_per_image": round(plain, 4),
            "studio_s_per_image": round(studio, 4), "ratio": round(studio / plain, 4),
            "previews_per_run": n_prev, "pass": studio / plain <= BAR}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=None,
                    help="diffusers folder (repeatable); default: the two built-in models")
    ap.add_argument("--scheduler", default="dpm++")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--n", type=int, default=None,
                    help="images per call (default: 16 for pixel, 1 for text models)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prompt", default="a lighthouse on a cliff at dusk")
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    from studio.device import configure_allocator

    configure_allocator()  # as the studio's entry point does; both sides share it
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        models = [Path(m).expanduser() for m in (args.model or [])]
        if not models:
            print("building the built-in models (random weights)…", flush=True)
            models = [build_pixel_model(Path(tmp) / "ddpm-small-32px"),
                      build_text_model(Path(tmp) / "sd-shaped-256px")]
        results = []
        for model in models:
            from plugins.diffusion.engine.loading import inspect_model

            kind = inspect_model(model).kind
            n = args.n or (16 if kind == "pixel" else 1)
            results.append(bench_model(model, scheduler=args.scheduler, steps=args.steps, n=n,
                                       repeats=args.repeats, prompt=args.prompt,
                                       guidance=args.guidance, threads=args.threads))
    print()
    for r in results:
        print(f"{r['model']:>18} ({r['kind']}, {r['scheduler']}, {r['steps']} steps, batch "
              f"{r['n']}): plain {r['plain_s_per_image']:.3f} s/img, studio "
              f"{r['studio_s_per_image']:.3f} s/img -> ratio {r['ratio']:.3f} "
              f"({'PASS' if r['pass'] else 'FAIL'}, bar <= {BAR})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["pass"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
