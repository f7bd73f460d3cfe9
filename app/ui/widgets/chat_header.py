"""The line above the messages: the conversation's assistant, where its answers come from
when a server answers (its URL and model; else a plain warning when the local model is a
demo), and its switches: thinking and the safety gate."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from app.store import Conversation
from app.ui.services import AssistantEntry

DEMO_WARNING = "DEMO MODEL: meaningless text"


def switch(label: str, on: bool, action: str) -> Content:
    state = Content.styled("on" if on else "off", "bold $text-success" if on else "dim")
    return Content.assemble(Content.from_markup(f"[@click=screen.{action}]{label}[/]: "),
                            state)


class ChatHeader(Static):
    def show(self, entry: AssistantEntry | None, conversation: Conversation | None, *,
             can_think: bool, server: str | None = None) -> None:
        parts: list[Content] = []
        if entry is not None:
            parts.append(Content.styled(entry.name, "bold"))
            if not entry.installed:
                parts.append(Content.styled("not installed", "$text-error"))
            elif server is not None:  # the server's model answers, not the local file
                parts.append(Content.styled(server, "$text-accent"))
            elif entry.demo:
                parts.append(Content.styled(DEMO_WARNING, "bold $text-warning"))
        if conversation is not None:
            if can_think:
                parts.append(switch("thinking", conversation.thinking, "toggle_thinking"))
            parts.append(switch("gate", conversation.safety_gate, "toggle_gate"))
        self.update(Content(" · ").join(parts))
