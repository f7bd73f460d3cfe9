"""A small, dependency-free reader for SentencePiece's ``ModelProto``.

``tokenizer.model`` files (Llama-2 and friends) are serialized protobuf messages
(``sentencepiece_model.proto``, proto2).  This module decodes the parts a GGUF converter and our
synthetic tokenizers need, without the ``protobuf`` or ``sentencepiece`` packages:

* ``ModelProto.pieces`` (field 1): ``piece`` (1, string), ``score`` (2, float), ``type`` (3, enum);
* ``ModelProto.trainer_spec`` (2) and ``normalizer_spec`` (3, also ``denormalizer_spec`` 5):
  every field of the public schema is decoded by name into a dict (presence is kept: a field
  that is absent on the wire is absent from the dict, and the proto2 default applies);
* anything else (unknown fields, ``self_test_data``) is kept as raw bytes, so that the
  synthetic tokenizers' writer (converters/synthetic/sentencepiece_writer.py) reproduces a
  file written by SentencePiece itself byte for byte.

All protobuf wire types are understood when skipping: varint (0), 64-bit (1),
length-delimited (2), groups (3/4) and 32-bit (5).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from converters.errors import InputError

__all__ = [
    "BPE",
    "BYTE",
    "CHAR",
    "CONTROL",
    "NORMAL",
    "UNIGRAM",
    "UNKNOWN",
    "UNUSED",
    "USER_DEFINED",
    "WORD",
    "RawField",
    "SentencePieceModel",
    "SentencePieceModelError",
    "parse_sentencepiece_model",
    "read_sentencepiece_model",
]

# ModelProto.SentencePiece.Type
NORMAL = 1
UNKNOWN = 2
CONTROL = 3
USER_DEFINED = 4
UNUSED = 5
BYTE = 6

# TrainerSpec.ModelType
UNIGRAM = 1
BPE = 2
WORD = 3
CHAR = 4

WT_VARINT = 0
WT_I64 = 1
WT_LEN = 2
WT_SGROUP = 3
WT_EGROUP = 4
WT_I32 = 5

FieldValue = str | bytes | int | float | bool | list[str]


class SentencePieceModelError(InputError):
    """The bytes are not a well-formed SentencePiece ModelProto."""


@dataclass(frozen=True)
class RawField:
    """A field kept verbatim: its number, wire type and payload.

    ``payload`` is the bytes after the tag: the varint bytes as found, the 4 or 8 fixed bytes,
    the content of a length-delimited field (without its length prefix), or the content of a
    group (without its end-group tag).
    """

    number: int
    wire_type: int
    payload: bytes


# --- schema ---------------------------------------------------------------------------------
# kind: "string" | "bytes" | "int32" | "uint64" | "bool" | "float" | "enum" | "strings"
# (a repeated string).  Defaults are proto2's, from sentencepiece_model.proto.

TRAINER_SCHEMA: dict[str, tuple[int, str, FieldValue]] = {
    "input": (1, "strings", []),
    "model_prefix": (2, "string", ""),
    "model_type": (3, "enum", UNIGRAM),
    "vocab_size": (4, "int32", 8000),
    "accept_language": (5, "strings", []),
    "self_test_sample_size": (6, "int32", 0),
    "input_format": (7, "string", ""),
    "character_coverage": (10, "float", 0.9995),
    "input_sentence_size": (11, "uint64", 0),
    "mining_sentence_size": (12, "int32", 0),
    "training_sentence_size": (13, "int32", 0),
    "seed_sentencepiece_size": (14, "int32", 1000000),
    "shrinking_factor": (15, "float", 0.75),
    "num_threads": (16, "int32", 16),
    "num_sub_iterations": (17, "int32", 2),
    "max_sentence_length": (18, "int32", 4192),
    "shuffle_input_sentence": (19, "bool", True),
    "max_sentencepiece_length": (20, "int32", 16),
    "split_by_unicode_script": (21, "bool", True),
    "split_by_whitespace": (22, "bool", True),
    "split_by_number": (23, "bool", True),
    "treat_whitespace_as_suffix": (24, "bool", False),
    "split_digits": (25, "bool", False),
    "allow_whitespace_only_pieces": (26, "bool", False),
    "control_symbols": (30, "strings", []),
    "user_defined_symbols": (31, "strings", []),
    "vocabulary_output_piece_score": (32, "bool", True),
    "hard_vocab_limit": (33, "bool", True),
    "use_all_vocab": (34, "bool", False),
    "byte_fallback": (35, "bool", False),
    "required_chars": (36, "string", ""),
    "unk_id": (40, "int32", 0),
    "bos_id": (41, "int32", 1),
    "eos_id": (42, "int32", 2),
    "pad_id": (43, "int32", -1),
    "unk_surface": (44, "string", " \u2047 "),
    "unk_piece": (45, "string", "<unk>"),
    "bos_piece": (46, "string", "<s>"),
    "eos_piece": (47, "string", "</s>"),
    "pad_piece": (48, "string", "<pad>"),
    "train_extremely_large_corpus": (49, "bool", False),
    "enable_differential_privacy": (50, "bool", False),
    "differential_privacy_noise_level": (51, "float", 0.0),
    "differential_privacy_clipping_threshold": (52, "uint64", 0),
    "pretokenization_delimiter": (53, "string", ""),
    "seed_sentencepieces_file": (54, "string", ""),
    "auto_character_coverage": (55, "bool", False),
}

NORMALIZER_SCHEMA: dict[str, tuple[int, str, FieldValue]] = {
    "name": (1, "string", ""),
    "precompiled_charsmap": (2, "bytes", b""),
    "add_dummy_prefix": (3, "bool", True),
    "remove_extra_whitespaces": (4, "bool", True),
    "escape_whitespaces": (5, "bool", True),
    "normalization_rule_tsv": (6, "string", ""),
}

_KIND_WIRE = {
    "string": WT_LEN,
    "bytes": WT_LEN,
    "strings": WT_LEN,
    "int32": WT_VARINT,
    "uint64": WT_VARINT,
    "bool": WT_VARINT,
    "enum": WT_VARINT,
    "float": WT_I32,
}


# --- the model --------------------------------------------------------------------------------


@dataclass
class SentencePieceModel:
    """A decoded ``ModelProto``.

    ``pieces`` holds ``(piece, score, type)`` per id.  ``trainer_spec`` and ``normalizer_spec``
    map field names to the values present on the wire; the properties below give the effective
    values (proto2 defaults for absent fields).  ``denormalizer_spec`` is ``None`` when absent.
    """

    pieces: list[tuple[str, float, int]] = field(default_factory=list)
    trainer_spec: dict[str, FieldValue] = field(default_factory=dict)
    normalizer_spec: dict[str, FieldValue] = field(default_factory=dict)
    denormalizer_spec: dict[str, FieldValue] | None = None
    trainer_spec_unknown: list[RawField] = field(default_factory=list)
    normalizer_spec_unknown: list[RawField] = field(default_factory=list)
    denormalizer_spec_unknown: list[RawField] = field(default_factory=list)
    unknown_fields: list[RawField] = field(default_factory=list)

    def trainer(self, name: str) -> FieldValue:
        """The effective value of a TrainerSpec field (its proto2 default when absent)."""
        return _effective(self.trainer_spec, TRAINER_SCHEMA, name)

    def normalizer(self, name: str) -> FieldValue:
        """The effective value of a NormalizerSpec field (its proto2 default when absent)."""
        return _effective(self.normalizer_spec, NORMALIZER_SCHEMA, name)

    def _trainer_int(self, name: str) -> int:
        value = self.trainer(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SentencePieceModelError(f"trainer_spec.{name} is not an integer: {value!r}")
        return value

    @property
    def model_type(self) -> int:
        return self._trainer_int("model_type")

    @property
    def vocab_size(self) -> int:
        """TrainerSpec.vocab_size (what the trainer was asked for; ``len(pieces)`` is the truth)."""
        return self._trainer_int("vocab_size")

    @property
    def byte_fallback(self) -> bool:
        return bool(self.trainer("byte_fallback"))

    @property
    def unk_id(self) -> int:
        return self._trainer_int("unk_id")

    @property
    def bos_id(self) -> int:
        return self._trainer_int("bos_id")

    @property
    def eos_id(self) -> int:
        return self._trainer_int("eos_id")

    @property
    def pad_id(self) -> int:
        return self._trainer_int("pad_id")

    @property
    def unk_piece(self) -> str:
        return str(self.trainer("unk_piece"))

    @property
    def bos_piece(self) -> str:
        return str(self.trainer("bos_piece"))

    @property
    def eos_piece(self) -> str:
        return str(self.trainer("eos_piece"))

    @property
    def pad_piece(self) -> str:
        return str(self.trainer("pad_piece"))

    @property
    def normalizer_name(self) -> str:
        return str(self.normalizer("name"))

    @property
    def add_dummy_prefix(self) -> bool:
        return bool(self.normalizer("add_dummy_prefix"))

    @property
    def remove_extra_whitespaces(self) -> bool:
        return bool(self.normalizer("remove_extra_whitespaces"))

    @property
    def escape_whitespaces(self) -> bool:
        return bool(self.normalizer("escape_whitespaces"))

    @property
    def precompiled_charsmap(self) -> bytes:
        return bytes(self.normalizer("precompiled_charsmap"))  # type: ignore[arg-type]


def _effective(
    values: Mapping[str, FieldValue], schema: Mapping[str, tuple[int, str, FieldValue]], name: str
) -> FieldValue:
    if name not in schema:
        raise KeyError(f"unknown field {name!r}")
    if name in values:
        return values[name]
    default = schema[name][2]
    return list(default) if isinstance(default, list) else default


# --- wire decoding ----------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise SentencePieceModelError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise SentencePieceModelError("varint too long")


_MAX_GROUP_DEPTH = 64  # protobuf's own parsers stop at 100 levels of nesting


def _skip_group(data: bytes, pos: int, number: int, depth: int = 1) -> int:
    """Return the position of the end-group tag of group ``number`` starting at ``pos``."""
    if depth > _MAX_GROUP_DEPTH:
        raise SentencePieceModelError("groups nested too deeply")
    while True:
        tag_pos = pos
        tag, pos = _read_varint(data, pos)
        inner_number, wire_type = tag >> 3, tag & 7
        if wire_type == WT_EGROUP:
            if inner_number != number:
                raise SentencePieceModelError("mismatched end-group tag")
            return tag_pos
        pos = _skip_value(data, pos, inner_number, wire_type, depth)


def _skip_value(data: bytes, pos: int, number: int, wire_type: int, depth: int = 0) -> int:
    if wire_type == WT_VARINT:
        return _read_varint(data, pos)[1]
    if wire_type == WT_I64:
        end = pos + 8
    elif wire_type == WT_I32:
        end = pos + 4
    elif wire_type == WT_LEN:
        length, pos = _read_varint(data, pos)
        end = pos + length
    elif wire_type == WT_SGROUP:
        end_tag_pos = _skip_group(data, pos, number, depth + 1)
        return _read_varint(data, end_tag_pos)[1]
    else:
        raise SentencePieceModelError(f"unexpected wire type {wire_type}")
    if end > len(data):
        raise SentencePieceModelError("truncated field")
    return end


def _iter_fields(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(number, wire_type, payload)`` for each field of a message, in wire order."""
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise SentencePieceModelError("field number 0")
        if wire_type == WT_LEN:
            length, pos = _read_varint(data, pos)
            end = pos + length
            if end > len(data):
                raise SentencePieceModelError("truncated length-delimited field")
            yield number, wire_type, data[pos:end]
            pos = end
        elif wire_type == WT_SGROUP:
            end_tag_pos = _skip_group(data, pos, number)
            yield number, wire_type, data[pos:end_tag_pos]
            pos = _read_varint(data, end_tag_pos)[1]
        elif wire_type == WT_EGROUP:
            raise SentencePieceModelError("unexpected end-group tag")
        else:
            end = _skip_value(data, pos, number, wire_type)
            yield number, wire_type, data[pos:end]
            pos = end


def _to_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _decode_scalar(kind: str, payload: bytes) -> FieldValue:
    if kind in ("string", "strings"):
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SentencePieceModelError(f"invalid UTF-8 in string field: {exc}") from exc
    if kind == "bytes":
        return bytes(payload)
    if kind == "float":
        return float(struct.unpack("<f", payload)[0])
    value, _ = _read_varint(payload, 0)
    if kind == "bool":
        return value != 0
    if kind in ("int32", "enum"):
        return _to_int32(value)
    return value  # uint64


def _decode_spec(
    data: bytes, schema: Mapping[str, tuple[int, str, FieldValue]]
) -> tuple[dict[str, FieldValue], list[RawField]]:
    by_number = {number: (name, kind) for name, (number, kind, _) in schema.items()}
    values: dict[str, FieldValue] = {}
    unknown: list[RawField] = []
    for number, wire_type, payload in _iter_fields(data):
        known = by_number.get(number)
        if known is None or _KIND_WIRE[known[1]] != wire_type:
            unknown.append(RawField(number, wire_type, payload))
            continue
        name, kind = known
        value = _decode_scalar(kind, payload)
        if kind == "strings":
            existing = values.setdefault(name, [])
            assert isinstance(existing, list)
            existing.append(str(value))
        else:
            values[name] = value
    return values, unknown


def _decode_piece(data: bytes) -> tuple[str, float, int]:
    piece, score, piece_type = "", 0.0, NORMAL
    for number, wire_type, payload in _iter_fields(data):
        if number == 1 and wire_type == WT_LEN:
            piece = str(_decode_scalar("string", payload))
        elif number == 2 and wire_type == WT_I32:
            score = float(_decode_scalar("float", payload))  # type: ignore[arg-type]
        elif number == 3 and wire_type == WT_VARINT:
            piece_type = int(_decode_scalar("enum", payload))  # type: ignore[arg-type]
        # other fields of a piece are skipped
    return piece, score, piece_type


def parse_sentencepiece_model(data: bytes) -> SentencePieceModel:
    """Decode the bytes of a ``tokenizer.model`` file."""
    model = SentencePieceModel()
    for number, wire_type, payload in _iter_fields(bytes(data)):
        if number == 1 and wire_type == WT_LEN:
            model.pieces.append(_decode_piece(payload))
        elif number == 2 and wire_type == WT_LEN:
            model.trainer_spec, model.trainer_spec_unknown = _decode_spec(payload, TRAINER_SCHEMA)
        elif number == 3 and wire_type == WT_LEN:
            model.normalizer_spec, model.normalizer_spec_unknown = _decode_spec(
                payload, NORMALIZER_SCHEMA
            )
        elif number == 5 and wire_type == WT_LEN:
            model.denormalizer_spec, model.denormalizer_spec_unknown = _decode_spec(
                payload, NORMALIZER_SCHEMA
            )
        else:
            model.unknown_fields.append(RawField(number, wire_type, payload))
    return model


def read_sentencepiece_model(path: str | Path) -> SentencePieceModel:
    """Read a SentencePiece ``tokenizer.model`` file (for example Llama-2's)."""
    return parse_sentencepiece_model(Path(path).read_bytes())
