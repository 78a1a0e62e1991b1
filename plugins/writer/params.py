"""The writer's job parameters: one dataclass per job, read by the command line, the panel's
forms, validation and the run manifest.

Light on purpose (no torch, no Qt): the panel and ``studio run writer <job> --help`` import it.
A default lives here, or, where a field's "0"/None means "the preset's", in the engine's preset
table (:mod:`plugins.writer.engine.presets`) and :func:`~.engine.pipeline.resolve_config`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from plugins.common.lm.sampling import (
    CUSTOM,
    SAMPLER_PRESETS,
    SamplingSettings,
    parse_stop_sequences,
    preset_choices,
)
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
from plugins.writer.engine.presets import PRESETS
from studio.errors import UserError
from studio.params import Choices, Help, Label, Range, Special, Unit, Widget

#: what a writer model field lists in the model library: full models and LoRA adapters
MODEL_KINDS = ("causal-lm", "lm-adapter")
SEED_MAX = 2**31 - 1
ALTERNATIVE_TOKENS = 80  # alternatives from the window are short: at most this many tokens
TEXT_FILTER = "Text (*.txt *.md *.markdown);;All files (*)"

# -- fields several jobs share (each job gives its own default) ------------------------------
ModelFolder = Annotated[Path, Label("Model"), Widget("model", kinds=MODEL_KINDS),
                        Help("a model folder (or a writer run folder)")]
Prompt = Annotated[str, Label("Text to continue"), Widget("text"),
                   Help("the text to continue (empty: start a new text)")]
MaxNewTokens = Annotated[int, Label("Length"), Range(1, 32_768), Unit(" tokens"),
                         Help("tokens to add at most")]
Temperature = Annotated[float, Label("Temperature"), Range(0.0, 5.0, 0.05),
                        Help("0 is greedy (always the likeliest word); higher is more "
                             "surprising")]
TopK = Annotated[int, Label("Top-k"), Range(0, 1_000_000), Special("no limit"),
                 Help("sample among the k likeliest tokens (0: no limit)")]
TopP = Annotated[float, Label("Top-p"), Range(0.01, 1.0, 0.05),
                 Help("nucleus sampling: choose among the likeliest tokens that together reach "
                      "this probability (1: off)")]
MinP = Annotated[float, Label("Min-p"), Range(0.0, 0.95, 0.01),
                 Help("keep only words at least this fraction as likely as the likeliest one "
                      "(0: off); stays coherent at higher temperatures than top-p")]
#: the shared engine's named sampler presets (plugins.common.lm.sampling), or "custom"
SamplerName = Literal["custom", "precise", "balanced", "creative"]
Sampler = Annotated[SamplerName, Label("Style"), Choices(preset_choices()),
                    Help("named sampler settings (" + ", ".join(
                        p.label for p in SAMPLER_PRESETS.values()) + ") that set temperature, "
                         "top-k, top-p, min-p and repetition penalty; custom: those values as "
                         "they are")]
RepetitionPenalty = Annotated[float, Label("Repetition penalty"), Range(0.1, 10.0, 0.05),
                              Help("above 1 discourages repeating words already in the text "
                                   "(1: off)")]
Seed = Annotated[int | None, Label("Seed"), Range(0, SEED_MAX), Widget("seed"),
                 Help("the same seed, text and settings give the same continuation (default: "
                      "a fresh seed each time, shown in the log)")]
StopAt = Annotated[list[str], Label("Stop at"),
                   Help("stop sequences, comma separated; \\n means a new line")]
ValFraction = Annotated[float, Label("Held-out share"), Range(0.0, 0.9, 0.05),
                        Help("share of each file held out for validation (the end of the file)")]
TokenizerKind = Annotated[Literal["bpe", "char"], Label("Tokenizer"),
                          Choices(bpe="byte-level BPE (recommended)", char="characters"),
                          Help("for a new model: byte-level BPE or characters")]
VocabSize = Annotated[int, Label("Vocabulary"), Range(0, 262_144), Special("automatic"),
                      Unit(" tokens"),
                      Help("BPE vocabulary size, at least 258 (0: chosen from the corpus size)")]


def _check_vocab(vocab_size: int) -> None:
    if 0 < vocab_size < 258:
        raise UserError("--vocab-size must be 0 (automatic) or at least 258: a byte-level BPE "
                        "vocabulary holds the 256 bytes and the separator")


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class TrainParams:
    """Train a new language model on your text, or fine-tune a local model folder."""

    data: Annotated[Path | None, Label("Your text"), Widget("folder"),
                    Help("a .txt/.md file or a folder of them (UTF-8); a resumed run reads "
                         "the text it started with")] = None
    model: Annotated[Path | None, Label("Model to fine-tune"),
                     Widget("model", kinds=MODEL_KINDS),
                     Help("a local Hugging Face model folder to fine-tune instead of training "
                          "a new model")] = None
    method: Annotated[Literal["full", "lora"], Label("Fine-tuning"),
                      Choices(full="all weights (full)", lora="LoRA adapters (fast, small)"),
                      Help("fine-tune all weights (full) or small LoRA adapters (lora)")
                      ] = "full"
    merge_lora: Annotated[bool, Label("Save LoRA merged into a full model"),
                          Help("save LoRA merged into a full model (else only the adapter "
                               "folder)")] = True
    lora_r: Annotated[int, Label("LoRA rank"), Range(1, 512),
                      Help("LoRA rank: larger adapters learn more and cost more")] = 8
    preset: Annotated[Literal["tiny", "small", "base"], Label("Size"),
                      Choices({n: f"{n}: {p.description}" for n, p in PRESETS.items()}),
                      Help("size of a new model (ignored when fine-tuning)")] = "tiny"
    tokenizer: TokenizerKind = "bpe"
    byte_fallback: Annotated[bool, Label("Spell new characters as bytes"),
                             Help("character tokenizer: a character your text never had is "
                                  "spelled as its bytes, so any text can be read and written "
                                  "back; off: it becomes 'unknown' and is lost")] = True
    vocab_size: VocabSize = 0
    steps: Annotated[int, Label("Steps"), Range(1, 10_000_000),
                     Help("training steps (a resumed run continues up to this many)")] = 2000
    minutes: Annotated[float, Label("Time limit"), Range(0.0, 100_000.0, 0.5),
                       Special("no limit"), Unit(" min"),
                       Help("stop after this many minutes (0: no limit); the learning-rate "
                            "schedule then follows the clock")] = 0.0
    lr: Annotated[float, Label("Learning rate"), Range(0.0, 1.0, 0.00001), Special("automatic"),
                  Help("peak learning rate (0: the preset's, or 5e-5 full / 2e-4 LoRA for "
                       "fine-tuning)")] = 0.0
    optimizer: Annotated[Literal["auto", "adamw", "muon"], Label("Optimizer"),
                         Choices(auto="automatic", adamw="AdamW", muon="Muon"),
                         Help("automatic: the preset's for new models (Muon for tiny), AdamW "
                              "for fine-tuning")] = "auto"
    batch_size: Annotated[int, Label("Batch size"), Range(0, 4096), Special("the preset's"),
                          Help("sequences per step (0: the preset's)")] = 0
    block_size: Annotated[int, Label("Context"), Range(0, 131_072), Special("the preset's"),
                          Unit(" tokens"),
                          Help("context length in tokens (0: the preset's; at most the "
                               "model's)")] = 0
    eval_every: Annotated[int, Label("Validate every"), Range(0, 10_000_000),
                          Special("automatic"), Unit(" steps"),
                          Help("steps between validations and checkpoints (0: about 10 per "
                               "run)")] = 0
    patience: Annotated[int, Label("Early stop patience"), Range(0, 10_000), Special("never"),
                        Help("stop when the validation loss has not improved for this many "
                             "validations (0: never)")] = 0
    val_fraction: ValFraction = 0.1
    seed: Annotated[int, Label("Seed"), Range(0, SEED_MAX), Widget("seed"),
                    Help("random seed (initial weights, batches)")] = 0
    # differential privacy (plugins.common.privacy): one record is a passage of the context
    private: Private = False
    epsilon: Epsilon = DEFAULT_EPSILON
    delta: Delta = 0.0
    noise_multiplier: NoiseMultiplier = 0.0
    max_grad_norm: MaxGradNorm = DEFAULT_MAX_GRAD_NORM
    noise_seed: NoiseSeed = None
    resume: Annotated[bool, Label("Resume"),
                      Help("continue the run in the output folder from its last checkpoint")
                      ] = False
    examples_of: Annotated[Path | None, Label("Passages of run"), Widget("hidden"),
                           Help("a writer run folder: train on the passages of --data it "
                                "recorded, holding out a random --val-fraction of them chosen "
                                "by --seed (how the privacy audit trains reference models)")
                           ] = None

    def rules(self) -> None:
        if self.data is None and not self.resume:
            raise UserError("--data is required: choose a .txt/.md file or a folder of them")
        _check_vocab(self.vocab_size)
        spec_of(self)
        if self.examples_of is not None and \
                not (self.examples_of.expanduser() / "run.json").is_file():
            raise UserError("--examples-of must be a run folder made by the writer's train "
                            "job (it has a run.json)")


@dataclass(kw_only=True)
class InspectParams:
    """Count the characters and tokens of a corpus before training."""

    data: Annotated[Path, Label("Your text"), Widget("folder"),
                    Help("a .txt/.md file or a folder of them")]
    model: Annotated[Path | None, Label("Model"), Widget("model", kinds=MODEL_KINDS),
                     Help("count with this model's tokenizer (default: a tokenizer trained on "
                          "the corpus)")] = None
    tokenizer: TokenizerKind = "bpe"
    vocab_size: VocabSize = 0
    val_fraction: ValFraction = 0.1

    def rules(self) -> None:
        _check_vocab(self.vocab_size)


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
class _Sampling:
    """What the two generating jobs share: their fields as the engine's sampling settings.

    A named ``sampler`` preset decides temperature, top-k, top-p, min-p and repetition penalty;
    "custom" takes those fields as they are.
    """

    sampler: str
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repetition_penalty: float
    seed: int | None
    stop: list[str]
    max_new_tokens: int

    def settings(self) -> SamplingSettings:
        s = SamplingSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                             top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
                             repetition_penalty=self.repetition_penalty, seed=self.seed,
                             stop=tuple(parse_stop_sequences(self.stop)),
                             min_new_tokens=int(getattr(self, "min_new_tokens", 0)))
        if self.sampler != CUSTOM:
            s = s.with_preset(self.sampler)
        s.validate()
        return s


@dataclass(kw_only=True)
class GenerateParams(_Sampling):
    """Continue a text with a model; the continuation is streamed and returned."""

    model: ModelFolder
    prompt: Prompt = ""
    max_new_tokens: MaxNewTokens = 200
    sampler: Sampler = "custom"
    temperature: Temperature = 0.8
    top_k: TopK = 50
    top_p: TopP = 0.95
    min_p: MinP = 0.0
    repetition_penalty: RepetitionPenalty = 1.0
    seed: Seed = None
    stop: StopAt = field(default_factory=list)
    min_new_tokens: Annotated[int, Label("Minimum length"), Range(0, 32_768), Unit(" tokens"),
                              Help("do not stop at end-of-text before this many tokens")] = 0


@dataclass(kw_only=True)
class AlternativesParams(_Sampling):
    """Several different continuations of one text, to pick from."""

    model: ModelFolder
    prompt: Prompt = ""
    n: Annotated[int, Label("How many"), Range(1, 16), Help("how many continuations")] = 3
    max_new_tokens: MaxNewTokens = 60
    sampler: Sampler = "custom"
    temperature: Temperature = 0.9
    top_k: TopK = 50
    top_p: TopP = 0.95
    min_p: MinP = 0.0
    repetition_penalty: RepetitionPenalty = 1.0
    seed: Seed = None
    stop: StopAt = field(default_factory=list)

    @classmethod
    def following(cls, p: GenerateParams, n: int) -> AlternativesParams:
        """Alternatives with the settings of a continuation (the Write tab's one set of
        sampling controls), shorter: at most :data:`ALTERNATIVE_TOKENS` tokens each."""
        mine = {f.name for f in dataclasses.fields(cls)}
        shared = {f.name: getattr(p, f.name) for f in dataclasses.fields(p) if f.name in mine}
        shared["max_new_tokens"] = min(p.max_new_tokens, ALTERNATIVE_TOKENS)
        return cls(**shared, n=n)


# ----------------------------------------------------------------------------------------------
# Evaluation and models
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class EvalParams:
    """Perplexity and bits per character of a model on held-out text."""

    model: ModelFolder
    data: Annotated[Path, Label("Held-out text"), Widget("file", filter=TEXT_FILTER),
                    Help("a .txt/.md file or folder the model was not trained on")]
    window: Annotated[int, Label("Window"), Range(0, 131_072), Special("the model's context"),
                      Unit(" tokens"),
                      Help("tokens per window (0: the model's context, at most 1024)")] = 0
    stride: Annotated[int, Label("Stride"), Range(0, 131_072), Special("no overlap"),
                      Unit(" tokens"),
                      Help("new tokens scored per window (0: the window, i.e. no overlap)")] = 0


@dataclass(kw_only=True)
class DownloadParams:
    """Download a model from the Hugging Face Hub into the workspace (safetensors only)."""

    repo_id: Annotated[str, Label("Hub model id"),
                       Help("the model's Hub id, e.g. HuggingFaceTB/SmolLM2-135M")]
    revision: Annotated[str, Label("Revision"), Help("branch, tag or commit")] = "main"
