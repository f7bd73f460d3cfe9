"""The synthetic tokenizers, their SentencePiece reader/writer and the chat templates.

Checked against the reference libraries (tokenizers, sentencepiece, protobuf, transformers)
where they are installed; the stdlib-only parts are checked everywhere.
"""

from __future__ import annotations

import json
import struct
import time
import unicodedata
from pathlib import Path

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from converters.gguf import sentencepiece_model as spm_io
from converters.synthetic import chat_templates as ct
from converters.synthetic import sentencepiece_writer as spm_writer
from converters.synthetic import tokenizers as st

MULTILINGUAL = [
    "Hello world, the clinic opens at 9 a.m.",
    "Can my landlord keep the deposit? It's $1,250.00 - isn't it?",
    "法律援助诊所每天早上九点开门，第一批来访者通常已经在门口等候。",
    "法律援助診所每天早上九點開門，繁體中文的問題也要認真回答。",
    "混合 mixed 文本 with 數字 2024年3月15日 and emoji 🙂✅🦀",
    "digits 0123456789 and 3.14159 and 1e-9",
    "  leading spaces,   runs of   spaces\tand\ttabs  ",
    "line one\nline two\n\n\nafter blank lines\r\nwindows line\n",
    "punctuation: ()[]{}<>\"'`~!@#%^&*_+=|\\/;:,.?",
    "accents: café naïve résumé Ångström",
]
CJK = ["法律援助诊所每天早上九点开门。", "法律援助診所每天早上九點開門。"]
MARKED = ["नमस्ते दुनिया", "q\u0301 x\u0323\u0301", "สวัสดีครับ"]  # no precomposed forms

S = {"role": "system", "content": "You are a careful legal aid assistant."}
U1 = {"role": "user", "content": "Can my landlord keep the deposit?"}
U2 = {"role": "user", "content": "What if the letter came late?"}
A1_THINK = {
    "role": "assistant",
    "content": "<think>\nThe lease says thirty days.\n</think>\n\nOnly for damage beyond wear.",
}
A1 = {"role": "assistant", "content": "Only for damage beyond wear."}
S_ZH = {"role": "system", "content": "你是一位嚴謹的法律援助助理。"}
U_ZH = {"role": "user", "content": "房東可以扣留押金嗎？"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, st.TokenizerInfo]]:
    root = tmp_path_factory.mktemp("tokenizers")
    out: dict[str, tuple[Path, st.TokenizerInfo]] = {}
    out["qwen2"] = (
        root / "qwen2",
        st.write_qwen_tokenizer(
            root / "qwen2", variant="qwen2", chat_template=ct.QWEN3_CHAT_TEMPLATE, vocab_size=1024
        ),
    )
    out["qwen35"] = (
        root / "qwen35",
        st.write_qwen_tokenizer(
            root / "qwen35",
            variant="qwen35",
            chat_template=ct.QWEN35_CHAT_TEMPLATE,
            vocab_size=1024,
        ),
    )
    out["qwen3_instruct"] = (
        root / "qwen3_instruct",
        st.write_qwen_tokenizer(
            root / "qwen3_instruct",
            variant="qwen2",
            chat_template=ct.QWEN3_INSTRUCT_CHAT_TEMPLATE,
            vocab_size=1024,
        ),
    )
    out["llama"] = (
        root / "llama",
        st.write_llama_tokenizer(
            root / "llama", chat_template=ct.LLAMA2_CHAT_TEMPLATE, vocab_size=1024
        ),
    )
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# --------------------------------------------------------------------------- stdlib-only checks


def test_token_counts_and_special_ids(built) -> None:
    for name in ("qwen2", "qwen35"):
        directory, info = built[name]
        data = _json(directory / "tokenizer.json")
        n_bpe = len(data["model"]["vocab"])
        assert info.n_tokens == n_bpe + len(st.QWEN_SPECIAL_TOKENS) <= 1024
        assert info.n_tokens < 1024  # the config pads, as Qwen's does
        assert [t["content"] for t in data["added_tokens"]] == list(st.QWEN_SPECIAL_TOKENS)
        assert [t["id"] for t in data["added_tokens"]] == list(range(n_bpe, info.n_tokens))
        assert info.special_ids == {t["content"]: t["id"] for t in data["added_tokens"]}
        assert info.eos_token_id == info.special_ids["<|im_end|>"]
        assert info.pad_token_id == info.bos_token_id == info.special_ids["<|endoftext|>"]
        flags = {t["content"]: t["special"] for t in data["added_tokens"]}
        # As Qwen3's tokenizer.json: the <|...|> tokens special except the six
        # fill-in-the-middle ones; the tool and think tags not special.
        not_special = {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                       "<|repo_name|>", "<|file_sep|>"}
        assert flags == {token: token.startswith("<|") and token not in not_special
                         for token in st.QWEN_SPECIAL_TOKENS}
        assert len(flags) == 26 and {"<think>", "</tool_response>"} <= set(flags)
    _, llama = built["llama"]
    assert llama.n_tokens == 1024
    assert (llama.bos_token_id, llama.eos_token_id, llama.pad_token_id) == (1, 2, None)
    assert llama.special_ids == {"<unk>": 0, "<s>": 1, "</s>": 2}


def test_qwen_tokenizer_json_layout(built) -> None:
    for name, regex in (
        ("qwen2", st.QWEN2_PRETOKENIZE_REGEX),
        ("qwen35", st.QWEN35_PRETOKENIZE_REGEX),
    ):
        directory, _ = built[name]
        data = _json(directory / "tokenizer.json")
        assert data["normalizer"] == {"type": "NFC"}
        split, byte_level = data["pre_tokenizer"]["pretokenizers"]
        assert split == {
            "type": "Split",
            "pattern": {"Regex": regex},
            "behavior": "Isolated",
            "invert": False,
        }
        assert byte_level == {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": False,
            "use_regex": False,
        }
        assert data["decoder"]["type"] == "ByteLevel"
        model = data["model"]
        assert model["type"] == "BPE"
        assert model["byte_fallback"] is False and model["ignore_merges"] is False
        vocab = model["vocab"]
        assert sorted(vocab.values()) == list(range(len(vocab)))
        # merges: both halves exist, the result is the next id, in rank order
        for rank, merge in enumerate(model["merges"]):
            left, right = merge.split(" ") if isinstance(merge, str) else merge
            assert left in vocab and right in vocab
            assert vocab[left + right] == 256 + rank
        config = _json(directory / "tokenizer_config.json")
        assert config["add_bos_token"] is False
        assert config["bos_token"] is None
        assert config["eos_token"] == "<|im_end|>"
        assert config["pad_token"] == "<|endoftext|>"
        assert config["chat_template"] in (ct.QWEN3_CHAT_TEMPLATE, ct.QWEN35_CHAT_TEMPLATE)
        decoder = config["added_tokens_decoder"]
        assert {v["content"]: int(k) for k, v in decoder.items()} == {
            t["content"]: t["id"] for t in data["added_tokens"]
        }
    # Qwen3 stores merges as "a b" strings, the Qwen3.5 stand-in as pairs
    assert isinstance(_json(built["qwen2"][0] / "tokenizer.json")["model"]["merges"][0], str)
    assert isinstance(_json(built["qwen35"][0] / "tokenizer.json")["model"]["merges"][0], list)


def test_qwen_byte_alphabet_is_gpt2_order(built) -> None:
    vocab = _json(built["qwen2"][0] / "tokenizer.json")["model"]["vocab"]
    first = [token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])[:256]]
    assert first[:3] == ["!", '"', "#"]
    assert first[188] == "Ā"  # byte 0x00 maps to U+0100
    assert "Ġ" in first and "Ċ" in first  # space, newline
    assert len(set(first)) == 256


def test_merges_really_build_cjk_tokens(built) -> None:
    byte_of = {v: k for k, v in st._byte_to_unicode().items()}
    vocab = _json(built["qwen2"][0] / "tokenizer.json")["model"]["vocab"]
    words = {bytes(byte_of[c] for c in token).decode("utf-8", "replace") for token in vocab}
    assert {"文件", "問題", "问题", "押金", "電腦", "电脑"} <= words


def test_writes_are_deterministic_and_fast(tmp_path: Path) -> None:
    for caches in (st._qwen_bpe, st._llama_pieces, st._corpus):
        caches.cache_clear()
    timings = {}
    for run in ("a", "b"):
        start = time.perf_counter()
        st.write_qwen_tokenizer(
            tmp_path / run / "q2", variant="qwen2", chat_template="T", vocab_size=1024
        )
        timings[f"qwen2-{run}"] = time.perf_counter() - start
        start = time.perf_counter()
        st.write_qwen_tokenizer(
            tmp_path / run / "q35", variant="qwen35", chat_template="T", vocab_size=1024
        )
        timings[f"qwen35-{run}"] = time.perf_counter() - start
        start = time.perf_counter()
        st.write_llama_tokenizer(tmp_path / run / "ll", chat_template="T", vocab_size=1024)
        timings[f"llama-{run}"] = time.perf_counter() - start
        st._qwen_bpe.cache_clear()
        st._llama_pieces.cache_clear()
    for name in ("q2", "q35", "ll"):
        assert _files(tmp_path / "a" / name) == _files(tmp_path / "b" / name)
    assert max(timings.values()) < 1.0, timings


@pytest.mark.parametrize("vocab_size", [300, 512, 1024, 4096])
def test_vocab_size_bounds(tmp_path: Path, vocab_size: int) -> None:
    q = st.write_qwen_tokenizer(
        tmp_path / "q", variant="qwen2", chat_template="T", vocab_size=vocab_size
    )
    assert q.n_tokens < vocab_size
    ll = st.write_llama_tokenizer(tmp_path / "l", chat_template="T", vocab_size=vocab_size)
    assert ll.n_tokens <= vocab_size
    model = spm_io.read_sentencepiece_model(tmp_path / "l" / "tokenizer.model")
    assert len(model.pieces) == ll.n_tokens == model.vocab_size
    assert len({p for p, _, _ in model.pieces}) == ll.n_tokens
    with pytest.raises(ValueError):
        st.write_qwen_tokenizer(tmp_path / "x", variant="qwen2", chat_template="T", vocab_size=200)
    with pytest.raises(ValueError):
        st.write_llama_tokenizer(tmp_path / "y", chat_template="T", vocab_size=260)


def test_python_pretokenizer_emulation_matches_regex_module() -> None:
    regex = pytest.importorskip("regex")
    text = unicodedata.normalize("NFC", st._corpus()) + "".join(MULTILINGUAL + MARKED)
    for pattern in (st.QWEN2_PRETOKENIZE_REGEX, st.QWEN35_PRETOKENIZE_REGEX):
        assert st._python_pattern(pattern, text).findall(text) == regex.findall(pattern, text)


# --------------------------------------------------------------------------- the Llama model file


def test_llama_pieces_layout(built) -> None:
    model = spm_io.read_sentencepiece_model(built["llama"][0] / "tokenizer.model")
    pieces = model.pieces
    assert pieces[:3] == [
        ("<unk>", 0.0, spm_io.UNKNOWN),
        ("<s>", 0.0, spm_io.CONTROL),
        ("</s>", 0.0, spm_io.CONTROL),
    ]
    assert pieces[3:259] == [(f"<0x{b:02X}>", 0.0, spm_io.BYTE) for b in range(256)]
    learned = pieces[259:]
    assert all(t == spm_io.NORMAL for _, _, t in learned)
    for rank, (piece, score, _) in enumerate(learned):
        assert score == (-1e9 if set(piece) == {"▁"} else -float(rank))
    singles = [p for p, _, _ in learned if len(p) == 1]
    first_single = next(i for i, (p, _, _) in enumerate(learned) if len(p) == 1)
    assert all(len(p) > 1 for p, _, _ in learned[:first_single])  # merges, then characters
    assert singles[0] == "▁"  # the most frequent character
    corpus_chars = set(st._corpus().replace(" ", "▁").replace("\n", "")) | {"▁"}
    assert set(singles) == corpus_chars
    assert any(len(p) > 1 and all("\u4e00" <= c <= "\u9fff" for c in p) for p, _, _ in learned)
    # Llama-2's trainer and normalizer settings
    assert model.model_type == spm_io.BPE
    assert model.byte_fallback is True
    assert (model.unk_id, model.bos_id, model.eos_id, model.pad_id) == (0, 1, 2, -1)
    assert model.normalizer_name == "identity"
    assert model.add_dummy_prefix is True
    assert model.remove_extra_whitespaces is False
    assert model.escape_whitespaces is True
    assert "escape_whitespaces" not in model.normalizer_spec  # absent on the wire, as in Llama-2
    assert model.trainer("split_digits") is True
    assert model.trainer("allow_whitespace_only_pieces") is True


def test_sentencepiece_model_round_trips_bytes(built) -> None:
    data = (built["llama"][0] / "tokenizer.model").read_bytes()
    model = spm_io.parse_sentencepiece_model(data)
    assert spm_writer.serialize_sentencepiece_model(model) == data
    again = spm_io.parse_sentencepiece_model(spm_writer.serialize_sentencepiece_model(model))
    assert again == model


def _varint(value: int) -> bytes:
    return spm_writer._varint(value)


def test_reader_skips_unknown_fields_of_every_wire_type(built) -> None:
    data = (built["llama"][0] / "tokenizer.model").read_bytes()
    model = spm_io.parse_sentencepiece_model(data)
    group_body = _varint((1 << 3) | 0) + _varint(7) + _varint((2 << 3) | 2) + _varint(2) + b"hi"
    extra = (
        _varint((95 << 3) | 0)
        + _varint(2**63 + 5)  # varint
        + _varint((96 << 3) | 1)
        + struct.pack("<d", 1.5)  # 64-bit
        + _varint((97 << 3) | 2)
        + _varint(3)
        + b"\x00\xff\x01"  # length-delimited
        + _varint((98 << 3) | 3)
        + group_body
        + _varint((98 << 3) | 4)  # group
        + _varint((99 << 3) | 5)
        + struct.pack("<f", 2.5)  # 32-bit
    )
    # inside the trainer spec too: rebuild field 2 with the unknown fields appended
    trainer = spm_writer._encode_spec(model.trainer_spec, [], spm_io.TRAINER_SCHEMA) + extra
    body = b"".join(spm_writer._encode_len(1, spm_writer._encode_piece(*piece))
                    for piece in model.pieces)
    body += spm_writer._encode_len(2, trainer)
    body += spm_writer._encode_len(
        3, spm_writer._encode_spec(model.normalizer_spec, [], spm_io.NORMALIZER_SCHEMA)
    )
    body += extra
    parsed = spm_io.parse_sentencepiece_model(body)
    assert parsed.pieces == model.pieces
    assert parsed.trainer_spec == model.trainer_spec
    assert [f.number for f in parsed.unknown_fields] == [95, 96, 97, 98, 99]
    assert [f.number for f in parsed.trainer_spec_unknown] == [95, 96, 97, 98, 99]
    assert parsed.unknown_fields[3].payload == group_body
    assert spm_writer.serialize_sentencepiece_model(parsed) == body
    with pytest.raises(spm_io.SentencePieceModelError):
        spm_io.parse_sentencepiece_model(body[:-3])


def test_writer_encodes_negative_ints_and_presence() -> None:
    model = spm_io.SentencePieceModel(
        pieces=[("<unk>", 0.0, spm_io.UNKNOWN), ("a", -0.0, spm_io.NORMAL)],
        trainer_spec={"pad_id": -1, "model_type": spm_io.BPE},
        normalizer_spec={"name": "identity"},
    )
    data = spm_writer.serialize_sentencepiece_model(model)
    assert _varint((43 << 3) | 0) + b"\xff" * 9 + b"\x01" in data  # int32 -1: ten bytes
    parsed = spm_io.parse_sentencepiece_model(data)
    assert parsed.pad_id == -1 and parsed.unk_id == 0 and parsed.vocab_size == 8000  # defaults
    assert parsed.remove_extra_whitespaces is True  # proto2 default when absent
    assert parsed.pieces == model.pieces
    with pytest.raises(ValueError):
        spm_writer.serialize_sentencepiece_model(
            spm_io.SentencePieceModel(trainer_spec={"unk_id": 2**31})
        )


@pytest.mark.reference
def test_model_trained_by_sentencepiece_round_trips(tmp_path) -> None:
    """A model file written by the sentencepiece library itself (Llama-2's trainer options:
    BPE, byte fallback, digits split) parses and re-serializes byte for byte."""
    spm = pytest.importorskip("sentencepiece")
    prefix = tmp_path / "real"
    spm.SentencePieceTrainer.train(
        input=str(st.CORPUS_PATH), model_prefix=str(prefix),
        model_type="bpe", vocab_size=1200, byte_fallback=True, split_digits=True,
        character_coverage=0.9995, num_threads=1, minloglevel=2)
    data = prefix.with_suffix(".model").read_bytes()
    model = spm_io.parse_sentencepiece_model(data)
    assert spm_writer.serialize_sentencepiece_model(model) == data
    assert len(model.pieces) == 1200
    assert model.byte_fallback is True


# --------------------------------------------------------------------------- reference libraries


@pytest.mark.reference
def test_schema_matches_sentencepiece_proto() -> None:
    pb = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")
    for schema, message in (
        (spm_io.TRAINER_SCHEMA, pb.TrainerSpec),
        (spm_io.NORMALIZER_SCHEMA, pb.NormalizerSpec),
    ):
        fields = {f.name: f for f in message.DESCRIPTOR.fields}
        assert set(schema) == set(fields)
        for name, (number, kind, default) in schema.items():
            assert fields[name].number == number, name
            if kind == "strings":
                assert fields[name].is_repeated
            elif kind == "float":
                assert struct.pack("<f", default) == struct.pack("<f", fields[name].default_value)
            else:
                assert fields[name].default_value == default, name


@pytest.mark.reference
def test_protobuf_reads_what_we_write(built) -> None:
    pb = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")
    data = (built["llama"][0] / "tokenizer.model").read_bytes()
    proto = pb.ModelProto()
    proto.ParseFromString(data)
    ours = spm_io.parse_sentencepiece_model(data)
    assert [(p.piece, p.score, p.type) for p in proto.pieces] == ours.pieces
    for name, value in ours.trainer_spec.items():
        theirs = getattr(proto.trainer_spec, name)
        if isinstance(value, float):
            assert struct.pack("<f", value) == struct.pack("<f", theirs)
        elif isinstance(value, list):
            assert list(theirs) == value
        else:
            assert theirs == value, name
        assert isinstance(value, list) or proto.trainer_spec.HasField(name)
    assert not proto.normalizer_spec.HasField("escape_whitespaces")
    assert proto.SerializeToString() == data  # our field order is protobuf's


@pytest.mark.reference
def test_sentencepiece_round_trips(built) -> None:
    spm = pytest.importorskip("sentencepiece")
    path = built["llama"][0] / "tokenizer.model"
    sp = spm.SentencePieceProcessor(model_file=str(path))
    model = spm_io.read_sentencepiece_model(path)
    assert sp.get_piece_size() == len(model.pieces)
    for i, (piece, score, kind) in enumerate(model.pieces):
        assert sp.id_to_piece(i) == piece
        assert struct.pack("<f", sp.get_score(i)) == struct.pack("<f", score)
        assert sp.is_byte(i) == (kind == spm_io.BYTE)
        assert sp.is_control(i) == (kind == spm_io.CONTROL)
        assert sp.is_unknown(i) == (kind == spm_io.UNKNOWN)
    for text in MULTILINGUAL:
        ids = sp.encode(text)
        assert sp.decode(ids) == text
        assert sp.unk_id() not in ids
    emoji = "🦀"  # not in the corpus: byte fallback
    assert emoji not in {p for p, _, _ in model.pieces}
    assert [sp.id_to_piece(i) for i in sp.encode("a " + emoji)][-4:] == [
        "<0xF0>",
        "<0x9F>",
        "<0xA6>",
        "<0x80>",
    ]
    for text in CJK:  # merged multi-character CJK pieces
        pieces = [sp.id_to_piece(i) for i in sp.encode(text)]
        assert len(pieces) <= len(text)  # despite the dummy-prefix "▁"
        assert any(len(p.lstrip("▁")) > 1 for p in pieces)


@pytest.mark.reference
@pytest.mark.parametrize("name", ["qwen2", "qwen35"])
def test_tokenizers_library_round_trips(built, name: str) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    directory, info = built[name]
    tok = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    assert tok.get_vocab_size(with_added_tokens=True) == info.n_tokens
    for text in MULTILINGUAL + MARKED:
        ids = tok.encode(text).ids
        assert tok.decode(ids, skip_special_tokens=False) == unicodedata.normalize("NFC", text)
    for content, token_id in info.special_ids.items():
        assert tok.encode(content).ids == [token_id]
        assert tok.token_to_id(content) == token_id
    ids = tok.encode("<|im_start|>user\n你好<think>\n想想\n</think>\n\n答<|im_end|>").ids
    assert ids[0] == info.special_ids["<|im_start|>"] and ids[-1] == info.eos_token_id
    kept = tok.decode(ids, skip_special_tokens=True)
    assert "<think>" in kept and "<|im_start|>" not in kept  # <think> is not special
    for text in CJK:
        n_ids = len(tok.encode(text).ids)
        assert n_ids < len(text.encode("utf-8")) / 2  # merged multi-byte tokens
    # our Python emulation of the split regex agrees with the library's pre-tokenizer
    text = unicodedata.normalize("NFC", st._corpus())
    byte_map = st._byte_to_unicode()
    split = st._python_pattern(st._QWEN_REGEX[name], text).findall(text)
    expected = ["".join(byte_map[b] for b in piece.encode("utf-8")) for piece in split]
    assert [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)] == expected


@pytest.mark.reference
def test_qwen_variants_split_combining_marks_differently(built) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    q2 = tokenizers.Tokenizer.from_file(str(built["qwen2"][0] / "tokenizer.json"))
    q35 = tokenizers.Tokenizer.from_file(str(built["qwen35"][0] / "tokenizer.json"))
    for text in MARKED:
        words2 = [p for p, _ in q2.pre_tokenizer.pre_tokenize_str(text)]
        words35 = [p for p, _ in q35.pre_tokenizer.pre_tokenize_str(text)]
        assert words2 != words35
        assert len(words35) < len(words2)  # marks stay inside Qwen3.5's words
    # the corpus has Hindi, so the two vocabularies differ there too
    hindi = "हर व्यक्ति की बात ध्यान से सुनी जाती है"
    assert q2.encode(hindi).ids != q35.encode(hindi).ids
    assert len(q35.encode(hindi).ids) < len(q2.encode(hindi).ids)
    assert [p for p, _ in q35.pre_tokenizer.pre_tokenize_str("q\u0301")] == ["qÌģ"]
    assert [p for p, _ in q2.pre_tokenizer.pre_tokenize_str("q\u0301")] == ["q", "Ìģ"]
    for text in MULTILINGUAL:  # without marks the two regexes split alike
        assert q2.pre_tokenizer.pre_tokenize_str(text) == q35.pre_tokenizer.pre_tokenize_str(text)


# --------------------------------------------------------------------------- chat templates


def _raise(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _render(template: str, messages: list[dict], trim: bool = True, **kwargs) -> str:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=trim, lstrip_blocks=trim, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise
    return env.from_string(template).render(
        messages=messages, bos_token="<s>", eos_token="</s>", **kwargs
    )


CHATML_SU = (
    "<|im_start|>system\nYou are a careful legal aid assistant.<|im_end|>\n"
    "<|im_start|>user\nCan my landlord keep the deposit?<|im_end|>\n"
    "<|im_start|>assistant\n"
)
NO_THINK = "<think>\n\n</think>\n\n"
MULTI_TURN = (
    "<|im_start|>system\nYou are a careful legal aid assistant.<|im_end|>\n"
    "<|im_start|>user\nCan my landlord keep the deposit?<|im_end|>\n"
    "<|im_start|>assistant\nOnly for damage beyond wear.<|im_end|>\n"
    "<|im_start|>user\nWhat if the letter came late?<|im_end|>\n"
    "<|im_start|>assistant\n"
)
ZH = (
    "<|im_start|>system\n你是一位嚴謹的法律援助助理。<|im_end|>\n"
    "<|im_start|>user\n房東可以扣留押金嗎？<|im_end|>\n<|im_start|>assistant\n"
)
LLAMA_SU = (
    "<s>[INST] <<SYS>>\nYou are a careful legal aid assistant.\n<</SYS>>\n\n"
    "Can my landlord keep the deposit? [/INST]"
)
LLAMA_SUAU = (
    LLAMA_SU + " Only for damage beyond wear. </s><s>[INST] What if the letter came late? [/INST]"
)

CASES = [
    # (template, messages, kwargs, expected)
    (ct.QWEN3_CHAT_TEMPLATE, [S, U1], {"add_generation_prompt": True}, CHATML_SU),
    (
        ct.QWEN3_CHAT_TEMPLATE,
        [S, U1],
        {"add_generation_prompt": True, "enable_thinking": True},
        CHATML_SU,
    ),
    (
        ct.QWEN3_CHAT_TEMPLATE,
        [S, U1],
        {"add_generation_prompt": True, "enable_thinking": False},
        CHATML_SU + NO_THINK,
    ),
    (ct.QWEN3_CHAT_TEMPLATE, [S, U1, A1_THINK, U2], {"add_generation_prompt": True}, MULTI_TURN),
    (
        ct.QWEN3_CHAT_TEMPLATE,
        [S, U1, A1_THINK, U2],
        {"add_generation_prompt": True, "enable_thinking": False},
        MULTI_TURN + NO_THINK,
    ),
    (
        ct.QWEN3_CHAT_TEMPLATE,
        [S, U1, A1_THINK],
        {},
        CHATML_SU + "<think>\nThe lease says thirty days.\n</think>\n\n"
        "Only for damage beyond wear.<|im_end|>\n",
    ),
    (
        ct.QWEN3_CHAT_TEMPLATE,
        [S, U1, A1],
        {},
        CHATML_SU + NO_THINK + "Only for damage beyond wear.<|im_end|>\n",
    ),
    (ct.QWEN3_CHAT_TEMPLATE, [S_ZH, U_ZH], {"add_generation_prompt": True}, ZH),
    (
        ct.QWEN3_CHAT_TEMPLATE,
        [U1],
        {"add_generation_prompt": True},
        "<|im_start|>user\nCan my landlord keep the deposit?<|im_end|>\n<|im_start|>assistant\n",
    ),
    (ct.QWEN3_INSTRUCT_CHAT_TEMPLATE, [S, U1], {"add_generation_prompt": True}, CHATML_SU),
    (ct.QWEN3_INSTRUCT_CHAT_TEMPLATE, [S, U1, A1, U2], {"add_generation_prompt": True}, MULTI_TURN),
    (ct.QWEN3_INSTRUCT_CHAT_TEMPLATE, [S_ZH, U_ZH], {"add_generation_prompt": True}, ZH),
    (ct.QWEN35_CHAT_TEMPLATE, [S, U1], {"add_generation_prompt": True}, CHATML_SU + NO_THINK),
    (
        ct.QWEN35_CHAT_TEMPLATE,
        [S, U1],
        {"add_generation_prompt": True, "enable_thinking": False},
        CHATML_SU + NO_THINK,
    ),
    (
        ct.QWEN35_CHAT_TEMPLATE,
        [S, U1],
        {"add_generation_prompt": True, "enable_thinking": True},
        CHATML_SU + "<think>\n",
    ),
    (
        ct.QWEN35_CHAT_TEMPLATE,
        [S, U1, A1_THINK, U2],
        {"add_generation_prompt": True},
        MULTI_TURN + NO_THINK,
    ),
    (ct.QWEN35_CHAT_TEMPLATE, [S_ZH, U_ZH], {"add_generation_prompt": True}, ZH + NO_THINK),
    (
        ct.QWEN35_CHAT_TEMPLATE,
        [{"role": "system", "content": "  S  "}, {"role": "user", "content": "\nU\n"}],
        {"add_generation_prompt": True},
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        + NO_THINK,
    ),
    (ct.LLAMA2_CHAT_TEMPLATE, [S, U1], {"add_generation_prompt": True}, LLAMA_SU),
    (ct.LLAMA2_CHAT_TEMPLATE, [S, U1, A1, U2], {}, LLAMA_SUAU),
    (ct.LLAMA2_CHAT_TEMPLATE, [U1], {}, "<s>[INST] Can my landlord keep the deposit? [/INST]"),
    (
        ct.LLAMA2_CHAT_TEMPLATE,
        [S_ZH, U_ZH],
        {},
        "<s>[INST] <<SYS>>\n你是一位嚴謹的法律援助助理。\n<</SYS>>\n\n房東可以扣留押金嗎？ [/INST]",
    ),
]


@pytest.mark.parametrize(("template", "messages", "kwargs", "expected"), CASES)
def test_templates_render_with_plain_jinja(template, messages, kwargs, expected) -> None:
    assert _render(template, messages, **kwargs) == expected
    assert _render(template, messages, trim=False, **kwargs) == expected


@pytest.mark.parametrize(
    ("template", "messages"),
    [
        (ct.LLAMA2_CHAT_TEMPLATE, [S, U1, U2]),
        (ct.LLAMA2_CHAT_TEMPLATE, [S, A1]),
        (ct.QWEN35_CHAT_TEMPLATE, [S]),
        (ct.QWEN35_CHAT_TEMPLATE, [U1, S]),
        (ct.QWEN35_CHAT_TEMPLATE, [U1, {"role": "tool", "content": "x"}]),
    ],
)
def test_templates_reject_bad_conversations(template, messages) -> None:
    with pytest.raises(jinja2.exceptions.TemplateError):
        _render(template, messages)


@pytest.mark.reference
@pytest.mark.parametrize(("template", "messages", "kwargs", "expected"), CASES)
def test_transformers_renders_templates(built, template, messages, kwargs, expected) -> None:
    transformers = pytest.importorskip("transformers")
    if template == ct.LLAMA2_CHAT_TEMPLATE:
        directory = built["llama"][0]
    elif template == ct.QWEN35_CHAT_TEMPLATE:
        directory = built["qwen35"][0]
    elif template == ct.QWEN3_INSTRUCT_CHAT_TEMPLATE:
        directory = built["qwen3_instruct"][0]
    else:
        directory = built["qwen2"][0]
    tokenizer = _auto_tokenizer(transformers, directory)
    assert tokenizer.chat_template == template
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    assert rendered == expected


_TOKENIZER_CACHE: dict[Path, object] = {}


def _auto_tokenizer(transformers, directory: Path):
    if directory not in _TOKENIZER_CACHE:
        _TOKENIZER_CACHE[directory] = transformers.AutoTokenizer.from_pretrained(str(directory))
    return _TOKENIZER_CACHE[directory]


@pytest.mark.reference
def test_transformers_loads_and_tokenizes(built) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    spm = pytest.importorskip("sentencepiece")
    for name in ("qwen2", "qwen35"):
        directory, info = built[name]
        hf = _auto_tokenizer(transformers, directory)
        raw = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        assert len(hf) == info.n_tokens
        assert hf.eos_token_id == info.eos_token_id and hf.pad_token_id == info.pad_token_id
        assert hf.bos_token is None
        for text in MULTILINGUAL + MARKED:
            assert hf(text)["input_ids"] == raw.encode(text).ids
        if name == "qwen35":  # Qwen3.5's template refuses a conversation without a user turn
            with pytest.raises(jinja2.exceptions.TemplateError):
                hf.apply_chat_template([S], tokenize=False)
    directory, info = built["llama"]
    hf = _auto_tokenizer(transformers, directory)
    sp = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
    assert len(hf) == info.n_tokens
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (1, 2, None)
    # transformers 5 rebuilds Llama as BPE from the scores; it agrees with SentencePiece on
    # text without leading or repeated spaces (its Metaspace adds no prefix to "  x").
    for text in ["Hello world, the clinic opens at 9 a.m.", CJK[0], CJK[1], "emoji 🦀 ok"]:
        assert hf(text)["input_ids"] == [1, *sp.encode(text)]
    with pytest.raises(jinja2.exceptions.TemplateError):
        hf.apply_chat_template([S, U1, U2], tokenize=False)
