"""The intent-safety classifier on a server: vLLM's `/classify` or llama.cpp's server's
`/rerank`, fed exactly the text the embedded classifier builds.

The text is seed 002's, built by app.engine.classifier (`format_ctx`, `build_model_text`);
only the tokenizer that trims the ctx to 4096 tokens is the server's own (`/tokenize`,
`/detokenize`): it is the model's tokenizer (vLLM: the Hugging Face one the seed used;
llama.cpp's server: the GGUF's, equal to it by the converter's parity check).

- vLLM (serving a `*ForSequenceClassification` model): `POST /classify {"model", "input"}`
  -> `data[0].probs` = [P(non_unsafe), P(unsafe)] (softmax, label order of id2label).
- llama.cpp's server started with `--rerank` (or `--embeddings --pooling rank`):
  `POST /rerank {"query": text, "documents": [""]}` -> `results[0].relevance_score` =
  P(non_unsafe), the first label's probability (the server reports only that one), so
  P(unsafe) = 1 - score. Amicus' classifier GGUFs carry a rerank template that makes the
  server tokenize the query exactly as the embedded classifier does.
- Ollama has no classification API.

Which server it is comes from `GET /v1/models` (`owned_by`: "vllm" / "llamacpp"), unless
the caller says (`--api`).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from app.engine.classifier import (
    DEFAULT_THRESHOLD,
    LABELS,
    Progress,
    Verdict,
    build_model_text,
    format_ctx,
    verdict_from,
)
from app.engine.errors import ReadingCancelled
from app.engine.server_client import SERVER_APIS, EndpointError, RequestCancelled, ServerClient

ServerApi = Literal["vllm", "llama-server"]
_OWNERS: dict[str, ServerApi] = {"vllm": "vllm", "llamacpp": "llama-server"}
_PROBABILITY_SLACK = 1e-3  # what a float32 softmax may stray outside [0, 1]


def detect_api(client: ServerClient) -> ServerApi:
    """vLLM or llama.cpp's server, as its model list says (EndpointError otherwise)."""
    body = client.get_json("/v1/models")
    owners = {str(m.get("owned_by", "")) for m in body.get("data") or [] if isinstance(m, dict)}
    for owner in owners:
        if owner in _OWNERS:
            return _OWNERS[owner]
    url = client.endpoint.url
    if owners & {"library", "ollama"}:
        raise EndpointError(f"{url} is Ollama, which has no classification API; serve the "
                            "classifier with vLLM or llama.cpp's server (--rerank)",
                            title="The server cannot classify")
    raise EndpointError(f"cannot tell which server {url} is (owned_by: "
                        f"{', '.join(sorted(owners)) or 'nothing'}); pass --api vllm or "
                        "--api llama-server", title="The server cannot classify")


class ServerTokenizer:
    """The server's tokenizer with the calls build_model_text makes (TextTokenizer): no
    BOS/EOS added, special-token text parsed, decoding that writes special tokens out."""

    def __init__(self, client: ServerClient, api: ServerApi, model: str | None,
                 cancel: threading.Event) -> None:
        self._client = client
        self._api = api
        self._model = model
        self._cancel = cancel
        # The task prefix is encoded for every record: ask the server once.
        self._encode_cached = functools.lru_cache(maxsize=4)(self._encode)

    def encode(self, text: str) -> list[int]:
        return list(self._encode_cached(text))

    def decode(self, ids: Sequence[int]) -> str:
        body = self._post("/detokenize", {"tokens": list(ids)})
        text = body.get("prompt" if self._api == "vllm" else "content")
        if not isinstance(text, str):
            raise _unexpected(self._client, "/detokenize", body)
        return text

    def _encode(self, text: str) -> tuple[int, ...]:
        if self._api == "vllm":
            body = self._post("/tokenize", {"prompt": text, "add_special_tokens": False})
        else:
            body = self._post("/tokenize", {"content": text, "add_special": False,
                                            "parse_special": True})
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise _unexpected(self._client, "/tokenize", body)
        return tuple(tokens)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._model:
            body = {"model": self._model, **body}
        return self._client.post_json(path, body, cancel=self._cancel)


class RemoteClassifier:
    """intent-safety on a server, with the embedded Classifier's interface:
    `classify(turns)` -> Verdict. Thread-safe; `close()` cancels requests in flight."""

    def __init__(self, client: ServerClient, api: ServerApi, task_description: str, *,
                 model: str | None = None, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.client = client
        self.api = api
        self.model = model
        self.task_description = task_description.strip()
        self.threshold = threshold
        self._cancel = threading.Event()
        self._calls: set[threading.Event] = set()  # the callers' cancels of requests in flight
        self.tokenizer = ServerTokenizer(client, api, model, self._cancel)

    @classmethod
    def connect(cls, client: ServerClient, task_description: str, *,
                api: str | None = None, model: str | None = None,
                threshold: float = DEFAULT_THRESHOLD) -> RemoteClassifier:
        """`api` None: asked of the server (one request)."""
        if api is not None and api not in SERVER_APIS:
            raise EndpointError(f"unknown server API {api!r}; choose {' or '.join(SERVER_APIS)}")
        chosen = cast(ServerApi, api) if api is not None else detect_api(client)
        return cls(client, chosen, task_description, model=model, threshold=threshold)

    def model_text(self, turns: Sequence[Mapping[str, Any]]) -> str:
        """The exact text the classifier reads for these turns (the embedded one's)."""
        return build_model_text(self.task_description, format_ctx(turns), self.tokenizer)

    def probabilities(self, turns: Sequence[Mapping[str, Any]], *,
                      cancel: threading.Event | None = None) -> list[float]:
        """[non_unsafe, unsafe]. `cancel` (the embedded classifier's, between its chunks)
        abandons the request: ReadingCancelled, as the embedded one raises."""
        if cancel is not None and cancel.is_set():
            raise ReadingCancelled("the intent-safety check was cancelled before it started")
        text = self.model_text(turns)
        try:
            if self.api == "vllm":
                return self._classify(text, cancel)
            return self._rerank(text, cancel)
        except RequestCancelled as exc:
            if cancel is not None and cancel.is_set():
                raise ReadingCancelled("the intent-safety check was cancelled") from exc
            raise

    def classify(self, turns: Sequence[Mapping[str, Any]], threshold: float | None = None,
                 *, cancel: threading.Event | None = None,
                 progress: Progress | None = None) -> Verdict:
        """As the embedded Classifier's; `progress` is never called: the server reads the
        text where its progress cannot be seen."""
        limit = self.threshold if threshold is None else threshold
        return verdict_from(self.probabilities(turns, cancel=cancel), limit)

    def close(self) -> None:
        self._cancel.set()
        for cancel in list(self._calls):
            cancel.set()

    def __enter__(self) -> RemoteClassifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, path: str, body: dict[str, Any],
                 cancel: threading.Event | None) -> dict[str, Any]:
        """POST, abandoned on `close()` or on the caller's `cancel`."""
        if cancel is None:
            return self.client.post_json(path, body, cancel=self._cancel)
        self._calls.add(cancel)
        try:
            if self._cancel.is_set():
                cancel.set()
            return self.client.post_json(path, body, cancel=cancel)
        finally:
            self._calls.discard(cancel)

    def _classify(self, text: str, cancel: threading.Event | None = None) -> list[float]:
        body: dict[str, Any] = {"input": text}
        if self.model:
            body["model"] = self.model
        answer = self._request("/classify", body, cancel)
        data = answer.get("data")
        probs = data[0].get("probs") if isinstance(data, list) and data and isinstance(
            data[0], dict) else None
        if not isinstance(probs, list) or not all(isinstance(p, (int, float)) for p in probs):
            raise _unexpected(self.client, "/classify", answer)
        if len(probs) != len(LABELS):
            raise EndpointError(f"server {self.client.endpoint.url} serves a classifier with "
                                f"{len(probs)} classes, not intent-safety's {len(LABELS)}",
                                title="The server cannot classify")
        return [_probability(self.client, float(p)) for p in probs]

    def _rerank(self, text: str, cancel: threading.Event | None = None) -> list[float]:
        body: dict[str, Any] = {"query": text, "documents": [""]}
        if self.model:  # a llama.cpp router serving several models picks by it
            body["model"] = self.model
        answer = self._request("/rerank", body, cancel)
        results = answer.get("results")
        score = results[0].get("relevance_score") if isinstance(results, list) and results \
            and isinstance(results[0], dict) else None
        if not isinstance(score, (int, float)):
            raise _unexpected(self.client, "/rerank", answer)
        first = _probability(self.client, float(score))
        return [first, 1.0 - first]


def _probability(client: ServerClient, value: float) -> float:
    if not -_PROBABILITY_SLACK <= value <= 1 + _PROBABILITY_SLACK:
        raise EndpointError(f"server {client.endpoint.url} answered {value!r}, not a "
                            "probability: is the model a classifier converted by Amicus "
                            "(llama.cpp applies softmax to its output)?",
                            title="The server cannot classify")
    return min(max(value, 0.0), 1.0)


def _unexpected(client: ServerClient, path: str, body: Mapping[str, Any]) -> EndpointError:
    return EndpointError(f"server {client.endpoint.url} answered {path} unexpectedly: "
                         f"{client.server_text(json.dumps(body, ensure_ascii=False))}")
