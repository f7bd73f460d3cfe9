"""The main screen's right column: the conversation's header, its messages, the message
box and the status line; and the turn in flight, from the gate to the saved reply.

A turn is one message and its reply. `send` builds its Job and `start` runs it in a thread
worker (app.ui.inference.run_turn) that touches no widget: it posts TurnMessages to this
pane, and the handlers below own every change they cause:

    GateChecking -> ReadingProgressed... -> GateVerdict (unsafe: stored as blocked, the
        turn ends)
    ModelLoading -> TurnAccepted (both messages stored, the reply's view added)
    PromptReading -> ReadingProgressed... -> StreamChunk... -> TurnFinished (complete, or
        cancelled: kept/discarded; stored with its stop reason and dropped turns)
    TurnFailed, at any point (the reply marked failed, the text back in the message box)

`cancel` asks the worker to stop; it checks between steps, between the chunks of a prompt
being read (the gate's too: what was read stays in the KV cache, so sending again
continues from there) and between tokens. One turn runs at a time (one model, one
llama.cpp context): a message about an ended one is ignored. Its conversation need not be
the one shown (the user may switch away and back while a reply streams): new views are
added only when it is (`showing`), and the screen draws the streaming reply from the Job
when it comes back (`message_view`).

The pane holds the conversation shown (`conversation`, set by the screen); what the screen
must redo after a turn (the conversation list, the header) it is told with
ConversationUpdated. What comes next fits here: another stage of a turn (reading attached
documents, with progress on the reply's view) is one more TurnMessage and handler; another
way to start one (regenerate, edit and resend) builds its Job and calls `start`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Static, TextArea
from textual.worker import Worker, WorkerState, get_current_worker

from app.documents import Document, compose_message, read_document
from app.engine.events import Finished, dropped_turns_note
from app.errors import describe
from app.store import Conversation, Message, Status, StoreError
from app.ui.config import UIConfig
from app.ui.failures import StoreFailed, show_failure, store_call, store_call_or
from app.ui.inference import run_turn
from app.ui.job import Job
from app.ui.keymap import first_key
from app.ui.messages import (
    ConversationUpdated,
    GateChecking,
    GateVerdict,
    ModelLoading,
    PromptReading,
    ReadingProgressed,
    StreamChunk,
    TurnAccepted,
    TurnFailed,
    TurnFinished,
)
from app.ui.screens.choice_dialog import Choice, ChoiceDialog
from app.ui.services import Services
from app.ui.turns import (
    DEFAULT_TITLE,
    Figures,
    auto_title,
    conversation_num_ctx,
    engine_history,
    rough_tokens,
    supports_thinking,
    view_start,
)
from app.ui.widgets.chat_header import ChatHeader
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.message_view import MessageView, blocked_note, cut_off_mark, stats_note
from app.ui.widgets.prompt_input import PromptInput
from app.ui.widgets.status_bar import StatusBar


class ChatPane(Vertical):
    def __init__(self, services: Services, config: UIConfig, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.services = services
        self.config = config
        self.conversation: Conversation | None = None  # shown; the screen chooses it
        self.assistant_name: str | None = None  # the assistant shown; the screen sets it
        self.job: Job | None = None  # the turn in flight
        self.attachments: list[Document] = []  # go with the next message, before its text
        self._estimate_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield ChatHeader(id="chat-header")
        yield ChatView(id="messages")
        attached = Static("", id="attachments")
        attached.display = False
        yield attached
        yield PromptInput(self.config.keymap, id="prompt")
        yield StatusBar(id="status")

    @property
    def header(self) -> ChatHeader:
        return self.query_one(ChatHeader)

    @property
    def chat(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def busy(self) -> bool:
        """A turn is in flight (one at a time)."""
        return self.job is not None

    def message_view(self, message: Message, author: str) -> MessageView:
        """The view of a stored message; the reply streaming right now shows what has come
        so far, and goes on streaming into the new view."""
        job = self.job
        if job is not None and message.id == job.reply_id:
            return MessageView(role="assistant", author=author, content=job.answer,
                               thinking=job.thinking, status="streaming", message_id=message.id,
                               show_thoughts=self.chat.thoughts_shown, streaming=True)
        return MessageView.of(message, author, self.chat.thoughts_shown)

    def showing(self, job: Job) -> bool:
        return self.conversation is not None and self.conversation.id == job.conversation_id

    def is_current_job(self, job: Job) -> bool:
        """A message about another job comes from one that has already ended: ignored."""
        return job is self.job

    def job_view(self, job: Job) -> MessageView | None:
        return self.chat.message(job.reply_id) if job.reply_id is not None else None

    # Starting and stopping

    def send(self, assistant: str, conversation: Conversation, text: str) -> None:
        """Send `text`, after the attached documents' blocks, to `assistant` in
        `conversation`, after its answered turns (a store failure shows its dialog and
        sends nothing)."""
        try:
            history = engine_history(store_call(self, self.services.store.messages,
                                                conversation.id))
        except StoreFailed:
            return
        documents = tuple(self.attachments)
        self.start(Job(conversation.id, assistant, compose_message(text, documents), history,
                       conversation.system_prompt, conversation.parameters,
                       self.think(assistant, conversation), conversation.safety_gate,
                       num_ctx=self.num_ctx(assistant, conversation), typed=text,
                       documents=documents))

    def think(self, assistant: str, conversation: Conversation | None) -> bool | None:
        """Thinking on/off as the conversation says, for templates that can switch it."""
        if conversation is None or not supports_thinking(self.services.profile(assistant)):
            return None
        return conversation.thinking

    def num_ctx(self, assistant: str, conversation: Conversation | None) -> int:
        """The context the conversation runs at (F4, else the config, else the Modelfile)."""
        return conversation_num_ctx(conversation, self.config.num_ctx.get(assistant),
                                    self.services.profile(assistant))

    def start(self, job: Job) -> None:
        self.job = job
        self.status.set_state("starting…", busy=True)
        self.refresh_bindings()
        self.run_job(job)

    @work(thread=True, exclusive=True, group="inference", exit_on_error=False)
    def run_job(self, job: Job) -> None:
        run_turn(job, self.services, self.post_message)

    def cancel(self) -> None:
        """Ask the turn in flight to stop (it ends with TurnFinished, cancelled)."""
        job = self.job
        if job is None or job.cancelled:
            return
        job.cancel.set()
        if job.stage in ("reading", "gate"):  # a chunk being read is finished first
            self.status.set_state("stopping after this part of the prompt…", busy=True)
        else:
            self.status.set_state("stopping…", busy=True)

    def end_turn(self, state: str) -> None:
        self.job = None
        self.status.set_state(state)
        self.refresh_bindings()
        self.schedule_estimate()

    # The worker's messages, in the order they come

    @on(GateChecking)
    def _gate_checking(self, event: GateChecking) -> None:
        if self.is_current_job(event.job):
            event.job.stage = "gate"
            self.status.set_state("checking the message with the intent-safety gate…",
                                  busy=True)

    @on(GateVerdict)
    async def _gate_verdict(self, event: GateVerdict) -> None:
        job, verdict = event.job, event.verdict
        if not self.is_current_job(job) or not verdict.unsafe:
            return
        self.end_turn("blocked by the intent-safety gate")
        try:
            stored = store_call(self, self.services.store.add_message, job.conversation_id,
                                "user", job.text, status="blocked",
                                blocked_probability=float(verdict.prob_unsafe))
        except StoreFailed:
            return
        if self.showing(job):
            await self.chat.add(MessageView(
                role="user", author="You", content=job.text, status="blocked",
                note=blocked_note(verdict.prob_unsafe, verdict.threshold),
                message_id=stored.id))
        self.post_message(ConversationUpdated(job.conversation_id))
        self.notify(f"Blocked: unsafe (probability {verdict.prob_unsafe:.2f}). Your text is "
                    "still in the message box.", severity="warning")

    @on(ModelLoading)
    def _model_loading(self, event: ModelLoading) -> None:
        if self.is_current_job(event.job):
            event.job.stage = "loading"
            self.status.set_state(f"loading {event.job.assistant_name}…", busy=True)

    @on(TurnAccepted)
    async def _turn_accepted(self, event: TurnAccepted) -> None:
        job = event.job
        if not self.is_current_job(job):
            return
        store = self.services.store
        try:
            user = store_call(self, store.add_message, job.conversation_id, "user", job.text)
            job.user_id = user.id
            reply = store_call(self, store.add_message, job.conversation_id, "assistant", "",
                               status="streaming")
            job.reply_id = reply.id
            self.retitle(job)
        except StoreFailed:
            job.discard = True
            job.cancel.set()
            return
        if self.prompt.text == job.typed:
            self.prompt.set_text("")
        if tuple(self.attachments) == job.documents:
            self.set_attachments([])
        if self.showing(job):
            await self.chat.add(MessageView.of(user, "You", self.chat.thoughts_shown))
            await self.chat.add(self.message_view(reply, job.assistant_name))
        self.post_message(ConversationUpdated(job.conversation_id))

    def retitle(self, job: Job) -> None:
        """A conversation still called "New conversation" is named after its first
        message as typed, else its first document's name (StoreFailed)."""
        store = self.services.store
        conversation = store_call(self, store.get_conversation, job.conversation_id)
        if conversation.title in ("", DEFAULT_TITLE):
            conversation = store_call(self, store.rename_conversation, conversation.id,
                                      auto_title(job.typed.strip() or (
                                          job.documents[0].name if job.documents
                                          else job.text)))
        if self.showing(job):
            self.conversation = conversation

    @on(PromptReading)
    def _prompt_reading(self, event: PromptReading) -> None:
        job = event.job
        if not self.is_current_job(job):
            return
        job.stage, job.prompt_tokens = "reading", event.prompt_tokens
        reused = event.prompt_tokens - event.evaluating
        detail = f", {reused:,} reused" if reused > 0 else ""
        if event.restored > 0:
            detail += f" ({event.restored:,} from a saved reading)"
        note = f"reading the prompt: {event.prompt_tokens:,} tokens{detail}…"
        self.status.set_state(note, busy=True)
        view = self.job_view(job)
        if view is not None:
            view.set_note(note)

    @on(ReadingProgressed)
    def _reading_progressed(self, event: ReadingProgressed) -> None:
        """A chunk of the prompt (or of the gate's text) was read: tokens, rate, time left."""
        job = event.job
        if not self.is_current_job(job) or job.cancelled:
            return
        cancel_key = first_key(self.config.keymap, "cancel")
        what = "the intent-safety gate is reading" if job.stage == "gate" else "reading"
        note = f"{what}: {event.progress.describe()}"
        self.status.set_state(f"{note} · {cancel_key} stops", busy=True)
        view = self.job_view(job) if job.stage == "reading" else None
        if view is not None:
            view.set_note(note)

    @on(StreamChunk)
    async def _stream_chunk(self, event: StreamChunk) -> None:
        job = event.job
        if not self.is_current_job(job) or job.discard:
            return
        job.thinking += event.thinking
        job.answer += event.answer
        if job.stage != "generating" and not job.cancelled:
            job.stage = "generating"
            cancel_key = first_key(self.config.keymap, "cancel")
            self.status.set_state(f"generating… {cancel_key} stops", busy=True)
        view = self.job_view(job)
        if view is not None:
            if view.streaming and view.note.startswith("reading"):
                view.set_note("")
            await view.append(event.thinking, event.answer)

    @on(TurnFinished)
    async def _turn_finished(self, event: TurnFinished) -> None:
        job, finished = event.job, event.finished
        if not self.is_current_job(job):
            return
        if job.discard:
            self.end_turn("not saved")
        elif finished is None:
            self.end_turn("stopped before anything was sent")
        elif finished.cancelled:
            await self.cancelled(job, finished)
        else:
            await self.complete(job, finished)

    @on(TurnFailed)
    async def _turn_failed(self, event: TurnFailed) -> None:
        job = event.job
        if not self.is_current_job(job):
            return
        self.end_turn("the last reply failed")
        if job.reply_id is not None and not job.discard:
            note = f"the reply failed: {describe(event.error).line}"
            store_call_or(self, None, self.services.store.update_message, job.reply_id,
                          content=job.answer, thinking=job.thinking or None, status="error")
            view = self.job_view(job)
            if view is not None:
                await view.finish(job.answer, job.thinking, note, "error")
            self.restore_draft(job)
        show_failure(self, event.error, event.title)

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The turn's own errors arrive as TurnFailed; this catches what escaped it."""
        if event.worker.group == "inference" and event.state == WorkerState.ERROR:
            self.end_turn("the last reply failed")
            error = event.worker.error
            if error is not None:
                show_failure(self, error)

    # How a turn ends

    async def complete(self, job: Job, finished: Finished) -> None:
        self.end_turn("ready")
        assert job.assistant is not None and job.reply_id is not None
        answer = job.assistant.finish_answer(finished.answer)
        await self.save_reply(job, finished, answer, "complete")

    async def cancelled(self, job: Job, finished: Finished) -> None:
        """Stopped by the user: nothing came, so nothing is kept; else the config's
        on_cancel says whether the partial reply is kept, discarded, or the user asked."""
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

    async def save_reply(self, job: Job, finished: Finished, answer: str,
                         status: Status) -> None:
        stats = finished.stats
        assert job.reply_id is not None
        try:
            stored = store_call(
                self, self.services.store.update_message, job.reply_id, content=answer,
                thinking=finished.thinking or None, status=status, prompt_ms=stats.prompt_ms,
                generation_ms=stats.generation_ms, prompt_tokens=stats.prompt_tokens,
                completion_tokens=stats.completion_tokens,
                tokens_per_second=stats.tokens_per_second, stop_reason=stats.stop_reason,
                dropped_turns=stats.dropped_turns)
        except StoreFailed:
            return
        view = self.job_view(job)
        prefix = "cancelled: partial reply" if status == "cancelled" else ""
        note = " · ".join(part for part in (prefix, cut_off_mark(finished.cut_off),
                                            stats_note(stored)) if part)
        if view is not None:
            await view.finish(answer, finished.thinking, note, status)
            view.set_class(finished.cut_off is not None, "cut-off")
        if self.showing(job):
            n_ctx = job.num_ctx or self.num_ctx(job.assistant_name, self.conversation)
            self.status.set_figures(Figures.of(stored, n_ctx).describe())
            await self.show_divider(store_call_or(self, [], self.services.store.messages,
                                                  job.conversation_id))

    async def discard(self, job: Job) -> None:
        """Forget the turn: its stored messages go, the text returns to the message box."""
        for message_id in (job.reply_id, job.user_id):
            if message_id is None:
                continue
            store_call_or(self, None, self.services.store.delete_message, message_id)
            view = self.chat.message(message_id)
            if view is not None:
                await view.remove()
        self.restore_draft(job)

    def restore_draft(self, job: Job) -> None:
        """A turn that failed or was discarded gives back what was typed and attached
        (unless the user has started another message meanwhile)."""
        if not self.prompt.text.strip() and not self.attachments:
            self.prompt.set_text(job.typed or ("" if job.documents else job.text))
            self.set_attachments(list(job.documents))

    # The conversation's divider: where the model's view begins

    async def show_divider(self, messages: list[Message]) -> None:
        """A line before the first message the last reply's model saw, when its context
        left earlier ones out (none otherwise, or when that message is not drawn)."""
        await self.chat.remove_children(".divider")
        found = view_start(messages)
        if found is None:
            return
        first, dropped = found
        view = self.chat.message(first)
        if view is not None:
            await self.chat.mount(Static(f"─── {dropped_turns_note(dropped)} ───",
                                         classes="divider", markup=False), before=view)

    # Attached documents

    def attach(self, path: Path) -> None:
        """Read a document in a thread; it goes with the next message (a bad file shows
        the dialog naming it and the problem; what was typed stays)."""
        self.read_attachment(path)

    @work(thread=True, group="attach", exit_on_error=False)
    def read_attachment(self, path: Path) -> None:
        try:
            document = read_document(path)
        except Exception as exc:  # DocumentError, or a bug: the dialog says which
            self.app.call_from_thread(show_failure, self, exc)
            return
        self.app.call_from_thread(self.set_attachments, [*self.attachments, document])

    def set_attachments(self, documents: list[Document]) -> None:
        self.attachments = documents
        bar = self.query_one("#attachments", Static)
        bar.display = bool(documents)
        if documents:
            names = ", ".join(f"📄 {d.name} ({d.chars:,} characters)" for d in documents)
            bar.update(Content.assemble(Content(names), "  ", Content.from_markup(
                "[@click=screen.detach]remove[/]").stylize("dim underline")))
        self.schedule_estimate()

    # The message's size, live in the status line

    @on(TextArea.Changed, "#prompt")
    def _prompt_changed(self) -> None:
        self.schedule_estimate()

    def schedule_estimate(self, delay: float = 0.3) -> None:
        """Count the message being written once typing pauses."""
        if self._estimate_timer is not None:
            self._estimate_timer.stop()
        self._estimate_timer = self.set_timer(delay, self.refresh_estimate)

    def refresh_estimate(self) -> None:
        """The draft's tokens against num_ctx: counted by the model's own tokenizer when it
        is loaded (with the reading time at its measured rate), else roughly ("~")."""
        name, conversation = self.assistant_name, self.conversation
        text = compose_message(self.prompt.text, self.attachments)
        if name is None or self.busy or not text:
            self.status.set_draft("")
            return
        history: list[dict[str, str]] = []
        if conversation is not None:
            # No dialog here: a store that fails says so when the message is sent.
            with contextlib.suppress(StoreError):
                history = engine_history(self.services.store.messages(conversation.id))
        messages = [*history, {"role": "user", "content": text}]
        num_ctx = self.num_ctx(name, conversation)
        profile = self.services.profile(name)
        system = conversation.system_prompt if conversation and conversation.system_prompt \
            is not None else (profile.system or "" if profile else "")
        rough = rough_tokens(system + "".join(m["content"] for m in messages))
        self.status.set_draft(f"message ~{rough:,} of {num_ctx:,} tokens")
        if self.services.is_loaded(name, num_ctx):
            self.estimate_exactly(name, conversation, messages)

    @work(thread=True, exclusive=True, group="estimate", exit_on_error=False)
    def estimate_exactly(self, name: str, conversation: Conversation | None,
                         messages: list[dict[str, str]]) -> None:
        assistant = self.services.loaded
        if assistant is None or assistant.name != name or self.busy:
            return
        estimate = assistant.estimate(
            messages, system=conversation.system_prompt if conversation else None,
            params=conversation.parameters if conversation else None,
            think=self.think(name, conversation))
        # None: a server reads prompts where we cannot count; a cancelled worker's count
        # is of a draft typed over since.
        if estimate is not None and not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.status.set_draft, f"message {estimate.describe()}")
