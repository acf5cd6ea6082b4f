"""What discover found, written into cluster.toml: `mac` and `bootstrap_address` of each
node, in its `[[nodes]]` entry (added when the node has none), comments and layout kept.

The new text is checked by loading it before it replaces the file, so a write never
leaves a cluster.toml that piherd refuses; the file is replaced in one rename.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from ipaddress import IPv4Address
from pathlib import Path

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


def replace_text(path: Path, text: str) -> None:
    """Write `text` to `path` in one rename (a temporary file beside it), its mode kept."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
