"""The suite's network guard works: outside addresses fail, loopback works."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import NetworkAccessError


def test_connecting_outside_the_machine_fails():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(
            NetworkAccessError):
        sock.connect(("203.0.113.7", 443))
    with pytest.raises(NetworkAccessError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_loopback_servers_still_work():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted = threading.Thread(target=lambda: server.accept()[0].close())
    accepted.start()
    with socket.create_connection(server.getsockname(), timeout=5):
        pass
    accepted.join(timeout=5)
    server.close()


def test_a_hub_repo_id_is_not_fetched_when_offline(tmp_path):
    """HF_HUB_OFFLINE is set for tests: a repo id that is not cached is a clear error."""
    from converters.checkpoint.sources import resolve_source
    from converters.errors import InputError

    with pytest.raises(InputError, match="not in the local Hugging Face cache"):
        resolve_source("Qwen/Qwen3-4B@main")
