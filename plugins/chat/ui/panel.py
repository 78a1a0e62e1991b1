"""The Chat panel: chats on the left, the conversation in the centre, settings on the right.

Thin by design. Every reply is the ``reply`` job (``host.submit`` with a
:class:`~plugins.chat.params.ReplyParams`): it loads the model, streams ``text`` previews that
the view draws as they come, and stores the reply with its figures. Edits that take
milliseconds (switching branches, editing, deleting, feedback, personas, notes, intents) are
the engine's :class:`~plugins.chat.engine.store.Store` methods, called here directly; the panel
opens its own connection to the chat database (off the GUI thread: opening checks the file),
beside the jobs' one (SQLite WAL: the panel reads while a job writes a reply).

Stop is at once: the view freezes where it is and ignores what is still in flight; the job
keeps the reply so far (unfinished), which the view shows with Continue once the job has ended.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QToolBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from plugins.chat.engine.personas import DEFAULT_PERSONA, Persona
from plugins.chat.engine.store import Store, store_path
from plugins.chat.params import CompareParams, ExportParams, ImportParams, ReplyParams
from plugins.chat.ui.api_section import ApiSection
from plugins.chat.ui.chatlist import ChatList
from plugins.chat.ui.compare import CompareSection, CompareView
from plugins.chat.ui.composer import Composer
from plugins.chat.ui.conversation import ConversationView
from plugins.chat.ui.documents_section import DocumentsSection
from plugins.chat.ui.improve_section import ImproveSection
from plugins.chat.ui.intents_section import IntentsSection
from plugins.chat.ui.model_section import ModelSection
from plugins.chat.ui.notes_section import NotesSection
from plugins.chat.ui.persona_section import PersonaSection
from plugins.chat.ui.transcript import Shown, load_branch
from plugins.chat.ui.words import POLICIES, POLICY_HELP, error_words, stats_words
from studio.errors import UserError
from studio.qtjobs import JobHandle
from studio.widgets.background import Background, Failed
from studio.widgets.form import Form
from studio.widgets.modelpicker import ModelPicker
from studio.widgets.panelparts import header

NO_TEMPLATE = "has no chat template"


class ChatPanel(QWidget):
    """The chat window. ``ready`` once the chat database is open."""

    #: the store is open and the chats are listed
    opened = Signal()
    #: the shown chat changed (id or None)
    chat_changed = Signal(object)

    def __init__(self, host: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.store: Store | None = None
        self.chat_id: int | None = None
        self.items: list[Shown] = []
        self.persona: Persona = DEFAULT_PERSONA
        self.confirm = True  # ask before deleting (tests turn it off)
        self._handle: JobHandle | None = None
        self._stopped: JobHandle | None = None
        self._text = ""
        self._streaming_id: int | None = None
        self._editing: int | None = None
        self._last_stats: dict[str, Any] | None = None
        self.bg = Background(self)

        # -- the reply job's settings (the model on top, the rest in the Model section) ----------
        recalled = host.recall("reply", ReplyParams)
        self.form = Form(ReplyParams, self, dataclasses.replace(
            recalled, message="", chat=None, mode="send", parent=None, documents=None))
        self.picker = self.form.widget("model")
        assert isinstance(self.picker, ModelPicker)
        self.picker.setToolTip("The model that answers: your trained models, the model library, "
                               "or Choose… for any Hugging Face folder or GGUF file")
        self.picker.path_changed.connect(self._model_changed)

        # -- left: chats --------------------------------------------------------------------------
        self.chat_list = ChatList()
        self.chat_list.chosen.connect(self.open_chat)
        self.chat_list.hit_chosen.connect(self._open_hit)
        self.chat_list.action.connect(self._chat_action)
        self.chat_list.search_changed.connect(self._search)

        # -- centre: the conversation -----------------------------------------------------------
        self.title = QLabel("")
        self.title.setObjectName("chatTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.title.setFont(font)
        self.chats_toggle = QToolButton()
        self.chats_toggle.setText("Chats")
        self.chats_toggle.setCheckable(True)
        self.chats_toggle.setChecked(True)
        self.chats_toggle.setToolTip("Show or hide the list of chats")
        self.side_toggle = QToolButton()
        self.side_toggle.setText("Settings")
        self.side_toggle.setCheckable(True)
        self.side_toggle.setChecked(True)
        self.side_toggle.setToolTip("Show or hide the settings: model, persona, notes, "
                                    "documents, saved answers, improve, compare, local API")
        title_row = QHBoxLayout()
        title_row.addWidget(self.chats_toggle)
        title_row.addWidget(self.title, 1)
        title_row.addWidget(self.side_toggle)
        model_row = QHBoxLayout()
        model_row.addWidget(QLabel("Model:"))
        model_row.addWidget(self.picker, 1)
        self.context_bar = QProgressBar()
        self.context_bar.setTextVisible(True)
        self.context_bar.setMaximumHeight(18)
        self.context_bar.setToolTip("How much of the model's context this chat's last prompt "
                                    "took (instructions, pinned notes, documents and the turns)")
        self.policy = QComboBox()
        for key, label in POLICIES.items():
            self.policy.addItem(label, key)
            self.policy.setItemData(self.policy.count() - 1, POLICY_HELP[key],
                                    Qt.ItemDataRole.ToolTipRole)
        self.policy.setToolTip("When full: what happens when this chat outgrows the model's "
                               "context (never a silent cut)")
        self.policy.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.policy.setMinimumContentsLength(10)
        self.policy.activated.connect(self._policy_picked)
        context_row = QHBoxLayout()
        context_row.addWidget(QLabel("Context:"))
        context_row.addWidget(self.context_bar, 1)
        context_row.addWidget(self.policy)
        self.context_note = QLabel("")
        self.context_note.setWordWrap(True)
        self.context_note.hide()
        self.view = ConversationView()
        self.view.action.connect(self._message_action)
        self.composer = Composer()
        self.composer.send.connect(self.send)
        self.composer.stop.connect(self.stop)
        self.composer.edit_cancelled.connect(self.cancel_edit)
        self.composer.template_chosen.connect(self._template_chosen)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("chatStatus")
        centre = QWidget()
        cv = QVBoxLayout(centre)
        cv.setContentsMargins(4, 0, 4, 0)
        cv.addLayout(title_row)
        cv.addLayout(model_row)
        cv.addLayout(context_row)
        cv.addWidget(self.context_note)
        self.compare_view = CompareView()
        self.centre_split = QSplitter(Qt.Orientation.Vertical)
        self.centre_split.addWidget(self.compare_view)
        self.centre_split.addWidget(self.view)
        self.centre_split.setChildrenCollapsible(False)
        cv.addWidget(self.centre_split, 1)
        cv.addWidget(self.composer)
        cv.addWidget(self.status)

        # -- right: settings and extras -----------------------------------------------------------
        self.model_section = ModelSection(host, self.form, self.model, lambda: self.chat_id)
        self.model_section.template_changed.connect(self.set_template)
        self.side = QToolBox()
        self.side.setMinimumWidth(260)
        self.side.addItem(self.model_section, "Model settings")
        self._add_sections()

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.chat_list)
        split.addWidget(centre)
        split.addWidget(self.side)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([230, 700, 340])
        split.setChildrenCollapsible(False)
        self.chat_list.setMinimumWidth(150)
        self.chats_toggle.toggled.connect(self.chat_list.setVisible)
        self.side_toggle.toggled.connect(self.side.setVisible)
        self._fitted = False
        self.split = split
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        head = header("Chat", "Talk with a local model, on your documents, with personas and "
                      "memory; improve it from your feedback.")
        head.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(head)
        lay.addWidget(split, 1)
        self._show_context(None, None)
        self.view.empty_text = "Opening your chats…"
        self.view.show_messages([])
        self._open_store()

    def showEvent(self, event: Any) -> None:
        """The first time it is shown: in a narrow window (docks beside it), the settings and
        then the chat list start hidden (their buttons bring them back)."""
        super().showEvent(event)
        if not self._fitted and self.width() > 100:
            self._fitted = True
            if self.width() < 980:
                self.side_toggle.setChecked(False)
            if self.width() < 640:
                self.chats_toggle.setChecked(False)

    def _add_sections(self) -> None:
        """The side sections beyond the model's; each is its own module."""
        store = self._get_store
        chat = self._get_chat
        self.persona_section = PersonaSection(store)
        self.persona_section.chosen.connect(self.use_persona)
        self.notes_section = NotesSection(store, chat)
        self.documents_section = DocumentsSection(self.host, store, chat)
        self.intents_section = IntentsSection(store)
        self.improve_section = ImproveSection(self.host, store, self.model)
        self.improve_section.improved.connect(self._improved)
        self.compare_section = CompareSection()
        self.compare_section.compare.connect(self.compare)
        self.api_section = ApiSection(self.host, self.model, self._persona_spec)
        for widget, title in ((self.persona_section, "Persona"),
                              (self.notes_section, "Pinned notes and memory"),
                              (self.documents_section, "Your documents"),
                              (self.intents_section, "Saved answers"),
                              (self.improve_section, "Improve this model"),
                              (self.compare_section, "Compare two models"),
                              (self.api_section, "Local API for other apps")):
            self.side.addItem(widget, title)
        self.side.currentChanged.connect(lambda _i: self._refresh_sections())
        for combo in self.side.findChildren(QComboBox):  # long choices elide in the column
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)

    def _get_store(self) -> Store | None:
        return self.store

    def _get_chat(self) -> int | None:
        return self.chat_id

    def _persona_spec(self) -> str:
        return "" if self.persona.name == DEFAULT_PERSONA.name else self.persona.name

    def _refresh_sections(self) -> None:
        """Refresh the open side section (only that one: each reads the store)."""
        current = self.side.currentWidget()
        if current is self.persona_section:
            self.persona_section.select(self.persona.name)
        elif current in (self.notes_section, self.documents_section, self.intents_section,
                         self.improve_section):
            current.refresh()  # type: ignore[union-attr]

    def use_persona(self, persona: Persona) -> None:
        """Chat as ``persona`` (this chat, and new ones)."""
        self.persona = persona
        self.view.assistant_name = persona.name
        if self.store is not None and self.chat_id is not None:
            self.store.update_chat(self.chat_id, persona=persona.name)
        self.host.remember_value("persona", persona.name)
        if not self.busy:
            self.show_chat()

    def _improved(self, adapter: Path | None, base: Path | None) -> None:
        if adapter is None:
            return
        self.compare_section.picker_b.refresh()
        if base is None:
            self.use_model(adapter)
            self.status.setText("Chatting with the improved model.")
        else:
            self.use_model(base)
            self.compare_section.picker_b.set_path(adapter)
            self.side.setCurrentWidget(self.compare_section)
            self.status.setText("Write a message, then Compare: the original answers as A, "
                                "the improved model as B.")

    def compare(self) -> JobHandle | None:
        """Send the message box's text to model A (the chat's) and model B, side by side."""
        text = self.composer.text()
        b = self.compare_section.model_b()
        if not text.strip():
            self.status.setText("Write the message to compare first.")
            return None
        if b is None or self.model() is None:
            self.status.setText("Choose both models: the chat's (A, above) and model B.")
            return None
        if self.busy or self.store is None:
            return None
        if self.chat_id is None and self.new_chat() is None:
            return None
        f = self.form.p
        try:
            p = CompareParams(model=self.model(), model_b=b, message=text, chat=self.chat_id,
                              persona=self._persona_spec(), seed=f.seed, backend=f.backend,
                              context=f.context, max_new_tokens=f.max_new_tokens,
                              passages=f.passages, memory=f.memory)
        except (TypeError, ValueError) as exc:
            self.status.setText(f"⚠ {exc}")
            return None
        handle = self.host.submit("compare", p, show_plots=False, remember=False)
        self._handle = handle
        self._streaming_id = None
        self._text = ""
        self.compare_view.start(_model_label(p.model), _model_label(b))
        handle.preview.connect(self.compare_view.on_event)
        handle.finished.connect(lambda rec, h=handle: self._on_finished(h, rec))
        self.composer.set_text("")
        self.composer.set_busy(True)
        self.view.show_messages(self.items, pending_user=text, waiting="Comparing…")
        return handle

    # -- the store ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.store is not None

    def _open_store(self) -> None:
        path = store_path(self.host.workspace)
        self.bg.run("store", lambda: Store(path), self._store_opened)

    def _store_opened(self, result: Any) -> None:
        if isinstance(result, Failed):
            self.view.empty_text = ""
            self.view.show_messages([])
            self.status.setText("⚠ " + error_words(str(result.error)))
            if isinstance(result.error, UserError):  # a damaged file was moved aside: retry
                self._open_store()
            return
        self.store = result
        remembered = self.host.recall_value("persona")
        if isinstance(remembered, str):
            try:
                self.persona = result.persona(remembered)
            except UserError:
                pass
        self.view.empty_text = ("Write a message below to start a chat. Choose the model above; "
                                "the sections on the right set its persona, notes, documents "
                                "and more.")
        self.refresh_chats()
        last = self.host.recall_value("chat")
        ids = [c.id for c in result.chats()]
        if isinstance(last, int) and last in ids:
            self.open_chat(last)
        elif ids:
            self.open_chat(ids[0])
        else:
            self.show_chat()
        self._model_changed(self.model())
        self.persona_section.select(self.persona.name)
        self.improve_section.refresh()
        self.opened.emit()

    def refresh_chats(self) -> None:
        if self.store is not None:
            self.chat_list.fill(self.store.chats(), self.chat_id)

    # -- chats ----------------------------------------------------------------------------------
    def new_chat(self) -> int | None:
        """A new chat with the current persona (its greeting first) and model."""
        if self.store is None:
            return None
        if self.busy:
            self.status.setText("Wait for the reply to finish, or press Stop.")
            return None
        model = self.model()
        remembered = self.host.recall_value("persona")
        self.persona = DEFAULT_PERSONA
        if isinstance(remembered, str) and remembered != DEFAULT_PERSONA.name:
            try:
                self.persona = self.store.persona(remembered)
            except UserError:
                pass
        settings: dict[str, Any] = {"policy": self._policy_key()}
        if self.form.p.template:
            settings["template"] = self.form.p.template
        is_default = self.persona.name == DEFAULT_PERSONA.name
        chat_id = self.store.new_chat(persona=None if is_default else self.persona.name,
                                      model=str(model) if model else None, settings=settings)
        if self.persona.greeting.strip():
            self.store.add_message(chat_id, "assistant", self.persona.greeting.strip(),
                                   meta={"greeting": True})
        self.open_chat(chat_id)
        self.composer.box.setFocus()
        return chat_id

    def open_chat(self, chat_id: int | None) -> None:
        """Show a chat (reading it is cheap: a few queries per message)."""
        if self.busy and chat_id != self.chat_id:
            self.status.setText("Wait for the reply to finish, or press Stop, before opening "
                                "another chat.")
            return
        self.cancel_edit()
        self.chat_id = chat_id
        if chat_id is not None:
            self.host.remember_value("chat", chat_id)
        self.show_chat()
        self.refresh_chats()
        self._refresh_sections()
        self.chat_changed.emit(chat_id)

    def show_chat(self, streaming: int | None = None) -> None:
        """Draw the current chat from the store."""
        store = self.store
        chat = None
        if store is not None and self.chat_id is not None:
            try:
                chat = store.chat(self.chat_id)
            except UserError:
                self.chat_id = None
        if store is None or chat is None:
            self.items = []
            self.title.setText("New chat")
            self.view.show_messages([])
            self._show_context(None, None)
            return
        self.items = load_branch(store, chat.id)
        self.title.setText(chat.title or "New chat")
        if chat.persona:
            try:
                self.persona = store.persona(chat.persona)
            except UserError:  # the built-in one, or a persona deleted since
                self.persona = DEFAULT_PERSONA
        else:
            self.persona = DEFAULT_PERSONA
        self.view.assistant_name = self.persona.name
        self.view.show_messages(self.items, streaming=streaming)
        self.policy.setCurrentIndex(max(self.policy.findData(self._chat_policy(chat)), 0))
        self.model_section.show_template(str(chat.settings.get("template") or ""))
        last = next((m.stats for m in reversed(self.items) if m.stats
                     and m.stats.get("context_total")), None)
        if last is not None and streaming is None:
            self._show_context(int(last["context_used"] or 0), int(last["context_total"]))
        elif streaming is None:
            self._show_context(None, None)

    def _open_hit(self, chat_id: int, message_id: int) -> None:
        if self.store is None or self.busy:
            return
        try:
            self.store.select(message_id)
        except UserError as exc:
            self.status.setText(f"⚠ {exc}")
            return
        self.open_chat(chat_id)

    def _search(self, text: str) -> None:
        if self.store is None:
            return
        if not text.strip():
            self.chat_list.hint.setText("")
            self.refresh_chats()
            return
        self.chat_list.show_hits(self.store.search(text, limit=100), text.strip())

    def _chat_action(self, what: str, chat_id: int) -> None:
        if what == "new":
            self.new_chat()
        elif what == "import":
            path, _ = QFileDialog.getOpenFileName(self, "Import a chat", "",
                                                  "Chats (*.json)")
            if path:
                self.import_chat(Path(path))
        elif not chat_id:
            self.status.setText("Choose a chat first.")
        elif what == "rename":
            chat = self.store.chat(chat_id) if self.store else None
            title, ok = QInputDialog.getText(self, "Rename chat", "Title:",
                                             text=chat.title if chat else "")
            if ok:
                self.rename_chat(chat_id, title)
        elif what == "delete":
            if self.confirm and QMessageBox.question(
                    self, "Delete chat", "Delete this chat and every branch of it? This cannot "
                    "be undone.") != QMessageBox.StandardButton.Yes:
                return
            self.delete_chat(chat_id)
        elif what in ("export_md", "export_json"):
            suffix = ".md" if what == "export_md" else ".json"
            kind = "Markdown (*.md)" if suffix == ".md" else "JSON (*.json)"
            chat = self.store.chat(chat_id) if self.store else None
            name = _safe_name(chat.title if chat else "chat") + suffix
            path, _ = QFileDialog.getSaveFileName(self, "Export chat", name, kind)
            if path:
                self.export_chat(chat_id, Path(path).with_suffix(suffix))

    def rename_chat(self, chat_id: int, title: str) -> None:
        if self.store is None or not title.strip():
            return
        self.store.update_chat(chat_id, title=" ".join(title.split()))
        self.refresh_chats()
        if chat_id == self.chat_id:
            self.title.setText(" ".join(title.split()))

    def delete_chat(self, chat_id: int) -> None:
        if self.store is None:
            return
        if self.busy and chat_id == self.chat_id:
            self.status.setText("Stop the reply before deleting this chat.")
            return
        self.store.delete_chat(chat_id)
        if chat_id == self.chat_id:
            rest = [c.id for c in self.store.chats()]
            self.chat_id = None
            self.open_chat(rest[0] if rest else None)
        else:
            self.refresh_chats()

    def export_chat(self, chat_id: int, out: Path, all_branches: bool = False) -> JobHandle:
        """The export job (Markdown to read, JSON to keep)."""
        handle = self.host.submit("export", ExportParams(chat=chat_id, out=out,
                                                         all_branches=all_branches),
                                  show_plots=False, remember=False)
        handle.finished.connect(lambda rec: self.status.setText(
            f"Saved the chat as {out.name}." if rec.state == "done"
            else "⚠ " + error_words(rec.error)))
        return handle

    def import_chat(self, path: Path) -> JobHandle:
        handle = self.host.submit("import", ImportParams(file=path), show_plots=False,
                                  remember=False)

        def done(rec: Any) -> None:
            if rec.state == "done":
                self.status.setText(f"Imported {path.name}.")
                self.open_chat(int(rec.result))
            else:
                self.status.setText("⚠ " + error_words(rec.error))

        handle.finished.connect(done)
        return handle

    # -- settings of the chat ---------------------------------------------------------------------
    def _chat_policy(self, chat: Any) -> str:
        key = str(chat.settings.get("policy") or "drop_middle")
        return key if key in POLICIES else "drop_middle"

    def _policy_key(self) -> str:
        return str(self.policy.currentData() or "drop_middle")

    def _policy_picked(self, _index: int) -> None:
        if self.store is not None and self.chat_id is not None:
            self.store.update_chat(self.chat_id, settings={"policy": self._policy_key()})
        self._show_context(*self._context_numbers())

    def set_template(self, template: str) -> None:
        """The chat format for this chat (and new ones): "" the model's own, a built-in name or
        a .jinja file."""
        self.form.set_value("template", template)
        self.model_section.show_template(template)
        if self.store is not None and self.chat_id is not None:
            self.store.update_chat(self.chat_id, settings={"template": template})
        self.host.remember("reply", self._remembered())

    def _template_chosen(self, name: str) -> None:
        self.set_template(name)
        self.composer.ask_template(None)
        self.status.setText("")

    def _model_changed(self, path: Path | None) -> None:
        self.host.remember("reply", self._remembered())
        self.composer.ask_template(None)
        if path is None:
            self.model_section.set_template_choices((), self.form.p.template)
            return

        def detect() -> tuple[str, ...] | None:
            from plugins.chat.engine.templates import detect as find

            info = find(path)
            return tuple(info.names) if info is not None else None

        self.bg.run("template", detect, lambda found: self._template_known(path, found))

    def model(self) -> Path | None:
        """The chosen model (the reply form's field, which the picker sets)."""
        model = self.form.p.model
        return Path(model) if model else None

    def use_model(self, path: str | Path) -> None:
        """Choose a model (one just trained, or a test's)."""
        self.form.set_value("model", Path(path))
        self.picker.refresh()
        self._model_changed(Path(path))

    def _template_known(self, path: Path, found: Any) -> None:
        if path != self.model():
            return
        current = self.chat_template()
        if isinstance(found, Failed):  # e.g. a LoRA adapter: its base model has the template
            self.model_section.set_template_choices((), current)
            return
        self.model_section.set_template_choices(found or (), current)
        if found is None and not current:
            self.composer.ask_template(path.stem if path.is_file() else path.name)

    def chat_template(self) -> str:
        if self.store is not None and self.chat_id is not None:
            chat = self.store.chat(self.chat_id)
            if "template" in chat.settings:
                return str(chat.settings["template"] or "")
        return self.form.p.template

    def _remembered(self) -> ReplyParams:
        return dataclasses.replace(self.form.p, message="", chat=None, mode="send", parent=None,
                                   documents=None)

    # -- sending --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._handle is not None

    def send(self) -> JobHandle | None:
        """Send the message box's text (or save the message being edited)."""
        text = self.composer.text()
        if self._editing is not None:
            return self.save_edit(text)
        if not text.strip():
            return None
        if self.busy:
            self.status.setText("Wait for the reply to finish, or press Stop.")
            return None
        if self.store is None:
            self.status.setText("Your chats are still opening…")
            return None
        if self.model() is None:
            self.status.setText("Choose a model first (above the conversation).")
            return None
        if self.chat_id is None and self.new_chat() is None:
            return None
        handle = self._reply(mode="send", message=text)
        if handle is not None:
            self.composer.set_text("")
            self.view.show_messages(self.items, pending_user=text,
                                    waiting="Loading the model…")
        return handle

    def _reply(self, *, mode: str, message: str = "", parent: int | None = None
               ) -> JobHandle | None:
        model = self.model()
        if model is None:
            self.status.setText("Choose a model first (above the conversation).")
            return None
        if self.store is not None and self.chat_id is not None:
            self.store.update_chat(self.chat_id, model=str(model))
        persona = "" if self.persona.name == DEFAULT_PERSONA.name else self.persona.name
        p = self.form.checked(self.status, message=message, chat=self.chat_id, mode=mode,
                              parent=parent, persona=persona, policy="chat", template="")
        if p is None:
            return None
        handle = self.host.submit("reply", p, show_plots=False, remember=False)
        self.host.remember("reply", self._remembered())
        self._handle = handle
        self._text = ""
        if mode == "continue" and parent is not None:
            self._text = next((m.text for m in self.items if m.id == parent), "")
        self._streaming_id = None
        self._last_stats = None
        handle.preview.connect(lambda kind, payload, data, h=handle:
                               self._on_preview(h, kind, payload, data))
        handle.progress.connect(lambda info, h=handle: self._on_progress(h, info))
        handle.finished.connect(lambda rec, h=handle: self._on_finished(h, rec))
        self.composer.set_busy(True)
        self.status.setText("")
        self.context_note.hide()
        return handle

    def _on_progress(self, handle: JobHandle, info: Any) -> None:
        if handle is self._handle and self._streaming_id is None and isinstance(info, dict):
            msg = str(info.get("message") or "")
            if msg.startswith("loading"):
                self.status.setText("Loading the model…")

    def _on_preview(self, handle: JobHandle, kind: str, payload: Any, data: Any) -> None:
        if handle is not self._handle:
            return  # stopped: what is still in flight is not drawn
        if kind == "reply" and isinstance(payload, dict):
            self._streaming_id = int(payload["message_id"])
            self.show_chat(streaming=self._streaming_id)
            self.view.stream(self._text)
            self.status.setText("Writing…")
        elif kind == "text" and self._streaming_id is not None:
            self._text += str(payload)
            self.view.stream(self._text)
        elif kind == "context" and isinstance(payload, dict):
            self._show_context(int(payload.get("used", 0)), int(payload.get("max_context", 0)),
                               available=int(payload.get("available", 0)))
            notes = [str(n) for n in payload.get("notes") or []]
            self.context_note.setText(" ".join(notes))
            self.context_note.setVisible(bool(notes))
        elif kind == "intent" and isinstance(payload, dict):
            self.status.setText(f"Answered with the saved answer “{payload.get('name')}”.")
        elif kind == "stats" and isinstance(payload, dict):
            self._last_stats = payload

    def _on_finished(self, handle: JobHandle, rec: Any) -> None:
        if handle is self._stopped:
            self._stopped = None
            if self._handle is None:
                self.show_chat()
                self.refresh_chats()
            return
        if handle is not self._handle:
            return
        self._handle = None
        self.view.flush()
        self.composer.set_busy(False)
        self.show_chat()
        self.refresh_chats()
        if rec.state == "done" and hasattr(rec.result, "a"):  # compare
            self.compare_view.flush()
            self.status.setText("Both replies are in the chat: ‹ › under the reply switches "
                                "between A and B.")
        elif rec.state == "done":
            outcome = rec.result
            notes = list(getattr(outcome, "notes", ()) or ())
            line = stats_words(outcome.stats) if outcome is not None else ""
            self.status.setText(" ".join([line + "." if line else "", *notes]).strip())
        elif rec.state == "cancelled":
            self.status.setText("Stopped. The reply so far is kept; Continue goes on with it.")
        else:
            error = rec.error or ""
            self.status.setText("⚠ " + error_words(error))
            if NO_TEMPLATE in error:
                model = self.model()
                self.composer.ask_template(model.name if model else "This model")

    def stop(self) -> None:
        """Stop the reply at once: the view stays as it is; the job keeps the text so far."""
        handle = self._handle
        if handle is None:
            return
        handle.cancel()
        self.view.stop_stream()
        self._handle = None
        self._stopped = handle
        self.composer.set_busy(False)
        self.status.setText("Stopped. The reply so far is kept; Continue goes on with it.")

    # -- actions on messages --------------------------------------------------------------------
    def _message_action(self, what: str, mid: int) -> None:
        store = self.store
        if store is None:
            return
        item = next((m for m in self.items if m.id == mid), None)
        if item is None:
            return
        if what == "copy":
            QGuiApplication.clipboard().setText(item.text)
            self.status.setText("Copied.")
            return
        if what in ("like", "dislike"):
            rating = 1 if what == "like" else -1
            self.rate(mid, 0 if item.rating == rating else rating)
            return
        if what == "correct":
            text, ok = QInputDialog.getMultiLineText(
                self, "A better answer",
                "Write the answer you wanted. “Improve this model” learns from it (the "
                "original reply stays as it is):", item.correction or item.text)
            if ok:
                self.rate(mid, item.rating, text)
            return
        if self.busy:
            self.status.setText("Wait for the reply to finish, or press Stop.")
            return
        if what in ("prev", "next"):
            self.switch(mid, -1 if what == "prev" else 1)
        elif what == "edit":
            self.begin_edit(mid)
        elif what == "delete":
            if self.confirm and QMessageBox.question(
                    self, "Delete message", "Delete this message and everything after it on "
                    "this branch?") != QMessageBox.StandardButton.Yes:
                return
            self.delete_message(mid)
        elif what == "regenerate":
            self.regenerate(mid)
        elif what == "continue":
            self.continue_reply(mid)

    def switch(self, mid: int, step: int) -> None:
        """Show the previous (-1) or next (+1) alternative of a message."""
        if self.store is not None:
            self.store.switch(mid, step)
            self.show_chat()

    def regenerate(self, mid: int) -> JobHandle | None:
        """Answer again; the earlier replies stay as alternatives (‹ n / m ›)."""
        handle = self._reply(mode="regenerate", parent=mid)
        if handle is not None:
            shown = [m for m in self.items if m.id != mid]
            self.view.show_messages(shown[:self._index(mid)], waiting="Loading the model…")
        return handle

    def continue_reply(self, mid: int) -> JobHandle | None:
        return self._reply(mode="continue", parent=mid)

    def _index(self, mid: int) -> int:
        return next((i for i, m in enumerate(self.items) if m.id == mid), len(self.items))

    def begin_edit(self, mid: int) -> None:
        item = next((m for m in self.items if m.id == mid), None)
        if item is None:
            return
        self._editing = mid
        who = "your message" if item.role == "user" else "the reply"
        after = (" and answers it again" if item.role == "user" else "")
        self.composer.show_edit(f"Editing {who}. Save keeps the original as an alternative "
                                f"(‹ ›){after}.")
        self.composer.set_text(item.text)
        self.composer.box.setFocus()

    def cancel_edit(self) -> None:
        if self._editing is not None:
            self._editing = None
            self.composer.show_edit(None)
            self.composer.set_text("")

    def save_edit(self, text: str) -> JobHandle | None:
        """The edit becomes a new branch; an edited message of yours is answered again."""
        mid = self._editing
        if mid is None or self.store is None:
            return None
        if not text.strip():
            self.status.setText("The message is empty: write something, or Cancel.")
            return None
        if self.busy:
            self.status.setText("Wait for the reply to finish, or press Stop.")
            return None
        role = self.store.message(mid).role
        new_id = self.store.edit(mid, text)
        self._editing = None
        self.composer.show_edit(None)
        self.composer.set_text("")
        self.show_chat()
        if role == "user":
            handle = self._reply(mode="answer", parent=new_id)
            if handle is not None:
                self.view.show_messages(self.items, waiting="Loading the model…")
            return handle
        return None

    def delete_message(self, mid: int) -> None:
        if self.store is not None:
            self.store.delete_message(mid)
            self.show_chat()
            self.refresh_chats()

    def rate(self, mid: int, rating: int, correction: str | None = None) -> None:
        """Thumbs up (+1), down (-1) or none (0), and an optional better answer."""
        if self.store is None:
            return
        if correction is None:
            fb = self.store.feedback(mid)
            correction = fb.correction if fb else None
        self.store.set_feedback(mid, rating, correction)
        if self._streaming_id == mid and self.busy:
            return
        self.show_chat(streaming=self._streaming_id if self.busy else None)

    # -- context ----------------------------------------------------------------------------------
    def _context_numbers(self) -> tuple[int | None, int | None]:
        return self._ctx_used, self._ctx_total

    def _show_context(self, used: int | None, total: int | None, available: int = 0) -> None:
        self._ctx_used, self._ctx_total = used, total
        policy = POLICIES[self._policy_key()].lower()
        if used is None or not total:
            self.context_bar.setRange(0, 1)
            self.context_bar.setValue(0)
            self.context_bar.setFormat("measured with the next reply")
            return
        self.context_bar.setRange(0, total)
        self.context_bar.setValue(min(used, total))
        room = f" (room for the prompt: {available:,})" if available else ""
        self.context_bar.setFormat(f"{used:,} of {total:,} tokens")
        self.context_bar.setToolTip(f"This chat's last prompt took {used:,} of the model's "
                                    f"{total:,} context tokens{room}; when it is full: "
                                    f"{policy}")

    # -- closing ----------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """The window closes: stop a reply, remember the settings, close the database."""
        self.stop()
        if self.api_section.handle is not None:
            self.api_section.handle.cancel()
        self.host.remember("reply", self._remembered())
        if self.store is not None:
            self.store.close()
            self.store = None


def _model_label(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def _safe_name(title: str) -> str:
    keep = "".join(c if c.isalnum() or c in " -_" else " " for c in title)
    return "-".join(keep.split())[:60] or "chat"
