"""Unified diffs of file changes, with secrets and binary content never shown."""

from __future__ import annotations

import difflib
import hashlib


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def file_diff(path: str, old: bytes | None, new: bytes, *, secret: bool = False) -> str:
    """A unified diff from `old` (None: absent) to `new`; a one-line note for secrets/binary."""
    if secret:
        return "content changed (secret, not shown)\n"
    try:
        old_text = "" if old is None else old.decode()
        new_text = new.decode()
    except UnicodeDecodeError:
        return "binary content changed\n"
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"{path} (now)",
        tofile=f"{path} (piherd)",
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return text
