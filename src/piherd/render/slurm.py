"""Slurm: slurm.conf and cgroup.conf, identical on every node.

How processes are tracked depends on what the nodes' cgroups allow:
- "v2" (bookworm, trixie): proctrack/cgroup and task/cgroup with cgroup/v2.
- "legacy" (a bullseye node, Slurm 20.11, which knows no cgroup v2): track by
  process list (proctrack/linuxproc), no task plugin, no cgroup keys.
- "private-v1" (services.slurm.cgroup_mountpoint set, e.g. containers that see only
  a v2 tree and a host in hybrid mode, which slurmd 22.05 refuses): v1 hierarchies
  mounted under that directory by piherd-cgroup-v1.service before slurmd starts.
"""

from __future__ import annotations

from piherd.model import Cluster, Node, expand, fold
from piherd.render.spec import (
    FileSpec,
    RenderContext,
    by_address,
    header,
    node_cpus,
    node_memory,
    safe_path,
    text,
)

SLURM_CONF = "/etc/slurm/slurm.conf"
CGROUP_CONF = "/etc/slurm/cgroup.conf"
CGROUP_UNIT = "piherd-cgroup-v1.service"
CGROUP_SCRIPT = "/usr/local/lib/piherd/cgroup-v1-mount"
CGROUP_CONTROLLERS = ("freezer", "cpuset", "memory", "devices")


def cgroup_mode(cluster: Cluster) -> str:
    """ "private-v1", "legacy" or "v2" (see the module docstring)."""
    if cluster.services.slurm.cgroup_mountpoint:
        return "private-v1"
    if any(n.os == "bullseye" for n in cluster.nodes):
        return "legacy"
    return "v2"


def slurm_units(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """The Slurm daemons `node` runs."""
    if not cluster.services.slurm.enabled:
        return ()
    daemons = ("slurmctld.service",) if node.is_head else ()
    return daemons + (("slurmd.service",) if node.compute else ())


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """slurm.conf and cgroup.conf (all nodes); the cgroup mount unit on compute nodes."""
    if not cluster.services.slurm.enabled:
        return {}
    daemons = slurm_units(cluster, node)
    specs = [
        text(cluster, SLURM_CONF, slurm_conf(cluster, ctx), restarts=daemons),
        text(cluster, CGROUP_CONF, _cgroup_conf(cluster), restarts=daemons),
    ]
    if cgroup_mode(cluster) == "private-v1" and node.compute:
        specs += _cgroup_mount(cluster)
    return {s.path: s for s in specs}


def slurm_conf(cluster: Cluster, ctx: RenderContext) -> list[str]:
    """The lines of slurm.conf: the same on every node."""
    slurm = cluster.services.slurm
    head = cluster.head
    if cgroup_mode(cluster) == "v2":
        tracking = ["ProctrackType=proctrack/cgroup", "TaskPlugin=task/cgroup,task/affinity"]
    else:
        tracking = ["ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none"]
    lines = [
        f"ClusterName={cluster.name}",
        f"SlurmctldHost={head.name}({head.address})",
        "AuthType=auth/munge",
        "CryptoType=crypto/munge",
        "SlurmUser=slurm",
        "SlurmctldPort=6817",
        "SlurmdPort=6818",
        "StateSaveLocation=/var/lib/slurm/slurmctld",
        "SlurmdSpoolDir=/var/lib/slurm/slurmd",
        "SlurmctldPidFile=/run/slurmctld.pid",
        "SlurmdPidFile=/run/slurmd.pid",
        "SlurmctldLogFile=/var/log/slurm/slurmctld.log",
        "SlurmdLogFile=/var/log/slurm/slurmd.log",
        *tracking,
        "SwitchType=switch/none",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        # A node that was DOWN comes back by itself once it registers with a valid config.
        "ReturnToService=2",
        f"SlurmdTimeout={slurm.slurmd_timeout}",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "",
        "# Compute nodes (CPUs and RealMemory: cluster.toml, else what the node reported).",
    ]
    compute = by_address(cluster.compute_nodes)
    unknown = [n.name for n in compute if node_cpus(n, ctx) is None or node_memory(n, ctx) is None]
    if unknown:
        lines.append(
            f"# Hardware not known yet for {fold(unknown)}: Slurm's defaults "
            "(CPUs=1, RealMemory=1) until piherd reads it."
        )
    for node in compute:
        cpus, memory = node_cpus(node, ctx), node_memory(node, ctx)
        line = f"NodeName={node.name} NodeAddr={node.address}"
        line += f" CPUs={cpus or 1} RealMemory={memory or 1} State=UNKNOWN"
        lines.append(line)
    lines += ["", "# Partitions (services.slurm.partitions)."]
    for part in slurm.partitions:
        members = expand(part.nodes, cluster.groups, cluster.groups["all"])
        lines.append(
            f"PartitionName={part.name} Nodes={fold(members)} "
            f"Default={'YES' if part.default else 'NO'} MaxTime={part.max_time} State=UP"
        )
    return lines


def _cgroup_conf(cluster: Cluster) -> list[str]:
    mode = cgroup_mode(cluster)
    if mode == "private-v1":
        mountpoint = safe_path(cluster.services.slurm.cgroup_mountpoint, "cgroup_mountpoint")
        return [
            f"# v1 hierarchies mounted by {CGROUP_UNIT}: slurmd refuses hybrid cgroups.",
            "CgroupPlugin=cgroup/v1",
            f"CgroupMountpoint={mountpoint}",
            "CgroupAutomount=no",
            "ConstrainCores=no",
            "ConstrainRAMSpace=no",
            "ConstrainDevices=no",
        ]
    if mode == "legacy":
        return ["# Slurm 20.11 (bullseye) tracks jobs by process list here: no cgroup settings."]
    return [
        "CgroupPlugin=autodetect",
        "ConstrainCores=yes",
        # Raspberry Pi kernels leave the memory controller off unless cmdline.txt says
        # cgroup_enable=memory, so memory is not constrained.
        "ConstrainRAMSpace=no",
    ]


def _cgroup_mount(cluster: Cluster) -> list[FileSpec]:
    mountpoint = safe_path(cluster.services.slurm.cgroup_mountpoint, "cgroup_mountpoint")
    body = (
        "#!/bin/sh\n"
        + header(cluster)
        + "# Mount the cgroup v1 hierarchies slurmd needs under $1 (see cgroup.conf).\n"
        "set -eu\n"
        'root="$1"\n'
        f"for controller in {' '.join(CGROUP_CONTROLLERS)}; do\n"
        '    mkdir -p "$root/$controller"\n'
        '    mountpoint -q "$root/$controller" ||\n'
        '        mount -t cgroup -o "$controller" cgroup "$root/$controller"\n'
        "done\n"
    )
    unit = text(
        cluster,
        f"/etc/systemd/system/{CGROUP_UNIT}",
        [
            "[Unit]",
            "Description=cgroup v1 hierarchies for slurmd (piherd)",
            "Before=slurmd.service",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            f"ExecStart={CGROUP_SCRIPT} {mountpoint}",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "RequiredBy=slurmd.service",
        ],
        restarts=(CGROUP_UNIT,),
    )
    return [FileSpec(CGROUP_SCRIPT, body.encode(), 0o755), unit]
