"""Exploring a trained generator: seeded samples, slerp interpolation, GANSpace directions, and
PNGs that remember how to make themselves again.

Every sample is named by ``(seed, class, edits)``: its latent is drawn from its own seed (image
``i`` of a batch "seed 1" uses seed ``1 + i``, as Stable Diffusion front-ends do), so any single
image can be regenerated without the rest of its batch. Exported PNGs carry the model, seed, class,
edits and the exact latent vector in their text chunks.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plugins.common import pngmeta
from plugins.common.images import to_uint8
from plugins.gan.engine.modelfile import LoadedModel, load_model
from plugins.gan.engine.results import Sample as Sample  # callers name samples from here
from studio import storage
from studio.errors import UserError

DIRECTIONS_FILE = "ganspace.safetensors"
META_PREFIX = "gan:"


def latent(seed: int, z_dim: int) -> torch.Tensor:
    """The latent of ``seed`` (the same on every machine: CPU generator, float32)."""
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(int(seed)))


def parse_label(model: LoadedModel, label: str | int | None) -> int | None:
    """A class given by name or index; None for unconditional models or "any class"."""
    cfg = model.config
    if label is None or (isinstance(label, str) and label.strip().lower() in ("", "any",
                                                                               "none")):
        return None
    if not cfg.conditional:
        raise UserError("this model was trained without classes, so it cannot draw a chosen "
                        "class (train on a folder with class sub-folders)")
    names = model.class_names
    text = str(label).strip()
    if text in names:
        return names.index(text)
    try:
        idx = int(text)
    except ValueError:
        idx = -1
    if not 0 <= idx < cfg.num_classes:
        raise UserError(f"unknown class {label!r}: this model knows {', '.join(names)}")
    return idx


def label_for(model: LoadedModel, seed: int, label: int | None) -> int | None:
    """The class a sample is drawn in: the chosen one, or for "any class" one picked by the seed
    (so the sample stays reproducible)."""
    if not model.config.conditional:
        return None
    return int(label) if label is not None else int(seed) % model.config.num_classes


def samples_for(model: LoadedModel, n: int, seed: int, label: int | None,
                edits: Sequence[float] = ()) -> list[Sample]:
    if n < 1 or n > 4096:
        raise UserError(f"number of images must be between 1 and 4096, not {n}")
    return [Sample(seed + i, label_for(model, seed + i, label), list(edits)) for i in range(n)]


# ----------------------------------------------------------------------------------------------
# GANSpace
# ----------------------------------------------------------------------------------------------
@dataclass
class Directions:
    """Principal directions of the generator's first feature map, carried back to latent space."""

    vectors: torch.Tensor  # (k, z_dim): latent step per unit of principal coordinate
    stdev: torch.Tensor  # (k,): standard deviation of each principal coordinate
    explained: torch.Tensor  # (k,): share of variance explained


def compute_directions(model: LoadedModel, k: int = 8, n: int = 2000, seed: int = 0
                       ) -> Directions:
    """GANSpace (Härkönen et al. 2020), as it is done for BigGAN: PCA of the generator's early
    activations (the 4x4 stem) for ``n`` random latents, then linear regression from the principal
    coordinates back to the latent, which turns each component into a latent direction."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    z = torch.randn(n, cfg.z_dim, generator=g)
    y = torch.randint(0, cfg.num_classes, (n,), generator=g) if cfg.conditional else None
    dev = next(model.generator.parameters()).device
    with torch.no_grad():
        feats = torch.cat([model.generator.stem(z[i:i + 500].to(dev),
                                                None if y is None else y[i:i + 500].to(dev))
                           .flatten(1).double().cpu() for i in range(0, n, 500)])
    feats = feats - feats.mean(0, keepdim=True)
    k = max(1, min(k, cfg.z_dim, n - 1))
    _, s, v = torch.linalg.svd(feats, full_matrices=False)
    coords = feats @ v[:k].T  # (n, k)
    total = (s ** 2).sum()
    # z ~ coords @ U: the latent change that moves each principal coordinate by one unit
    u = torch.linalg.lstsq(coords, z.double()).solution  # (k, z_dim)
    return Directions(u.float(), coords.std(0).float(), (s[:k] ** 2 / total).float())


def load_directions(model: LoadedModel, k: int = 8) -> Directions:
    """Directions cached beside the generator (recomputed when the generator changed)."""
    path = model.run_dir / DIRECTIONS_FILE
    if path.exists():
        try:
            meta = storage.read_tensor_metadata(path)
            if meta.get("model_id") == model.model_id and int(meta.get("k", 0)) >= k:
                t = storage.load_tensors(path)
                return Directions(t["vectors"][:k], t["stdev"][:k], t["explained"][:k])
        except (storage.CorruptFileError, ValueError, KeyError):
            pass  # stale or broken cache: recompute below
    d = compute_directions(model, max(k, 8))  # cache a few extra: sliders ask for fewer
    try:
        storage.save_tensors(path, {"vectors": d.vectors, "stdev": d.stdev,
                                    "explained": d.explained},
                             {"model_id": model.model_id, "k": str(len(d.stdev))})
    except OSError:
        pass  # a read-only model folder still gets its directions, just not cached
    return Directions(d.vectors[:k], d.stdev[:k], d.explained[:k])


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
def latents(model: LoadedModel, samples: Sequence[Sample], directions: Directions | None = None
            ) -> torch.Tensor:
    """Latents of ``samples`` with their edits applied, ``(N, z_dim)``."""
    z = torch.stack([latent(s.seed, model.config.z_dim) for s in samples])
    if any(any(e) for e in (s.edits for s in samples)):
        if directions is None:
            directions = load_directions(model, max(len(s.edits) for s in samples))
        for i, s in enumerate(samples):
            for j, a in enumerate(s.edits[:len(directions.stdev)]):
                z[i] += float(a) * directions.stdev[j] * directions.vectors[j]
    return z


@torch.no_grad()
def render(model: LoadedModel, z: torch.Tensor, labels: Sequence[int | None] | None = None,
           y_emb: torch.Tensor | None = None, batch: int = 256) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` images for latents ``z`` (and classes or class embeddings)."""
    G = model.generator
    dev = next(G.parameters()).device
    out = []
    for i in range(0, z.shape[0], batch):
        zb = z[i:i + batch].to(dev)
        yb = eb = None
        if model.config.conditional:
            if y_emb is not None:
                eb = y_emb[i:i + batch].to(dev)
            else:
                assert labels is not None
                yb = torch.tensor([int(v or 0) for v in labels[i:i + batch]], device=dev)
        out.append(to_uint8(G.synthesize(zb, yb, eb)))
    return np.concatenate(out)


def generate(model: LoadedModel, samples: Sequence[Sample]) -> np.ndarray:
    z = latents(model, samples)
    return render(model, z, [s.label for s in samples])


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: Gaussian latents live near a sphere, and a straight line between
    two of them passes through its low-density interior (washed-out images)."""
    a, b = z0 / z0.norm(), z1 / z1.norm()
    omega = torch.acos((a * b).sum().clamp(-1.0, 1.0))
    if float(omega) < 1e-6:
        return (1 - t) * z0 + t * z1
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * z0 + (torch.sin(t * omega) / so) * z1


def interpolate(model: LoadedModel, a: Sample, b: Sample, frames: int = 8) -> np.ndarray:
    """``frames`` images from ``a`` to ``b``: slerp of latents, linear blend of class
    embeddings (so a 3 can morph into an 8)."""
    if frames < 2 or frames > 256:
        raise UserError(f"frames must be between 2 and 256, not {frames}")
    za, zb = latents(model, [a, b])
    ts = [i / (frames - 1) for i in range(frames)]
    z = torch.stack([slerp(za, zb, t) for t in ts])
    emb = None
    if model.config.conditional:
        G = model.generator
        dev = next(G.parameters()).device
        with torch.no_grad():
            ea, eb = G.class_embedding(torch.tensor([a.label or 0, b.label or 0], device=dev))
        emb = torch.stack([(1 - t) * ea + t * eb for t in ts]).cpu()
    return render(model, z, y_emb=emb)


def save_gif(frames: np.ndarray, target: Path, ms_per_frame: int = 120, bounce: bool = True,
             scale: int = 1) -> Path:
    """An endlessly looping GIF (forth and back when ``bounce``), written atomically."""
    from PIL import Image

    seq = list(frames) + (list(frames[-2:0:-1]) if bounce and len(frames) > 2 else [])
    pics = []
    for f in seq:
        im = Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f)
        if scale > 1:
            im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
        pics.append(im)
    target = Path(target)
    with storage.atomic_path(target, suffix=".gif") as tmp:
        pics[0].save(tmp, format="GIF", save_all=True, append_images=pics[1:],
                     duration=ms_per_frame, loop=0)
    return target


# ----------------------------------------------------------------------------------------------
# PNG metadata
# ----------------------------------------------------------------------------------------------
def encode_latent(z: torch.Tensor) -> str:
    return base64.b64encode(z.detach().cpu().float().numpy().astype("<f4").tobytes()).decode()


def decode_latent(text: str, z_dim: int) -> torch.Tensor:
    try:
        raw = base64.b64decode(text.encode(), validate=True)
        arr = np.frombuffer(raw, dtype="<f4")
    except ValueError:
        raise UserError("the PNG's gan:latent field is damaged") from None
    if arr.size != z_dim:
        raise UserError(f"the PNG's latent has {arr.size} values but the model expects {z_dim}")
    return torch.from_numpy(arr.copy())


def sample_text(model: LoadedModel, sample: Sample, z: torch.Tensor) -> dict[str, str]:
    """PNG text chunks for one sample (everything needed to draw it again)."""
    names = model.class_names
    text = {
        "Software": "Generative Studio (GAN)",
        f"{META_PREFIX}model": model.run_dir.resolve().name,  # a name: a path names the user
        f"{META_PREFIX}model_id": model.model_id,
        f"{META_PREFIX}arch": model.config.arch,
        f"{META_PREFIX}step": str(model.info.get("step", "")),
        f"{META_PREFIX}seed": str(sample.seed),
        f"{META_PREFIX}edits": ",".join(f"{e:g}" for e in sample.edits),
        f"{META_PREFIX}latent": encode_latent(z),
    }
    if sample.label is not None:
        text[f"{META_PREFIX}class"] = str(sample.label)
        text[f"{META_PREFIX}class_name"] = names[sample.label]
    desc = f"seed {sample.seed}" + (f", class {names[sample.label]}" if sample.label is not None
                                    else "")
    if any(sample.edits):
        desc += ", edits " + text[f"{META_PREFIX}edits"]
    text["Description"] = f"GAN sample ({desc}) from {model.run_dir.name}"
    return text


def export_png(model: LoadedModel, sample: Sample, target: Path, scale: int = 1) -> Path:
    """Render one sample and save it with its metadata (the image is generated on its own, so
    :func:`regenerate` reproduces it bit for bit)."""
    z = latents(model, [sample])
    image = render(model, z, [sample.label])[0]
    if scale > 1:
        image = np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8))
    return pngmeta.save_png(image, target, sample_text(model, sample, z[0]) |
                            {f"{META_PREFIX}scale": str(scale)})


def read_sample(png: Path) -> dict[str, str]:
    text = pngmeta.read_png_text(png)
    if f"{META_PREFIX}latent" not in text:
        raise UserError(f"{Path(png).name} carries no GAN metadata (it was not exported by the "
                        "GAN plugin, or its text chunks were stripped)")
    return text


def regenerate(png: Path, model: str | Path | None = None, device: str = "cpu"
               ) -> tuple[np.ndarray, dict[str, str], LoadedModel]:
    """Draw the image described by ``png``'s metadata again, with the model it names (or
    ``model``). Warns through the returned text when the model file changed since."""
    text = read_sample(png)
    loaded = load_model(model or text[f"{META_PREFIX}model"], device)
    z = decode_latent(text[f"{META_PREFIX}latent"], loaded.config.z_dim)
    label = text.get(f"{META_PREFIX}class")
    image = render(loaded, z[None], [int(label) if label else None])[0]
    scale = int(text.get(f"{META_PREFIX}scale", "1") or 1)
    if scale > 1:
        image = np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8))
    return image, text, loaded


def describe(model: LoadedModel) -> dict[str, Any]:
    """What the Explore tab shows about a model."""
    cfg = model.config
    return {"arch": cfg.arch, "size": cfg.size, "train_size": cfg.net_size,
            "channels": cfg.channels, "classes": model.class_names if cfg.conditional else [],
            "step": model.info.get("step"), "z_dim": cfg.z_dim, "model_id": model.model_id,
            "path": str(model.run_dir)}


def grid_columns(n: int) -> int:
    return max(1, int(math.ceil(math.sqrt(n))))
