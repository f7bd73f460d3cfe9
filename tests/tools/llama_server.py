"""llama-cpp-python's OpenAI-compatible server on a loopback port, for tests that talk to a
real server (`--endpoint`)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from app.engine.openai_backend import EndpointError, OpenAIBackend


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve(model: Path, log: Path, *, n_ctx: int = 4096, ready_s: float = 60.0
          ) -> Iterator[str]:
    """Serve `model`; yields the server's URL once it answers, stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
               "--n_threads", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        probe = OpenAIBackend(url, timeout=1)
        deadline = time.monotonic() + ready_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited:\n{log.read_text()[-3000:]}")
            try:
                probe.list_models()
                break
            except EndpointError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server not ready in {ready_s} s") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
