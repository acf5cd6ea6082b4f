"""`piherd render`: write (or summarise) the exact files every node must hold."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from piherd.bundle import watch_service_inputs
from piherd.cli.common import cluster_file_option, fail, load_cluster, select_nodes
from piherd.model import Cluster
from piherd.render import FileSpec, RenderError, render_node
from piherd.render.manifest import manifest
from piherd.secrets import SecretsError, load_or_create_secrets, render_context
from piherd.services.ssh import host_keys_from_known_hosts

MANIFEST = "manifest.json"


@click.command("render")
@cluster_file_option
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write DIR/<node>/<path> for every file, and DIR/manifest.json.",
)
@click.argument("nodeset", required=False, default="@all")
def command(cluster_file: Path, out: Path | None, nodeset: str) -> None:
    """Render the files of NODESET (default @all) from the cluster file.

    Without --out, print a summary per node. Secret files (the munge key, the
    storage key) are written with mode 0600 and never printed; the manifest
    holds their sha256 only. The cluster's secrets are created on first use in
    its secrets_dir.
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "render")
    try:
        secrets = load_or_create_secrets(cluster)
    except SecretsError as exc:
        fail(str(exc), 1)
    bundle, cluster_toml = watch_service_inputs(cluster)
    ctx = render_context(
        secrets,
        host_keys=_known_host_keys(cluster),
        piherd_bundle=bundle,
        cluster_toml=cluster_toml,
    )
    try:
        rendered = {name: render_node(cluster, cluster.node(name), ctx) for name in names}
    except RenderError as exc:
        fail(f"{cluster_file}: cannot render: {exc}")
    if out is None:
        _summary(cluster, rendered)
        return
    try:
        _write(out, rendered, manifest(cluster, rendered))
    except OSError as exc:
        fail(f"cannot write {out}: {exc}", 1)
    total = sum(len(files) for files in rendered.values())
    click.echo(f"{out}: {total} files for {len(rendered)} nodes, manifest in {out / MANIFEST}")


def _known_host_keys(cluster: Cluster) -> dict[str, tuple[str, ...]]:
    """Host keys from the cluster's own known_hosts file, when it names one."""
    if cluster.known_hosts is None:
        return {}
    try:
        content = cluster.known_hosts.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return host_keys_from_known_hosts(content, cluster)


def _summary(cluster: Cluster, rendered: dict[str, dict[str, FileSpec]]) -> None:
    table = Table(title=f"piherd render: cluster {cluster.name}")
    for column in ("node", "role", "files", "secret", "restarts on change"):
        table.add_column(column)
    for name, files in rendered.items():
        units = sorted({u for s in files.values() for u in (*s.restarts, *s.reloads)})
        table.add_row(
            name,
            cluster.node(name).role,
            str(len(files)),
            str(sum(s.secret for s in files.values())),
            ", ".join(units),
        )
    Console().print(table)


def _write(out: Path, rendered: dict[str, dict[str, FileSpec]], data: dict[str, Any]) -> None:
    """Write into `out` atomically per node: a full tree in a temp dir, then renamed into place."""
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        fail(f"{out} is not empty and holds no {MANIFEST}: refusing to write into it")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out))
    try:
        for name, files in rendered.items():
            for path, spec in files.items():
                target = staging / name / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(spec.content)
                os.chmod(target, 0o600 if spec.secret else spec.mode & 0o755)
        old = out / MANIFEST
        previous = json.loads(old.read_text()) if old.exists() else {}
        merged = {**previous.get("nodes", {}), **data["nodes"]}
        (staging / MANIFEST).write_text(
            json.dumps({**data, "nodes": dict(sorted(merged.items()))}, indent=2) + "\n"
        )
        for name in rendered:
            if (out / name).exists():
                shutil.rmtree(out / name)
            (staging / name).rename(out / name)
        os.replace(staging / MANIFEST, out / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
