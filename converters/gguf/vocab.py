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
import struct
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
# SentencePiece's piece types (NORMAL .. BYTE) are GGUF's token types 1..6.
_PIECE_TYPES = frozenset(range(1, 7))
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


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read tokenizer file ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


def _token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _added_tokens(path: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """tokenizer.json's added_tokens, each an object with a token id and its text."""
    added = data.get("added_tokens") or []
    if not isinstance(added, list) or not all(
            isinstance(a, dict) and _token_id(a.get("id")) and isinstance(a.get("content"), str)
            for a in added):
        raise InputError(f"{path}: added_tokens must be a list of {{id, content}} objects")
    return added


def _added_tokens_decoder(path: Path, data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """tokenizer_config.json's added_tokens_decoder: {"id": {content, special}}, by id."""
    decoder = data.get("added_tokens_decoder") or {}
    if not isinstance(decoder, dict) or not all(
            isinstance(key, str) and key.isascii() and key.isdigit() and isinstance(entry, dict)
            and isinstance(entry.get("content"), str) for key, entry in decoder.items()):
        raise InputError(f"{path}: added_tokens_decoder must map token ids to "
                         "{content, special} objects")
    return {int(key): entry for key, entry in decoder.items()}


# ---------------------------------------------------------------------------- BPE


def _add_byte_level_bpe(writer: gguf.GGUFWriter, directory: Path, pre_tokenizer: str,
                        vocab_size: int) -> None:
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"{directory}: missing tokenizer.json (needed for a byte-level BPE "
                         "model)")
    data = _load_json(path)
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        found = model.get("type") if isinstance(model, dict) else model
        raise InputError(f"{path}: expected a BPE tokenizer, found {found!r}")
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
        pattern = node.get("pattern")
        if node.get("type") == "Split" and isinstance(pattern, dict) and isinstance(
                pattern.get("Regex"), str):
            found.append(pattern["Regex"])
        children = node.get("pretokenizers")
        for child in children if isinstance(children, list) else []:
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
    vocab = data["model"].get("vocab")
    if not isinstance(vocab, dict) or not all(_token_id(i) for i in vocab.values()):
        raise InputError(f"{path}: model.vocab must map tokens to non-negative integer ids")
    by_id: dict[int, tuple[str, gguf.TokenType]] = {
        i: (tok, _TokenType.NORMAL) for tok, i in vocab.items()}
    for added in _added_tokens(path, data):
        content = added["content"]
        by_id[added["id"]] = (content, added_token_type(content, bool(added.get("special"))))
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
    unknown = next((i for i, kind in enumerate(types) if kind not in _PIECE_TYPES), None)
    if unknown is not None:
        raise InputError(f"{path}: piece {unknown} has type {types[unknown]}, not a "
                         "SentencePiece piece type")
    for token, token_id, special in _extra_added_tokens(directory, len(tokens)):
        if token_id >= vocab_size:
            raise InputError(f"{directory}: added token {token!r} has id {token_id}, beyond "
                             f"the model's vocab_size {vocab_size}")
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
        path = directory / "added_tokens.json"
        tokens = _load_json(path)
        if not all(_token_id(i) for i in tokens.values()):
            raise InputError(f"{path}: must map tokens to non-negative integer ids")
        for token, token_id in tokens.items():
            extra[token_id] = (token, False)
    if (directory / "tokenizer.json").is_file():
        path = directory / "tokenizer.json"
        for added in _added_tokens(path, _load_json(path)):
            extra[added["id"]] = (added["content"], bool(added.get("special")))
    if (directory / "tokenizer_config.json").is_file():
        path = directory / "tokenizer_config.json"
        for token_id, entry in _added_tokens_decoder(path, _load_json(path)).items():
            extra[token_id] = (entry["content"], bool(entry.get("special")))
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
        try:
            special = gguf.SpecialVocab(view, load_merges=load_merges, n_vocab=vocab_size)
        # gguf's reader trusts the files' shapes: what it trips on is the files' fault.
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            raise InputError(f"{tokenizer_dir}: the tokenizer files' special tokens or "
                             f"merges cannot be read ({type(exc).__name__}: {exc})") from exc
    if load_merges and not special.merges:
        raise InputError(f"{tokenizer_dir}/tokenizer.json: BPE tokenizer without merges")
    try:
        special.add_to_gguf(writer, quiet=True)
    except (ValueError, TypeError, AttributeError, KeyError, struct.error) as exc:
        raise InputError(f"{tokenizer_dir}: a special token or the chat template of the "
                         f"tokenizer files cannot be written ({exc})") from exc
