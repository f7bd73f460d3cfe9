"""OpenAIBackend (`--endpoint`): against llama-cpp-python's own OpenAI-compatible server on a
tiny converted GGUF, and against a scripted SSE server for what that server never sends
(reasoning fields, inline think blocks, usage, in-stream errors, a silent server).
Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.engine.credentials import Secret
from app.engine.events import (
    AnswerDelta,
    Event,
    Finished,
    PromptStarted,
    ThinkingDelta,
)
from app.engine.openai_backend import Endpoint, EndpointError, OpenAIBackend
from app.engine.params import GenerationParams
from app.engine.protocol import ChatEngine
from app.engine.server_client import ServerOptions
from converters.pipeline import ConvertRequest, Progress, convert
from converters.synthetic import checkpoints as synthetic
from tests.loopback import free_port, llama_cpp_server

HI = [{"role": "user", "content": "hi"}]
GREEDY = {"temperature": 0.0, "top_k": 1, "seed": 1}


@dataclass(frozen=True)
class Server:
    url: str
    model_path: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("openai-server")
    source = synthetic.build_qwen3(root / "src").path
    request = ConvertRequest(base=str(source), name="m", out_dir=root / "out", quant="Q4_K_M")
    model = convert(request, Progress(enabled=False)).outputs[0]
    # A small context so that one test can overflow it cheaply.
    with llama_cpp_server(model, root / "server.log", n_ctx=512) as url:
        yield Server(url, model)


def _collect(events: Iterator[Event]) -> tuple[list[Event], Finished]:
    out = list(events)
    finished = [e for e in out if isinstance(e, Finished)]
    assert len(finished) == 1 and out[-1] is finished[0], out
    return out, finished[0]


def _joined(events: list[Event], kind: type) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


def test_streams_prompt_started_deltas_and_one_finished(server):
    backend = OpenAIBackend(server.url)
    assert isinstance(backend, ChatEngine)
    events, finished = _collect(backend.stream(HI, system="Be brief.",
                                               params={**GREEDY, "num_predict": 4}))
    assert isinstance(events[0], PromptStarted)
    assert events[0] == PromptStarted(0, 0, 0, 0)  # unknown for a server, documented
    assert any(isinstance(e, AnswerDelta) for e in events)
    assert _joined(events, AnswerDelta) == finished.answer != ""
    assert _joined(events, ThinkingDelta) == finished.thinking
    stats = finished.stats
    # This server sends no usage when streaming, so the count is the number of text chunks:
    # one per token, plus a few empty ones this server repeats at the end.
    assert stats.completion_tokens >= 4
    assert stats.stop_reason == "length"
    assert stats.prompt_ms > 0 and stats.generation_ms >= 0


def test_stop_strings_end_the_answer_before_them(server):
    backend = OpenAIBackend(server.url)
    params = {**GREEDY, "num_predict": 24}
    _, baseline = _collect(backend.stream(HI, params=params))
    text = baseline.answer
    assert len(text) >= 8, text
    stop = text[len(text) // 3: len(text) // 3 + 2]
    _, stopped = _collect(backend.stream(HI, params={**params, "stop": [stop]}))
    assert stopped.answer == text[: text.find(stop)].rstrip()
    assert stop not in stopped.answer
    assert stopped.stats.stop_reason == "stop"


def test_cancel_mid_stream_stops_promptly(server):
    backend = OpenAIBackend(server.url)
    cancel = threading.Event()
    seen: list[Event] = []
    started = time.perf_counter()
    # Kept short: this server finishes a generation its client left (llama.cpp's server and
    # vLLM abort it), and the next request waits for that.
    for event in backend.stream(HI, params={"num_predict": 48, "seed": 3}, cancel=cancel):
        seen.append(event)
        if isinstance(event, (AnswerDelta, ThinkingDelta)) and not cancel.is_set():
            cancel.set()
            cancelled_at = len(seen)
    assert time.perf_counter() - started < 5
    finished = seen[-1]
    assert isinstance(finished, Finished) and finished.cancelled
    assert len(seen) == cancelled_at + 1  # nothing read after the cancel
    assert finished.stats.completion_tokens < 48
    # The server is left healthy: the next request works.
    _, again = _collect(backend.stream(HI, params={**GREEDY, "num_predict": 2}))
    assert again.stats.stop_reason == "length"


def test_list_models_with_or_without_v1(server):
    for url in (server.url, f"{server.url}/", f"{server.url}/v1", f"{server.url}/v1/"):
        assert OpenAIBackend(url).list_models() == [str(server.model_path)]


def test_http_errors_carry_status_and_server_message(server):
    with pytest.raises(EndpointError, match=r"HTTP 404 Not Found: Not Found$"):
        OpenAIBackend(f"{server.url}/nope").list_models()
    # A request the server rejects: its validation message is the error, on one line. The
    # server was reached, so PromptStarted came first.
    events = OpenAIBackend(server.url).stream([{"role": "bogus", "content": "x"}])
    assert isinstance(next(events), PromptStarted)
    with pytest.raises(EndpointError, match=r"HTTP 500 .*validation error") as error:
        next(events)
    assert "\n" not in str(error.value)


def test_a_stream_the_server_breaks_off_is_an_error(server):
    """llama-cpp-python finds the context overflow only once streaming has begun, and then
    just drops the connection."""
    long = [{"role": "user", "content": "word " * 600}]
    with pytest.raises(EndpointError, match="ended the answer without finishing"):
        list(OpenAIBackend(server.url).stream(long))


def test_connection_refused_is_one_clear_line():
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}")
    events = backend.stream(HI)
    with pytest.raises(EndpointError, match=r"connection refused \(is the server running\?\)"):
        next(events)  # no event before the error
    with pytest.raises(EndpointError, match="connection refused"):
        backend.list_models()


# --- a scripted SSE server ------------------------------------------------------------------

Step = str | Callable[[], object]  # raw text to send, or something to do (wait)


@dataclass
class FakeServer:
    url: str
    script: list[Step] = field(default_factory=list)  # the answer's body, step by step
    status: int = 200  # anything else: answered with `error` as its JSON body
    error: dict[str, Any] = field(default_factory=dict)
    hold_headers: bool = False  # a server still reading the prompt: wait for `release`
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                  "body": json.loads(self.rfile.read(length))})
            if fake.hold_headers:
                fake.release.wait()
            if fake.status != 200:
                self.send_error_body()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for step in fake.script:
                    if callable(step):
                        step()
                    else:
                        self.wfile.write(step.encode("utf-8"))
                        self.wfile.flush()
            except OSError:  # the client hung up (stop string, cancel): expected
                pass

        def send_error_body(self) -> None:
            body = json.dumps(fake.error).encode("utf-8")
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    state = FakeServer("")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n"


def chunk(finish: str | None = None, **delta: str) -> str:
    return sse({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


DONE = sse("[DONE]")


def test_reasoning_content_is_thinking(fake):
    fake.script = [chunk(role="assistant"), ": ping\n\n",
                   chunk(reasoning_content="\nLet me"), chunk(reasoning_content=" think.\n"),
                   chunk(content="\n\nThe answer"), chunk(content=" is 4."), chunk("stop"),
                   sse({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7,
                                                 "prompt_tokens_details": {"cached_tokens": 5}}}),
                   DONE]
    events, finished = _collect(OpenAIBackend(fake.url).stream(HI))
    assert finished.thinking == _joined(events, ThinkingDelta) == "Let me think."
    assert finished.answer == _joined(events, AnswerDelta) == "The answer is 4."
    stats = finished.stats
    assert (stats.prompt_tokens, stats.prompt_evaluated, stats.completion_tokens) == (12, 7, 7)
    assert stats.stop_reason == "stop"


@pytest.mark.parametrize("name", ["thinking", "reasoning"])
def test_ollama_and_vllm_reasoning_fields_are_thinking(fake, name):
    fake.script = [chunk(**{name: "hmm"}), chunk(content="Hi"), chunk("length"), DONE]
    _, finished = _collect(OpenAIBackend(fake.url).stream(HI))
    assert (finished.thinking, finished.answer) == ("hmm", "Hi")
    assert finished.stats.stop_reason == "length"
    assert finished.stats.completion_tokens == 2  # no usage: one per text chunk


def test_inline_think_block_is_split_from_the_answer(fake):
    pieces = ["<thi", "nk>\nhmm", " ok</th", "ink>\n\nHi", " there"]
    fake.script = [*(chunk(content=p) for p in pieces), chunk("stop"), DONE]
    events, finished = _collect(OpenAIBackend(fake.url).stream(HI))
    assert finished.thinking == _joined(events, ThinkingDelta) == "hmm ok"
    assert finished.answer == _joined(events, AnswerDelta) == "Hi there"
    assert not any("<" in e.text for e in events if isinstance(e, (AnswerDelta, ThinkingDelta)))


def test_stop_strings_are_matched_here_too(fake):
    """A server that ignores `stop`: the answer still ends before it, across chunks."""
    fake.script = [chunk(content="Hello ST"), chunk(content="OP world"), fake.release.wait]
    started = time.perf_counter()
    events, finished = _collect(OpenAIBackend(fake.url).stream(HI, params={"stop": ["STOP"]}))
    assert finished.answer == _joined(events, AnswerDelta) == "Hello"
    assert finished.stats.stop_reason == "stop"
    assert time.perf_counter() - started < 2  # ended without waiting for the server


def test_cancel_interrupts_a_silent_server(fake):
    fake.script = [chunk(content="Partial"), fake.release.wait]
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    started = time.perf_counter()
    timer.start()
    _, finished = _collect(OpenAIBackend(fake.url, timeout=30).stream(HI, cancel=cancel))
    assert time.perf_counter() - started < 1.5
    assert finished.cancelled and finished.answer == "Partial"


def test_cancel_while_the_server_reads_the_prompt(fake):
    """No answer yet, not even headers: the cancel still ends the stream at once."""
    fake.hold_headers = True
    cancel = threading.Event()
    events = OpenAIBackend(fake.url, timeout=30).stream(HI, cancel=cancel)
    assert isinstance(next(events), PromptStarted)
    threading.Timer(0.2, cancel.set).start()
    started = time.perf_counter()
    rest = list(events)
    assert time.perf_counter() - started < 1.5
    assert len(rest) == 1 and isinstance(rest[0], Finished) and rest[0].cancelled
    assert rest[0].answer == ""


def test_an_ollama_style_error_body_is_the_message(fake):
    fake.status, fake.error = 404, {"error": "model 'moral-audit' not found"}
    with pytest.raises(EndpointError, match=r"HTTP 404 Not Found: model 'moral-audit' not found$"):
        list(OpenAIBackend(fake.url, model="moral-audit").stream(HI))


def test_a_silent_server_times_out_clearly(fake):
    fake.hold_headers = True
    with pytest.raises(EndpointError, match=r"no answer from .* within 0.3 s"):
        list(OpenAIBackend(fake.url, timeout=0.3).stream(HI))


def test_done_without_a_finish_reason_is_a_cut_answer_not_a_whole_one(fake):
    """What llama-cpp-python's server sends to a streamed answer another request
    interrupts: a batch must never record it as finished."""
    fake.script = [chunk(content="half an ans"), DONE]
    with pytest.raises(EndpointError, match="ended the answer without finishing it"):
        list(OpenAIBackend(fake.url).stream(HI))


def test_an_error_inside_the_stream_is_raised(fake):
    fake.script = [chunk(content="a"), sse({"error": {"message": "out of\nmemory"}})]
    with pytest.raises(EndpointError, match=r"failed mid-answer: out of memory$"):
        list(OpenAIBackend(fake.url).stream(HI))


def test_request_carries_system_and_openai_named_params(fake):
    fake.script = [chunk(content="ok"), chunk("stop"), DONE]
    params = GenerationParams(temperature=0.2, top_k=20, top_p=0.9, min_p=0.05,
                              repeat_penalty=1.1, repeat_last_n=32, presence_penalty=0.5,
                              frequency_penalty=0.25, num_predict=64, seed=7,
                              stop=("<|im_end|>",))
    backend = OpenAIBackend(f"{fake.url}/v1/", model="moral-audit",
                            options=ServerOptions(api_key=Secret("k")))
    history = [{"role": "user", "content": "hi", "thinking": "stored, not sent"}]
    _collect(backend.stream(history, system="Be kind.", params=params, think=False))
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer k"
    assert request["body"] == {
        "model": "moral-audit", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "Be kind."},
                     {"role": "user", "content": "hi"}],
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": ["<|im_end|>"],
        "seed": 7, "presence_penalty": 0.5, "frequency_penalty": 0.25, "top_k": 20,
        "min_p": 0.05, "repeat_penalty": 1.1, "repeat_last_n": 32, "repetition_penalty": 1.1,
        "chat_template_kwargs": {"enable_thinking": False}, "think": False,
    }


def test_params_none_or_partial_leave_the_servers_defaults(fake):
    fake.script = [chunk(content="ok"), chunk("stop"), DONE]
    backend = OpenAIBackend(fake.url)
    _collect(backend.stream(HI))
    _collect(backend.stream(HI, params={"temperature": "0.3", "num_predict": -1}))
    sampling = [{k: v for k, v in r["body"].items()
                 if k not in ("messages", "stream", "stream_options")} for r in fake.requests]
    assert sampling == [{}, {"temperature": 0.3}]


def test_endpoint_forms_and_locality():
    assert Endpoint.parse("http://127.0.0.1:8080/v1/").url == "http://127.0.0.1:8080/v1"
    assert Endpoint.parse("http://localhost:11434").url == "http://localhost:11434/v1"
    assert Endpoint.parse("https://gpu.clinic.lan/llm/v1").url == "https://gpu.clinic.lan:443/llm/v1"
    assert Endpoint.parse("http://[::1]:8000").is_local
    assert Endpoint.parse("http://localhost:8000").is_local
    assert not Endpoint.parse("http://192.168.1.20:8000").is_local
    assert not Endpoint.parse("http://gpu.clinic.lan").is_local  # never resolved here
    for bad in ("127.0.0.1:8080", "ftp://127.0.0.1", "http://", "http://h:notaport"):
        with pytest.raises(EndpointError, match="server address"):
            Endpoint.parse(bad)


def test_constructing_a_backend_contacts_nothing():
    """A remote endpoint is the user's explicit choice; merely naming it opens no socket
    (the suite's guard would fail this test if it did)."""
    backend = OpenAIBackend("http://198.51.100.7:8000", model="m")
    assert not backend.is_local
    assert "198.51.100.7" in backend.backend_info().describe()
