"""`piherd inventory --ansible`: the cluster as an Ansible inventory (`groups --ansible`)."""

from __future__ import annotations

from pathlib import Path

import click

from piherd.cli.common import cluster_file_option, fail
from piherd.cli.groups import export


@click.command("inventory")
@cluster_file_option
@click.option("--ansible", is_flag=True, help="Ansible INI inventory (the only format).")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write to FILE instead of stdout.",
)  # fmt: skip
def command(cluster_file: Path, ansible: bool, out: Path | None) -> None:
    """Write an Ansible inventory: a section per group, ansible_host per node.

    \b
    piherd inventory --ansible --out inventory.ini
    ansible -i inventory.ini workers -m ping
    """
    if not ansible:
        fail("piherd inventory: say which format: --ansible")
    export(cluster_file, "ansible", out)
