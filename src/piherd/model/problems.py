"""Problems found in a cluster.toml: where, what, how to fix; and the error carrying them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a cluster file, located as precisely as we can."""

    line: int  # 1-based; 0 when the problem has no single line (e.g. a missing table)
    field: str  # dotted path, e.g. "nodes[2].address" or "network.subnet"
    message: str  # what is wrong
    hint: str = ""  # how to fix it
    file: str = ""

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


class ConfigError(Exception):
    """A cluster file could not be loaded; carries every problem found, sorted by line."""

    def __init__(self, problems: list[Problem], path: Path | None = None) -> None:
        self.path = path
        self.problems = sorted(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """All problems, one block each, followed by a count."""
        body = "\n".join(p.render() for p in self.problems)
        n = len(self.problems)
        return f"{body}\n{n} problem{'s' if n != 1 else ''} found."
