"""Showing untrusted text safely: control characters escaped, huge values shortened."""

from __future__ import annotations

import unicodedata

# Unicode categories that must never reach a file line or a terminal raw: controls (NUL,
# "\n", "\r", ESC, DEL, C1), format characters (bidi overrides, zero-width), line and
# paragraph separators (str.splitlines splits on them), surrogates (undecodable argv bytes).
_UNSAFE = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))
SHOWN_CHARS = 60  # a value in an error message: at most this many characters of it


def is_unsafe_char(char: str) -> bool:
    """True for a control, format or separator character, or a lone surrogate."""
    return unicodedata.category(char) in _UNSAFE


def has_unsafe_char(text: str) -> bool:
    """True when `text` holds a character that `is_unsafe_char`."""
    return not text.isprintable() and any(is_unsafe_char(c) for c in text)


def printable(text: str) -> str:
    """`text` with every unsafe character written as a Python escape (`\\n`, `\\x1b`)."""
    if not has_unsafe_char(text):
        return text
    return "".join(repr(c)[1:-1] if is_unsafe_char(c) else c for c in text)


def shorten(text: str, limit: int) -> str:
    """`text`, or its start and end around `...N characters...` when longer than `limit`."""
    if len(text) <= limit:
        return text
    keep = max(limit // 2 - 12, 4)
    return f"{text[:keep]}...{len(text) - 2 * keep} characters...{text[-keep:]}"


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """`repr(value)` for an error message: escaped, and shortened when huge.

    Long strings and containers are cut before `repr`, so a million items cost nothing.
    """
    if isinstance(value, list | tuple | dict | set) and len(value) > limit:
        return f"<a {type(value).__name__} of {len(value)} items>"
    if isinstance(value, str):
        return printable(repr(shorten(value, limit)))
    return shorten(printable(repr(value)), limit)
