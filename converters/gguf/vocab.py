"""Tokenizer metadata for GGUF: byte-level BPE (Qwen) and SentencePiece (Llama).

llama.cpp tokenizes from what we write here, so the token list, types, merges, scores and
special ids decide whether the GGUF model reads text exactly as the source tokenizer does.
Each architecture declares its vocabulary (gguf/architectures/): a byte-level BPE with the
pre-tokenizer llama.cpp should apply (`qwen2` / `qwen35`, checked against the Split regex
in tokenizer.json: a tokenizer we do not recognise is refused rather than silently
tokenised another way), or SentencePiece.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gguf

from converters.errors import InputError
from converters.gguf.sentencepiece_model import SentencePieceModelError, read_sentencepiece_model

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                   "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
                   "chat_template.json")
# The pre-tokenizers llama.cpp implements, by the name a GGUF records, with the Split regex
# of the real tokenizer.json files (llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2 / _QWEN35 quote
# them as "original regex from tokenizer.json"; transformers' Qwen2Tokenizer /
# Qwen3_5Tokenizer use the same strings). Qwen3.5 differs in keeping combining marks (\p{M})
# inside words and out of punctuation runs.
PRE_TOKENIZER_REGEXES: dict[str, str] = {
    "qwen2": (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
        r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
    "qwen35": (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}|"
        r" ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
}
_TokenType = gguf.TokenType
# Added tokens that tokenizer files leave non-special although they act as control tokens
# (llama.cpp's converter lists these by name: deepseek-coder's <pad>, Gemma's <mask>,
# <2mass>, [@BOS@]); beyond them, the spellings of looks_special.
_SPECIAL_LOOKING_NAMES = frozenset({"<pad>", "<mask>", "<2mass>", "[@BOS@]"})


@dataclass(frozen=True)
class ByteLevelBPE:
    """A tokenizer.json byte-level BPE (Qwen): GGUF tokenizer model `gpt2`, with merges,
    and the pre-tokenizer llama.cpp must apply."""

    pre_tokenizer: str
    has_merges: ClassVar[bool] = True

    def add_tokens(self, writer: gguf.GGUFWriter, directory: Path, vocab_size: int) -> None:
        _add_byte_level_bpe(writer, directory, self.pre_tokenizer, vocab_size)


@dataclass(frozen=True)
class SentencePiece:
    """A SentencePiece tokenizer.model (Llama): GGUF tokenizer model `llama`, scores
    instead of merges."""

    has_merges: ClassVar[bool] = False

    def add_tokens(self, writer: gguf.GGUFWriter, directory: Path, vocab_size: int) -> None:
        _add_sentencepiece(writer, directory, vocab_size)


Vocabulary = ByteLevelBPE | SentencePiece


def tokenizer_directory(base: Path, adapters: list[Path]) -> Path:
    """The adapter directory's tokenizer wins (added tokens, a fixed chat template)."""
    for adapter in reversed(adapters):
        if (adapter / "tokenizer_config.json").is_file() and (
            (adapter / "tokenizer.json").is_file() or (adapter / "tokenizer.model").is_file()
        ):
            return adapter
    return base


def add_tokenizer(writer: gguf.GGUFWriter, tokenizer_dir: Path, config_dir: Path,
                  vocabulary: Vocabulary, vocab_size: int) -> None:
    """Write tokens, types, scores/merges, special ids and the chat template."""
    vocabulary.add_tokens(writer, tokenizer_dir, vocab_size)
    _add_special_vocab(writer, tokenizer_dir, config_dir, vocab_size,
                       load_merges=vocabulary.has_merges)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read tokenizer file ({exc})") from exc


# ---------------------------------------------------------------------------- BPE


def _add_byte_level_bpe(writer: gguf.GGUFWriter, directory: Path, pre_tokenizer: str,
                        vocab_size: int) -> None:
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"{directory}: missing tokenizer.json (needed for a byte-level BPE "
                         "model)")
    data = _load_json(path)
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise InputError(f"{path}: expected a BPE tokenizer, found {model.get('type')!r}")
    pre = _checked_pre_tokenizer(path, data, pre_tokenizer)
    tokens, types = _bpe_tokens(path, data, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)


def _checked_pre_tokenizer(path: Path, data: dict, wanted: str) -> str:
    found = _split_regexes(data.get("pre_tokenizer"))
    if PRE_TOKENIZER_REGEXES[wanted] not in found:
        raise InputError(
            f"{path}: pre-tokenizer regex is not the {wanted} one llama.cpp implements; "
            "the GGUF would tokenize differently from the source"
        )
    return wanted


def _split_regexes(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = []
        if node.get("type") == "Split":
            pattern = node.get("pattern") or {}
            if "Regex" in pattern:
                found.append(pattern["Regex"])
        for child in node.get("pretokenizers") or []:
            found += _split_regexes(child)
        return found
    return []


def looks_special(text: str) -> bool:
    """llama.cpp's converter's rule for an added token that is special in all but name:
    `<|...|>` (Qwen's <|fim_prefix|> ... <|file_sep|>, marked `special: false`),
    DeepSeek's full-width `<｜...｜>`, Gemma's `<unused...>`, and the few names above. Its
    loader promotes such tokens to CONTROL itself and warns at every load, so writing them
    CONTROL is both what the reference converter does and what llama.cpp ends up using."""
    return (text in _SPECIAL_LOOKING_NAMES
            or (text.startswith("<|") and text.endswith("|>"))
            or (text.startswith("<\uff5c") and text.endswith("\uff5c>"))
            or (text.startswith("<unused") and text.endswith(">")))


def added_token_type(text: str, special: bool) -> gguf.TokenType:
    """An added token's GGUF type: CONTROL when special or special-looking, else
    USER_DEFINED (matched in text before BPE, and written out when decoding)."""
    return _TokenType.CONTROL if special or looks_special(text) else _TokenType.USER_DEFINED


def _bpe_tokens(path: Path, data: dict, vocab_size: int) -> tuple[list[str], list[int]]:
    by_id: dict[int, tuple[str, gguf.TokenType]] = {
        int(i): (tok, _TokenType.NORMAL) for tok, i in data["model"]["vocab"].items()}
    for added in data.get("added_tokens") or []:
        content = added["content"]
        by_id[int(added["id"])] = (content, added_token_type(content, bool(added.get("special"))))
    if by_id and max(by_id) >= vocab_size:
        raise InputError(
            f"{path}: token id {max(by_id)} is beyond the model's vocab_size {vocab_size}; "
            "resized embeddings must come with the adapter"
        )
    tokens, types = [], []
    for i in range(vocab_size):
        token, kind = by_id.get(i, (f"[PAD{i}]", _TokenType.UNUSED))
        tokens.append(token)
        types.append(int(kind))
    return tokens, types


# ---------------------------------------------------------------------------- SentencePiece


def _add_sentencepiece(writer: gguf.GGUFWriter, directory: Path, vocab_size: int) -> None:
    path = directory / "tokenizer.model"
    if not path.is_file():
        raise InputError(
            f"{directory}: missing tokenizer.model (a Llama model needs its SentencePiece "
            "model: scores decide llama.cpp's merges)"
        )
    try:
        spm = read_sentencepiece_model(path)
    except (SentencePieceModelError, OSError) as exc:
        raise InputError(f"{path}: not a SentencePiece model ({exc})") from exc
    tokens = [piece for piece, _, _ in spm.pieces]
    scores = [float(score) for _, score, _ in spm.pieces]
    types = [int(kind) for _, _, kind in spm.pieces]
    for token, token_id, special in _extra_added_tokens(directory, len(tokens)):
        while len(tokens) < token_id:
            _append_unused(tokens, scores, types)
        tokens.append(token)
        scores.append(-1000.0)
        types.append(int(added_token_type(token, special)))
    if len(tokens) > vocab_size:
        raise InputError(f"{path}: {len(tokens)} tokens but the model's vocab_size is "
                         f"{vocab_size}")
    while len(tokens) < vocab_size:
        _append_unused(tokens, scores, types)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)


def _append_unused(tokens: list[str], scores: list[float], types: list[int]) -> None:
    tokens.append(f"[PAD{len(tokens)}]")
    scores.append(-1000.0)
    types.append(int(_TokenType.UNUSED))


def _extra_added_tokens(directory: Path, n_pieces: int) -> list[tuple[str, int, bool]]:
    """Tokens added after training, with their `special` flag: added_tokens.json has none
    (not special), tokenizer.json's added_tokens and tokenizer_config.json's
    added_tokens_decoder have it (the latter wins, as in llama.cpp's converter)."""
    extra: dict[int, tuple[str, bool]] = {}
    if (directory / "added_tokens.json").is_file():
        for token, token_id in _load_json(directory / "added_tokens.json").items():
            extra[int(token_id)] = (token, False)
    if (directory / "tokenizer.json").is_file():
        for added in _load_json(directory / "tokenizer.json").get("added_tokens") or []:
            extra[int(added["id"])] = (added["content"], bool(added.get("special")))
    if (directory / "tokenizer_config.json").is_file():
        decoder = _load_json(directory / "tokenizer_config.json").get("added_tokens_decoder")
        for token_id, entry in (decoder or {}).items():
            extra[int(token_id)] = (entry["content"], bool(entry.get("special")))
    return [(tok, i, special) for i, (tok, special) in sorted(extra.items()) if i >= n_pieces]


# ---------------------------------------------------------------------------- specials


def _add_special_vocab(writer: gguf.GGUFWriter, tokenizer_dir: Path, config_dir: Path,
                       vocab_size: int, load_merges: bool) -> None:
    """Special ids, add_bos/add_eos, merges and the chat template via gguf.SpecialVocab.

    SpecialVocab falls back to config.json for ids the tokenizer files leave unset (Qwen's
    bos), so it reads a view holding the tokenizer files next to the base's config.json.
    """
    with tempfile.TemporaryDirectory(prefix="amicus-tok-") as tmp:
        view = Path(tmp)
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copy(tokenizer_dir / name, view / name)
        if (config_dir / "config.json").is_file():
            shutil.copy(config_dir / "config.json", view / "config.json")
        special = gguf.SpecialVocab(view, load_merges=load_merges, n_vocab=vocab_size)
    if load_merges and not special.merges:
        raise InputError(f"{tokenizer_dir}/tokenizer.json: BPE tokenizer without merges")
    special.add_to_gguf(writer, quiet=True)
