"""Conversation -> prompt tokens: the GGUF's own chat template, one BOS, and the context budget.

The template is the Jinja text embedded in the GGUF (`tokenizer.chat_template`), rendered by
`chat_render` the way transformers renders it. llama.cpp adds the BOS itself when the
vocabulary asks for it (`tokenizer.ggml.add_bos_token`), and `render_chat` strips the one a
template writes first (Llama-2's `{{ bos_token }}`), so the tokens start with exactly one.

When the conversation plus room for the answer exceeds the context, the oldest user and
assistant messages are left out, never the system prompt and never the last user message;
the cut always lands on a user message so that strictly alternating templates (Llama-2)
still render.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.engine.errors import ContextOverflowError, EngineError
from app.engine.messages import Message
from app.engine.output import prompt_opens_thinking
from converters.chat_render import render_chat


@dataclass(frozen=True)
class ChatFormat:
    """What rendering needs from the GGUF: its template and special-token texts."""

    template: str
    bos_token: str
    eos_token: str
    bos_id: int | None  # None when the vocabulary adds no BOS


@dataclass(frozen=True)
class Prompt:
    text: str
    tokens: list[int]
    dropped_turns: int  # user/assistant messages left out to fit the context
    opens_thinking: bool  # the template pre-filled `<think>`: output starts as thinking


class PromptBuilder:
    """Renders, tokenizes and fits conversations for one model."""

    def __init__(self, chat_format: ChatFormat, tokenize: Callable[[str], list[int]],
                 n_ctx: int) -> None:
        self.format = chat_format
        self._tokenize = tokenize
        self.n_ctx = n_ctx

    def render(self, messages: Sequence[Message], *, think: bool | None = None) -> str:
        if not self.format.template:
            raise EngineError("this model has no chat template (tokenizer.chat_template)")
        try:
            return render_chat(self.format.template, list(messages),
                               bos_token=self.format.bos_token,
                               eos_token=self.format.eos_token,
                               add_generation_prompt=True, enable_thinking=think)
        except EngineError:
            raise
        except Exception as exc:  # a template's raise_exception, or a Jinja error
            raise EngineError(f"the chat template cannot render this conversation: {exc}") \
                from exc

    def tokens(self, text: str) -> list[int]:
        tokens = self._tokenize(text)
        bos = self.format.bos_id
        # Belt and braces against a template that writes BOS where render_chat cannot see it.
        if bos is not None and len(tokens) > 1 and tokens[0] == tokens[1] == bos:
            tokens = tokens[1:]
        return tokens

    def build(self, messages: Sequence[Message], *, think: bool | None = None,
              reserve: int = 0) -> Prompt:
        """The prompt for the conversation, dropping the oldest turns until it leaves
        `reserve` tokens free for the answer."""
        messages = list(messages)
        budget = self.n_ctx - reserve
        cuts = _cut_points(messages)
        prompt = self._prompt(messages, 0, think)
        if len(prompt.tokens) <= budget or not cuts:
            return self._checked(prompt, budget)
        # Fewer tokens the more is dropped: binary search for the smallest cut that fits.
        low, high = 0, len(cuts) - 1
        best = self._prompt(_drop(messages, cuts[high]), cuts[high], think)
        if len(best.tokens) > budget:
            return self._checked(best, budget)
        while low < high:
            middle = (low + high) // 2
            candidate = self._prompt(_drop(messages, cuts[middle]), cuts[middle], think)
            if len(candidate.tokens) <= budget:
                best, high = candidate, middle
            else:
                low = middle + 1
        return best

    def _prompt(self, messages: list[Message], dropped: int,
                think: bool | None) -> Prompt:
        text = self.render(messages, think=think)
        return Prompt(text, self.tokens(text), dropped, prompt_opens_thinking(text))

    def _checked(self, prompt: Prompt, budget: int) -> Prompt:
        if len(prompt.tokens) > budget:
            raise ContextOverflowError(
                f"the message is too long: the prompt needs {len(prompt.tokens)} tokens but "
                f"the context holds {self.n_ctx}, {self.n_ctx - budget} of them kept for the "
                f"answer; shorten it or raise num_ctx", needed=len(prompt.tokens),
                n_ctx=self.n_ctx)
        return prompt


def _first_turn(messages: Sequence[Message]) -> int:
    return 1 if messages and messages[0].get("role") == "system" else 0


def _last_user(messages: Sequence[Message]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return len(messages) - 1


def _cut_points(messages: Sequence[Message]) -> list[int]:
    """How many messages may be dropped, ascending: each cut leaves the conversation
    starting (after the system prompt) at a user message, the last one at the latest."""
    start, last = _first_turn(messages), _last_user(messages)
    return [i - start for i in range(start + 1, last + 1)
            if messages[i].get("role") == "user"]


def _drop(messages: list[Message], count: int) -> list[Message]:
    start = _first_turn(messages)
    return messages[:start] + messages[start + count:]
