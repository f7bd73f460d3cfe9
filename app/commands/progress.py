"""What the command line shows while a long prompt is read, and how Ctrl-C stops it.

- Before sending: one line on stderr with the prompt's tokens against num_ctx and the
  reading time at this machine's measured rate (long prompts only).
- While reading: a progress bar on stderr (tokens read of total, rate, time left), one
  update per chunk.
- Ctrl-C: the first press asks the engine to stop at the next chunk (or the next token
  while writing), so what was read stays in its cache, and is saved for the next run; a
  second press interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from app.engine.events import Event, PromptStarted, ReadingProgress
from app.engine.reading import PromptEstimate

LONG_PROMPT_TOKENS = 256  # fewer than this read in a few seconds even on a laptop CPU


@contextlib.contextmanager
def cancel_on_interrupt() -> Iterator[threading.Event]:
    """An event the first Ctrl-C sets (the engine stops cleanly); the second one raises
    KeyboardInterrupt as usual. Outside the main thread, Ctrl-C is left alone."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\namicus: stopping (press Ctrl-C again to interrupt at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def announce(estimate: PromptEstimate | None, what: str = "the prompt") -> None:
    """The before-sending line, for a long prompt."""
    if estimate is None or not estimate.fits or estimate.to_read < LONG_PROMPT_TOKENS:
        return  # (a prompt that does not fit is refused with its own line)
    line = f"amicus: reading {what}: {estimate.to_read:,} tokens to read, " \
           f"{estimate.describe()}"
    if estimate.tokens_per_second:
        line += f" (at {estimate.tokens_per_second:.0f} tokens/s measured on this machine)"
    print(line, file=sys.stderr)


class ReadingBar:
    """A tqdm bar on stderr fed with the engine's reading events (long prompts only)."""

    def __init__(self, description: str = "reading") -> None:
        self._description = description
        self._bar: Any = None

    def feed(self, event: Event | ReadingProgress) -> None:
        if isinstance(event, PromptStarted) and event.evaluating >= LONG_PROMPT_TOKENS:
            self._open(event.evaluating)
        elif isinstance(event, ReadingProgress):
            if self._bar is None and event.total >= LONG_PROMPT_TOKENS:
                self._open(event.total)
            if self._bar is not None:
                self._bar.update(event.read - self._bar.n)
                if event.read >= event.total:
                    self.close()
        elif not isinstance(event, PromptStarted):
            self.close()

    def _open(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=self._description, unit="tok", file=sys.stderr,
                         dynamic_ncols=True, leave=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
