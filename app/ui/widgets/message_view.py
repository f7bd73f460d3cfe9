"""One message of the conversation: who said it, the model's thinking in a collapsible
block, the text, and a line of notes (figures, cancelled, blocked...).

A reply is Markdown; the user's own message is shown as typed (line breaks, runs of
spaces, `**` and backticks are the user's text, not formatting). The header says which
version of the message this is when there are several ("‹ version 2 of 3 ›", each arrow a
link to the neighbour), and a reply's "details" link shows what produced it (its
provenance: model, file, checksum, settings), drawn only when asked for.

A reply being generated is streamed into it with `append` (Markdown.get_stream, fed in
batches), then `finish` renders the full text once more so that code fences come out right.
The full texts stay on the widget, so copying needs no re-render.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Collapsible, Markdown, Static
from textual.widgets._markdown import MarkdownFence, MarkdownStream

from app.documents import DocumentPart, split_message
from app.engine.events import cut_off_reason
from app.store import Message, Provenance
from app.ui.messages import Copied
from app.ui.turns import printable, strip_notice

THINKING = "Thinking"


def _link(label: str, action: str) -> Content:
    return Content.from_markup(f"[@click={action}]$label[/]", label=label).stylize(
        "dim underline")


def stats_note(message: Message) -> str:
    return " · ".join(message.figures(rate_unit="tok/s"))


def blocked_note(probability: float | None, threshold: float | None = None) -> str:
    shown = "" if probability is None else f", probability unsafe {probability:.2f}"
    limit = "" if threshold is None else f" ≥ {threshold:.2f}"
    return f"Blocked by the intent-safety gate: unsafe{shown}{limit}. Not sent."


def message_note(message: Message) -> str:
    """The note line of a stored message."""
    if message.status == "blocked":
        return blocked_note(message.blocked_probability)
    prefix = {"cancelled": "cancelled: partial reply", "error": "the reply failed",
              "streaming": "interrupted before the reply was finished"}.get(message.status, "")
    return " · ".join(part for part in (prefix, cut_off_mark(message.stop_reason),
                                        stats_note(message)) if part)


def cut_off_mark(reason: str | None) -> str:
    """"✂ cut off: ..." for a reply stopped by num_predict or a full context, else ""."""
    words = reason if reason and reason.startswith("cut off") else cut_off_reason(reason)
    return f"✂ {words}" if words else ""


def document_title(part: DocumentPart) -> str:
    return f"📄 {printable(part.name)} · {part.chars:,} characters"


def details_lines(provenance: Provenance) -> Content:
    """The details view: one "label: value" line per fact of the provenance."""
    return Content("\n").join(
        Content.assemble((f"{label}: ", "bold"), printable(value))
        for label, value in provenance.describe())


class MessageView(Vertical):
    def __init__(self, *, role: str, author: str, content: str = "", thinking: str = "",
                 note: str = "", status: str = "complete", message_id: int | None = None,
                 show_thoughts: bool = False, streaming: bool = False,
                 provenance: Provenance | None = None, version: tuple[int, int] | None = None,
                 show_details: bool = False) -> None:
        super().__init__(id=f"msg-{message_id}" if message_id is not None else None,
                         classes=f"message {role} {status}")
        self.role = role
        self.author = author
        self.message_id = message_id
        self.answer_text = content
        self.thinking_text = thinking
        self._note = note
        self._show_thoughts = show_thoughts
        self.streaming = streaming
        self.provenance = provenance
        self.version = version  # (i, n): version i of n, when there are several
        self._show_details = show_details
        self._streams: dict[str, MarkdownStream] = {}
        # A user's message shows its attached documents collapsed, then what was typed.
        self._parts = split_message(content) if role == "user" else []

    @classmethod
    def of(cls, message: Message, author: str, show_thoughts: bool, *,
           version: tuple[int, int] | None = None, show_details: bool = False) -> MessageView:
        view = cls(role=message.role, author=author, content=message.content,
                   thinking=message.thinking or "", note=message_note(message),
                   status=message.status, message_id=message.id, show_thoughts=show_thoughts,
                   provenance=message.provenance, version=version, show_details=show_details)
        view.set_class(cut_off_reason(message.stop_reason) is not None, "cut-off")
        return view

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="header")
        if self.details_shown:
            yield self._details_box()
        if self.thinking_text:  # most messages have none: no widgets for it then
            yield self._thinking_box(self.thinking_text)
        documents = [p for p in self._parts if isinstance(p, DocumentPart)]
        for part in documents:
            yield Collapsible(Static(printable(part.text), classes="document-text",
                                     markup=False),
                              title=document_title(part), collapsed=True, classes="document")
        if self.role == "assistant":
            yield Markdown(printable(self.answer_text), classes="body", open_links=False)
        else:  # as typed: a Content is never parsed as markup or Markdown
            body = self.answer_text if not documents else "\n\n".join(
                p.text for p in self._parts if not isinstance(p, DocumentPart))
            yield Static(Content(printable(body)), classes="body typed")
        note = Static(self._note, classes="note", markup=False)
        note.display = bool(self._note)
        yield note

    @property
    def details_shown(self) -> bool:
        return self._show_details and self.provenance is not None

    def _details_box(self) -> Static:
        assert self.provenance is not None
        return Static(details_lines(self.provenance), classes="details")

    def _thinking_box(self, text: str) -> Collapsible:
        title = THINKING + ("…" if self.streaming else "")
        return Collapsible(Markdown(printable(text), classes="thinking-text", open_links=False),
                           title=title, collapsed=not self._show_thoughts, classes="thinking")

    async def _ensure_thinking_box(self) -> Collapsible:
        boxes = self.query(Collapsible).filter(".thinking")
        if boxes:
            return boxes.first()
        box = self._thinking_box("")
        await self.mount(box, before=self.query_one(".body"))
        return box

    def _header(self) -> Content:
        parts = [Content.styled(self.author, "bold")]
        number = self.message_id
        if number is not None and self.role == "assistant":
            parts.append(_link("copy", f"screen.copy_message({number})"))
            if self.provenance is not None:
                label = "hide details" if self.details_shown else "details"
                parts.append(_link(label, f"screen.toggle_message_details({number})"))
        if number is not None and self.version is not None:
            place, count = self.version
            parts.append(Content.assemble(
                _link("‹", f"screen.show_version({number}, 'previous')"),
                f" version {place} of {count} ",
                _link("›", f"screen.show_version({number}, 'next')")))
        return Content("  ").join(parts)

    async def set_details(self, show: bool) -> None:
        """Show (or hide) what produced this reply, under its header."""
        self._show_details = show
        self.query_one(".header", Static).update(self._header())
        await self.query(".details").remove()
        if self.details_shown:
            await self.mount(self._details_box(), after=self.query_one(".header"))

    async def set_provenance(self, provenance: Provenance | None) -> None:
        """The reply was saved with its provenance: offer (or show) its details."""
        self.provenance = provenance
        await self.set_details(self._show_details)

    @property
    def note(self) -> str:
        return self._note

    @property
    def copy_text(self) -> str:
        """What "copy" puts on the clipboard: the answer as shown."""
        return self.answer_text

    def set_note(self, note: str) -> None:
        widget = self.query_one(".note", Static)
        self._note = note
        widget.update(note)
        widget.display = bool(note)

    def show_thoughts(self, show: bool) -> None:
        self._show_thoughts = show
        for box in self.query(Collapsible).filter(".thinking"):
            box.collapsed = not show

    async def append(self, thinking: str, answer: str) -> None:
        """Stream more text in (a batch of deltas)."""
        if thinking:
            self.thinking_text += thinking
            await self._ensure_thinking_box()
            await self._stream("thinking-text").write(printable(thinking))
        if answer:
            self.answer_text += answer
            await self._stream("body").write(printable(answer))

    def _stream(self, name: str) -> MarkdownStream:
        if name not in self._streams:
            self._streams[name] = Markdown.get_stream(self.query_one(f".{name}", Markdown))
        return self._streams[name]

    async def finish(self, answer: str, thinking: str, note: str, status: str) -> None:
        """The reply is over: render the final texts once, fences and all."""
        for stream in self._streams.values():
            await stream.stop()
        self._streams.clear()
        self.streaming = False
        self.answer_text, self.thinking_text = answer, thinking
        self.set_classes(f"message {self.role} {status}")
        if thinking:
            box = await self._ensure_thinking_box()
            box.title = THINKING
            await box.query_one(".thinking-text", Markdown).update(printable(thinking))
        else:
            await self.query(Collapsible).filter(".thinking").remove()
        await self.query_one(".body", Markdown).update(printable(answer))
        self.set_note(note)

    def code_blocks(self) -> list[str]:
        """The fenced code blocks of the answer, in order."""
        from markdown_it import MarkdownIt

        tokens = MarkdownIt("commonmark").parse(strip_notice(self.answer_text))
        return [token.content.rstrip("\n") for token in tokens
                if token.type in ("fence", "code_block")]

    def on_click(self, event: events.Click) -> None:
        """A click on a code block copies it."""
        node = event.widget
        while node is not None and node is not self:
            if isinstance(node, MarkdownFence):
                self.app.copy_to_clipboard(node.code)
                self.post_message(Copied("code block"))
                event.stop()
                return
            node = node.parent  # type: ignore[assignment]
