"""`piherd groups`: export the cluster's node groups for other tools.

`--clustershell` writes a groups.d YAML source (named after the cluster) that `clush -g`
and `nodeset` read; `--ansible` writes an Ansible INI inventory with each node's address
and the cluster's SSH settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from pathlib import Path

import click

from piherd.app.ssh_access import AccessError, AccessPaths, install_clustershell, write_ssh_config
from piherd.cli.common import cluster_file_option, fail, load_cluster
from piherd.model import Cluster, fold


def clustershell_yaml(cluster: Cluster) -> str:
    """A ClusterShell groups.d YAML file: one source (the cluster's name), every group."""
    lines = [
        "# ClusterShell node groups of cluster "
        f"{cluster.name}, written by `piherd groups --clustershell`.",
        f"{json.dumps(cluster.name)}:",
    ]
    for group in sorted(cluster.groups):
        members = cluster.groups[group]
        if members:
            lines.append(f"    {json.dumps(group)}: {json.dumps(fold(members))}")
    return "\n".join(lines) + "\n"


def _ansible_group(name: str) -> str:
    # Ansible group names must be identifiers.
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def ansible_inventory(cluster: Cluster) -> str:
    """An Ansible INI inventory: a section per group, ansible_host per node, SSH settings."""
    lines = [
        f"# Ansible inventory of cluster {cluster.name}, written by `piherd groups --ansible`."
    ]
    for group in sorted(g for g in cluster.groups if g != "all"):
        members = cluster.groups[group]
        if not members:
            continue
        lines.append(f"\n[{_ansible_group(group)}]")
        lines.extend(f"{name} ansible_host={cluster.node(name).address}" for name in members)
    lines.append("\n[all:vars]")
    lines.append(f"ansible_user={cluster.admin_user}")
    lines.append(f"ansible_port={cluster.ssh_port}")
    ssh_args = []
    if cluster.ssh_config is not None:
        ssh_args += ["-F", str(cluster.ssh_config)]
    if cluster.known_hosts is not None:
        ssh_args += ["-o", f"UserKnownHostsFile={cluster.known_hosts}"]
    if ssh_args:
        lines.append(f"ansible_ssh_common_args={shlex.quote(shlex.join(ssh_args))}")
    return "\n".join(lines) + "\n"


@click.command("groups")
@cluster_file_option
@click.option("--clustershell", "kind", flag_value="clustershell", help="groups.d YAML.")
@click.option("--ansible", "kind", flag_value="ansible", help="Ansible INI inventory.")
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to FILE instead of stdout.",
)
@click.option(
    "--install", is_flag=True,
    help="With --clustershell: write ClusterShell's own user files, so that "
    "`clush -g workers hostname` works with nothing else.",
)  # fmt: skip
def command(cluster_file: Path, kind: str | None, out: Path | None, install: bool) -> None:
    """Export the cluster's node groups for clush/nodeset or Ansible.

    \b
    piherd groups --clustershell --install && clush -b -g workers uptime
    piherd groups --clustershell                   # the groups.d YAML on stdout
    piherd groups --ansible --out inventory.ini && ansible -i inventory.ini workers -m ping

    --install writes, in ~/.config/clustershell ($XDG_CONFIG_HOME), the per-user directory
    ClusterShell 1.9 ranks highest: groups.d/CLUSTER.yaml (the groups), groups.conf (reads
    groups.d, this cluster is the default source) and clush.conf (ssh_options -F
    ~/.config/piherd/ssh/config, the file `piherd ssh-config` writes, refreshed now). A
    groups.conf or clush.conf piherd did not write is left alone (exit 1).
    """
    if kind is None:
        fail("piherd groups: choose --clustershell or --ansible")
    if install:
        if kind != "clustershell" or out is not None:
            fail("piherd groups: --install goes with --clustershell and without --out")
        install_for_clush(cluster_file)
        return
    export(cluster_file, kind, out)


def install_for_clush(cluster_file: Path) -> None:
    """Write ClusterShell's user files and piherd's ssh client config (refreshed)."""
    cluster = load_cluster(cluster_file)
    paths = AccessPaths.of(os.environ)
    try:
        config = asyncio.run(write_ssh_config(cluster, paths))
        written = install_clustershell(cluster, paths, clustershell_yaml(cluster))
    except (AccessError, OSError) as exc:
        fail(f"piherd groups: {exc}", 1)
    for path in (config, *written):
        click.echo(f"wrote {path}", err=True)
    click.echo(f"clush -g workers hostname   # source {cluster.name} is the default", err=True)


def export(cluster_file: Path, kind: str, out: Path | None) -> None:
    """Write the groups as `kind` ("clustershell" or "ansible") to `out`, or stdout."""
    cluster = load_cluster(cluster_file)
    text = clustershell_yaml(cluster) if kind == "clustershell" else ansible_inventory(cluster)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.piherd-tmp")
        tmp.write_text(text)
        tmp.replace(out)
    except OSError as exc:
        fail(f"piherd groups: cannot write {out}: {exc.strerror}")
    click.echo(f"wrote {out}", err=True)
