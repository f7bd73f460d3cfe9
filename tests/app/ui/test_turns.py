"""The widget-free rules: batching of deltas, what the model is sent, titles in cells,
terminal-safe text, export names."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from rich.cells import cell_len

from app.assistants.sentencing_case import NOT_LEGAL_ADVICE
from app.engine.events import AnswerDelta, Finished, GenerationStats, PromptStarted, ThinkingDelta
from app.store import Message
from app.ui import exporting
from app.ui.inference import pump
from app.ui.job import Job
from app.ui.messages import PromptReading, StreamChunk, TurnFinished
from app.ui.turns import Figures, auto_title, engine_history, printable

STATS = GenerationStats(prompt_tokens=10, prompt_evaluated=10, completion_tokens=3,
                        prompt_ms=1.0, generation_ms=2.0, tokens_per_second=1.5,
                        dropped_turns=0, stop_reason="stop", threads=1)


def job() -> Job:
    return Job(1, "moral-audit", "hi", [], None, None, None, False)


class Clock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_fast_deltas_are_batched_into_one_message():
    posted: list[object] = []
    events = [PromptStarted(10, 10, 0, 1), ThinkingDelta("a"), ThinkingDelta("b"),
              AnswerDelta("c"), AnswerDelta("d"), Finished("cd", "ab", STATS)]
    pump(job(), events, posted.append, clock=Clock(0.0, 0.001, 0.002, 0.003, 0.004, 0.005,
                                                   0.006))
    kinds = [type(m) for m in posted]
    assert kinds == [PromptReading, StreamChunk, TurnFinished]
    chunk = posted[1]
    assert (chunk.thinking, chunk.answer) == ("ab", "cd")


def test_reading_progress_is_forwarded_chunk_by_chunk():
    from app.engine.events import ReadingProgress
    from app.ui.messages import ReadingProgressed

    posted: list[object] = []
    progress = [ReadingProgress(256, 600, 100.0, 3.44), ReadingProgress(600, 600, 100.0, 0.0)]
    events = [PromptStarted(900, 600, 4, 1, restored=300), *progress, AnswerDelta("a"),
              Finished("a", "", STATS)]
    pump(job(), events, posted.append, clock=Clock(0.0))
    assert [type(m) for m in posted] == [PromptReading, ReadingProgressed, ReadingProgressed,
                                         StreamChunk, TurnFinished]
    assert (posted[0].prompt_tokens, posted[0].evaluating, posted[0].restored) == (900, 600,
                                                                                   300)
    assert [m.progress for m in posted[1:3]] == progress


def test_slow_deltas_go_out_as_they_come():
    posted: list[object] = []
    events = [AnswerDelta("a"), AnswerDelta("b"), AnswerDelta("c"), Finished("abc", "", STATS)]
    # 50 ms between tokens: each is past the 30 ms batch window when it arrives.
    pump(job(), events, posted.append, clock=Clock(0.0, 0.05, 0.05, 0.10, 0.10, 0.15, 0.15))
    assert [m.answer for m in posted if isinstance(m, StreamChunk)] == ["a", "b", "c"]


def test_an_engine_that_stops_without_finishing_is_an_error():
    import pytest

    from app.engine.errors import EngineError

    with pytest.raises(EngineError, match="without finishing"):
        pump(job(), [AnswerDelta("a")], lambda m: None)


def message(id: int, role: str, content: str, status: str = "complete") -> Message:
    return Message(id, 1, role, content, datetime(2025, 1, 1, tzinfo=timezone.utc),
                   status=status)  # type: ignore[arg-type]


def test_history_keeps_answered_turns_only():
    messages = [
        message(1, "user", "blocked one", "blocked"),
        message(2, "user", "first"), message(3, "assistant", "one"),
        message(4, "user", "failed"), message(5, "assistant", "oops", "error"),
        message(6, "user", "stopped"), message(7, "assistant", "partial", "cancelled"),
        message(8, "user", "判刑?"),
        message(9, "assistant", f"一年。\n\n{NOT_LEGAL_ADVICE}"),
    ]
    assert engine_history(messages) == [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "one"},
        {"role": "user", "content": "stopped"}, {"role": "assistant", "content": "partial"},
        {"role": "user", "content": "判刑?"}, {"role": "assistant", "content": "一年。"},
    ]


def test_titles_are_cut_in_terminal_cells():
    title = auto_title("房東以清潔費為由扣了全部押金，這樣合理嗎？我該怎麼辦才好呢" * 2)
    assert cell_len(title) <= 40 and title.endswith("…")
    assert auto_title("short\nsecond line") == "short"
    assert auto_title("   ") == "New conversation"


def test_control_characters_never_reach_the_terminal():
    assert printable("ok\x1b[2Jgone\x07\tand\nline\x9b") == "ok\ufffd[2Jgone\ufffd\tand\nline\ufffd"


def test_footer_figures():
    empty = Figures(n_ctx=4096)
    assert empty.describe() == "ctx 0/4096 (0%)"
    full = Figures(412, 96, 28.2, 3.4, 4096)
    assert full.describe() == "96 tokens · 28.2 tok/s · 3.4 s · ctx 508/4096"


def test_export_never_overwrites(tmp_path: Path):
    first = exporting.write(tmp_path / "new" / "租屋.md", "one")
    second = exporting.write(tmp_path / "new" / "租屋.md", "two")
    assert (first.name, second.name) == ("租屋.md", "租屋 (2).md")
    assert first.read_text("utf-8") == "one" and second.read_text("utf-8") == "two"
    assert not list((tmp_path / "new").glob(".export-*"))  # no temporary file left
