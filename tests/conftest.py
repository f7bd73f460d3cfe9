"""Shared fixtures: every test runs with its own Amicus data directory and no network.

Amicus never uses the network at run time. Every test runs with a guard that fails any
connection to an address outside the loopback range (a test's own local server is fine),
so a code path that tries to reach a hub or an update server fails loudly here.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest


class NetworkAccessError(AssertionError):
    """A test (or the code under test) tried to reach a non-loopback address."""


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:  # AF_UNIX paths and the like never leave the machine
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:  # a host name: resolving it would already be network use
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(method):
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
                raise NetworkAccessError(f"network access attempted: {address!r}")
            return method(self, address)

        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep tests away from the user's real data directory and any hub cache."""
    home = tmp_path_factory.mktemp("amicus-home")
    monkeypatch.setenv("AMICUS_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    return home


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> Path:
    """The five demo models, built once per session with the real pipeline and shared
    read-only by every test that runs them (copy them to alter them)."""
    from app.cli import main

    home = tmp_path_factory.mktemp("demo-home")
    assert main(["demo", "--out", str(home / "models")]) == 0
    return home / "models"
