"""Prompts as AUTOMATIC1111 reads them: attention weights, long prompts, LoRA tags.

- ``(word:1.2)`` multiplies the weight of the words inside by 1.2; ``(word)`` by 1.1 and
  ``[word]`` by 1/1.1, nested brackets multiply; ``\\(`` and ``\\)`` are literal brackets;
  ``BREAK`` starts a new chunk. :func:`parse_attention` follows A1111's rules exactly
  (unbalanced brackets, adjacent fragments of equal weight merged).
- A prompt longer than the text encoder's window (77 tokens for CLIP) is cut into chunks of 75
  tokens, each encoded with its own start and end tokens and the results concatenated, as A1111
  does; a chunk that would end within 20 tokens after a comma breaks at that comma instead. The
  negative prompt is padded with empty chunks to the same length.
- Weights scale the encoder's output for each token, and the whole is rescaled to keep its
  original mean (A1111's "Original" emphasis), so emphasis changes the balance between words
  and not the overall strength.
- SDXL: both text encoders (penultimate layers, concatenated), the pooled embedding of the
  second from the first chunk.
- ``<lora:name:0.8>`` tags are taken out of the text by :func:`extract_networks`; the caller
  loads the LoRAs they name.

Textual-inversion embeddings loaded into the pipeline (``load_textual_inversion``) are expanded
to their tokens by diffusers' ``maybe_convert_prompt`` before tokenizing, so a trigger word in
a weighted fragment gets its weight too.

A prompt without weights, shorter than one window, gives exactly the embeddings diffusers'
own ``encode_prompt`` gives (a test holds it to that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ROUND = 1.1
SQUARE = 1 / 1.1
COMMA_BACKTRACK = 20  # A1111's default "comma padding backtrack"

_RE_ATTENTION = re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:
""", re.X)
_RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_RE_NETWORK = re.compile(r"<(lora|lyco|hypernet):([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.I)


@dataclass(frozen=True)
class NetworkTag:
    """A ``<lora:name:weight>`` tag found in a prompt."""

    kind: str  # "lora" (LyCORIS tags count as LoRA) or "hypernet"
    name: str
    weight: float


def extract_networks(text: str) -> tuple[str, list[NetworkTag]]:
    """The prompt without its ``<lora:…>``/``<lyco:…>``/``<hypernet:…>`` tags, and the tags.
    A tag's weight defaults to 1; a weight that is not a number raises ``ValueError``."""
    tags: list[NetworkTag] = []

    def take(m: re.Match[str]) -> str:
        kind = m.group(1).lower()
        raw = (m.group(3) or "").strip()
        try:
            weight = float(raw) if raw else 1.0
        except ValueError:
            raise ValueError(f"the weight of <{m.group(1)}:{m.group(2)}:{raw}> is not a "
                             "number") from None
        tags.append(NetworkTag("lora" if kind == "lyco" else kind, m.group(2).strip(), weight))
        return ""

    return _RE_NETWORK.sub(take, text), tags


def parse_attention(text: str) -> list[tuple[str, float]]:
    """A1111's prompt attention: ``"a (house:1.3) [on] a hill"`` ->
    ``[("a ", 1.0), ("house", 1.3), (" ", 1.0), ("on", 0.909…), (" a hill", 1.0)]``.
    ``BREAK`` comes out as ``("BREAK", -1.0)``."""
    res: list[list[Any]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for p in range(start, len(res)):
            res[p][1] *= factor

    for m in _RE_ATTENTION.finditer(text):
        tok, weight = m.group(0), m.group(1)
        if tok.startswith("\\"):
            res.append([tok[1:], 1.0])
        elif tok == "(":
            round_open.append(len(res))
        elif tok == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            multiply(round_open.pop(), float(weight))
        elif tok == ")" and round_open:
            multiply(round_open.pop(), ROUND)
        elif tok == "]" and square_open:
            multiply(square_open.pop(), SQUARE)
        else:
            for i, part in enumerate(_RE_BREAK.split(tok)):
                if i > 0:
                    res.append(["BREAK", -1.0])
                res.append([part, 1.0])
    for pos in round_open:
        multiply(pos, ROUND)
    for pos in square_open:
        multiply(pos, SQUARE)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):  # merge neighbours of equal weight
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return [(str(t), float(w)) for t, w in res]


def has_syntax(text: str) -> bool:
    """Whether ``text`` uses A1111 weights, BREAK or network tags (for models whose encoder
    the studio cannot weight: it says the syntax is read as plain text)."""
    return bool(_RE_NETWORK.search(text)) or any(
        w != 1.0 for _t, w in parse_attention(text))


# ----------------------------------------------------------------------------------------------
# Tokens in chunks
# ----------------------------------------------------------------------------------------------
@dataclass
class Chunk:
    """One window's worth of tokens, with start/end/padding, and a weight per token."""

    ids: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def window(tokenizer: Any, encoder: Any) -> int:
    """Tokens the encoder sees at once (77 for CLIP)."""
    n = int(getattr(getattr(encoder, "config", None), "max_position_embeddings", 0) or 77)
    limit = int(getattr(tokenizer, "model_max_length", n) or n)
    return min(n, limit) if limit > 2 else n


def tokenize_chunks(tokenizer: Any, text: str, size: int, convert: Any = None
                    ) -> list[Chunk]:
    """``text`` (A1111 syntax) as chunks of ``size`` tokens (the window, start and end tokens
    included). ``convert(fragment)`` expands textual-inversion triggers."""
    body = size - 2
    bos, eos = int(tokenizer.bos_token_id), int(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id
    pad = eos if pad is None else int(pad)
    comma = tokenizer.get_vocab().get(",</w>")
    chunks: list[Chunk] = []
    cur = Chunk()
    last_comma = -1

    def close() -> None:
        nonlocal cur, last_comma
        n = len(cur.ids)
        ids = [bos] + cur.ids + [eos] + [pad] * (body - n)
        weights = [1.0] + cur.weights + [1.0] * (body - n + 1)
        chunks.append(Chunk(ids, weights))
        cur = Chunk()
        last_comma = -1

    for fragment, weight in parse_attention(text):
        if fragment == "BREAK" and weight == -1.0:
            close()
            continue
        if convert is not None:
            fragment = convert(fragment)
        ids = tokenizer(fragment, add_special_tokens=False, truncation=False,
                        verbose=False)["input_ids"]
        for tok in ids:
            if tok == comma:
                last_comma = len(cur.ids)
            elif (len(cur.ids) == body and last_comma != -1
                  and len(cur.ids) - last_comma <= COMMA_BACKTRACK):
                keep = last_comma + 1  # break after the comma; the rest opens the next chunk
                moved_ids, moved_w = cur.ids[keep:], cur.weights[keep:]
                cur.ids, cur.weights = cur.ids[:keep], cur.weights[:keep]
                close()
                cur.ids, cur.weights = moved_ids, moved_w
            if len(cur.ids) == body:
                close()
            cur.ids.append(int(tok))
            cur.weights.append(float(weight))
    if cur.ids or not chunks:
        close()
    return chunks


def empty_chunk(tokenizer: Any, size: int) -> Chunk:
    return tokenize_chunks(tokenizer, "", size)[0]


def token_count(tokenizer: Any, text: str, convert: Any = None) -> int:
    """Tokens of ``text`` without start/end tokens (what A1111's counter shows)."""
    return sum(len(tokenizer(f, add_special_tokens=False, verbose=False)["input_ids"])
               for f, w in parse_attention(convert(text) if convert else text) if w != -1.0)


# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------
def _weigh(z: Any, weights: list[float]) -> Any:
    """A1111's emphasis: scale each token's vector, then restore the original mean."""
    if all(w == 1.0 for w in weights):
        return z
    import torch

    w = torch.tensor(weights, dtype=z.dtype, device=z.device)
    original = z.mean()
    z = z * w.reshape(1, -1, 1)
    return z * (original / z.mean())


def supports(pipe: Any) -> bool:
    """Whether the pipeline's text side is CLIP (SD 1.x/2.x, SDXL): the encoders this module
    weights."""
    clip = {"CLIPTextModel", "CLIPTextModelWithProjection"}
    enc, enc2 = getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)
    return (enc is not None and getattr(pipe, "tokenizer", None) is not None
            and type(enc).__name__ in clip and (enc2 is None or type(enc2).__name__ in clip))


@dataclass
class Conditioning:
    """What a diffusers SD/SDXL pipeline takes instead of prompt strings."""

    prompt_embeds: Any
    negative_prompt_embeds: Any
    pooled_prompt_embeds: Any = None
    negative_pooled_prompt_embeds: Any = None

    def kwargs(self) -> dict[str, Any]:
        out = {"prompt_embeds": self.prompt_embeds,
               "negative_prompt_embeds": self.negative_prompt_embeds}
        if self.pooled_prompt_embeds is not None:
            out["pooled_prompt_embeds"] = self.pooled_prompt_embeds
            out["negative_pooled_prompt_embeds"] = self.negative_pooled_prompt_embeds
        return out


def _pairs(pipe: Any) -> list[tuple[Any, Any]]:
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs.append((getattr(pipe, "tokenizer_2", None) or pipe.tokenizer, pipe.text_encoder_2))
    return [(t, e) for t, e in pairs if e is not None and t is not None]


def _encode_chunks(encoder: Any, chunks: list[Chunk], xl: bool, clip_skip: int,
                   device: Any) -> tuple[Any, Any]:
    """(hidden states of every chunk concatenated, pooled output of the first chunk)."""
    import torch

    ids = torch.tensor([c.ids for c in chunks], dtype=torch.long, device=device)
    out = encoder(ids, output_hidden_states=xl or clip_skip > 0)
    if xl:  # SDXL conditions on the penultimate layer, without the final norm
        hidden = out.hidden_states[-(clip_skip + 2)]
    elif clip_skip > 0:  # A1111's "Clip skip: n+1"; transformers 5 has no .text_model level
        # (diffusers' own clip_skip path still looks for it)
        norm = getattr(encoder, "text_model", encoder).final_layer_norm
        hidden = norm(out.hidden_states[-(clip_skip + 1)])
    else:
        hidden = out[0]
    zs = [_weigh(hidden[i:i + 1], c.weights) for i, c in enumerate(chunks)]
    pooled = out[0][:1] if type(encoder).__name__ == "CLIPTextModelWithProjection" else None
    return torch.cat(zs, dim=1), pooled


def encode(pipe: Any, prompt: str, negative: str, clip_skip: int = 0) -> Conditioning:
    """The conditioning of ``prompt`` and ``negative`` (A1111 syntax, LoRA tags already
    removed) for ``pipe``'s CLIP text encoder(s). ``clip_skip``: layers skipped from the end
    (A1111's "Clip skip" minus one)."""
    import torch

    xl = getattr(pipe, "text_encoder_2", None) is not None
    device = pipe.text_encoder.device
    convert = getattr(pipe, "maybe_convert_prompt", None)
    conds: list[Any] = []
    pooled: list[Any] = []
    for tokenizer, encoder in _pairs(pipe):
        size = window(tokenizer, encoder)

        def conv(text: str, tokenizer: Any = tokenizer) -> str:
            return str(convert(text, tokenizer)) if convert is not None else text

        pos = tokenize_chunks(tokenizer, prompt, size, conv)
        neg = tokenize_chunks(tokenizer, negative, size, conv)
        blank = empty_chunk(tokenizer, size)
        n = max(len(pos), len(neg))
        pos += [blank] * (n - len(pos))
        neg += [blank] * (n - len(neg))
        with torch.no_grad():
            zp, pp = _encode_chunks(encoder, pos, xl, clip_skip, device)
            zn, pn = _encode_chunks(encoder, neg, xl, clip_skip, device)
        conds.append((zp, zn))
        if pp is not None:
            pooled.append((pp, pn))
    if len(conds) == 1:
        zp, zn = conds[0]
    else:
        n = max(c[0].shape[1] for c in conds)  # the same tokens give the same chunk counts
        zp = torch.cat([c[0][:, :n] for c in conds], dim=-1)
        zn = torch.cat([c[1][:, :n] for c in conds], dim=-1)
    dtype = getattr(pipe.unet, "dtype", zp.dtype) if getattr(pipe, "unet", None) else zp.dtype
    cond = Conditioning(zp.to(dtype), zn.to(dtype))
    if xl and pooled:
        cond.pooled_prompt_embeds = pooled[-1][0].to(dtype)
        cond.negative_pooled_prompt_embeds = pooled[-1][1].to(dtype)
    return cond
