"""`piherd ssh-config`: an OpenSSH client config reaching every node by name, now."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import click

from piherd.app.ssh_access import (
    AccessError,
    AccessPaths,
    current_addresses,
    ssh_config_text,
    write_ssh_config,
)
from piherd.cli.common import cluster_file_option, fail, load_cluster


@click.command("ssh-config")
@cluster_file_option
@click.option("--print", "to_stdout", is_flag=True, help="Print the config instead of writing it.")
@click.option("--json", "as_json", is_flag=True, help="Print the path and addresses as JSON.")
def command(cluster_file: Path, to_stdout: bool, as_json: bool) -> None:
    """Write an ssh_config that reaches every node by name at the address it answers at
    now (its static address, or its DHCP lease before `piherd up` moved it), with the
    cluster's user, key and known_hosts (host keys checked, never skipped); print its path.

    \b
    ssh -F "$(piherd ssh-config)" node02
    piherd ssh node02                 # the same, in one word
    echo 'Include ~/.config/piherd/ssh/*.conf' >> ~/.ssh/config   # then: ssh node02

    The file is ~/.config/piherd/ssh/config ($XDG_CONFIG_HOME), which includes one file per
    cluster (CLUSTER.conf); `piherd up` and `piherd sim up` refresh it.
    """
    cluster = load_cluster(cluster_file)
    paths = AccessPaths.of(os.environ)
    try:
        if to_stdout:
            addresses = asyncio.run(current_addresses(cluster))
            click.echo(ssh_config_text(cluster, addresses), nl=False)
            return
        main = asyncio.run(write_ssh_config(cluster, paths))
    except AccessError as exc:
        fail(f"piherd ssh-config: {exc}", 1)
    except OSError as exc:
        fail(f"piherd ssh-config: cannot write {paths.ssh_dir}: {exc.strerror}", 1)
    if as_json:
        click.echo(json.dumps({"config": str(main), "cluster": str(paths.ssh_config(cluster))}))
    else:
        click.echo(str(main))
