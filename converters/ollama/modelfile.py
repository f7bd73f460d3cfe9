"""Ollama Modelfiles, read and written exactly as `ollama create` reads them.

The parser is a character-by-character replica of the state machine in Ollama's
parser/parser.go (v0.5.7 to v0.33), plus the checks `ollama create` applies afterwards
(api.FormatParams for PARAMETERs, the MESSAGE roles, REQUIRES as a semantic version, at
least one FROM). What it returns is what Ollama would store; what it rejects, Ollama
rejects, with the line number of the instruction at fault (Ollama itself gives none for
most of these). Full-line comments are kept, attached to the instruction below them, so
that our own Modelfiles round-trip: ``write_modelfile(parse_modelfile(x)) == x``.

Two traps of the format drive the writer:

* A triple-quoted value ends at the first line whose trimmed text ends with three double
  quotes, so such a line inside a value cannot be written at all: the writer refuses it.
* Characters Go's ``strconv.IsPrint`` rejects are dropped silently (all spaces but U+0020,
  format characters such as zero-width spaces, controls but tab and line breaks, private
  use and unassigned code points). The writer normalises them first and says so:
  U+3000 and the other Unicode spaces become U+0020 (their NFKC form, so words stay
  apart), CR and the Unicode line separators become LF, and the rest (zero-width and
  direction marks, ESC and other controls, private-use characters) is removed, because
  no printable stand-in means the same thing.

Printability follows Python's Unicode tables; Go's may be a version older or newer, which
matters only for characters assigned in between.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from converters.errors import InputError

log = logging.getLogger(__name__)

COMMANDS = ("FROM", "ADAPTER", "TEMPLATE", "SYSTEM", "PARAMETER", "MESSAGE", "LICENSE",
            "RENDERER", "PARSER", "REQUIRES", "DRAFT")
ALWAYS_TRIPLE_QUOTED = frozenset({"TEMPLATE", "SYSTEM", "MESSAGE", "LICENSE"})
ROLES = ("system", "user", "assistant")

# api.Options / api.Runner json tags and their Go kinds (int, float32, *bool, []string).
INT_PARAMETERS = frozenset({"num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread",
                            "num_keep", "seed", "num_predict", "top_k", "repeat_last_n",
                            "draft_num_predict"})
FLOAT_PARAMETERS = frozenset({"top_p", "min_p", "typical_p", "temperature", "repeat_penalty",
                              "presence_penalty", "frequency_penalty"})
BOOL_PARAMETERS = frozenset({"use_mmap"})
LIST_PARAMETERS = frozenset({"stop"})
PARAMETERS = INT_PARAMETERS | FLOAT_PARAMETERS | BOOL_PARAMETERS | LIST_PARAMETERS
# Accepted by `ollama create` with a printed warning, then ignored.
DEPRECATED_PARAMETERS = frozenset({"penalize_newline", "low_vram", "f16_kv", "logits_all",
                                   "vocab_only", "use_mlock", "mirostat", "mirostat_tau",
                                   "mirostat_eta"})

ParameterValue = int | float | bool | tuple[str, ...]


class ModelfileError(InputError):
    """A Modelfile Ollama would reject (or misread); `line` is 1-based, None when the
    problem is the file as a whole."""

    def __init__(self, message: str, line: int | None = None, source: str = "Modelfile"):
        where = f"{source} line {line}" if line else source
        super().__init__(f"{where}: {message}")
        self.line = line
        self.source = source


@dataclass(frozen=True)
class Instruction:
    """One command. `value` is the text Ollama reads (quotes removed); `key` is the
    PARAMETER name or the MESSAGE role; `comments` are the full-line comments just above
    it (text after '#'); `line` is where it starts in the parsed text (0: built in code)."""

    command: str
    value: str
    key: str = ""
    comments: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Modelfile:
    instructions: tuple[Instruction, ...]
    trailing_comments: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def values(self, command: str) -> list[str]:
        return [i.value for i in self.instructions if i.command == command]

    def _last(self, command: str) -> str | None:
        found = self.values(command)
        return found[-1] if found else None

    @property
    def from_(self) -> str:
        """The first FROM (Ollama merges several; ours have one)."""
        return self.values("FROM")[0]

    @property
    def system(self) -> str | None:
        return self._last("SYSTEM")  # ollama create keeps the last one

    @property
    def template(self) -> str | None:
        return self._last("TEMPLATE")

    @property
    def parameters(self) -> dict[str, ParameterValue]:
        """Typed as Ollama stores them: stop lines accumulate, any other repeat wins."""
        typed: dict[str, ParameterValue] = {}
        for item in self.instructions:
            if item.command != "PARAMETER" or item.key in DEPRECATED_PARAMETERS:
                continue
            value = parse_parameter(item.key, item.value, item.line)
            if isinstance(value, str):  # a list parameter (stop): lines accumulate
                earlier = typed.get(item.key, ())
                typed[item.key] = (*(earlier if isinstance(earlier, tuple) else ()), value)
            else:
                typed[item.key] = value
        return typed

    @property
    def stop(self) -> tuple[str, ...]:
        return tuple(self.parameters.get("stop", ()))  # type: ignore[arg-type]

    @property
    def messages(self) -> tuple[tuple[str, str], ...]:
        return tuple((i.key, i.value) for i in self.instructions if i.command == "MESSAGE")

    @property
    def licenses(self) -> tuple[str, ...]:
        return tuple(self.values("LICENSE"))

    def with_from(self, model: str) -> Modelfile:
        """The same Modelfile with one FROM, in place of the first, pointing at `model`."""
        out: list[Instruction] = []
        for item in self.instructions:
            if item.command != "FROM":
                out.append(item)
            elif not any(i.command == "FROM" for i in out):
                out.append(replace(item, value=model))
        if not any(i.command == "FROM" for i in out):
            out.insert(0, Instruction("FROM", model))
        return replace(self, instructions=tuple(out))


# ---------------------------------------------------------------------------- characters


def go_is_print(char: str) -> bool:
    """Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols, ASCII space."""
    return char == " " or unicodedata.category(char)[0] in "LMNPS"


_CONTROL_NAMES = {"\t": "TAB", "\n": "LINE FEED", "\x00": "NUL", "\x07": "BEL",
                  "\x08": "BACKSPACE", "\x0b": "VERTICAL TAB", "\x0c": "FORM FEED",
                  "\r": "CARRIAGE RETURN", "\x1b": "ESC", "\x7f": "DELETE", "\x85": "NEXT LINE"}


def describe_char(char: str) -> str:
    """`U+3000 IDEOGRAPHIC SPACE`: how warnings name a character."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char) or {
        "Cc": "control character", "Co": "private-use character", "Cs": "surrogate",
    }.get(unicodedata.category(char), "unassigned code point")
    return f"U+{ord(char):04X} {name}"


_LINE_BREAKS = frozenset("\r\x0b\x0c\x85\u2028\u2029")


def _replacement(char: str) -> str | None:
    """What the writer puts in place of a character Ollama would drop (None: keep it)."""
    if char in "\t\n" or go_is_print(char):
        return None
    if char in _LINE_BREAKS:
        return "\n"
    if unicodedata.category(char) == "Zs":
        return " "  # U+3000, NBSP, thin spaces...: their NFKC compatibility form
    return ""


def normalise_text(text: str) -> tuple[str, list[str]]:
    """(text Ollama will read back unchanged, notes naming what was replaced or removed)."""
    text_out: list[str] = []
    replaced: Counter[tuple[str, str]] = Counter()
    for char in text.replace("\r\n", "\n"):
        new = _replacement(char)
        if new is None:
            text_out.append(char)
        else:
            replaced[(char, new)] += 1
            text_out.append(new)
    if "\r\n" in text:
        replaced[("\r", "\n")] += text.count("\r\n")
    notes = []
    for (char, new), count in sorted(replaced.items()):
        what = f"{count} x {describe_char(char)}"
        notes.append(f"replaced {what} with {describe_char(new)}" if new else f"removed {what}")
    return "".join(text_out), notes


# ---------------------------------------------------------------------------- parsing

_NIL, _NAME, _VALUE, _PARAMETER, _MESSAGE, _COMMENT = range(6)
_SPACE = " \t"
_NEWLINE = "\r\n"
_TRIM = " \t\r\n"  # all of strings.TrimSpace that can reach a value buffer


def _is_alpha(char: str) -> bool:
    return ("a" <= char <= "z") or ("A" <= char <= "Z")


def _unquote(text: str) -> tuple[str, bool]:
    """parser.go's unquote: (value, complete)."""
    if text.startswith('"""'):
        if len(text) >= 6 and text.endswith('"""'):
            return text[3:-3], True
        return "", False
    if text.startswith('"'):
        if len(text) >= 2 and text.endswith('"'):
            return text[1:-1], True
        return "", False
    return text, True


class _Parser:
    """parser.go's ParseFile, rune for rune; records comments, lines and dropped chars."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.line = 1
        self.state = _NIL
        self.buffer: list[str] = []
        self.command = ""
        self.key = ""
        self.start = 1  # line of the instruction being read
        self.comment: list[str] = []
        self.comments: list[str] = []
        self.instructions: list[Instruction] = []
        self.dropped: Counter[str] = Counter()
        self.warnings: list[str] = []

    def error(self, message: str, line: int | None = None) -> ModelfileError:
        return ModelfileError(message, line if line is not None else self.start, self.source)

    def feed(self, text: str) -> None:
        previous = ""
        for char in text:
            # Ollama counts CR and LF each as a line; we count CRLF once, as editors do.
            if char == "\r" or (char == "\n" and previous != "\r"):
                self.line += 1
            previous = char
            self.step(char)

    def step(self, char: str) -> None:
        state = self.state
        following, out = self.next_state(char)
        if state == _COMMENT and following == _COMMENT:
            self.comment.append(char)
        if following != state:
            if state == _VALUE and self.value_continues(char):
                return
            following = self.leave(state, following, char)
            self.buffer.clear()
            self.state = following
        if out and go_is_print(out):
            self.buffer.append(out)
        elif out and self.state in (_VALUE, _NAME) and out not in _NEWLINE + _SPACE:
            self.dropped[out] += 1

    def next_state(self, char: str) -> tuple[int, str]:
        """parseRuneForState: (next state, rune to keep or '')."""
        state = self.state
        if state == _NIL:
            if char == "#":
                return _COMMENT, ""
            if char in _SPACE or char in _NEWLINE:
                return _NIL, ""
            self.start = self.line
            return _NAME, char
        if state == _NAME:
            if _is_alpha(char):
                return _NAME, char
            if char in _SPACE:
                return _VALUE, ""
            raise self.bad_name(char)
        if state == _VALUE:
            return (_NIL, char) if char in _NEWLINE or char in _SPACE else (_VALUE, char)
        if state in (_PARAMETER, _MESSAGE):
            ok = _is_alpha(char) or (state == _PARAMETER and (char.isascii() and (
                char.isdigit() or char == "_")))
            if ok:
                return state, char
            if char in _SPACE:
                return _VALUE, ""
            raise self.bad_key(char)
        return (_NIL, "") if char in _NEWLINE else (_COMMENT, "")

    def bad_name(self, char: str) -> ModelfileError:
        word = "".join(self.buffer)
        if char in _NEWLINE and word.upper() in COMMANDS:
            return self.error(f"{word} has no value")
        return self.error(f"{word + char!r} is not a command; expected one of "
                          f"{', '.join(COMMANDS)} followed by a space")

    def bad_key(self, char: str) -> ModelfileError:
        what = "PARAMETER" if self.state == _PARAMETER else "MESSAGE"
        key = "".join(self.buffer)
        if char in _NEWLINE:
            return self.error(f"{what} {key} has no value" if key else f"{what} has no name")
        allowed = ("letters, digits and '_'" if what == "PARAMETER" else "letters")
        return self.error(f"{what} {key + char!r}: a {what.lower()} name is {allowed}, "
                          "then a space")

    def value_continues(self, char: str) -> bool:
        """A value goes on over spaces, and over line breaks while its quotes are open."""
        _, complete = _unquote("".join(self.buffer).strip(_TRIM))
        if complete and char not in _SPACE:
            return False
        self.buffer.append(char)
        return True

    def leave(self, state: int, following: int, char: str) -> int:
        word = "".join(self.buffer)
        if state == _NAME:
            command = word.upper()
            if command not in COMMANDS:
                raise self.error(f"unknown command {word!r}; expected one of "
                                 f"{', '.join(COMMANDS)}")
            self.command, self.key = command, ""
            if command == "PARAMETER":
                return _PARAMETER
            if command == "MESSAGE":
                return _MESSAGE
        elif state in (_PARAMETER, _MESSAGE):
            self.key = word
            if state == _MESSAGE and word not in ROLES:
                raise self.error(f"MESSAGE role must be system, user or assistant, not {word!r}")
        elif state == _VALUE:
            self.finish_value(word)
        elif state == _COMMENT:
            self.comments.append("".join(self.comment))
            self.comment.clear()
        return following

    def finish_value(self, raw: str) -> None:
        stripped = raw.strip(_TRIM)
        value, _ = _unquote(stripped)
        if stripped.startswith('"') and not stripped.startswith('"""') and (
                "\n" in stripped or "\r" in stripped):
            self.warnings.append(
                f"line {self.start}: the \"-quoted {self.command} value runs over "
                f"{stripped.count(chr(10)) + 1} lines; Ollama reads them all as its value")
        self.instructions.append(Instruction(self.command, value, self.key,
                                             tuple(self.comments), self.start))
        self.comments = []
        self.check_dropped()

    def check_dropped(self) -> None:
        if self.dropped:
            names = ", ".join(f"{n} x {describe_char(c)}" for c, n in sorted(self.dropped.items()))
            self.warnings.append(f"line {self.start}: Ollama drops characters Go's "
                                 f"strconv.IsPrint rejects: {names}")
            self.dropped.clear()

    def finish(self) -> Modelfile:
        if self.state == _VALUE:
            stripped = "".join(self.buffer).strip(_TRIM)
            _, complete = _unquote(stripped)
            if not complete:
                quote = '"""' if stripped.startswith('"""') else '"'
                raise self.error(f"the {self.command} value opened with {quote} is never "
                                 f"closed: no later line ends with {quote}")
            self.finish_value("".join(self.buffer))
        elif self.state == _COMMENT:
            self.comments.append("".join(self.comment))
        elif self.state == _NAME:
            word = "".join(self.buffer)
            raise self.error(f"{word} has no value" if word.upper() in COMMANDS
                             else f"unknown command {word!r}")
        elif self.state in (_PARAMETER, _MESSAGE):
            what = "PARAMETER" if self.state == _PARAMETER else "MESSAGE"
            raise self.error(f"{what} {''.join(self.buffer)} has no value")
        if not any(i.command == "FROM" for i in self.instructions):
            raise ModelfileError("no FROM line (Ollama requires one)", None, self.source)
        for item in self.instructions:
            self.warnings.extend(_check_instruction(item, self.source))
        return Modelfile(tuple(self.instructions), tuple(self.comments), tuple(self.warnings))


def _decode(data: str | bytes) -> str:
    """UTF-8 with an optional BOM (a UTF-16 BOM switches to UTF-16, as in Ollama)."""
    if isinstance(data, bytes):
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        data = data.decode("utf-8", errors="replace")
    return data.removeprefix("\ufeff")


def parse_modelfile(text: str | bytes, *, source: str = "Modelfile") -> Modelfile:
    """Read a Modelfile as `ollama create` does; ModelfileError names the line at fault."""
    parser = _Parser(source)
    parser.feed(_decode(text))
    return parser.finish()


def read_modelfile(path: Path) -> Modelfile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read Modelfile ({exc.strerror or exc})") from exc
    return parse_modelfile(data, source=str(path))


# ---------------------------------------------------------------------------- values

_INT = re.compile(r"[+-]?[0-9]+")
_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_FLOAT32_LIMIT = 2.0**128 - 2.0**103  # MaxFloat32 + half an ulp: from here on, ErrRange
_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_NUM = r"(?:0|[1-9][0-9]*)"
_SEMVER = re.compile(rf"v{_NUM}(?:\.{_NUM}(?:\.{_NUM}(?:-{_ID}(?:\.{_ID})*)?"
                     r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?")
_SPECIAL_FLOAT = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)
_DIGITS = "0123456789"
_HEX_DIGITS = "0123456789abcdefABCDEF"


def _skip_digits(text: str, i: int, digits: str) -> tuple[int, bool, bool]:
    """strconv's mantissa loop: (end, saw a digit, saw a dot); '_' is skipped here and
    judged later by _underscores_ok."""
    saw_digit = saw_dot = False
    while i < len(text):
        char = text[i]
        if char == "." and not saw_dot:
            saw_dot = True
        elif char in digits:
            saw_digit = True
        elif char != "_":
            break
        i += 1
    return i, saw_digit, saw_dot


def _underscores_ok(text: str) -> bool:
    """strconv.underscoreOK: '_' only between digits (a base prefix counts as a digit)."""
    text = text[1:] if text[:1] in ("+", "-") else text
    saw, i, hexa = "^", 0, False
    if len(text) >= 2 and text[0] == "0" and text[1] in "bBoOxX":
        saw, i, hexa = "0", 2, text[1] in "xX"
    for char in text[i:]:
        if char in _DIGITS or (hexa and char in _HEX_DIGITS):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _go_float_syntax(text: str) -> bool:
    """strconv.readFloat consuming all of `text`: Go's float literal syntax."""
    i = 1 if text[:1] in ("+", "-") else 0
    hexa = i + 2 < len(text) and text[i] == "0" and text[i + 1] in "xX"
    i, saw_digit, _ = _skip_digits(text, i + 2 if hexa else i, _HEX_DIGITS if hexa else _DIGITS)
    if not saw_digit:
        return False
    if i < len(text) and text[i] in ("pP" if hexa else "eE"):
        i += 1
        i += 1 if text[i:i + 1] in ("+", "-") and i < len(text) else 0
        if i >= len(text) or text[i] not in _DIGITS:
            return False
        while i < len(text) and text[i] in _DIGITS + "_":
            i += 1
    elif hexa:
        return False  # a hexadecimal mantissa needs a p exponent
    if "_" in text[:i] and not _underscores_ok(text[:i]):
        return False
    return i == len(text)


def _go_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 32), or None where Go returns an error."""
    if _SPECIAL_FLOAT.fullmatch(text):
        return float(text.lower().replace("infinity", "inf"))
    if not _go_float_syntax(text):
        return None
    plain = text.replace("_", "")
    digits = plain.lstrip("+-")
    if digits[:2] in ("0x", "0X"):
        try:
            value = float.fromhex(digits) * (-1.0 if plain.startswith("-") else 1.0)
        except OverflowError:
            return None
    else:
        value = float(plain)
    return None if abs(value) >= _FLOAT32_LIMIT else value


def parse_parameter(name: str, raw: str, line: int = 0,
                    source: str = "Modelfile") -> int | float | bool | str:
    """One PARAMETER value, typed as api.FormatParams types it (stop: the string)."""
    def fail(why: str) -> ModelfileError:
        return ModelfileError(f"PARAMETER {name} {raw!r}: {why}", line or None, source)

    if name in INT_PARAMETERS:
        if not _INT.fullmatch(raw) or not -(2**63) <= int(raw) < 2**63:
            raise fail("not an integer (Ollama reads it with strconv.ParseInt, base 10)")
        return int(raw)
    if name in FLOAT_PARAMETERS:
        value = _go_float(raw)
        if value is None:
            raise fail("not a number Ollama can read as a float32")
        return value
    if name in BOOL_PARAMETERS:
        if raw not in _BOOLS:
            raise fail("not a boolean (true or false)")
        return _BOOLS[raw]
    if name in LIST_PARAMETERS:
        return raw
    hint = f" (did you mean {name.lower()}?)" if name.lower() in PARAMETERS else ""
    raise ModelfileError(f"unknown PARAMETER {name!r}{hint}; Ollama knows "
                         f"{', '.join(sorted(PARAMETERS))}", line or None, source)


def _check_instruction(item: Instruction, source: str) -> list[str]:
    """The checks `ollama create` makes after parsing; returns warnings."""
    if item.command == "PARAMETER":
        if item.key in DEPRECATED_PARAMETERS:
            return [f"line {item.line}: PARAMETER {item.key} is deprecated; Ollama ignores it"]
        parse_parameter(item.key, item.value, item.line, source)
    elif item.command == "REQUIRES":
        version = item.value if item.value.startswith("v") else "v" + item.value
        if not _SEMVER.fullmatch(version):
            raise ModelfileError(f"REQUIRES must be a version such as 0.14.0, not "
                                 f"{item.value!r}", item.line or None, source)
    return []


def format_parameter(name: str, value: object) -> str:
    """A typed value written so that Ollama reads it back as that type and value."""
    if name in INT_PARAMETERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelfileError(f"PARAMETER {name} needs an integer, not {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise ModelfileError(f"PARAMETER {name} needs an integer, not {value!r}")
        return str(int(value))
    if name in FLOAT_PARAMETERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelfileError(f"PARAMETER {name} needs a number, not {value!r}")
        return str(value) if isinstance(value, int) else repr(float(value))
    if name in BOOL_PARAMETERS:
        if not isinstance(value, bool):
            raise ModelfileError(f"PARAMETER {name} needs true or false, not {value!r}")
        return "true" if value else "false"
    if name in LIST_PARAMETERS:
        if not isinstance(value, str):
            raise ModelfileError(f"PARAMETER {name} needs a string, not {value!r}")
        return value
    parse_parameter(name, str(value))  # raises: unknown name
    return str(value)


# ---------------------------------------------------------------------------- building


def build_modelfile(*, model: str, template: str | None = None, system: str | None = None,
                    parameters: Mapping[str, object] | None = None,
                    messages: Iterable[tuple[str, str]] = (), licenses: Iterable[str] = (),
                    comments: Sequence[str] = ()) -> Modelfile:
    """A Modelfile from typed parts; a list value (stop) becomes one line per item."""
    items = [Instruction("FROM", model, comments=tuple(comments))]
    if template is not None:
        items.append(Instruction("TEMPLATE", template))
    if system is not None:
        items.append(Instruction("SYSTEM", system))
    for name, value in (parameters or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        items.extend(Instruction("PARAMETER", format_parameter(name, v), name) for v in values)
    items.extend(Instruction("MESSAGE", content, role) for role, content in messages)
    items.extend(Instruction("LICENSE", text) for text in licenses)
    return Modelfile(tuple(items))


# ---------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class WrittenModelfile:
    text: str
    warnings: tuple[str, ...]


def _label(item: Instruction) -> str:
    return f"{item.command} {item.key}".strip()


def _check_triple_quoted(item: Instruction) -> None:
    """Refuse a value with a line that would close the triple quotes early: Ollama ends
    the value at the first line whose trimmed text ends with three double quotes."""
    lines = item.value.split("\n")
    for number, text in enumerate(lines[:-1], start=1):
        if text.rstrip(" \t").endswith('"""'):
            raise ModelfileError(
                f"{_label(item)}: line {number} of the value ends with three double quotes "
                '("""), which Ollama reads as the end of the value; reword that line '
                "(e.g. put a character after the quotes)")


def _encode_value(item: Instruction) -> str:
    """The value as written: always triple-quoted for prose, else the plainest form that
    Ollama reads back unchanged."""
    if item.command in ALWAYS_TRIPLE_QUOTED:
        _check_triple_quoted(item)
        return f'"""{item.value}"""'
    value = item.value
    forms = [f'"""{value}"""'] if "\n" in value else [value, f'"{value}"', f'"""{value}"""']
    for form in forms:
        if _reads_back(item, form):
            return form
    raise ModelfileError(f"{_label(item)} {value!r}: no quoting makes Ollama read this "
                         "value back unchanged")


def _reads_back(item: Instruction, form: str) -> bool:
    try:
        parsed = parse_modelfile(f"FROM x\n{_head(item)} {form}\n")
    except ModelfileError:
        return False
    return parsed.instructions[-1].value == item.value


def _head(item: Instruction) -> str:
    return f"{item.command} {item.key}" if item.key else item.command


def _normalised(item: Instruction) -> tuple[Instruction, list[str]]:
    value, notes = normalise_text(item.value)
    if item.command == "PARAMETER" and item.key not in DEPRECATED_PARAMETERS:
        parse_parameter(item.key, value)  # unknown names and mistyped values raise
    if item.command == "MESSAGE" and item.key not in ROLES:
        raise ModelfileError(f"MESSAGE role must be system, user or assistant, not {item.key!r}")
    if item.command not in COMMANDS:
        raise ModelfileError(f"unknown command {item.command!r}")
    warnings = [f"{_label(item)}: Ollama drops characters Go's strconv.IsPrint rejects; "
                f"{note}" for note in notes]
    return replace(item, value=value), warnings


def _comment_lines(comments: Iterable[str]) -> list[str]:
    lines = []
    for text in comments:
        if "\n" in text or "\r" in text:
            raise ModelfileError(f"a comment cannot hold a line break: {text!r}")
        lines.append(f"#{text}")
    return lines


def _separated(previous: Instruction | None, item: Instruction) -> bool:
    """Blank line before `item`? Not between a run of PARAMETERs (or MESSAGEs)."""
    if previous is None:
        return False
    grouped = item.command == previous.command and item.command in ("PARAMETER", "MESSAGE")
    return not grouped or bool(item.comments)


def render_modelfile(modelfile: Modelfile) -> WrittenModelfile:
    """The canonical text of a Modelfile (LF only), with the normalisations it made."""
    if not any(i.command == "FROM" for i in modelfile.instructions):
        raise ModelfileError("no FROM instruction (Ollama requires one)")
    lines: list[str] = []
    warnings: list[str] = []
    written: list[Instruction] = []
    previous = None
    for item in modelfile.instructions:
        clean, notes = _normalised(item)
        warnings.extend(notes)
        if _separated(previous, clean):
            lines.append("")
        lines.extend(_comment_lines(clean.comments))
        lines.append(f"{_head(clean)} {_encode_value(clean)}")
        written.append(clean)
        previous = clean
    if modelfile.trailing_comments:
        lines.extend(["", *_comment_lines(modelfile.trailing_comments)])
    text = "\n".join(lines) + "\n"
    _verify(text, written)
    return WrittenModelfile(text, tuple(warnings))


def _verify(text: str, written: list[Instruction]) -> None:
    """Backstop: the text must read back as exactly what we meant to write."""
    parsed = parse_modelfile(text)
    got = [(i.command, i.key, i.value) for i in parsed.instructions]
    want = [(i.command, i.key, i.value) for i in written]
    if got != want:
        raise ModelfileError("refusing to write a Modelfile Ollama would read differently "
                             f"(first difference: {_first_difference(got, want)})")


def _first_difference(got: list, want: list) -> str:
    for a, b in zip(got, want, strict=False):
        if a != b:
            return f"{b[0]} {b[1]}".strip()
    return "instruction count"


def write_modelfile(modelfile: Modelfile) -> str:
    """Canonical text; normalisations are logged as warnings (render_modelfile returns
    them)."""
    written = render_modelfile(modelfile)
    for warning in written.warnings:
        log.warning("%s", warning)
    return written.text


def retarget_modelfile(source: Modelfile | Path, target: Path,
                       gguf_file: str) -> tuple[str, ...]:
    """Write `source` (parsed already, or a path to read) to `target` with
    `FROM ./gguf_file` (Ollama takes a FROM path that does not exist for a model name,
    silently, so it must name the file next to it). Returns the writer's warnings."""
    if isinstance(source, Path):
        source = read_modelfile(source)
    written = render_modelfile(source.with_from(f"./{gguf_file}"))
    for warning in written.warnings:
        log.warning("%s: %s", target, warning)
    target.write_text(written.text, encoding="utf-8", newline="\n")
    return written.warnings
