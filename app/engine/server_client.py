"""The one HTTP client Amicus talks to servers with: chat (`OpenAIBackend`), classification
(`RemoteClassifier`), the gate, `ask`, `audit` and `classify` all go through `ServerClient`,
so a key, a certificate, a retry or a failure behaves the same everywhere.

    client = ServerClient("https://gpu.clinic.lan:8000", ServerOptions(api_key=key,
                          ca_file=Path("clinic-ca.pem")))
    body = client.post_json("/classify", {"input": text})

Standard library only (http.client, ssl): no new run-time dependency, and unlike urllib,
http.client never routes through an HTTP(S)_PROXY from the environment, so a loopback
endpoint stays on loopback. One connection per request, which is what lets many requests
be in flight from many threads (the servers batch them) with nothing shared but settings.

- https: certificates are verified against the system's store, or against `ca_file` alone
  (a clinic's own certificate authority), host names included. A certificate that does not
  verify is one line naming the server and the reason (exit 2), never a traceback.
- Retries: connection failures before an answer (refused, reset, dropped), 429 and 5xx are
  sent again, a bounded number of times, with exponential backoff (Retry-After honoured up
  to the cap). Not retried: timeouts (a stalled server would make every retry wait as
  long again), other 4xx, certificate and host-name errors.
- Timeout: `timeout` seconds to connect and for each read; a silent server is an error.
- Cancel: a `threading.Event`; set, it shuts the request's socket down at once, also while
  the server is still silent, and interrupts a backoff wait.
- The API key (a credentials.Secret) is sent as a bearer token and scrubbed out of every
  message built from what a server answers.

Errors are EndpointError (an AmicusError: exit 2), one line each; `stops_batch` says
whether every other request would fail the same way (unreachable, untrusted, refused key,
wrong address), so a batch stops instead of rejecting each record in turn.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import random
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.engine.credentials import Secret
from app.engine.errors import EngineError
from converters.errors import InputError, one_line

DEFAULT_TIMEOUT_S = 300.0  # a CPU server may read a long prompt for minutes before answering
_CANCEL_POLL_S = 0.05
_MAX_ERROR_CHARS = 300
# The classification APIs a server may speak (see remote_classifier; named here so that
# command-line parsers need not import the classifier, which loads llama.cpp).
SERVER_APIS: tuple[str, ...] = ("vllm", "llama-server")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_STOP_STATUSES = frozenset({401, 403, 404, 405, 501})  # the same for every request: stop a batch


class EndpointError(EngineError):
    """The server could not be reached, refused the request, or broke off its answer."""

    title = "The server failed"
    retryable = False  # worth sending again (after a pause)
    stops_batch = False  # every other request would fail the same way


class ServerUnreachableError(EndpointError):
    """Nothing answers at that address (refused, unknown host, not TLS)."""

    title = "The server cannot be reached"
    stops_batch = True


class CertificateError(ServerUnreachableError):
    """The server's https certificate does not verify (unknown authority, wrong host)."""

    title = "The server's certificate is not trusted"


class ServerStatusError(EndpointError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds, from the server's Retry-After
        self.retryable = status in _RETRY_STATUSES
        self.stops_batch = status in _STOP_STATUSES


class ConnectionLostError(EndpointError):
    """The connection broke before or while the server answered."""

    retryable = True


class ServerTimeoutError(EndpointError):
    """The server stayed silent longer than the timeout."""


class RequestCancelled(EndpointError):
    """The caller cancelled the request (not a failure: nothing is reported)."""


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
        if parts.username or parts.password:
            raise EndpointError("a server address must not carry a user name or password "
                                "(it would show in the process list); use AMICUS_API_KEY "
                                "or api_key_file in the config")
        prefix = parts.path.rstrip("/")
        prefix = prefix.removesuffix("/v1")
        default_port = 443 if parts.scheme == "https" else 80
        try:
            port = parts.port or default_port
        except ValueError as exc:
            raise EndpointError(f"bad port in server address {url!r}") from exc
        return cls(parts.scheme, parts.hostname, port, prefix)

    @property
    def root(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}"

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, as users write it."""
        return f"{self.root}/v1"

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


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; the pause before try n+1 is first_delay_s * 2**(n-1), with a
    little jitter (so many threads do not come back at once), at most max_delay_s."""

    attempts: int = 4
    first_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        base = min(self.first_delay_s * 2 ** (failures - 1), self.max_delay_s)
        return base * random.uniform(0.8, 1.2)


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class ServerOptions:
    """How to talk to a server: key, certificate authority, timeout, retries."""

    api_key: Secret | None = None
    ca_file: Path | None = None  # None: the system's certificate store
    timeout: float = DEFAULT_TIMEOUT_S
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class ServerTarget:
    """A model on a server: its address, the model's name there (None: the server's own
    default), the API it classifies with (None: ask the server; see remote_classifier), and
    how to talk to it."""

    url: str
    model: str | None = None
    api: str | None = None
    options: ServerOptions = field(default_factory=ServerOptions)

    def client(self) -> ServerClient:
        return ServerClient(self.url, self.options)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verification against the system's store, or against `ca_file` alone."""
    if ca_file is None:
        return ssl.create_default_context()
    path = ca_file.expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such certificate file (--ca-file / ca_file)")
    try:
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a PEM certificate file ({_describe(exc)})") from exc


class ServerClient:
    """Requests to one server. Thread-safe: every request has its own connection."""

    def __init__(self, endpoint: str | Endpoint, options: ServerOptions | None = None) -> None:
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else Endpoint.parse(endpoint)
        self.options = options or ServerOptions()
        self._tls = tls_context(self.options.ca_file) if self.endpoint.scheme == "https" \
            else None

    @property
    def timeout(self) -> float:
        return self.options.timeout

    def exchange(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
                 accept: str = "application/json",
                 cancel: threading.Event | None = None) -> Exchange:
        """One request, not yet sent (see Exchange). `path` is from the server's root,
        e.g. "/v1/chat/completions" or "/classify"."""
        return Exchange(self, method, path, body, accept, cancel)

    def get_json(self, path: str, *, cancel: threading.Event | None = None) -> dict[str, Any]:
        return self._json(self.exchange("GET", path, cancel=cancel))

    def post_json(self, path: str, body: Mapping[str, Any], *,
                  cancel: threading.Event | None = None) -> dict[str, Any]:
        return self._json(self.exchange("POST", path, body, cancel=cancel))

    def redact(self, text: str) -> str:
        key = self.options.api_key
        return key.redact(text) if key is not None else text

    def server_text(self, text: str | bytes) -> str:
        """Server-supplied text fit for a message: one line, short, without the key."""
        return short_line(self.redact(_text(text)))

    def _json(self, exchange: Exchange) -> dict[str, Any]:
        with contextlib.closing(exchange):
            response = exchange.response()
            try:
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise exchange.lost(exc) from exc
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise EndpointError(f"server {self.endpoint.url} did not answer JSON: "
                                f"{self.server_text(raw)}") from exc
        if not isinstance(body, dict):
            raise EndpointError(f"server {self.endpoint.url} answered unexpected JSON: "
                                f"{self.server_text(raw)}")
        return body

    def _connection(self) -> http.client.HTTPConnection:
        ep = self.endpoint
        if self._tls is not None:
            return http.client.HTTPSConnection(ep.host, ep.port, timeout=self.timeout,
                                               context=self._tls)
        return http.client.HTTPConnection(ep.host, ep.port, timeout=self.timeout)

    def _headers(self, accept: str, has_body: bool) -> dict[str, str]:
        headers = {"Accept": accept}
        if has_body:
            headers["Content-Type"] = "application/json"
        if self.options.api_key is not None:
            headers["Authorization"] = f"Bearer {self.options.api_key.reveal()}"
        return headers


class Exchange:
    """One request and its response head, sent again on failures worth retrying.

    `send()` connects and sends (a server that cannot be reached fails here, before the
    caller reports anything); `response()` waits for the head and checks the status,
    sending again when the connection dropped or the server said 429 / 5xx. The caller
    then reads the body and closes the exchange."""

    def __init__(self, client: ServerClient, method: str, path: str,
                 body: Mapping[str, Any] | None, accept: str,
                 cancel: threading.Event | None) -> None:
        self._client = client
        self._method = method
        self._path = f"{client.endpoint.prefix}{path}"
        self._data = json.dumps(body).encode("utf-8") if body is not None else None
        self._headers = client._headers(accept, body is not None)
        self._cancellable = cancel is not None
        self._cancel = cancel or threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._sock: socket.socket | None = None
        self._response: http.client.HTTPResponse | None = None
        self._failures = 0
        self._done = threading.Event()
        self._watching = False

    @property
    def url(self) -> str:
        return self._client.endpoint.url

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def send(self) -> None:
        while True:
            self._check_cancel()
            try:
                self._send_once()
                return
            except EndpointError as exc:
                self._pause_or_raise(exc)

    def response(self) -> http.client.HTTPResponse:
        if self._conn is None:
            self.send()
        while True:
            try:
                self._response = self._receive_once()
                return self._response
            except EndpointError as exc:
                self._pause_or_raise(exc)
                self.send()

    def lost(self, exc: BaseException) -> EndpointError:
        """The error for a failure while reading the body (cancelled, if it was)."""
        if self.cancelled:
            return RequestCancelled("cancelled")
        if isinstance(exc, TimeoutError):
            return ServerTimeoutError(self._timeout_message())
        return ConnectionLostError(f"lost the connection to {self.url} ({_describe(exc)})")

    def close(self) -> None:
        self._done.set()
        if self._response is not None:
            self._response.close()
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _send_once(self) -> None:
        self._close_connection()
        conn = self._client._connection()
        try:
            conn.connect()
            self._sock = conn.sock
            self._watch()
            conn.request(self._method, self._path, body=self._data, headers=self._headers)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._send_error(exc) from exc
        self._conn = conn

    def _receive_once(self) -> http.client.HTTPResponse:
        assert self._conn is not None
        try:
            response = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise self.lost(exc) from exc
        if response.status >= 300:
            raise self._status_error(response)
        return response

    def _status_error(self, response: http.client.HTTPResponse) -> ServerStatusError:
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException):
            raw = b""
        response.close()
        message = self._client.server_text(error_text(raw))
        return ServerStatusError(f"server {self.url} answered HTTP {response.status} "
                                 f"{response.reason}: {message}{_hint(response.status)}",
                                 response.status,
                                 _retry_after(response.getheader("Retry-After")))

    def _send_error(self, exc: BaseException) -> EndpointError:
        if self.cancelled:
            return RequestCancelled("cancelled")
        url = self.url
        if isinstance(exc, ssl.SSLCertVerificationError):
            return CertificateError(
                f"cannot verify the certificate of {url}: {exc.verify_message or exc.reason}"
                " (for a clinic's own certificate authority: --ca-file, or ca_file in the "
                "config)")
        if isinstance(exc, ssl.SSLError):
            return ServerUnreachableError(f"cannot talk TLS to {url} ({exc.reason or exc}): "
                                          "is it an http:// server?")
        if isinstance(exc, ConnectionRefusedError):
            error: EndpointError = ServerUnreachableError(
                f"cannot connect to {url}: connection refused (is the server running?)")
            error.retryable = True  # a server restarting: worth a few tries
            return error
        if isinstance(exc, TimeoutError):
            return ServerTimeoutError(self._timeout_message())
        if isinstance(exc, socket.gaierror):
            return ServerUnreachableError(f"cannot find the server {url}: unknown host name")
        return ConnectionLostError(f"cannot talk to {url}: {_describe(exc)}")

    def _pause_or_raise(self, exc: EndpointError) -> None:
        """Wait before the next try, or raise `exc` when it is final."""
        self._failures += 1
        policy = self._client.options.retry
        if not exc.retryable or self._failures >= policy.attempts or self.cancelled:
            self._close_connection()
            raise exc
        retry_after = exc.retry_after if isinstance(exc, ServerStatusError) else None
        delay = policy.delay(self._failures, retry_after)
        if self._cancel.wait(delay):
            raise RequestCancelled("cancelled") from exc

    def _check_cancel(self) -> None:
        if self.cancelled:
            raise RequestCancelled("cancelled")

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._sock = None

    def _timeout_message(self) -> str:
        return f"no answer from {self.url} within {self._client.timeout:g} s"

    def _watch(self) -> None:
        """Shut the current socket down when the caller cancels, so a read blocked on a
        silent server (one still reading a long prompt) returns at once."""
        if self._watching or not self._cancellable:
            return
        self._watching = True

        def watch() -> None:
            while not self._done.wait(_CANCEL_POLL_S):
                if self._cancel.is_set():
                    sock = self._sock
                    if sock is not None:
                        with contextlib.suppress(OSError):  # already closed
                            sock.shutdown(socket.SHUT_RDWR)
                    return

        threading.Thread(target=watch, name="amicus-request-cancel", daemon=True).start()


def _hint(status: int) -> str:
    if status in (401, 403):
        return (" (the server wants an API key: set AMICUS_API_KEY, or api_key_file in the "
                "config)")
    return ""


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:  # an HTTP date: use our own backoff
        return None


def error_text(raw: bytes) -> str:
    """The server's own explanation: OpenAI's {"error": {"message"}}, Ollama's {"error": str},
    FastAPI's {"detail"}, or the body itself."""
    try:
        body = json.loads(raw)
    except ValueError:
        return short_line(_text(raw)) or "(no message)"
    return error_message(body) if isinstance(body, dict) else short_line(_text(raw))


def error_message(body: Mapping[str, Any]) -> str:
    error = body.get("error", body.get("detail", body.get("message")))
    if isinstance(error, dict):
        error = error.get("message", error)
    if error is None:
        error = body
    return short_line(error if isinstance(error, str) else json.dumps(error))


def short_line(text: str) -> str:
    """One line (converters.errors.one_line), cut to a length fit for a message."""
    line = one_line(text)
    return line if len(line) <= _MAX_ERROR_CHARS else line[:_MAX_ERROR_CHARS - 1] + "…"


def _text(text: str | bytes) -> str:
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return short_line(str(exc)) or type(exc).__name__
