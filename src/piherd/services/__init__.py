"""Every service piherd can set up, one module each, and the registry that lists them.

Adding a service: one module here with a `Service` subclass (see piherd.model.service),
its tests, and one line in SERVICES. Loading, checking, rendering, planning, health and
`piherd init` iterate the services a cluster was loaded with. Only code that talks to a
service's own daemon asks for its settings by type (health asks whether Slurm is on).
"""

from __future__ import annotations

from pathlib import Path

from piherd.model import Cluster
from piherd.model import load as load_with
from piherd.model import loads as loads_with
from piherd.model.service import Service
from piherd.services.bootloader import BootloaderService
from piherd.services.distcc import DistccService
from piherd.services.dnsmasq import DnsmasqService
from piherd.services.hosts import HostsService
from piherd.services.leds import LedsService
from piherd.services.monitoring import MonitoringService
from piherd.services.mpi import MpiService
from piherd.services.netboot import NetbootService
from piherd.services.package_cache import PackageCacheService
from piherd.services.power import PowerService
from piherd.services.slurm import SlurmService
from piherd.services.ssh_keys import SshService
from piherd.services.static_address import NetworkService
from piherd.services.storage import StorageService
from piherd.services.time import TimeService
from piherd.services.watch_service import WatchService
from piherd.services.web import WebService

# In start order: units of an earlier service start before those of a later one
# (time before munge, storage before Slurm; the watch service last, it acts through Slurm;
# monitoring after the services whose state it reports).
SERVICES: tuple[Service, ...] = (
    HostsService(),
    NetworkService(),
    SshService(),
    TimeService(),
    StorageService(),
    DnsmasqService(),
    NetbootService(),
    BootloaderService(),
    PackageCacheService(),
    SlurmService(),
    MpiService(),
    LedsService(),
    PowerService(),
    MonitoringService(),
    DistccService(),
    WebService(),
    WatchService(),
)


def load(path: Path) -> Cluster:
    """Read and validate cluster.toml at `path` with piherd's services."""
    return load_with(path, SERVICES)


def loads(text: str, file: str = "cluster.toml", base: Path | None = None) -> Cluster:
    """Parse and validate cluster.toml text with piherd's services."""
    return loads_with(text, SERVICES, file, base)


__all__ = ["SERVICES", "load", "loads"]
