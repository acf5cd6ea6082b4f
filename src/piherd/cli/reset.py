"""`piherd reset`: netbooted nodes reboot to the shared root, clean, and back into Slurm."""

from __future__ import annotations

from pathlib import Path

import click

from piherd.app.cluster_lock import LockBusy, cluster_lock
from piherd.app.upgrade_steps import UpgradeOptions
from piherd.cli.common import (
    Seconds,
    cluster_file_option,
    fail,
    load_cluster,
    select_nodes,
)
from piherd.cli.upgrade import run_rollout
from piherd.model.nodecheck import fold_names
from piherd.ops.rollout import BatchSize
from piherd.services import netboot

EXIT_FAILED = 1
TITLE = "piherd reset"
STOP_HINT = (
    "piherd reset: stopping (Ctrl-C): nodes still waiting for their jobs go back into "
    "service as they are; nodes already rebooting finish. Ctrl-C again to cut them off "
    "(they then stay drained until the next `piherd reset`)."
)


@click.command("reset")
@cluster_file_option
@click.argument("nodeset")
@click.option(
    "--force",
    is_flag=True,
    help="Requeue the jobs running on the nodes instead of waiting for them to end.",
)
@click.option(
    "--drain-timeout",
    type=Seconds(0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for a drained node's jobs; 0: as long as they run.",
)
@click.option(
    "--reboot-timeout",
    type=Seconds(10),
    default=600.0,
    show_default=True,
    help="Seconds a node has to boot from the network and answer SSH again.",
)
@click.option(
    "--gate-timeout",
    type=Seconds(1),
    default=300.0,
    show_default=True,
    help="Seconds a reset node has to pass the health gate.",
)
@click.option(
    "--wait",
    type=Seconds(0),
    default=0.0,
    show_default=True,
    help="Seconds to wait while a `piherd up` of this cluster runs (0: refuse).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines of steps and a summary.")
def command(
    cluster_file: Path,
    nodeset: str,
    force: bool,
    drain_timeout: float,
    reboot_timeout: float,
    gate_timeout: float,
    wait: float,
    as_json: bool,
) -> None:
    """Put the netbooted nodes of NODESET back to a clean state, all at once.

    \b
    A netbooted node keeps its writes in memory, over the head's shared root
    (services.netboot): a reboot throws them away. For each node:
      1. drain it in Slurm, wait for its jobs to end (--force: requeue them);
      2. reboot it: its power controller cycles it when it has one
         (services.power), else it reboots itself over SSH;
      3. it boots the shared root again; piherd gives it its own host keys back;
      4. `piherd up` of the nodes puts back what cluster.toml describes;
      5. health gate (slurmd active, slurmctld hears from it), then resume in Slurm.
    A node an admin drained is reset but never resumed. Nodes that boot from a card
    are refused: a reboot would keep what they wrote. To boot a rebuilt root, run
    `piherd netboot build` first. Exit status: 0 every node reset, 1 some node failed
    (it stays drained, with the reason), 2 bad input, 130 interrupted.
    """
    cluster = load_cluster(cluster_file)
    names = select_nodes(cluster, nodeset, "reset")
    booting = netboot.settings_of(cluster).node_models
    if cards := [n for n in names if n not in booting]:
        fail(f"piherd reset: {fold_names(cards)} boot(s) from a card, not the network "
             "(services.netboot.nodes): a reboot would keep what they wrote")  # fmt: skip
    options = UpgradeOptions(
        canary=0, batch=BatchSize(percent=100), requeue=force, drain_timeout=drain_timeout,
        reboot_timeout=reboot_timeout, gate_timeout=gate_timeout, reset=True,
    )  # fmt: skip
    try:
        with cluster_lock(cluster.name, "up", wait=wait, command="piherd reset"):
            run_rollout(cluster, names, options, as_json, command=TITLE, hint=STOP_HINT)
    except LockBusy as exc:
        fail(f"piherd reset: {exc}; try again when it is done", EXIT_FAILED)
