"""The embedded engine on tiny GGUFs built by the real converter: loading errors, one BOS,
streaming, stop strings, thinking, cancel, KV-cache reuse, context trimming.

The models have random weights: their text is meaningless, but greedy decoding (temperature
0) is deterministic, which is all these tests need.
"""

from __future__ import annotations

import threading

import pytest

from app.engine.engine import Engine
from app.engine.errors import (
    ContextOverflowError,
    EngineBusyError,
    EngineError,
    ModelLoadError,
)
from app.engine.events import AnswerDelta, Finished, PromptStarted, ThinkingDelta
from app.engine.generation import common_prefix

GREEDY = {"temperature": 0, "num_predict": 24}
QUESTION = [{"role": "user", "content": "What does the court decide?"}]


@pytest.fixture(scope="module")
def qwen3(models):
    with Engine.load(models.qwen3, n_ctx=512) as engine:
        yield engine


@pytest.fixture(scope="module")
def llama(models):
    with Engine.load(models.llama, n_ctx=512) as engine:
        yield engine


def run(engine: Engine, messages, **kwargs):
    events = list(engine.stream(messages, **kwargs))
    assert isinstance(events[0], PromptStarted)
    assert isinstance(events[-1], Finished)
    assert not any(isinstance(e, PromptStarted | Finished) for e in events[1:-1])
    return events, events[-1]


def texts(events, kind) -> list[str]:
    return [e.text for e in events if isinstance(e, kind)]


# ---------------------------------------------------------------- loading


def test_bad_files_give_one_line_errors(tmp_path, models):
    truncated = tmp_path / "truncated.gguf"
    data = models.qwen3.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(data[:40])
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    cases = {tmp_path / "missing.gguf": "no such model file", text: "not a GGUF",
             empty: "not a GGUF", truncated: "not within the file bounds",
             header_only: "cannot load it", tmp_path: "no such model file"}
    for path, reason in cases.items():
        with pytest.raises(ModelLoadError) as caught:
            Engine.load(path)
        message = str(caught.value)
        assert reason in message and str(path) in message and "\n" not in message


def test_backend_info(qwen3, models):
    info = qwen3.backend_info()
    assert (info.gpu_offload_supported, info.gpu_layers) == (False, 0)  # the CPU build
    assert info.total_layers == 2 and info.adaptive_threads
    assert 1 <= info.threads <= info.physical_cores
    assert "CPU" in info.describe() and "adaptive" in info.describe()
    with Engine.load(models.qwen3, n_ctx=256, n_threads=1) as fixed:
        assert not fixed.backend_info().adaptive_threads
        _, final = run(fixed, QUESTION, params=GREEDY)
        assert final.stats.threads == 1


def test_gpu_layers_default_to_all_when_the_build_can_offload(monkeypatch):
    from app.engine import backend

    assert backend.resolve_gpu_layers(None) == 0  # this CPU build
    assert backend.resolve_gpu_layers(12) == 12  # settings win
    monkeypatch.setattr(backend, "gpu_offload_supported", lambda: True)
    assert backend.resolve_gpu_layers(None) == -1
    assert backend.offloaded_layers(-1, 28) == 28 and backend.offloaded_layers(10, 28) == 10
    info = backend.BackendInfo(True, 28, 28, 4, 8, True, "")
    assert info.describe() == "GPU 28/28 layers · 4 threads (adaptive, 8 cores)"


# ---------------------------------------------------------------- prompt


def test_a_conversation_the_template_refuses_is_a_clear_error(llama):
    twice = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(EngineError, match="alternate"):
        llama.prompt(twice)


def test_llama2_prompt_has_exactly_one_bos(llama):
    bos = llama.tokenize("")[0]
    tokens = llama.prompt(QUESTION, system="Be careful.").tokens
    assert tokens[0] == bos and tokens.count(bos) == 1
    # Llama-2's format opens every user turn with <s>: one per turn, never doubled.
    two_turns = [*QUESTION, {"role": "assistant", "content": "It acquits."},
                 {"role": "user", "content": "Why?"}]
    tokens = llama.prompt(two_turns).tokens
    assert tokens[1] != bos and tokens.count(bos) == 2


def test_qwen3_prompt_from_the_embedded_template(qwen3):
    on = qwen3.prompt(QUESTION, system="S", think=None)
    off = qwen3.prompt(QUESTION, system="S", think=False)
    assert on.text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n" \
        "What does the court decide?<|im_end|>\n<|im_start|>assistant\n"
    assert off.text == on.text + "<think>\n\n</think>\n\n"
    assert on.tokens == qwen3.tokenize(on.text)  # no BOS for Qwen
    assert not on.opens_thinking and not off.opens_thinking


# ---------------------------------------------------------------- streaming


def test_stream_events_and_stats(qwen3):
    qwen3.reset()
    events, final = run(qwen3, QUESTION, params=GREEDY, think=False)
    started = events[0]
    prompt = qwen3.prompt(QUESTION, think=False)
    assert started.prompt_tokens == started.evaluating == len(prompt.tokens)
    assert final.answer == "".join(texts(events, AnswerDelta))
    assert final.thinking == "".join(texts(events, ThinkingDelta))
    stats = final.stats
    assert stats.prompt_tokens == stats.prompt_evaluated == len(prompt.tokens)
    assert 0 < stats.completion_tokens <= GREEDY["num_predict"]
    assert stats.stop_reason in ("stop", "length") and stats.dropped_turns == 0
    assert stats.prompt_ms > 0 and stats.generation_ms > 0 and stats.tokens_per_second > 0
    assert stats.prompt_ms <= stats.first_token_ms <= stats.prompt_ms + stats.generation_ms + 50


def test_num_predict_limits_the_answer(qwen3):
    _, final = run(qwen3, QUESTION, params={"temperature": 0, "num_predict": 3})
    assert final.stats.completion_tokens <= 3
    if final.stats.completion_tokens == 3:
        assert final.stats.stop_reason == "length"


def test_stop_string_split_across_tokens(llama):
    llama.reset()
    events, free = run(llama, QUESTION, params={"temperature": 0, "num_predict": 40})
    deltas = texts(events, AnswerDelta)
    # Two neighbouring pieces of at least two characters (after the first): the stop string
    # spans the boundary between them.
    at = next(i for i in range(1, len(deltas) - 1)
              if len(deltas[i].strip()) >= 2 and len(deltas[i + 1].strip()) >= 2)
    stop = deltas[at][-2:] + deltas[at + 1][:2]
    expected = free.answer[: free.answer.index(stop)].rstrip()
    llama.reset()
    events, final = run(llama, QUESTION, params={"temperature": 0, "num_predict": 40,
                                                 "stop": ["never-seen", stop]})
    assert final.answer == expected == "".join(texts(events, AnswerDelta))
    assert stop not in final.answer and final.stats.stop_reason == "stop"


def test_thinking_prefilled_by_the_template_is_delivered_as_thinking(models):
    with Engine.load(models.qwen35, n_ctx=256) as engine:
        prompt = engine.prompt(QUESTION, think=True)
        assert prompt.text.endswith("<think>\n") and prompt.opens_thinking
        events, final = run(engine, QUESTION, params=GREEDY, think=True)
        assert final.thinking and final.thinking == "".join(texts(events, ThinkingDelta))
        assert "<think>" not in final.thinking + final.answer
        events, final = run(engine, QUESTION, params=GREEDY, think=False)
        assert final.answer and not final.thinking
        assert not texts(events, ThinkingDelta)


# ---------------------------------------------------------------- cancel


def test_cancel_stops_within_one_token(qwen3):
    cancel = threading.Event()
    stream = qwen3.stream(QUESTION, params={"temperature": 0, "num_predict": 200},
                          cancel=cancel)
    after_cancel = []
    for event in stream:
        if cancel.is_set():
            after_cancel.append(event)
        elif isinstance(event, AnswerDelta | ThinkingDelta):
            cancel.set()
    final = after_cancel[-1]
    assert isinstance(final, Finished) and final.cancelled
    assert len(after_cancel) <= 2  # at most the held-back text, then Finished
    assert final.stats.completion_tokens < 10
    assert final.answer or final.thinking  # the partial text is the caller's to keep


def test_cancel_before_the_prompt_is_read(qwen3):
    cancel = threading.Event()
    cancel.set()
    _, final = run(qwen3, QUESTION, params=GREEDY, cancel=cancel)
    assert final.cancelled and final.stats.completion_tokens == 0 and final.answer == ""


def test_one_generation_at_a_time(qwen3):
    first = qwen3.stream(QUESTION, params=GREEDY)
    next(first)
    with pytest.raises(EngineBusyError):
        next(qwen3.stream(QUESTION, params=GREEDY))
    first.close()
    run(qwen3, QUESTION, params=GREEDY)


# ---------------------------------------------------------------- KV-cache reuse


def test_follow_up_turn_evaluates_only_the_new_tokens(llama):
    llama.reset()
    long_question = [{"role": "user", "content": "The facts of the case are these. " * 25}]
    _, first = run(llama, long_question, params=GREEDY)
    cached = llama.cached_tokens()
    follow_up = [*long_question, {"role": "assistant", "content": first.answer},
                 {"role": "user", "content": "And the sentence?"}]
    prompt = llama.prompt(follow_up, params=GREEDY).tokens
    new_tokens = len(prompt) - common_prefix(cached, prompt)
    _, second = run(llama, follow_up, params=GREEDY)
    assert second.stats.prompt_tokens == len(prompt)
    assert second.stats.prompt_evaluated == new_tokens
    first_prompt = first.stats.prompt_tokens
    assert first_prompt > 250
    assert new_tokens <= len(prompt) - first_prompt + 1  # never the history again


def test_same_prompt_again_evaluates_one_token(llama):
    llama.reset()
    run(llama, QUESTION, params=GREEDY)
    events, _ = run(llama, QUESTION, params=GREEDY)
    assert events[0].evaluating == 1  # the last prompt token, for fresh logits


def test_hybrid_model_follow_up_turn(models):
    """Qwen3.5's recurrent layers cannot be rewound: the engine falls back to a full read."""
    with Engine.load(models.qwen35, n_ctx=512) as engine:
        _, first = run(engine, QUESTION, params=GREEDY, think=False)
        follow_up = [*QUESTION, {"role": "assistant", "content": first.answer or "ok"},
                     {"role": "user", "content": "Why?"}]
        events, second = run(engine, follow_up, params=GREEDY, think=False)
        assert 0 < events[0].evaluating <= second.stats.prompt_tokens
        assert second.stats.completion_tokens > 0


# ---------------------------------------------------------------- context budget


def long_conversation(turns: int) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a clerk."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question {i}: " + "word " * 20})
        messages.append({"role": "assistant", "content": f"Answer {i}: " + "reply " * 20})
    messages.append({"role": "user", "content": "The last question."})
    return messages


def test_oldest_turns_are_dropped_to_fit_the_context(models):
    with Engine.load(models.llama, n_ctx=256) as engine:
        messages = long_conversation(8)
        params = {"temperature": 0, "num_predict": 16}
        prompt = engine.prompt(messages, params=params)
        assert prompt.dropped_turns > 0 and prompt.dropped_turns % 2 == 0
        assert len(prompt.tokens) + 16 <= 256
        assert "You are a clerk." in prompt.text and "The last question." in prompt.text
        assert "Question 0:" not in prompt.text
        # The fewest turns were dropped: keeping one more pair would not fit.
        kept_more = [messages[0], *messages[1 + prompt.dropped_turns - 2:]]
        assert engine.prompt(kept_more, params=params).dropped_turns > 0
        events, final = run(engine, messages, params=params)
        assert events[0].dropped_turns == final.stats.dropped_turns == prompt.dropped_turns


def test_a_last_message_too_long_for_the_context_is_a_clear_error(models):
    with Engine.load(models.llama, n_ctx=128) as engine:
        huge = [{"role": "user", "content": "word " * 400}]
        with pytest.raises(ContextOverflowError, match="too long"):
            next(engine.stream(huge, params=GREEDY))
        run(engine, QUESTION, params={"temperature": 0, "num_predict": 4})  # still usable
