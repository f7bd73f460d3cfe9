"""Verify a converted GGUF: it loads, it tokenizes exactly like the source, it runs.

Tokenizer parity compares llama.cpp's tokenization of a fixed multilingual set with the
source tokenizer's own library (`tokenizers` for tokenizer.json, `sentencepiece` for
tokenizer.model). Any difference is an error: a model that reads text differently from how
it was trained is not the model that was trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from converters.errors import VerificationError, one_line
from converters.llama_runtime import GGUFLoadError, class_probabilities, last_logits, load_llama

# English, Simplified and Traditional Chinese, emoji, digits, whitespace runs, mixed text.
PARITY_TEXTS: tuple[str, ...] = (
    "Hello, world! The clinic opens at 9:30 a.m.",
    "被告人张某犯盗窃罪,判处有期徒刑一年六个月。",
    "台灣的民主選舉制度保障人民的參政權。",
    "Emoji 🙂👍🏽 and symbols: ©®™ €100 ±5%",
    "Digits 1234567890 3.14159 2026-11-21",
    "spaces    and\ttabs\n\nnew   lines  ",
    "混合 mixed 文本 text 與 English",
    "  leading and trailing spaces  ",
)
T = TypeVar("T")
GENERATED_TOKENS = 4  # greedy tokens a converted chat model must produce
# Special tokens that must come out as single ids where the vocabulary has them.
SPECIAL_TEXTS: tuple[str, ...] = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>",
                                  "</think>")


@dataclass
class VerificationReport:
    tokenizer: str
    texts_checked: int = 0
    special_tokens_checked: int = 0
    generated_tokens: int = 0
    class_probabilities: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def verify_gguf(path: Path, tokenizer_dir: Path, *, classifier: bool) -> VerificationReport:
    """Load the GGUF and check tokenizer parity and a forward pass. Raises
    VerificationError naming the first difference."""
    try:
        llm = load_llama(path, n_ctx=512, classifier=classifier)
    except GGUFLoadError as exc:
        raise VerificationError(str(exc)) from exc
    try:
        report = _check_tokenizer(llm, tokenizer_dir)
        if classifier:
            _check_classifier(llm, report)
        else:
            greedy_check(llm, GENERATED_TOKENS)
            report.generated_tokens = GENERATED_TOKENS
        return report
    finally:
        llm.close()


def _check_tokenizer(llm, tokenizer_dir: Path) -> VerificationReport:
    if (tokenizer_dir / "tokenizer.model").is_file() and _is_sentencepiece_model(llm):
        return _check_sentencepiece(llm, tokenizer_dir / "tokenizer.model")
    return _check_tokenizer_json(llm, tokenizer_dir / "tokenizer.json")


def _is_sentencepiece_model(llm) -> bool:
    return llm.metadata.get("tokenizer.ggml.model") == "llama"


def _check_tokenizer_json(llm, path: Path) -> VerificationReport:
    from tokenizers import Tokenizer

    reference = _reference(path, "tokenizers", lambda: Tokenizer.from_file(str(path)))
    report = VerificationReport("tokenizer.json")
    for text in PARITY_TEXTS:
        expected = reference.encode(text, add_special_tokens=False).ids
        _compare(text, expected, llm.tokenize(text.encode("utf-8"), add_bos=False,
                                              special=True))
        report.texts_checked += 1
    vocab = reference.get_vocab(with_added_tokens=True)
    for special in SPECIAL_TEXTS:
        if special in vocab:
            _compare(special, [vocab[special]],
                     llm.tokenize(special.encode("utf-8"), add_bos=False, special=True))
            report.special_tokens_checked += 1
    return report


def _check_sentencepiece(llm, path: Path) -> VerificationReport:
    import sentencepiece

    reference = _reference(path, "sentencepiece", lambda: sentencepiece.SentencePieceProcessor(
        model_file=str(path)))
    report = VerificationReport("tokenizer.model")
    for text in PARITY_TEXTS:
        expected = reference.encode(text)
        _compare(text, expected, llm.tokenize(text.encode("utf-8"), add_bos=False,
                                              special=False))
        report.texts_checked += 1
    for piece_id in (reference.bos_id(), reference.eos_id()):
        if piece_id >= 0:
            piece = reference.id_to_piece(piece_id)
            _compare(piece, [piece_id],
                     llm.tokenize(piece.encode("utf-8"), add_bos=False, special=True))
            report.special_tokens_checked += 1
    return report


def _reference(path: Path, library: str, load: Callable[[], T]) -> T:
    """The source tokenizer, loaded by its own library; a file the converter could read
    but the library cannot is a tokenizer that was never used as written."""
    try:
        return load()
    except Exception as exc:  # tokenizers raises a bare Exception, sentencepiece others
        raise VerificationError(f"{path}: {library} cannot load it ({one_line(str(exc))})") \
            from exc


def _compare(text: str, expected: list[int], actual: list[int]) -> None:
    if list(expected) != list(actual):
        at = next((i for i, (a, b) in enumerate(zip(expected, actual, strict=False)) if a != b),
                  min(len(expected), len(actual)))
        raise VerificationError(
            f"tokenizer mismatch on {text!r}: source gives {expected[at:at + 4]}..., GGUF gives "
            f"{actual[at:at + 4]}... at token {at}")


def greedy_check(llm, count: int, prompt: bytes = b"The court") -> int:
    """Read `prompt`, then decode `count` tokens greedily; the logits of every step must be
    finite. Returns the prompt's token count."""
    tokens = llm.tokenize(prompt, add_bos=True, special=False)
    llm.reset()
    llm.eval(tokens)
    for step in range(count + 1):
        logits = last_logits(llm)
        if not np.isfinite(logits).all():
            raise VerificationError("the model produced non-finite logits")
        if step < count:
            llm.eval([int(logits.argmax())])
    return len(tokens)


def _check_classifier(llm, report: VerificationReport) -> None:
    tokens = llm.tokenize(b"ctx:\n[user] hello", add_bos=False, special=False)
    probabilities = class_probabilities(llm, tokens)
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probabilities) or not math.isclose(
            sum(probabilities), 1.0, abs_tol=1e-3):
        raise VerificationError(f"classifier output is not a probability vector: {probabilities}")
    report.class_probabilities = probabilities
