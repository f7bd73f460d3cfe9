"""The question asked when a model whose verification FAILED was about to be loaded (an
assistant, or the intent-safety gate): verify it again, remove it, or use it anyway.

A failed verification means its files differ from what its manifest says was produced:
corrupted on the way, or altered. It is never loaded silently; "use anyway" loads it for
this session and every reply it writes says so in its provenance."""

from __future__ import annotations

from app.assistants.registry import UnverifiedModelError
from app.ui.screens.choice_dialog import Choice, ChoiceDialog

VERIFY, REMOVE, USE_ANYWAY, CANCEL = "verify", "remove", "use", "cancel"


def unverified_dialog(error: UnverifiedModelError) -> ChoiceDialog:
    """Dismisses with VERIFY, REMOVE, USE_ANYWAY or CANCEL (Escape)."""
    name = error.model.name
    found = "\n".join(f"- {problem}" for problem in error.problems) or \
        "- its checksums differ from its manifest"
    message = (f"{name}'s files did not match its manifest when it was last verified:\n"
               f"{found}\n\nVerify it again (if the files were repaired or replaced), "
               "remove it from this computer, or use it anyway: every reply it writes will "
               "say so.")
    choices = [Choice(VERIFY, "Verify again", "v", "primary"),
               Choice(REMOVE, "Remove", "r", "error"),
               Choice(USE_ANYWAY, "Use anyway", "u", "warning"),
               Choice(CANCEL, "Cancel", "c")]
    return ChoiceDialog(error.title, message, choices, escape_value=CANCEL)
