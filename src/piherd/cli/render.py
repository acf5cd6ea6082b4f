"""`piherd render`: write (or summarise) the exact files every node must hold."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from piherd.app.exact_files import MANIFEST, OutDirRefused, render_files, write_tree
from piherd.cli.common import cluster_file_option, fail, load_cluster, select_nodes
from piherd.model import Cluster, fold
from piherd.render import FileSpec, RenderError
from piherd.secrets import ForeignSecretsDir, SecretsError


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

    The files are the ones `piherd up` writes: CPUs, memory, host keys and the
    admin's ids come from what earlier `up` runs recorded of the nodes (a note on
    stderr says when nothing is recorded yet). Without --out, print a summary: one
    row per kind of node, alike nodes folded (node[002-999]). Secret files (the munge
    key, the storage key) are written with mode 0600 and never printed; the manifest
    holds their sha256 only. The cluster's secrets are created on first use in its
    secrets_dir.
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "render")
    try:
        result = render_files(cluster, names)
    except ForeignSecretsDir as exc:
        fail(f"piherd render: {exc}")
    except SecretsError as exc:
        fail(str(exc), 1)
    except RenderError as exc:
        fail(f"{cluster_file}: cannot render: {exc}")
    note = result.note()
    if note is not None:
        click.echo(f"piherd render: {note}", err=True)
    if out is None:
        _summary(cluster, result.files)
        return
    try:
        total = write_tree(cluster, out, result.files)
    except OutDirRefused as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {out}: {exc}", 1)
    click.echo(f"{out}: {total} files for {len(result.files)} nodes, manifest in {out / MANIFEST}")


def _summary(cluster: Cluster, rendered: dict[str, dict[str, FileSpec]]) -> None:
    """One row per kind of node: nodes whose rows would read the same share one, under
    their folded node set (`node[002-999]`), so 10,000 workers make one row, not 10,000."""
    rows: dict[tuple[str, ...], list[str]] = {}
    for name, files in rendered.items():
        units = sorted({u for s in files.values() for u in (*s.restarts, *s.reloads)})
        row = (
            cluster.node(name).role,
            str(len(files)),
            str(sum(s.secret for s in files.values())),
            ", ".join(units),
        )
        rows.setdefault(row, []).append(name)
    table = Table(title=f"piherd render: cluster {cluster.name}")
    for column in ("nodes", "role", "files", "secret", "restarts on change"):
        table.add_column(column)
    for cells, names in rows.items():
        table.add_row(fold(names), *cells)
    Console().print(table)
