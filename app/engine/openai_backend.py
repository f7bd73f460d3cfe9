"""The same chat interface as Engine, answered by an OpenAI-compatible server (`--endpoint`).

    backend = OpenAIBackend("http://127.0.0.1:11434", model="moral-audit")   # Ollama
    for event in backend.stream(messages, params={"temperature": 0.2}):
        ...                                     # PromptStarted, *Delta, Finished

For a clinic that outgrows one laptop: a local Ollama, llama.cpp's `llama-server`, vLLM or
llama-cpp-python's server. Nothing is contacted by default: there is no default endpoint,
constructing a backend opens no connection, and the endpoint is whatever the user typed,
loopback or not (a server on the clinic's network is theirs to choose). `is_local` tells the
UI whether answers come from this machine.

Requests go through the shared `ServerClient` (app.engine.server_client): API key, https
verification, retries on dropped connections / 429 / 5xx and the timeout are the same as for
classification and every batch. The answer is read with a small SSE reader.

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

A server or gateway that does not stream and answers one JSON completion (`message`
instead of `delta`) is read the same way, as a single chunk.

Thinking: `reasoning_content` (llama.cpp server, vLLM), `reasoning` (newer vLLM, Ollama's
OpenAI layer) and `thinking` (Ollama) arrive as ThinkingDelta; `<think>...</think>` written
inline in `content` is split by the same parser as the embedded engine. (Not handled: a
template that pre-fills `<think>` on a server that does not split reasoning itself; the
prompt is rendered over there, so its thinking would read as answer.)
Stop strings are sent to the server and also matched here on the answer text, so they
never reach the caller even from a server that ignores them; a local match ends the stream.
Cancel: checked before every chunk, and the client shuts the socket down at once when the
server is silent (reading a long prompt), so a cancel lands within one chunk either way.
Closing the connection is how a client cancels: llama.cpp's server, vLLM and Ollama then
abort the generation; llama-cpp-python's server finishes it first (its next answer waits).
Errors are EndpointError (an EngineError), one line each: unreachable server, untrusted
certificate, HTTP status with the server's own message, a broken-off stream, a timeout.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from app.engine.backend import BackendInfo
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
from app.engine.server_client import (
    DEFAULT_TIMEOUT_S,
    Endpoint,
    EndpointError,
    Exchange,
    RequestCancelled,
    ServerClient,
    ServerOptions,
    error_message,
)

__all__ = ["DEFAULT_TIMEOUT_S", "Endpoint", "EndpointError", "OpenAIBackend",
           "RemoteBackendInfo", "chat_messages", "openai_sampling", "sse_data"]

_REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")

Delta = AnswerDelta | ThinkingDelta


class RemoteBackendInfo(BackendInfo):
    """BackendInfo for a server: the hardware fields are unknown (0), the summary names it."""

    def describe(self) -> str:
        return self.system_info


class OpenAIBackend:
    """A ChatEngine (see app.engine.protocol) that streams from `{endpoint}/v1/chat/completions`.

    `server`: a URL or a ServerClient (shared settings: key, certificates, retries).
    `model`: sent as the request's model (Ollama needs it; single-model servers such as
    llama.cpp's ignore or default it); None leaves it out. `options` (with a URL): the
    client's settings; `timeout` overrides theirs: seconds to connect and to wait for each
    piece of the answer. `n_ctx`: the context size the caller plans with (the Modelfile's
    num_ctx); the server enforces its own and answers an error when a conversation does not
    fit."""

    def __init__(self, server: str | ServerClient, model: str | None = None, *,
                 options: ServerOptions | None = None, timeout: float | None = None,
                 n_ctx: int = DEFAULT_NUM_CTX) -> None:
        if isinstance(server, str):
            options = options or ServerOptions()
            if timeout is not None:
                options = replace(options, timeout=timeout)
            server = ServerClient(server, options)
        self.client = server
        self.endpoint = server.endpoint
        self.model = model
        self._n_ctx = n_ctx

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def timeout(self) -> float:
        return self.client.timeout

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
        body = self.client.get_json("/v1/models")
        models = body.get("data")
        if not isinstance(models, list):
            raise EndpointError(f"server {self.endpoint.url} answered /v1/models without a "
                                f"list of models: {self.client.server_text(json.dumps(body))}")
        return [str(m["id"]) for m in models if isinstance(m, dict) and "id" in m]

    def stream(self, messages: Sequence[Mapping[str, Any]], *, system: str | None = None,
               params: Mapping[str, Any] | GenerationParams | None = None,
               think: bool | None = None, cancel: threading.Event | None = None,
               owner: str | None = None) -> Iterator[Event]:
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
        exchange = self.client.exchange("POST", "/v1/chat/completions", body,
                                        accept="text/event-stream", cancel=cancel)
        try:
            exchange.send()
        except BaseException:
            exchange.close()
            raise
        reader = _Reader(exchange, self.client, sampling.get("stop", ()), cancel, sent)
        try:
            yield PromptStarted(prompt_tokens=0, evaluating=0, dropped_turns=0, threads=0)
            yield from reader.run()
        finally:
            exchange.close()

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


@dataclass
class _Usage:
    prompt_tokens: int = 0
    prompt_evaluated: int = 0
    completion_tokens: int | None = None

    def update(self, chunk: Mapping[str, Any]) -> None:
        """Take the counts a chunk reports; counts that are not counts (a server's bug) are
        left out, as a server that sends none: they describe the answer, they are not it."""
        usage = _object(chunk.get("usage"))
        timings = _object(chunk.get("timings"))  # llama.cpp's server: prompt_n excludes the cache
        prompt = _count(usage.get("prompt_tokens"))
        if prompt is not None:
            self.prompt_tokens = self.prompt_evaluated = prompt
            cached = _count(_object(usage.get("prompt_tokens_details")).get("cached_tokens"))
            if cached is not None and cached <= prompt:
                self.prompt_evaluated = prompt - cached
        completion = _count(usage.get("completion_tokens"))
        if completion is not None:
            self.completion_tokens = completion
        evaluated = _count(timings.get("prompt_n"))
        if evaluated is not None:
            self.prompt_evaluated = evaluated


class _Malformed(ValueError):
    """A chunk whose answer fields are not of the shape the OpenAI API gives them."""


def _object(value: Any) -> Mapping[str, Any]:
    """A JSON object of the answer ({} for a field left out or null), or _Malformed."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise _Malformed(f"{type(value).__name__} where an object belongs")
    return value


def _count(value: Any) -> int | None:
    """A token count, or None for anything else (absent, text, negative, not finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not 0 <= value < 2**53:  # NaN and infinities fail this too
        return None
    return int(value)


def _text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _Malformed(f"{type(value).__name__} where text belongs")
    return value


class _Reader:
    """Reads one streamed completion and turns its chunks into events."""

    def __init__(self, exchange: Exchange, client: ServerClient, stops: Sequence[str],
                 cancel: threading.Event, sent: float) -> None:
        self._exchange = exchange
        self._client = client
        self._answer = OutputParser(stops)  # content: stop strings, inline <think> split
        self._reasoning = ThinkSplitter(inside_think=True)  # server-split thinking
        self._texts = Texts()
        self._cancel = cancel
        self._sent = sent
        self._first: float | None = None
        self._url = exchange.url
        self._usage = _Usage()
        self._chunks = 0
        self._finish: str | None = None

    def run(self) -> Iterator[Event]:
        reason = yield from self._read()
        yield from self._record(self._reasoning.flush() + self._answer.finish())
        yield self._finished(reason)

    def _read(self) -> Generator[Event, None, StopReason]:
        try:
            response = self._exchange.response()
            for data in _answer_data(response):
                if self._cancel.is_set():
                    return "cancelled"
                if data.strip() == "[DONE]":
                    break  # finished only if a finish_reason came (checked below)
                yield from self._record(self._chunk(data))
                if self._answer.stopped:  # a stop string the server let through
                    return "stop"
        except RequestCancelled:
            return "cancelled"
        except (OSError, http.client.HTTPException) as exc:
            if self._cancel.is_set():  # the client shut the socket down
                return "cancelled"
            raise self._exchange.lost(exc) from exc
        if self._cancel.is_set():
            return "cancelled"
        if self._finish is None:
            # Also what llama-cpp-python's server does to a streamed answer when another
            # request arrives (unless started with --interrupt_requests False): [DONE]
            # without a finish_reason. A cut answer must never pass for a whole one.
            raise EndpointError(f"server {self._url} ended the answer without finishing it "
                                "(see the server's log: context full, crashed, or "
                                "interrupted by another request?)")
        return self._stop_reason()

    def _chunk(self, data: str) -> list[Delta]:
        if self._first is None:
            self._first = time.perf_counter()
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise EndpointError(f"server {self._url} sent a malformed chunk: "
                                f"{self._client.server_text(data)}") from exc
        if not isinstance(chunk, dict):
            raise EndpointError(f"server {self._url} sent a malformed chunk: "
                                f"{self._client.server_text(data)}")
        if "error" in chunk:  # llama.cpp, vLLM and Ollama report late failures in-stream
            raise EndpointError(f"server {self._url} failed mid-answer: "
                                f"{self._client.server_text(error_message(chunk))}")
        try:
            self._usage.update(chunk)
            choices = chunk.get("choices") or []
            if not isinstance(choices, list):
                raise _Malformed("choices is not a list")
            return self._choice(_object(choices[0])) if choices else []
        except _Malformed as exc:
            raise EndpointError(f"server {self._url} sent a malformed chunk ({exc}): "
                                f"{self._client.server_text(data)}") from exc

    def _choice(self, choice: Mapping[str, Any]) -> list[Delta]:
        finish = choice.get("finish_reason")
        if finish:
            self._finish = _text(finish)
        # A streamed chunk carries a `delta`; a whole answer (a server that does not
        # stream) carries the `message`: read as one delta holding everything.
        delta = _object(choice.get("delta") or choice.get("message"))
        reasoning = [_text(delta.get(name)) for name in _REASONING_FIELDS]
        content = _text(delta.get("content"))
        out: list[Delta] = []
        if content is not None or any(text is not None for text in reasoning):
            self._chunks += 1
        for text in reasoning:
            if text:
                out += self._reasoning.feed(text)
        if content:
            out += self._answer.feed_text(content)
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


def _answer_data(response: http.client.HTTPResponse) -> Iterator[str]:
    """The answer's chunks: server-sent events, or, from a server (or gateway) that ignores
    `stream` and answers one JSON completion, that completion as the only chunk."""
    content_type = (response.getheader("Content-Type") or "").lower()
    if content_type.startswith("application/json"):
        yield response.read().decode("utf-8", errors="replace")
        return
    yield from sse_data(response)


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
