"""The `piherd` command: a click group that gathers one module per sub-command."""

from __future__ import annotations

import importlib
import sys

import click

from piherd import __version__
from piherd.cli.terminate import sigterm_as_interrupt

# Sub-command name -> (module defining `command`, one-line help for `piherd --help`).
# Modules are imported only when their command runs: `piherd check` must not pay for
# asyncssh, starlette or the sim (click's documented "lazy group" pattern).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("piherd.cli.init", "Write a commented, valid cluster.toml from flags or questions."),
    "check": ("piherd.cli.check", "Validate a cluster file and report every problem at once."),
    "image": ("piherd.cli.image", "Customise Raspberry Pi OS cards per node, host keys made here."),
    "discover": ("piherd.cli.discover", "Find the Pis on the LAN and match them to nodes by MAC."),
    "render": ("piherd.cli.render", "Write the exact files every node must hold, for review."),
    "up": ("piherd.cli.up", "Bring every node to the configured cluster (idempotent)."),
    "run": ("piherd.cli.run", "Run a command on a node set, outputs folded like clush -b."),
    "copy": ("piherd.cli.copy", "Copy files to a node set, or gather them from it."),
    "groups": ("piherd.cli.groups", "Export node groups for clush or an Ansible inventory."),
    "ssh": ("piherd.cli.ssh", "Log in to a node by name (OpenSSH, its current address)."),
    "ssh-config": ("piherd.cli.ssh_config", "Write an ssh_config reaching every node by name."),
    "inventory": ("piherd.cli.inventory", "Write an Ansible inventory of the cluster."),
    "status": ("piherd.cli.status", "One table of the whole cluster, Pi health included."),
    "watch": ("piherd.cli.watch", "Drain unhealthy nodes in Slurm, resume healthy ones."),
    "dashboard": ("piherd.cli.dashboard", "Serve the live web dashboard and /metrics."),
    "power": ("piherd.cli.power", "Power nodes on, off or cycle them through their controllers."),
    "identify": ("piherd.cli.identify", "Blink a node's LEDs until stopped, to find it."),
    "monitoring": ("piherd.cli.monitoring", "Prometheus' URL and piherd's Grafana dashboard."),
    "netboot": ("piherd.cli.netboot", "Build the netbooted nodes' shared root on the head."),
    "reset": ("piherd.cli.reset", "Reboot netbooted nodes back to the shared root, clean."),
    "upgrade": ("piherd.cli.upgrade", "Upgrade packages node by node through Slurm, canary first."),
    "sim": ("piherd.cli.sim", "Build and operate a virtual cluster on this machine."),
    "use": ("piherd.cli.use", "Show or set the current cluster (read when -f is not given)."),
    "bench": ("piherd.cli.bench", "Benchmark the cluster: HPL Gflops on one node and on all."),
}
COMMAND_MODULES: tuple[str, ...] = tuple(module for module, _ in COMMANDS.values())


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command: click.Command = importlib.import_module(COMMANDS[cmd_name][0]).command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above, so `piherd --help` imports nothing more.
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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


# 128 + SIGINT, what shells report for Ctrl-C. Not imported from cli.common, which loads
# the cluster model: `piherd --help` must stay light.
EXIT_INTERRUPTED = 130


def main() -> None:
    """Console entry point: click's own handling, except that Ctrl-C exits 130.

    click turns Ctrl-C into "Aborted!" and exit status 1, the same as an error; it has
    no setting for that, so errors are shown here the way click shows them.
    """
    try:
        # SIGTERM (systemd stopping the watch service, timeout(1)) takes Ctrl-C's path in
        # every command, from its first moment.
        with sigterm_as_interrupt():
            status = cli.main(prog_name="piherd", standalone_mode=False)
    except click.exceptions.Abort as exc:
        # Raised from a KeyboardInterrupt, or (click's prompts) while handling one.
        interrupted = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
        if interrupted and exc.__cause__ is None:
            click.echo(err=True)  # a prompt left the cursor after "^C"
        click.echo("piherd: interrupted" if interrupted else "Aborted!", err=True)
        sys.exit(EXIT_INTERRUPTED if interrupted else 1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # one arriving after the command, in click's teardown
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(status if isinstance(status, int) else 0)
