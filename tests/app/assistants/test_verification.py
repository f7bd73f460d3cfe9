"""A model whose verification FAILED is not loaded silently: refused with one line that
says what to do, unless the user chooses to use it anyway, which its answers record."""

from __future__ import annotations

import pytest

from app.assistants.registry import (
    UnverifiedModelError,
    check_verified,
    find_model,
    remove_model,
    verify_model,
)
from app.assistants.runtime import open_assistant
from app.engine.server_client import ServerTarget
from app.errors import describe
from tests.app.assistants.conftest import corrupt


def test_only_a_failed_verification_stops_a_model(installed):
    model = installed("general")
    assert not check_verified(model)  # never verified: loads, its provenance says so
    assert verify_model(model) == []
    assert not check_verified(model)
    corrupt(model)
    assert model.checksum_status() == "changed"
    assert not check_verified(model)  # changed since: loads, provenance says "changed"
    problems = verify_model(model)
    assert problems and model.checksum_status() == "FAILED"
    assert model.verification_problems() == problems
    with pytest.raises(UnverifiedModelError) as caught:
        check_verified(model)
    assert check_verified(model, allow_unverified=True) is True
    failure = describe(caught.value)
    assert failure.exit_code == 2 and failure.title == "The model failed verification"
    assert "general" in failure.line and "sha256 differs" in failure.line
    assert "--allow-unverified" in failure.line and "amicus models verify general" in \
        failure.line
    assert caught.value.model.name == "general" and caught.value.problems == problems


def test_the_dialogs_three_ways_out(installed):
    """What the app's dialog calls: verify again, remove, or use anyway."""
    model = installed("moral-audit")
    root = model.directory.parent
    verify_model(model)
    corrupt(model)
    verify_model(model)
    with pytest.raises(UnverifiedModelError):
        open_assistant("moral-audit", server=ServerTarget("http://127.0.0.1:9"), root=root)
    anyway = open_assistant("moral-audit", server=ServerTarget("http://127.0.0.1:9"), root=root,
                            allow_unverified=True)
    record = anyway.provenance()
    assert anyway.used_anyway and record.model.used_anyway
    assert record.model.verification == "FAILED"
    corrupt(model)  # the original bytes back: verifying again clears it
    assert verify_model(find_model("moral-audit", root)) == []
    again = open_assistant("moral-audit", server=ServerTarget("http://127.0.0.1:9"), root=root)
    assert not again.used_anyway and again.provenance().model.verification == "verified"
    remove_model(model)
    assert not model.directory.exists()
