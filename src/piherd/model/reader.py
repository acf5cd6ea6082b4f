"""Typed, problem-collecting access to the raw TOML tables of a cluster file."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any, TypeVar

from piherd.model.escape import has_unsafe_char, is_unsafe_char, shown
from piherd.model.locate import Locator
from piherd.model.problems import Problem

T = TypeVar("T")
N = TypeVar("N", int, float)

_FLOAT_INT = 10**300  # an integer read as a float: float() of a larger one overflows
# Tables and lists nested deeper than this are refused (piherd's own go four deep).
MAX_DEPTH = 12

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
        self._refused: set[str] = set()  # fields whose value was refused as unsafe text

    def problem(self, path: str, message: str, hint: str = "") -> None:
        if path in self._refused:
            return  # its value was refused already; what follows from that is noise
        self.problems.append(Problem(self.locator.line(path), path, message, hint, self.file))

    def cleaned(self, data: dict[str, Any]) -> dict[str, Any]:
        """`data` without control characters: each key or string holding one is reported once.

        Every value of the file passes here before anything reads it, so no service ever
        sees a newline, NUL or escape sequence. A bad key is dropped; a bad string loses
        those characters, and later problems of its field are not reported again.
        """
        return self._clean_table(data, "", 0)

    def _refuse(self, path: str, message: str, hint: str) -> None:
        self.problem(path, message, hint)
        self._refused.add(path)

    def _clean_table(self, table: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        result = {}
        for key, value in table.items():
            where = f"{path}.{key}" if path else key
            if has_unsafe_char(key):
                where = f"{path}.{shown(key)}" if path else shown(key)
                self._refuse(
                    where,
                    f"the key {shown(key)} holds a control character",
                    "keys are plain names: letters, digits, '_' and '-'",
                )
                continue
            result[key] = self._clean(value, where, depth + 1)
        return result

    def _clean(self, value: object, path: str, depth: int) -> object:
        if depth > MAX_DEPTH and isinstance(value, dict | list):
            self._refuse(path, f"nested more than {MAX_DEPTH} levels deep", "flatten it")
            return {} if isinstance(value, dict) else []
        if isinstance(value, dict):
            return self._clean_table(value, path, depth)
        if isinstance(value, list):
            tables = all(isinstance(v, dict) for v in value)
            return [
                self._clean(v, f"{path}[{i}]" if tables else path, depth + 1)
                for i, v in enumerate(value)
            ]
        if isinstance(value, str) and has_unsafe_char(value):
            char = next(c for c in value if is_unsafe_char(c))
            self._refuse(
                path,
                f"{shown(value)} holds a control character ({char!r})",
                "values are one line of plain text: no newline, tab, NUL or escape",
            )
            return "".join(c for c in value if not is_unsafe_char(c))
        return value

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
            if abs(value) > _FLOAT_INT:
                self.problem(f"{path}.{key}", f"{shown(value)} is far too large", f"e.g. {default}")
                return default
            return float(value)  # type: ignore[return-value]
        if type(value) is not kind:
            self.problem(
                f"{path}.{key}",
                f"must be {_TYPE_NAMES.get(kind, kind.__name__)}, "
                f"not {_type_of(value)} ({shown(value)})",
            )
            return default
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(
                f"{path}.{key}", f"must be a finite number, not {value}", f"e.g. {default}"
            )
            return default
        return value

    def number(self, table: dict[str, Any], path: str, key: str, default: N, low: N, high: N) -> N:
        """`table[key]` as `get` reads it (the type of `default`), within [low, high].

        A value outside the range is reported and `default` returned, so nothing later
        sees a number no cluster could mean.
        """
        value = self.get(table, path, key, type(default), default)
        if not low <= value <= high:
            self.problem(
                f"{path}.{key}",
                f"must be between {low} and {high}, not {value}",
                f"the default is {default}",
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
            f"{path}.{key}",
            f"must be a list of strings, not {shown(value)}",
            'write it as ["a", "b"]',
        )
        return default
