"""The main screen's right column: the conversation's header, a banner when it cannot be
changed, its messages, the message box and the status line; and the turn in flight, from
the gate to the saved reply with its provenance.

A turn is one message and its reply. `send` builds its Job and `start` runs it in a thread
worker (app.ui.inference.run_turn) that touches no widget: it posts TurnMessages to this
pane, and the handlers below own every change they cause:

    GateChecking -> ReadingProgressed... -> GateVerdict (unsafe: stored as blocked, the
        turn ends)
    ModelLoading -> TurnAccepted (the messages stored, their views added)
    PromptReading -> ReadingProgressed... -> StreamChunk... -> TurnFinished (complete, or
        cancelled: kept/discarded; stored with its stop reason and dropped turns)
    TurnFailed, at any point (the reply marked failed, the text back in the message box;
        a model whose verification FAILED: the dialog, and the turn again if asked)

`cancel` asks the worker to stop; it checks between steps, between the chunks of a prompt
being read (the gate's too: what was read stays in the KV cache, so sending again
continues from there) and between tokens. One turn runs at a time (one model, one
llama.cpp context): a message about an ended one is ignored. Its conversation need not be
the one shown (the user may switch away and back while a reply streams): new views are
added only when it is (`showing`), and the screen draws the streaming reply from the Job
when it comes back (`message_view`).

Three ways start a turn, each building its Job and calling `start`: `send` (a new message),
`regenerate` (a new version of the last reply) and the edit of the last message (`edit_last`
puts it in the message box; `send` then makes it a new version of that message). The store
keeps the earlier versions; `store_turn` says where each kind goes.

A model whose verification FAILED is not loaded: the turn fails with UnverifiedModelError,
and the pane asks the user (verify again, remove, use anyway), then starts it again.

The pane holds the conversation shown (`conversation`, set by the screen); what the screen
must redo after a turn (the conversation list, the header) it is told with
ConversationUpdated, and ModelsChanged after a model was verified again or removed. What
comes next fits here: another stage of a turn (reading attached documents, with progress on
the reply's view) is one more TurnMessage and handler.
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

from app.assistants.registry import InstalledModel, UnverifiedModelError
from app.assistants.titles import conversation_title
from app.documents import Document, compose_message, read_document
from app.engine.events import Finished, dropped_turns_note
from app.errors import describe
from app.store import Conversation, Message, Status, StoreError
from app.ui.config import UIConfig
from app.ui.failures import StoreFailed, show_failure, store_call, store_call_or
from app.ui.inference import run_turn
from app.ui.job import Job, JobKind
from app.ui.keymap import first_key
from app.ui.messages import (
    ConversationUpdated,
    GateChecking,
    GateVerdict,
    ModelLoading,
    ModelsChanged,
    ModelVerified,
    PromptReading,
    ReadingProgressed,
    StreamChunk,
    TurnAccepted,
    TurnFailed,
    TurnFinished,
)
from app.ui.screens.choice_dialog import Choice, ChoiceDialog
from app.ui.screens.unverified_dialog import REMOVE, USE_ANYWAY, VERIFY, unverified_dialog
from app.ui.services import Services
from app.ui.turns import (
    DEFAULT_TITLE,
    Figures,
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
        self.editing: Message | None = None  # the message being edited in the message box
        self._draft = ""  # what the message box held before the edit began
        self.use_anyway: set[str] = set()  # unverified models the user chose to use
        self._retry: Job | None = None  # the turn to start again once a model is verified
        self.attachments: list[Document] = []  # go with the next message, before its text
        self._estimate_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield ChatHeader(id="chat-header")
        banner = Static("", id="banner", markup=False)
        banner.display = False
        yield banner
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

    def show_banner(self, text: str | None) -> None:
        """A line above the messages that says why the conversation cannot be changed (or
        is kept in memory only); None hides it."""
        banner = self.query_one("#banner", Static)
        banner.update(Content(text or ""))
        banner.display = bool(text)

    def message_view(self, message: Message, author: str,
                     version: tuple[int, int] | None = None) -> MessageView:
        """The view of a stored message (`version`: its place among its versions); the
        reply streaming right now shows what has come so far, and goes on streaming into
        the new view."""
        job = self.job
        if job is not None and message.id == job.reply_id:
            return MessageView(role="assistant", author=author, content=job.answer,
                               thinking=job.thinking, status="streaming", message_id=message.id,
                               show_thoughts=self.chat.thoughts_shown, streaming=True,
                               version=version)
        return MessageView.of(message, author, self.chat.thoughts_shown, version=version,
                              show_details=self.chat.details_shown)

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
        `conversation`, after its answered turns; while a message of it is being edited,
        as that message's new version (a store failure shows its dialog and sends
        nothing)."""
        edited = self.stop_editing(restore=False)
        if edited is not None and edited.conversation_id == conversation.id:
            self.resend(assistant, conversation, edited, text)
            return
        try:
            history = engine_history(store_call(self, self.services.store.messages,
                                                conversation.id))
        except StoreFailed:
            return
        self.start(self.new_job(assistant, conversation, text, history))

    def regenerate(self, assistant: str, conversation: Conversation, reply: Message) -> None:
        """Write `reply` again, to the same question and history (the conversation's
        present settings apply); the earlier version is kept beside the new one."""
        try:
            before = store_call(self, self.services.store.ancestors, reply.id)
        except StoreFailed:
            return
        if not before or before[-1].role != "user":
            self.notify("This reply answers no message: nothing to regenerate.")
            return
        question = before[-1]
        self.start(self.new_job(assistant, conversation, question.content,
                                engine_history(before[:-1]), kind="regenerate",
                                replaces=reply.id))

    def resend(self, assistant: str, conversation: Conversation, question: Message,
               text: str) -> None:
        """Send `text` as a new version of `question` (what followed it stays with the
        earlier version)."""
        try:
            before = store_call(self, self.services.store.ancestors, question.id)
        except StoreFailed:
            return
        self.start(self.new_job(assistant, conversation, text, engine_history(before),
                                kind="edit", replaces=question.id))

    def new_job(self, assistant: str, conversation: Conversation, text: str,
                history: list[dict[str, str]], *, kind: JobKind = "send",
                replaces: int | None = None) -> Job:
        """A turn with the conversation's settings: the attached documents' blocks, then
        `text` (a regenerated reply's question is sent as stored, and was gated when it
        was first sent)."""
        documents = () if kind == "regenerate" else tuple(self.attachments)
        message = compose_message(text, documents) if documents else text
        gate = conversation.safety_gate and kind != "regenerate"
        return Job(conversation.id, assistant, message, history, conversation.system_prompt,
                   conversation.parameters, self.think(assistant, conversation), gate, kind,
                   replaces, frozenset(self.use_anyway),
                   num_ctx=self.num_ctx(assistant, conversation), typed_text=text,
                   documents=documents)

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

    # Editing a message in the message box

    def start_editing(self, message: Message) -> None:
        """Put `message` in the message box; sending it makes a new version of it."""
        if self.editing is None:
            self._draft = self.prompt.text
        self.prompt.set_text(message.content)
        self._mark_editing(message)
        self.prompt.focus()

    def _mark_editing(self, message: Message) -> None:
        self.editing = message
        keymap = self.config.keymap
        self.prompt.border_title = (f"editing your message · {first_key(keymap, 'submit')} "
                                    f"sends it again · {first_key(keymap, 'cancel')} cancels")
        self.prompt.add_class("editing")
        self.refresh_bindings()

    def stop_editing(self, *, restore: bool) -> Message | None:
        """Leave editing (with `restore`, the message box gets back what it held before);
        the message that was being edited, if any."""
        edited, self.editing = self.editing, None
        if edited is not None:
            self.prompt.border_title = None
            self.prompt.remove_class("editing")
            if restore:
                self.prompt.set_text(self._draft)
            self.refresh_bindings()
        return edited

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
        store = self.services.store
        try:
            if job.replaces is not None:  # an edited message: blocked as its new version
                stored = store_call(self, store.add_alternative, job.replaces, job.text,
                                    status="blocked")
                stored = store_call(self, store.update_message, stored.id,
                                    blocked_probability=float(verdict.prob_unsafe))
            else:
                stored = store_call(self, store.add_message, job.conversation_id, "user",
                                    job.text, status="blocked",
                                    blocked_probability=float(verdict.prob_unsafe))
        except StoreFailed:
            return
        if self.showing(job):
            view = MessageView(role="user", author="You", content=job.text, status="blocked",
                               note=blocked_note(verdict.prob_unsafe, verdict.threshold),
                               message_id=stored.id, version=self.version_of(stored))
            if job.replaces is None or not await self.chat.replace_from(job.replaces, [view]):
                await self.chat.add(view)
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
        try:
            user, reply = self.store_turn(job)
            self.retitle(job)
        except StoreFailed:
            job.discard = True
            job.cancel.set()
            return
        if job.typed:
            self.remember_prompt(job)
            if self.prompt.text == job.typed_text:
                self.prompt.set_text("")
            if job.documents and tuple(self.attachments) == job.documents:
                self.set_attachments([])
        if self.showing(job):
            await self.show_turn(job, user, reply)
        self.post_message(ConversationUpdated(job.conversation_id))

    def store_turn(self, job: Job) -> tuple[Message | None, Message]:
        """Store the turn's messages (StoreFailed): the question (none when a reply is
        regenerated: its question stays) and the reply to stream into."""
        store = self.services.store
        user = None
        if job.kind == "regenerate":
            assert job.replaces is not None
            reply = store_call(self, store.add_alternative, job.replaces, status="streaming")
        else:
            if job.kind == "edit":
                assert job.replaces is not None
                user = store_call(self, store.add_alternative, job.replaces, job.text)
            else:
                user = store_call(self, store.add_message, job.conversation_id, "user",
                                  job.text)
            job.user_id = user.id
            reply = store_call(self, store.add_message, job.conversation_id, "assistant", "",
                               status="streaming")
        job.reply_id = reply.id
        return user, reply

    async def show_turn(self, job: Job, user: Message | None, reply: Message) -> None:
        """Draw the turn's messages: after the others, or for a new version, instead of
        the earlier version and what followed it."""
        views = [self.message_view(reply, job.assistant_name, self.version_of(reply))]
        if user is not None:
            views.insert(0, MessageView.of(user, "You", self.chat.thoughts_shown,
                                           version=self.version_of(user)))
        if job.replaces is not None and await self.chat.replace_from(job.replaces, views):
            return
        for view in views:
            await self.chat.add(view)

    def version_of(self, message: Message) -> tuple[int, int] | None:
        """Its place among its versions, when it has several."""
        positions = store_call_or(self, {}, self.services.store.alternative_positions,
                                  message.conversation_id)
        return positions.get(message.id)

    def retitle(self, job: Job) -> None:
        """A conversation still called "New conversation" is named after its first
        message as typed (by its content), else its first document's name (StoreFailed)."""
        store = self.services.store
        conversation = store_call(self, store.get_conversation, job.conversation_id)
        if conversation.title in ("", DEFAULT_TITLE):
            conversation = store_call(self, store.rename_conversation, conversation.id,
                                      conversation_title(job.assistant_name, (
                                          job.typed_text.strip()
                                          or (job.documents[0].name if job.documents
                                              else job.text))))
        if self.showing(job):
            self.conversation = conversation

    def remember_prompt(self, job: Job) -> None:
        """The prompt joins its assistant's history (the store keeps none in incognito)."""
        store = self.services.store
        store_call_or(self, None, store.add_prompt, job.assistant_name,
                      job.typed_text or job.text)
        if self.prompt.history_owner == job.assistant_name:
            self.prompt.set_history(job.assistant_name, store_call_or(
                self, [], store.prompt_history, job.assistant_name))

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
                          content=job.answer, thinking=job.thinking or None, status="error",
                          provenance=job.provenance(None))
            view = self.job_view(job)
            if view is not None:
                await view.finish(job.answer, job.thinking, note, "error")
        elif job.kind == "edit" and job.replaces is not None:  # nothing stored: still editing
            self.resume_editing(job.replaces)
        self.restore_draft(job)
        if isinstance(event.error, UnverifiedModelError) and job.reply_id is None:
            self.ask_about_unverified(job, event.error)
        else:
            show_failure(self, event.error, event.title)

    def resume_editing(self, message_id: int) -> None:
        """An edit that was not sent (its model did not load): the box still holds it."""
        message = store_call_or(self, None, self.services.store.get_message, message_id)
        if message is not None and self.conversation is not None and \
                self.conversation.id == message.conversation_id:
            self._mark_editing(message)

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The turn's own errors arrive as TurnFailed; this catches what escaped it."""
        if event.worker.group == "inference" and event.state == WorkerState.ERROR:
            self.end_turn("the last reply failed")
            error = event.worker.error
            if error is not None:
                show_failure(self, error)

    # A model whose verification FAILED: verify it again, remove it, or use it anyway

    def ask_about_unverified(self, job: Job, error: UnverifiedModelError) -> None:
        model = error.model

        def decided(choice: str | None) -> None:
            if choice == USE_ANYWAY:
                self.use_anyway.add(model.name)
                self.retry(job)
            elif choice == VERIFY:
                self._retry = job
                self.status.set_state(f"verifying {model.name}…", busy=True)
                self.verify_model(model)
            elif choice == REMOVE:
                self.remove_model(model)

        self.app.push_screen(unverified_dialog(error), decided)

    def retry(self, job: Job) -> None:
        """Start the turn again, unless another one started meanwhile."""
        if self.busy:
            self.notify("Another reply is being generated: send your message again once it "
                        "is done.", severity="warning")
            return
        self.start(job.again(frozenset(self.use_anyway)))

    @work(thread=True, exclusive=True, group="verify", exit_on_error=False)
    def verify_model(self, model: InstalledModel) -> None:
        self.post_message(ModelVerified(model.name, self.services.verify(model)))

    @on(ModelVerified)
    def _verified(self, event: ModelVerified) -> None:
        event.stop()
        self.post_message(ModelsChanged())
        if not self.busy:
            self.status.set_state("ready")
        if event.problems:
            self.notify("; ".join(event.problems), title=f"{event.name}: checksum FAILED again",
                        severity="error", timeout=10, markup=False)
        else:
            self.notify(f"{event.name}: every file matches its manifest")
        job, self._retry = self._retry, None
        if job is not None:
            self.retry(job)  # still failing: the dialog comes back with what was found

    def remove_model(self, model: InstalledModel) -> None:
        try:
            self.services.remove(model)
        except OSError as exc:
            show_failure(self, exc, title=f"{model.name} could not be removed")
            return
        self.post_message(ModelsChanged())
        self.notify(f"{model.name} was removed from this computer.")

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
            back = " and get your message back in the message box" if job.typed else ""
            choices = [Choice("keep", "Keep it", "k", "primary"),
                       Choice("discard", "Discard it", "d", "error")]
            dialog = ChoiceDialog("Reply stopped", f"Keep the partial reply, or discard "
                                  f"it{back}?", choices, escape_value="keep")

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
        """Store the reply with its figures and its provenance (which model, file and
        settings wrote it)."""
        stats = finished.stats
        assert job.reply_id is not None
        try:
            stored = store_call(
                self, self.services.store.update_message, job.reply_id, content=answer,
                thinking=finished.thinking or None, status=status, prompt_ms=stats.prompt_ms,
                generation_ms=stats.generation_ms, prompt_tokens=stats.prompt_tokens,
                completion_tokens=stats.completion_tokens,
                tokens_per_second=stats.tokens_per_second, stop_reason=stats.stop_reason,
                dropped_turns=stats.dropped_turns, provenance=job.provenance(stats.threads))
        except StoreFailed:
            return
        view = self.job_view(job)
        prefix = "cancelled: partial reply" if status == "cancelled" else ""
        note = " · ".join(part for part in (prefix, cut_off_mark(finished.cut_off),
                                            stats_note(stored)) if part)
        if view is not None:
            await view.finish(answer, finished.thinking, note, status)
            view.set_class(finished.cut_off is not None, "cut-off")
            await view.set_provenance(stored.provenance)
        if self.showing(job):
            n_ctx = job.num_ctx or self.num_ctx(job.assistant_name, self.conversation)
            self.status.set_figures(Figures.of(stored, n_ctx).describe())
            await self.show_divider(store_call_or(self, [], self.services.store.messages,
                                                  job.conversation_id))

    async def discard(self, job: Job) -> None:
        """Forget the turn: its stored messages go (a new version gives its place back
        to the one shown before), the typed text returns to the message box."""
        for message_id in (job.reply_id, job.user_id):
            if message_id is None:
                continue
            store_call_or(self, None, self.services.store.delete_message, message_id)
            view = self.chat.message(message_id)
            if view is not None:
                await view.remove()
        if job.replaces is not None:
            store_call_or(self, None, self.services.store.pick_alternative, job.replaces)
            self.post_message(ConversationUpdated(job.conversation_id, redraw=True))
        self.restore_draft(job)

    def restore_draft(self, job: Job) -> None:
        """A turn that failed or was discarded gives back what was typed and attached
        (unless the user has started another message meanwhile)."""
        if job.typed and not self.prompt.text.strip() and not self.attachments:
            self.prompt.set_text(job.typed_text or ("" if job.documents else job.text))
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
