"""Textual bindings built from the action table (app.ui.keymap), each with its id so the
config's [keymap] can move it to other keys."""

from __future__ import annotations

from textual.binding import Binding, BindingType

from app.ui.keymap import Scope, actions


def bindings(scope: Scope) -> list[BindingType]:
    return [Binding(spec.keys, spec.action, spec.title, show=spec.footer, id=spec.id,
                    priority=spec.priority, tooltip=spec.help)
            for spec in actions(scope)]
