"""`piherd sim`: a virtual Raspberry Pi cluster on this machine (presentation only)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from piherd.app.current_cluster import (
    CurrentError,
    choose_sim,
    clear_setting,
    sim_cluster_file,
    write_setting,
)
from piherd.cli.common import EXIT_INTERRUPTED, fail
from piherd.model.naming import MAX_NODES
from piherd.sim.image import RELEASES
from piherd.sim.names import STATE_ROOT
from piherd.sim.pisys import INJECTIONS
from piherd.sim.proc import SimError
from piherd.sim.virtual_cluster import VirtualCluster

T = TypeVar("T")
DEFAULT_NAME = "sim"

name_option = click.option(
    "--name",
    default=None,
    help="Name of the virtual cluster (several can run side by side). Default: the one "
    "$PIHERD_CLUSTER or the current cluster (`piherd use`) names, else the only one "
    "running; refused when several run and none is chosen.",
)


def _pick(name: str | None, creating: bool = False) -> str:
    """The cluster a subcommand acts on (app.current_cluster.choose_sim), said on stderr
    when it was not given with --name; exit 2 when several run and none is chosen."""
    try:
        chosen, why = choose_sim(name, os.environ, only_one=not creating)
    except CurrentError as exc:
        fail(f"piherd sim: {exc}; fix it with `piherd use NAME` or `piherd use --clear`")
    if chosen is None and why.startswith("several"):
        fail(
            f"piherd sim: which virtual cluster? {why}. Choose one with --name NAME, "
            "or make one current with `piherd use NAME`"
        )
    if chosen is None:
        return DEFAULT_NAME
    if why != "--name":
        click.echo(f"piherd sim: cluster {chosen} ({why})", err=True)
    return chosen


def _go(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except (SimError, ValueError) as exc:
        fail(f"piherd sim: {exc}", 1 if isinstance(exc, SimError) else 2)


def _attach(name: str) -> VirtualCluster:
    if os.geteuid() != 0:
        fail("piherd sim needs root (namespaces, bridges, containers)")
    try:
        return VirtualCluster.attach(name)
    except (SimError, ValueError) as exc:
        fail(f"piherd sim: {exc}; start it with `piherd sim up --name {name}`")


@click.group("sim")
def command() -> None:
    """A virtual Pi cluster on this machine, reached over real SSH like Pis on a switch.

    \b
      piherd sim up --workers 3          # head + 3 workers (systemd containers)
      piherd sim up --light --workers 100 --name big   # sshd-only nodes, for scale
      piherd sim up --vm --workers 2 --name vms        # QEMU machines, own kernels
      piherd sim up --vm --netboot --name nb           # workers boot from the head
      ssh -F /var/lib/piherd/sim/sim/ssh_config node02
      piherd sim kill node03; piherd sim revive node03
      piherd sim down
    """


@command.command("up")
@name_option
@click.option(
    "--workers",
    default=3,
    show_default=True,
    type=click.IntRange(0, MAX_NODES - 1),
    help="Workers besides the head (full nodes: at most 99, the router's DHCP pool).",
)
@click.option("--light", is_flag=True, help="Namespace nodes running only sshd (no systemd).")
@click.option(
    "--blank",
    is_flag=True,
    help="Nodes as freshly flashed stock Raspberry Pi OS Lite cards: host name raspberrypi, "
    "no keys, no sshd, DHCP. Give them an identity with `piherd image` and `sim flash`.",
)
@click.option(
    "--release",
    type=click.Choice(RELEASES),
    default="bookworm",
    show_default=True,
    help="Debian release of full nodes (trixie nodes run cloud-init at boot, as Raspberry Pi "
    "OS trixie does; their first `sim up` builds a trixie base).",
)
@click.option(
    "--vm",
    is_flag=True,
    help="Nodes are QEMU machines with Debian's own kernel (real NFS, real reboots), "
    "booted in software emulation: about a minute each, ~350 MB of memory.",
)
@click.option(
    "--netboot",
    is_flag=True,
    help="With --vm: the workers have no disk and boot from the head through iPXE "
    "(services.netboot); they come up once `piherd up` and `piherd netboot build` "
    "have run on the head.",
)
@click.option("--subnet", default=None, help="The virtual LAN (default: derived from the name).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the cluster.toml here.")  # fmt: skip
def up(
    name: str | None,
    workers: int,
    light: bool,
    blank: bool,
    release: str,
    vm: bool,
    netboot: bool,
    subnet: str | None,
    out: Path | None,
) -> None:
    """Start the cluster (or complete / resize a running one), make it the current cluster
    (so the next piherd command finds it without -f) and print its cluster.toml path."""
    name = _pick(name, creating=True)
    if os.geteuid() != 0:
        fail("piherd sim needs root (namespaces, bridges, containers)")
    if not light and workers > 99:
        fail("full nodes: at most 99 workers (the router's DHCP pool); use --light for more")
    try:
        vc = VirtualCluster(
            name, workers, light=light, blank=blank, release=release, vm=vm, netboot=netboot,
            subnet=subnet, out=out,
        )  # fmt: skip
    except ValueError as exc:
        fail(f"piherd sim up: {exc}")
    try:
        path = _go(vc.up())
    except KeyboardInterrupt:
        again = f"`piherd sim up --name {name}` completes the cluster"
        undo = f"`piherd sim down --name {name}` removes what was built"
        fail(f"piherd sim up: interrupted (Ctrl-C). {again}; {undo}.", EXIT_INTERRUPTED)
    try:
        write_setting(os.environ, path)
        current = f"current cluster: {path} (`piherd use` changes it)"
    except (OSError, CurrentError) as exc:
        current = f"could not make it the current cluster: {exc}"
    if blank:
        click.echo(
            f"sim {name}: {vc.state.count} blank nodes up (stock cards, no sshd); next: "
            "`piherd image @all --from IMAGE --out cards/`, then for each node "
            "`piherd sim kill NODE; piherd sim flash NODE cards/NODE.img; piherd sim revive NODE`"
        )
    else:
        ssh_config = _ssh_config(path, vc.files.ssh_config)
        click.echo(f"sim {name}: {vc.state.count} nodes up; ssh -F {ssh_config} node01")
    click.echo(current, err=True)
    click.echo(str(out or path))


def _ssh_config(cluster_file: Path, fallback: Path) -> Path:
    """piherd's client config of the cluster (`piherd ssh-config`), which `piherd up`
    refreshes when it moves nodes; the sim's own (DHCP addresses) when it cannot be written."""
    from piherd.app.ssh_access import AccessError, AccessPaths, write_ssh_config
    from piherd.model import ConfigError
    from piherd.services import load

    try:
        return _go(write_ssh_config(load(cluster_file), AccessPaths.of(os.environ)))
    except (AccessError, ConfigError, OSError) as exc:
        click.echo(f"piherd sim up: ssh config not written: {exc}", err=True)
        return fallback


@command.command("down")
@name_option
def down(name: str | None) -> None:
    """Stop every node and remove everything the cluster created (and forget it as the
    current cluster)."""
    name = _pick(name)
    _go(_attach(name).down())
    clear_setting(os.environ, only_if=sim_cluster_file(name))
    click.echo(f"sim {name}: down, nothing left")


@command.command("status")
@name_option
@click.option("--json", "as_json", is_flag=True)
def status(name: str | None, as_json: bool) -> None:
    """One line per node: address, power, cable, Pi signals."""
    name = _pick(name)
    rows = _attach(name).status()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'NODE':8} {'ADDRESS':16} {'POWER':6} {'CABLE':8} {'TEMP':>6} UV THROTTLED")
    for r in rows:
        click.echo(status_line(r))


def status_line(r: dict[str, Any]) -> str:
    """One node's row of `sim status`; a VM node has no simulated Pi signals ("-")."""
    temp = f"{int(r['temp_mc']) / 1000:6.1f}" if "temp_mc" in r else f"{'-':>6}"
    return (
        f"{r['node']:8} {r['address']:16} {'on' if r['running'] else 'off':6} "
        f"{'plugged' if r['cable'] else 'pulled':8} {temp} "
        f"{r.get('undervoltage', '-'):2} {r.get('throttled', '-')}"
    )


def _node_op(verb: str, doc: str, action: Callable[[VirtualCluster, str], Any]) -> None:
    @command.command(verb, help=doc)
    @name_option
    @click.argument("node")
    def op(name: str | None, node: str) -> None:
        name = _pick(name)
        vc = _attach(name)
        result = action(vc, node)
        if asyncio.iscoroutine(result):
            _go(result)
        click.echo(f"sim {name}: {verb} {node}")


_node_op("kill", "Power cut: SIGKILL the node.", lambda vc, n: vc.kill(n))
_node_op("revive", "Power the node on again and wait for SSH.", lambda vc, n: vc.revive(n))
_node_op("partition", "Pull the node's network cable.", lambda vc, n: vc.partition(n))
_node_op("heal", "Plug the node's network cable back in.", lambda vc, n: vc.heal(n))
_node_op("reset", "Re-flash the card: wipe the node's overlay and boot.", lambda vc, n: vc.reset(n))


@command.command("flash")
@name_option
@click.argument("node")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def flash(name: str | None, node: str, image: Path) -> None:
    """Write IMAGE (.img or .img.xz, e.g. from `piherd image --out`) onto a powered-off blank
    node's card: the files of its boot partition, over a stock root. `sim revive NODE`
    then boots it, and its first boot runs what the image asks for."""
    name = _pick(name)
    vc = _attach(name)
    copied = _go(vc.flash(node, image))
    click.echo(f"sim {name}: flashed {node} ({', '.join(copied)})")


@command.command("inject")
@name_option
@click.argument("node")
@click.argument("kind", type=click.Choice(INJECTIONS))
def inject(name: str | None, node: str, kind: str) -> None:
    """Pi hardware signals: undervoltage, overtemp or clear."""
    name = _pick(name)
    vc = _attach(name)
    try:
        vc.inject(node, kind)
    except ValueError as exc:
        fail(f"piherd sim inject: {exc}")
    click.echo(f"sim {name}: {node} {kind}")


@command.command("shell")
@name_option
@click.argument("node")
def shell(name: str | None, node: str) -> None:
    """A root shell inside the node, without SSH (nsenter into its namespaces)."""
    name = _pick(name)
    vc = _attach(name)
    try:
        argv = vc.shell_argv(node)
    except (SimError, ValueError) as exc:
        fail(f"piherd sim shell: {exc}")
    os.execvp(argv[0], argv)  # noqa: S606 (argv list, no shell)


@command.command("console")
@name_option
@click.argument("node")
def console(name: str | None, node: str) -> None:
    """The node's console output (what a screen on the HDMI port would show)."""
    name = _pick(name)
    vc = _attach(name)
    try:
        log = vc.console_log(node)
    except ValueError as exc:
        fail(f"piherd sim console: {exc}")
    os.execvp("tail", ["tail", "-n", "60", "-f", str(log)])  # noqa: S606


@command.command("image")
@click.option("--rebuild", is_flag=True, help="Build the base image again even when cached.")
@click.option("--release", type=click.Choice(RELEASES), default="bookworm", show_default=True)
def image(rebuild: bool, release: str) -> None:
    """Build (once) the base root filesystem full nodes boot from; print its path."""
    from piherd.sim.image import ensure_base

    if os.geteuid() != 0:
        fail("piherd sim image needs root (debootstrap)")
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    click.echo(str(_go(ensure_base(release, rebuild=rebuild, log=log))))


__all__ = ["STATE_ROOT", "command"]
