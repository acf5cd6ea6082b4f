"""MPI host files (compute nodes only) and Open MPI's site parameters."""

from __future__ import annotations

from piherd.model import Cluster, Node, fold
from piherd.render.spec import FileSpec, RenderContext, by_address, node_cpus, text

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


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """Host files on the head and compute nodes (where MPI is installed) for mpirun."""
    mpi = cluster.services.mpi
    if not mpi.enabled or not (node.compute or node.is_head):
        return {}
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
        if cluster.services.time.container:
            # Containers forbid cross-memory attach (CMA) between ranks.
            params.append("btl_vader_single_copy_mechanism = none")
        specs.append(text(cluster, OPENMPI_PARAMS, params))
    if "mpich" in mpi.implementations:
        hosts = [*note, *(f"{n.name}:{node_cpus(n, ctx) or 1}" for n in compute)]
        specs.append(text(cluster, MPICH_HOSTS, hosts))
    return {s.path: s for s in specs}
