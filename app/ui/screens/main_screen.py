"""The main screen: assistants and their conversations on the left, the conversation on the
right, the message box under it.

The screen owns every state change. The inference worker (app.ui.inference) only posts
messages; the handlers below store the turn, stream it into its MessageView and update the
status line. One turn runs at a time (one model, one llama.cpp context).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from app.assistants.catalog import GATE_MODEL, spec_of
from app.assistants.profiles import AssistantProfile
from app.engine.events import Finished
from app.errors import DISK_FULL, describe
from app.store import Conversation, Message, StoreError
from app.ui import exporting
from app.ui.bindings import bindings
from app.ui.config import UIConfig
from app.ui.inference import run_turn
from app.ui.job import Job
from app.ui.keymap import first_key
from app.ui.messages import (
    AssistantChosen,
    ConversationChosen,
    Copied,
    GateChecking,
    GateVerdict,
    ModelLoading,
    PromptReading,
    PromptSubmitted,
    StreamChunk,
    TurnAccepted,
    TurnFailed,
    TurnFinished,
)
from app.ui.screens.case_form import CaseForm
from app.ui.screens.choice_dialog import Choice, ChoiceDialog, confirm
from app.ui.screens.error_dialog import ErrorDialog
from app.ui.screens.frame_form import FrameForm
from app.ui.screens.model_manager import ModelManager
from app.ui.screens.options_editor import OptionsEditor, OptionsResult
from app.ui.screens.prompt_form import FormResult
from app.ui.screens.text_dialog import TextDialog
from app.ui.services import AssistantEntry, Services
from app.ui.turns import (
    DEFAULT_TITLE,
    Figures,
    auto_title,
    default_thinking,
    engine_history,
    last_reply,
    printable,
    supports_thinking,
)
from app.ui.widgets.assistant_picker import AssistantPicker
from app.ui.widgets.chat_header import ChatHeader
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.conversation_list import ConversationList
from app.ui.widgets.message_view import MessageView, blocked_note, stats_note
from app.ui.widgets.prompt_input import PromptInput
from app.ui.widgets.status_bar import StatusBar

T = TypeVar("T")
# The screens of the catalog's structured forms.
FORM_SCREENS: dict[str, type[FrameForm] | type[CaseForm]] = {
    "moral_frames": FrameForm, "sentencing_case": CaseForm}
# Messages drawn when a conversation opens (a long one would delay the first paint and
# every switch); the earlier ones are one key or click away.
WINDOW = 8
LAST_ASSISTANT = "ui.assistant"  # store setting: the assistant shown at the last start


class StoreFailed(Exception):
    """A store call failed and its dialog is shown: the handler stops there."""


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = bindings("main")

    def __init__(self, services: Services, config: UIConfig) -> None:
        super().__init__(id="main")
        self.services = services
        self.config = config
        self.entry: AssistantEntry | None = None
        self.conversation: Conversation | None = None
        self.job: Job | None = None
        self.show_thoughts = False
        self.full_history = False  # the conversation's earlier messages are drawn too

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield AssistantPicker(id="assistants")
                yield ConversationList(id="conversation-list")
            with Vertical(id="chat"):
                yield ChatHeader(id="chat-header")
                yield ChatView(id="messages")
                yield PromptInput(self.config.keymap, id="prompt")
                yield StatusBar(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        entries = self.services.assistants()
        name = self._first_assistant(entries)
        self.query_one(AssistantPicker).show(entries, name)
        await self.choose_assistant(name)
        self.prompt.focus()

    def _first_assistant(self, entries: list[AssistantEntry]) -> str:
        names = [e.name for e in entries]
        last = self._store_or(None, self.services.store.get_setting, LAST_ASSISTANT)
        if last in names:
            return str(last)
        return next((e.name for e in entries if e.installed), names[0])

    # Widgets and small helpers

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def chat(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def profile(self) -> AssistantProfile | None:
        return self.services.profile(self.entry.name) if self.entry else None

    def key(self, action_id: str) -> str:
        return first_key(self.config.keymap, action_id)

    def show_error(self, title: str, message: str) -> None:
        self.app.push_screen(ErrorDialog(title, message))

    def show_failure(self, exc: BaseException, title: str | None = None) -> None:
        """The dialog for a failure, as app.errors describes it."""
        failure = describe(exc)
        self.show_error(title or failure.title, failure.line)

    def _store(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store call; on failure its dialog is shown and StoreFailed raised."""
        try:
            return call(*args, **kwargs)
        except StoreError as exc:
            self.show_failure(exc)
            raise StoreFailed from exc

    def _store_or(self, default: T, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return self._store(call, *args, **kwargs)
        except StoreFailed:
            return default

    # Assistants and conversations

    @on(AssistantChosen)
    async def _assistant_chosen(self, event: AssistantChosen) -> None:
        if self.entry is None or event.name != self.entry.name:
            await self.choose_assistant(event.name)

    async def choose_assistant(self, name: str) -> None:
        self.entry = next(e for e in self.services.assistants() if e.name == name)
        self._store_or(None, self.services.store.set_setting, LAST_ASSISTANT, name)
        conversations = await self.refresh_conversations(None)
        await self.open_conversation(conversations[0].id if conversations else None)

    async def refresh_conversations(self, selected: int | None) -> list[Conversation]:
        listing = self.query_one(ConversationList)
        assert self.entry is not None
        found = self._store_or([], self.services.store.list_conversations, self.entry.name,
                               listing.search_text or None)
        await listing.show(found, selected)
        return found

    @on(ConversationChosen)
    async def _conversation_chosen(self, event: ConversationChosen) -> None:
        current = self.conversation.id if self.conversation else None
        if event.conversation_id != current:
            await self.open_conversation(event.conversation_id)

    async def open_conversation(self, conversation_id: int | None) -> None:
        conversation = None
        if conversation_id is not None:
            conversation = self._store_or(None, self.services.store.get_conversation,
                                          conversation_id)
        self.conversation = conversation
        self.full_history = False
        await self.render_conversation()

    async def render_conversation(self) -> None:
        self.update_header()
        n_ctx = self.profile.n_ctx if self.profile else 4096
        if self.conversation is None:
            await self.chat.show_hint(self.hint())
            self.status.set_figures(Figures(n_ctx=n_ctx).describe())
            return
        messages = self._store_or([], self.services.store.messages, self.conversation.id)
        shown = messages if self.full_history else messages[-WINDOW:]
        await self.chat.show([self.message_view(m) for m in shown],
                             earlier=len(messages) - len(shown))
        self.status.set_figures(Figures.of(last_reply(messages), n_ctx).describe())

    def message_view(self, message: Message) -> MessageView:
        author = "You" if message.role == "user" else self.entry.name if self.entry else ""
        job = self.job
        if job is not None and message.id == job.reply_id:  # the reply streaming right now
            return MessageView(role="assistant", author=author, content=job.answer,
                               thinking=job.thinking, status="streaming", message_id=message.id,
                               show_thoughts=self.show_thoughts, streaming=True)
        return MessageView.of(message, author, self.show_thoughts)

    def update_header(self) -> None:
        self.query_one(ChatHeader).show(self.entry, self.conversation,
                                        can_think=supports_thinking(self.profile))
        title = printable(self.conversation.title) if self.conversation else ""
        # Content, not a str: a str would be parsed as markup ("[x" in a title would fail).
        self.query_one("#chat").border_title = Content(title) if title else None

    def hint(self) -> str:
        entry = self.entry
        if entry is None or not entry.installed:
            name = entry.name if entry else "this assistant"
            return (f"**{name} is not installed.**\n\n"
                    "- `amicus demo` builds tiny demo models for every assistant, offline "
                    "(meaningless text, but every screen works)\n"
                    f"- `amicus convert {name}` converts the real checkpoint\n"
                    "- `amicus models import-ollama NAME` installs one from a local Ollama\n\n"
                    f"{self.key('models')} shows the installed models.")
        lines = [f"**{entry.name}**: type a message and press {self.key('submit')} "
                 f"({self.key('newline')} starts a new line)."]
        if self.form() is not None:
            lines.append(f"{self.key('open_form')} opens the structured form.")
        if entry.demo:
            lines.append("This is a **demo model**: random weights, meaningless text.")
        lines.append(f"{self.key('palette')} lists every command.")
        return "\n\n".join(lines)

    def form(self) -> type[FrameForm] | type[CaseForm] | None:
        """The structured form of the assistant shown (the catalog says which)."""
        spec = spec_of(self.entry.name) if self.entry else None
        return FORM_SCREENS[spec.form] if spec is not None and spec.form else None

    def ensure_conversation(self) -> Conversation:
        """The conversation shown, created first if there is none (StoreFailed)."""
        if self.conversation is not None:
            return self.conversation
        assert self.entry is not None
        self.conversation = self._store(
            self.services.store.create_conversation, self.entry.name, title=DEFAULT_TITLE,
            thinking=default_thinking(self.entry.model))
        return self.conversation

    def set_options(self, **options: Any) -> None:
        conversation = self.ensure_conversation()
        self.conversation = self._store(self.services.store.set_conversation_options,
                                        conversation.id, **options)
        self.update_header()

    # Sending a message

    @on(PromptSubmitted)
    async def _submitted(self, event: PromptSubmitted) -> None:
        await self.send(event.text)

    async def action_send_prompt(self) -> None:
        await self.send(self.prompt.text)

    async def send(self, text: str) -> None:
        if not text.strip():
            return
        if self.job is not None:
            self.notify(f"A reply is being generated: wait, or press {self.key('cancel')} to "
                        "stop it.", severity="warning")
            return
        entry = self.entry
        if entry is None or not entry.installed:
            self.show_error("No model for this assistant", self.hint().replace("**", ""))
            return
        try:
            job = self.new_job(text)
        except StoreFailed:
            return
        self.job = job
        self.status.set_state("starting…", busy=True)
        self.refresh_bindings()
        self.start_turn(job)

    def new_job(self, text: str) -> Job:
        assert self.entry is not None
        conversation = self.ensure_conversation()
        history = engine_history(self._store(self.services.store.messages, conversation.id))
        think = conversation.thinking if supports_thinking(self.profile) else None
        return Job(conversation.id, self.entry.name, text, history,
                   conversation.system_prompt, conversation.parameters, think,
                   conversation.safety_gate)

    @work(thread=True, exclusive=True, group="inference", exit_on_error=False)
    def start_turn(self, job: Job) -> None:
        run_turn(job, self.services, self.post_message)

    def is_current(self, job: Job) -> bool:
        return job is self.job

    def job_view(self, job: Job) -> MessageView | None:
        return self.chat.message(job.reply_id) if job.reply_id is not None else None

    @on(GateChecking)
    def _gate_checking(self, event: GateChecking) -> None:
        if self.is_current(event.job):
            event.job.stage = "gate"
            self.status.set_state("checking the message with the intent-safety gate…",
                                  busy=True)

    @on(GateVerdict)
    async def _gate_verdict(self, event: GateVerdict) -> None:
        job, verdict = event.job, event.verdict
        if not self.is_current(job) or not verdict.unsafe:
            return
        self.end_turn("blocked by the intent-safety gate")
        try:
            stored = self._store(self.services.store.add_message, job.conversation_id, "user",
                                 job.text, status="blocked",
                                 blocked_probability=float(verdict.prob_unsafe))
        except StoreFailed:
            return
        if self.showing(job):
            await self.chat.add(MessageView(
                role="user", author="You", content=job.text, status="blocked",
                note=blocked_note(verdict.prob_unsafe, verdict.threshold),
                message_id=stored.id))
        await self.refresh_conversations(job.conversation_id)
        self.notify(f"Blocked: unsafe (probability {verdict.prob_unsafe:.2f}). Your text is "
                    "still in the message box.", severity="warning")

    def showing(self, job: Job) -> bool:
        return self.conversation is not None and self.conversation.id == job.conversation_id

    @on(ModelLoading)
    def _model_loading(self, event: ModelLoading) -> None:
        if self.is_current(event.job):
            event.job.stage = "loading"
            self.status.set_state(f"loading {event.job.assistant_name}…", busy=True)

    @on(TurnAccepted)
    async def _turn_accepted(self, event: TurnAccepted) -> None:
        job = event.job
        if not self.is_current(job):
            return
        try:
            user = self._store(self.services.store.add_message, job.conversation_id, "user",
                               job.text)
            job.user_id = user.id
            reply = self._store(self.services.store.add_message, job.conversation_id,
                                "assistant", "", status="streaming")
            job.reply_id = reply.id
            self.retitle(job)
        except StoreFailed:
            job.discard = True
            job.cancel.set()
            return
        if self.prompt.text == job.text:
            self.prompt.set_text("")
        if self.showing(job):
            await self.chat.add(MessageView.of(user, "You", self.show_thoughts))
            await self.chat.add(self.message_view(reply))
        await self.refresh_conversations(job.conversation_id)

    def retitle(self, job: Job) -> None:
        conversation = self._store(self.services.store.get_conversation, job.conversation_id)
        if conversation.title in ("", DEFAULT_TITLE):
            conversation = self._store(self.services.store.rename_conversation,
                                       conversation.id, auto_title(job.text))
        if self.showing(job):
            self.conversation = conversation
            self.update_header()

    @on(PromptReading)
    def _prompt_reading(self, event: PromptReading) -> None:
        job = event.job
        if not self.is_current(job):
            return
        job.stage, job.prompt_tokens = "reading", event.prompt_tokens
        reused = event.prompt_tokens - event.evaluating
        detail = f", {reused} reused" if reused > 0 else ""
        note = f"reading the prompt: {event.prompt_tokens} tokens{detail}…"
        self.status.set_state(note, busy=True)
        view = self.job_view(job)
        if view is not None:
            view.set_note(note)

    @on(StreamChunk)
    async def _stream_chunk(self, event: StreamChunk) -> None:
        job = event.job
        if not self.is_current(job) or job.discard:
            return
        job.thinking += event.thinking
        job.answer += event.answer
        if job.stage != "generating" and not job.cancelled:
            job.stage = "generating"
            self.status.set_state(f"generating… {self.key('cancel')} stops", busy=True)
        view = self.job_view(job)
        if view is not None:
            if view.streaming and view.note.startswith("reading"):
                view.set_note("")
            await view.append(event.thinking, event.answer)

    @on(TurnFinished)
    async def _turn_finished(self, event: TurnFinished) -> None:
        job, finished = event.job, event.finished
        if not self.is_current(job):
            return
        if job.discard:
            self.end_turn("not saved")
        elif finished is None:
            self.end_turn("stopped before anything was sent")
        elif finished.cancelled:
            await self.cancelled(job, finished)
        else:
            await self.complete(job, finished)

    async def complete(self, job: Job, finished: Finished) -> None:
        self.end_turn("ready")
        assert job.assistant is not None and job.reply_id is not None
        answer = job.assistant.finish_answer(finished.answer)
        await self.save_reply(job, finished, answer, "complete")

    async def save_reply(self, job: Job, finished: Finished, answer: str, status: str) -> None:
        stats = finished.stats
        assert job.reply_id is not None
        try:
            stored = self._store(
                self.services.store.update_message, job.reply_id, content=answer,
                thinking=finished.thinking or None, status=status, prompt_ms=stats.prompt_ms,
                generation_ms=stats.generation_ms, prompt_tokens=stats.prompt_tokens,
                completion_tokens=stats.completion_tokens,
                tokens_per_second=stats.tokens_per_second)
        except StoreFailed:
            return
        view = self.job_view(job)
        prefix = "cancelled: partial reply · " if status == "cancelled" else ""
        if view is not None:
            await view.finish(answer, finished.thinking, prefix + stats_note(stored), status)
        if self.showing(job):
            n_ctx = self.profile.n_ctx if self.profile else 4096
            self.status.set_figures(Figures.of(stored, n_ctx).describe())

    async def cancelled(self, job: Job, finished: Finished) -> None:
        self.end_turn("stopped")
        if not (finished.answer.strip() or finished.thinking.strip()):
            await self.discard(job)
            return
        policy = self.config.on_cancel
        if policy == "ask":
            choices = [Choice("keep", "Keep it", "k", "primary"),
                       Choice("discard", "Discard it", "d", "error")]
            dialog = ChoiceDialog("Reply stopped", "Keep the partial reply, or discard it and "
                                  "get your message back in the message box?", choices,
                                  escape_value="keep")

            async def decided(choice: str | None) -> None:
                await self.keep_or_discard(job, finished, choice or "keep")

            self.app.push_screen(dialog, decided)
        else:
            await self.keep_or_discard(job, finished, policy)

    async def keep_or_discard(self, job: Job, finished: Finished, choice: str) -> None:
        if choice == "discard":
            await self.discard(job)
            return
        assert job.assistant is not None
        answer = job.assistant.finish_answer(finished.answer) if finished.answer.strip() \
            else ""
        await self.save_reply(job, finished, answer, "cancelled")

    async def discard(self, job: Job) -> None:
        """Forget the turn: its stored messages go, the text returns to the message box."""
        for message_id in (job.reply_id, job.user_id):
            if message_id is None:
                continue
            self._store_or(None, self.services.store.delete_message, message_id)
            view = self.chat.message(message_id)
            if view is not None:
                await view.remove()
        if not self.prompt.text.strip():
            self.prompt.set_text(job.text)

    @on(TurnFailed)
    async def _turn_failed(self, event: TurnFailed) -> None:
        job = event.job
        if not self.is_current(job):
            return
        self.end_turn("the last reply failed")
        if job.reply_id is not None and not job.discard:
            note = f"the reply failed: {describe(event.error).line}"
            self._store_or(None, self.services.store.update_message, job.reply_id,
                           content=job.answer, thinking=job.thinking or None, status="error")
            view = self.job_view(job)
            if view is not None:
                await view.finish(job.answer, job.thinking, note, "error")
            if not self.prompt.text.strip():
                self.prompt.set_text(job.text)
        self.show_failure(event.error, event.title)

    def end_turn(self, state: str) -> None:
        self.job = None
        self.status.set_state(state)
        self.refresh_bindings()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The turn's own errors arrive as TurnFailed; this catches what escaped it."""
        if event.worker.group == "inference" and event.state == WorkerState.ERROR:
            self.end_turn("the last reply failed")
            error = event.worker.error
            if error is not None:
                self.show_failure(error)

    # Actions (see app.ui.keymap for their keys)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.job is not None  # the footer shows "Stop" only while generating
        return True

    def action_cancel(self) -> None:
        job = self.job
        if job is None or job.cancelled:
            return
        job.cancel.set()
        if job.stage == "reading":  # prefill cannot be interrupted
            self.status.set_state("stopping once the prompt is read…", busy=True)
        else:
            self.status.set_state("stopping…", busy=True)

    async def action_new_conversation(self) -> None:
        self.conversation = None
        await self.refresh_conversations(None)
        await self.render_conversation()
        self.prompt.focus()

    def action_rename_conversation(self) -> None:
        conversation = self.conversation
        if conversation is None:
            self.notify("No conversation to rename yet.")
            return

        async def renamed(title: str | None) -> None:
            if title:
                self.conversation = self._store_or(
                    conversation, self.services.store.rename_conversation, conversation.id,
                    " ".join(title.split()))
                self.update_header()
                await self.refresh_conversations(conversation.id)

        self.app.push_screen(TextDialog("Rename the conversation", conversation.title,
                                        ok="Rename"), renamed)

    def action_delete_conversation(self) -> None:
        conversation = self.conversation
        if conversation is None:
            self.notify("No conversation to delete.")
            return
        if self.job is not None and self.job.conversation_id == conversation.id:
            self.notify("Stop the reply first.", severity="warning")
            return

        async def decided(choice: str | None) -> None:
            if choice == "yes":
                self._store_or(None, self.services.store.delete_conversation,
                               conversation.id)
                found = await self.refresh_conversations(None)
                await self.open_conversation(found[0].id if found else None)

        self.app.push_screen(confirm("Delete the conversation?",
                                     f"“{conversation.title}” and its messages will be "
                                     "erased from this computer."), decided)

    def action_search(self) -> None:
        self.query_one(ConversationList).focus_search()

    @on(Input.Changed, "#search")
    async def _search_changed(self) -> None:
        await self.refresh_conversations(self.conversation.id if self.conversation else None)

    def action_focus_prompt(self) -> None:
        self.prompt.focus()

    def action_toggle_thinking(self) -> None:
        if not supports_thinking(self.profile):
            name = self.entry.name if self.entry else "This assistant"
            self.notify(f"{name}'s model cannot switch thinking on or off.")
            return
        current = self.conversation.thinking if self.conversation else default_thinking(
            self.entry.model if self.entry else None)
        try:
            self.set_options(thinking=not current)
        except StoreFailed:
            return
        self.notify(f"Thinking {'on' if not current else 'off'} for this conversation.")

    def action_toggle_gate(self) -> None:
        current = self.conversation.safety_gate if self.conversation else False
        try:
            self.set_options(safety_gate=not current)
        except StoreFailed:
            return
        if not current and self.services.model(GATE_MODEL) is None:
            self.notify("The intent-safety model is not installed: messages cannot be sent "
                        "while the gate is on (amicus demo, or amicus convert intent-safety).",
                        severity="warning", timeout=8)
        else:
            self.notify(f"Intent-safety gate {'on' if not current else 'off'}.")

    def action_toggle_thoughts(self) -> None:
        self.show_thoughts = not self.show_thoughts
        for view in self.chat.messages():
            view.show_thoughts(self.show_thoughts)

    def action_edit_options(self) -> None:
        try:
            conversation = self.ensure_conversation()
        except StoreFailed:
            return

        async def edited(result: OptionsResult | None) -> None:
            if result is None:
                return
            try:
                self.set_options(system_prompt=result.system_prompt,
                                 parameters=result.parameters)
            except StoreFailed:
                return
            await self.refresh_conversations(conversation.id)
            self.notify("Saved for this conversation.")

        self.app.push_screen(OptionsEditor(conversation, self.profile), edited)

    def action_open_form(self) -> None:
        form = self.form()
        if form is None:
            self.notify("Structured forms: moral-audit (four frames) and sentencing (the case).")
            return

        async def filled(result: FormResult | None) -> None:
            if result is None:
                return
            if result.how == "send":
                await self.send(result.text)
            else:
                self.prompt.set_text(result.text)
                self.prompt.focus()

        self.app.push_screen(form(), filled)

    def action_export(self) -> None:
        conversation = self.conversation
        if conversation is None:
            self.notify("Nothing to export yet.")
            return
        suggested = exporting.free_path(self.config.exports() / exporting.filename(
            conversation))

        def chosen(path: str | None) -> None:
            if path:
                self.export_to(conversation, path)

        self.app.push_screen(TextDialog("Export to Markdown", str(suggested), ok="Export"),
                             chosen)

    def export_to(self, conversation: Conversation, path: str) -> None:
        try:
            text = self._store(self.services.store.export_markdown, conversation.id)
        except StoreFailed:
            return
        try:
            written = exporting.write(path, text)
        except OSError as exc:
            self.show_failure(exc, title=None if exc.errno in DISK_FULL
                              else "The conversation could not be exported")
            return
        self.notify(f"Exported to {written}", title="Export", markup=False)

    def last_reply_view(self) -> MessageView | None:
        replies = [v for v in self.chat.messages() if v.role == "assistant"]
        return replies[-1] if replies else None

    def action_copy_reply(self) -> None:
        view = self.last_reply_view()
        if view is None or not view.copy_text:
            self.notify("No reply to copy yet.")
            return
        self.app.copy_to_clipboard(view.copy_text)
        self.post_message(Copied("reply"))

    def action_copy_code(self) -> None:
        view = self.last_reply_view()
        blocks = view.code_blocks() if view is not None else []
        if not blocks:
            self.notify("The last reply has no code block.")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.post_message(Copied("code block"))

    def action_copy_message(self, message_id: int) -> None:
        view = self.chat.message(message_id)
        if view is not None:
            self.app.copy_to_clipboard(view.copy_text)
            self.post_message(Copied("message"))

    @on(Copied)
    def _copied(self, event: Copied) -> None:
        self.notify(f"Copied the {event.what} to the clipboard.")

    def action_models(self) -> None:
        async def back(_: None) -> None:  # models may have been reloaded meanwhile
            entries = self.services.assistants()
            name = self.entry.name if self.entry else None
            self.entry = next((e for e in entries if e.name == name), self.entry)
            self.query_one(AssistantPicker).show(entries, name)
            self.update_header()

        self.app.push_screen(ModelManager(self.services), back)

    async def action_show_earlier(self) -> None:
        if self.conversation is not None and not self.full_history:
            self.full_history = True
            await self.render_conversation()

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display
