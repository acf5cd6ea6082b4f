"""Find the line of a dotted key in TOML text, so errors can point at it.

tomllib gives values but no positions, and tomlkit's positions are not public API,
so we scan the text ourselves: table headers, array-of-table headers and `key =`
lines (dotted keys included) are enough for the flat files piherd reads.
"""

from __future__ import annotations

import re

_PART = r'(?:[A-Za-z0-9_\-]+|"[^"\n]*"|\'[^\'\n]*\')'
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")
_SPLIT = re.compile(_PART)
_MAX_PARTS = 16  # tables implied by one dotted path, recorded (deeper ones are refused)


def _name(dotted: str) -> str:
    return ".".join(p.strip("\"'") for p in _SPLIT.findall(dotted))


class Locator:
    """Maps dotted paths like `nodes[1].address` or `services.slurm` to 1-based lines."""

    def __init__(self, text: str) -> None:
        self._lines: dict[str, int] = {}
        table = ""
        counters: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                name = _name(header.group(2))
                if header.group(1) == "[[":
                    index = counters.get(name, 0)
                    counters[name] = index + 1
                    table = f"{name}[{index}]"
                else:
                    table = name
                self._add(table, number)
                continue
            key = _KEY.match(line)
            if key:
                name = _name(key.group(1))
                self._add(f"{table}.{name}" if table else name, number)

    def _add(self, path: str, number: int) -> None:
        """Record `path` and the tables it implies (`a` and `a.b` for `a.b.c`).

        Only the first _MAX_PARTS of them: a key dotted 20,000 times would otherwise cost
        seconds, and nothing deeper is ever looked up (the reader refuses it).
        """
        self._lines.setdefault(path, number)
        cut = path.find(".")
        for _ in range(_MAX_PARTS):
            if cut < 0:
                break
            self._lines.setdefault(path[:cut], number)
            cut = path.find(".", cut + 1)

    def line(self, path: str) -> int:
        """Line of `path`, or of its nearest enclosing table; 0 when unknown."""
        while path:
            if path in self._lines:
                return self._lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                break
            path = path[:cut]
        return self._lines.get(path, 0)
