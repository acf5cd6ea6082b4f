"""Problems found in a cluster.toml: where, what, how to fix; and the error carrying them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from piherd.model.escape import printable, shorten

# A problem's message or hint is at most this long: a value is never echoed whole.
_MAX_TEXT = 300


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a cluster file, located as precisely as we can."""

    line: int  # 1-based; 0 when the problem has no single line (e.g. a missing table)
    field: str  # dotted path, e.g. "nodes[2].address" or "network.subnet"
    message: str  # what is wrong
    hint: str = ""  # how to fix it
    file: str = ""

    def __post_init__(self) -> None:
        # The last wall: whatever a rule put in, no control character reaches a terminal.
        for name in ("field", "message", "hint", "file"):
            value = printable(getattr(self, name))
            object.__setattr__(self, name, shorten(value, _MAX_TEXT))

    def render(self) -> str:
        """One or two lines, `file:line: field: message` then the hint."""
        where = self.file or "cluster.toml"
        if self.line:
            where = f"{where}:{self.line}"
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


# Problems shown before the rest is only counted: two lines each, so about one screen.
SCREENFUL = 12


class ConfigError(Exception):
    """A cluster file could not be loaded; carries every problem found, sorted by line."""

    def __init__(self, problems: list[Problem], path: Path | None = None) -> None:
        self.path = path
        self.problems = sorted(problems)
        super().__init__(self.render())

    def render(self, limit: int | None = SCREENFUL) -> str:
        """The problems (the first `limit`, so one screen holds them), then a count."""
        shown = self.problems if limit is None else self.problems[:limit]
        body = "\n".join(p.render() for p in shown)
        n = len(self.problems)
        more = (
            f" ({n - len(shown)} more not shown: `piherd check --json` lists all)"
            if len(shown) < n
            else ""
        )
        return f"{body}\n{n} problem{'s' if n != 1 else ''} found{more}."
