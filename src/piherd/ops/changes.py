"""Desired state of a node and the changes that bring a node to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from piherd.facts.record import NodeRecord
from piherd.model.specs import DirSpec, FileSpec, UnitSpec

# A plan's desired files, dirs and units are exactly what render produces: one type each.
DesiredFile = FileSpec
DesiredDir = DirSpec
DesiredUnit = UnitSpec


@dataclass(frozen=True)
class DesiredNode:
    """Everything one node must be: packages, dirs, files and units (in dependency order)."""

    node: str
    hostname: str
    packages: tuple[str, ...] = ()
    dirs: tuple[DesiredDir, ...] = ()
    files: tuple[DesiredFile, ...] = ()
    units: tuple[DesiredUnit, ...] = ()
    packages_from_head: bool = False  # its package cache, or it is the only resolver

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path whose state the facts must report."""
        return tuple(d.path for d in self.dirs) + tuple(f.path for f in self.files)


class ChangeKind(StrEnum):
    """What a change does; members are listed in the order a plan applies them.

    Two exceptions, both deliberate: the early files (/etc/hostname, /etc/hosts, the apt
    set-up) are FILE changes that come before everything, and START, RESTART and RELOAD
    follow the units' dependency order (munge before slurmd), not this one.
    """

    HOSTNAME = "hostname"
    NETWORK = "network"
    PACKAGES = "packages"
    DIR = "dir"
    FILE = "file"
    DAEMON_RELOAD = "daemon-reload"
    UNMASK = "unmask"
    MASK = "mask"
    DISABLE = "disable"
    ENABLE = "enable"
    START = "start"
    RESTART = "restart"
    RELOAD = "reload"
    # Removals (ops/removals.py), after all of the above: what piherd created and no
    # longer wants, in their own order (stop, remove files, remove dirs, daemon-reload, purge).
    STOP = "stop"
    REMOVE = "remove"  # a file
    REMOVE_DIR = "remove-dir"  # only when empty
    PURGE = "purge"  # packages, with `up --purge` only
    KEEP = "keep"  # a file piherd would remove but the admin edited: reported, left in place

    @property
    def rank(self) -> int:
        """The position of this kind in apply order (0 first)."""
        return list(ChangeKind).index(self)

    @property
    def sets_up_unit(self) -> bool:
        """Unmask, mask, disable or enable: what a unit is allowed to do."""
        return self in (ChangeKind.UNMASK, ChangeKind.MASK, ChangeKind.DISABLE, ChangeKind.ENABLE)

    @property
    def removes(self) -> bool:
        """A removal (ops/removals.py): undoes what piherd created, or reports why not."""
        return self in (
            ChangeKind.STOP,
            ChangeKind.REMOVE,
            ChangeKind.REMOVE_DIR,
            ChangeKind.PURGE,
            ChangeKind.KEEP,
        )

    @property
    def runs_unit(self) -> bool:
        """Start, restart or reload: a unit set running with its current inputs."""
        return self in (ChangeKind.START, ChangeKind.RESTART, ChangeKind.RELOAD)


@dataclass(frozen=True)
class Change:
    """One thing piherd will do on a node, and why."""

    kind: ChangeKind
    target: str
    reason: str
    diff: str = ""
    files: tuple[DesiredFile, ...] = ()  # FILE: one; NETWORK: the network config files
    packages: tuple[str, ...] = ()
    update_first: bool = False  # PACKAGES: run `apt-get update` before installing
    directory: DesiredDir | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.target}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    """The ordered changes for one node; empty when the node is already as desired."""

    node: str
    changes: tuple[Change, ...] = field(default_factory=tuple)
    # What the node's record says before the first change and after the last (None: keep).
    intent: NodeRecord | None = None
    record: NodeRecord | None = None

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def alters(self) -> bool:
        """True when a change would alter the node: KEEP only reports a file left in place,
        so a plan of KEEPs leaves the node "unchanged" (and a dry run says 0 would change)."""
        return any(c.kind != ChangeKind.KEEP for c in self.changes)

    def of_kind(self, kind: ChangeKind) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == kind)
