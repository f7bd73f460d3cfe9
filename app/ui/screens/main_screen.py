"""The main screen: assistants and their conversations on the left (Sidebar), the
conversation on the right (ChatPane: header, messages, message box, status line), the
footer under both.

The screen lays them out, answers the actions (their keys are in app.ui.keymap) and decides
what is shown: which assistant, which conversation, how much of it, which version of each
message, and whether it can be changed (a read-only data folder: a banner says why). Its
parts tell it what the user did with messages (AssistantChosen, ConversationChosen, also
for a search hit in any assistant's conversations, SearchChanged, PromptSubmitted) and it
calls them back. The turn in flight (gate, loading, reading, streaming, cancel, keep or
discard; regenerate, edit and resend) belongs to the chat pane, which says when a turn
changed a conversation (ConversationUpdated) or the installed models (ModelsChanged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer

from app.assistants.catalog import GATE_MODEL, spec_of
from app.assistants.profiles import AssistantProfile
from app.assistants.saved_reading import SavedReading
from app.assistants.server import server_model_name
from app.errors import DISK_FULL
from app.store import Backend, Conversation, Message
from app.ui import exporting
from app.ui.bindings import bindings
from app.ui.config import UIConfig
from app.ui.failures import StoreFailed, show_failure, store_call, store_call_or
from app.ui.keymap import first_key
from app.ui.messages import (
    AssistantChosen,
    ConversationChosen,
    ConversationUpdated,
    Copied,
    ModelsChanged,
    PromptSubmitted,
    SearchChanged,
)
from app.ui.screens.case_form import CaseForm
from app.ui.screens.choice_dialog import confirm
from app.ui.screens.error_dialog import ErrorDialog
from app.ui.screens.file_dialog import FileDialog
from app.ui.screens.frame_form import FrameForm
from app.ui.screens.model_manager import ModelManager
from app.ui.screens.options_editor import ContextChoice, OptionsEditor, OptionsResult
from app.ui.screens.prompt_form import FormResult
from app.ui.screens.text_dialog import TextDialog
from app.ui.services import AssistantEntry, Services
from app.ui.turns import (
    DEFAULT_TITLE,
    Figures,
    default_thinking,
    engine_history,
    last_reply,
    printable,
    supports_thinking,
)
from app.ui.widgets.chat_pane import ChatPane
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.message_view import MessageView
from app.ui.widgets.prompt_input import PromptInput
from app.ui.widgets.sidebar import Sidebar
from app.ui.widgets.status_bar import StatusBar

# The screens of the catalog's structured forms.
FORM_SCREENS: dict[str, type[FrameForm] | type[CaseForm]] = {
    "moral_frames": FrameForm, "sentencing_case": CaseForm}
# Messages drawn when a conversation opens (a long one would delay the first paint and
# every switch); the earlier ones are one key or click away.
WINDOW = 8
LAST_ASSISTANT = "ui.assistant"  # store setting: the assistant shown at the last start


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = bindings("main")

    def __init__(self, services: Services, config: UIConfig) -> None:
        super().__init__(id="main")
        self.services = services
        self.config = config
        self.entry: AssistantEntry | None = None
        self.full_history = False  # the conversation's earlier messages are drawn too
        # Made here, not in compose, so that the app can ask about the turn in flight
        # at any time (AmicusApp.busy), even before the screen is mounted.
        self.sidebar = Sidebar(services, id="sidebar")
        self.pane = ChatPane(services, config, id="chat")

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield self.sidebar
            yield self.pane
        yield Footer()

    async def on_mount(self) -> None:
        entries = self.services.assistants()
        await self.choose_assistant(self._first_assistant(entries))
        self.prompt.focus()

    def _first_assistant(self, entries: list[AssistantEntry]) -> str:
        names = [e.name for e in entries]
        last = store_call_or(self, None, self.services.store.get_setting, LAST_ASSISTANT)
        if last in names:
            return str(last)
        return next((e.name for e in entries if e.installed), names[0])

    # Widgets and small helpers

    @property
    def conversation(self) -> Conversation | None:
        """The conversation shown (held by the chat pane: a turn may retitle it)."""
        return self.pane.conversation

    @conversation.setter
    def conversation(self, conversation: Conversation | None) -> None:
        self.pane.conversation = conversation

    @property
    def prompt(self) -> PromptInput:
        return self.pane.prompt

    @property
    def chat(self) -> ChatView:
        return self.pane.chat

    @property
    def status(self) -> StatusBar:
        return self.pane.status

    @property
    def profile(self) -> AssistantProfile | None:
        return self.services.profile(self.entry.name) if self.entry else None

    def key(self, action_id: str) -> str:
        return first_key(self.config.keymap, action_id)

    def show_error(self, title: str, message: str) -> None:
        self.app.push_screen(ErrorDialog(title, message))

    # Assistants and conversations

    @on(AssistantChosen)
    async def _assistant_chosen(self, event: AssistantChosen) -> None:
        if self.entry is None or event.name != self.entry.name:
            await self.choose_assistant(event.name)

    async def choose_assistant(self, name: str) -> None:
        """Show `name` and its latest conversation."""
        self.switch_assistant(name)
        conversations = await self.refresh_conversations(None)
        await self.open_conversation(conversations[0].id if conversations else None)

    def switch_assistant(self, name: str) -> None:
        """Make `name` the assistant shown: the picker, the prompt history."""
        store = self.services.store
        entries = self.services.assistants()
        # A conversation found by search may be an assistant's that is no longer installed.
        self.entry = next((e for e in entries if e.name == name), AssistantEntry(name, None))
        self.pane.assistant_name = name
        store_call_or(self, None, store.set_setting, LAST_ASSISTANT, name)
        self.sidebar.show_assistants(entries, name)
        self.prompt.set_history(name, store_call_or(self, [], store.prompt_history, name))

    async def refresh_conversations(self, selected: int | None) -> list[Conversation]:
        assert self.entry is not None
        return await self.sidebar.show_conversations(self.entry.name, selected)

    @on(SearchChanged)
    async def _search_changed(self) -> None:
        await self.refresh_conversations(self.conversation.id if self.conversation else None)

    @on(ConversationChosen)
    async def _conversation_chosen(self, event: ConversationChosen) -> None:
        current = self.conversation.id if self.conversation else None
        at = event.message_id
        if event.conversation_id != current:
            await self.open_conversation(event.conversation_id, at=at)
        elif at is not None:
            if self.chat.message(at) is None:
                await self.render_conversation(at=at)
            self.chat.reveal(at)

    async def open_conversation(self, conversation_id: int | None, *,
                                at: int | None = None) -> None:
        """Show the conversation, at its end or at message `at` (a search found it)."""
        conversation = None
        if conversation_id is not None:
            conversation = store_call_or(self, None, self.services.store.get_conversation,
                                         conversation_id)
        if conversation is not None and (self.entry is None
                                         or conversation.assistant != self.entry.name):
            self.switch_assistant(conversation.assistant)  # a search found it
        self.pane.stop_editing(restore=True)
        self.conversation = conversation
        self.full_history = False
        await self.render_conversation(at=at)

    async def render_conversation(self, *, at: int | None = None) -> None:
        """Draw the conversation shown: its last messages (all of them when asked, or when
        message `at`, to be scrolled to, is earlier), each with its version when it has
        several."""
        self.update_header()
        self.pane.schedule_estimate()
        n_ctx = self.pane.num_ctx(self.entry.name, self.conversation) if self.entry else \
            Figures().n_ctx
        if self.conversation is None:
            await self.chat.show_hint(self.hint())
            self.status.set_figures(Figures(n_ctx=n_ctx).describe())
            return
        store = self.services.store
        messages: list[Message] = store_call_or(self, [], store.messages, self.conversation.id)
        if at is not None and at not in {m.id for m in messages[-WINDOW:]}:
            self.full_history = True
        shown = messages if self.full_history else messages[-WINDOW:]
        versions = store_call_or(self, {}, store.alternative_positions, self.conversation.id)
        author = self.entry.name if self.entry else ""
        views = [self.pane.message_view(m, "You" if m.role == "user" else author,
                                        versions.get(m.id)) for m in shown]
        await self.chat.show(views, earlier=len(messages) - len(shown))
        await self.pane.show_divider(messages)
        if at is not None:
            self.chat.reveal(at)
        self.status.set_figures(Figures.of(last_reply(messages), n_ctx).describe())

    def update_header(self) -> None:
        self.pane.header.show(self.entry, self.conversation,
                              can_think=supports_thinking(self.profile),
                              server=self.server_line())
        title = printable(self.conversation.title) if self.conversation else ""
        # Content, not a str: a str would be parsed as markup ("[x" in a title would fail).
        self.pane.border_title = Content(title) if title else None
        self.pane.show_banner(self.banner())

    def server_line(self) -> str | None:
        """Where the answers come from when a server answers: its URL and model name."""
        if self.config.endpoint is None or self.entry is None:
            return None
        model = server_model_name(self.entry.name, self.config.server_models)
        return Backend("endpoint", url=self.config.endpoint, server_model=model).describe()

    def banner(self) -> str | None:
        """Why the conversation shown cannot be changed, or is kept in memory only."""
        store = self.services.store
        if store.read_only is None:
            return None
        if self.conversation is not None and store.is_read_only(self.conversation.id):
            return (f"Read-only: {store.read_only}. It can be read, searched and exported "
                    f"({self.key('export')}); {self.key('new_conversation')} starts a new "
                    "conversation, kept until Amicus closes.")
        return f"New conversations are kept in memory until Amicus closes: {store.read_only}."

    def writable(self, conversation: Conversation) -> bool:
        """Whether the conversation can be changed (else the user is told why)."""
        if not self.services.store.is_read_only(conversation.id):
            return True
        self.notify(f"This conversation is read-only (the data folder cannot be written): "
                    f"{self.key('new_conversation')} starts a new one.", severity="warning")
        return False

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
        server = self.server_line()
        if server is not None:
            lines.append(f"Answers come from the {server}.")
        elif entry.demo:
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
        self.conversation = store_call(
            self, self.services.store.create_conversation, self.entry.name,
            title=DEFAULT_TITLE, thinking=default_thinking(self.entry.model))
        return self.conversation

    def set_options(self, **options: Any) -> None:
        conversation = self.ensure_conversation()
        if not self.writable(conversation):
            raise StoreFailed
        self.conversation = store_call(self, self.services.store.set_conversation_options,
                                       conversation.id, **options)
        self.update_header()

    # Sending a message (the chat pane runs the turn)

    @on(PromptSubmitted)
    async def _submitted(self, event: PromptSubmitted) -> None:
        await self.send(event.text)

    async def action_send_prompt(self) -> None:
        await self.send(self.prompt.text)

    async def send(self, text: str) -> None:
        if not text.strip() and not self.pane.attachments:
            return
        if self.pane.busy:
            self.notify(f"A reply is being generated: wait, or press {self.key('cancel')} to "
                        "stop it.", severity="warning")
            return
        entry = self.entry
        if entry is None or not entry.installed:
            self.show_error("No model for this assistant", self.hint().replace("**", ""))
            return
        try:
            conversation = self.ensure_conversation()
        except StoreFailed:
            return
        if self.writable(conversation):
            self.pane.send(entry.name, conversation, text)

    @on(ConversationUpdated)
    async def _conversation_updated(self, event: ConversationUpdated) -> None:
        if self.conversation is not None and self.conversation.id == event.conversation_id:
            self.update_header()  # the turn may have retitled it
            if event.redraw:
                await self.render_conversation()
        await self.refresh_conversations(event.conversation_id)

    @on(ModelsChanged)
    def _models_changed(self) -> None:
        """A model was verified again, removed, or reloaded from disk."""
        entries = self.services.assistants()
        name = self.entry.name if self.entry else None
        self.entry = next((e for e in entries if e.name == name), self.entry)
        self.sidebar.show_assistants(entries, name)
        self.update_header()

    # Actions (see app.ui.keymap for their keys)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":  # the footer shows "Stop" only while generating (or editing)
            return self.pane.busy or self.pane.editing is not None
        return True

    def action_cancel(self) -> None:
        if self.pane.busy:
            self.pane.cancel()
        else:
            self.pane.stop_editing(restore=True)

    async def action_new_conversation(self) -> None:
        self.pane.stop_editing(restore=True)
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
                self.conversation = store_call_or(
                    self, conversation, self.services.store.rename_conversation, conversation.id,
                    " ".join(title.split()))
                self.update_header()
                await self.refresh_conversations(conversation.id)

        if self.writable(conversation):  # the old title selected: typing replaces it
            self.app.push_screen(TextDialog("Rename the conversation", conversation.title,
                                            ok="Rename", select_all=True), renamed)

    def action_delete_conversation(self) -> None:
        conversation = self.conversation
        if conversation is None:
            self.notify("No conversation to delete.")
            return
        job = self.pane.job
        if job is not None and job.conversation_id == conversation.id:
            self.notify("Stop the reply first.", severity="warning")
            return

        async def decided(choice: str | None) -> None:
            if choice == "yes":
                store = self.services.store

                def delete() -> bool:
                    store.delete_conversation(conversation.id)
                    return True

                if store_call_or(self, False, delete):
                    self.services.forget_reading(conversation.id)  # its saved KV cache too
                name = conversation.assistant  # the prompts it sent are forgotten too
                if self.prompt.history_owner == name:
                    self.prompt.set_history(name, store_call_or(self, [], store.prompt_history,
                                                                name))
                found = await self.refresh_conversations(None)
                await self.open_conversation(found[0].id if found else None)

        if not self.writable(conversation):
            return
        self.app.push_screen(confirm("Delete the conversation?",
                                     f"“{conversation.title}” and its messages will be "
                                     "erased from this computer."), decided)

    def action_search(self) -> None:
        self.sidebar.focus_search()

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
        self.chat.show_thoughts(not self.chat.thoughts_shown)

    async def action_toggle_details(self) -> None:
        await self.chat.show_details(not self.chat.details_shown)

    async def action_toggle_message_details(self, message_id: int) -> None:
        view = self.chat.message(message_id)
        if view is not None:
            await view.set_details(not view.details_shown)
            # What was clicked stays in view (the list would stay pinned to its end).
            self.chat.call_after_refresh(self.chat.scroll_to_widget, view, animate=False,
                                         top=True)

    # The editing loop: edit and resend, regenerate, versions

    def editable(self) -> tuple[Conversation, list[Message]] | None:
        """The conversation shown and its messages, if it can be changed now (else the
        user is told why)."""
        conversation = self.conversation
        if conversation is None:
            self.notify("No conversation yet.")
            return None
        job = self.pane.job
        if job is not None and job.conversation_id == conversation.id:
            self.notify(f"A reply is being generated: wait, or press {self.key('cancel')} to "
                        "stop it.", severity="warning")
            return None
        if not self.writable(conversation):
            return None
        try:
            return conversation, store_call(self, self.services.store.messages,
                                            conversation.id)
        except StoreFailed:
            return None

    def action_edit_last(self) -> None:
        found = self.editable()
        if found is None:
            return
        question = next((m for m in reversed(found[1]) if m.role == "user"), None)
        if question is None:
            self.notify("No message of yours to edit yet.")
            return
        self.pane.start_editing(question)

    def action_regenerate(self) -> None:
        found = self.editable()
        entry = self.entry
        if found is None or entry is None:
            return
        conversation, messages = found
        if not messages or messages[-1].role != "assistant":
            self.notify(f"The last message has no reply to write again ({self.key('edit_last')}"
                        " edits it).")
            return
        if self.pane.busy:
            self.notify("A reply is being generated in another conversation: wait, or stop "
                        "it.", severity="warning")
            return
        if not entry.installed:
            self.show_error("No model for this assistant", self.hint().replace("**", ""))
            return
        self.pane.regenerate(entry.name, conversation, messages[-1])

    def action_previous_version(self) -> None:
        self.step_version("previous")

    def action_next_version(self) -> None:
        self.step_version("next")

    def step_version(self, direction: str) -> None:
        """Browse the versions of the last message that has several."""
        found = self.editable()
        if found is None:
            return
        conversation, messages = found
        versions = store_call_or(self, {}, self.services.store.alternative_positions,
                                 conversation.id)
        target = next((m for m in reversed(messages) if m.id in versions), None)
        if target is None:
            self.notify(f"No message here has other versions ({self.key('regenerate')} writes "
                        "the last reply again).")
            return
        self.action_show_version(target.id, direction)

    def action_show_version(self, message_id: int, direction: str) -> None:
        """Show the "previous" or "next" version of this message (the conversation then
        follows it: what the model is sent next, what an export writes).

        The redraw is queued, not awaited: from a click on the header's arrows this runs
        in the header's own handler, and awaiting the removal of the widget handling the
        click would wait for itself."""
        if self.editable() is None:
            return
        store = self.services.store
        versions = [m.id for m in store_call_or(self, [], store.alternatives, message_id)]
        if message_id not in versions:
            return
        place = versions.index(message_id) + (-1 if direction == "previous" else 1)
        if not 0 <= place < len(versions):
            self.notify(f"This is the {'first' if place < 0 else 'last'} version.")
            return
        if store_call_or(self, None, store.pick_alternative, versions[place]) is not None:
            self.pane.stop_editing(restore=True)
            self.call_later(self.render_conversation)

    def action_edit_options(self) -> None:
        try:
            conversation = self.ensure_conversation()
        except StoreFailed:
            return

        async def edited(result: OptionsResult | None) -> None:
            if result is None:
                return
            before = (conversation.parameters or {}).get("num_ctx")
            after = (result.parameters or {}).get("num_ctx")
            try:
                self.set_options(system_prompt=result.system_prompt,
                                 parameters=result.parameters)
            except StoreFailed:
                return
            await self.refresh_conversations(conversation.id)
            await self.render_conversation()  # the context size in the status line
            reload = " The model loads again at the new num_ctx with the next message." \
                if after != before else ""
            self.notify(f"Saved for this conversation.{reload}")

        assert self.entry is not None
        name = self.entry.name
        context = ContextChoice(
            current=self.pane.num_ctx(name, None),
            maximum=self.services.trained_context(name),
            estimate=lambda n_ctx: self.services.memory_estimate(name, n_ctx).describe())
        self.app.push_screen(OptionsEditor(conversation, self.profile, context,
                                           lambda: self.saved_reading(conversation)), edited)

    def saved_reading(self, conversation: Conversation) -> SavedReading:
        """The conversation's saved reading, as its next message would be read (blocking:
        the F4 dialog calls it from a thread worker)."""
        history = engine_history(self.services.store.messages(conversation.id))
        return self.services.saved_reading(
            conversation.assistant, history, system=conversation.system_prompt,
            params=conversation.parameters,
            think=self.pane.think(conversation.assistant, conversation),
            generating=self.pane.busy)

    def action_attach(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.pane.attach(Path(path))
                self.prompt.focus()

        self.app.push_screen(FileDialog("Attach a document to the message"), chosen)

    def action_detach(self) -> None:
        self.pane.set_attachments([])

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
        # A read-only data folder may come with a read-only documents folder: the first
        # folder that can be written is suggested (any other path can be typed).
        folder = exporting.writable_folder(self.config.exports())
        suggested = exporting.free_path(folder / exporting.filename(conversation))

        def chosen(path: str | None) -> None:
            if path:
                self.export_to(conversation, path)

        self.app.push_screen(TextDialog("Export to Markdown", str(suggested), ok="Export"),
                             chosen)

    def export_to(self, conversation: Conversation, path: str) -> None:
        try:
            text = store_call(self, self.services.store.export_markdown, conversation.id)
        except StoreFailed:
            return
        try:
            written = exporting.write(path, text)
        except OSError as exc:
            show_failure(self, exc, title=None if exc.errno in DISK_FULL
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
        def back(_: None) -> None:  # models may have been reloaded meanwhile
            self._models_changed()

        self.app.push_screen(ModelManager(self.services, self.config), back)

    async def action_show_earlier(self) -> None:
        if self.conversation is not None and not self.full_history:
            self.full_history = True
            await self.render_conversation()

    def action_toggle_sidebar(self) -> None:
        self.sidebar.display = not self.sidebar.display
