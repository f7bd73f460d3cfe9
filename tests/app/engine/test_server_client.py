"""ServerClient, the one client every server request goes through: retries (dropped
connections, 503), timeouts (a stalled server), cancel, API keys (sent, never shown),
https verified against the system store or a given certificate authority."""

from __future__ import annotations

import threading
import time

import pytest

from app.engine.credentials import Secret
from app.engine.server_client import (
    NO_RETRY,
    CertificateError,
    ConnectionLostError,
    Endpoint,
    EndpointError,
    RequestCancelled,
    RetryPolicy,
    ServerClient,
    ServerOptions,
    ServerStatusError,
    ServerTimeoutError,
    ServerUnreachableError,
)
from converters.errors import AmicusError, InputError
from tests.loopback import Loopback, Reply, free_port, self_signed_certificate, server_tls

FAST = RetryPolicy(attempts=3, first_delay_s=0.01)


def echo(request):
    return Reply(body={"path": request.path, "body": request.body})


def _client(url, **options):
    options.setdefault("retry", FAST)
    return ServerClient(url, ServerOptions(**options))


def test_dropped_connections_and_503s_are_sent_again():
    with Loopback(echo) as server:
        server.faults.extend(["drop", "503"])
        assert _client(server.url).post_json("/x", {"n": 1}) == {"path": "/x",
                                                                  "body": {"n": 1}}
        assert len(server.posts("/x")) == 3


def test_retries_are_bounded_and_the_last_error_is_reported():
    with Loopback(echo) as server:
        server.faults.extend(["503"] * 5)
        with pytest.raises(ServerStatusError, match=r"HTTP 503 .*overloaded") as error:
            _client(server.url).post_json("/x", {})
        assert error.value.status == 503 and not error.value.stops_batch
        assert len(server.posts("/x")) == FAST.attempts


def test_a_dropping_server_is_a_lost_connection_after_the_retries():
    with Loopback(echo) as server:
        server.faults.extend(["drop"] * 3)
        with pytest.raises(ConnectionLostError, match="lost the connection"):
            _client(server.url).post_json("/x", {})


def test_a_stalled_server_times_out_once_without_retrying():
    with Loopback(echo) as server:
        server.faults.append("stall")
        started = time.monotonic()
        with pytest.raises(ServerTimeoutError, match=r"no answer from .* within 0.3 s"):
            _client(server.url, timeout=0.3).post_json("/x", {})
        assert time.monotonic() - started < 2
        assert len(server.posts("/x")) == 1


def test_client_errors_are_not_retried_and_404_stops_a_batch():
    with Loopback(lambda _r: Reply(404, {"detail": "Not Found"})) as server:
        with pytest.raises(ServerStatusError, match=r"HTTP 404 Not Found: Not Found$") as error:
            _client(server.url).post_json("/classify", {})
        assert error.value.stops_batch and len(server.requests) == 1


def test_cancel_cuts_a_stalled_request_at_once():
    cancel = threading.Event()
    with Loopback(echo) as server:
        server.faults.append("stall")
        threading.Timer(0.2, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(RequestCancelled):
            _client(server.url).post_json("/x", {}, cancel=cancel)
        assert time.monotonic() - started < 1.5


def test_refused_connections_are_retried_then_one_line():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ServerUnreachableError, match=r"connection refused \(is the server"):
        _client(f"http://127.0.0.1:{port}").get_json("/v1/models")
    assert time.monotonic() - started < 1
    with pytest.raises(ServerUnreachableError) as error:
        _client(f"http://127.0.0.1:{port}", retry=NO_RETRY).get_json("/v1/models")
    assert error.value.stops_batch and isinstance(error.value, AmicusError)
    assert error.value.exit_code == 2


def test_the_key_is_sent_as_a_bearer_token_and_never_shown():
    key = "sk-secret-0123456789"
    with Loopback(echo, api_key=key) as server:
        assert _client(server.url, api_key=Secret(key)).get_json("/v1/models")["path"] \
            == "/v1/models"
        assert server.requests[0].headers["Authorization"] == f"Bearer {key}"
        # A wrong key: the server's refusal echoes the header; the message must not.
        with pytest.raises(ServerStatusError) as error:
            _client(server.url, api_key=Secret(key + "-old")).get_json("/v1/models")
        message = str(error.value)
        assert "HTTP 401" in message and "AMICUS_API_KEY" in message and "***" in message
        assert key not in message and error.value.stops_batch
        with pytest.raises(ServerStatusError, match="got nothing"):
            _client(server.url).get_json("/v1/models")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def test_https_is_verified_against_the_system_store_or_the_given_authority(certificate):
    cert, key = certificate
    with Loopback(echo, tls=server_tls(cert, key)) as server:
        assert server.url.startswith("https://")
        with pytest.raises(CertificateError, match=r"cannot verify the certificate of "
                                                   r"https://127.0.0.1:\d+/v1: .*--ca-file"):
            _client(server.url).get_json("/v1/models")
        assert _client(server.url, ca_file=cert).get_json("/v1/models")["path"] == "/v1/models"
        localhost = server.url.replace("127.0.0.1", "localhost")
        assert _client(localhost, ca_file=cert).get_json("/v1/models")


def test_a_certificate_for_another_name_is_refused(tmp_path):
    cert, key = self_signed_certificate(tmp_path, names="DNS:gpu.clinic.lan")
    with Loopback(echo, tls=server_tls(cert, key)) as server, \
            pytest.raises(CertificateError, match="mismatch"):
        _client(server.url, ca_file=cert).get_json("/v1/models")


def test_https_to_a_plain_http_server_says_so():
    with Loopback(echo) as server, pytest.raises(ServerUnreachableError, match="is it an "
                                                                              "http://"):
        _client(server.url.replace("http://", "https://")).get_json("/v1/models")


def test_a_bad_certificate_file_is_bad_input(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    with pytest.raises(InputError, match="not a PEM certificate file"):
        ServerClient("https://127.0.0.1:1", ServerOptions(ca_file=not_pem))
    with pytest.raises(InputError, match="no such certificate file"):
        ServerClient("https://127.0.0.1:1", ServerOptions(ca_file=tmp_path / "none.pem"))
    ServerClient("http://127.0.0.1:1", ServerOptions(ca_file=tmp_path / "none.pem"))  # unused


def test_addresses_with_credentials_are_refused():
    with pytest.raises(EndpointError, match="must not carry a user name or password"):
        Endpoint.parse("https://user:sk-abc@gpu.clinic.lan")


def test_backoff_doubles_up_to_its_cap_and_honours_retry_after():
    policy = RetryPolicy(attempts=9, first_delay_s=1.0, max_delay_s=4.0)
    delays = [policy.delay(n) for n in range(1, 6)]
    for delay, base in zip(delays, [1, 2, 4, 4, 4], strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=60.0) == 4.0
