"""Progress lines for a build that can take minutes (compiling llama.cpp, packing GBs)."""

from __future__ import annotations

import sys
import time


def human_size(size: int) -> str:
    """Decimal units, as file managers on the clinic laptops show them."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class Steps:
    """Numbered steps ("[2/5] wheelhouse: ...") with the time each one took."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.current = 0
        self._started = time.perf_counter()

    def start(self, title: str) -> None:
        self._finish_previous()
        self.current += 1
        self._started = time.perf_counter()
        print(f"[{self.current}/{self.total}] {title}", flush=True)

    def done(self) -> None:
        self._finish_previous()

    def _finish_previous(self) -> None:
        if self.current:
            print(f"      ({time.perf_counter() - self._started:.1f} s)", flush=True)


def note(text: str) -> None:
    print(f"      {text}", flush=True)


LOG_EVERY_PERCENT_FROM = 200_000_000  # smaller jobs take seconds: one line in a log


class ByteProgress:
    """A percentage of bytes processed, refreshed in place on a terminal and every 10% in a
    log (CI), so a multi-GB archive never looks hung."""

    def __init__(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self._shown = 0
        self._tty = sys.stdout.isatty()
        self._step = 1 if self._tty else 10 if total >= LOG_EVERY_PERCENT_FROM else 100

    def advance(self, count: int) -> None:
        self.done += count
        percent = min(100, self.done * 100 // self.total)
        step = self._step
        if percent // step != self._shown // step:
            self._shown = percent
            text = f"      {self.label}: {human_size(self.done)} / {human_size(self.total)} " \
                   f"({percent}%)"
            print(f"\r{text}" if self._tty else text, end="" if self._tty else "\n",
                  flush=True)

    def close(self) -> None:
        if self._tty:
            print(flush=True)
