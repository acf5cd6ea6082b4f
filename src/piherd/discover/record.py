"""What discover found, written into cluster.toml: `mac` and `bootstrap_address` of each
node, in its `[[nodes]]` entry (added when the node has none), comments and layout kept.

Pure text in, text out; app/discovery.py checks the new text by loading it before it
replaces the file (model/writefile.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import IPv4Address

import tomlkit
from tomlkit.items import AoT, Array, Table

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
FIELDS = ("mac", "bootstrap_address")


class RecordError(Exception):
    """cluster.toml cannot take what was found (its [[nodes]] is not a list of tables)."""


def _checked(node: str, values: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        if key == "mac" and not _MAC.fullmatch(value):
            raise RecordError(f"{node}: {value!r} is not a MAC address")
        if key == "bootstrap_address":
            value = str(IPv4Address(value))  # ValueError for anything else
        if key not in FIELDS:
            raise RecordError(f"{node}: discover does not write {key!r}")
        out[key] = value
    return out


def with_found(text: str, found: Mapping[str, Mapping[str, str]]) -> str:
    """`text` (a cluster.toml) with each node's found values set; the rest untouched."""
    doc = tomlkit.parse(text)
    nodes = doc.get("nodes")
    if nodes is None:
        nodes = tomlkit.aot()
        doc.append("nodes", nodes)
    if not isinstance(nodes, AoT | Array):
        raise RecordError("nodes must be a list of [[nodes]] tables")
    entries = {str(entry.get("name")): entry for entry in nodes if isinstance(entry, dict)}
    for name, values in found.items():
        entry = entries.get(name)
        if entry is None:
            entry = tomlkit.table() if isinstance(nodes, AoT) else tomlkit.inline_table()
            entry["name"] = name
            nodes.append(entry)
            entry = nodes[-1]
            entries[name] = entry
        if not isinstance(entry, Table | dict):
            raise RecordError(f"the [[nodes]] entry of {name} is not a table")
        for key, value in _checked(name, values).items():
            entry[key] = value
    return tomlkit.dumps(doc)
