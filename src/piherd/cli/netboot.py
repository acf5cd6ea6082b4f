"""`piherd netboot build`: the shared root and boot directories of the netbooted nodes."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from piherd.app.cluster_lock import LockBusy, cluster_lock
from piherd.app.exact_files import render_files
from piherd.app.netboot_root import BuildError, BuildPlan, build_root, plan_build
from piherd.cli.common import EXIT_INTERRUPTED, cluster_file_option, fail, load_cluster
from piherd.render.spec import RenderError
from piherd.secrets import SecretsError
from piherd.services import netboot
from piherd.transport.base import TransportError

EXIT_FAILED = 1


@click.group("netboot")
def command() -> None:
    """The head's network boot: the shared root the netbooted nodes run."""


@command.command("build")
@cluster_file_option
@click.option("--dry-run", is_flag=True, help="Show what the build copies, leaves out and masks.")
@click.option("--json", "as_json", is_flag=True, help="The plan (and outcome) as one JSON object.")
def build(cluster_file: Path, dry_run: bool, as_json: bool) -> None:
    """Build (or rebuild) the netbooted nodes' root and boot files on the head.

    \b
    The root is a copy of the head's own system (services.netboot.root), made for
    nodes: the data the head serves (/srv, the shared storage) is left out; the head's
    own services, its network stack and swap are masked; its host keys and machine id
    are replaced by the cluster's first-boot key (piherd gives each node its own keys
    after each boot). Each netbooted node's directory under tftp_root gets its model's
    boot files from the new root (a Pi's /boot/firmware; Debian's kernel and initramfs
    for iPXE) beside piherd's cmdline.txt or boot.ipxe.
    Both are built beside the old ones and swapped in whole: a build cut off leaves the
    old root serving. Nodes running the old root boot the new one at their next
    `piherd reset`. Run `piherd up` on the head first (it installs rsync, dnsmasq and
    the NFS server). Exit status: 0 built, 1 the build failed on the head (the old root
    still serves), 2 bad input, 130 interrupted.
    """
    cluster = load_cluster(cluster_file)
    if not cluster.services.is_on(netboot.NetbootSettings):
        fail(f"piherd netboot build: {cluster_file}: [services.netboot] is not enabled")
    booting = [n.name for n in netboot.netbooted(cluster)]
    if not booting:
        fail(f"piherd netboot build: {cluster_file}: no node boots from the network "
             "(services.netboot.nodes)")  # fmt: skip
    names = [cluster.head.name, *booting]
    try:
        plan = plan_build(cluster, render_files(cluster, names).files)
    except RenderError as exc:
        fail(f"piherd netboot build: {cluster_file}: cannot render: {exc}")
    except SecretsError as exc:
        fail(f"piherd netboot build: {exc}", EXIT_FAILED)
    if dry_run:
        _show(plan_dict(plan), as_json)
        return
    say = (lambda text: None) if as_json else (lambda text: click.echo(text))
    try:
        with cluster_lock(cluster.name, "up", wait=0, command="piherd netboot build"):
            asyncio.run(build_root(cluster, plan, say))
    except LockBusy as exc:
        fail(f"piherd netboot build: {exc}; try again when it is done", EXIT_FAILED)
    except (BuildError, TransportError) as exc:
        fail(f"piherd netboot build: {exc}\nThe old root (if any) still serves.", EXIT_FAILED)
    except KeyboardInterrupt:
        fail("piherd netboot build: interrupted; the old root (if any) still serves",
             EXIT_INTERRUPTED)  # fmt: skip
    if as_json:
        _show({**plan_dict(plan), "built": True}, as_json)
    else:
        click.echo("built; boot the nodes (or `piherd reset` those running the old root)")


def plan_dict(plan: BuildPlan) -> dict[str, Any]:
    """The plan as JSON-ready data."""
    data = asdict(plan)
    data["boot_dirs"] = [
        {"node": node, "model": model, "directory": d} for node, model, d in plan.boot_dirs
    ]
    return data


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        json.dump(data, sys.stdout, indent=2)
        print()
        return
    click.echo(f"root: {data['root']} (a copy of the head's system)")
    click.echo(f"left out: {' '.join(str(x) for x in data['excluded'])}")
    click.echo(f"masked: {' '.join(str(x) for x in data['masked'])}")
    click.echo(f"the head's own files, removed: {' '.join(data['head_files']) or '-'}")
    for entry in data["boot_dirs"]:
        click.echo(f"{entry['node']}: {data['tftp_root']}/{entry['directory']} ({entry['model']})")
