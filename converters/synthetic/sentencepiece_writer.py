"""Writes SentencePiece ``ModelProto`` files (``tokenizer.model``) for the synthetic Llama
tokenizer: the encoding half of converters/gguf/sentencepiece_model.py, whose schema it
shares. Fields go out in field-number order with canonical varints, as SentencePiece's C++
writes them, so ``serialize(parse(x)) == x`` for files SentencePiece wrote itself."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from converters.gguf.sentencepiece_model import (
    NORMAL,
    NORMALIZER_SCHEMA,
    TRAINER_SCHEMA,
    WT_EGROUP,
    WT_I32,
    WT_LEN,
    WT_SGROUP,
    WT_VARINT,
    FieldValue,
    RawField,
    SentencePieceModel,
)


def _varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # negative int32/int64: ten-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _encode_len(number: int, payload: bytes) -> bytes:
    return _tag(number, WT_LEN) + _varint(len(payload)) + payload


def _encode_raw(raw: RawField) -> bytes:
    if raw.wire_type == WT_LEN:
        return _encode_len(raw.number, raw.payload)
    if raw.wire_type == WT_SGROUP:
        return _tag(raw.number, WT_SGROUP) + raw.payload + _tag(raw.number, WT_EGROUP)
    return _tag(raw.number, raw.wire_type) + raw.payload


def _encode_scalar(number: int, kind: str, value: FieldValue) -> bytes:
    if kind in ("string", "strings"):
        if not isinstance(value, str):
            raise TypeError(f"field {number} needs a str, got {type(value).__name__}")
        return _encode_len(number, value.encode("utf-8"))
    if kind == "bytes":
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"field {number} needs bytes, got {type(value).__name__}")
        return _encode_len(number, bytes(value))
    if kind == "float":
        return _tag(number, WT_I32) + struct.pack("<f", float(value))  # type: ignore[arg-type]
    if kind == "bool":
        return _tag(number, WT_VARINT) + _varint(1 if value else 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"field {number} needs an int, got {type(value).__name__}")
    if kind in ("int32", "enum") and not -(1 << 31) <= value < 1 << 31:
        raise ValueError(f"field {number}: {value} does not fit an int32")
    if kind == "uint64" and not 0 <= value < 1 << 64:
        raise ValueError(f"field {number}: {value} does not fit a uint64")
    return _tag(number, WT_VARINT) + _varint(value)


def _encode_spec(
    values: Mapping[str, FieldValue],
    unknown: Sequence[RawField],
    schema: Mapping[str, tuple[int, str, FieldValue]],
) -> bytes:
    parts: list[tuple[int, int, bytes]] = []  # (field number, order, bytes)
    for name, value in values.items():
        if name not in schema:
            raise KeyError(f"unknown field {name!r}")
        number, kind, _ = schema[name]
        if kind == "strings":
            if isinstance(value, str) or not isinstance(value, list):
                raise TypeError(f"{name} is a repeated string field: give a list of str")
            parts.extend((number, 0, _encode_scalar(number, kind, item)) for item in value)
        else:
            parts.append((number, 0, _encode_scalar(number, kind, value)))
    parts.extend((raw.number, 1, _encode_raw(raw)) for raw in unknown)
    # Field-number order, as SentencePiece's C++ protobuf code writes them; stable within a
    # number, so repeated fields keep their order.
    parts.sort(key=lambda item: (item[0], item[1]))
    return b"".join(encoded for _, _, encoded in parts)


def _encode_piece(piece: str, score: float, piece_type: int) -> bytes:
    out = _encode_scalar(1, "string", piece) + _encode_scalar(2, "float", score)
    if piece_type != NORMAL:  # SentencePiece sets the type of non-normal pieces only
        out += _encode_scalar(3, "enum", piece_type)
    return out


def serialize_sentencepiece_model(model: SentencePieceModel) -> bytes:
    """Encode a model as the bytes of a ``tokenizer.model`` file."""
    parts: list[tuple[int, int, bytes]] = []
    for index, (piece, score, piece_type) in enumerate(model.pieces):
        parts.append((1, index, _encode_len(1, _encode_piece(piece, score, piece_type))))
    trainer = _encode_spec(model.trainer_spec, model.trainer_spec_unknown, TRAINER_SCHEMA)
    parts.append((2, 0, _encode_len(2, trainer)))
    normalizer = _encode_spec(
        model.normalizer_spec, model.normalizer_spec_unknown, NORMALIZER_SCHEMA
    )
    parts.append((3, 0, _encode_len(3, normalizer)))
    if model.denormalizer_spec is not None:
        denormalizer = _encode_spec(
            model.denormalizer_spec, model.denormalizer_spec_unknown, NORMALIZER_SCHEMA
        )
        parts.append((5, 0, _encode_len(5, denormalizer)))
    offset = len(model.pieces)
    parts.extend(
        (raw.number, offset + i, _encode_raw(raw)) for i, raw in enumerate(model.unknown_fields)
    )
    parts.sort(key=lambda item: (item[0], item[1]))
    return b"".join(encoded for _, _, encoded in parts)


def write_sentencepiece_model(path: str | Path, model: SentencePieceModel) -> None:
    """Write ``model`` to ``path`` (``tokenizer.model``)."""
    Path(path).write_bytes(serialize_sentencepiece_model(model))
