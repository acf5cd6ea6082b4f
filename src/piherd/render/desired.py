"""Desired state beyond files: Debian packages, systemd units and directories of a node."""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.render import slurm, storage, watch
from piherd.render.spec import DirSpec, UnitSpec, storage_server


def packages(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """Debian packages `node` needs, sorted."""
    svc = cluster.services
    wanted: set[str] = set()
    if svc.time.enabled:
        wanted.add("chrony")
    if svc.storage.enabled:
        is_server = node.name == storage_server(cluster).name
        mounts = node in storage.clients(cluster)
        if svc.storage.kind == "nfs":
            wanted |= {"nfs-kernel-server"} if is_server else ({"nfs-common"} if mounts else set())
        elif mounts:
            wanted.add("sshfs")
    if svc.slurm.enabled:
        wanted |= {"munge", "slurm-client"}
        if node.is_head:
            wanted.add("slurmctld")
        if node.compute:
            wanted.add("slurmd")
    if svc.mpi.enabled and (node.compute or node.is_head):
        if "openmpi" in svc.mpi.implementations:
            wanted |= {"openmpi-bin", "python3-mpi4py"}
            if node.is_head:  # mpicc where users build; binaries go on shared storage
                wanted.add("libopenmpi-dev")
        if "mpich" in svc.mpi.implementations:
            wanted.add("mpich")
    if node.is_head and svc.dnsmasq.enabled:
        wanted.add("dnsmasq")
    if node.is_head and svc.package_cache.enabled:
        wanted.add("apt-cacher-ng")
    wanted.update(watch.packages(cluster, node))
    return tuple(sorted(wanted))


def units(cluster: Cluster, node: Node) -> tuple[UnitSpec, ...]:
    """Units of `node` in start order (time, storage, DNS, cache, munge, Slurm, watch)."""
    svc = cluster.services
    result: list[UnitSpec] = []
    if svc.time.enabled:
        result.append(UnitSpec("chrony.service"))
        if svc.time.container:
            # Never synchronises in a container; it would hold time-sync.target and munge.
            result.append(UnitSpec("chrony-wait.service", enable=False, masked=True))
    if svc.storage.enabled:
        if node.name == storage_server(cluster).name:
            nfs = svc.storage.kind == "nfs"
            result.append(UnitSpec("nfs-kernel-server.service" if nfs else "ssh.service"))
            if storage.server_binds(cluster):
                result.append(UnitSpec(storage.mount_units(cluster)[0]))
        elif node in storage.clients(cluster):
            mount, automount = storage.mount_units(cluster)
            result += [UnitSpec(automount), UnitSpec(mount, enable=False)]
    if node.is_head and svc.dnsmasq.enabled:
        result.append(UnitSpec("dnsmasq.service"))
    if node.is_head and svc.package_cache.enabled:
        result.append(UnitSpec("apt-cacher-ng.service"))
    if svc.slurm.enabled:
        result.append(UnitSpec("munge.service"))
        if node.compute and slurm.cgroup_mode(cluster) == "private-v1":
            result.append(UnitSpec(slurm.CGROUP_UNIT))
        result += [UnitSpec(name) for name in slurm.slurm_units(cluster, node)]
    result += watch.units(cluster, node)  # last: it acts through Slurm
    return tuple(result)


def directories(cluster: Cluster, node: Node) -> tuple[DirSpec, ...]:
    """Directories `node` must have that no package creates (the storage export)."""
    return storage.directories(cluster, node)


__all__ = ["directories", "packages", "units"]
