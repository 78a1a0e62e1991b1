"""The Chat plugin: a local assistant with personas, branching chats, memory, your documents,
and a feedback loop that fine-tunes it.

Light on purpose: importing this module imports neither torch nor Qt (the window lists plugins
before any is opened). Jobs live in :mod:`plugins.chat.jobs`, their parameters in
:mod:`plugins.chat.params`, the engine in :mod:`plugins.chat.engine`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.plugin import JobSpec, Plugin

if TYPE_CHECKING:  # pragma: no cover
    from PySide6.QtWidgets import QWidget

    from studio.host import PanelHost


class ChatPlugin(Plugin):
    id = "chat"
    name = "Chat"
    description = ("A local assistant: chat with your models (Hugging Face folders or GGUF "
                   "files), personas, branching chats, memory and your documents; improve it "
                   "from your feedback, train one from scratch, or serve it to other apps.")
    icon = "icon.svg"
    order = 45
    audit_probe = "plugins.chat.audit:ChatProbe"
    jobs = (
        JobSpec("reply", "plugins.chat.jobs:reply", "Chat reply", lane="interactive"),
        JobSpec("compare", "plugins.chat.jobs:compare", "Compare two models",
                lane="interactive"),
        JobSpec("finetune", "plugins.chat.jobs:finetune", "Improve a model from feedback",
                makes_run=True),
        JobSpec("train", "plugins.chat.jobs:train", "Train a chatbot from scratch",
                makes_run=True),
        JobSpec("serve", "plugins.chat.jobs:serve", "Local chat API", lane="serve"),
        JobSpec("export", "plugins.chat.jobs:export", "Export a chat", lane="interactive"),
        JobSpec("import", "plugins.chat.jobs:import_chat", "Import a chat", lane="interactive"),
        JobSpec("index", "plugins.chat.jobs:index", "Index documents", lane="documents"),
        JobSpec("template", "plugins.chat.jobs:template", "Preview a chat template",
                lane="interactive"),
        JobSpec("convert", "plugins.chat.jobs:convert", "Make a GGUF copy for llama.cpp"),
    )

    def create_panel(self, host: PanelHost) -> QWidget | None:
        from plugins.chat.ui.panel import ChatPanel  # Qt imported only here

        return ChatPanel(host)
