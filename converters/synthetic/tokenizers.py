"""Small, real tokenizers for the synthetic checkpoints: Qwen byte-level BPE, Llama-2 SentencePiece.

Both are trained here, deterministically, by our own BPE trainer on a few KB of bundled text
(``converters/data/corpus.txt``: English, Simplified and Traditional Chinese, digits,
punctuation, a little emoji, two lines of Hindi), so their merges form real multi-byte CJK
tokens, the Qwen2 and Qwen3.5 variants learn different merges where their split regexes differ
(combining marks), and every code path a converter meets in the real files is exercised at
toy size:

* :func:`write_qwen_tokenizer` writes ``tokenizer.json`` + ``tokenizer_config.json`` laid out
  as in the Qwen3 / Qwen3.5 repositories: NFC, the family's Split regex (isolated), byte-level
  BPE over GPT-2's byte alphabet, added tokens after the BPE vocabulary.  Like the real
  checkpoints, the config's ``vocab_size`` is larger than the tokenizer (padding ids).
* :func:`write_llama_tokenizer` writes a SentencePiece BPE ``tokenizer.model`` shaped like
  Llama-2's (``<unk>``, ``<s>``, ``</s>``, 256 byte pieces, merged pieces scored by merge
  order, then single characters), with Llama-2's trainer and normalizer settings, plus
  ``tokenizer_config.json`` and ``special_tokens_map.json``.

Only the standard library runs here (no numpy, torch, transformers, tokenizers or sentencepiece):
``amicus demo`` builds these tokenizers on laptops that have none of them.  Each tokenizer
builds in a few tens of milliseconds and the bytes written are the same on every call.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from converters.gguf.sentencepiece_model import (
    BPE,
    BYTE,
    CONTROL,
    NORMAL,
    UNKNOWN,
    SentencePieceModel,
)
from converters.gguf.vocab import PRE_TOKENIZER_REGEXES
from converters.synthetic.sentencepiece_writer import write_sentencepiece_model

__all__ = [
    "CORPUS_PATH",
    "QWEN2_PRETOKENIZE_REGEX",
    "QWEN35_PRETOKENIZE_REGEX",
    "QWEN_SPECIAL_TOKENS",
    "TokenizerInfo",
    "write_llama_tokenizer",
    "write_qwen_tokenizer",
]

CORPUS_PATH = Path(__file__).resolve().parent / "data" / "corpus.txt"

# The Split pre-tokenizer regexes of the real tokenizer.json files: the converter's own
# (llama.cpp implements exactly these), so a synthetic tokenizer is one it accepts.
QWEN2_PRETOKENIZE_REGEX = PRE_TOKENIZER_REGEXES["qwen2"]
QWEN35_PRETOKENIZE_REGEX = PRE_TOKENIZER_REGEXES["qwen35"]

# Added tokens, in id order, with their `special` flag as in Qwen3's tokenizer.json (ids
# 151643-151668 there). <tool_call>, <think> and their closers are added but not special
# (decode(skip_special_tokens=True) keeps them; llama.cpp types them USER_DEFINED). The
# fill-in-the-middle tokens <|fim_prefix|> ... <|file_sep|> are not special either, though
# they look it: llama.cpp's converter types them CONTROL anyway, and its loader warns at
# every load when a GGUF does not.
_QWEN_ADDED: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
QWEN_SPECIAL_TOKENS: tuple[str, ...] = tuple(content for content, _ in _QWEN_ADDED)

_LLAMA_META = ("<unk>", "<s>", "</s>")
_SPM_SPACE = "\u2581"  # ▁
_SPM_WHITESPACE_ONLY_SCORE = -1e9  # Llama-2's score for "▁", "▁▁", "▁▁▁▁", ...
_MIN_PAIR_COUNT = 2  # a merge must be seen at least twice in the corpus


@dataclass(frozen=True)
class TokenizerInfo:
    """What a writer produced.

    ``n_tokens`` counts every id the tokenizer defines (BPE vocabulary or pieces, plus added
    tokens); the model's config ``vocab_size`` may be larger.  For Qwen, ``bos_token_id`` is
    what Qwen's config.json declares (``<|endoftext|>``) although the tokenizer never adds a
    BOS (``add_bos_token`` false, ``bos_token`` null); ``eos_token_id`` is ``<|im_end|>`` and
    ``pad_token_id`` ``<|endoftext|>``.  For Llama-2: ``<s>`` 1, ``</s>`` 2, no pad.
    ``special_ids`` maps each added / meta token to its id.
    """

    n_tokens: int
    bos_token_id: int | None
    eos_token_id: int
    pad_token_id: int | None
    special_ids: dict[str, int]


# --------------------------------------------------------------------------- corpus & BPE


@functools.lru_cache(maxsize=1)
def _corpus() -> str:
    return CORPUS_PATH.read_text(encoding="utf-8")


def _train_bpe(
    word_counts: dict[tuple[str, ...], int],
    *,
    max_merges: int,
    vocab: set[str],
    is_valid: Callable[[str], bool] | None = None,
) -> list[tuple[str, str]]:
    """Greedy BPE: repeatedly merge the most frequent adjacent pair.

    Ties go to the lexicographically smallest pair; pairs seen fewer than twice, pairs whose
    concatenation is already in ``vocab`` and pairs ``is_valid`` rejects are never merged.
    ``vocab`` is extended with every merged symbol.
    """
    words = [list(word) for word in word_counts]
    freqs = list(word_counts.values())
    counts: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for index, word in enumerate(words):
        for pair in itertools.pairwise(word):
            counts[pair] += freqs[index]
            where[pair].add(index)
    heap = [(-count, pair[0], pair[1]) for pair, count in counts.items()]
    heapq.heapify(heap)
    rejected: set[tuple[str, str]] = set()
    merges: list[tuple[str, str]] = []
    while heap and len(merges) < max_merges:
        neg_count, left, right = heapq.heappop(heap)
        pair = (left, right)
        count = counts.get(pair, 0)
        if count != -neg_count:  # stale entry
            if 0 < count < -neg_count:
                heapq.heappush(heap, (-count, left, right))
            continue
        if count < _MIN_PAIR_COUNT:
            break  # every other pair is at most this frequent
        if pair in rejected:
            continue
        merged = left + right
        if merged in vocab or (is_valid is not None and not is_valid(merged)):
            rejected.add(pair)
            continue
        merges.append(pair)
        vocab.add(merged)
        for index in sorted(where.pop(pair, ())):
            word, freq = words[index], freqs[index]
            for old in itertools.pairwise(word):
                counts[old] -= freq
            new_word: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == left and word[i + 1] == right:
                    new_word.append(merged)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            words[index] = new_word
            for new in itertools.pairwise(new_word):
                counts[new] += freq
                where[new].add(index)
                heapq.heappush(heap, (-counts[new], new[0], new[1]))
    return merges


# ------------------------------------------------------------------------ Qwen (byte-level BPE)


@functools.lru_cache(maxsize=1)
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (used by ByteLevel)."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


_PROPERTY_CLASSES = ("L", "N", "M")  # the \p{..} classes the Qwen regexes use


def _python_pattern(pattern: str, text: str) -> re.Pattern[str]:
    """Compile a tokenizers (Oniguruma) pattern with Python's ``re`` for the characters of ``text``.

    ``re`` has no ``\\p{..}`` classes, so each ``\\p{L}``, ``\\p{N}`` and ``\\p{M}`` becomes the
    explicit set of characters of ``text`` in that Unicode category: exact on ``text``.
    """
    members: dict[str, list[str]] = {key: [] for key in _PROPERTY_CLASSES}
    for char in sorted(set(text)):
        major = unicodedata.category(char)[0]
        if major in members:
            members[major].append(char)

    def class_body(key: str) -> str:
        chars = members[key] or ["\uffff"]  # never empty; U+FFFF is not in the text
        return "".join("\\" + c if c in "\\]^-[" else c for c in chars)

    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            match = re.match(r"\\p\{(\w)\}", pattern[i:])
            if match:
                body = class_body(match.group(1))
                out.append(body if in_class else f"[{body}]")
                i += len(match.group(0))
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return re.compile("".join(out))


_QWEN_REGEX = {"qwen2": QWEN2_PRETOKENIZE_REGEX, "qwen35": QWEN35_PRETOKENIZE_REGEX}


@functools.lru_cache(maxsize=8)
def _qwen_bpe(variant: str, max_merges: int) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Train the Qwen-style byte-level BPE: (vocabulary in id order, merges in rank order)."""
    text = unicodedata.normalize("NFC", _corpus())
    splitter = _python_pattern(_QWEN_REGEX[variant], text)
    byte_map = _byte_to_unicode()
    word_counts: Counter[tuple[str, ...]] = Counter()
    for pre_token in splitter.findall(text):
        word_counts[tuple(byte_map[b] for b in pre_token.encode("utf-8"))] += 1
    base = sorted(byte_map.values())  # GPT-2 order: ids 0..255 by the mapped code point
    vocab = set(base)
    merges = _train_bpe(dict(word_counts), max_merges=max_merges, vocab=vocab)
    tokens = tuple(base) + tuple(left + right for left, right in merges)
    return tokens, tuple(merges)


def _qwen_added_token(token_id: int, content: str, special: bool) -> dict[str, Any]:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": special,
    }


def _byte_level(kind: str) -> dict[str, Any]:
    return {"type": kind, "add_prefix_space": False, "trim_offsets": False, "use_regex": False}


def write_qwen_tokenizer(
    out_dir: Path,
    *,
    variant: Literal["qwen2", "qwen35"],
    chat_template: str,
    vocab_size: int,
) -> TokenizerInfo:
    """Write a Qwen3-style (``qwen2``) or Qwen3.5-style (``qwen35``) tokenizer into ``out_dir``.

    ``vocab_size`` is the model config's; the tokenizer leaves about 1/64 of it (at least one
    id) unused, as real Qwen checkpoints pad their embedding beyond the tokenizer.
    """
    if variant not in _QWEN_REGEX:
        raise ValueError(f"unknown Qwen tokenizer variant {variant!r}")
    padding = max(1, vocab_size // 64)
    max_merges = vocab_size - padding - 256 - len(_QWEN_ADDED)
    if max_merges < 0:
        raise ValueError(
            f"vocab_size {vocab_size} is too small: a Qwen tokenizer needs at least "
            f"{256 + len(_QWEN_ADDED) + 1} ids"
        )
    tokens, merges = _qwen_bpe(variant, max_merges)
    vocab = {token: index for index, token in enumerate(tokens)}
    special_ids = {content: len(tokens) + i for i, (content, _) in enumerate(_QWEN_ADDED)}
    added = [
        _qwen_added_token(special_ids[content], content, special)
        for content, special in _QWEN_ADDED
    ]
    regex = _QWEN_REGEX[variant]
    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": regex},
                    "behavior": "Isolated",
                    "invert": False,
                },
                _byte_level("ByteLevel"),
            ],
        },
        "post_processor": _byte_level("ByteLevel"),
        "decoder": _byte_level("ByteLevel"),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            # Qwen3's tokenizer.json stores merges as "a b" strings; newer files (Qwen3.5,
            # tokenizers >= 0.20) as pairs.  Readers must take both.
            "merges": (
                [f"{left} {right}" for left, right in merges]
                if variant == "qwen2"
                else [[left, right] for left, right in merges]
            ),
        },
    }
    eos, pad = "<|im_end|>", "<|endoftext|>"
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(entry["id"]): {
                key: entry[key]
                for key in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")
            }
            for entry in added
        },
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": eos,
        "errors": "replace",
        "model_max_length": 131072 if variant == "qwen2" else 262144,
        "pad_token": pad,
        "split_special_tokens": False,
        # Qwen3 repositories name Qwen2Tokenizer.  transformers 5 rebuilds that class's
        # pre-tokenizer with the Qwen2 regex, so the Qwen3.5 stand-in names the generic
        # backend, which takes tokenizer.json as it is (with config.json's model_type
        # "qwen3_5" present, transformers picks Qwen3_5Tokenizer either way).
        "tokenizer_class": "Qwen2Tokenizer" if variant == "qwen2" else "TokenizersBackend",
        "unk_token": None,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "tokenizer.json", tokenizer_json)
    _write_json(out_dir / "tokenizer_config.json", config)
    return TokenizerInfo(
        n_tokens=len(tokens) + len(_QWEN_ADDED),
        bos_token_id=special_ids["<|endoftext|>"],
        eos_token_id=special_ids[eos],
        pad_token_id=special_ids[pad],
        special_ids=dict(special_ids),
    )


# --------------------------------------------------------------------- Llama-2 (SentencePiece)


def _spm_sentences(text: str) -> list[str]:
    """Lines as SentencePiece's identity normalizer leaves them: dummy prefix, spaces escaped."""
    return [_SPM_SPACE + line.replace(" ", _SPM_SPACE) for line in text.splitlines() if line]


def _spm_split_words(sentence: str) -> Iterable[str]:
    """SentencePiece's SplitIntoWords with allow_whitespace_only_pieces: a word starts at a
    whitespace that does not continue a whitespace run (so "▁▁▁foo" stays one word)."""
    words: list[str] = []
    in_whitespace = False
    for index, char in enumerate(sentence):
        is_space = char == _SPM_SPACE
        if index == 0 or (is_space and not in_whitespace):
            words.append("")
            in_whitespace = True
        if in_whitespace and not is_space:
            in_whitespace = False
        words[-1] += char
    return words


def _script(char: str) -> str:
    """An approximation of the Unicode script SentencePiece assigns to a character."""
    category = unicodedata.category(char)
    if category[0] == "M":
        return "Inherited"
    if category[0] != "L":
        return "Common"
    name = unicodedata.name(char, "")
    if "CJK" in name or name.startswith(("HIRAGANA", "KATAKANA")) or "IDEOGRAPH" in name:
        return "Han"  # SentencePiece merges Hiragana and Katakana into Han
    return name.split(" ", 1)[0] or "Unknown"


def _spm_valid_piece(piece: str) -> bool:
    """SentencePiece's IsValidSentencePiece for Llama-2's trainer settings: at most 16 chars,
    "▁" only as a prefix (or whitespace-only pieces), digits alone (split_digits), one script."""
    if len(piece) > 16:
        return False
    all_space = all(char == _SPM_SPACE for char in piece)
    previous: str | None = None  # None: any script
    for position, char in enumerate(piece):
        if char == _SPM_SPACE:
            if not all_space and position > 0:
                return False
            continue
        if "0" <= char <= "9" and len(piece) > 1:
            return False
        script = _script(char)
        if script == "Inherited":
            script = previous  # type: ignore[assignment]
        if script is not None and previous is not None and script != previous:
            return False
        previous = script
    return True


@functools.lru_cache(maxsize=8)
def _llama_pieces(vocab_size: int) -> tuple[tuple[str, float, int], ...]:
    """Train Llama-2-style SentencePiece BPE pieces filling at most ``vocab_size`` ids."""
    sentences = _spm_sentences(_corpus())
    char_counts: Counter[str] = Counter()
    for sentence in sentences:
        char_counts.update(sentence)
    chars = sorted(char_counts, key=lambda char: (-char_counts[char], char))
    meta_count = len(_LLAMA_META) + 256
    budget = vocab_size - meta_count
    if budget < 8:
        raise ValueError(
            f"vocab_size {vocab_size} is too small: a Llama tokenizer needs at least "
            f"{meta_count + 8} ids"
        )
    if len(chars) > budget * 3 // 4:
        # Like SentencePiece's character_coverage: when the ids are short, the rarest
        # characters get no piece of their own (byte fallback encodes them), and at least a
        # quarter of the learnable ids goes to merges.
        chars = chars[: budget * 3 // 4]
    kept = set(chars)
    word_counts: Counter[tuple[str, ...]] = Counter()
    for sentence in sentences:
        for word in _spm_split_words(sentence):
            segment: list[str] = []
            for char in [*word, ""]:  # "" flushes the last segment
                if char in kept:
                    segment.append(char)
                    continue
                if segment:
                    word_counts[tuple(segment)] += 1
                segment = []
    byte_pieces = [f"<0x{byte:02X}>" for byte in range(256)]
    vocab = set(_LLAMA_META) | set(byte_pieces) | set(chars)
    merges = _train_bpe(
        dict(word_counts),
        max_merges=vocab_size - meta_count - len(chars),
        vocab=vocab,
        is_valid=_spm_valid_piece,
    )
    pieces: list[tuple[str, float, int]] = [
        ("<unk>", 0.0, UNKNOWN),
        ("<s>", 0.0, CONTROL),
        ("</s>", 0.0, CONTROL),
    ]
    pieces += [(piece, 0.0, BYTE) for piece in byte_pieces]
    # Merged pieces in merge order, then the single characters by frequency, each scored
    # minus its rank among them, as SentencePiece's BPE trainer writes them; Llama-2's
    # whitespace-only pieces carry -1e9 instead.
    learned = [left + right for left, right in merges] + chars
    for rank, piece in enumerate(learned):
        all_space = all(char == _SPM_SPACE for char in piece)
        score = _SPM_WHITESPACE_ONLY_SCORE if all_space else -float(rank)
        pieces.append((piece, score, NORMAL))
    return tuple(pieces)


def _llama_model(pieces: list[tuple[str, float, int]]) -> SentencePieceModel:
    """A ModelProto with Llama-2's trainer and normalizer fields (same fields present)."""
    trainer_spec: dict[str, Any] = {
        "input": ["corpus.txt"],
        "model_prefix": "amicus-synthetic-llama",
        "model_type": BPE,
        "vocab_size": len(pieces),
        "self_test_sample_size": 0,
        "input_format": "text",
        "character_coverage": 1.0,
        "input_sentence_size": 0,
        "seed_sentencepiece_size": 1000000,
        "shrinking_factor": 0.75,
        "num_threads": 1,
        "num_sub_iterations": 2,
        "max_sentence_length": 4192,
        "shuffle_input_sentence": True,
        "max_sentencepiece_length": 16,
        "split_by_unicode_script": True,
        "split_by_whitespace": True,
        "split_by_number": True,
        "treat_whitespace_as_suffix": False,
        "split_digits": True,
        "allow_whitespace_only_pieces": True,
        "vocabulary_output_piece_score": True,
        "hard_vocab_limit": True,
        "use_all_vocab": False,
        "byte_fallback": True,
        "required_chars": "",
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": -1,
        "unk_surface": " \u2047 ",
        "unk_piece": "<unk>",
        "bos_piece": "<s>",
        "eos_piece": "</s>",
        "pad_piece": "<pad>",
        "train_extremely_large_corpus": False,
        "enable_differential_privacy": False,
        "differential_privacy_noise_level": 0.0,
        "differential_privacy_clipping_threshold": 0,
    }
    normalizer_spec: dict[str, Any] = {  # escape_whitespaces absent (default true), as in Llama-2
        "name": "identity",
        "precompiled_charsmap": b"",
        "add_dummy_prefix": True,
        "remove_extra_whitespaces": False,
        "normalization_rule_tsv": "",
    }
    return SentencePieceModel(
        pieces=pieces, trainer_spec=trainer_spec, normalizer_spec=normalizer_spec
    )


def _special_token(content: str) -> dict[str, Any]:
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
    }


def write_llama_tokenizer(out_dir: Path, *, chat_template: str, vocab_size: int) -> TokenizerInfo:
    """Write a Llama-2-chat-style tokenizer (``tokenizer.model`` and its JSON companions).

    The pieces fill ``vocab_size`` ids when the corpus offers enough merges (Llama-2's
    tokenizer has exactly its config's 32000 ids); otherwise fewer.
    """
    pieces = list(_llama_pieces(vocab_size))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_sentencepiece_model(out_dir / "tokenizer.model", _llama_model(pieces))
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(index): {**_special_token(content), "special": True}
            for index, content in enumerate(_LLAMA_META)
        },
        "bos_token": "<s>",
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": 1000000000000000019884624838656,  # transformers' "no limit"
        "pad_token": None,
        "padding_side": "right",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    special_tokens_map = {
        "bos_token": _special_token("<s>"),
        "eos_token": _special_token("</s>"),
        "unk_token": _special_token("<unk>"),
    }
    _write_json(out_dir / "tokenizer_config.json", config)
    _write_json(out_dir / "special_tokens_map.json", special_tokens_map)
    return TokenizerInfo(
        n_tokens=len(pieces),
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        special_ids={content: index for index, content in enumerate(_LLAMA_META)},
    )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
