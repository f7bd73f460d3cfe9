"""Fuzzing the two files a clinic's server setup reads: the API key file (any bytes, a
real key with bytes flipped, inserted or cut) and the certificate authority file (a real
PEM certificate damaged the same way). The property (tests/tools/fuzzing.py): read, or
refused with one line naming the file, exit 2; never another exception, never a hang. A
key that is read is one an HTTP header can carry: the first request cannot fail on it.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.engine.credentials import Secret, read_key_file
from app.engine.server_client import tls_context
from tests.loopback import self_signed_certificate
from tests.tools.fuzzing import fuzz_settings, mutated_bytes, refused_or_read

KEY = b"sk-amicus-0123456789abcdefABCDEF\n"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> bytes:
    cert, _key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    return cert.read_bytes()


@fuzz_settings(60)
@given(data=st.one_of(mutated_bytes(KEY), st.binary(max_size=64),
                      st.text(max_size=40).map(lambda text: text.encode("utf-8"))))
def test_any_key_file_is_read_or_refused(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("key") / "api-key"
    path.write_bytes(data)
    path.chmod(0o600)
    result = refused_or_read(lambda: read_key_file(path), names=str(path))
    if isinstance(result, Secret):
        key = result.reveal()
        assert key and all("!" <= c <= "~" for c in key), repr(key)
        assert f"Bearer {key}".encode("latin-1")  # what http.client sends


@fuzz_settings(40)
@given(data=st.data())
def test_any_certificate_file_is_loaded_or_refused(tmp_path_factory, certificate, data):
    blob = data.draw(mutated_bytes(certificate, hot=64))
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(blob)
    refused_or_read(lambda: tls_context(path), names=str(path))
