"""The `render` use case: the exact files `up` writes, and writing them to a directory.

Render uses what earlier `up` runs recorded of the nodes (CPUs and memory for slurm.conf
and the MPI host file, host keys, the admin's ids) through the same RenderContext as
`up`; the cluster's own known_hosts file fills in host keys nothing recorded. When
nothing is recorded yet, the result says so (`RenderedFiles.note`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piherd.app.recorded import load_recorded, recorded_path
from piherd.bundle import watch_service_inputs
from piherd.model import Cluster, fold
from piherd.ops.desired import DesiredState, Remembered
from piherd.render import FileSpec, render_node
from piherd.render.manifest import manifest
from piherd.secrets import load_or_create_secrets
from piherd.services.ssh_keys import host_keys_from_known_hosts

MANIFEST = "manifest.json"


class OutDirRefused(Exception):
    """The output directory holds files that are not an earlier render's."""


@dataclass(frozen=True)
class RenderedFiles:
    """Every selected node's files, and which nodes' hardware was recorded by `up`."""

    files: dict[str, dict[str, FileSpec]]
    record: Path  # where `up` records the nodes' facts
    recorded: bool  # False: no `up` has recorded anything yet
    unrecorded: tuple[str, ...] = ()  # nodes whose hardware is not recorded

    def note(self) -> str | None:
        """What the files hold in place of facts not recorded yet; None when all are."""
        if not self.recorded:
            return (
                f"nothing recorded from the nodes yet (no {self.record}): CPUs and memory "
                "(slurm.conf, MPI slots), host keys and the admin's ids are placeholders "
                "until `piherd up` has reached the nodes"
            )
        if self.unrecorded:
            return (
                f"no hardware recorded for {fold(self.unrecorded)} yet: their CPUs and memory "
                "are placeholders until `piherd up` reaches them"
            )
        return None


def render_files(cluster: Cluster, names: Sequence[str]) -> RenderedFiles:
    """The files of `names` as `up` would write them; SecretsError, RenderError."""
    secrets = load_or_create_secrets(cluster)
    record = load_recorded(cluster)
    known = record or Remembered()
    from_file = _known_host_keys(cluster)
    host_keys = {**from_file, **known.host_keys}  # what the nodes reported wins
    remembered = Remembered(dict(known.hardware), host_keys, known.admin_ids)
    bundle, cluster_toml = watch_service_inputs(cluster)
    build = DesiredState(secrets, remembered, piherd_bundle=bundle, cluster_toml=cluster_toml)
    ctx = build.context(cluster)
    files = {name: render_node(cluster, cluster.node(name), ctx) for name in names}
    missing = tuple(n.name for n in cluster.nodes if n.name not in known.hardware)
    return RenderedFiles(files, recorded_path(cluster), bool(known.hardware), missing)


def _known_host_keys(cluster: Cluster) -> dict[str, tuple[str, ...]]:
    """Host keys from the cluster's own known_hosts file, when it names one."""
    if cluster.known_hosts is None:
        return {}
    try:
        content = cluster.known_hosts.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return host_keys_from_known_hosts(content, cluster)


def write_tree(cluster: Cluster, out: Path, rendered: Mapping[str, Mapping[str, FileSpec]]) -> int:
    """Write out/<node>/<path> and out/manifest.json, each node's tree swapped in whole.

    Returns the number of files written. OutDirRefused when `out` holds files but no
    manifest (not an earlier render); OSError when writing fails.
    """
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise OutDirRefused(
            f"{out} is not empty and holds no {MANIFEST}: refusing to write into it"
        )
    data = manifest(cluster, rendered)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out))
    try:
        for name, files in rendered.items():
            for path, spec in files.items():
                _write_file(staging / name / path.lstrip("/"), spec)
        (staging / MANIFEST).write_text(_merged_manifest(out / MANIFEST, data))
        for name in rendered:
            if (out / name).exists():
                shutil.rmtree(out / name)
            (staging / name).rename(out / name)
        os.replace(staging / MANIFEST, out / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sum(len(files) for files in rendered.values())


def _write_file(target: Path, spec: FileSpec) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(spec.content)
    os.chmod(target, 0o600 if spec.secret else spec.mode & 0o755)


def _merged_manifest(old: Path, data: dict[str, Any]) -> str:
    """The new manifest, keeping the entries of nodes this render did not touch."""
    previous = json.loads(old.read_text()) if old.exists() else {}
    merged = {**previous.get("nodes", {}), **data["nodes"]}
    return json.dumps({**data, "nodes": dict(sorted(merged.items()))}, indent=2) + "\n"
