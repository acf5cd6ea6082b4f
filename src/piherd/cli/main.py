"""The `piherd` command: a click group that gathers one module per sub-command."""

from __future__ import annotations

import importlib

import click

from piherd import __version__

# Each module defines a click command or group named `command`.
# Kept as names so a broken optional part cannot stop `piherd --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "piherd.cli.check",
    "piherd.cli.init",
    "piherd.cli.render",
    "piherd.cli.up",
    "piherd.cli.status",
    "piherd.cli.watch",
    "piherd.cli.dashboard",
    "piherd.cli.run",
    "piherd.cli.copy",
    "piherd.cli.groups",
    "piherd.cli.sim",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="piherd")
def cli() -> None:
    """piherd turns a stack of Raspberry Pis (or small Debian machines) into a compute
    cluster from one file, cluster.toml, then runs, watches and heals it.

    \b
    Typical session:
      piherd init --nodes 4 --prefix node --subnet 192.168.1.0/24 --first 192.168.1.128
      piherd check                 # validate cluster.toml
      piherd up                    # configure every node (Slurm, MPI, NFS, time, ...)
      piherd run @workers -- uptime
      piherd status
    Try it without hardware: `piherd sim up --workers 3`.
    """


def _register() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        cli.add_command(module.command)


_register()


def main() -> None:
    """Console entry point."""
    cli(prog_name="piherd")
