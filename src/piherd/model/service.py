"""What a service is: one class owns its table, checks, nodes, files, packages, units and probes.

A service module (src/piherd/services/) subclasses `Service` and overrides what it needs;
loading, checking, rendering, planning, health and `piherd init` iterate the services a
cluster was loaded with (`Cluster.services`) rather than naming them. The
defaults here are "nothing": a service that renders no file simply does not override
`files`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from piherd.model.specs import DirSpec, FileSpec, RenderContext, UnitSpec

if TYPE_CHECKING:
    from piherd.model.cluster import Cluster, Node
    from piherd.model.reader import Reader
    from piherd.model.template import Answers

SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class InitFlag:
    """A question `piherd init` asks for a service, as a command-line flag.

    `choices`: one of these (several with `multiple`); `is_flag`: on when given;
    `is_range`: an address range "A-B". `field` is the cluster.toml field it sets, so a
    bad value is reported as the flag the user typed.
    """

    flag: str
    help: str
    choices: tuple[str, ...] = ()
    default: str | None = None
    is_flag: bool = False
    multiple: bool = False
    is_range: bool = False
    field: str = ""

    @property
    def dest(self) -> str:
        """The answer's key in Answers.options ("--dhcp-range" -> "dhcp_range")."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class InitEntry:
    """One `key = value  # comment` line of a table `piherd init` writes."""

    key: str
    value: object
    comment: str = ""


@dataclass(frozen=True)
class InitTable:
    """A [services.NAME] table for `piherd init`, as data (model.template writes the TOML)."""

    comment: str
    entries: tuple[InitEntry, ...]


class Service:
    """One service piherd sets up. Subclasses set `name` and override what they need.

    `name` is the service's table under [services] ("" for a service that has none and is
    always on, such as /etc/hosts). `keys` are the table's allowed keys.
    """

    name: str = ""
    keys: tuple[str, ...] = ()
    init_flags: tuple[InitFlag, ...] = ()

    # -- cluster.toml ----------------------------------------------------------------
    def read(self, reader: Reader, table: dict[str, Any]) -> Any:
        """This service's settings from its [services.NAME] table (defaults filled in)."""
        del reader, table
        return None

    def derive(self, settings: Any, cluster: Cluster) -> Any:
        """Settings completed with facts that need the nodes (a server name, clients)."""
        del cluster
        return settings

    def enabled(self, settings: Any) -> bool:
        """Whether the service is on (services without a table always are)."""
        return bool(getattr(settings, "enabled", True))

    def head_computes(self, settings: Any) -> bool:
        """Whether the head is a compute node unless a node entry says otherwise."""
        del settings
        return False

    def check(self, cluster: Cluster, reader: Reader) -> None:
        """Report every problem of this service's settings to `reader` (only when enabled)."""
        del cluster, reader

    def init_table(self, answers: Answers) -> InitTable | None:
        """The commented [services.NAME] table `piherd init` writes, or None."""
        del answers
        return None

    # -- what each node gets -----------------------------------------------------------
    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> Sequence[FileSpec]:
        """The files `node` must hold for this service."""
        del cluster, node, ctx
        return ()

    def packages(self, cluster: Cluster, node: Node) -> Sequence[str]:
        """The Debian packages `node` needs for this service."""
        del cluster, node
        return ()

    def units(self, cluster: Cluster, node: Node) -> Sequence[UnitSpec]:
        """The systemd units of this service on `node`, in start order."""
        del cluster, node
        return ()

    def packages_from_head(self, cluster: Cluster, node: Node) -> bool:
        """Whether this service makes `node` need the head to fetch its packages (a
        package cache there, or the head as its only name server): its install then
        waits for the head's own `up`."""
        del cluster, node
        return False

    def directories(self, cluster: Cluster, node: Node) -> Sequence[DirSpec]:
        """Directories `node` must have that no package creates."""
        del cluster, node
        return ()

    def authorized_entries(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[str]:
        """Lines this service adds to the admin user's piherd-owned authorized_keys."""
        del cluster, node, ctx
        return []

    # -- health ------------------------------------------------------------------------
    def health_units(self, cluster: Cluster, node: Node) -> Sequence[str]:
        """Units `piherd status` reports as this service's daemons on `node`."""
        del cluster, node
        return ()

    def storage_mount(self, cluster: Cluster, node: Node) -> str:
        """A mount point health checks on `node` ("" for none)."""
        del cluster, node
        return ""


@dataclass(frozen=True)
class ServiceSet:
    """The services a cluster was loaded with, in start order, each with its settings."""

    entries: tuple[tuple[Service, Any], ...] = ()

    def __iter__(self) -> Iterator[Service]:
        return (service for service, _ in self.entries)

    def enabled(self) -> Iterator[Service]:
        """The services that are on, in start order."""
        return (service for service, settings in self.entries if service.enabled(settings))

    def get(self, kind: type[SettingsT]) -> SettingsT:
        """The settings of type `kind` (KeyError when no service of the cluster has them)."""
        for _, settings in self.entries:
            if isinstance(settings, kind):
                return settings
        raise KeyError(kind.__name__)

    def find(self, kind: type[SettingsT]) -> SettingsT | None:
        """The settings of type `kind`, or None when no service of the cluster has them."""
        try:
            return self.get(kind)
        except KeyError:
            return None

    def is_on(self, kind: type[Any]) -> bool:
        """True when the cluster has the service whose settings are `kind`, and it is on."""
        for service, settings in self.entries:
            if isinstance(settings, kind):
                return service.enabled(settings)
        return False

    def replacing(self, settings: Any) -> ServiceSet:
        """A copy with the settings of `settings`' type replaced (tests, the sim)."""
        kind = type(settings)
        if not any(isinstance(s, kind) for _, s in self.entries):
            raise KeyError(kind.__name__)
        return replace(
            self,
            entries=tuple(
                (service, settings if isinstance(old, kind) else old)
                for service, old in self.entries
            ),
        )
