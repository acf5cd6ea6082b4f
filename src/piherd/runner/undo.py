"""Commands of the removal change kinds (ops/removals.py) and of writing the node's record."""

from __future__ import annotations

from piherd.facts.record import NodeRecord
from piherd.ops.types import KEEP, PURGE, REMOVE, REMOVE_DIR, Change

RECORD_DIR_MODE = "0700"
# STOP is a systemctl verb (runner/apply.py); these are the rest.
REMOVAL_KINDS = frozenset({REMOVE, REMOVE_DIR, PURGE, KEEP})
APT_PURGE = ["apt-get", "purge", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "--"]


def removal_argv(change: Change) -> list[str] | None:
    """The argv that does a removal change; None for one that only reports (KEEP)."""
    if change.kind == REMOVE:
        return ["rm", "-f", "--", change.target]
    if change.kind == REMOVE_DIR:  # an admin's file inside keeps the directory
        return ["rmdir", "--ignore-fail-on-non-empty", "--", change.target]
    if change.kind == PURGE:
        return [*APT_PURGE, *change.packages]
    if change.kind == KEEP:
        return None
    raise ValueError(f"not a removal: {change.kind}")


def record_to_write(new: NodeRecord | None, now: NodeRecord) -> NodeRecord | None:
    """`new` when the node's record must become it; None when it already says the same."""
    if new is None:
        return None
    if now.problem or new.to_text() != now.to_text():
        return new
    return None
