"""A conversation's messages as a tree, and the path through it that the user sees.

Regenerating a reply adds a sibling of that reply; editing a question adds a sibling of that
question (its answers then follow it). Nothing is overwritten, so every earlier version stays
available, and `picked` marks the sibling the conversation follows at each step. What the
model is sent, what the app shows and what an export writes is that path: from the first
message, the picked child at every step (the newest child where none is marked, which is
what a database written before alternatives existed holds: a plain chain).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    id: int
    parent_id: int | None
    picked: bool


def current_path(nodes: Iterable[Node]) -> list[int]:
    """The ids along the picked path, first message first."""
    children = _children(nodes)
    path: list[int] = []
    parent: int | None = None
    while children.get(parent):
        options = children[parent]
        chosen = next((n for n in reversed(options) if n.picked), options[-1])
        if chosen.id in path:  # a cycle can only come from a damaged file: stop there
            break
        path.append(chosen.id)
        parent = chosen.id
    return path


def positions(nodes: Iterable[Node], ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """For each of `ids` that has alternatives: (its 1-based place among them, how many)."""
    listed = list(nodes)
    children = _children(listed)
    by_id = {node.id: node for node in listed}
    found: dict[int, tuple[int, int]] = {}
    for message_id in ids:
        node = by_id.get(message_id)
        if node is None:
            continue
        siblings = [n.id for n in children[node.parent_id]]
        if len(siblings) > 1:
            found[message_id] = (siblings.index(message_id) + 1, len(siblings))
    return found


def _children(nodes: Iterable[Node]) -> dict[int | None, list[Node]]:
    """Children by parent, oldest first (ids grow with time)."""
    children: dict[int | None, list[Node]] = defaultdict(list)
    for node in sorted(nodes, key=lambda n: n.id):
        children[node.parent_id].append(node)
    return children
