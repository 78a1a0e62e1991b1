"""Architectures for models trained from scratch, and their parameter counts.

A new model is a Llama-style decoder (``LlamaConfig``: RoPE positions, RMSNorm, SwiGLU MLP, tied
input/output embeddings), which trains faster per step than GPT-2's learned positions and GELU
MLP, and is a standard Hugging Face architecture: the saved folder loads in plain
``transformers`` with ``AutoModelForCausalLM``.

Pure arithmetic (no torch) so the panel can show parameter counts while the user picks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from studio.errors import UserError


@dataclass(frozen=True)
class Preset:
    """One from-scratch architecture and the training defaults that suit it.

    ``lr``, ``batch_size`` and ``block_size`` are defaults the user may override; ``tiny`` is the
    configuration tuned by ``bench/writer_shakespeare.py`` for a few CPU minutes.
    """

    name: str
    layers: int
    width: int
    heads: int
    ffn: int  # SwiGLU inner width
    block_size: int  # context length in tokens
    batch_size: int
    lr: float
    warmup: int
    description: str
    dropout: float = 0.0  # residual/embedding dropout while training
    optimizer: str = "adamw"  # "muon": Muon for hidden matrices, AdamW for the rest

    def model_kwargs(self, vocab_size: int, max_positions: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``transformers.LlamaConfig``."""
        return {
            "vocab_size": int(vocab_size),
            "hidden_size": self.width,
            "intermediate_size": self.ffn,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.heads,
            "max_position_embeddings": int(max_positions or self.block_size),
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "tie_word_embeddings": True,
            "attention_bias": False,
            "mlp_bias": False,
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "use_cache": True,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", layers=4, width=192, heads=4, ffn=512, block_size=256, batch_size=8,
                   lr=1e-2, warmup=50, optimizer="muon", dropout=0.2,
                   description="minutes on a laptop CPU; good for one author's corpus"),
    "small": Preset("small", layers=6, width=384, heads=6, ffn=1024, block_size=256,
                    batch_size=16, lr=1.5e-3, warmup=200,
                    description="an hour or so on a CPU, minutes on a GPU"),
    "base": Preset("base", layers=12, width=768, heads=12, ffn=2048, block_size=512,
                   batch_size=16, lr=6e-4, warmup=500,
                   description="GPT-2 small scale; wants a GPU and a large corpus"),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None


def param_count(preset: Preset | str, vocab_size: int) -> int:
    """Exact parameter count of ``LlamaForCausalLM`` built from :meth:`Preset.model_kwargs`
    (tied embeddings, so the output head adds nothing)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    d, f = p.width, p.ffn
    per_layer = 4 * d * d + 3 * d * f + 2 * d  # q, k, v, o; gate, up, down; two RMSNorms
    return vocab_size * d + p.layers * per_layer + d  # embeddings, layers, final norm

