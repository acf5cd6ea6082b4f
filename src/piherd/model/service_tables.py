"""Read the [services.*] and [health] tables into typed service settings."""

from __future__ import annotations

from typing import Any

from piherd.model.cluster import (
    DnsmasqService,
    HealthRules,
    MpiService,
    PackageCacheService,
    Partition,
    Services,
    SlurmService,
    StorageService,
    TimeService,
)
from piherd.model.plan import address_range
from piherd.model.reader import Reader

SERVICE_KEYS = ("time", "storage", "slurm", "mpi", "dnsmasq", "package_cache")
TIME_KEYS = ("enabled", "upstream", "container")
STORAGE_KEYS = ("enabled", "kind", "server", "export", "mount", "clients", "root_squash")
SLURM_KEYS = ("enabled", "head_computes", "partitions", "slurmd_timeout", "cgroup_mountpoint")
PARTITION_KEYS = ("name", "nodes", "default", "max_time")
MPI_KEYS = ("enabled", "implementations")
DNSMASQ_KEYS = ("enabled", "dhcp", "dhcp_range", "tftp", "tftp_root")
CACHE_KEYS = ("enabled", "port", "upstreams")
HEALTH_KEYS = (
    "temp_warn_c",
    "temp_crit_c",
    "clock_offset_crit_s",
    "disk_warn_pct",
    "disk_crit_pct",
    "watch_enabled",
    "watch_interval_s",
)


def services(reader: Reader, data: dict[str, Any]) -> Services:
    """Every service, defaults filled in; bad values reported and replaced by defaults."""
    svc = reader.table(data, "services", "services", SERVICE_KEYS)
    t = reader.table(svc, "time", "services.time", TIME_KEYS)
    s = reader.table(svc, "storage", "services.storage", STORAGE_KEYS)
    sl = reader.table(svc, "slurm", "services.slurm", SLURM_KEYS)
    m = reader.table(svc, "mpi", "services.mpi", MPI_KEYS)
    d = reader.table(svc, "dnsmasq", "services.dnsmasq", DNSMASQ_KEYS)
    c = reader.table(svc, "package_cache", "services.package_cache", CACHE_KEYS)
    return Services(
        time=TimeService(
            enabled=reader.get(t, "services.time", "enabled", bool, True),
            upstream=reader.strings(t, "services.time", "upstream", TimeService().upstream),
            container=reader.get(t, "services.time", "container", bool, False),
        ),
        storage=_storage(reader, s),
        slurm=SlurmService(
            enabled=reader.get(sl, "services.slurm", "enabled", bool, True),
            head_computes=reader.get(sl, "services.slurm", "head_computes", bool, False),
            partitions=_partitions(reader, sl) or SlurmService().partitions,
            slurmd_timeout=reader.get(sl, "services.slurm", "slurmd_timeout", int, 300),
            cgroup_mountpoint=reader.get(sl, "services.slurm", "cgroup_mountpoint", str, ""),
        ),
        mpi=MpiService(
            enabled=reader.get(m, "services.mpi", "enabled", bool, True),
            implementations=reader.strings(m, "services.mpi", "implementations", ("openmpi",)),
        ),
        dnsmasq=DnsmasqService(
            enabled=reader.get(d, "services.dnsmasq", "enabled", bool, False),
            dhcp=reader.get(d, "services.dnsmasq", "dhcp", bool, True),
            dhcp_range=(
                address_range(reader, d["dhcp_range"], "services.dnsmasq.dhcp_range")
                if "dhcp_range" in d
                else None
            ),
            tftp=reader.get(d, "services.dnsmasq", "tftp", bool, False),
            tftp_root=reader.get(d, "services.dnsmasq", "tftp_root", str, "/srv/tftp"),
        ),
        package_cache=_cache(reader, c),
    )


def _storage(reader: Reader, s: dict[str, Any]) -> StorageService:
    path, default = "services.storage", StorageService()
    kind = reader.get(s, path, "kind", str, default.kind)
    if kind not in ("nfs", "sshfs"):
        reader.problem(f"{path}.kind", f"unknown storage kind {kind!r}", 'use "nfs" or "sshfs"')
        kind = "nfs"
    if kind == "sshfs" and "root_squash" in s:
        reader.problem(
            f"{path}.root_squash",
            'root_squash is an NFS export option; it means nothing with kind = "sshfs"',
            'remove root_squash, or use kind = "nfs"',
        )
    return StorageService(
        enabled=reader.get(s, path, "enabled", bool, True),
        kind=kind,  # type: ignore[arg-type]
        server=reader.get(s, path, "server", str, ""),
        export=reader.get(s, path, "export", str, default.export),
        mount=reader.get(s, path, "mount", str, default.mount),
        clients=reader.get(s, path, "clients", str, default.clients),
        root_squash=reader.get(s, path, "root_squash", bool, True),
    )


def _cache(reader: Reader, c: dict[str, Any]) -> PackageCacheService:
    default = PackageCacheService()
    upstreams = c.get("upstreams", default.upstreams)
    if not (isinstance(upstreams, dict) and all(isinstance(v, str) for v in upstreams.values())):
        reader.problem(
            "services.package_cache.upstreams",
            "must be a table of name = URL",
            'e.g. upstreams = { debian = "http://deb.debian.org/debian/" }',
        )
        upstreams = default.upstreams
    return PackageCacheService(
        enabled=reader.get(c, "services.package_cache", "enabled", bool, False),
        port=reader.get(c, "services.package_cache", "port", int, 3142),
        upstreams=dict(sorted(upstreams.items())),
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


def health(reader: Reader, data: dict[str, Any]) -> HealthRules:
    """The [health] thresholds."""
    h = reader.table(data, "health", "health", HEALTH_KEYS)
    d = HealthRules()
    return HealthRules(
        **{k: reader.get(h, "health", k, type(getattr(d, k)), getattr(d, k)) for k in HEALTH_KEYS}
    )
