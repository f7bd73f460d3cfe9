"""Reading a long prompt on the real engine: chunks with progress, cancel between chunks,
continue where reading stopped (the next-token logits equal an uninterrupted read's), the
estimate before sending, and nothing silent about how a reply ended."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from app.engine.engine import Engine
from app.engine.events import (
    AnswerDelta,
    Finished,
    PromptStarted,
    ReadingProgress,
    ThinkingDelta,
    cut_off,
    dropped_turns_note,
)
from app.engine.generation import ChunkPlan, common_prefix
from app.engine.reading import PromptEstimate, ReadingRates, duration
from converters.llama_runtime import last_logits

CHUNK = 64
FIRST = {"temperature": 0, "num_predict": 1}  # stops before evaluating the sampled token
CASE = [{"role": "user", "content": "The facts of the case are these. " * 60 + "What now?"}]


@pytest.fixture(scope="module")
def engine(models):
    with Engine.load(models.qwen3, n_ctx=2048, read_chunk=CHUNK) as loaded:
        yield loaded


def read_all(engine, messages=CASE, **kwargs):
    events = list(engine.stream(messages, params=FIRST, **kwargs))
    return events, last_logits(engine._llm)


def test_the_prompt_is_read_in_chunks_with_progress(engine):
    engine.reset()
    events, _ = read_all(engine)
    started, final = events[0], events[-1]
    assert isinstance(started, PromptStarted) and isinstance(final, Finished)
    progress = [e for e in events if isinstance(e, ReadingProgress)]
    total = started.evaluating
    assert total > 10 * CHUNK
    assert [p.read for p in progress] == [*range(CHUNK, total, CHUNK), total]
    assert all(p.total == total and p.tokens_per_second > 0 for p in progress)
    assert progress[-1].seconds_left == 0 and progress[-1].fraction == 1.0
    assert all(p.seconds_left > 0 for p in progress[:-1])
    # Progress comes before any text, and only while reading.
    first_text = next((i for i, e in enumerate(events)
                       if isinstance(e, AnswerDelta | ThinkingDelta | Finished)))
    assert all(isinstance(e, ReadingProgress) for e in events[1:first_text])
    assert final.stats.prompt_read == -1  # read to the end


def test_cancel_while_reading_then_continue_where_it_stopped(engine):
    engine.reset()
    _, uninterrupted = read_all(engine)
    engine.reset()
    cancel = threading.Event()
    seen = []
    for event in engine.stream(CASE, params=FIRST, cancel=cancel):
        seen.append(event)
        if isinstance(event, ReadingProgress) and event.read == 3 * CHUNK:
            cancel.set()
    final = seen[-1]
    assert isinstance(final, Finished) and final.cancelled
    assert final.stats.prompt_read == 3 * CHUNK and final.stats.completion_tokens == 0
    after_cancel = seen[seen.index(next(e for e in seen if isinstance(e, ReadingProgress)
                                        and e.read == 3 * CHUNK)) + 1:]
    assert after_cancel == [final]  # stopped at the next chunk boundary: nothing more read
    prompt = engine.prompt(CASE, params=FIRST).tokens
    assert engine.cached_tokens() == prompt[:3 * CHUNK]  # what was read stays
    events, continued = read_all(engine)
    assert events[0].evaluating == len(prompt) - 3 * CHUNK  # only the unread part
    np.testing.assert_array_equal(continued, uninterrupted)


def test_adaptive_chunks_aim_at_a_second_each():
    plan = ChunkPlan(512)
    assert plan.size == 32  # small first: a cancel is answered quickly
    plan.measured(32, 0.1)  # 320 tokens/s
    assert plan.size == 320
    plan.measured(320, 0.01)  # very fast: at most one llama.cpp batch
    assert plan.size == 512
    plan.measured(512, 100.0)  # very slow: still a few tokens at a time
    assert plan.size == 16
    assert ChunkPlan(512, fixed=64).size == 64 and ChunkPlan(32, fixed=64).size == 32


def test_the_estimate_before_sending(models, tmp_path):
    rates = ReadingRates(tmp_path / "rates.json")
    with Engine.load(models.qwen3, n_ctx=2048, rates=rates) as fresh:
        estimate = fresh.estimate(CASE, params={"num_predict": 100})
        prompt = fresh.prompt(CASE).tokens
        assert (estimate.prompt_tokens, estimate.to_read, estimate.n_ctx) == (
            len(prompt), len(prompt), 2048)
        assert estimate.fits and estimate.answer_reserve == 100
        assert estimate.tokens_per_second is None and estimate.reading_seconds is None
        list(fresh.stream(CASE, params=FIRST))  # the first read measures the rate
        rate = rates.rate(fresh.rate_key)
        assert rate is not None and rate > 0
        again = fresh.estimate(CASE)
        assert again.to_read == 1 and again.tokens_per_second == rate  # the cache holds it
        follow = [{"role": "user", "content": CASE[0]["content"] + " Why?"}]
        longer, tokens = fresh.estimate(follow), fresh.prompt(follow).tokens
        assert longer.to_read == len(tokens) - common_prefix(fresh.cached_tokens(), tokens)
        assert 1 < longer.to_read < 20
        too_long = fresh.estimate([{"role": "user", "content": "word " * 4000}])
        assert not too_long.fits and too_long.prompt_tokens > 2048
        assert "more than the 1,536 num_ctx 2,048 leaves" in too_long.describe()
    # Remembered for the next session, per model.
    assert ReadingRates(tmp_path / "rates.json").rate(fresh.rate_key) == rate


def test_estimate_wording():
    estimate = PromptEstimate(3012, 16384, 512, 3000, 0, True, 22.0)
    assert estimate.describe() == "3,012 of 16,384 tokens · reading about 2 min 16 s"
    assert PromptEstimate(300, 4096, 512, 300, 0, True, None).describe() == \
        "300 of 4,096 tokens · 300 to read"
    assert [duration(s) for s in (3, 59.6, 120, 137, 3780)] == \
        ["3 s", "1 min", "2 min", "2 min 17 s", "1 h 3 min"]


def test_stop_reasons_say_why_a_reply_was_cut_off(models):
    with Engine.load(models.qwen3, n_ctx=256) as small:
        limited = read_all(small, [{"role": "user", "content": "hi"}])[0][-1]
        assert limited.stats.stop_reason == "length" and limited.stats.num_predict == 1
        assert limited.cut_off == "cut off: the answer limit num_predict (1 tokens) was reached"
        # A prompt that leaves little room: the context fills before the model stops.
        long = [{"role": "user", "content": "word " * 40}]
        events = list(small.stream(long, params={"temperature": 0, "num_predict": -1,
                                                 "stop": []}))
        final = events[-1]  # greedy on fixed weights: deterministic, and it never stops
        assert final.stats.stop_reason == "context"
        assert final.cut_off == "cut off: the context window (256 tokens) is full"
        assert small.cached_tokens() and len(small.cached_tokens()) == 256
    assert dropped_turns_note(0) is None
    assert dropped_turns_note(4) == \
        "4 earlier messages no longer fit the context: the model does not see them"
    assert cut_off(limited.stats.__class__(**{**limited.stats.as_dict(),
                                               "stop_reason": "cancelled"})) is None
