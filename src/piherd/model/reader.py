"""Typed, problem-collecting access to the raw TOML tables of a cluster file."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, TypeVar

from piherd.model.locate import Locator
from piherd.model.problems import Problem

T = TypeVar("T")

_TYPE_NAMES = {
    bool: "true/false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


def _type_of(value: object) -> str:
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


class Reader:
    """Reads values by dotted path, recording a located Problem instead of raising."""

    def __init__(self, locator: Locator, file: str) -> None:
        self.locator = locator
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.locator.line(path), path, message, hint, self.file))

    def table(
        self, parent: dict[str, Any], key: str, path: str, allowed: Iterable[str]
    ) -> dict[str, Any]:
        """The sub-table `key` of `parent` (empty when absent), its unknown keys reported."""
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.problem(path, f"must be a table, not {_type_of(value)}", f"write it as [{path}]")
            return {}
        self.check_keys(value, path, allowed)
        return value

    def array_of_tables(
        self, parent: dict[str, Any], key: str, path: str, allowed: Iterable[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """`[[path]]` entries as (path[i], table), unknown keys and non-tables reported."""
        raw = parent.get(key, [])
        hint = f"write each as [[{path}]]"
        if not isinstance(raw, list):
            self.problem(path, "must be a list of tables", hint)
            return []
        entries = []
        for index, entry in enumerate(raw):
            where = f"{path}[{index}]"
            if not isinstance(entry, dict):
                self.problem(where, "must be a table", hint)
                continue
            self.check_keys(entry, where, allowed)
            entries.append((where, entry))
        return entries

    def check_keys(self, table: dict[str, Any], path: str, allowed: Iterable[str]) -> None:
        allowed = sorted(allowed)
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = (
                    f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
                )
                where = f"{path}.{key}" if path else key
                self.problem(where, f"unknown key {key!r}", hint)

    def get(self, table: dict[str, Any], path: str, key: str, kind: type[T], default: T) -> T:
        """`table[key]` if it has type `kind` (ints accepted for floats), else `default`."""
        if key not in table:
            return default
        value = table[key]
        if kind is float and type(value) is int:
            return float(value)  # type: ignore[return-value]
        if type(value) is not kind:
            self.problem(
                f"{path}.{key}",
                f"must be {_TYPE_NAMES.get(kind, kind.__name__)}, "
                f"not {_type_of(value)} ({value!r})",
            )
            return default
        return value

    def strings(
        self, table: dict[str, Any], path: str, key: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        """A list of strings (a single string is accepted as a list of one)."""
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        self.problem(
            f"{path}.{key}", f"must be a list of strings, not {value!r}", 'write it as ["a", "b"]'
        )
        return default
