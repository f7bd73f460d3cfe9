"""intent-safety on a server: vLLM's /classify and llama.cpp's server's /rerank (loopback
servers computing with llama.cpp on the same GGUF, each speaking its own API's fields)
receive exactly the text the embedded classifier builds and give its verdicts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from app.engine.classifier import Classifier
from app.engine.remote_classifier import RemoteClassifier, detect_api
from app.engine.server_client import EndpointError, ServerClient
from tests.app.engine.test_classifier import CONVERSATIONS, TASK, long_turns
from tests.loopback import ClassifierApp, Loopback, Reply

APIS = ["vllm", "llama-server"]
DIALOGUES = [c for c in CONVERSATIONS if c] + [long_turns()]


@pytest.fixture(scope="module")
def classifier(models):
    with Classifier.load(models.classifier, task_description=TASK, f32_cache=True) as clf:
        yield clf


@pytest.mark.parametrize("api", APIS)
def test_server_verdicts_equal_the_embedded_classifiers(classifier, api):
    app = ClassifierApp(classifier, api)
    with Loopback(app) as server:
        remote = RemoteClassifier.connect(ServerClient(server.url), TASK)
        assert remote.api == api
        for turns in DIALOGUES:
            expected = classifier.classify(turns)
            verdict = remote.classify(turns)
            assert app.texts[-1] == classifier.model_text(turns)  # the seed's text, exactly
            assert verdict.label == expected.label
            assert verdict.prob_unsafe == pytest.approx(expected.prob_unsafe, abs=1e-5)
            assert verdict.prob_non_unsafe == pytest.approx(expected.prob_non_unsafe,
                                                            abs=1e-5)
        assert remote.classify(DIALOGUES[0], threshold=0.0).label_text == "unsafe"
        assert remote.classify(DIALOGUES[0], threshold=1.0).label_text == "non_unsafe"
        # The task prefix is tokenized once, not per dialogue.
        texts = [r.body.get("prompt", r.body.get("content")) for r in server.posts("/tokenize")]
        assert sum(text.startswith("任务描述") for text in texts) == 1


def test_many_dialogues_in_flight_give_the_same_verdicts(classifier):
    app = ClassifierApp(classifier, "vllm")
    with Loopback(app) as server:
        remote = RemoteClassifier(ServerClient(server.url), "vllm", TASK)
        dialogues = [c for c in CONVERSATIONS if c] * 4
        with ThreadPoolExecutor(8) as pool:
            verdicts = list(pool.map(remote.classify, dialogues))
        expected = [classifier.classify(turns) for turns in dialogues]
        assert [v.prob_unsafe for v in verdicts] == pytest.approx(
            [e.prob_unsafe for e in expected], abs=1e-5)


def test_the_model_name_is_sent_when_given(classifier):
    app = ClassifierApp(classifier, "vllm")
    with Loopback(app) as server:
        remote = RemoteClassifier.connect(ServerClient(server.url), TASK, api="vllm",
                                          model="intent-safety")
        remote.classify(DIALOGUES[0])
        assert not [r for r in server.requests if r.path == "/v1/models"]  # not asked
        assert {r.body["model"] for r in server.requests} == {"intent-safety"}


def _models(owner):
    return lambda _request: Reply(body={"data": [{"id": "x", "owned_by": owner}]})


@pytest.mark.parametrize(("owner", "message"), [
    ("library", "is Ollama, which has no classification API"),
    ("someone", r"cannot tell which server .* \(owned_by: someone\); pass --api vllm"),
])
def test_servers_that_cannot_classify_are_named(owner, message):
    with Loopback(_models(owner)) as server, pytest.raises(EndpointError, match=message):
        detect_api(ServerClient(server.url))


@pytest.mark.parametrize(("api", "answer", "message"), [
    ("vllm", {"data": [{"probs": [0.2, 0.3, 0.5]}]}, "3 classes, not intent-safety's 2"),
    ("vllm", {"data": [{"probs": ["a", "b"]}]}, "answered /classify unexpectedly"),
    ("vllm", {"oops": True}, "answered /classify unexpectedly"),
    ("llama-server", {"results": [{"relevance_score": 7.5}]}, "7.5, not a probability"),
    ("llama-server", {"results": []}, "answered /rerank unexpectedly"),
])
def test_unexpected_answers_are_one_clear_line(api, answer, message):
    def app(request):
        if request.path == "/tokenize":
            return Reply(body={"tokens": [1, 2]})
        if request.path == "/detokenize":
            return Reply(body={"prompt": "x", "content": "x"})
        return Reply(body=answer)

    with Loopback(app) as server:
        remote = RemoteClassifier(ServerClient(server.url), api, TASK)
        with pytest.raises(EndpointError, match=message):
            remote.classify(DIALOGUES[0])


def test_an_unknown_api_name_is_refused():
    with pytest.raises(EndpointError, match="unknown server API 'ollama'"):
        RemoteClassifier.connect(ServerClient("http://127.0.0.1:1"), TASK, api="ollama")
