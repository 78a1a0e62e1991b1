"""A Hugging Face Llama-family model as a GGUF file, for llama.cpp.

Why: on a CPU llama.cpp decodes a small model five times as fast as transformers (issue 12's
figures: SmolLM2-135M 102 vs 18 tokens/s on 2 threads), so the chat's fastest path for a model
the user has as a Hugging Face folder is a GGUF copy of it. The ``gguf`` package (llama.cpp's own
reader and writer) writes the file; what llama.cpp's ``convert_hf_to_gguf.py`` does for these
models is done here for the ones the studio makes and most small chat models: Llama, SmolLM and
Mistral (without a sliding window), with a byte-level BPE tokenizer.

- Weights: the query and key projections are permuted into llama.cpp's rotary layout (as the
  converter does; transformers undoes it when it reads a GGUF), 1-D tensors stay float32, the
  matrices are F16, F32, Q8_0 or Q4_0 (``gguf.quants``, blocks of 32). Tied embeddings write no
  ``output.weight``.
- Tokenizer: the vocabulary, merges and token types (control for special added tokens,
  user-defined for the others), bos/eos/pad ids and the chat template. The pre-tokenizer name
  is read from the tokenizer's split rule where it is a known one (GPT-2, Llama 3, SmolLM,
  Qwen2); the studio tokenises with the original tokenizer anyway, and :func:`check_tokenizer`
  says whether llama.cpp's own reading of the file agrees.

Anything else (another architecture, rope scaling, biases, a SentencePiece vocabulary) is a
:class:`UnsupportedModel` whose message says what is not supported, so a caller can fall back
to transformers and say why. No torch at import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from studio.errors import UserError
from studio.storage import atomic_path

FileType = Literal["f32", "f16", "q8_0", "q4_0"]
FILE_TYPES: dict[str, str] = {"f16": "F16 (exact enough, half the size of float32)",
                              "q8_0": "Q8_0 (8-bit, a quarter of float32)",
                              "q4_0": "Q4_0 (4-bit, fastest, a little less accurate)",
                              "f32": "F32 (exact, largest)"}
#: transformers model types this module converts, and llama.cpp's architecture for each
ARCHITECTURES = {"llama": "llama", "mistral": "llama"}

# The split rules of known byte-level BPE tokenizers, and llama.cpp's pre-tokenizer names.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}"
                 r"\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


class UnsupportedModel(UserError):
    """The model cannot be written as GGUF here; the message says why."""


@dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]
    types: list[int]          # gguf.TokenType values
    merges: list[str]
    pre: str                  # llama.cpp pre-tokenizer name
    bos: int | None
    eos: int | None
    pad: int | None
    add_bos: bool


def check_convertible(config: Any, tokenizer: Any) -> str:
    """llama.cpp's architecture name for this model, or :class:`UnsupportedModel`."""
    model_type = str(getattr(config, "model_type", "?"))
    arch = ARCHITECTURES.get(model_type)
    if arch is None:
        raise UnsupportedModel(f"a {model_type} model cannot be copied for llama.cpp here (the "
                               f"studio converts {', '.join(sorted(ARCHITECTURES))} models)")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise UnsupportedModel("this model has bias terms llama.cpp's llama layout has no room "
                               "for")
    if getattr(config, "sliding_window", None):
        raise UnsupportedModel("this model uses sliding-window attention")
    rope = _rope(config)[1]
    if rope not in ("default", None):
        raise UnsupportedModel(f"this model's rotary embedding is scaled ({rope})")
    _vocabulary(tokenizer, int(config.vocab_size))  # raises for a tokenizer it cannot carry
    return arch


def _rope(config: Any) -> tuple[float, str | None]:
    """(rope theta, rope type) in transformers 4 or 5 layout."""
    params = getattr(config, "rope_parameters", None) or {}
    scaling = getattr(config, "rope_scaling", None) or {}
    theta = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    return float(theta), kind


def _vocabulary(tokenizer: Any, vocab_size: int) -> Vocabulary:
    """The tokenizer as llama.cpp's "gpt2" (byte-level BPE) vocabulary."""
    import gguf

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UnsupportedModel("only a fast (tokenizer.json) tokenizer can be copied")
    spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    text = json.dumps(spec.get("pre_tokenizer")) + json.dumps(spec.get("decoder"))
    if model.get("type") != "BPE" or "ByteLevel" not in text:
        raise UnsupportedModel("only byte-level BPE tokenizers (GPT-2, Llama 3, SmolLM, "
                               "Qwen) can be copied for llama.cpp")
    tokens: list[str | None] = [None] * vocab_size
    types = [int(gguf.TokenType.UNUSED)] * vocab_size
    for tok, idx in model["vocab"].items():
        if 0 <= idx < vocab_size:
            tokens[idx], types[idx] = tok, int(gguf.TokenType.NORMAL)
    for added in spec.get("added_tokens") or []:
        idx = int(added["id"])
        if 0 <= idx < vocab_size:
            tokens[idx] = added["content"]
            types[idx] = int(gguf.TokenType.CONTROL if added.get("special")
                             else gguf.TokenType.USER_DEFINED)
    if max((i for i, t in enumerate(tokens) if t is not None), default=-1) >= vocab_size:
        raise UnsupportedModel("the tokenizer has more tokens than the model")
    filled = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]

    def tid(name: str) -> int | None:
        value = getattr(tokenizer, f"{name}_token_id", None)
        return int(value) if isinstance(value, int) else None

    return Vocabulary(filled, types, merges, _pre_name(spec.get("pre_tokenizer")),
                      tid("bos"), tid("eos"), tid("pad"),
                      bool(getattr(tokenizer, "add_bos_token", False)))


def _pre_name(pre: Any) -> str:
    """llama.cpp's name for a tokenizer's pre-tokenizer (``default`` when it is not known)."""
    text = json.dumps(pre)
    regexes = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            pattern = node.get("pattern")
            if isinstance(pattern, Mapping) and "Regex" in pattern:
                regexes.append(pattern["Regex"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(pre)
    if _LLAMA3_SPLIT in regexes:
        return "llama-bpe"
    if _QWEN2_SPLIT in regexes:
        return "qwen2"
    if '"Digits"' in text and '"individual_digits": true' in text:
        return "smollm"
    if isinstance(pre, Mapping) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    return "default"


def _permute(w: Any, n_head: int) -> Any:
    """transformers' rotary layout (halves) to llama.cpp's (interleaved pairs)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def write_gguf(state: Mapping[str, Any], config: Any, tokenizer: Any, target: str | Path, *,
               name: str, file_type: FileType = "f16", chat_template: str | None = None,
               check: Callable[[], None] | None = None) -> Path:
    """Write the model (``state``: its state dict, torch tensors or numpy arrays) as a GGUF
    file, atomically. Raises :class:`UnsupportedModel` for a model it cannot carry."""
    import gguf
    import numpy as np

    arch = check_convertible(config, tokenizer)
    vocab_size = int(config.vocab_size)
    vocab = _vocabulary(tokenizer, vocab_size)
    n_layer = int(config.num_hidden_layers)
    n_head = int(config.num_attention_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_head)
    hidden = int(config.hidden_size)
    head_dim = int(getattr(config, "head_dim", None) or hidden // n_head)
    theta, _ = _rope(config)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    qtypes = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
              "q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}
    ftypes = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
    target = Path(target)
    with atomic_path(target, ".gguf") as tmp:
        w = gguf.GGUFWriter(str(tmp), arch)
        w.add_name(name)
        w.add_context_length(int(getattr(config, "max_position_embeddings", 2048)))
        w.add_embedding_length(hidden)
        w.add_block_count(n_layer)
        w.add_feed_forward_length(int(config.intermediate_size))
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_layer_norm_rms_eps(float(getattr(config, "rms_norm_eps", 1e-6)))
        w.add_rope_freq_base(theta)
        w.add_rope_dimension_count(head_dim)
        w.add_vocab_size(vocab_size)
        w.add_file_type(int(ftypes[file_type]))
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(vocab.pre)
        w.add_token_list(vocab.tokens)
        w.add_token_types(vocab.types)
        if vocab.merges:
            w.add_token_merges(vocab.merges)
        if vocab.bos is not None:
            w.add_bos_token_id(vocab.bos)
        if vocab.eos is not None:
            w.add_eos_token_id(vocab.eos)
        if vocab.pad is not None:
            w.add_pad_token_id(vocab.pad)
        w.add_add_bos_token(vocab.add_bos)
        if chat_template:
            w.add_chat_template(chat_template)
        for key, value in state.items():
            if check is not None:
                check()
            if key.endswith("rotary_emb.inv_freq") or (tied and key == "lm_head.weight"):
                continue
            new = names.get_name(key, try_suffixes=(".weight", ".bias"))
            if new is None:
                raise UnsupportedModel(f"the weight {key} has no place in a llama.cpp file")
            data = value.detach().float().cpu().numpy() if hasattr(value, "detach") \
                else np.asarray(value, dtype=np.float32)
            if key.endswith("q_proj.weight"):
                data = _permute(data, n_head)
            elif key.endswith("k_proj.weight"):
                data = _permute(data, n_kv)
            qtype = qtypes[file_type]
            if data.ndim < 2:
                qtype = gguf.GGMLQuantizationType.F32
            elif file_type in ("q8_0", "q4_0") and data.shape[-1] % 32:
                qtype = gguf.GGMLQuantizationType.F16
            out = gguf.quants.quantize(np.ascontiguousarray(data), qtype)
            w.add_tensor(new, out, raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return target


def export_folder(folder: str | Path, target: str | Path, *, file_type: FileType = "f16",
                  check: Callable[[], None] | None = None) -> Path:
    """A model folder (a LoRA adapter is merged into its base first) as a GGUF file."""
    from plugins.chat.engine import templates
    from plugins.common.lm.loading import load_causal_lm

    model, tokenizer, info = load_causal_lm(folder, device="cpu", dtype="float32")
    check_convertible(model.config, tokenizer)
    found = templates.detect(info.path) or (templates.detect(info.base) if info.base else None)
    source = None
    if found is not None:
        try:
            source = found.pick().source
        except UserError:
            source = None
    return write_gguf(model.state_dict(), model.config, tokenizer, target,
                      name=info.path.name, file_type=file_type, chat_template=source,
                      check=check)


def check_tokenizer(gguf_path: str | Path, tokenizer: Any, probe: str) -> bool:
    """Whether llama.cpp's reading of the file's vocabulary splits ``probe`` as ``tokenizer``
    does (needs llama-cpp-python; True when it is not installed: nothing to disagree)."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return True
    llm = Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    try:
        ours = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
        theirs = llm.tokenize(probe.encode("utf-8"), add_bos=False, special=True)
        return ours == list(theirs)
    finally:
        llm.close()
