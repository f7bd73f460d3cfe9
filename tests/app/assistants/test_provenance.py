"""Provenance records built from what produced an answer: the manifest's file facts, the
verification state, the engine, the Modelfile with the conversation's overrides."""

from __future__ import annotations

import json

from app import __version__
from app.assistants.gate import IntentGate, classifier_profile
from app.assistants.registry import verify_model
from app.assistants.runtime import Assistant, assistant_profile, open_assistant
from app.engine.fake import FakeEngine
from app.engine.openai_backend import OpenAIBackend
from app.engine.server_client import ServerTarget
from app.store import Provenance


def _assistant(model, engine=None, **options) -> Assistant:
    profile = assistant_profile(model)
    return Assistant(model, profile, engine or FakeEngine(n_ctx=profile.n_ctx), **options)


def test_the_record_names_the_file_as_its_manifest_does(installed):
    model = installed("sentencing")
    record = _assistant(model).provenance()
    entry = model.manifest["outputs"][0]
    assert record.assistant == "sentencing"
    assert (record.model.name, record.model.file, record.model.sha256, record.model.size) == (
        "sentencing", "sentencing.Q4_K_M.gguf", entry["sha256"], entry["size"])
    assert record.model.quantization == "Q4_K_M" and record.model.demo
    assert record.model.verification == "not verified" and not record.model.used_anyway
    assert record.amicus_version == __version__ and record.num_ctx == 4096
    verify_model(model)
    assert _assistant(model).provenance().model.verification == "verified"


def test_the_record_says_which_importance_matrix_calibrated_the_file(installed):
    assert _assistant(installed("sentencing")).provenance().model.importance_matrix is None
    collected = {"imatrix": "collected", "set": "sentencing", "chunks": 7, "chunk_size": 512}
    record = _assistant(installed("general", calibration=collected)).provenance()
    assert record.model.importance_matrix == "collected (sentencing), 7 x 512 tokens"
    assert dict(record.describe())["Importance matrix"] == record.model.importance_matrix
    again = Provenance.from_json(record.to_json())
    assert again is not None and again.model.importance_matrix == record.model.importance_matrix
    off = {"imatrix": "off", "reason": "--imatrix off"}
    record = _assistant(installed("moral-audit", calibration=off)).provenance()
    assert record.model.importance_matrix == "off (--imatrix off)"


def test_the_record_holds_the_modelfile_settings_and_the_overrides(installed):
    assistant = _assistant(installed("sentencing"))
    record = assistant.provenance()
    assert record.system_prompt == assistant.profile.system and record.system_prompt
    assert record.sampling["temperature"] == 0.2 and record.sampling["top_p"] == 0.9
    assert record.sampling["stop"] == ["<|im_end|>", "<|im_start|>"]
    assert record.sampling["top_k"] == 40  # the engine's default, which it samples with
    assert record.think is None
    changed = assistant.provenance(system="Be brief.", params={"temperature": 0.7},
                                   think=False, threads=3)
    assert changed.system_prompt == "Be brief." and changed.sampling["temperature"] == 0.7
    assert changed.think is False and changed.backend.threads == 3
    assert changed.backend.kind == "embedded"
    assert Provenance.from_json(changed.to_json()) == Provenance.from_dict(
        json.loads(json.dumps(changed.as_dict())))


def test_a_server_record_names_the_url_and_model_and_only_the_fields_sent(installed):
    model = installed("moral-audit")
    server = OpenAIBackend("http://127.0.0.1:11434", model="moral-audit")
    record = _assistant(model, server).provenance(params={"num_predict": 64})
    assert (record.backend.kind, record.backend.url, record.backend.server_model) == (
        "endpoint", "http://127.0.0.1:11434/v1", "moral-audit")
    assert record.backend.threads is None
    assert "top_k" not in record.sampling and record.sampling["num_predict"] == 64
    assert record.sampling["temperature"] == 0.2 and record.sampling["repeat_penalty"] == 1.1


def test_open_assistant_asks_the_server_for_the_assistants_name_by_default(installed):
    model = installed("moral-audit")
    root = model.directory.parent
    default = open_assistant("moral-audit", server=ServerTarget("http://127.0.0.1:9"),
                             root=root)
    named = open_assistant("moral-audit", root=root,
                           server=ServerTarget("http://127.0.0.1:9", model="qwen3-ethics:q4"))
    assert isinstance(default.engine, OpenAIBackend)
    assert default.engine.model == "moral-audit" and named.engine.model == "qwen3-ethics:q4"
    assert named.provenance().backend.server_model == "qwen3-ethics:q4"


def test_a_server_records_the_context_it_reads_with_not_a_requested_one(installed):
    """No request changes a server's context: a num_ctx asked for (the app's [num_ctx]
    table) is not what the server used, so the record keeps the Modelfile's."""
    model = installed("moral-audit")
    served = open_assistant("moral-audit", server=ServerTarget("http://127.0.0.1:9"),
                            root=model.directory.parent, num_ctx=16384)
    assert served.engine.n_ctx == served.profile.n_ctx == 4096
    assert served.provenance().num_ctx == 4096


def test_a_verdict_records_the_classifier_and_its_threshold(installed):
    model = installed("intent-safety", kind="classifier")
    gate = IntentGate(None, classifier_profile(), model, n_threads=2)
    record = gate.provenance(0.7)
    assert record is not None and record.assistant == "intent-safety"
    assert record.classifier == {"threshold": 0.7, "input_format_version":
                                 classifier_profile().input_format_version, "max_turns": 8}
    assert record.backend.threads == 2 and not record.backend.adaptive_threads
    assert record.num_ctx == 4096 and record.sampling == {} and record.system_prompt is None
    assert gate.provenance().classifier["threshold"] == classifier_profile().threshold
    assert IntentGate(None, classifier_profile()).provenance() is None
