"""FakeEngine: the scripted stand-in UI tests use, behaving like the real engine."""

from __future__ import annotations

import threading

import pytest

from app.engine.errors import EngineBusyError, EngineError
from app.engine.events import AnswerDelta, Finished, PromptStarted, ThinkingDelta
from app.engine.fake import FakeEngine
from app.engine.protocol import ChatEngine

HELLO = [{"role": "user", "content": "hello"}]


def test_scripted_stream_splits_thinking_and_honours_stops():
    fake = FakeEngine(["<think>", "hm", "</think>", "Hello", " world", "<|im_", "end|>", "x"])
    events = list(fake.stream(HELLO, params={"stop": ["<|im_end|>"]}))
    assert isinstance(events[0], PromptStarted)
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["hm"]
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "Hello world"
    final = events[-1]
    assert isinstance(final, Finished)
    assert (final.answer, final.thinking, final.stats.stop_reason) == ("Hello world", "hm",
                                                                       "stop")


def test_replies_in_turn_and_calls_recorded():
    fake = FakeEngine(replies=["one", "two"])
    answers = [list(fake.stream(HELLO, system="be brief"))[-1].answer for _ in range(3)]
    assert answers == ["one", "two", "two"]
    assert fake.calls[0]["messages"][0] == {"role": "system", "content": "be brief"}


def test_cancel_keeps_the_partial_answer():
    gate, cancel = threading.Event(), threading.Event()
    fake = FakeEngine("a b c d e f", gate=gate)
    stream = fake.stream(HELLO, cancel=cancel)
    assert isinstance(next(stream), PromptStarted)
    gate.set()
    first = next(stream)
    assert first == AnswerDelta("a")
    cancel.set()
    final = list(stream)[-1]
    assert final.cancelled and final.answer == "a"


def test_num_predict_and_busy_and_error():
    fake = FakeEngine("a b c d")
    final = list(fake.stream(HELLO, params={"num_predict": 2}))[-1]
    assert (final.answer, final.stats.stop_reason, final.stats.completion_tokens) == \
        ("a b", "length", 2)
    running = fake.stream(HELLO)
    next(running)
    with pytest.raises(EngineBusyError):
        next(fake.stream(HELLO))
    running.close()
    list(fake.stream(HELLO))  # the lock was released
    with pytest.raises(EngineError, match="boom"):
        list(FakeEngine(error=EngineError("boom")).stream(HELLO))


def test_it_satisfies_the_engine_protocol():
    assert isinstance(FakeEngine(), ChatEngine)


def test_the_fake_reads_in_chunks_cancels_and_reports_how_a_reply_ended():
    import threading

    from app.engine.events import ReadingProgress

    fake = FakeEngine("one two three four", read_chunks=4, dropped_turns=2, n_ctx=12)
    events = list(fake.stream([{"role": "user", "content": "x" * 36}]))  # 10 prompt tokens
    reads = [e.read for e in events if isinstance(e, ReadingProgress)]
    assert reads == [2, 5, 7, 10]
    final = events[-1]
    assert (final.answer, final.stats.stop_reason) == ("one two", "context")
    assert final.stats.dropped_turns == 2 and final.cut_off is not None
    cancel = threading.Event()
    stopped = None
    for event in fake.stream([{"role": "user", "content": "x" * 36}], cancel=cancel):
        if isinstance(event, ReadingProgress) and event.read == 5:
            cancel.set()
        stopped = event
    assert stopped.cancelled and stopped.stats.prompt_read == 5 and stopped.answer == ""
