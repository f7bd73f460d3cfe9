"""Conversation rules the screens share, kept free of widgets so they are easy to test:
what the model is sent, which models can think and the footer's figures. Titles come from
app.assistants.titles (`auto_title` is its first-line rule; `conversation_title` titles a
case by its content)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.assistants.profiles import AssistantProfile
from app.assistants.registry import InstalledModel
from app.assistants.sentencing_case import NOT_LEGAL_ADVICE
from app.assistants.titles import DEFAULT_TITLE, TITLE_CELLS, printable
from app.assistants.titles import first_line_title as auto_title
from app.store import Conversation, Message

DEFAULT_N_CTX = 4096  # the context window assumed when the Modelfile cannot be read
__all__ = ["DEFAULT_N_CTX", "DEFAULT_TITLE", "TITLE_CELLS", "Figures", "auto_title",
           "context_size", "conversation_num_ctx", "default_thinking", "engine_history",
           "last_reply", "printable", "rough_tokens", "sent_messages", "strip_notice",
           "supports_thinking", "view_start"]
KEPT_REPLIES = ("complete", "cancelled")


def engine_history(messages: Sequence[Message]) -> list[dict[str, str]]:
    """The conversation as the model is sent it: each user turn that got a reply, with that
    reply (complete, or a partial one the user kept). Blocked turns, failed replies and the
    questions they answered are left out; so is the notice the app appends to answers."""
    return [{"role": m.role, "content": strip_notice(m.content) if m.role == "assistant"
             else m.content} for m in sent_messages(messages)]


def sent_messages(messages: Sequence[Message]) -> list[Message]:
    """The stored messages engine_history sends, in order (question, answer, ...)."""
    sent: list[Message] = []
    question: Message | None = None
    for message in messages:
        if message.role == "user":
            question = message if message.status == "complete" else None
        elif message.role == "assistant":
            answer = strip_notice(message.content)
            if question is not None and message.status in KEPT_REPLIES and answer.strip():
                sent += [question, message]
            question = None
    return sent


def view_start(messages: Sequence[Message]) -> tuple[int, int] | None:
    """Where the model's view begins, when the last reply's context left out earlier
    messages: (the id of the first message it saw, how many it did not), for the
    conversation's divider; None when it saw them all (or nothing is known)."""
    index = next((i for i in range(len(messages) - 1, -1, -1)
                  if messages[i].role == "assistant" and messages[i].stop_reason is not None),
                 None)
    if index is None or not messages[index].dropped_turns:
        return None
    dropped = int(messages[index].dropped_turns or 0)
    question = next((i for i in range(index - 1, -1, -1) if messages[i].role == "user"), index)
    before = sent_messages(messages[:question])
    first = before[dropped] if dropped < len(before) else messages[question]
    return first.id, dropped


def conversation_num_ctx(conversation: Conversation | None, configured: int | None,
                         profile: AssistantProfile | None) -> int:
    """The context a conversation runs at: its own (F4), else the config's for its
    assistant, else the Modelfile's."""
    own = (conversation.parameters or {}).get("num_ctx") if conversation else None
    return int(own or configured or context_size(profile))


def rough_tokens(text: str) -> int:
    """About how many tokens `text` takes before the model's tokenizer is at hand: Qwen's
    and Llama's tokenizers give about four ASCII characters a token, and a token to one or
    two CJK characters (the exact count replaces this once the model is loaded)."""
    ascii_chars = sum(1 for c in text if c.isascii())
    return round(ascii_chars / 4 + (len(text) - ascii_chars) / 1.4)


def strip_notice(answer: str) -> str:
    return answer.removesuffix(NOT_LEGAL_ADVICE).rstrip() if answer.endswith(
        NOT_LEGAL_ADVICE) else answer


def supports_thinking(profile: AssistantProfile | None) -> bool:
    """Whether the chat template can switch thinking on and off (the Qwen3 family's
    templates read Ollama's .Think; Llama-2's and the instruct-only model's do not)."""
    return profile is not None and ".Think" in (profile.template or "")


def context_size(profile: AssistantProfile | None) -> int:
    """The model's context window, in tokens (its Modelfile's num_ctx)."""
    return profile.n_ctx if profile is not None else DEFAULT_N_CTX


def default_thinking(model: InstalledModel | None) -> bool:
    """Qwen3 thinks unless told not to; Qwen3.5 (civic-qa) answers directly unless asked."""
    if model is None:
        return True
    return not str(model.manifest.get("architecture", "")).startswith("Qwen3_5")


@dataclass(frozen=True)
class Figures:
    """What the footer shows about the last reply."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_second: float = 0.0
    seconds: float = 0.0
    n_ctx: int = DEFAULT_N_CTX

    @classmethod
    def of(cls, message: Message | None, n_ctx: int) -> Figures:
        if message is None:
            return cls(n_ctx=n_ctx)
        return cls(message.prompt_tokens or 0, message.completion_tokens or 0,
                   message.tokens_per_second or 0.0, (message.generation_ms or 0.0) / 1000,
                   n_ctx)

    @property
    def context_used(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def describe(self) -> str:
        used = self.context_used
        share = round(100 * used / self.n_ctx) if self.n_ctx else 0
        # Short enough for an 80-column terminal with the sidebar shown.
        context = f"ctx {used}/{self.n_ctx}"
        if not self.completion_tokens:
            return f"{context} ({share}%)"
        return (f"{self.completion_tokens} tokens · {self.tokens_per_second:.1f} tok/s · "
                f"{self.seconds:.1f} s · {context}")


def last_reply(messages: Sequence[Message]) -> Message | None:
    return next((m for m in reversed(messages) if m.role == "assistant"), None)
