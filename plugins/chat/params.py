"""The chat's job parameters: one dataclass per job, read by the command line
(``studio run chat <job> --help``), the panel's forms, validation and run manifests.

Light on purpose (no torch, no Qt). For the panel:

- ``reply`` (:class:`ReplyParams`) is every turn of a chat: ``mode="send"`` with ``message``
  (``parent`` branches from another message), ``"answer"`` after editing a user message
  (:meth:`~plugins.chat.engine.store.Store.edit` makes the new sibling, then answer it),
  ``"regenerate"`` (a sibling reply), ``"continue"`` (an unfinished reply). Sampler fields left
  ``None`` take the persona's; ``policy`` and ``template``, when given, are remembered by the
  chat. The job streams ``preview`` events (see :mod:`plugins.chat.jobs`) and returns a
  :class:`~plugins.chat.engine.outcomes.ReplyOutcome`.
- ``compare``: one message, two models, two sibling replies (``index`` 0 and 1 on the text
  previews); returns a :class:`~plugins.chat.engine.outcomes.CompareOutcome`.
- ``finetune`` / ``train``: runs (``--out``), live metrics; ``serve``: the local API until Stop.
- ``export`` / ``import_chat`` / ``index`` / ``template`` / ``convert``: quick file jobs.

Store edits that take milliseconds (edit, delete, switch branch, feedback, pins, personas,
intents, search) are the engine's :class:`~plugins.chat.engine.store.Store` methods, called by
the panel directly, not jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from studio.errors import UserError
from studio.params import Choices, Help, Label, Range, Special, Unit, Widget

#: what a chat model field lists in the model library
MODEL_KINDS = ("causal-lm", "lm-adapter", "gguf")
TRAINABLE_KINDS = ("causal-lm", "lm-adapter")
SEED_MAX = 2**31 - 1
BUILTIN_TEMPLATES = ("chatml", "llama3", "llama2", "mistral", "gemma", "zephyr", "phi3", "alpaca")
LANGUAGES = ("english", "all", "bengali", "chinese", "dutch", "french", "german", "hebrew",
             "hindi", "hinglish", "indonesian", "italian", "japanese", "korean", "marathi",
             "oriya", "persian", "portuguese", "russian", "spanish", "swedish", "tamil",
             "telugu", "thai", "traditionalchinese", "turkish", "ukrainian", "urdu", "yoruba")

Backend = Literal["auto", "transformers", "llama.cpp"]
Policy = Literal["chat", "stop", "drop_middle", "rolling", "summarise"]
Mode = Literal["send", "answer", "regenerate", "continue"]

# -- fields several jobs share ----------------------------------------------------------------
Model = Annotated[Path, Label("Model"), Widget("model", kinds=MODEL_KINDS),
                  Help("a model folder (Hugging Face, safetensors), a writer or chat run, a "
                       "LoRA adapter folder, or a .gguf file")]
ChatId = Annotated[int | None, Label("Chat"), Range(1), Special("a new chat"),
                   Widget("hidden"), Help("the chat's number (default: a new chat)")]
Persona = Annotated[str, Label("Persona"), Special("the default assistant"),
                    Help("a saved persona's name, or a persona JSON file (imported)")]
Template = Annotated[str, Label("Chat template"), Special("the model's own"),
                     Widget(suggestions=("", *BUILTIN_TEMPLATES)),
                     Help("how prompts are formatted: the model's own (empty), a built-in "
                          "format (" + ", ".join(BUILTIN_TEMPLATES) + "), one of the model's "
                          "named templates, or a .jinja file; remembered by the chat")]
BackendField = Annotated[Backend, Label("Run with"),
                         Choices({"auto": "the fastest here", "transformers": "transformers",
                                  "llama.cpp": "llama.cpp"}),
                         Help("auto: llama.cpp when installed (a Hugging Face model gets a "
                              "fast copy, made once), else transformers")]
Context = Annotated[int, Label("Context"), Range(0, 1_048_576), Special("the model's"),
                    Unit(" tokens"),
                    Help("llama.cpp: the context to allocate (0: the model's, at most 8,192)")]
Seed = Annotated[int | None, Label("Seed"), Range(0, SEED_MAX), Widget("seed"),
                 Special("a fresh seed"),
                 Help("the same seed, chat and settings give the same reply (default: the "
                      "persona's, or a fresh seed, recorded with the reply)")]
MaxNewTokens = Annotated[int | None, Label("Reply length"), Range(1, 32_768),
                         Special("the persona's"), Unit(" tokens"),
                         Help("tokens the reply may take at most")]
Temperature = Annotated[float | None, Label("Temperature"), Range(0.0, 5.0, 0.05),
                        Special("the persona's"),
                        Help("0 is greedy; higher is more adventurous")]
TopK = Annotated[int | None, Label("Top-k"), Range(0, 100_000), Special("the persona's"),
                 Help("sample among the k likeliest tokens (0: no limit)")]
TopP = Annotated[float | None, Label("Top-p"), Range(0.01, 1.0, 0.05), Special("the persona's"),
                 Help("nucleus sampling (1: off)")]
MinP = Annotated[float | None, Label("Min-p"), Range(0.0, 0.95, 0.01), Special("the persona's"),
                 Help("keep only tokens at least this fraction as likely as the likeliest "
                      "(0: off)")]
RepetitionPenalty = Annotated[float | None, Label("Repetition penalty"), Range(0.5, 3.0, 0.05),
                              Special("the persona's"),
                              Help("above 1 discourages repeating tokens (1: off)")]
PolicyField = Annotated[Policy, Label("When the chat outgrows the context"),
                        Choices({"chat": "the chat's choice", "stop": "Stop and tell me",
                                 "drop_middle": "Leave out the middle",
                                 "rolling": "Keep the newest turns",
                                 "summarise": "Summarise older turns"}),
                        Help("the context policy (chat: the one this chat uses, 'leave out the "
                             "middle' for a new chat); never a silent cut")]


class _Sampling:
    """The sampler overrides the reply-like jobs share."""

    seed: int | None
    max_new_tokens: int | None
    temperature: float | None
    top_k: int | None
    top_p: float | None
    min_p: float | None
    repetition_penalty: float | None
    persona: str
    template: str
    policy: str
    reserve: int
    passages: int
    memory: bool
    intents: bool

    def options(self) -> Any:
        """The engine's :class:`~plugins.chat.engine.answer.ReplyOptions` for these fields."""
        from plugins.chat.engine.answer import ReplyOptions

        return ReplyOptions(
            persona=self.persona, template=self.template,
            policy=None if self.policy == "chat" else self.policy, seed=self.seed,
            max_new_tokens=self.max_new_tokens, temperature=self.temperature,
            top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
            repetition_penalty=self.repetition_penalty, reserve=self.reserve,
            passages=self.passages, memory=self.memory, intents=self.intents)


# ----------------------------------------------------------------------------------------------
# Chatting
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class ReplyParams(_Sampling):
    """Answer in a chat: the reply streams, is stored with its figures, and is printed."""

    model: Model
    message: Annotated[str, Label("Message"), Widget("text"),
                       Help("what you say (mode send)")] = ""
    chat: ChatId = None
    persona: Persona = ""
    seed: Seed = None
    mode: Annotated[Mode, Label("Mode"), Widget("hidden"),
                    Choices({"send": "send a message", "answer": "answer the last message",
                             "regenerate": "regenerate a reply",
                             "continue": "continue a reply"}),
                    Help("send: add the message and answer it; answer: answer the chat's last "
                         "message (after an edit); regenerate: answer again, earlier replies "
                         "kept; continue: go on writing an unfinished reply")] = "send"
    parent: Annotated[int | None, Label("Under message"), Range(1), Widget("hidden"),
                      Special("the chat's last"),
                      Help("send: branch from this message; regenerate/continue: this reply; "
                           "answer: this user message (default: the chat's last)")] = None
    policy: PolicyField = "chat"
    template: Template = ""
    backend: BackendField = "auto"
    context: Context = 0
    max_new_tokens: MaxNewTokens = None
    temperature: Temperature = None
    top_k: TopK = None
    top_p: TopP = None
    min_p: MinP = None
    repetition_penalty: RepetitionPenalty = None
    reserve: Annotated[int, Label("Room for the reply"), Range(0, 1_048_576),
                       Special("automatic"), Unit(" tokens"),
                       Help("prompt room kept for the reply (0: the reply length, at most a "
                            "quarter of the context)")] = 0
    documents: Annotated[Path | None, Label("Documents"), Widget("folder"),
                         Help("attach this folder of .txt/.md/.pdf files to the chat (indexed "
                              "now); its passages are cited in replies")] = None
    passages: Annotated[int, Label("Passages"), Range(0, 20),
                        Help("document passages given to the model (0: none)")] = 4
    memory: Annotated[bool, Label("Use memory"),
                      Help("give the model the memory notes you approved")] = True
    intents: Annotated[bool, Label("Use intents"),
                       Help("answer messages that match an intent with its canned answer, "
                            "before the model")] = True

    def rules(self) -> None:
        if self.mode == "send" and not self.message.strip():
            raise UserError("--message is required: type what you want to say")
        if self.mode != "send" and self.chat is None:
            raise UserError(f"--chat is required to {self.mode} a reply")


@dataclass(kw_only=True)
class CompareParams(_Sampling):
    """The same message answered by two models, side by side (A/B)."""

    model: Model
    model_b: Annotated[Path, Label("Model B"), Widget("model", kinds=MODEL_KINDS),
                       Help("the second model (e.g. the fine-tuned adapter)")]
    message: Annotated[str, Label("Message"), Widget("text"), Help("what you say")]
    chat: ChatId = None
    persona: Persona = ""
    seed: Seed = None
    policy: PolicyField = "chat"
    template: Template = ""
    backend: BackendField = "auto"
    context: Context = 0
    max_new_tokens: MaxNewTokens = None
    temperature: Temperature = None
    top_k: TopK = None
    top_p: TopP = None
    min_p: MinP = None
    repetition_penalty: RepetitionPenalty = None
    reserve: Annotated[int, Label("Room for the reply"), Range(0, 1_048_576),
                       Special("automatic"), Unit(" tokens"),
                       Help("prompt room kept for the reply (0: automatic)")] = 0
    passages: Annotated[int, Label("Passages"), Range(0, 20),
                        Help("document passages given to the models")] = 4
    memory: Annotated[bool, Label("Use memory"), Help("give the models the memory notes")] = True
    intents: Annotated[bool, Widget("hidden"), Help("never: both models answer")] = False


@dataclass(kw_only=True)
class ServeParams:
    """An OpenAI-compatible API on 127.0.0.1 for other apps (a bearer token is required);
    runs until Stop."""

    model: Model
    port: Annotated[int, Label("Port"), Range(0, 65535), Special("any free port"),
                    Help("the port on 127.0.0.1 (0: any free one)")] = 8765
    persona: Persona = ""
    template: Template = ""
    backend: BackendField = "auto"
    context: Context = 0
    max_tokens: Annotated[int, Label("Default reply length"), Range(1, 32_768),
                          Unit(" tokens"),
                          Help("a request that sets no max_tokens gets at most this many")] = 512


# ----------------------------------------------------------------------------------------------
# Chats, documents, templates and models as files
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class ExportParams:
    """Write a chat as Markdown (to read) or JSON (to keep and import again)."""

    chat: Annotated[int, Label("Chat"), Range(1), Widget("hidden"),
                    Help("the chat's number")]
    out: Annotated[Path, Label("Save as"),
                   Widget("save", filter="Markdown (*.md);;JSON (*.json)"),
                   Help("a .md or .json file")]
    all_branches: Annotated[bool, Label("Every branch"),
                            Help("include every regenerated reply and edit, not only the "
                                 "branch shown")] = False

    def rules(self) -> None:
        if self.out.suffix.lower() not in (".md", ".markdown", ".json"):
            raise UserError(f"--out must end in .md or .json, not {self.out.name}")


@dataclass(kw_only=True)
class ImportParams:
    """Import a chat from JSON: the studio's own export, or OpenAI-style messages."""

    file: Annotated[Path, Label("Chat file"), Widget("file", filter="JSON (*.json)"),
                    Help("a chat exported as JSON, or a list of {role, content} messages")]
    title: Annotated[str, Label("Title"), Special("the file's"), Help("the new chat's title")] = ""


@dataclass(kw_only=True)
class IndexParams:
    """Index a folder of documents (.txt, .md, .pdf) for retrieval; attach it to a chat."""

    folder: Annotated[Path, Label("Documents"), Widget("folder"),
                      Help("a folder of .txt/.md/.pdf files (only ever read)")]
    chat: Annotated[int | None, Label("Chat"), Range(1), Widget("hidden"),
                    Special("no chat"), Help("attach the folder to this chat")] = None


@dataclass(kw_only=True)
class TemplateParams:
    """Show how a chat template formats a conversation (the model's own or another)."""

    model: Annotated[Path | None, Label("Model"), Widget("model", kinds=MODEL_KINDS),
                     Help("the model whose template (and token count) to show")] = None
    template: Template = ""
    chat: Annotated[int | None, Label("Chat"), Range(1), Widget("hidden"),
                    Special("a sample conversation"),
                    Help("show the prompt this chat's next reply would get")] = None

    def rules(self) -> None:
        if self.model is None and not self.template:
            raise UserError("give --model (its own template) or --template (a built-in name "
                            "or a .jinja file)")


@dataclass(kw_only=True)
class ConvertParams:
    """Make a GGUF copy of a Hugging Face model for llama.cpp (and apps like LM Studio)."""

    model: Annotated[Path, Label("Model"), Widget("model", kinds=TRAINABLE_KINDS),
                     Help("a Llama-family model folder (Llama, SmolLM, Mistral; a LoRA adapter "
                          "is merged)")]
    out: Annotated[Path | None, Label("Save as"), Widget("save", filter="GGUF (*.gguf)"),
                   Help("the .gguf file (default: the workspace's models folder)")] = None
    type: Annotated[Literal["f16", "q8_0", "q4_0", "f32"], Label("Precision"),
                    Choices(f16="F16 (recommended)", q8_0="Q8_0 (8-bit)",
                            q4_0="Q4_0 (4-bit, fastest)", f32="F32 (exact)"),
                    Help("weight format: F16 keeps the model as it is for chat purposes; Q8_0 "
                         "and Q4_0 are smaller and faster")] = "f16"

    def rules(self) -> None:
        if self.out is not None and self.out.suffix.lower() != ".gguf":
            raise UserError(f"--out must end in .gguf, not {self.out.name}")


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class FinetuneParams:
    """Improve a model from your feedback: a LoRA adapter trained on liked and corrected
    replies (supervised), preferring corrections over the replies they replaced (DPO)."""

    model: Annotated[Path, Label("Model"), Widget("model", kinds=TRAINABLE_KINDS),
                     Help("the model to improve: a Hugging Face folder or an adapter trained "
                          "before (it continues)")]
    method: Annotated[Literal["sft_dpo", "sft"], Label("Learn"),
                      Choices(sft_dpo="liked and corrected replies, and prefer corrections",
                              sft="liked and corrected replies only"),
                      Help("sft_dpo: supervised learning plus preference pairs (DPO) where a "
                           "reply was corrected; sft: supervised only")] = "sft_dpo"
    chats: Annotated[list[int], Label("Chats"), Widget("hidden"),
                     Help("learn from the feedback of these chats only (default: all)")
                     ] = field(default_factory=list)
    template: Template = ""
    steps: Annotated[int, Label("Steps"), Range(0, 1_000_000), Special("automatic"),
                     Help("training steps (0: about three passes over the examples)")] = 0
    lr: Annotated[float, Label("Learning rate"), Range(0.000001, 0.1, 0.00001),
                  Help("peak learning rate of the adapter")] = 2e-4
    lora_r: Annotated[int, Label("LoRA rank"), Range(1, 256),
                      Help("adapter size: larger learns more")] = 8
    beta: Annotated[float, Label("Preference strength (β)"), Range(0.01, 5.0, 0.01),
                    Help("DPO's β: how far from the original model the preferences may pull "
                         "it")] = 0.1
    dpo_weight: Annotated[float, Label("Preference weight"), Range(0.0, 10.0, 0.1),
                          Help("weight of the preference loss beside the supervised one")] = 1.0
    batch_size: Annotated[int, Label("Batch size"), Range(1, 256),
                          Help("examples per step")] = 4
    block_size: Annotated[int, Label("Context"), Range(16, 131_072), Unit(" tokens"),
                          Help("longest example (longer ones keep their end)")] = 512
    val_fraction: Annotated[float, Label("Held-out share"), Range(0.0, 0.5, 0.05),
                            Help("share of examples held out to validate (with ten or more)")
                            ] = 0.0
    seed: Annotated[int, Label("Seed"), Range(0, SEED_MAX), Widget("seed"),
                    Help("random seed (adapter initialisation, batches)")] = 0
    resume: Annotated[bool, Label("Resume"),
                      Help("continue the run in the output folder from its checkpoint")] = False


@dataclass(kw_only=True)
class TrainParams:
    """Train a small chatbot from scratch on dialogs: the built-in ones (offline, many
    languages) or your own."""

    data: Annotated[str, Label("Dialogs"), Widget("folder"), Special("builtin"),
                    Help("builtin (the chatterbot-corpus dialogs), or a folder or file of "
                         "your dialogs: JSONL in the messages format, plain text with one turn "
                         "per line and a blank line between dialogs, or chatterbot YAML")
                    ] = "builtin"
    language: Annotated[str, Label("Language"), Widget(suggestions=LANGUAGES),
                        Help("the built-in dialogs' language, or all")] = "english"
    preset: Annotated[Literal["tiny", "small"], Label("Size"),
                      Choices(tiny="tiny: about 3M parameters, a few CPU minutes",
                              small="small: about 20M parameters, better with a GPU"),
                      Help("the new model's size")] = "tiny"
    steps: Annotated[int, Label("Steps"), Range(1, 10_000_000),
                     Help("training steps (a resumed run continues up to this many)")] = 1000
    minutes: Annotated[float, Label("Time limit"), Range(0.0, 100_000.0, 0.5),
                       Special("no limit"), Unit(" min"),
                       Help("stop after this many minutes (0: no limit)")] = 0.0
    batch_size: Annotated[int, Label("Batch size"), Range(0, 4096), Special("the preset's"),
                          Help("dialogs per step (0: the preset's)")] = 0
    block_size: Annotated[int, Label("Context"), Range(0, 131_072), Special("the preset's"),
                          Unit(" tokens"),
                          Help("the model's context length (0: the preset's)")] = 0
    lr: Annotated[float, Label("Learning rate"), Range(0.0, 1.0, 0.00001), Special("automatic"),
                  Help("peak learning rate (0: the preset's)")] = 0.0
    vocab_size: Annotated[int, Label("Vocabulary"), Range(0, 262_144), Special("the preset's"),
                          Help("BPE vocabulary size (0: the preset's)")] = 0
    val_fraction: Annotated[float, Label("Held-out share"), Range(0.0, 0.5, 0.05),
                            Help("share of dialogs held out to validate")] = 0.1
    eval_every: Annotated[int, Label("Validate every"), Range(0, 10_000_000),
                          Special("automatic"), Unit(" steps"),
                          Help("steps between validations and checkpoints (0: ten per run)")] = 0
    patience: Annotated[int, Label("Early stop patience"), Range(0, 10_000), Special("never"),
                        Help("stop when validation has not improved this many times")] = 0
    seed: Annotated[int, Label("Seed"), Range(0, SEED_MAX), Widget("seed"),
                    Help("random seed (weights, split, batches)")] = 0
    resume: Annotated[bool, Label("Resume"),
                      Help("continue the run in the output folder from its checkpoint")] = False

    def rules(self) -> None:
        if self.language not in LANGUAGES:
            raise UserError(f"--language must be one of {', '.join(LANGUAGES)}")
