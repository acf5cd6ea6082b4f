"""`piherd ssh NODE [-- COMMAND...]`: OpenSSH to one node, by name, at its current address."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
from pathlib import Path

import click

from piherd.app.ssh_access import AccessError, AccessPaths, write_ssh_config
from piherd.cli.common import cluster_file_option, fail, load_cluster, require_utf8, select_nodes


@click.command("ssh", context_settings={"ignore_unknown_options": True})
@cluster_file_option
@click.argument("node")
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def command(cluster_file: Path, node: str, words: tuple[str, ...]) -> None:
    """Log in to NODE (or run COMMAND there) with OpenSSH and the config `piherd
    ssh-config` writes (refreshed first): the node's current address, the cluster's user,
    key and known_hosts.

    \b
    piherd ssh node02
    piherd ssh node02 -- uptime
    piherd ssh node02 -- 'df -h / | tail -1'     # one word with shell syntax: a remote shell

    COMMAND words are quoted (shlex.join) so each arrives as one argument, as with `piherd
    run`; a single word is handed to the remote shell as it is.
    """
    cluster = load_cluster(cluster_file)
    require_utf8((node, *words), "ssh")
    names = select_nodes(cluster, node, "ssh")
    if len(names) != 1:
        fail(f"piherd ssh: {node!r} is {len(names)} nodes; name one (piherd run for many)")
    ssh = shutil.which("ssh")
    if ssh is None:
        fail("piherd ssh: no `ssh` command here (Debian: apt-get install openssh-client)", 1)
    paths = AccessPaths.of(os.environ)
    try:
        asyncio.run(write_ssh_config(cluster, paths))
    except (AccessError, OSError) as exc:
        fail(f"piherd ssh: {exc}", 1)
    # This cluster's own file: another cluster may have a node of the same name.
    argv = [ssh, "-F", str(paths.ssh_config(cluster)), names[0]]
    if words:
        argv += ["--", words[0] if len(words) == 1 else shlex.join(words)]
    os.execv(ssh, argv)  # noqa: S606 (argv list, no local shell)
