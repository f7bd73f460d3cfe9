"""From sampled token bytes to answer and thinking text: UTF-8 reassembly, stop strings, and
the `<think>...</think>` split. Shared by the real engine and the FakeEngine.

Every stage holds back only what the next characters could still change: an incomplete
UTF-8 sequence, the start of a possible stop string, the start of a possible think tag, and
whitespace at the edges of a block. So stop strings never reach the caller even when split
across tokens, and the deltas joined equal the final texts.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.engine.events import AnswerDelta, ThinkingDelta

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

Delta = AnswerDelta | ThinkingDelta


def prompt_opens_thinking(prompt: str) -> bool:
    """True when the rendered prompt ends inside an open think block (templates that
    pre-fill `<think>\\n`): the model's first tokens are then thinking, not answer."""
    tail = prompt.rstrip()
    return tail.endswith(THINK_OPEN)


def _partial_suffix(text: str, needles: Iterable[str]) -> int:
    """Length of the longest end of `text` that is a proper beginning of some needle."""
    longest = 0
    for needle in needles:
        for size in range(min(len(needle) - 1, len(text)), longest, -1):
            if text.endswith(needle[:size]):
                longest = size
                break
    return longest


class StopMatcher:
    """Cuts the text at the first stop string, however the tokens split it."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Text that is safe to pass on; sets `stopped` when a stop string completed."""
        if self.stopped:
            return ""
        held = self._held + text
        cut = min((i for i in (held.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return held[:cut]
        keep = _partial_suffix(held, self._stops)
        self._held = held[len(held) - keep:] if keep else ""
        return held[: len(held) - keep]

    def flush(self) -> str:
        """At the end of generation a partial stop string is ordinary text."""
        held, self._held = self._held, ""
        return held


class ThinkSplitter:
    """Routes text to thinking or answer deltas.

    A think block is recognised where it can start: at the very beginning of the output
    (after whitespace), or already open when the prompt pre-filled `<think>`. Whitespace at
    the start and end of each block is dropped (the tags are followed and preceded by
    newlines), so `answer` and `thinking` come out stripped."""

    def __init__(self, *, inside_think: bool = False) -> None:
        self._mode = "thinking" if inside_think else "start"
        self._held = ""
        self._pending_space = ""  # whitespace inside a block, emitted once text follows
        self._block_started = False

    def feed(self, text: str) -> list[Delta]:
        self._held += text
        out: list[Delta] = []
        while self._held:
            if not self._step(out):
                break
        return out

    def _step(self, out: list[Delta]) -> bool:
        """Consume what can be decided now; False when more text is needed."""
        if self._mode == "start":
            stripped = self._held.lstrip()
            if not stripped:
                return False
            if stripped.startswith(THINK_OPEN):
                self._held = stripped[len(THINK_OPEN):]
                self._switch("thinking")
                return True
            if THINK_OPEN.startswith(stripped):
                return False
            self._switch("answer")
            return True
        if self._mode == "thinking":
            return self._thinking_step(out)
        self._emit(out, self._held)
        self._held = ""
        return False

    def _thinking_step(self, out: list[Delta]) -> bool:
        end = self._held.find(THINK_CLOSE)
        if end >= 0:
            self._emit(out, self._held[:end])
            self._held = self._held[end + len(THINK_CLOSE):]
            self._switch("answer")
            return True
        keep = _partial_suffix(self._held, (THINK_CLOSE,))
        self._emit(out, self._held[: len(self._held) - keep])
        self._held = self._held[len(self._held) - keep:]
        return False

    def _switch(self, mode: str) -> None:
        self._mode, self._pending_space, self._block_started = mode, "", False

    def _emit(self, out: list[Delta], text: str) -> None:
        if not text:
            return
        if not self._block_started:
            text = text.lstrip()
            if not text:
                return
            self._block_started = True
        body = text.rstrip()
        trailing = text[len(body):]
        if body:
            kind = ThinkingDelta if self._mode == "thinking" else AnswerDelta
            out.append(kind(self._pending_space + body))
            self._pending_space = trailing
        else:
            self._pending_space += trailing

    def flush(self) -> list[Delta]:
        """End of output: what was held back is text of the current block (an unfinished
        tag included), minus trailing whitespace."""
        out: list[Delta] = []
        held, self._held = self._held, ""
        if self._mode == "start":
            self._switch("answer")
        self._emit(out, held)
        return out


@dataclass
class Texts:
    answer: str = ""
    thinking: str = ""

    def add(self, delta: Delta) -> None:
        if isinstance(delta, ThinkingDelta):
            self.thinking += delta.text
        else:
            self.answer += delta.text


class OutputParser:
    """Token bytes in, deltas out: UTF-8 reassembly -> stop strings -> think split."""

    def __init__(self, stops: Sequence[str], *, inside_think: bool = False) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(stops)
        self._think = ThinkSplitter(inside_think=inside_think)
        self.texts = Texts()

    @property
    def stopped(self) -> bool:
        """A stop string has been met: generation should end."""
        return self._stops.stopped

    def feed_bytes(self, piece: bytes) -> list[Delta]:
        return self.feed_text(self._utf8.decode(piece))

    def feed_text(self, text: str) -> list[Delta]:
        return self._record(self._think.feed(self._stops.feed(text)))

    def finish(self) -> list[Delta]:
        tail = self._utf8.decode(b"", final=True)
        deltas = self._think.feed(self._stops.feed(tail))
        if not self._stops.stopped:
            deltas += self._think.feed(self._stops.flush())
        return self._record(deltas + self._think.flush())

    def _record(self, deltas: list[Delta]) -> list[Delta]:
        for delta in deltas:
            self.texts.add(delta)
        return deltas
