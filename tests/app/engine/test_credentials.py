"""Where the API key comes from (environment, then a private key file) and that it never
shows when formatted."""

from __future__ import annotations

import os

import pytest

from app.engine.credentials import (
    ApiKeyError,
    KeyFileError,
    Secret,
    load_api_key,
    read_key_file,
)

KEY = "sk-test-abcdef0123456789"


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch):
    for name in ("AMICUS_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _key_file(tmp_path, mode=0o600, text=KEY + "\n"):
    path = tmp_path / "api-key"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_environment_first_then_the_key_file(tmp_path, monkeypatch):
    path = _key_file(tmp_path)
    assert load_api_key(None) is None
    assert load_api_key(path) == Secret(KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    assert load_api_key(path) == Secret("from-openai")
    monkeypatch.setenv("AMICUS_API_KEY", "from-amicus")
    assert load_api_key(path) == Secret("from-amicus")
    monkeypatch.setenv("AMICUS_API_KEY", "  ")  # blank: as if unset
    assert load_api_key(path) == Secret("from-openai")


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused_like_ssh(tmp_path, mode):
    path = _key_file(tmp_path, mode)
    with pytest.raises(KeyFileError, match=r"can be read by other users .*chmod 600") as error:
        read_key_file(path)
    assert KEY not in str(error.value) and error.value.exit_code == 2


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"), ("\n\n", "is empty"), ("x" * 20000, "too large"),
])
def test_unusable_key_files(tmp_path, text, message):
    with pytest.raises(KeyFileError, match=message):
        read_key_file(_key_file(tmp_path, text=text))


def test_missing_key_file_and_a_folder(tmp_path):
    with pytest.raises(KeyFileError, match="no such API key file"):
        read_key_file(tmp_path / "none")
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_key_file(tmp_path)


def test_only_the_first_line_is_the_key(tmp_path):
    assert read_key_file(_key_file(tmp_path, text=f"  {KEY}  \ncomment\n")).reveal() == KEY


def test_a_secret_never_formats_as_its_value():
    secret = Secret(KEY)
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", str([secret])):
        assert KEY not in shown
    assert secret.redact(f"bad key {KEY} given") == "bad key *** given"


@pytest.mark.parametrize("key", ["caf\u00e9", "sk-\u201cquoted\u201d", "a b", "a\x00b", "ab\x7f"])
def test_a_key_a_header_cannot_carry_is_refused_by_position(tmp_path, monkeypatch, key):
    """It would fail inside the first request (a UnicodeEncodeError, or a NUL sent)."""
    with pytest.raises(KeyFileError, match="character an HTTP header cannot carry at "
                                           "position") as error:
        read_key_file(_key_file(tmp_path, text=key + "\n"))
    assert key not in str(error.value) and error.value.exit_code == 2
    if "\x00" in key:
        return  # no environment variable can hold a NUL
    monkeypatch.setenv("AMICUS_API_KEY", key)
    with pytest.raises(ApiKeyError, match=r"^\$AMICUS_API_KEY: the API key has a character"):
        load_api_key(None)


def test_a_key_file_in_another_encoding_is_refused_without_showing_it(tmp_path):
    path = _key_file(tmp_path)
    path.write_bytes("sk-caf\u00e9".encode("latin-1"))
    with pytest.raises(KeyFileError, match=r"not UTF-8 text \(at byte 7\)$") as error:
        read_key_file(path)
    assert "0xe9" not in str(error.value) and "sk-caf" not in str(error.value)
    path.write_bytes(b"\xef\xbb\xbf" + KEY.encode() + b"\r\n")  # Notepad: BOM, CRLF
    assert read_key_file(path) == Secret(KEY)
