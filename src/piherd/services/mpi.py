"""MPI host files, Open MPI's site parameters, and the admin user's node-to-node key.

The host files list the compute nodes with one slot per CPU; `mpiexec -machinefile
/etc/piherd/hosts.openmpi` on the head starts ranks over SSH as the admin user, with
the key services/cluster_key.py renders (see docs/jobs.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from piherd.model import Cluster, Node, fold
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitFlag, InitTable, Service
from piherd.model.specs import FileSpec, RenderContext
from piherd.render.spec import by_address, node_cpus, text
from piherd.services import cluster_key
from piherd.services.time import TimeSettings

OPENMPI_DEFAULT_HOSTFILE = "/etc/openmpi/openmpi-default-hostfile"
OPENMPI_HOSTS = "/etc/piherd/hosts.openmpi"
MPICH_HOSTS = "/etc/piherd/hosts.mpich"
OPENMPI_PARAMS = "/etc/openmpi/openmpi-mca-params.conf"

# What Debian's openmpi-bin (bookworm) puts in openmpi-mca-params.conf; kept because
# piherd replaces the whole file.
_DEBIAN_MCA = (
    "btl_base_warn_component_unused=0",
    "mtl = ^ofi",
    "btl = ^uct,openib,ofi",
    "pml = ^ucx",
    "osc = ^ucx,pt2pt",
)

if TYPE_CHECKING:
    from piherd.model.template import Answers


IMPLEMENTATIONS = ("openmpi", "mpich")


@dataclass(frozen=True)
class MpiSettings:
    """[services.mpi]: MPI host files for the implementations the cluster uses."""

    enabled: bool = True
    implementations: tuple[str, ...] = ("openmpi",)


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """Host files on the head and compute nodes (where MPI is installed) for mpirun."""
    mpi = cluster.services.get(MpiSettings)
    if not mpi.enabled or not (node.compute or node.is_head):
        return {}
    specs = ctx.shared(cluster, "mpi", lambda: _host_files(cluster, ctx, mpi))
    return {s.path: s for s in specs}


def _host_files(cluster: Cluster, ctx: RenderContext, mpi: MpiSettings) -> list[FileSpec]:
    """The host files and MCA parameters: the same on every node that gets them."""
    compute = by_address(cluster.compute_nodes)
    unknown = [n.name for n in compute if node_cpus(n, ctx) is None]
    note = (
        [f"# CPUs not known yet for {fold(unknown)}: 1 slot until piherd reads them."]
        if unknown
        else []
    )
    specs: list[FileSpec] = []
    if "openmpi" in mpi.implementations:
        hosts = [*note, *(f"{n.name} slots={node_cpus(n, ctx) or 1}" for n in compute)]
        specs.append(text(cluster, OPENMPI_DEFAULT_HOSTFILE, hosts))
        specs.append(text(cluster, OPENMPI_HOSTS, hosts))
        params = [
            *_DEBIAN_MCA,
            "# Talk over the cluster network only (a Pi may also be on Wi-Fi).",
            f"btl_tcp_if_include = {cluster.network.subnet}",
            f"oob_tcp_if_include = {cluster.network.subnet}",
        ]
        time = cluster.services.find(TimeSettings)
        if time is not None and time.container:
            # Containers forbid cross-memory attach (CMA) between ranks.
            params.append("btl_vader_single_copy_mechanism = none")
        specs.append(text(cluster, OPENMPI_PARAMS, params))
    if "mpich" in mpi.implementations:
        hosts = [*note, *(f"{n.name}:{node_cpus(n, ctx) or 1}" for n in compute)]
        specs.append(text(cluster, MPICH_HOSTS, hosts))
    return specs


class MpiService(Service):
    """Open MPI and/or MPICH on the head and compute nodes, with host files for mpirun."""

    name = "mpi"
    keys = ("enabled", "implementations")
    init_flags = (
        InitFlag(
            "--mpi",
            "MPI implementation (repeat for both) [default: openmpi].",
            choices=IMPLEMENTATIONS,
            multiple=True,
        ),
    )

    def read(self, reader: Reader, table: dict[str, Any]) -> MpiSettings:
        return MpiSettings(
            enabled=reader.get(table, "services.mpi", "enabled", bool, True),
            implementations=reader.strings(table, "services.mpi", "implementations", ("openmpi",)),
        )

    def check(self, cluster: Cluster, reader: Reader) -> None:
        mpi = cluster.services.get(MpiSettings)
        for impl in mpi.implementations if mpi.enabled else ():
            if impl not in IMPLEMENTATIONS:
                reader.problem(
                    "services.mpi.implementations",
                    f"unknown MPI {impl!r}",
                    'use "openmpi" and/or "mpich"',
                )

    def init_table(self, answers: Answers) -> InitTable:
        return InitTable(
            "",
            (
                InitEntry("enabled", True),
                InitEntry(
                    "implementations",
                    list(answers.option_texts("mpi") or ("openmpi",)),
                    'host files for "openmpi" and/or "mpich"',
                ),
            ),
        )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        keys = cluster_key.render(cluster, node, ctx)
        return [*render(cluster, node, ctx).values(), *keys.values()]

    def authorized_entries(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[str]:
        return cluster_key.authorized_entries(cluster, node, ctx)

    def packages(self, cluster: Cluster, node: Node) -> list[str]:
        if not (node.compute or node.is_head):
            return []
        implementations = cluster.services.get(MpiSettings).implementations
        wanted = []
        if "openmpi" in implementations:
            wanted += ["openmpi-bin", "python3-mpi4py"]
            if node.is_head:  # mpicc where users build; binaries go on shared storage
                wanted.append("libopenmpi-dev")
        if "mpich" in implementations:
            wanted.append("mpich")
        return wanted
