"""Qwen3ForCausalLM and Qwen3ForSequenceClassification -> GGUF `qwen3`.

NEOX rope: no q/k permutation. The classifier is llama.cpp's qwen3 classifier: the HF
`score` head becomes `cls.output.weight` (no bias), pooling RANK (last token), and the
label names set n_cls_out.
"""

from __future__ import annotations

import gguf

from converters.errors import InputError
from converters.gguf.architectures.base import Architecture, register
from converters.gguf.vocab import ByteLevelBPE

CLASSIFIER_HEAD = "cls.output.weight"
# llama.cpp's server classifies through /rerank (started with --rerank). Without a rerank
# template it tokenizes query and document apart and with special-token text left as text;
# with one, it substitutes both into the template and tokenizes the result as the embedded
# classifier does (special tokens parsed, no BOS). Amicus sends the whole classifier input
# as the query and an empty document.
RERANK_TEMPLATE = "{query}{document}"


@register
class Qwen3(Architecture):
    gguf_arch = "qwen3"
    hf_classes = ("Qwen3ForCausalLM", "Qwen3ForSequenceClassification")
    classifier_classes = frozenset({"Qwen3ForSequenceClassification"})
    vocabulary = ByteLevelBPE(pre_tokenizer="qwen2")

    def add_hparams(self, writer: gguf.GGUFWriter) -> None:
        super().add_hparams(writer)
        if self.config.is_classifier:
            writer.add_pooling_type(gguf.PoolingType.RANK)
            writer.add_classifier_output_labels(self.labels())
            writer.add_string(gguf.Keys.Tokenizer.CHAT_TEMPLATE_N.format(name="rerank"),
                              RERANK_TEMPLATE)

    def labels(self) -> list[str]:
        id2label = self.config.get("id2label") or {}
        count = len(id2label) or int(self.config.get("num_labels", 0))
        if count < 2:
            raise InputError("classifier has fewer than 2 labels; llama.cpp cannot represent it")
        return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(count)]

    def dropped(self, name: str) -> bool:
        # A classifier has no language-model head; llama.cpp would build logits from it.
        return super().dropped(name) or (self.config.is_classifier and name == "lm_head.weight")

    def gguf_name(self, name: str) -> str:
        if name == "score.weight":
            return CLASSIFIER_HEAD
        return super().gguf_name(name)
