"""The conversation: one rich-text view of the chat's active branch, replies as Markdown.

Why one ``QTextBrowser`` and not a widget per message: Qt lays out and scrolls one document
well, a long chat costs one layout rather than hundreds of widgets asking for heights, and the
per-message actions are links in the document (``chat-action:<nonce>:<what>:<id>``; the nonce
is per view, so a link a model writes into its reply can never trigger an action).

Streaming: the reply being written is the last frame of the document; new text replaces that
frame's content (Markdown again, so a code block renders as it grows), paced by a timer so a
fast model does not re-lay-out the view for every token.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Sequence

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QPalette,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextFrame,
    QTextFrameFormat,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

from plugins.chat.ui.transcript import Shown
from plugins.chat.ui.words import citations_words, stats_words

#: actions a message's links can ask for (the panel handles them)
ACTIONS = ("prev", "next", "edit", "delete", "regenerate", "continue", "like", "dislike",
           "correct", "copy")
STREAM_MS = 60  # re-render the streaming reply at most this often
CARET = " ▍"


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t),
                  round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


class ConversationView(QTextBrowser):
    """Shows messages; emits :attr:`action` for the links under them."""

    #: (action, message id): one of :data:`ACTIONS`
    action = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._clicked)
        self.setAccessibleName("Conversation")
        self._nonce = secrets.token_hex(6)
        self.assistant_name = "Assistant"
        self.empty_text = ""
        self.items: list[Shown] = []
        self.streaming_id: int | None = None
        self._stream_frame: QTextFrame | None = None
        self._stream_start = 0
        self._stream_text = ""
        self._shown_text = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(STREAM_MS)
        self._timer.timeout.connect(self._flush)

    # -- what is shown --------------------------------------------------------------------------
    def show_messages(self, items: Sequence[Shown], *, streaming: int | None = None,
                      pending_user: str | None = None, waiting: str | None = None) -> None:
        """Show ``items``. ``streaming``: the id of the reply being written (shown without
        actions, with a caret); ``pending_user``/``waiting``: a message sent but not yet stored
        and the placeholder reply under it (the model is loading)."""
        self._timer.stop()
        at_bottom = self._at_bottom()
        self.items = list(items)
        self.streaming_id = streaming
        self._stream_frame = None
        doc = self.document()
        doc.clear()
        doc.setDocumentMargin(10)
        cursor = QTextCursor(doc)
        if not items and pending_user is None:
            self._empty(cursor)
        for m in items:
            live = m.id == streaming
            self._message(cursor, m, live=live)
        if pending_user is not None:
            self._bubble(cursor, "user", "You", pending_user, markdown=False)
        if waiting is not None:
            self._bubble(cursor, "assistant", self.assistant_name, "", markdown=True,
                         live=True, note=waiting)
        if at_bottom or streaming is not None or pending_user is not None:
            self._scroll_to_end()

    def stream(self, text: str) -> None:
        """The streaming reply's whole text so far (shown within :data:`STREAM_MS`)."""
        self._stream_text = text
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Show the latest streamed text now (tests, and the end of a reply)."""
        self._timer.stop()
        self._flush()

    @property
    def shown_stream_text(self) -> str:
        """The streamed text currently on screen (without the caret)."""
        return self._shown_text

    def stop_stream(self) -> None:
        """Freeze the streaming reply where it is (Stop): nothing more is drawn into it."""
        self._timer.stop()
        self._stream_frame = None

    # -- building -------------------------------------------------------------------------------
    def _colors(self) -> tuple[QColor, QColor, QColor]:
        pal = self.palette()
        base = pal.color(QPalette.ColorRole.Base)
        text = pal.color(QPalette.ColorRole.Text)
        user = _mix(base, pal.color(QPalette.ColorRole.Highlight), 0.16)
        assistant = _mix(base, text, 0.045)
        muted = _mix(base, text, 0.55)
        return user, assistant, muted

    def _empty(self, cursor: QTextCursor) -> None:
        _, _, muted = self._colors()
        cursor.insertHtml(f"<p style='color:{muted.name()}'>{html.escape(self.empty_text)}</p>")

    def _message(self, cursor: QTextCursor, m: Shown, *, live: bool) -> None:
        if m.role == "user":
            who = "You"
        elif m.role == "system":
            who = "Instructions"
        else:
            who = self.assistant_name
            side = m.meta.get("compare")
            if side:
                who += f" · model {side}: {m.meta.get('compare_model', '')}".rstrip(": ")
            elif m.meta.get("intent"):
                who += " · saved answer"
        self._bubble(cursor, m.role, who, m.text, markdown=m.role == "assistant", live=live,
                     item=m)

    def _bubble(self, cursor: QTextCursor, role: str, who: str, text: str, *, markdown: bool,
                live: bool = False, item: Shown | None = None, note: str | None = None) -> None:
        user_bg, assistant_bg, muted = self._colors()
        doc = self.document()
        cursor.setPosition(doc.rootFrame().lastPosition())
        fmt = QTextFrameFormat()
        fmt.setBackground(user_bg if role == "user" else assistant_bg)
        fmt.setPadding(10)
        fmt.setBorder(0)
        fmt.setTopMargin(4)
        fmt.setBottomMargin(8)
        if role == "user":
            fmt.setLeftMargin(60)
        else:
            fmt.setRightMargin(30)
        frame = cursor.insertFrame(fmt)
        nav = ""
        if item is not None and item.count > 1 and not live:
            nav = (f"&nbsp;&nbsp;{self._link('prev', item.id, '‹')} "
                   f"{item.position} / {item.count} {self._link('next', item.id, '›')}")
        cursor.insertHtml(f"<b>{html.escape(who)}</b>{nav}")
        cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        start = cursor.position()
        if live:
            self._stream_frame = frame
            self._stream_start = start
            self._shown_text = text
            if note and not text:
                cursor.insertHtml(f"<i style='color:{muted.name()}'>{html.escape(note)}</i>")
            else:
                self._insert_content(cursor, text + CARET, markdown)
            return
        if text:
            self._insert_content(cursor, text, markdown)
        else:
            cursor.insertHtml(f"<i style='color:{muted.name()}'>(empty)</i>")
        if item is not None:
            self._footer(cursor, item, muted)

    def _insert_content(self, cursor: QTextCursor, text: str, markdown: bool) -> None:
        begin = cursor.position()
        if markdown:
            cursor.insertMarkdown(text, QTextDocument.MarkdownFeature.MarkdownDialectGitHub)
        else:
            cursor.insertText(text)
        self._shade_code(begin, cursor.position())

    def _shade_code(self, begin: int, end: int) -> None:
        """Give fenced and indented code blocks a background (Qt's Markdown reader only sets
        a fixed-pitch font)."""
        _, bg, _ = self._colors()
        code_bg = _mix(bg, self.palette().color(QPalette.ColorRole.Text), 0.07)
        block = self.document().findBlock(begin)
        while block.isValid() and block.position() <= end:
            bf = block.blockFormat()
            if bf.hasProperty(QTextFormat.Property.BlockCodeFence) or \
                    bf.hasProperty(QTextFormat.Property.BlockCodeLanguage):
                c = QTextCursor(block)
                bf.setBackground(code_bg)
                c.setBlockFormat(bf)
            block = block.next()

    def _footer(self, cursor: QTextCursor, m: Shown, muted: QColor) -> None:
        lines: list[str] = []
        if m.role == "assistant":
            info = []
            if not m.complete:
                info.append("<b>unfinished</b>")
            if m.stats:
                words = stats_words(m.stats)
                if words:
                    info.append(html.escape(words))
            if info:
                lines.append(" · ".join(info))
            cites = citations_words(m.meta.get("citations"))
            if cites:
                lines.append(html.escape(cites))
            if m.correction:
                lines.append("Your better answer: " + html.escape(_excerpt(m.correction)))
        acts = [self._link("copy", m.id, "Copy"), self._link("edit", m.id, "Edit")]
        if m.role == "assistant" and not m.meta.get("greeting"):
            acts.append(self._link("regenerate", m.id, "Regenerate"))
            if m.can_continue:
                acts.append(self._link("continue", m.id, "Continue"))
            like = "<b>Liked ✓</b>" if m.rating > 0 else "Like"
            dislike = "<b>Disliked ✓</b>" if m.rating < 0 else "Dislike"
            acts += [self._link("like", m.id, like), self._link("dislike", m.id, dislike),
                     self._link("correct", m.id, "Better answer…")]
        acts.append(self._link("delete", m.id, "Delete"))
        lines.append(" &nbsp;·&nbsp; ".join(acts))
        cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        cursor.insertHtml(f"<span style='color:{muted.name()}; font-size:small'>"
                          + "<br>".join(lines) + "</span>")

    def _link(self, what: str, mid: int, label: str) -> str:
        return f"<a href='chat-action:{self._nonce}:{what}:{mid}'>{label}</a>"

    # -- streaming ------------------------------------------------------------------------------
    def _flush(self) -> None:
        frame = self._stream_frame
        if frame is None:
            return
        at_bottom = self._at_bottom()
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._stream_start)
        cursor.setPosition(frame.lastPosition(), QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.setBlockFormat(QTextBlockFormat())
        cursor.setCharFormat(QTextCharFormat())
        self._insert_content(cursor, self._stream_text + CARET, True)
        self._shown_text = self._stream_text
        if at_bottom:
            self._scroll_to_end()

    # -- helpers --------------------------------------------------------------------------------
    def _at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 40

    def _scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _clicked(self, url: QUrl) -> None:
        parts = url.toString().split(":")
        if len(parts) == 4 and parts[0] == "chat-action" and parts[1] == self._nonce \
                and parts[2] in ACTIONS and parts[3].isdigit():
            self.action.emit(parts[2], int(parts[3]))

    def link_for(self, what: str, mid: int) -> QUrl:
        """The URL of an action link (tests click it)."""
        return QUrl(f"chat-action:{self._nonce}:{what}:{mid}")


def _excerpt(text: str, n: int = 140) -> str:
    line = " ".join(text.split())
    return line if len(line) <= n else line[:n - 1].rstrip() + "…"
