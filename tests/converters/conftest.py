"""Synthetic sources shared by the converter tests (built once per session: seconds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from converters.synthetic import checkpoints as synthetic


@dataclass(frozen=True)
class Sources:
    qwen3: Path
    qwen3_lora: Path
    qwen35: Path
    qwen35_lora: Path
    llama: Path
    classifier: Path
    classifier_adapter: Path


@pytest.fixture(scope="session")
def sources(tmp_path_factory) -> Sources:
    root = tmp_path_factory.mktemp("sources")
    qwen3 = synthetic.build_qwen3(root / "qwen3", tied=True).path
    qwen35 = synthetic.build_qwen35(root / "qwen35").path
    classifier = synthetic.build_qwen3_classifier(root / "classifier").path
    return Sources(
        qwen3=qwen3,
        qwen3_lora=synthetic.build_adapter(root / "qwen3-lora", qwen3,
                                           synthetic.ADAPTER_KINDS["rslora"]),
        qwen35=qwen35,
        qwen35_lora=synthetic.build_adapter(root / "qwen35-lora", qwen35,
                                            synthetic.AdapterSpec(r=16, lora_alpha=32)),
        llama=synthetic.build_llama(root / "llama").path,
        classifier=classifier,
        classifier_adapter=synthetic.build_adapter(root / "clf-lora", classifier,
                                                   synthetic.ADAPTER_KINDS["seq_cls"]),
    )
