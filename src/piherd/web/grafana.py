"""The Grafana dashboard piherd ships (piherd/data/grafana/piherd.json) and the PromQL in it.

`dashboard_text()` is the JSON to import into Grafana; `queries()` lists every PromQL
expression it runs (panel targets and template variables), and `metric_names()` the
series an expression reads, so a test can prove that each one exists in a Prometheus
scraping a piherd cluster. The expression parser is deliberately small: it reads the
PromQL piherd writes (selectors, functions, `by`/`without`, binary operators), which is
all this file holds; Grafana and Prometheus have no Python library for it.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

PATH_IN_PACKAGE = ("data", "grafana", "piherd.json")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_NAME = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
    | {"group_left", "group_right", "atan2"}
)
_LABEL_VALUES = re.compile(r"label_values\((?:(?P<selector>.*),)?\s*(?P<label>\w+)\s*\)")


def dashboard_text() -> str:
    """The dashboard JSON as shipped."""
    folder = resources.files("piherd")
    for part in PATH_IN_PACKAGE:
        folder = folder / part
    return folder.read_text(encoding="utf-8")


def _walk(value: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        found.append(value)
        for child in value.values():
            found += _walk(child)
    elif isinstance(value, list):
        for child in value:
            found += _walk(child)
    return found


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: targets' `expr`, variables' queries."""
    targets = _walk(dashboard.get("panels", []))
    found = [t["expr"] for t in targets if isinstance(t.get("expr"), str)]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and isinstance(text, str):
            match = _LABEL_VALUES.fullmatch(text.strip())
            found.append(match["selector"].strip() if match and match["selector"] else text)
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` reads (functions, keywords, labels and numbers left out)."""
    text = _STRING.sub('""', expr)
    while _BRACES.search(text):
        text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", _GROUPING.sub(" ", _VARIABLE.sub(" ", text)))
    names = set()
    for match in _NAME.finditer(text):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def load() -> dict[str, Any]:
    """The shipped dashboard, parsed."""
    value = json.loads(dashboard_text())
    if not isinstance(value, dict):
        raise ValueError("the shipped Grafana dashboard is not a JSON object")
    return value
