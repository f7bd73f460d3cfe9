"""What every fuzz test of a reader holds the code to, and the mutations it feeds it.

The property (the error contract of converters.errors / app.errors): reading outside data
either succeeds or raises the documented bad-input error, an AmicusError that app.errors
describes as exit 2 on one line naming the file; never another exception, never a hang
(each case runs under a time limit), never a partly written output.

Mutations start from real-shaped files the tests build (converters.synthetic), so most
cases get past the first check and reach the deeper ones: JSON documents are mutated by
path (a value replaced by any JSON value, a key dropped or added), binary files byte-wise
(truncated, bytes flipped, spans overwritten, inserted or repeated).

`make test` runs each fuzz test with a fixed, small number of cases (derandomized: the same
cases every run, so the suite's time is bounded and a failure reproduces). AMICUS_FUZZ_LONG=1
runs FUZZ_LONG_FACTOR times as many, randomly drawn, with hypothesis' example database.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from app.errors import describe
from converters.errors import AmicusError

LONG = os.environ.get("AMICUS_FUZZ_LONG", "") not in ("", "0")
FUZZ_LONG_FACTOR = 25
CASE_SECONDS = 20.0  # a reader that needs longer on a file of a few MB is hanging

T = TypeVar("T")


def fuzz_settings(examples: int) -> settings:
    """`examples` cases in `make test`; FUZZ_LONG_FACTOR times more, random, when LONG."""
    return settings(
        max_examples=examples * (FUZZ_LONG_FACTOR if LONG else 1),
        deadline=None,  # a shared 2-core machine: time is bounded by CASE_SECONDS instead
        derandomize=not LONG,
        database=settings.default.database if LONG else None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture,
                               HealthCheck.filter_too_much],
        print_blob=True,
    )


class Hang(AssertionError):
    """A case ran past CASE_SECONDS."""


@contextlib.contextmanager
def time_limit(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Fail the case (Hang) when the block runs longer than `seconds` (main thread only)."""
    def expired(_signum: int, _frame: object) -> None:
        raise Hang(f"the case ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def refused_or_read(read: Callable[[], T], *, names: str | None = None,
                    seconds: float = CASE_SECONDS) -> T | AmicusError:
    """Run `read`; return its result, or the AmicusError it raised once checked against
    the contract (exit 2, one line, naming `names`). Anything else propagates: a finding."""
    with time_limit(seconds):
        try:
            return read()
        except AmicusError as exc:
            check_refusal(exc, names)
            return exc


def check_refusal(exc: AmicusError, names: str | None) -> None:
    """Exit 2, not a bug, one line that says something (a newline inside a name taken from
    the damaged file is folded by app.errors like any other)."""
    failure = describe(exc)
    assert (failure.exit_code, failure.internal) == (2, False), failure
    assert failure.line.strip() and "\n" not in failure.line, failure
    if names is not None:
        assert names in str(exc), f"the refusal does not name {names!r}: {exc}"


# ---------------------------------------------------------------------------- JSON

# Values that break readers: wrong types, out-of-range and non-finite numbers, huge ints.
_AWKWARD_NUMBERS = st.sampled_from([0, -1, 1, 2, 3, 7, 2**31 - 1, 2**31, 2**32, 2**53 + 1,
                                    2**63, 2**64, 10**30, -(2**63), 0.5, -0.0, 1e-300, 1e308,
                                    float("nan"), float("inf"), float("-inf")])
JSON_SCALARS = (st.none() | st.booleans() | _AWKWARD_NUMBERS
                | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def json_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into `doc` (the root included), keys and list indexes."""
    paths = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths += json_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc[:64]):  # a vocabulary list: its head is enough
            paths += json_paths(value, (*prefix, index))
    return paths


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any, *, focus: tuple[str, ...] = (),
                 max_mutations: int = 3) -> Any:
    """A copy of `doc` with 1..max_mutations mutations; paths through a key in `focus`
    (the fields a reader uses) are drawn more often."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = json_paths(doc)
        focused = [p for p in paths if any(k in p for k in focus)]
        path = draw(st.sampled_from(focused if focused and draw(st.booleans()) else paths))
        doc = _mutate_at(draw, doc, path)
    return doc


def _mutate_at(draw: st.DrawFn, doc: Any, path: tuple[Any, ...]) -> Any:
    value = draw(JSON_VALUES)
    if not path:
        return value if draw(st.booleans()) else doc
    parent = _parent(doc, path)
    op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if op == "replace":
        parent[path[-1]] = value
    elif op == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = value
    else:
        parent.insert(path[-1], value)
    return doc


def dump_json(doc: Any) -> bytes:
    """JSON as Python writes it (NaN and Infinity included, as Python's reader accepts)."""
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------- bytes


@st.composite
def mutated_bytes(draw: st.DrawFn, blob: bytes, *, hot: int = 0,
                  max_mutations: int = 3) -> bytes:
    """`blob` truncated, with bytes flipped, spans overwritten, inserted or repeated.
    Positions below `hot` (a header) are drawn half the time."""
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, max_mutations))):
        size = len(data)
        if size == 0:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        limit = min(hot, size) if hot and draw(st.booleans()) else size
        at = draw(st.integers(0, max(0, limit - 1)))
        op = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "repeat",
                                   "delete"]))
        if op == "truncate":
            del data[at:]
        elif op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(patch)] = patch
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
        else:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)
