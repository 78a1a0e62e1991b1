"""Answering in a chat: the whole path from a message to a stored, streamed reply.

In order, for each reply:

1. **Where**: a new chat (with the persona's greeting) or an existing one; the message is added
   under the active leaf (or a chosen message: a branch), or an existing turn is answered again
   (regenerate: a sibling reply, the old ones kept), or an unfinished reply is continued.
2. **Intents** route first: a message that matches a user-defined intent gets its canned answer
   and no model is loaded (a help desk on a small model).
3. **The model**: a backend (:mod:`.backends`) and its chat template: the one the user chose
   for this chat (a built-in name, their own Jinja file, or one of the model's named
   templates), else the model's own; a model without one is a clear choice to make, never a
   silent default.
4. **Context**: the persona's system prompt, pinned notes, approved memory notes and passages
   retrieved from the chat's document folders, fitted into the model's context by the chat's
   policy (:mod:`.context`); what was left out or summarised is reported, never silent.
5. **Streaming**: chunks go to ``emit("text", chunk)`` and into the store as they come
   (:class:`~.replies.ReplyWriter`: a crash loses at most the last half second of this reply);
   Stop keeps what was written, unfinished, to be continued.
6. **Stats**: time to first token, tokens per second, context used and the backend are stored
   with the reply and returned (:class:`~.outcomes.ReplyOutcome`).

Everything the UI may want to show as it happens goes through ``emit(kind, payload)``:
``"reply"`` (the message ids, before the first chunk), ``"context"`` (the plan),
``"text"`` (a chunk), ``"stats"`` (the final figures), ``"intent"``, ``"citations"``.
No Qt, no torch here: the backend does the model work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from plugins.common.lm.sampling import SamplingSettings
from studio.errors import Cancelled, UserError

from . import context as context_mod
from . import templates as templates_mod
from .backends.base import ChatBackend
from .intents import IntentRouter
from .outcomes import Citation, ContextReport, ReplyOutcome
from .personas import DEFAULT_PERSONA, Persona, import_personas
from .records import Message, ReplyStats
from .store import Store

Mode = Literal["send", "answer", "regenerate", "continue"]
MODES: dict[str, str] = {
    "send": "add the message and answer it",
    "answer": "answer the chat's last message (after editing it)",
    "regenerate": "answer the same message again (the earlier replies are kept)",
    "continue": "go on writing an unfinished reply",
}
Emit = Callable[..., None]
DEFAULT_POLICY = "drop_middle"
SUMMARY_INSTRUCTION = ("Summarise the conversation below in a few short sentences. Keep names, "
                       "facts, decisions and open questions; write nothing else.")


@dataclass
class ReplyOptions:
    """How to answer (every ``None`` means "the chat's or the persona's")."""

    persona: str = ""                 # a saved persona's name or a persona JSON file
    template: str = ""                # "", a built-in name, a .jinja file, a model template
    policy: str | None = None         # stop, drop_middle, rolling, summarise
    seed: int | None = None
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    reserve: int = 0                  # prompt room kept for the reply (0: automatic)
    passages: int = 4                 # retrieved document passages (0: none)
    memory: bool = True               # approved memory notes in the prompt
    intents: bool = True              # canned answers route first


def no_emit(*_args: Any, **_kw: Any) -> None:
    return None


# ----------------------------------------------------------------------------------------------
# Personas and templates
# ----------------------------------------------------------------------------------------------
def resolve_persona(store: Store, spec: str | None) -> Persona:
    """A persona from a saved name or a JSON file (imported into the store, so the chat can
    name it); empty: the default assistant."""
    if not spec:
        return DEFAULT_PERSONA
    path = Path(spec).expanduser()
    if spec.lower().endswith(".json") or (path.is_file() and path.suffix):
        found = import_personas(path)
        if len(found) != 1:
            raise UserError(f"{path.name} holds {len(found)} personas: import them in the "
                            "panel and choose one by name")
        store.save_persona(found[0])
        return found[0]
    if spec == DEFAULT_PERSONA.name and spec not in {p.name for p in store.personas()}:
        return DEFAULT_PERSONA
    known = [p.name for p in store.personas()]
    if spec not in known:
        raise UserError(f"there is no persona named '{spec}' (saved personas: "
                        f"{', '.join(known) or 'none'}); give a persona JSON file to import one")
    return store.persona(spec)


def resolve_template(spec: str, backend: ChatBackend) -> templates_mod.ChatTemplate:
    """The chat template to format prompts with; a model without one needs a choice."""
    info = backend.template_info()
    special = dict(info.special_tokens) if info is not None else {}
    spec = (spec or "").strip()
    if not spec or spec == "model":
        if info is None:
            raise UserError(
                f"{backend.info.model} has no chat template (it may be a base model, not a "
                "chat model), so the studio cannot know how it expects a conversation. Choose "
                f"one: a built-in format ({', '.join(templates_mod.BUILTINS)}) or your own "
                "Jinja file (--template).")
        return info.pick()
    if spec.lower() in templates_mod.BUILTINS:
        return templates_mod.builtin(spec, special)
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".jinja", ".j2", ".txt") or path.is_file():
        if not path.is_file():
            raise UserError(f"there is no template file {path.name}")
        try:
            source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path.name} is not UTF-8 text") from None
        return templates_mod.ChatTemplate(source, special, f"your template ({path.name})")
    if info is not None and spec in info.templates:
        return info.pick(spec)
    raise UserError(f"unknown chat template '{spec}': choose one of "
                    f"{', '.join(templates_mod.BUILTINS)}, a .jinja file"
                    + (f", or one of the model's: {', '.join(info.names)}" if info else ""))


def sampling(persona: Persona, opts: ReplyOptions, template_stop: Sequence[str] = ()
             ) -> SamplingSettings:
    """The persona's sampler with the options' overrides (and the template's stop strings)."""
    ps = persona.sampler
    s = SamplingSettings(
        max_new_tokens=opts.max_new_tokens or ps.max_new_tokens,
        temperature=ps.temperature if opts.temperature is None else opts.temperature,
        top_k=ps.top_k if opts.top_k is None else opts.top_k,
        top_p=ps.top_p if opts.top_p is None else opts.top_p,
        min_p=ps.min_p if opts.min_p is None else opts.min_p,
        repetition_penalty=(ps.repetition_penalty if opts.repetition_penalty is None
                            else opts.repetition_penalty),
        seed=opts.seed if opts.seed is not None else ps.seed,
        stop=tuple(dict.fromkeys([*ps.stop, *template_stop])))
    s.validate()
    return s


# ----------------------------------------------------------------------------------------------
# Summaries of older turns, by the model itself
# ----------------------------------------------------------------------------------------------
class ModelSummariser:
    """The chat model summarising older turns (the ``summarise`` policy). A span too long for
    one request is folded in parts: the summary so far and the next part, each within the
    model's context."""

    def __init__(self, backend: ChatBackend, template: templates_mod.ChatTemplate,
                 cancel: Callable[[], bool] | None = None) -> None:
        self.backend = backend
        self.template = template
        self.cancel = cancel
        ctx = backend.info.context_length
        self.reply_tokens = max(16, min(200, ctx // 8))
        self.budget = ctx - self.reply_tokens

    def _request(self, previous: str | None, lines: list[str]) -> str:
        text = "\n".join(lines)
        if previous:
            text = f"Summary so far:\n{previous}\n\nThen:\n{text}"
        return self.template.render([{"role": "system", "content": SUMMARY_INSTRUCTION},
                                     {"role": "user", "content": text}])

    def _fits(self, previous: str | None, lines: list[str]) -> bool:
        return self.backend.count_tokens(self._request(previous, lines)) <= self.budget

    def _run(self, previous: str | None, lines: list[str]) -> str:
        s = SamplingSettings(max_new_tokens=self.reply_tokens, temperature=0.0, seed=0,
                             stop=self.template.stop)
        return "".join(self.backend.stream(self._request(previous, lines), s,
                                           self.cancel)).strip()

    def summarise(self, messages: Sequence[Mapping[str, str]]) -> str:
        previous: str | None = None
        lines: list[str] = []
        for m in messages:
            if m["role"] == "system":
                previous = m["content"].split("\n", 1)[-1]
                continue
            who = "User" if m["role"] == "user" else "Assistant"
            line = f"{who}: {m['content']}"
            if not self._fits(previous, [line]):  # one message longer than a request
                words = line.split()
                while words and not self._fits(previous, [" ".join(words) + " [...]"]):
                    words = words[: max(1, len(words) * 3 // 4)] if len(words) > 1 else []
                line = " ".join(words) + " [...]"
            if lines and not self._fits(previous, [*lines, line]):
                previous = self._run(previous, lines)
                lines = []
            lines.append(line)
        if lines:
            previous = self._run(previous, lines)
        return previous or ""


# ----------------------------------------------------------------------------------------------
# The reply
# ----------------------------------------------------------------------------------------------
@dataclass
class _Turn:
    chat_id: int
    answer_to: int | None          # the message being answered (None: continue)
    continue_id: int | None        # the reply being continued
    user_message_id: int | None
    persona: Persona
    history: list[Message]


def prepare_turn(store: Store, *, chat_id: int | None, message: str, mode: Mode,
                 parent: int | None, opts: ReplyOptions, model_name: str) -> _Turn:
    """Add what this reply answers to the store and find the history it answers."""
    if mode not in MODES:
        raise UserError(f"unknown mode '{mode}': choose one of {', '.join(MODES)}")
    if chat_id is None:
        if mode != "send":
            raise UserError(f"'{mode}' needs a chat (--chat)")
        persona = resolve_persona(store, opts.persona)
        chat_id = store.new_chat(persona=persona.name if opts.persona else None,
                                 model=model_name)
        if persona.greeting.strip():
            store.add_message(chat_id, "assistant", persona.greeting.strip(),
                              meta={"greeting": True})
    else:
        chat = store.chat(chat_id)
        persona = resolve_persona(store, opts.persona or chat.persona)
        if opts.persona and chat.persona != persona.name:
            store.update_chat(chat_id, persona=persona.name)
    chat = store.chat(chat_id)
    user_id = continue_id = None
    if mode == "send":
        if not message.strip():
            raise UserError("the message is empty: type something to send")
        if parent is not None and store.message(parent).chat_id != chat_id:
            raise UserError(f"message {parent} is not in chat {chat_id}")
        user_id = store.add_message(chat_id, "user", message,
                                    parent_id="leaf" if parent is None else parent)
        answer_to: int | None = user_id
    else:
        target_id = parent if parent is not None else chat.active_leaf
        if target_id is None:
            raise UserError(f"chat {chat_id} has no message to {mode}")
        target = store.message(target_id)
        if target.chat_id != chat_id:
            raise UserError(f"message {target_id} is not in chat {chat_id}")
        if mode == "answer":
            if target.role != "user":
                raise UserError("the chat's last message is a reply already: send a message, "
                                "or regenerate the reply")
            answer_to = target.id
        elif mode == "regenerate":
            if target.role != "assistant" or target.parent_id is None:
                raise UserError("only a reply of the assistant can be regenerated")
            answer_to = target.parent_id
        else:
            if target.role != "assistant":
                raise UserError("only a reply of the assistant can be continued")
            answer_to, continue_id = None, target.id
    leaf = continue_id if continue_id is not None else answer_to
    history = store.branch(chat_id, leaf)
    return _Turn(chat_id, answer_to, continue_id, user_id, persona, history)


def reply(store: Store, load_backend: Callable[[], ChatBackend], *, chat_id: int | None,
          message: str = "", mode: Mode = "send", parent: int | None = None,
          opts: ReplyOptions | None = None, model_name: str = "",
          documents: Any = None, attach: Path | None = None,
          cancel: Callable[[], bool] | None = None,
          emit: Emit = no_emit, log: Callable[[str], None] | None = None,
          meta: Mapping[str, Any] | None = None) -> ReplyOutcome:
    """Answer in a chat (see the module's docstring for the steps).

    Args:
        store: the chat store.
        load_backend: called only when the model is needed (an intent answers without it).
        chat_id: the chat (None: a new one; only with mode ``"send"``).
        message: the user's message (mode ``"send"``).
        mode: ``send``, ``answer``, ``regenerate`` or ``continue`` (:data:`MODES`).
        parent: ``send``: the message to answer under (a branch; default the active leaf);
            ``regenerate``/``continue``: the reply (default the active leaf); ``answer``: the
            user message (default the active leaf).
        documents: a :class:`~.retrieval.DocumentIndex` for the chat's folders (None: none).
        attach: a folder of documents to attach to the chat and index first.
        cancel: Stop; asked before every token.
        emit: ``emit(kind, payload, **extra)`` for what happens as it happens.
        meta: extra values stored in the reply's metadata (the compare job's side).
    """
    opts = opts or ReplyOptions()
    turn = prepare_turn(store, chat_id=chat_id, message=message, mode=mode, parent=parent,
                        opts=opts, model_name=model_name)
    if attach is not None:
        if documents is None:
            raise UserError("documents need the documents index")
        folder = store.attach_folder(turn.chat_id, attach)
        report = documents.index_folder(
            folder, check=(lambda: _check(cancel)) if cancel is not None else None)
        if log is not None:
            log(f"documents in {folder.name}: {report.describe()}")
    chat = store.chat(turn.chat_id)
    settings = dict(chat.settings)
    remember = {}
    if opts.policy:
        remember["policy"] = opts.policy
    if opts.template:
        remember["template"] = opts.template
    if remember:
        store.update_chat(turn.chat_id, settings=remember)
        settings.update(remember)
    if mode in ("send", "answer") and opts.intents:
        answered = _route_intent(store, turn, emit, meta)
        if answered is not None:
            return answered

    backend = load_backend()
    template = resolve_template(str(settings.get("template") or ""), backend)
    policy = str(settings.get("policy") or DEFAULT_POLICY)
    s = sampling(turn.persona, opts, template.stop)
    history = _usable_history(turn.history, template)
    query = next((m.content for m in reversed(history) if m.role == "user"), "")
    passages, citations, notes = _retrieve(store, documents, turn.chat_id, query, opts.passages,
                                           log)
    ctx_len = backend.info.context_length
    reserve = opts.reserve or min(s.max_new_tokens, max(16, ctx_len // 4))
    reserve = min(reserve, ctx_len - 1)
    continuing = turn.continue_id is not None

    def render(msgs: list[dict[str, str]]) -> str:
        return template.render(msgs, add_generation_prompt=not continuing,
                               continue_final_message=continuing)

    with backend.lock:  # one generation at a time (the summary is one too)
        plan = context_mod.build(
            history, budget=context_mod.Budget(ctx_len, reserve), counter=backend,
            render=render, policy=policy,  # type: ignore[arg-type]
            system_prompt=turn.persona.full_system_prompt(),
            pinned=[n.text for n in store.pinned_notes(turn.chat_id)],
            memory=[m.text for m in store.memories()] if opts.memory else [],
            passages=passages, summariser=ModelSummariser(backend, template, cancel),
            cache=store.summary_cache())
        report = ContextReport(plan.used, plan.total, plan.max_context, plan.policy,
                               plan.complete, tuple(plan.notes), len(plan.dropped),
                               len(plan.summarised), plan.passages_used, plan.memory_used)
        emit("context", report.to_json())
        if log is not None and plan.notes:
            log("context: " + report.describe())
        used_citations = tuple(citations[:plan.passages_used])
        if used_citations:
            emit("citations", [c.to_json() for c in used_citations])
        info = backend.info
        reply_meta = {"model": info.model, "backend": info.kind, "template": template.label,
                      "policy": policy, **(meta or {})}
        if used_citations:
            reply_meta["citations"] = [c.to_json() for c in used_citations]
        if continuing:
            assert turn.continue_id is not None
            writer = store.continue_reply(turn.continue_id)
            store.set_meta(turn.continue_id, **reply_meta)
        else:
            writer = store.begin_reply(turn.chat_id, parent_id=turn.answer_to, meta=reply_meta)
        emit("reply", {"chat_id": turn.chat_id, "message_id": writer.message_id,
                       "parent_id": turn.answer_to, "user_message_id": turn.user_message_id,
                       "mode": mode, "backend": info.to_json(), "template": template.label})
        with writer:
            for chunk in backend.stream(plan.prompt, s, cancel):
                writer.append(chunk)
                emit("text", chunk)
            g = backend.last_stats
            stats = ReplyStats(ttft_s=round(g.first_token_s, 4), tokens=g.new_tokens,
                               tokens_per_s=round(g.tokens_per_s, 2), context_used=plan.used,
                               context_total=ctx_len, backend=info.label, model=info.model)
            cancelled = g.stop_reason == "cancelled"
            cut = g.stop_reason == "length" and g.new_tokens < s.max_new_tokens
            store.set_meta(writer.message_id, seed=g.seed, stop_reason=g.stop_reason)
            if cancelled:
                writer.stop(stats)
            else:
                writer.finish(stats)
    emit("stats", {"message_id": writer.message_id, **stats.__dict__, "seed": g.seed,
                   "stop_reason": g.stop_reason})
    if cut:
        notes.append("the reply reached the end of the model's context; continue it in a new "
                     "chat or with a policy that leaves out older turns")
    text = store.message(writer.message_id).content
    outcome = ReplyOutcome(
        turn.chat_id, writer.message_id, turn.answer_to if not continuing else
        store.message(writer.message_id).parent_id, turn.user_message_id, text, not cancelled,
        g.stop_reason, g.seed, stats, mode, report, citations=used_citations,
        backend=info.to_json(), template=template.label, cut_by_context=cut,
        notes=tuple([*info.notes, *notes]))
    if cancelled:
        raise CancelledReply(outcome)
    return outcome


def _check(cancel: Callable[[], bool]) -> None:
    if cancel():
        raise Cancelled()


class CancelledReply(Cancelled):
    """Stop during a reply: what was written is kept, unfinished (``outcome``)."""

    def __init__(self, outcome: ReplyOutcome) -> None:
        super().__init__()
        self.outcome = outcome


def _route_intent(store: Store, turn: _Turn, emit: Emit,
                  meta: Mapping[str, Any] | None) -> ReplyOutcome | None:
    intents = store.intents()
    if not intents or turn.answer_to is None:
        return None
    text = store.message(turn.answer_to).content
    found = IntentRouter(intents).match(text)
    if found is None:
        return None
    answer = found.intent.answer
    writer = store.begin_reply(turn.chat_id, parent_id=turn.answer_to,
                               meta={"intent": found.intent.name,
                                     "intent_score": round(found.score, 3), **(meta or {})})
    emit("reply", {"chat_id": turn.chat_id, "message_id": writer.message_id,
                   "parent_id": turn.answer_to, "user_message_id": turn.user_message_id,
                   "mode": "intent", "backend": None, "template": None})
    emit("intent", {"name": found.intent.name, "score": found.score, "example": found.example})
    writer.append(answer)
    emit("text", answer)
    stats = ReplyStats(backend="intent")
    writer.finish(stats)
    return ReplyOutcome(turn.chat_id, writer.message_id, turn.answer_to, turn.user_message_id,
                        answer, True, "intent", None, stats, "send", intent=found.intent.name,
                        intent_score=round(found.score, 3))


def _usable_history(history: list[Message], template: templates_mod.ChatTemplate
                    ) -> list[Message]:
    """The branch as the prompt takes it: a persona's greeting (an assistant message before
    any user message) stays when the template accepts it; strict templates (Llama 2, Mistral,
    Gemma) refuse a conversation that starts with the assistant, so there it is left out."""
    greeting = [m for m in history if m.meta.get("greeting")]
    if not greeting:
        return history
    try:
        template.render([{"role": m.role, "content": m.content} for m in history
                         if m.role != "system"] or [{"role": "user", "content": "hi"}])
    except UserError:
        return [m for m in history if not m.meta.get("greeting")]
    return history


def _retrieve(store: Store, index: Any, chat_id: int, query: str, k: int,
              log: Callable[[str], None] | None
              ) -> tuple[list[str], list[Citation], list[str]]:
    notes: list[str] = []
    folders = store.folders(chat_id)
    if index is None or not folders or k <= 0 or not query.strip():
        return [], [], notes
    if getattr(index, "notice", None):
        notes.append(index.notice)
        if log is not None:
            log(index.notice)
        for folder in folders:
            if folder.is_dir():
                index.index_folder(folder)
        index.notice = None
    missing = [f.name for f in folders if not f.is_dir()]
    if missing:
        notes.append(f"document folder(s) no longer there: {', '.join(missing)}")
    hits = index.search(query, folders=[f for f in folders if f.is_dir()], k=k)
    passages = [p.as_context(i + 1) for i, p in enumerate(hits)]
    citations = [Citation(i + 1, p.source, p.page, p.position + 1, p.cite())
                 for i, p in enumerate(hits)]
    return passages, citations, notes


def chat_prompt_preview(store: Store, chat_id: int, backend: ChatBackend, template_spec: str,
                        opts: ReplyOptions | None = None) -> tuple[str, ContextReport]:
    """The prompt the next reply in this chat would get (for the template preview)."""
    opts = opts or ReplyOptions()
    chat = store.chat(chat_id)
    persona = resolve_persona(store, opts.persona or chat.persona)
    template = resolve_template(template_spec or str(chat.settings.get("template") or ""),
                                backend)
    history = _usable_history(store.branch(chat_id), template)
    if not any(m.role == "user" for m in history):
        raise UserError(f"chat {chat_id} has no message to answer yet")
    s = sampling(persona, opts, template.stop)
    ctx_len = backend.info.context_length
    reserve = min(opts.reserve or min(s.max_new_tokens, max(16, ctx_len // 4)), ctx_len - 1)
    plan = context_mod.build(
        history, budget=context_mod.Budget(ctx_len, reserve), counter=backend,
        render=lambda msgs: template.render(msgs, add_generation_prompt=True),
        policy="rolling" if chat.settings.get("policy") == "summarise"
        else str(chat.settings.get("policy") or DEFAULT_POLICY),  # type: ignore[arg-type]
        system_prompt=persona.full_system_prompt(),
        pinned=[n.text for n in store.pinned_notes(chat_id)],
        memory=[m.text for m in store.memories()] if opts.memory else [])
    return plan.prompt, ContextReport(plan.used, plan.total, plan.max_context, plan.policy,
                                      plan.complete, tuple(plan.notes))


__all__ = ["DEFAULT_POLICY", "MODES", "CancelledReply", "ModelSummariser", "ReplyOptions",
           "chat_prompt_preview", "prepare_turn", "reply", "resolve_persona",
           "resolve_template", "sampling"]
