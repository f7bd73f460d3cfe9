"""Fuzzing what an OpenAI-compatible server answers (`--endpoint`, the app's servers): a
streamed answer whose chunks hold any JSON value at any place (choices a string, usage a
list, a delta a number, a count that is not a number), the stream's bytes damaged, or a
whole (non-streamed) completion damaged. The property: the reply's events end in Finished,
or the server's answer is refused with one line naming the server (EndpointError, exit 2);
never another exception (which would stop a whole batch as an internal error) or a hang.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.engine.events import Finished
from app.engine.openai_backend import OpenAIBackend
from app.engine.server_client import NO_RETRY, ServerOptions
from tests.loopback import Loopback, Reply, Request
from tests.tools.fuzzing import fuzz_settings, mutated_bytes, mutated_json, refused_or_read

HI = [{"role": "user", "content": "hello"}]

# A streamed answer as llama.cpp's server sends it: role, thinking, content, finish, usage
# with llama.cpp's timings, then [DONE].
CHUNKS: list[Any] = [
    {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"reasoning_content": "Let me think."},
                  "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "The answer"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": " is 4."}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7,
                              "prompt_tokens_details": {"cached_tokens": 5}},
     "timings": {"prompt_n": 7, "predicted_n": 7}},
]
COMPLETION: dict[str, Any] = {
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "The answer is 4."}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7}}


def sse_bytes(chunks: list[Any]) -> bytes:
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
    return "".join(events).encode("utf-8", "surrogatepass")


class _Answers:
    """The loopback server's app: whatever the current case sets."""

    def __init__(self) -> None:
        self.reply = Reply()

    def __call__(self, _request: Request) -> Reply:
        return self.reply


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Loopback, _Answers]]:
    answers = _Answers()
    with Loopback(answers) as loopback:
        yield loopback, answers


def _ask(url: str) -> Finished:
    backend = OpenAIBackend(url, options=ServerOptions(timeout=5, retry=NO_RETRY))
    events = list(backend.stream(HI))
    assert isinstance(events[-1], Finished)
    assert not any(isinstance(e, Finished) for e in events[:-1])
    return events[-1]


def _check(server: tuple[Loopback, _Answers], reply: Reply) -> None:
    loopback, answers = server
    answers.reply = reply
    result = refused_or_read(lambda: _ask(loopback.url), names=loopback.url, seconds=10)
    if isinstance(result, Finished):
        assert isinstance(result.answer, str) and isinstance(result.thinking, str)
        assert result.stats.completion_tokens >= 0


def test_the_unmutated_answer_is_read(server):
    loopback, answers = server
    answers.reply = Reply(chunks=[sse_bytes(CHUNKS)], content_type="text/event-stream")
    finished = _ask(loopback.url)
    assert (finished.thinking, finished.answer) == ("Let me think.", "The answer is 4.")


@fuzz_settings(150)
@given(chunks=mutated_json(CHUNKS, focus=("choices", "delta", "usage", "finish_reason")))
def test_damaged_chunks_are_refused_or_read(server, chunks):
    body = sse_bytes(chunks if isinstance(chunks, list) else [chunks])
    _check(server, Reply(chunks=[body], content_type="text/event-stream"))


@fuzz_settings(100)
@given(data=st.data())
def test_damaged_stream_bytes_are_refused_or_read(server, data):
    body = data.draw(mutated_bytes(sse_bytes(CHUNKS)))
    _check(server, Reply(chunks=[body], content_type="text/event-stream"))


@fuzz_settings(100)
@given(completion=mutated_json(COMPLETION, focus=("choices", "message", "usage")))
def test_damaged_whole_completions_are_refused_or_read(server, completion):
    _check(server, Reply(body=completion))


MODELS: dict[str, Any] = {"object": "list", "data": [
    {"id": "moral-audit", "object": "model", "owned_by": "llamacpp"},
    {"id": "sentencing", "object": "model", "owned_by": "llamacpp"}]}


@fuzz_settings(60)
@given(listing=mutated_json(MODELS, focus=("data", "id")))
def test_damaged_model_lists_are_refused_or_read(server, listing):
    """`amicus servers` and the app's server check read GET /v1/models."""
    from app.assistants.server import list_server_models

    loopback, answers = server
    answers.reply = Reply(body=listing)
    refused_or_read(lambda: list_server_models(loopback.url, ["moral-audit"]),
                    names=loopback.url, seconds=10)
