"""app.assistants.profiles: assistant profiles from the Modelfiles, and the classifier's
input format from intent-safety.json."""

from __future__ import annotations

import hashlib
import json

import pytest

from app.assistants.profiles import (
    OLLAMA_DEFAULTS,
    load_classifier_profile,
    load_profile,
)
from app.paths import modelfiles_dir
from converters.errors import InputError
from converters.ollama.modelfile import ModelfileError
from tests.seeds import seed_file

TASK_SHA256 = "f7b15b0b66bc4a4cb2edbb6c35952d4167aa6be57334ecb8d2e81f4a51aa753a"


def test_moral_audit_profile():
    profile = load_profile(modelfiles_dir() / "moral-audit.Modelfile")
    assert profile.name == "moral-audit"
    assert profile.model == "./moral-audit.Q4_K_M.gguf"
    assert profile.model_path is None  # no GGUF next to the shipped file
    assert profile.system.startswith("You are Amicus Moral Audit")
    assert "<|im_start|>" in profile.template
    assert profile.stop == ("<|im_end|>", "<|im_start|>")
    assert profile.n_ctx == 4096
    assert profile.sampling() == {
        "temperature": 0.2, "top_p": 0.9, "top_k": OLLAMA_DEFAULTS["top_k"], "min_p": 0.0,
        "typical_p": 1.0, "repeat_penalty": 1.1, "presence_penalty": 0.0,
        "frequency_penalty": 0.0, "max_tokens": None, "stop": ["<|im_end|>", "<|im_start|>"]}


def test_installed_profile_resolves_its_gguf(tmp_path):
    folder = tmp_path / "sentencing"
    folder.mkdir()
    (folder / "sentencing.Q4_K_M.gguf").write_bytes(b"GGUF")
    text = (modelfiles_dir() / "sentencing.Modelfile").read_text(encoding="utf-8")
    (folder / "Modelfile").write_text(text + "PARAMETER seed 7\nPARAMETER num_predict 64\n")
    profile = load_profile(folder / "Modelfile")
    assert profile.name == "sentencing"
    assert profile.model_path == (folder / "sentencing.Q4_K_M.gguf").resolve()
    assert profile.sampling()["seed"] == 7 and profile.sampling()["max_tokens"] == 64
    assert profile.system.startswith("你是一个专业、严谨且客观的AI刑事审判辅助系统")


def test_a_bad_modelfile_is_an_input_error(tmp_path):
    path = tmp_path / "Modelfile"
    path.write_text("FROM x\nPARAMETER temperature hot\n")
    with pytest.raises(ModelfileError, match="line 2"):
        load_profile(path)
    with pytest.raises(InputError, match="cannot read"):
        load_profile(tmp_path / "missing" / "Modelfile")


def test_classifier_profile_is_seed_002_to_the_character():
    profile = load_classifier_profile(modelfiles_dir() / "intent-safety.json")
    assert profile.input_format_version == "task_description_ctx_only_v1"
    assert profile.threshold == 0.5
    assert profile.max_turns == 8 and profile.max_tokens == 4096
    assert profile.labels == {0: "non_unsafe", 1: "unsafe"} and profile.positive_label == 1
    assert profile.text_template == "任务描述:\n{task_description}\n\nctx:\n{ctx_text}"
    task = profile.task_description
    assert hashlib.sha256(task.encode("utf-8")).hexdigest() == TASK_SHA256
    assert task.startswith("你是用户意图安全审核专员,负责分析角色扮演(RP)对话中")
    assert task.endswith("才进入 unsafe 判断。")


def test_task_description_equals_the_seed():
    seed = seed_file("002").read_text(encoding="utf-8")
    start = seed.index('train_prompt = """') + len('train_prompt = """')
    expected = seed[start:seed.index('"""', start)]
    profile = load_classifier_profile(modelfiles_dir() / "intent-safety.json")
    assert profile.task_description == expected


def test_classifier_profile_refuses_bad_data(tmp_path):
    data = json.loads((modelfiles_dir() / "intent-safety.json").read_text(encoding="utf-8"))
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**data, "threshold": "half"}))
    with pytest.raises(InputError, match="threshold must be a float"):
        load_classifier_profile(path)
    path.write_text("{")
    with pytest.raises(InputError, match="cannot read"):
        load_classifier_profile(path)
