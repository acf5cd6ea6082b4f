"""Slurm: slurm.conf and cgroup.conf, identical on every node, and the shared munge key.

How processes are tracked depends on what the nodes' cgroups allow:
- "v2" (bookworm, trixie): proctrack/cgroup and task/cgroup with cgroup/v2.
- "legacy" (a bullseye node, Slurm 20.11, which knows no cgroup v2): track by
  process list (proctrack/linuxproc), no task plugin, no cgroup keys.
- "private-v1" (services.slurm.cgroup_mountpoint set, e.g. containers that see only
  a v2 tree and a host in hybrid mode, which slurmd 22.05 refuses): v1 hierarchies
  mounted under that directory by piherd-cgroup-v1.service before slurmd starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from piherd.model import Cluster, Node, expand, fold
from piherd.model.checks import absolute_path, nodeset_members
from piherd.model.nodecheck import fold_names
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitFlag, InitTable, Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import by_address, header, node_cpus, node_memory, safe_path, text
from piherd.services import slurm_accounting
from piherd.services.mpi import MpiSettings
from piherd.services.power_saving import slurm_lines

SLURM_CONF = "/etc/slurm/slurm.conf"
CGROUP_CONF = "/etc/slurm/cgroup.conf"
CGROUP_UNIT = "piherd-cgroup-v1.service"
CGROUP_SCRIPT = "/usr/local/lib/piherd/cgroup-v1-mount"
CGROUP_CONTROLLERS = ("freezer", "cpuset", "memory", "devices")
MUNGE_KEY = "/etc/munge/munge.key"
LOGIND_DROPIN = "/etc/systemd/logind.conf.d/piherd-slurm.conf"
PARTITION_KEYS = ("name", "nodes", "default", "max_time")
# Slurm time limits: minutes, [days-]hours:minutes[:seconds], or no limit.
_MAX_TIME = re.compile(r"(INFINITE|UNLIMITED|\d+|\d+:\d{2}(:\d{2})?|\d+-\d+(:\d{2}){0,2})")
MAX_SLURMD_TIMEOUT = 65533  # slurm.conf(5): SlurmdTimeout
# `srun --mpi=` plugins Debian's slurm-wlm-basic-plugins ships that Open MPI and MPICH use
# (Debian's Open MPI speaks PMIx only, its MPICH PMI-2 only), or "auto": see mpi_default().
MPI_PLUGINS = ("auto", "pmix", "pmi2", "none")
# Debian's mpi_pmix plugin dlopen()s the unversioned libpmix.so, which only libpmix-dev
# ships (libpmix2 has libpmix.so.2): without it `srun --mpi=pmix` fails in MPI_Init.
PMIX_PACKAGE = "libpmix-dev"
_PARTITION = re.compile(r"[A-Za-z0-9_\-]{1,64}")

if TYPE_CHECKING:
    from piherd.model.template import Answers


@dataclass(frozen=True)
class Partition:
    """A Slurm partition over a node set."""

    name: str
    nodes: str
    default: bool = False
    max_time: str = "INFINITE"


@dataclass(frozen=True)
class SlurmSettings:
    """[services.slurm]: slurmctld on the head, slurmd on compute nodes, munge everywhere."""

    enabled: bool = True
    head_computes: bool = False
    partitions: tuple[Partition, ...] = (Partition("main", "@compute", default=True),)
    slurmd_timeout: int = 300
    # cgroup v1 mountpoint for slurmd; set by the sim where only a v2 tree is visible.
    cgroup_mountpoint: str = ""
    mpi_default: str = "auto"
    # slurmdbd + MariaDB on the head (services/slurm_accounting.py).
    accounting: bool = False


def settings_of(cluster: Cluster) -> SlurmSettings:
    """The cluster's Slurm settings."""
    return cluster.services.get(SlurmSettings)


def mpi_default(cluster: Cluster) -> str:
    """Slurm's MpiDefault: as set, or for "auto" the plugin the cluster's MPI speaks:
    pmix for Open MPI (with MPICH too: mpi4py is built on Open MPI), pmi2 for MPICH
    alone (measured: with --mpi=pmix each MPICH rank starts alone, as a singleton)."""
    chosen = settings_of(cluster).mpi_default
    if chosen != "auto":
        return chosen
    mpi = cluster.services.find(MpiSettings)
    if mpi is not None and mpi.enabled and "openmpi" not in mpi.implementations:
        return "pmi2"
    return "pmix"


def cgroup_mode(cluster: Cluster) -> str:
    """ "private-v1", "legacy" or "v2" (see the module docstring)."""
    if settings_of(cluster).cgroup_mountpoint:
        return "private-v1"
    if "bullseye" in cluster.releases:
        return "legacy"
    return "v2"


def slurm_units(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """The Slurm daemons `node` runs."""
    if not settings_of(cluster).enabled:
        return ()
    head: tuple[str, ...] = ("slurmctld.service",)
    if settings_of(cluster).accounting:
        head = ("slurmdbd.service", *head)
    daemons = head if node.is_head else ()
    return daemons + (("slurmd.service",) if node.compute else ())


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """slurm.conf and cgroup.conf (all nodes); the cgroup mount unit on compute nodes."""
    if not settings_of(cluster).enabled:
        return {}
    # slurmdbd reads slurmdbd.conf only (its own restart is in slurm_accounting).
    daemons = tuple(u for u in slurm_units(cluster, node) if u != "slurmdbd.service")
    # munged reads the key only when it starts, hence the restart (binary: no header).
    munge = FileSpec(
        MUNGE_KEY, ctx.munge_key, 0o400, "munge", "munge", ("munge.service",), (), True
    )
    # slurm.conf lists every node: made once per render (ctx.shared), not per node.
    conf = ctx.shared(
        cluster, "slurm.conf", lambda: text(cluster, SLURM_CONF, slurm_conf(cluster, ctx))
    )
    cgroup = ctx.shared(
        cluster, "cgroup.conf", lambda: text(cluster, CGROUP_CONF, _cgroup_conf(cluster))
    )
    specs = [replace(conf, restarts=daemons), replace(cgroup, restarts=daemons), munge]
    if cgroup_mode(cluster) == "private-v1" and node.compute:
        specs += ctx.shared(cluster, "cgroup-mount", lambda: _cgroup_mount(cluster))
    if node.compute:
        specs.append(ctx.shared(cluster, "logind", lambda: _keep_jobs_ipc(cluster)))
    if settings_of(cluster).accounting:
        specs += slurm_accounting.render(cluster, node)
    return {s.path: s for s in specs}


def slurm_conf(cluster: Cluster, ctx: RenderContext) -> list[str]:
    """The lines of slurm.conf: the same on every node."""
    slurm = settings_of(cluster)
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
        # srun starts MPI ranks through PMIx unless told --mpi=pmi2 or --mpi=none.
        f"MpiDefault={mpi_default(cluster)}",
        # A task that exits non-zero (an MPI rank dying before MPI_Init) ends its step:
        # the other ranks would wait in MPI_Init for it, holding the nodes, forever.
        "KillOnBadExit=1",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        # A node that was DOWN comes back by itself once it registers with a valid config.
        "ReturnToService=2",
        f"SlurmdTimeout={slurm.slurmd_timeout}",
        *slurm_accounting.slurm_conf_lines(cluster, slurm.accounting),
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
    return lines + slurm_lines(cluster)


def _keep_jobs_ipc(cluster: Cluster) -> FileSpec:
    """logind's drop-in that keeps a user's shared memory and semaphores at logout.

    Jobs run under slurmd, outside any login session, so with logind's default
    (RemoveIPC=yes) the last SSH logout of a user on a node deletes what that user's
    running jobs hold in /dev/shm: MPI's shared-memory transport, Python's
    multiprocessing locks (Dask's workers died of it on the sim).
    """
    return text(
        cluster,
        LOGIND_DROPIN,
        [
            "[Login]",
            "# Slurm jobs are not login sessions: a user's logout must not delete the",
            "# shared memory and semaphores their running jobs use.",
            "RemoveIPC=no",
        ],
        restarts=("systemd-logind.service",),
    )


def _cgroup_conf(cluster: Cluster) -> list[str]:
    mode = cgroup_mode(cluster)
    if mode == "private-v1":
        mountpoint = safe_path(settings_of(cluster).cgroup_mountpoint, "cgroup_mountpoint")
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
    mountpoint = safe_path(settings_of(cluster).cgroup_mountpoint, "cgroup_mountpoint")
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


def _check(cluster: Cluster, reader: Reader) -> None:
    slurm = settings_of(cluster)
    if not cluster.compute_nodes:
        reader.problem(
            "services.slurm",
            "Slurm is enabled but no node computes",
            "add a worker, or set head_computes = true",
        )
        return
    if slurm.cgroup_mountpoint:
        absolute_path(
            reader,
            "services.slurm.cgroup_mountpoint",
            slurm.cgroup_mountpoint,
            inside_system_ok=True,  # the sim's mountpoint lives under /run
        )
    if slurm.slurmd_timeout < 1:
        reader.problem(
            "services.slurm.slurmd_timeout", f"must be positive, not {slurm.slurmd_timeout}"
        )
    elif slurm.slurmd_timeout > MAX_SLURMD_TIMEOUT:
        reader.problem(
            "services.slurm.slurmd_timeout",
            f"must be at most {MAX_SLURMD_TIMEOUT} (Slurm's limit), not {slurm.slurmd_timeout}",
            "the default is 300 seconds",
        )
    if slurm.mpi_default not in MPI_PLUGINS:
        reader.problem(
            "services.slurm.mpi_default",
            f"unknown MPI plugin {slurm.mpi_default!r}",
            f"use one of {', '.join(repr(p) for p in MPI_PLUGINS)}",
        )
    defaults = [p.name for p in slurm.partitions if p.default]
    if len(defaults) > 1:
        reader.problem(
            "services.slurm.partitions",
            f"several default partitions: {', '.join(defaults)}",
            "mark only one with default = true",
        )
    computes = {n.name for n in cluster.compute_nodes}
    seen: set[str] = set()
    for index, part in enumerate(slurm.partitions):
        path = f"services.slurm.partitions[{index}]"
        if not _PARTITION.fullmatch(part.name):
            reader.problem(
                f"{path}.name", f"invalid partition name {part.name!r}", "letters, digits, '_', '-'"
            )
        elif part.name in seen:
            reader.problem(
                f"{path}.name",
                f"duplicate partition {part.name!r}",
                "give each partition its own name",
            )
        seen.add(part.name)
        if not _MAX_TIME.fullmatch(part.max_time):
            reader.problem(
                f"{path}.max_time",
                f"{part.max_time!r} is not a Slurm time limit",
                'minutes ("90"), "hours:minutes:seconds", "days-hours" or "INFINITE"',
            )
        members = nodeset_members(cluster, reader, f"{path}.nodes", part.nodes)
        idle = [m for m in members if m not in computes]
        if idle:
            reader.problem(
                f"{path}.nodes",
                f"{fold_names(idle)} do not compute",
                "use @compute, or set head_computes = true",
            )


def _partitions(reader: Reader, slurm: dict[str, Any]) -> tuple[Partition, ...]:
    entries = reader.array_of_tables(
        slurm, "partitions", "services.slurm.partitions", PARTITION_KEYS
    )
    return tuple(
        Partition(
            name=reader.get(entry, path, "name", str, f"part{index}"),
            nodes=reader.get(entry, path, "nodes", str, "@compute"),
            default=reader.get(entry, path, "default", bool, index == 0),
            max_time=reader.get(entry, path, "max_time", str, "INFINITE"),
        )
        for index, (path, entry) in enumerate(entries)
    )


class SlurmService(Service):
    """Slurm and munge: slurmctld on the head, slurmd on compute nodes, one munge key."""

    name = "slurm"
    keys = (
        "enabled",
        "head_computes",
        "partitions",
        "slurmd_timeout",
        "cgroup_mountpoint",
        "mpi_default",
        "accounting",
    )
    init_flags = (InitFlag("--head-computes", "Let Slurm run jobs on the head too.", is_flag=True),)

    def read(self, reader: Reader, table: dict[str, Any]) -> SlurmSettings:
        path = "services.slurm"
        return SlurmSettings(
            enabled=reader.get(table, path, "enabled", bool, True),
            head_computes=reader.get(table, path, "head_computes", bool, False),
            partitions=_partitions(reader, table) or SlurmSettings().partitions,
            slurmd_timeout=reader.get(table, path, "slurmd_timeout", int, 300),
            cgroup_mountpoint=reader.get(table, path, "cgroup_mountpoint", str, ""),
            mpi_default=reader.get(table, path, "mpi_default", str, "auto"),
            accounting=reader.get(table, path, "accounting", bool, False),
        )

    def head_computes(self, settings: SlurmSettings) -> bool:
        return settings.head_computes

    def check(self, cluster: Cluster, reader: Reader) -> None:
        if settings_of(cluster).enabled:
            _check(cluster, reader)

    def init_table(self, answers: Answers) -> InitTable:
        return InitTable(
            "",
            (
                InitEntry("enabled", True),
                InitEntry(
                    "head_computes",
                    answers.option_on("head_computes"),
                    "false: the head schedules, the workers compute",
                ),
            ),
        )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        return list(render(cluster, node, ctx).values())

    def packages(self, cluster: Cluster, node: Node) -> list[str]:
        # srun (everywhere) and slurmstepd (compute) load the PMIx plugin.
        wanted = ["munge", "slurm-client", PMIX_PACKAGE]
        if node.is_head:
            wanted.append("slurmctld")
        if node.compute:
            wanted.append("slurmd")
        if settings_of(cluster).accounting:
            wanted += slurm_accounting.packages(node)
        return wanted

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        result = [UnitSpec("munge.service")]
        if node.compute and cgroup_mode(cluster) == "private-v1":
            result.append(UnitSpec(CGROUP_UNIT))
        if settings_of(cluster).accounting and node.is_head:
            # then slurm_units: slurmdbd before slurmctld
            result.append(UnitSpec(slurm_accounting.DATABASE_UNIT))
        return result + [UnitSpec(name) for name in slurm_units(cluster, node)]

    def health_units(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        daemons = tuple(u.removesuffix(".service") for u in slurm_units(cluster, node))
        database = (
            (slurm_accounting.DATABASE_UNIT.removesuffix(".service"),)
            if settings_of(cluster).accounting and node.is_head
            else ()
        )
        return (*daemons, *database, "munge")
