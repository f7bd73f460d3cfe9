"""Tiny GGUFs for the engine tests, converted once per session from synthetic checkpoints
with the real pipeline (about a second in all)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from converters.pipeline import ConvertRequest, Progress, convert
from converters.synthetic import checkpoints as synthetic


@dataclass(frozen=True)
class Models:
    qwen3: Path  # Qwen3 hybrid-thinking template, Q4_K_M
    llama: Path  # Llama-2 chat template, BOS added by llama.cpp, Q4_K_M
    qwen35: Path  # Qwen3.5: hybrid linear attention, template pre-fills <think> when asked
    classifier: Path  # Qwen3ForSequenceClassification, F32 for exact comparisons
    classifier_source: Path  # the checkpoint it came from (HF tokenizer and model)


def _convert(source: Path, out: Path, name: str, quant: str) -> Path:
    request = ConvertRequest(base=str(source), name=name, out_dir=out, quant=quant)
    return convert(request, Progress(enabled=False)).outputs[0]


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Models:
    root = tmp_path_factory.mktemp("engine-models")
    qwen3 = synthetic.build_qwen3(root / "src-qwen3").path
    llama = synthetic.build_llama(root / "src-llama").path
    qwen35 = synthetic.build_qwen35(root / "src-qwen35").path
    classifier = synthetic.build_qwen3_classifier(root / "src-clf").path
    return Models(
        qwen3=_convert(qwen3, root / "qwen3", "qwen3", "Q4_K_M"),
        llama=_convert(llama, root / "llama", "llama", "Q4_K_M"),
        qwen35=_convert(qwen35, root / "qwen35", "qwen35", "Q4_K_M"),
        classifier=_convert(classifier, root / "clf", "clf", "F32"),
        classifier_source=classifier,
    )


def state_writer(size: int) -> Callable[[Path], bool]:
    """A writer for KVStateStore.save that needs no model: `size` random bytes."""
    def write(path: Path) -> bool:
        path.write_bytes(os.urandom(size))
        return True

    return write
