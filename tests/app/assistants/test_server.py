"""The assistants on a server: each asked for by its configured name (default its own),
and what the server's /v1/models offers, matched to them for the model manager."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.assistants.server import ServedModel, list_server_models, server_model_name
from app.engine.openai_backend import EndpointError

OFFERED = ["moral-audit", "demonbyron/qwen3-4b-CriminalLaw-cn:q4", "llama3.2:latest"]


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [
                {"id": model, "object": "model"} for model in OFFERED]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_each_assistant_is_asked_for_by_its_configured_name_or_its_own():
    table = {"sentencing": "demonbyron/qwen3-4b-CriminalLaw-cn:q4"}
    assert server_model_name("sentencing", table) == "demonbyron/qwen3-4b-CriminalLaw-cn:q4"
    assert server_model_name("moral-audit", table) == "moral-audit"
    assert server_model_name("general") == "general"


def test_the_listing_matches_the_servers_models_to_the_assistants(server):
    listing = list_server_models(f"{server}/v1/", ["moral-audit", "sentencing", "civic-qa"],
                                 {"sentencing": "demonbyron/qwen3-4b-CriminalLaw-cn:q4"})
    assert listing.url == f"{server}/v1"
    assert listing.models == (
        ServedModel("moral-audit", ("moral-audit",)),
        ServedModel("demonbyron/qwen3-4b-CriminalLaw-cn:q4", ("sentencing",)),
        ServedModel("llama3.2:latest", ()))
    assert listing.missing == {"civic-qa": "civic-qa"}


def test_an_unreachable_server_is_one_line():
    with pytest.raises(EndpointError) as caught:
        list_server_models("http://127.0.0.1:9", ["general"])
    assert "127.0.0.1:9" in str(caught.value) and "\n" not in str(caught.value)
