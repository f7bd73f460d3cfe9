"""Servers for the tests, on 127.0.0.1 only (the suite's network guard allows loopback):

- `Loopback`: an HTTP(S) server run by threads in the test process, speaking whatever
  `app` answers, with the faults the client must survive: dropped connections, 503s,
  stalls, a required API key (whose refusal echoes the header it got, as some gateways do).
  It counts the requests in flight.
- `chat_app`: an OpenAI-compatible chat server, streaming or not, whose answer names the
  question (so a test can match results to records).
- `ClassifierApp`: vLLM's /classify or llama.cpp's server's /rerank (+ /tokenize,
  /detokenize, /v1/models), computed by llama.cpp on a real classifier GGUF, with each
  API's own field names (a request in another server's dialect is answered 400).
- `self_signed_certificate`: a certificate for 127.0.0.1 made with the `openssl` command
  (the `cryptography` package is not installed).
- `llama_cpp_server`: llama-cpp-python's own OpenAI-compatible server in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Chunk = bytes | Callable[[], object]  # raw bytes to send, or something to do (wait)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON value, or None with `chunks`
    chunks: Iterable[Chunk] = ()
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


App = Callable[[Request], Reply]


def error_reply(status: int, message: str, **headers: str) -> Reply:
    return Reply(status, {"error": {"message": message}}, headers=headers)


class Loopback:
    """A threaded HTTP(S) server on 127.0.0.1. `faults` are consumed one per POST, in
    order: "drop" (close without answering), "503" (Retry-After: 0), "stall" (answer
    nothing until `release` is set or the client hangs up)."""

    def __init__(self, app: App, *, tls: ssl.SSLContext | None = None,
                 api_key: str | None = None, delay_s: float = 0.0) -> None:
        self.app = app
        self.api_key = api_key
        self.delay_s = delay_s
        self.requests: list[Request] = []
        self.faults: deque[str] = deque()
        self.release = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def posts(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def _serve(self, request: Request) -> Reply | None:
        """The reply, or None to hang up without one."""
        with self._lock:
            self.requests.append(request)
            fault = self.faults.popleft() if request.method == "POST" and self.faults else None
        if self.api_key is not None and \
                request.headers.get("Authorization") != f"Bearer {self.api_key}":
            got = request.headers.get("Authorization", "nothing")
            return error_reply(401, f"invalid API key: got {got}")
        if fault == "drop":
            return None
        if fault == "503":
            return error_reply(503, "overloaded, try again", **{"Retry-After": "0"})
        if fault == "stall":
            self.release.wait(30)
            return None
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            return self.app(request)
        finally:
            with self._lock:
                self.in_flight -= 1


def _handler(server: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self._answer(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            self._answer(body)

        def _answer(self, body: Any) -> None:
            request = Request(self.command, self.path, dict(self.headers), body)
            reply = server._serve(request)
            if reply is None:
                self.close_connection = True
                return
            with contextlib.suppress(OSError):  # the client hung up (cancel): expected
                self._send(reply)

        def _send(self, reply: Reply) -> None:
            data = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.body is not None:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            for chunk in reply.chunks:
                if callable(chunk):
                    chunk()
                else:
                    self.wfile.write(chunk)
                    self.wfile.flush()

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


# --- chat ------------------------------------------------------------------------------------

def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def answer_for(question: str) -> str:
    return f"answer to: {question}"


def chat_app(*, stream: bool = True, owned_by: str = "llamacpp",
             fail_when: Callable[[Request], int | None] | None = None) -> App:
    """/v1/models and /v1/chat/completions; the answer is answer_for(last user message)."""

    def app(request: Request) -> Reply:
        if request.path == "/v1/models":
            return Reply(body={"object": "list", "data": [{"id": "m", "owned_by": owned_by}]})
        if request.path != "/v1/chat/completions":
            return error_reply(404, f"no route {request.path}")
        status = fail_when(request) if fail_when else None
        if status:
            return error_reply(status, "this record always fails")
        question = request.body["messages"][-1]["content"]
        text = answer_for(question)
        usage = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
        if not stream or not request.body.get("stream"):
            return Reply(body={"choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant",
                                                        "content": text}}],
                               "usage": usage})
        pieces = [text[i:i + 8] for i in range(0, len(text), 8)]
        chunks = [sse({"choices": [{"index": 0, "delta": {"content": p},
                                    "finish_reason": None}]}) for p in pieces]
        chunks.append(sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        chunks.append(sse({"choices": [], "usage": usage}))
        chunks.append(sse("[DONE]"))
        return Reply(chunks=chunks, content_type="text/event-stream")

    return app


# --- classification --------------------------------------------------------------------------

class ClassifierApp:
    """vLLM ("vllm") or llama.cpp's server ("llama-server") serving a classifier GGUF,
    computed by llama.cpp (app.engine.classifier.Classifier, loaded by the caller)."""

    RERANK_TEMPLATE = "{query}{document}"  # what Amicus writes into classifier GGUFs

    def __init__(self, classifier: Any, api: str) -> None:
        self.classifier = classifier
        self.api = api
        self.texts: list[str] = []  # every text classified, in arrival order
        self._lock = threading.Lock()  # one llama.cpp context

    def __call__(self, request: Request) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        routes = {"/v1/models": self._models, "/tokenize": self._tokenize,
                  "/detokenize": self._detokenize,
                  "/classify" if self.api == "vllm" else "/rerank": self._classify}
        route = routes.get(request.path)
        if route is None:
            return error_reply(404, f"Not Found: {request.path}")
        try:
            with self._lock:
                return route(body)
        except KeyError as exc:
            return error_reply(400, f"missing field {exc}")

    def _models(self, _body: dict[str, Any]) -> Reply:
        owner = "vllm" if self.api == "vllm" else "llamacpp"
        return Reply(body={"object": "list", "data": [{"id": "clf", "owned_by": owner}]})

    def _tokenize(self, body: dict[str, Any]) -> Reply:
        tokenizer = self.classifier.tokenizer
        if self.api == "vllm":
            assert body["add_special_tokens"] is False
            return Reply(body={"tokens": tokenizer.encode(body["prompt"])})
        assert body["add_special"] is False and body["parse_special"] is True
        return Reply(body={"tokens": tokenizer.encode(body["content"])})

    def _detokenize(self, body: dict[str, Any]) -> Reply:
        text = self.classifier.tokenizer.decode(body["tokens"])
        return Reply(body={"prompt" if self.api == "vllm" else "content": text})

    def _classify(self, body: dict[str, Any]) -> Reply:
        from converters.llama_runtime import class_probabilities

        if self.api == "vllm":
            text = body["input"]
        else:
            text = self.RERANK_TEMPLATE.replace("{query}", body["query"]).replace(
                "{document}", body["documents"][0])
        self.texts.append(text)
        tokens = self.classifier.tokenizer.encode_for_model(text)[-4096:]
        probs = class_probabilities(self.classifier._llm, tokens)
        if self.api == "vllm":
            return Reply(body={"object": "list", "data": [
                {"index": 0, "label": "non_unsafe", "probs": probs, "num_classes": 2}]})
        return Reply(body={"object": "list", "results": [
            {"index": 0, "relevance_score": probs[0]}]})


# --- TLS -------------------------------------------------------------------------------------

def self_signed_certificate(directory: Path, names: str = "IP:127.0.0.1,DNS:localhost",
                            ) -> tuple[Path, Path]:
    """(certificate, key) for `names` (subjectAltName syntax), valid two days."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=amicus-test",
         "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True)
    return cert, key


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


# --- llama-cpp-python's server ---------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, log: Path, limit_s: float) -> None:
    from app.engine.openai_backend import OpenAIBackend
    from app.engine.server_client import NO_RETRY, EndpointError, ServerOptions

    probe = OpenAIBackend(url, options=ServerOptions(timeout=1, retry=NO_RETRY))
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited early:\n{log.read_text()[-3000:]}")
        try:
            probe.list_models()
            return
        except EndpointError:
            time.sleep(0.1)
    raise RuntimeError(f"llama_cpp.server not ready in {limit_s} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def llama_cpp_server(model: Path, log: Path, *, n_ctx: int = 512, limit_s: float = 60,
                     extra: tuple[str, ...] = ()) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on `model`; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
               "--n_threads", "2", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_ready(url, process, log, limit_s)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
