"""The same chat interface as Engine, answered by an OpenAI-compatible server (`--endpoint`).

    backend = OpenAIBackend("http://127.0.0.1:11434", model="moral-audit")   # Ollama
    for event in backend.stream(messages, params={"temperature": 0.2}):
        ...                                     # PromptStarted, *Delta, Finished

For a clinic that outgrows one laptop: a local Ollama, llama.cpp's `llama-server`, vLLM or
llama-cpp-python's server. Nothing is contacted by default: there is no default endpoint,
constructing a backend opens no connection, and the endpoint is whatever the user typed,
loopback or not (a server on the clinic's network is theirs to choose). `is_local` tells the
UI whether answers come from this machine.

Standard library only (http.client and a small SSE reader): no new run-time dependency, and
unlike urllib, http.client never routes through an HTTP(S)_PROXY from the environment, so a
loopback endpoint stays on loopback.

What a remote server does not tell us, reported as 0 ("unknown"):
- PromptStarted: prompt_tokens, evaluating, dropped_turns and threads are all 0. The server
  tokenizes, trims and caches on its side; the UI shows "reading the prompt" without a count.
- GenerationStats: prompt_tokens / prompt_evaluated come from the server's `usage` (and
  llama.cpp's `timings` or `prompt_tokens_details.cached_tokens` for the cached part) when
  it sends them, else 0. completion_tokens comes from `usage` (asked for with
  `stream_options`; llama.cpp's server, vLLM and Ollama send it), else it is an estimate:
  the number of streamed text chunks, one per token, though llama-cpp-python's server (which
  never sends usage while streaming) repeats a few chunks at the end. dropped_turns and
  threads are 0: a conversation that does not fit is the server's to trim or refuse.
  prompt_ms is measured here (request sent -> first streamed chunk), generation_ms from
  then to the end.

Thinking: `reasoning_content` (llama.cpp server, vLLM), `reasoning` (newer vLLM, Ollama's
OpenAI layer) and `thinking` (Ollama) arrive as ThinkingDelta; `<think>...</think>` written
inline in `content` is split by the same parser as the embedded engine. (Not handled: a
template that pre-fills `<think>` on a server that does not split reasoning itself; the
prompt is rendered over there, so its thinking would read as answer.)
Stop strings are sent to the server and also matched here on the answer text, so they
never reach the caller even from a server that ignores them; a local match ends the stream.
Cancel: checked before every chunk, and a watcher shuts the socket down at once when the
server is silent (reading a long prompt), so a cancel lands within one chunk either way.
Closing the connection is how a client cancels: llama.cpp's server, vLLM and Ollama then
abort the generation; llama-cpp-python's server finishes it first (its next answer waits).
Errors are EndpointError (an EngineError), one line each: unreachable server, HTTP status
with the server's own message, a broken-off stream, a timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from app.engine.backend import BackendInfo
from app.engine.errors import EngineError
from app.engine.events import (
    AnswerDelta,
    Event,
    Finished,
    GenerationStats,
    PromptStarted,
    StopReason,
    ThinkingDelta,
    tokens_per_second,
)
from app.engine.messages import with_system
from app.engine.output import OutputParser, Texts, ThinkSplitter
from app.engine.params import DEFAULT_NUM_CTX, GenerationParams

DEFAULT_TIMEOUT_S = 300.0  # a CPU server may read a long prompt for minutes before answering
_CANCEL_POLL_S = 0.05
_REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
_MAX_ERROR_CHARS = 300

Delta = AnswerDelta | ThinkingDelta


class EndpointError(EngineError):
    """The server could not be reached, refused the request, or broke off the stream."""


@dataclass(frozen=True)
class Endpoint:
    """A server's base URL, normalised: `http://host:8080`, `.../v1` and `.../v1/` all name
    the same server; a path prefix before `/v1` (a reverse proxy) is kept."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EndpointError(f"not an http(s) server address: {url!r} "
                                "(expected e.g. http://127.0.0.1:8080)")
        prefix = parts.path.rstrip("/")
        prefix = prefix.removesuffix("/v1")
        default_port = 443 if parts.scheme == "https" else 80
        try:
            port = parts.port or default_port
        except ValueError as exc:
            raise EndpointError(f"bad port in server address {url!r}") from exc
        return cls(parts.scheme, parts.hostname, port, prefix)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}/v1"

    @property
    def is_local(self) -> bool:
        """Loopback by address or as `localhost`; other names are not resolved (that would
        already be network use), so they count as remote."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class RemoteBackendInfo(BackendInfo):
    """BackendInfo for a server: the hardware fields are unknown (0), the summary names it."""

    def describe(self) -> str:
        return self.system_info


class OpenAIBackend:
    """A ChatEngine (see app.engine.protocol) that streams from `{endpoint}/v1/chat/completions`.

    `model`: sent as the request's model (Ollama needs it; single-model servers such as
    llama.cpp's ignore or default it); None leaves it out. `api_key`: sent as a bearer token.
    `timeout`: seconds to connect and to wait for each piece of the answer. `n_ctx`: the
    context size the caller plans with (the Modelfile's num_ctx); the server enforces its
    own and answers an error when a conversation does not fit."""

    def __init__(self, endpoint: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, *, n_ctx: int = DEFAULT_NUM_CTX) -> None:
        self.endpoint = Endpoint.parse(endpoint)
        self.model = model
        self._api_key = api_key
        self.timeout = timeout
        self._n_ctx = n_ctx

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def is_local(self) -> bool:
        return self.endpoint.is_local

    def backend_info(self) -> BackendInfo:
        where = "this machine" if self.is_local else "the network"
        model = f", model {self.model}" if self.model else ""
        return RemoteBackendInfo(
            gpu_offload_supported=False, gpu_layers=0, total_layers=0, threads=0,
            physical_cores=0, adaptive_threads=False,
            system_info=f"server {self.endpoint.url} ({where}{model})")

    def list_models(self) -> list[str]:
        """The model ids the server offers (GET /v1/models)."""
        url = self.endpoint.url
        conn, _ = self._send("GET", "/models", None)
        try:
            try:
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise EndpointError(_lost_message(exc, url, self.timeout)) from exc
            with response:
                _check_status(response, url)
                body = _read_json(response, url)
        finally:
            conn.close()
        return [str(m["id"]) for m in body.get("data", []) if isinstance(m, dict) and "id" in m]

    def stream(self, messages: Sequence[Mapping[str, Any]], *, system: str | None = None,
               params: Mapping[str, Any] | GenerationParams | None = None,
               think: bool | None = None,
               cancel: threading.Event | None = None) -> Iterator[Event]:
        """Generate the assistant's reply to `messages`, as Engine.stream does.

        `params` None sends no sampling fields, so the server's own defaults apply (for
        Ollama, the Modelfile's PARAMETERs); a mapping sends the fields it names; a
        GenerationParams sends all of them. Errors are EndpointError: a server that cannot
        be reached is reported before any event; PromptStarted follows as soon as the
        request is sent (the server is reading it), and the server's HTTP errors, which
        only its answer carries, come after it."""
        sampling = _sampling(params)
        body = self._body(messages, system, sampling, think)
        cancel = cancel or threading.Event()
        sent = time.perf_counter()
        conn, sock = self._send("POST", "/chat/completions", body)
        done = threading.Event()
        _watch_cancel(cancel, done, sock)  # also while the server reads the prompt
        reader = _Reader(conn, sampling.get("stop", ()), cancel, sent, self.endpoint.url,
                         self.timeout)
        try:
            yield PromptStarted(prompt_tokens=0, evaluating=0, dropped_turns=0, threads=0)
            yield from reader.run()
        finally:
            done.set()
            reader.close()
            conn.close()

    def close(self) -> None:
        """Nothing is held between requests (one connection per request)."""

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _body(self, messages: Sequence[Mapping[str, Any]], system: str | None,
              sampling: Mapping[str, Any], think: bool | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": chat_messages(messages, system),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.model:
            body["model"] = self.model
        body.update(openai_sampling(sampling))
        if think is not None:
            # llama.cpp server (--jinja) and vLLM pass these to the chat template (Qwen3's
            # enable_thinking); `think` is Ollama's name. Servers ignore what they don't know.
            body["chat_template_kwargs"] = {"enable_thinking": think}
            body["think"] = think
        return body

    def _send(self, method: str, path: str, body: dict[str, Any] | None,
              ) -> tuple[http.client.HTTPConnection, socket.socket | None]:
        """Connect and send one request (a failure is an EndpointError). The socket is
        returned apart because the connection forgets it once a response owns it (an
        answer with `Connection: close`)."""
        ep = self.endpoint
        conn_cls = (http.client.HTTPSConnection if ep.scheme == "https"
                    else http.client.HTTPConnection)
        conn = conn_cls(ep.host, ep.port, timeout=self.timeout)
        headers = {"Accept": "text/event-stream" if body else "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            conn.request(method, f"{ep.prefix}/v1{path}", body=data, headers=headers)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise EndpointError(_connection_message(exc, ep.url, self.timeout)) from exc
        return conn, conn.sock


def _check_status(response: http.client.HTTPResponse, url: str) -> None:
    if response.status >= 300:
        message = _error_text(response.read())
        raise EndpointError(f"server {url} answered HTTP {response.status} "
                            f"{response.reason}: {message}")


def chat_messages(messages: Sequence[Mapping[str, Any]],
                  system: str | None) -> list[dict[str, str]]:
    """`system` placed as the embedded engine places it; role and content only (a stored
    message's extra keys, such as its thinking, are no business of the server's)."""
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")}
            for m in with_system(messages, system)]


def _sampling(params: Mapping[str, Any] | GenerationParams | None) -> dict[str, Any]:
    """The parameters the caller chose, by Ollama name (see `stream` for None / mapping)."""
    if params is None:
        return {}
    if isinstance(params, GenerationParams):
        return {f.name: getattr(params, f.name) for f in fields(params)}
    chosen = GenerationParams.from_mapping(params)
    return {f.name: getattr(chosen, f.name) for f in fields(chosen)
            if params.get(f.name) is not None}


def openai_sampling(p: Mapping[str, Any]) -> dict[str, Any]:
    """Ollama-named parameters -> the request fields OpenAI-compatible servers read."""
    out: dict[str, Any] = {}
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if name in p:
            out[name] = p[name]
    if p.get("num_predict", -1) > 0:  # -1 / -2: until the model stops or the context fills
        out["max_tokens"] = p["num_predict"]
    if p.get("stop"):
        out["stop"] = list(p["stop"])
    if p.get("seed") is not None and p["seed"] >= 0:
        out["seed"] = p["seed"]
    # Not in OpenAI's API: llama.cpp's server and vLLM read them as extra fields (vLLM names
    # the repeat penalty `repetition_penalty`); Ollama's OpenAI layer ignores them and uses
    # the Modelfile's, which is where they come from anyway.
    for name in ("top_k", "min_p", "repeat_penalty", "repeat_last_n"):
        if name in p:
            out[name] = p[name]
    if "repeat_penalty" in p:
        out["repetition_penalty"] = p["repeat_penalty"]
    return out


def _watch_cancel(cancel: threading.Event, done: threading.Event,
                  sock: socket.socket | None) -> None:
    """Shut the socket down when `cancel` is set, so a read blocked on a silent server (one
    still reading a long prompt) returns at once instead of at the next chunk."""
    if sock is None:
        return

    def watch() -> None:
        while not done.wait(_CANCEL_POLL_S):
            if cancel.is_set():
                with contextlib.suppress(OSError):  # already closed: nothing to interrupt
                    sock.shutdown(socket.SHUT_RDWR)
                return

    threading.Thread(target=watch, name="amicus-endpoint-cancel", daemon=True).start()


@dataclass
class _Usage:
    prompt_tokens: int = 0
    prompt_evaluated: int = 0
    completion_tokens: int | None = None

    def update(self, chunk: Mapping[str, Any]) -> None:
        usage = chunk.get("usage") or {}
        timings = chunk.get("timings") or {}  # llama.cpp's server: prompt_n excludes the cache
        if "prompt_tokens" in usage:
            self.prompt_tokens = self.prompt_evaluated = int(usage["prompt_tokens"])
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            if cached is not None:
                self.prompt_evaluated = self.prompt_tokens - int(cached)
        if "completion_tokens" in usage:
            self.completion_tokens = int(usage["completion_tokens"])
        if "prompt_n" in timings:
            self.prompt_evaluated = int(timings["prompt_n"])


class _Reader:
    """Reads one streamed completion and turns its chunks into events."""

    def __init__(self, conn: http.client.HTTPConnection, stops: Sequence[str],
                 cancel: threading.Event, sent: float, url: str, timeout: float) -> None:
        self._conn = conn
        self._response: http.client.HTTPResponse | None = None
        self._answer = OutputParser(stops)  # content: stop strings, inline <think> split
        self._reasoning = ThinkSplitter(inside_think=True)  # server-split thinking
        self._texts = Texts()
        self._cancel = cancel
        self._sent = sent
        self._first: float | None = None
        self._url = url
        self._timeout = timeout
        self._usage = _Usage()
        self._chunks = 0
        self._finish: str | None = None

    def run(self) -> Iterator[Event]:
        reason = yield from self._read()
        yield from self._record(self._reasoning.flush() + self._answer.finish())
        yield self._finished(reason)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()

    def _read(self) -> Generator[Event, None, StopReason]:
        try:
            self._response = self._conn.getresponse()
            _check_status(self._response, self._url)
            for data in sse_data(self._response):
                if self._cancel.is_set():
                    return "cancelled"
                if data.strip() == "[DONE]":
                    return self._stop_reason()
                yield from self._record(self._chunk(data))
                if self._answer.stopped:  # a stop string the server let through
                    return "stop"
        except (OSError, http.client.HTTPException) as exc:
            if self._cancel.is_set():  # the watcher shut the socket down
                return "cancelled"
            raise EndpointError(_lost_message(exc, self._url, self._timeout)) from exc
        if self._cancel.is_set():
            return "cancelled"
        if self._finish is None:
            raise EndpointError(f"server {self._url} ended the answer without finishing it "
                                "(see the server's log: context full, or it crashed?)")
        return self._stop_reason()

    def _chunk(self, data: str) -> list[Delta]:
        if self._first is None:
            self._first = time.perf_counter()
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise EndpointError(f"server {self._url} sent a malformed chunk: "
                                f"{_one_line(data)}") from exc
        if not isinstance(chunk, dict):
            raise EndpointError(f"server {self._url} sent a malformed chunk: {_one_line(data)}")
        if "error" in chunk:  # llama.cpp, vLLM and Ollama report late failures in-stream
            raise EndpointError(f"server {self._url} failed mid-answer: "
                                f"{_error_message(chunk)}")
        self._usage.update(chunk)
        deltas: list[Delta] = []
        for choice in (chunk.get("choices") or [])[:1]:
            deltas += self._choice(choice)
        return deltas

    def _choice(self, choice: Mapping[str, Any]) -> list[Delta]:
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])
        delta = choice.get("delta") or {}
        out: list[Delta] = []
        texts = [delta.get(name) for name in _REASONING_FIELDS]
        texts.append(delta.get("content"))
        if any(t is not None for t in texts):
            self._chunks += 1
        for name in _REASONING_FIELDS:
            if delta.get(name):
                out += self._reasoning.feed(str(delta[name]))
        if delta.get("content"):
            out += self._answer.feed_text(str(delta["content"]))
        return out

    def _record(self, deltas: list[Delta]) -> Iterator[Delta]:
        for delta in deltas:
            self._texts.add(delta)
            yield delta

    def _stop_reason(self) -> StopReason:
        return "length" if self._finish == "length" else "stop"

    def _finished(self, reason: StopReason) -> Finished:
        end = time.perf_counter()
        first = self._first or end
        generation_s = end - first
        completion = self._usage.completion_tokens
        if completion is None:
            completion = self._chunks
        stats = GenerationStats(
            prompt_tokens=self._usage.prompt_tokens,
            prompt_evaluated=self._usage.prompt_evaluated, completion_tokens=completion,
            prompt_ms=round((first - self._sent) * 1000, 2),
            generation_ms=round(generation_s * 1000, 2),
            tokens_per_second=tokens_per_second(completion, generation_s),
            dropped_turns=0, stop_reason=reason, threads=0)
        return Finished(self._texts.answer, self._texts.thinking, stats)


def sse_data(response: http.client.HTTPResponse) -> Iterator[str]:
    """The `data` of each server-sent event: `data:` lines joined by newlines, events ended
    by a blank line; comments (`: ping`) and other fields ignored."""
    lines: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            break
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)


def _read_json(response: http.client.HTTPResponse, url: str) -> dict[str, Any]:
    raw = response.read()
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise EndpointError(f"server {url} did not answer JSON: {_one_line(raw)}") from exc
    if not isinstance(body, dict):
        raise EndpointError(f"server {url} answered unexpected JSON: {_one_line(raw)}")
    return body


def _error_text(raw: bytes) -> str:
    """The server's own explanation: OpenAI's {"error": {"message"}}, Ollama's {"error": str},
    FastAPI's {"detail"}, or the body itself."""
    try:
        body = json.loads(raw)
    except ValueError:
        return _one_line(raw) or "(no message)"
    return _error_message(body) if isinstance(body, dict) else _one_line(raw)


def _error_message(body: Mapping[str, Any]) -> str:
    error = body.get("error", body.get("detail", body.get("message")))
    if isinstance(error, dict):
        error = error.get("message", error)
    if error is None:
        error = body
    return _one_line(error if isinstance(error, str) else json.dumps(error))


def _one_line(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    line = " ".join(text.split())
    return line if len(line) <= _MAX_ERROR_CHARS else line[:_MAX_ERROR_CHARS - 1] + "…"


def _connection_message(exc: BaseException, url: str, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {url}: connection refused (is the server running?)"
    if isinstance(exc, TimeoutError):
        return f"no answer from {url} within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot find the server {url}: unknown host name"
    return f"cannot talk to {url}: {_describe(exc)}"


def _lost_message(exc: BaseException, url: str, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer from {url} within {timeout:g} s"
    return f"lost the connection to {url} ({_describe(exc)})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _one_line(str(exc)) or type(exc).__name__
