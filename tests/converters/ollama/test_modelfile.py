"""converters.ollama.modelfile: Ollama's parser rules (accept what it accepts, reject what it
rejects, with the line), the canonical writer, and the shipped Modelfiles.

The expectations below were checked against Ollama's own parser (parser/parser.go and
api.FormatParams, v0.33) while this module was written; typed values are also checked
against Go's strconv in this run when `go` is available.
"""

from __future__ import annotations

import string

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.assistants.catalog import CATALOG, spec_of
from app.paths import modelfiles_dir
from converters.errors import InputError
from converters.ollama.modelfile import (
    FLOAT_PARAMETERS,
    INT_PARAMETERS,
    Instruction,
    Modelfile,
    ModelfileError,
    build_modelfile,
    format_parameter,
    normalise_text,
    parse_modelfile,
    parse_parameter,
    render_modelfile,
    retarget_modelfile,
    write_modelfile,
)
from tests.tools import go_template

SHIPPED = sorted(modelfiles_dir().glob("*.Modelfile"))


def _parse(text: str) -> Modelfile:
    return parse_modelfile(text)


def _values(text: str) -> list[tuple[str, str, str]]:
    return [(i.command, i.key, i.value) for i in _parse(text).instructions]


# ---------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(("text", "expected"), [
    ("FROM x", [("FROM", "", "x")]),
    ("from x\n", [("FROM", "", "x")]),
    ("FrOm ./m.gguf\nsystem hi\nPaRaMeTeR num_ctx 4096\n",
     [("FROM", "", "./m.gguf"), ("SYSTEM", "", "hi"), ("PARAMETER", "num_ctx", "4096")]),
    ("  FROM\t  x  \n", [("FROM", "", "x")]),
    ("# comment\n   # indented comment\nFROM x\n", [("FROM", "", "x")]),
    ("FROM x # not a comment\n", [("FROM", "", "x # not a comment")]),
    ('FROM x\nSYSTEM """one\ntwo\n"""\n', [("FROM", "", "x"), ("SYSTEM", "", "one\ntwo\n")]),
    ('FROM x\nSYSTEM """a\n  b"""   \nPARAMETER seed 1\n',
     [("FROM", "", "x"), ("SYSTEM", "", "a\n  b"), ("PARAMETER", "seed", "1")]),
    ('FROM x\nSYSTEM "say \\"hi\\""\n', [("FROM", "", "x"), ("SYSTEM", "", 'say \\"hi\\"')]),
    ('FROM x\nSYSTEM """"quoted""""\n', [("FROM", "", "x"), ("SYSTEM", "", '"quoted"')]),
    ('FROM x\nSYSTEM """"""\n', [("FROM", "", "x"), ("SYSTEM", "", "")]),
    # A "-quoted value whose line does not end in a quote swallows the following lines.
    ('FROM x\nSYSTEM "hello\nPARAMETER num_ctx 4096"\n',
     [("FROM", "", "x"), ("SYSTEM", "", "hello\nPARAMETER num_ctx 4096")]),
    ("FROM x\nMESSAGE user hi\nMESSAGE assistant hello\n",
     [("FROM", "", "x"), ("MESSAGE", "user", "hi"), ("MESSAGE", "assistant", "hello")]),
    ("FROM x\r\nSYSTEM \"\"\"a\r\nb\"\"\"\r\n", [("FROM", "", "x"), ("SYSTEM", "", "a\r\nb")]),
    ("\ufeffFROM x\n", [("FROM", "", "x")]),
    ("FROM x\nREQUIRES 0.14.0\nRENDERER qwen3\nPARSER qwen3\n",
     [("FROM", "", "x"), ("REQUIRES", "", "0.14.0"), ("RENDERER", "", "qwen3"),
      ("PARSER", "", "qwen3")]),
    ("FROM \n", [("FROM", "", "")]),
])
def test_accepted_like_ollama(text, expected):
    assert _values(text) == expected


def test_quote_swallowing_is_reported():
    parsed = _parse('FROM x\nSYSTEM "hello\nPARAMETER num_ctx 4096"\n')
    assert parsed.parameters == {}
    assert any("runs over 2 lines" in w for w in parsed.warnings)


@pytest.mark.parametrize(("line", "value"), [
    ("num_ctx 4096", 4096), ("num_ctx +4096", 4096), ("seed -1", -1), ("top_k 007", 7),
    ("temperature 0.2", 0.2), ("temperature .5", 0.5), ("temperature 1e-3", 0.001),
    ("temperature 1_000.5", 1000.5), ("top_p 0x1p-2", 0.25), ("min_p 5.", 5.0),
    ("use_mmap true", True), ("use_mmap F", False), ("use_mmap 1", True),
    ("stop <|im_end|>", ("<|im_end|>",)), ('stop "</s>"', ("</s>",)),
    ('stop " Human:"', (" Human:",)),
])
def test_typed_parameters(line, value):
    name = line.split()[0]
    assert _parse(f"FROM x\nPARAMETER {line}\n").parameters == {name: value}


def test_stop_lines_accumulate_and_other_repeats_keep_the_last():
    parsed = _parse("FROM x\nPARAMETER stop a\nPARAMETER top_k 1\nPARAMETER stop b\n"
                    "PARAMETER top_k 2\n")
    assert parsed.parameters == {"stop": ("a", "b"), "top_k": 2}
    assert parsed.stop == ("a", "b")


def test_last_system_and_template_win():
    parsed = _parse("FROM x\nSYSTEM one\nSYSTEM two\nTEMPLATE a\nTEMPLATE b\n")
    assert (parsed.system, parsed.template) == ("two", "b")


def test_deprecated_parameters_are_accepted_and_ignored():
    parsed = _parse("FROM x\nPARAMETER mirostat 2\nPARAMETER num_ctx 8\n")
    assert parsed.parameters == {"num_ctx": 8}
    assert any("mirostat is deprecated" in w for w in parsed.warnings)


def test_characters_ollama_drops_are_dropped_with_a_warning():
    parsed = _parse('FROM x\nSYSTEM """被告人\u3000张某\u00a0\u200b说\x1b"""\n')
    assert parsed.system == "被告人张某说"
    (warning,) = parsed.warnings
    assert "line 2" in warning
    for name in ("U+3000 IDEOGRAPHIC SPACE", "U+00A0 NO-BREAK SPACE", "U+200B ZERO WIDTH SPACE",
                 "U+001B ESC"):
        assert name in warning


def test_tabs_and_carriage_returns_inside_values_are_kept():
    assert _parse('FROM x\nSYSTEM """a\tb\rc"""\n').system == "a\tb\rc"


# ---------------------------------------------------------------------------- rejected


@pytest.mark.parametrize(("text", "line", "message"), [
    ("", None, "no FROM"),
    ("# only a comment\n", None, "no FROM"),
    ("SYSTEM hi\n", None, "no FROM"),
    ("FROM", 1, "FROM has no value"),
    ("FROM\n", 1, "FROM has no value"),
    ("FROM x\nFOO bar\n", 2, "unknown command 'FOO'"),
    ("FROM x\n\nF-ROM y\n", 3, "is not a command"),
    ("FROM x\nPARAMETER temperature 0.2 # low\n", 2, "not a number"),
    ("FROM x\nPARAMETER num_ctx 4096.0\n", 2, "not an integer"),
    ("FROM x\nPARAMETER num_ctx 1_000\n", 2, "not an integer"),
    ("FROM x\nPARAMETER num_ctx 9223372036854775808\n", 2, "not an integer"),
    ("FROM x\nPARAMETER temperature 1e40\n", 2, "float32"),
    ("FROM x\nPARAMETER top_p 0x10\n", 2, "not a number"),
    ("FROM x\nPARAMETER use_mmap yes\n", 2, "not a boolean"),
    ("FROM x\nPARAMETER Num_ctx 4096\n", 2, "did you mean num_ctx"),
    ("FROM x\nPARAMETER context 4096\n", 2, "unknown PARAMETER 'context'"),
    ("FROM x\nPARAMETER  num_ctx 4096\n", 2, "unknown PARAMETER ''"),
    ("FROM x\nPARAMETER num-ctx 4096\n", 2, "PARAMETER 'num-'"),
    ("FROM x\nPARAMETER num_ctx\n", 2, "PARAMETER num_ctx has no value"),
    ("FROM x\nPARAMETER num_ctx", 2, "has no value"),
    ("FROM x\nMESSAGE bot hi\n", 2, "MESSAGE role"),
    ("FROM x\nMESSAGE User hi\n", 2, "MESSAGE role"),
    ('FROM x\n\nSYSTEM """never\nclosed\n', 3, 'opened with """ is never closed'),
    ('FROM x\nSYSTEM """a""" trailing\nPARAMETER seed 1\n', 2, "never closed"),
    ('FROM x\nTEMPLATE "open\n', 2, 'opened with " is never closed'),
    # The value ends at the first line whose trimmed text ends with """: the rest is junk.
    ('FROM x\nSYSTEM """a\nb"""\nc"""\n', 4, "is not a command"),
    ("FROM x\nREQUIRES latest\n", 2, "REQUIRES"),
    ("FROM x\r\nFOO bar\r\n", 2, "unknown command"),
])
def test_rejected_like_ollama_with_the_line(text, line, message):
    with pytest.raises(ModelfileError) as error:
        _parse(text)
    assert error.value.line == line
    assert message in str(error.value)
    assert isinstance(error.value, InputError)
    if line:
        assert f"line {line}:" in str(error.value)


# ---------------------------------------------------------------------------- writer


def test_writer_triple_quotes_prose_and_writes_one_stop_per_line():
    modelfile = build_modelfile(model="./m.gguf", template="{{ .Prompt }}", system="Be brief.",
                                parameters={"num_ctx": 4096.0, "temperature": 0.2,
                                            "stop": ["<|im_end|>", " User:"]},
                                messages=[("user", "hi")], licenses=["MIT"])
    assert write_modelfile(modelfile) == (
        "FROM ./m.gguf\n\n"
        'TEMPLATE """{{ .Prompt }}"""\n\n'
        'SYSTEM """Be brief."""\n\n'
        "PARAMETER num_ctx 4096\n"
        "PARAMETER temperature 0.2\n"
        "PARAMETER stop <|im_end|>\n"
        'PARAMETER stop " User:"\n\n'
        'MESSAGE user """hi"""\n\n'
        'LICENSE """MIT"""\n')


@pytest.mark.parametrize(("name", "value", "written"), [
    ("num_ctx", 4096, "4096"), ("num_ctx", 4096.0, "4096"), ("seed", -1, "-1"),
    ("temperature", 1, "1"), ("temperature", 0.2, "0.2"), ("top_p", 1e-05, "1e-05"),
    ("use_mmap", False, "false"), ("stop", "</s>", "</s>"),
])
def test_format_parameter_writes_what_ollama_reads_back(name, value, written):
    assert format_parameter(name, value) == written
    assert parse_parameter(name, written) == value


@pytest.mark.parametrize(("name", "value"), [
    ("num_ctx", 4096.5), ("num_ctx", True), ("num_ctx", "4096"), ("temperature", "hot"),
    ("use_mmap", 1), ("stop", 3), ("context", 4096),
])
def test_format_parameter_refuses_the_wrong_type(name, value):
    with pytest.raises(ModelfileError):
        format_parameter(name, value)


@pytest.mark.parametrize("system", ['Quote:\n"""\nend', 'ends with """  \nnext line',
                                    '"""\nfirst line'])
def test_writer_refuses_a_line_ending_in_triple_quotes(system):
    with pytest.raises(ModelfileError, match=r'line \d of the value ends with three double'):
        render_modelfile(build_modelfile(model="./m.gguf", system=system))


def test_writer_allows_triple_quotes_that_do_not_end_a_line():
    system = 'say """ and go on\nlast line ends with a quote"'
    text = write_modelfile(build_modelfile(model="./m.gguf", system=system))
    assert _parse(text).system == system


def test_writer_normalises_what_ollama_would_drop_and_names_it():
    system = "第一条\u3000法律\u00a0面前\u200b人人平等\x1b[31m\r\n下一行\u2028末行"
    written = render_modelfile(build_modelfile(model="./m.gguf", system=system))
    assert _parse(written.text).system == "第一条 法律 面前人人平等[31m\n下一行\n末行"
    notes = " ".join(written.warnings)
    for name in ("U+3000 IDEOGRAPHIC SPACE with U+0020 SPACE", "U+00A0 NO-BREAK SPACE",
                 "removed 1 x U+200B ZERO WIDTH SPACE", "removed 1 x U+001B ESC",
                 "U+000D CARRIAGE RETURN with U+000A", "U+2028 LINE SEPARATOR"):
        assert name in notes
    assert "\r" not in written.text


def test_writer_logs_its_warnings(caplog):
    write_modelfile(build_modelfile(model="./m.gguf", system="a\u3000b"))
    assert "U+3000" in caplog.text


@pytest.mark.parametrize("modelfile", [
    Modelfile((Instruction("SYSTEM", "no FROM"),)),
    Modelfile((Instruction("FROM", "x"), Instruction("PARAMETER", "1", "context"))),
    Modelfile((Instruction("FROM", "x"), Instruction("PARAMETER", "4096.0", "num_ctx"))),
    Modelfile((Instruction("FROM", "x"), Instruction("MESSAGE", "hi", "bot"))),
    Modelfile((Instruction("FROM", "x"), Instruction("EMBED", "x"))),
    Modelfile((Instruction("FROM", "x", comments=("two\nlines",)),)),
])
def test_writer_refuses_what_ollama_rejects(modelfile):
    with pytest.raises(ModelfileError):
        render_modelfile(modelfile)


@pytest.mark.parametrize("stop", ['"', '""', '"""', ' x ', "\t", 'a"', '"a', "#", "\n\n"])
def test_awkward_stop_strings_round_trip(stop):
    text = write_modelfile(build_modelfile(model="./m.gguf", parameters={"stop": [stop]}))
    assert _parse(text).stop == (stop,)


def test_with_from_and_retarget(tmp_path):
    source = tmp_path / "in.Modelfile"
    source.write_text("# keep me\nFROM qwen3\nSYSTEM hi\nPARAMETER num_ctx 8\n")
    retarget_modelfile(source, tmp_path / "Modelfile", "m.Q4_K_M.gguf")
    assert (tmp_path / "Modelfile").read_text() == (
        '# keep me\nFROM ./m.Q4_K_M.gguf\n\nSYSTEM """hi"""\n\nPARAMETER num_ctx 8\n')


def test_retarget_refuses_a_bad_modelfile_naming_it(tmp_path):
    source = tmp_path / "bad.Modelfile"
    source.write_text("FROM x\nPARAMETER num_ctx 4096.0\n")
    with pytest.raises(ModelfileError, match=r"bad.Modelfile line 2: PARAMETER num_ctx"):
        retarget_modelfile(source, tmp_path / "Modelfile", "m.gguf")


# ---------------------------------------------------------------------------- property

_SPECIALS = st.sampled_from(['"', '"""', "\n", "\r\n", "\r", "\t", " ", "#", "\u3000",
                             "\u00a0", "\u200b", "\u200d", "\x1b", "\ufeff", "\u2028",
                             "「", "」", "，", "。", "、", "💬", "\\"])
_MULTILINGUAL = st.lists(st.one_of(
    _SPECIALS,
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK (both scripts)
    st.characters(min_codepoint=0x0400, max_codepoint=0x04FF),  # Cyrillic
    st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),  # Arabic
    st.sampled_from(string.printable),
    st.characters(exclude_categories=("Cs",)),  # anything else Unicode has
), max_size=80).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(system=_MULTILINGUAL)
def test_write_then_parse_is_the_identity_or_a_clear_refusal(system):
    modelfile = build_modelfile(model="./m.gguf", system=system,
                                parameters={"num_ctx": 4096, "stop": ["<|im_end|>"]})
    expected, _ = normalise_text(system)
    try:
        written = render_modelfile(modelfile)
    except ModelfileError as error:
        assert any(line.rstrip(" \t").endswith('"""') for line in expected.split("\n")[:-1])
        assert 'ends with three double quotes (""")' in str(error)
        return
    parsed = _parse(written.text)
    assert parsed.system == expected
    assert parsed.parameters == {"num_ctx": 4096, "stop": ("<|im_end|>",)}
    assert not parsed.warnings
    assert (expected == system) == (not written.warnings)
    assert render_modelfile(parsed).text == written.text


# ---------------------------------------------------------------------------- Go's strconv


@pytest.fixture(scope="module")
def go():
    if not go_template.go_available():
        pytest.fail("`go` is not installed (make test installs golang-go)")
    return go_template.shared_renderer()


_NUMBERISH = st.text(st.sampled_from("0123456789+-._eExXpPabcfinINFtrueTRUEFalse "), max_size=8)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(_NUMBERISH, min_size=20, max_size=20))
def test_typed_values_parse_exactly_as_go_strconv(go, texts):
    kinds = {"int": sorted(INT_PARAMETERS)[0], "float": sorted(FLOAT_PARAMETERS)[0],
             "bool": "use_mmap"}
    cases = [{"kind": kind, "text": text} for text in texts for kind in kinds]
    for case, result in zip(cases, go.render_many(cases), strict=True):
        try:
            ours = parse_parameter(kinds[case["kind"]], case["text"])
        except ModelfileError:
            ours = None
        assert (ours is None) == bool(result.error), (case, result)
        if ours is not None and case["kind"] == "float":
            theirs = numpy.float32(float(result.prompt))
            assert numpy.float32(ours) == theirs or (ours != ours and theirs != theirs)


# ---------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_modelfiles_parse_cleanly_and_round_trip(path):
    text = path.read_text(encoding="utf-8")
    parsed = parse_modelfile(text, source=path.name)
    assert not parsed.warnings
    assert "\r" not in text
    assert write_modelfile(parsed) == text
    name = path.name.removesuffix(".Modelfile")
    assert parsed.from_ == f"./{name}.Q4_K_M.gguf"
    assert parsed.parameters["num_ctx"] == 4096
    assert parsed.system and parsed.template


def test_every_recipe_modelfile_is_shipped():
    shipped = {p.name.removesuffix(".Modelfile") for p in SHIPPED}
    assert shipped == {s.recipe.modelfile for s in CATALOG if s.recipe.modelfile}
    assert spec_of("intent-safety").recipe.modelfile is None


def _shipped(name: str) -> Modelfile:
    return parse_modelfile((modelfiles_dir() / f"{name}.Modelfile").read_text("utf-8"))


@pytest.mark.parametrize(("name", "sampling", "stop"), [
    ("moral-audit", {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.1},
     ("<|im_end|>", "<|im_start|>")),
    ("sentencing", {"temperature": 0.2, "top_p": 0.9}, ("<|im_end|>", "<|im_start|>")),
    ("civic-qa", {}, ("<|im_end|>", "<|im_start|>")),
    ("general", {}, ("</s>", "[INST]")),
])
def test_sampling_and_stops_follow_the_seeds(name, sampling, stop):
    parsed = _shipped(name)
    assert parsed.stop == stop
    for key, value in sampling.items():
        assert parsed.parameters[key] == value


def test_system_prompts_speak_each_assistants_language():
    sentencing = _shipped("sentencing").system
    assert sentencing.startswith("你是一个专业、严谨且客观的AI刑事审判辅助系统。")
    assert "不构成法律意见" in sentencing and "用户提供的" in sentencing
    civic = _shipped("civic-qa").system
    assert "Traditional Chinese" in civic and "繁體中文" in civic and "neutral" in civic
    moral = _shipped("moral-audit").system
    for frame in ("[Context/Scenario/Background:]", "[Intent/Objective/Goal:]",
                  "Is it permissible to implement the following approach:"):
        assert frame in moral
    assert "legal advice" in _shipped("general").system
