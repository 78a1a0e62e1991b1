"""Chat templates: a message list becomes the exact prompt string the model was trained on.

Rendering follows Hugging Face's ``apply_chat_template(..., tokenize=False)`` (transformers 5,
``utils/chat_template_utils.py``) so a model's own template gives here the same text it gives
there: Jinja2's ``ImmutableSandboxedEnvironment`` with ``trim_blocks`` and ``lstrip_blocks``, the
``loopcontrols`` extension and a ``{% generation %}`` block tag; the globals ``raise_exception``,
``strftime_now``, ``dict`` and a ``namespace`` that refuses underscore names; a ``tojson`` filter
that does not escape HTML; the special tokens (``bos_token``, ``eos_token``...) as variables,
overridden by explicit keyword arguments; ``None`` values dropped from messages; and
``continue_final_message`` to go on writing the last message.

Where the template comes from (:func:`detect`): a model folder's ``chat_template.jinja`` and
``additional_chat_templates/*.jinja`` (files win, as in transformers), then
``tokenizer_config.json``'s ``chat_template`` (a string, or a list of named templates), then a
processor's ``chat_template.json``; or a GGUF file's ``tokenizer.chat_template`` metadata.
``None`` means the model has none: the UI must ask the user (a built-in one, or their own Jinja),
never pick one silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from studio.errors import UserError

SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                      "cls_token", "mask_token")
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


# -- rendering ---------------------------------------------------------------------------------

def render(source: str, messages: Sequence[Mapping[str, Any]], *,
           add_generation_prompt: bool = False, continue_final_message: bool = False,
           special_tokens: Mapping[str, str] | None = None, tools: list[dict] | None = None,
           documents: list[dict] | None = None, **kwargs: Any) -> str:
    """The prompt for ``messages`` under the Jinja template ``source``, as Hugging Face renders
    it. Raises UserError (with the Jinja message and the template line) when it fails."""
    import jinja2

    if not messages:
        raise UserError("There is nothing to render: the chat has no message.")
    if continue_final_message and add_generation_prompt:
        raise UserError("Continuing a reply and starting a new one are exclusive.")
    chat = [_plain({k: v for k, v in dict(m).items() if v is not None}) for m in messages]
    chat = _alias_reasoning(chat)
    final = ""
    if continue_final_message:
        final = chat[-1].get("content")
        if not isinstance(final, str):
            raise UserError("Only a text message can be continued.")
        if "content" not in source:
            raise UserError("This chat template cannot continue a reply (it never reads a "
                            "message's content).")
        chat[-1]["content"] = final + _CONTINUE_TAG
    variables = {**(special_tokens or {}), **_plain(kwargs)}
    template = _compile(source)
    try:
        out: str = template.render(messages=chat, tools=_plain(tools), documents=_plain(documents),
                                   add_generation_prompt=add_generation_prompt, **variables)
    except jinja2.TemplateError as e:
        raise UserError(f"The chat template could not render this chat{_line_of(e)}: "
                        f"{e.message or type(e).__name__}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError,
            ZeroDivisionError) as e:
        raise UserError(f"The chat template could not render this chat{_line_of(e)}: "
                        f"{type(e).__name__}: {e}") from None
    if continue_final_message:
        if final.strip() not in out or _CONTINUE_TAG.strip() not in out:
            raise UserError("This chat template drops part of the reply being continued, so it "
                            "cannot continue it; start a new reply instead.")
        at = out.rindex(_CONTINUE_TAG.strip())
        out = out[:at] if out[at:at + len(_CONTINUE_TAG)] == _CONTINUE_TAG else out[:at].rstrip()
    return out


def check(source: str) -> None:
    """Raise UserError if ``source`` is not a valid template (syntax only)."""
    _compile(source)


@lru_cache(maxsize=32)
def _compile(source: str) -> Any:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.utils
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` marks assistant text for training masks;
        rendering just writes its body."""

        tags: ClassVar[set[str]] = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body
                                          ).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    class TemplateDict:
        def __call__(self, *args: Any, **kwargs: Any) -> dict:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args: Any, **kwargs: Any) -> None:
            self, rest = args[0], args[1:]
            attrs = dict(*rest, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"a chat template may not store {name!r} on a namespace")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise UserError(f"The chat template has an error on line {e.lineno}: {e.message}") \
            from None


def _line_of(exc: BaseException) -> str:
    """' (line N)' for the innermost template frame of a rendering error, if any."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line is not None else ""


def _plain(value: Any) -> Any:
    """Plain JSON-like data only: the template is untrusted code, so it never sees objects
    with methods of their own."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return _plain(value.item())
    return f"<{type(value).__name__}>"


def _alias_reasoning(chat: list[dict]) -> list[dict]:
    out = []
    for m in chat:
        reasoning = next((m[k] for k in ("reasoning_content", "thinking", "reasoning")
                          if m.get(k) is not None), None)
        if reasoning is not None:
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        out.append(m)
    return out


def fold_system(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages for a template without a system role: the system text opens the first user
    message (separated by a blank line)."""
    msgs = [dict(m) for m in messages]
    if not msgs or msgs[0].get("role") != "system":
        return msgs
    system = str(msgs.pop(0).get("content") or "")
    for m in msgs:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m.get('content', '')}" if system else m["content"]
            return msgs
    return [{"role": "user", "content": system}, *msgs] if system else msgs


# -- templates as objects ----------------------------------------------------------------------

@dataclass(frozen=True)
class ChatTemplate:
    """A template ready to render, with the special tokens of its model."""

    source: str
    special_tokens: Mapping[str, str] = field(default_factory=dict)
    label: str = "custom"
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(self.source)

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
               continue_final_message: bool = False, **kwargs: Any) -> str:
        """The prompt; a system message is folded into the first user turn when the template
        has no system role (see :meth:`supports_system_role`)."""
        msgs = list(messages)
        if msgs and msgs[0].get("role") == "system" and not self.supports_system_role():
            msgs = fold_system(msgs)
        return render(self.source, msgs, add_generation_prompt=add_generation_prompt,
                      continue_final_message=continue_final_message,
                      special_tokens=self.special_tokens, **kwargs)

    def supports_system_role(self) -> bool:
        """Whether the template renders a system message (some raise on it, some drop it)."""
        return _supports_system(self.source, tuple(sorted(self.special_tokens.items())))

    def preview(self) -> str:
        """A short sample conversation rendered, for the template preview."""
        return self.render([{"role": "system", "content": "You are a helpful assistant."},
                            {"role": "user", "content": "Hello!"},
                            {"role": "assistant", "content": "Hi! How can I help?"},
                            {"role": "user", "content": "Tell me a joke."}])


@lru_cache(maxsize=64)
def _supports_system(source: str, special: tuple[tuple[str, str], ...]) -> bool:
    probe = "SYSTEM-PROBE-7d1f"
    try:
        out = render(source, [{"role": "system", "content": probe},
                              {"role": "user", "content": "hi"}],
                     add_generation_prompt=True, special_tokens=dict(special))
    except UserError:
        return False
    return probe in out


@dataclass(frozen=True)
class TemplateInfo:
    """What a model says about its chat template."""

    templates: Mapping[str, str]          # name -> Jinja source ("default" for the main one)
    origin: str                           # "chat_template.jinja", "tokenizer_config.json", ...
    special_tokens: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted(self.templates)

    def pick(self, name: str | None = None, *, tools: bool = False) -> ChatTemplate:
        """The template to use, chosen as transformers does: the named one, else ``tool_use``
        when tools are given, else ``default``; several without a default need a name."""
        if name is not None:
            if name not in self.templates:
                raise UserError(f"The model has no chat template named '{name}' "
                                f"(it has: {', '.join(self.names)}).")
            chosen = name
        elif tools and "tool_use" in self.templates:
            chosen = "tool_use"
        elif "default" in self.templates:
            chosen = "default"
        elif len(self.templates) == 1:
            chosen = next(iter(self.templates))
        else:
            raise UserError("The model has several chat templates and none is the default; "
                            f"choose one of: {', '.join(self.names)}.")
        label = f"the model's ({self.origin})" if chosen == "default" else \
            f"the model's '{chosen}' ({self.origin})"
        return ChatTemplate(self.templates[chosen], dict(self.special_tokens), label)


def detect(model: str | Path) -> TemplateInfo | None:
    """The chat template a model folder or GGUF file carries, or None if it has none."""
    path = Path(model)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return detect_gguf(path)
    if not path.is_dir():
        raise UserError(f"No model folder or GGUF file named {path.name}.")
    config = _read_json(path / "tokenizer_config.json")
    special = _special_tokens(config)
    if not special:
        special = _special_tokens(_read_json(path / "special_tokens_map.json"))
    templates: dict[str, str] = {}
    origin = ""
    jinja_file = path / "chat_template.jinja"
    extra_dir = path / "additional_chat_templates"
    if jinja_file.is_file():
        templates["default"] = _read_text(jinja_file)
        origin = "chat_template.jinja"
    if extra_dir.is_dir():
        for f in sorted(extra_dir.glob("*.jinja")):
            templates[f.stem] = _read_text(f)
        origin = origin or "additional_chat_templates"
    if not templates:
        raw = config.get("chat_template")
        if raw is None:
            raw = _read_json(path / "chat_template.json").get("chat_template")
            origin = "chat_template.json"
        else:
            origin = "tokenizer_config.json"
        if isinstance(raw, str) and raw.strip():
            templates["default"] = raw
        elif isinstance(raw, list):
            for item in raw:
                if not (isinstance(item, Mapping) and isinstance(item.get("name"), str)
                        and isinstance(item.get("template"), str)):
                    raise UserError(f"{origin} of {path.name} lists a chat template without a "
                                    "name or template text.")
                templates[item["name"]] = item["template"]
        elif raw is not None and raw != "":
            raise UserError(f"{origin} of {path.name} has a chat template that is neither text "
                            "nor a list of named templates.")
    return TemplateInfo(templates, origin, special) if templates else None


def detect_gguf(path: str | Path) -> TemplateInfo | None:
    """The chat template(s) in a GGUF file's metadata, with its BOS/EOS token texts."""
    path = Path(path)
    try:
        from gguf import GGUFReader

        fields = GGUFReader(str(path), "r").fields
    except ImportError:
        raise UserError("Reading GGUF files needs the 'gguf' package "
                        "(pip install gguf).") from None
    except Exception as e:  # any parse failure of a user file is bad input
        raise UserError(f"{path.name} is not a readable GGUF file ({e}).") from None

    def value(key: str) -> Any:
        f = fields.get(key)
        return f.contents() if f is not None else None

    templates: dict[str, str] = {}
    main = value("tokenizer.chat_template")
    if isinstance(main, str) and main.strip():
        templates["default"] = main
    for name in value("tokenizer.chat_templates") or []:
        text = value(f"tokenizer.chat_template.{name}")
        if isinstance(text, str) and text.strip():
            templates[str(name)] = text
    special: dict[str, str] = {}
    tokens = value("tokenizer.ggml.tokens")
    for key, meta in (("bos_token", "tokenizer.ggml.bos_token_id"),
                      ("eos_token", "tokenizer.ggml.eos_token_id"),
                      ("unk_token", "tokenizer.ggml.unknown_token_id"),
                      ("pad_token", "tokenizer.ggml.padding_token_id")):
        idx = value(meta)
        if isinstance(idx, int) and isinstance(tokens, list) and 0 <= idx < len(tokens):
            special[key] = str(tokens[idx])
    return TemplateInfo(templates, "GGUF metadata", special) if templates else None


def _special_tokens(config: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key in SPECIAL_TOKEN_KEYS:
        v = config.get(key)
        if isinstance(v, Mapping):
            v = v.get("content")
        if isinstance(v, str):
            out[key] = v
    return out


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path.name} of the model {path.parent.name} is not valid JSON "
                        f"({e}).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path.name} of the model {path.parent.name} is not a JSON object.")
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path.name} of the model {path.parent.name} is not UTF-8 text.") \
            from None


# -- built-in templates ------------------------------------------------------------------------

@dataclass(frozen=True)
class Builtin:
    name: str
    label: str
    source: str
    special_tokens: Mapping[str, str]
    stop: tuple[str, ...]

    def template(self, special_tokens: Mapping[str, str] | None = None) -> ChatTemplate:
        """This format as a template; a model's own token texts override the usual ones."""
        tokens = {**self.special_tokens, **(special_tokens or {})}
        return ChatTemplate(self.source, tokens, self.label, self.stop)


_ALTERNATE = ("{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
              "{{ raise_exception('After the optional system message, conversation roles must "
              "alternate user/assistant/user/assistant/...') }}{%- endif %}")
_SPLIT_SYSTEM = ("{%- if messages and messages[0]['role'] == 'system' %}"
                 "{%- set system_message = messages[0]['content'] %}"
                 "{%- set loop_messages = messages[1:] %}"
                 "{%- else %}{%- set system_message = none %}"
                 "{%- set loop_messages = messages %}{%- endif %}")

BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("chatml", "ChatML (Qwen, Hermes, SmolLM...)",
            "{%- for message in messages %}"
            "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
            "{%- endfor %}"
            "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}",
            {"eos_token": "<|im_end|>"}, ("<|im_end|>",)),
    Builtin("llama3", "Llama 3",
            "{{- bos_token }}"
            "{%- for message in messages %}"
            "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
            " + message['content'] | trim + '<|eot_id|>' }}"
            "{%- endfor %}"
            "{%- if add_generation_prompt %}"
            "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}",
            {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, ("<|eot_id|>",)),
    Builtin("llama2", "Llama 2",
            _SPLIT_SYSTEM +
            "{%- for message in loop_messages %}" + _ALTERNATE +
            "{%- if loop.first and system_message is not none %}"
            "{%- set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n'"
            " + message['content'] %}"
            "{%- else %}{%- set content = message['content'] %}{%- endif %}"
            "{%- if message['role'] == 'user' %}"
            "{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}"
            "{%- else %}{{ ' ' + content | trim + ' ' + eos_token }}{%- endif %}"
            "{%- endfor %}",
            {"bos_token": "<s>", "eos_token": "</s>"}, ("</s>", "[INST]")),
    Builtin("mistral", "Mistral Instruct",
            _SPLIT_SYSTEM + "{{- bos_token }}"
            "{%- for message in loop_messages %}" + _ALTERNATE +
            "{%- if message['role'] == 'user' %}"
            "{%- if loop.first and system_message is not none %}"
            "{{ ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}"
            "{%- else %}{{ ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
            "{%- else %}{{ ' ' + message['content'] + eos_token }}{%- endif %}"
            "{%- endfor %}",
            {"bos_token": "<s>", "eos_token": "</s>"}, ("</s>", "[INST]")),
    Builtin("gemma", "Gemma",
            "{{- bos_token }}"
            "{%- if messages and messages[0]['role'] == 'system' %}"
            "{%- set first_user_prefix = messages[0]['content'] + '\n\n' %}"
            "{%- set loop_messages = messages[1:] %}"
            "{%- else %}{%- set first_user_prefix = '' %}"
            "{%- set loop_messages = messages %}{%- endif %}"
            "{%- for message in loop_messages %}" + _ALTERNATE +
            "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
            "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '')"
            " + message['content'] | trim + '<end_of_turn>\n' }}"
            "{%- endfor %}"
            "{%- if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{%- endif %}",
            {"bos_token": "<bos>", "eos_token": "<eos>"}, ("<end_of_turn>",)),
    Builtin("zephyr", "Zephyr",
            "{%- for message in messages %}"
            "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
            "{%- endfor %}"
            "{%- if add_generation_prompt %}{{ '<|assistant|>\n' }}{%- endif %}",
            {"eos_token": "</s>"}, ("</s>", "<|user|>")),
    Builtin("phi3", "Phi-3",
            "{%- for message in messages %}"
            "{%- if message['role'] == 'system' and message['content'] %}"
            "{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
            "{%- elif message['role'] in ['user', 'assistant'] %}"
            "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
            "{%- endif %}{%- endfor %}"
            "{%- if add_generation_prompt %}{{ '<|assistant|>\n' }}"
            "{%- else %}{{ eos_token }}{%- endif %}",
            {"eos_token": "<|endoftext|>"}, ("<|end|>", "<|endoftext|>")),
    Builtin("alpaca", "Alpaca",
            "{%- if messages and messages[0]['role'] == 'system' %}"
            "{{ messages[0]['content'] + '\n\n' }}"
            "{%- set loop_messages = messages[1:] %}"
            "{%- else %}{%- set loop_messages = messages %}{%- endif %}"
            "{%- for message in loop_messages %}"
            "{%- if message['role'] == 'user' %}"
            "{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
            "{%- elif message['role'] == 'assistant' %}"
            "{{ '### Response:\n' + message['content'] + '\n\n' }}"
            "{%- endif %}{%- endfor %}"
            "{%- if add_generation_prompt %}{{ '### Response:\n' }}{%- endif %}",
            {}, ("### Instruction:",)),
)}


def builtin(name: str, special_tokens: Mapping[str, str] | None = None) -> ChatTemplate:
    """A named built-in template (``chatml``, ``llama3``, ``llama2``, ``mistral``, ``gemma``,
    ``zephyr``, ``phi3``, ``alpaca``)."""
    b = BUILTINS.get(name.lower())
    if b is None:
        raise UserError(f"There is no built-in chat template named '{name}' "
                        f"(choose one of: {', '.join(BUILTINS)}).")
    return b.template(special_tokens)
