"""The chat's jobs: thin glue from a job context and a params object to the engine.

Events a panel listens to (``preview(kind, payload)``, all with ``replace=False``):

======================  =======================================================================
kind                    payload
======================  =======================================================================
``"reply"``             ``{"chat_id", "message_id", "parent_id", "user_message_id", "mode",
                        "backend": BackendInfo json | None, "template"}``: before the first
                        chunk, so the view knows which message is streaming
``"context"``           :class:`~.engine.outcomes.ContextReport` json: the budget and what the
                        policy left out or summarised
``"citations"``         list of :class:`~.engine.outcomes.Citation` json
``"intent"``            ``{"name", "score", "example"}`` when a canned answer replied
``"text"``              a chunk of the reply (str)
``"stats"``             ``{"message_id", "ttft_s", "tokens", "tokens_per_s", "context_used",
                        "context_total", "backend", "model", "seed", "stop_reason"}``
``"outcome"``           the job's result as json (also for ``--events jsonl``)
``"api"``               serve: ``{"url", "port", "token", "model", "backend"}``
======================  =======================================================================

``compare`` adds ``index=0`` or ``1`` (model A or B) to each event. Training jobs report
through the shared loop (metrics ``loss/train``, ``loss/val``, and for finetune ``loss/sft``,
``loss/dpo``, ``reward/margin``, ``reward/accuracy``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugins.chat.params import (
    CompareParams,
    ConvertParams,
    ExportParams,
    FinetuneParams,
    ImportParams,
    IndexParams,
    ReplyParams,
    ServeParams,
    TemplateParams,
    TrainParams,
)
from studio.errors import Cancelled, UserError
from studio.jobs import JobContext

_open: dict[tuple[str, str], tuple[Any, tuple[int, int]]] = {}
_open_lock = threading.Lock()


def _shared(kind: str, path: Path, opener: Any) -> Any:
    """One open chat store (or documents index) per file for the whole process, shared by
    every job: opening one checks the whole file (SQLite's quick_check), tens of milliseconds
    on a large history that would otherwise be paid before every reply. A file replaced or
    moved aside since (a damaged one) is opened again."""
    key = (kind, str(path))
    with _open_lock:
        found = _open.get(key)
        try:
            st = path.stat()
            ident = (st.st_ino, st.st_dev)
        except OSError:
            ident = (-1, -1)
        if found is not None and found[1] == ident:
            return found[0]
        obj = opener(path)
        st = path.stat()
        _open[key] = (obj, (st.st_ino, st.st_dev))
        return obj


def close_shared() -> None:
    """Close the shared chat stores and documents indexes (the window's shutdown; tests)."""
    with _open_lock:
        for obj, _ in _open.values():
            try:
                obj.close()
            except Exception:  # already closed, or its file gone
                pass
        _open.clear()


def _shares_files(job: Callable[..., Any]) -> Callable[..., Any]:
    """A job using the shared store or index: a file found damaged while open is dropped, so
    the next job opens it again (which moves it aside and starts afresh)."""
    from plugins.chat.engine.sqlitedb import DamagedWhileOpen

    @functools.wraps(job)
    def run(ctx: JobContext, p: Any) -> Any:
        try:
            return job(ctx, p)
        except DamagedWhileOpen:
            with _open_lock:
                _open.clear()
            raise

    return run


def _store(ctx: JobContext) -> Any:
    from plugins.chat.engine.store import Store, store_path

    return _shared("store", store_path(ctx.workspace), Store)


def _documents(ctx: JobContext) -> Any:
    from plugins.chat.engine.retrieval import DocumentIndex

    return _shared("documents", Path(ctx.workspace) / "chat" / "documents.db", DocumentIndex)


def _backend(ctx: JobContext, model: Path, backend: str, context: int) -> Any:
    from plugins.chat.engine.backends import open_backend

    ctx.progress(0, None, f"loading {model.name}")
    return open_backend(model, backend=backend, device=ctx.device,  # type: ignore[arg-type]
                        threads=ctx.cpu_threads, context=context, workspace=ctx.workspace,
                        log=ctx.log, check=ctx.check)


def _emitter(ctx: JobContext, **extra: Any) -> Any:
    def emit(kind: str, payload: Any) -> None:
        if kind == "reply":
            ctx.progress(0, None, "writing")
        ctx.preview(kind, payload, replace=False, **extra)

    return emit


# ----------------------------------------------------------------------------------------------
# Chatting
# ----------------------------------------------------------------------------------------------
@_shares_files
def reply(ctx: JobContext, p: ReplyParams) -> Any:
    """Answer in a chat: the reply streams, is stored with its figures, and is printed."""
    from plugins.chat.engine.answer import CancelledReply
    from plugins.chat.engine.answer import reply as answer
    from plugins.chat.engine.outcomes import ReplyOutcome

    store, docs = _store(ctx), _documents(ctx)
    try:
        outcome: ReplyOutcome = answer(
            store, lambda: _backend(ctx, p.model, p.backend, p.context), chat_id=p.chat,
            message=p.message, mode=p.mode, parent=p.parent, opts=p.options(),
            model_name=str(p.model.expanduser().resolve()), documents=docs,
            attach=p.documents, cancel=lambda: ctx.cancelled, emit=_emitter(ctx), log=ctx.log)
    except CancelledReply as stop:
        ctx.log(f"Stopped: the reply so far is kept in chat {stop.outcome.chat_id} (message "
                f"{stop.outcome.message_id}); continue it with --mode continue")
        raise
    _report(ctx, outcome)
    return outcome


def _report(ctx: JobContext, outcome: Any, **extra: Any) -> None:
    from plugins.chat.engine.exchange import stats_line

    line = stats_line(outcome.stats)
    what = f"intent '{outcome.intent}'" if outcome.intent else line
    ctx.log(f"chat {outcome.chat_id}, reply {outcome.message_id}: {what}"
            + (f" (seed {outcome.seed})" if outcome.seed is not None else ""))
    if outcome.context is not None and outcome.context.notes:
        ctx.log("context: " + outcome.context.describe())
    for note in outcome.notes:
        ctx.warn(note) if "slower" in note or "context" in note else ctx.log(note)
    ctx.preview("outcome", outcome.to_json(), replace=False, **extra)
    ctx.progress(1, 1, "done")


@_shares_files
def compare(ctx: JobContext, p: CompareParams) -> Any:
    """The same message answered by two models, side by side (A/B): two sibling replies."""
    from plugins.chat.engine.answer import reply as answer
    from plugins.chat.engine.outcomes import CompareOutcome

    store, docs = _store(ctx), _documents(ctx)
    opts = p.options()
    a = answer(store, lambda: _backend(ctx, p.model, p.backend, p.context), chat_id=p.chat,
               message=p.message, mode="send", opts=opts,
               model_name=str(p.model.expanduser().resolve()), documents=docs,
               cancel=lambda: ctx.cancelled, emit=_emitter(ctx, index=0), log=ctx.log,
               meta={"compare": "A", "compare_model": p.model.name})
    _report(ctx, a, index=0)
    b = answer(store, lambda: _backend(ctx, p.model_b, p.backend, p.context),
               chat_id=a.chat_id, mode="regenerate", parent=a.message_id, opts=opts,
               documents=docs, cancel=lambda: ctx.cancelled, emit=_emitter(ctx, index=1),
               log=ctx.log, meta={"compare": "B", "compare_model": p.model_b.name})
    _report(ctx, b, index=1)
    store.select(a.message_id)  # A stays shown; the arrows switch to B
    return CompareOutcome(a, b)


@_shares_files
def serve(ctx: JobContext, p: ServeParams) -> str:
    """An OpenAI-compatible API on 127.0.0.1 for other apps; runs until Stop."""
    from dataclasses import replace

    from plugins.chat.engine.answer import ReplyOptions, resolve_persona, resolve_template
    from plugins.chat.engine.answer import sampling as sampling_for
    from plugins.chat.engine.server import ChatAPI, ServerConfig

    backend = _backend(ctx, p.model, p.backend, p.context)
    persona = resolve_persona(_store(ctx), p.persona)
    template = resolve_template(p.template, backend)
    defaults = replace(sampling_for(persona, ReplyOptions(), template.stop), seed=None)
    config = ServerConfig(model_id=backend.info.model, template=template, defaults=defaults,
                          max_tokens=p.max_tokens, system_prompt=persona.full_system_prompt())
    api = ChatAPI(backend, config, p.port, log=ctx.log, stopped=lambda: ctx.cancelled)
    api.start()
    ctx.log(f"API for {backend.info.model} ({backend.info.label}) at {api.url}: only programs "
            f"on this machine can reach it, with the bearer token {api.token}")
    ctx.preview("api", {"url": api.url, "port": api.port, "token": api.token,
                        "model": backend.info.model, "backend": backend.info.to_json()},
                replace=False)
    ctx.progress(0, None, f"serving at {api.url}")
    try:
        while True:
            ctx.sleep(0.25)
    finally:
        api.stop()
        ctx.log(f"API closed after {api.requests} request(s)")


# ----------------------------------------------------------------------------------------------
# Chats, documents, templates and models as files
# ----------------------------------------------------------------------------------------------
@_shares_files
def export(ctx: JobContext, p: ExportParams) -> str:
    """Write a chat as Markdown (to read) or JSON (to keep and import again)."""
    from plugins.chat.engine.exchange import export_chat

    path = export_chat(_store(ctx), p.chat, p.out.expanduser(), all_branches=p.all_branches)
    return str(path)


@_shares_files
def import_chat(ctx: JobContext, p: ImportParams) -> int:
    """Import a chat from JSON (the studio's own export, or OpenAI-style messages); returns
    the new chat's number."""
    from plugins.chat.engine.exchange import import_chat as do_import

    store = _store(ctx)
    chat_id = do_import(store, p.file.expanduser(), title=p.title or None)
    ctx.log(f"imported {p.file.name} as chat {chat_id}: {store.chat(chat_id).title}")
    return int(chat_id)


@_shares_files
def index(ctx: JobContext, p: IndexParams) -> str:
    """Index a folder of documents for retrieval (and attach it to a chat)."""
    docs = _documents(ctx)
    if docs.notice:
        ctx.warn(docs.notice)
        docs.notice = None
    folder = p.folder.expanduser()
    if p.chat is not None:
        folder = _store(ctx).attach_folder(p.chat, folder)
    report = docs.index_folder(folder, check=ctx.check,
                               progress=lambda n, total, name: ctx.progress(n, total, name))
    for name, why in report.failed:
        ctx.warn(f"{name}: {why}")
    return report.describe()


@_shares_files
def template(ctx: JobContext, p: TemplateParams) -> Any:
    """Show how a chat template formats a conversation (the model's own or another)."""
    from plugins.chat.engine import templates as T
    from plugins.chat.engine.answer import chat_prompt_preview, resolve_template
    from plugins.chat.engine.backends.hf import open_tokenizer_view
    from plugins.chat.engine.outcomes import TemplatePreview

    builtins = tuple(T.BUILTINS)
    if p.model is None:
        if p.template.lower() in T.BUILTINS:
            tpl = T.builtin(p.template)
        else:
            path = p.template and Path(p.template).expanduser()
            if not path or not path.is_file():
                raise UserError(f"unknown chat template '{p.template}': choose one of "
                                f"{', '.join(builtins)} or a .jinja file")
            tpl = T.ChatTemplate(path.read_text(encoding="utf-8"), {}, path.name)
        return TemplatePreview(tpl.label, tpl.preview(), None, tpl.supports_system_role(),
                               (), builtins)
    view = open_tokenizer_view(p.model)
    info = view.template_info()
    tpl = resolve_template(p.template, view)
    if p.chat is not None:
        text, report = chat_prompt_preview(_store(ctx), p.chat, view, p.template)
        if report.notes:
            ctx.log("context: " + report.describe())
    else:
        text = tpl.preview()
    return TemplatePreview(tpl.label, text, view.count_tokens(text), tpl.supports_system_role(),
                           tuple(info.names) if info else (), builtins)


def convert(ctx: JobContext, p: ConvertParams) -> str:
    """Make a GGUF copy of a Hugging Face model for llama.cpp."""
    from plugins.chat.engine.gguf_export import check_tokenizer, export_folder
    from plugins.common.lm.loading import inspect_model_dir, load_tokenizer_for

    info = inspect_model_dir(p.model)
    name = info.path.name if info.path.name not in ("model", "adapter") \
        else f"{info.path.parent.name}-{info.path.name}"
    out = p.out.expanduser() if p.out else Path(ctx.workspace) / "models" / \
        f"{name}-{p.type}.gguf"
    ctx.progress(0, None, f"writing {out.name}")
    path = export_folder(info.path, out, file_type=p.type, check=ctx.check)
    probe = "Hello! How are you today? Café, naïve, 123 4567, <|im_end|> ☕"
    if not check_tokenizer(path, load_tokenizer_for(info), probe):
        ctx.warn(f"llama.cpp reads the vocabulary of {path.name} with a different split of some "
                 "texts than the original tokenizer: the studio tokenises with the original, "
                 "other apps may differ slightly")
    ctx.log(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB ({p.type.upper()})")
    return str(path)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
@_shares_files
def finetune(ctx: JobContext, p: FinetuneParams) -> Any:
    """Improve a model from your feedback: a LoRA adapter (SFT on liked and corrected replies,
    DPO where a reply was corrected)."""
    from plugins.chat.engine.feedback import collect, load_feedback_file
    from plugins.chat.engine.finetune import FinetuneRequest, split
    from plugins.chat.engine.finetune import finetune as run_finetune
    from plugins.chat.engine.outcomes import TrainOutcome
    from plugins.chat.engine.store import store_path

    if ctx.run_dir is None:
        raise UserError("the finetune job needs a run folder (--out)")
    saved = ctx.run_dir / "feedback.jsonl"
    if p.resume and saved.exists():
        feedback = load_feedback_file(saved)  # exactly what the run started with
    else:
        feedback = collect(_store(ctx), p.chats)
    req = FinetuneRequest(model=str(p.model.expanduser().resolve()), template=p.template,
                          method=p.method, steps=p.steps, batch_size=p.batch_size,
                          block_size=p.block_size, lr=p.lr, lora_r=p.lora_r, beta=p.beta,
                          dpo_weight=p.dpo_weight, val_fraction=p.val_fraction, seed=p.seed,
                          chats=tuple(p.chats))
    train_items, val_items = split(feedback.items, p.val_fraction, p.seed)
    if feedback.items:
        ctx.record_data("chat feedback", store_path(ctx.workspace),
                        [x.example() for x in feedback.items],
                        held_out=[x.example().id for x in val_items], unit="reply",
                        liked=feedback.liked, corrected=feedback.corrected,
                        thumbs_down_without_correction=feedback.thumbs_down_only)
    try:
        out = run_finetune(req, feedback, ctx.run_dir, ctx, device=ctx.device, resume=p.resume)
    except Cancelled:
        adapter = ctx.run_dir / "adapter"
        if adapter.exists():
            ctx.add_artifact(adapter, "model", model_kind="lm-adapter")
        raise
    ctx.add_artifact(out.adapter, "model", model_kind="lm-adapter", step=out.step,
                     base=Path(req.model).name, sft_examples=out.sft_examples, pairs=out.pairs)
    ctx.log(f"adapter saved: {out.sft_examples} supervised examples, {out.pairs} preference "
            f"pairs, {out.step} steps; compare it with the base model (studio run chat compare)")
    return TrainOutcome(str(out.adapter), out.step, out.best_val, out.seconds,
                        len(train_items), len(val_items),
                        details={"sft_examples": out.sft_examples, "pairs": out.pairs})


def train(ctx: JobContext, p: TrainParams) -> Any:
    """Train a small chatbot from scratch on dialogs (built-in or your own)."""
    from plugins.chat.engine.dialogs import BUILTIN, load_dialogs
    from plugins.chat.engine.outcomes import TrainOutcome
    from plugins.chat.engine.scratch import ScratchRequest, split, train_from_scratch
    from studio.manifest import sha256_file

    if ctx.run_dir is None:
        raise UserError("the train job needs a run folder (--out)")
    data = p.data.strip() or BUILTIN
    if data.lower() != BUILTIN:
        data = str(Path(data).expanduser().resolve())
    ctx.progress(0, None, "reading the dialogs")
    dialogs = load_dialogs(data, p.language, check=ctx.check)
    for note in dialogs.notes:
        ctx.log(note)
    req = ScratchRequest(data=data, language=p.language, preset=p.preset, steps=p.steps,
                         batch_size=p.batch_size, block_size=p.block_size, lr=p.lr,
                         vocab_size=p.vocab_size, val_fraction=p.val_fraction,
                         eval_every=p.eval_every, patience=p.patience,
                         max_seconds=p.minutes * 60.0, seed=p.seed)
    train_d, val_d = split(dialogs.dialogs, p.val_fraction, p.seed)
    hashes: dict[str, str] = {}
    root = dialogs.root

    def example(d: Any) -> Any:
        from studio.manifest import Example

        if d.source not in hashes:
            f = root if root.is_file() else root / d.source
            hashes[d.source] = sha256_file(f)
        return Example("" if root.is_file() else d.source, hashes[d.source], f"dialog {d.index}")

    examples = [example(d) for d in dialogs.dialogs]
    held = {id(d) for d in val_d}
    ctx.record_data(dialogs.name, root, examples,
                    held_out=[e.id for e, d in zip(examples, dialogs.dialogs, strict=True)
                              if id(d) in held],
                    unit="dialog", files=len(dialogs.files), language=p.language)
    try:
        out = train_from_scratch(req, dialogs, ctx.run_dir, ctx, device=ctx.device,
                                 resume=p.resume)
    except Cancelled:
        model = ctx.run_dir / "model"
        if model.exists():
            ctx.add_artifact(model, "model", model_kind="causal-lm")
        raise
    ctx.add_artifact(out.model_dir, "model", model_kind="causal-lm", step=out.step,
                     val_loss=out.best_val, params=out.parameters)
    return TrainOutcome(str(out.model_dir), out.step, out.best_val, out.seconds, len(train_d),
                        len(val_d), out.sample, details={"parameters": out.parameters})
