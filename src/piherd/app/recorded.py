"""What earlier `up` runs recorded of the nodes (hardware, host keys, admin ids), on disk.

The record lives in the cluster's secrets directory (0700), next to the keys it belongs
with; `up` writes it after every real run, and `up` and `render` read it.
"""

from __future__ import annotations

from pathlib import Path

from piherd.model import Cluster
from piherd.ops.desired import Remembered
from piherd.secrets import RECORDED_FILE


def recorded_path(cluster: Cluster) -> Path:
    """Where the record of `cluster` is kept."""
    return Path(cluster.secrets_dir) / RECORDED_FILE


def load_recorded(cluster: Cluster) -> Remembered | None:
    """The record, or None when no `up` has written one yet."""
    path = recorded_path(cluster)
    if not path.exists():
        return None
    return Remembered.from_json(path.read_text())


def save_recorded(cluster: Cluster, recorded: Remembered) -> None:
    """Write the record atomically (temp file, then rename)."""
    path = recorded_path(cluster)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(recorded.to_json())
    tmp.replace(path)
