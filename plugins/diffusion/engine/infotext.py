"""Generation parameters and the A1111 ``parameters`` text that carries them in PNGs.

The text looks like what AUTOMATIC1111's web UI writes, so its "PNG Info" tab, ComfyUI, InvokeAI
and image hosts read our files, and we read theirs::

    a lighthouse at dusk, oil painting
    Negative prompt: blurry
    Steps: 25, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 1, Size: 512x512, Model hash: 1a2b3c4d,
    Model: sd15, Denoising strength: 0.6

(the last line is one line in the file). Values containing commas or quotes are JSON-quoted, as
A1111 does. Keys we do not know are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from .schedulers import a1111_fields, canonical, from_fields

PNG_KEY = "parameters"
# A1111's own pattern for one "Key: value" pair of the last line
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_MODES = ("txt2img", "img2img", "inpaint", "outpaint")


@dataclass
class GenerationParams:
    """How one image was made; enough to make it again."""

    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 25
    scheduler: str = "DPM++ 2M"  # sampler and schedule: "DPM++ 2M Karras"
    guidance: float = 7.5
    seed: int = 1
    width: int = 0
    height: int = 0
    mode: str = "txt2img"
    strength: float | None = None  # img2img / inpaint denoising strength
    mask_blur: int | None = None
    model: str = ""
    model_hash: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def with_seed(self, seed: int) -> GenerationParams:
        return replace(self, seed=int(seed), extra=dict(self.extra))

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationParams:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _quote(value: Any) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text
    return text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _sampler_fields(name: str) -> list[tuple[str, Any]]:
    try:
        return list(a1111_fields(name))
    except Exception:  # a name kept from another tool's file: written back as it was
        return [("Sampler", name)]


def format_parameters(p: GenerationParams) -> str:
    """The A1111 ``parameters`` text for ``p``."""
    pairs: list[tuple[str, Any]] = [
        ("Steps", p.steps),
        *_sampler_fields(p.scheduler),
        ("CFG scale", _num(p.guidance)),
        ("Seed", p.seed),
    ]
    if p.width and p.height:
        pairs.append(("Size", f"{p.width}x{p.height}"))
    if p.model_hash:
        pairs.append(("Model hash", p.model_hash))
    if p.model:
        pairs.append(("Model", p.model))
    if p.strength is not None and (p.mode != "txt2img" or "Hires upscale" in p.extra):
        pairs.append(("Denoising strength", _num(p.strength)))
    if p.mask_blur is not None and p.mode in ("inpaint", "outpaint"):
        pairs.append(("Mask blur", p.mask_blur))
    if p.mode != "txt2img":
        pairs.append(("Studio mode", p.mode))
    pairs += list(p.extra.items())
    lines = []
    if p.prompt:
        lines.append(p.prompt)
    if p.negative_prompt:
        lines.append(f"Negative prompt: {p.negative_prompt}")
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in pairs))
    return "\n".join(lines)


def parse_parameters(text: str) -> GenerationParams:
    """Read an A1111 ``parameters`` text (ours or another tool's) back into parameters.

    Raises ``ValueError`` when the text has no ``Steps:`` line (not generation parameters).
    """
    lines = text.strip().replace("\r\n", "\n").split("\n")
    last = lines[-1] if lines else ""
    found = _RE_PARAM.findall(last)
    if len(found) < 3:
        raise ValueError("the text holds no generation parameters (no 'Steps: …, Seed: …' line)")
    prompt_lines, neg_lines, in_neg = [], [], False
    for line in lines[:-1]:
        if line.startswith("Negative prompt:"):
            in_neg = True
            line = line[len("Negative prompt:"):].strip()
        (neg_lines if in_neg else prompt_lines).append(line)
    p = GenerationParams(prompt="\n".join(prompt_lines).strip(),
                         negative_prompt="\n".join(neg_lines).strip())
    for key, raw in found:
        key, value = key.strip(), _unquote(raw.strip())
        try:
            if key == "Steps":
                p.steps = int(value)
            elif key in ("Sampler", "Schedule type"):
                continue  # read together below
            elif key == "CFG scale":
                p.guidance = float(value)
            elif key == "Seed":
                p.seed = int(value)
            elif key == "Size":
                w, h = value.lower().split("x")
                p.width, p.height = int(w), int(h)
            elif key == "Model hash":
                p.model_hash = value
            elif key == "Model":
                p.model = value
            elif key == "Denoising strength":
                p.strength = float(value)
            elif key == "Mask blur":
                p.mask_blur = int(float(value))
            elif key == "Studio mode" and value in _MODES:
                p.mode = value
            else:
                p.extra[key] = value
        except ValueError:
            p.extra[key] = value
    fields = {k.strip(): _unquote(v.strip()) for k, v in found}
    if "Sampler" in fields:
        try:
            p.scheduler = canonical(from_fields(fields["Sampler"], fields.get("Schedule type")))
        except Exception:  # a sampler the studio does not have: kept as written (generating
            # with it says so; nothing is swapped in silently)
            sched = fields.get("Schedule type", "")
            p.scheduler = fields["Sampler"] + (f" {sched}" if sched and sched != "Automatic"
                                               else "")
    if p.mode == "txt2img" and p.strength is not None and "Hires upscale" not in p.extra:
        # (with hires fix, A1111's txt2img records the second pass's strength)
        p.mode = "img2img"
    return p


def read_png_parameters(path: Any) -> GenerationParams:
    """The parameters stored in a PNG (raises ``UserError`` when it has none)."""
    from plugins.common.pngmeta import read_png_text
    from studio.errors import UserError

    text = read_png_text(path).get(PNG_KEY)
    if not text:
        raise UserError(f"{path} carries no generation parameters (no '{PNG_KEY}' text chunk)")
    try:
        return parse_parameters(text)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
