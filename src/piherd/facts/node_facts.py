"""Typed values of what a node is now: OS, hardware, packages, files, units, host keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from piherd.facts.record import NodeRecord


@dataclass(frozen=True)
class FileState:
    """One managed path as it is on the node: kind ("file", "dir" or "absent"), hash, mode."""

    path: str
    kind: str
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    sha256: str | None = None

    @property
    def exists(self) -> bool:
        return self.kind != "absent"


@dataclass(frozen=True)
class UnitState:
    """A systemd unit as systemctl shows it."""

    name: str
    load_state: str = "not-found"  # loaded, not-found, masked
    active_state: str = "inactive"  # active, inactive, failed, activating
    unit_file_state: str = ""  # enabled, disabled, masked, static, ""
    active_enter_monotonic: int = 0  # microseconds since boot; changes on every (re)start
    main_pid: int = 0

    @property
    def active(self) -> bool:
        return self.active_state in ("active", "activating", "reloading")

    @property
    def enabled(self) -> bool:
        return self.unit_file_state in ("enabled", "enabled-runtime", "static", "alias")

    @property
    def masked(self) -> bool:
        return self.load_state == "masked" or self.unit_file_state.startswith("masked")


@dataclass(frozen=True)
class NodeFacts:
    """Everything piherd learns about one node in one round trip."""

    node: str
    os_id: str = ""
    os_codename: str = ""
    os_version: str = ""
    arch: str = ""  # dpkg architecture (arm64, armhf, amd64)
    machine: str = ""  # uname -m
    cpus: int = 0
    memory_mb: int = 0
    pi_model: str | None = None  # None: not a Pi
    network_stack: str | None = None  # networkmanager, dhcpcd, networkd or None
    hostname: str = ""
    login_ids: tuple[int, int] | None = None  # uid, gid of the user piherd logs in as
    addresses: tuple[str, ...] = ()  # IPv4 addresses, without prefix length
    packages: frozenset[str] = frozenset()  # installed ("ii") package names
    apt_lists: bool = False  # apt has package lists (an `apt-get update` happened)
    files: Mapping[str, FileState] = field(default_factory=dict)
    units: Mapping[str, UnitState] = field(default_factory=dict)
    pending_restarts: tuple[str, ...] = ()  # restarts an interrupted run still owes
    host_keys: tuple[str, ...] = ()  # lines of /etc/ssh/ssh_host_*_key.pub
    record: NodeRecord = field(default_factory=NodeRecord)  # what piherd created here

    def file(self, path: str) -> FileState:
        return self.files.get(path, FileState(path, "absent"))

    def unit(self, name: str) -> UnitState:
        return self.units.get(name, UnitState(name))

    @property
    def is_pi(self) -> bool:
        return self.pi_model is not None and "Raspberry Pi" in self.pi_model
