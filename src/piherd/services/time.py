"""chrony: the head follows upstream and serves the cluster; the other nodes follow the head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from piherd.model import Cluster, Node
from piherd.model.nodecheck import HOST
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitTable, Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import text

CONF = "/etc/chrony/chrony.conf"
# What `piherd init` writes (the loader's default is Debian's pool, TimeSettings.upstream).
INIT_UPSTREAM = ("0.debian.pool.ntp.org", "1.debian.pool.ntp.org")
CONTAINER_DROPIN = "/etc/systemd/system/chrony.service.d/piherd-container.conf"

# Debian's defaults (bookworm's /usr/share/chrony/chrony.conf) that piherd keeps; the
# whole file is written so the image's `pool 2.debian.pool.ntp.org` cannot linger on
# workers, which must follow the head only.
_DEBIAN_DEFAULTS = (
    "keyfile /etc/chrony/chrony.keys",
    "driftfile /var/lib/chrony/chrony.drift",
    "ntsdumpdir /var/lib/chrony",
    "logdir /var/log/chrony",
    "maxupdateskew 100.0",
    "rtcsync",
    # Pis have no real-time clock: allow stepping the clock during the first updates.
    "makestep 1 3",
    "leapsectz right/UTC",
)

if TYPE_CHECKING:
    from piherd.model.template import Answers


@dataclass(frozen=True)
class TimeSettings:
    """[services.time]: chrony; the head follows upstream servers and serves the subnet."""

    enabled: bool = True
    upstream: tuple[str, ...] = ("2.debian.pool.ntp.org",)
    # In a container the clock belongs to the host: run chronyd without setting it.
    container: bool = False


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """chrony.conf, plus a drop-in that lets chronyd run in a container when asked."""
    time = cluster.services.get(TimeSettings)
    if node.is_head:
        lines = ["# Upstream time servers (services.time.upstream)."]
        for server in time.upstream:
            # A name with a "pool" label (2.debian.pool.ntp.org) stands for many servers.
            kind = "pool" if "pool" in server.split(".") else "server"
            lines.append(f"{kind} {server} iburst")
        lines += [
            "# Serve the cluster; keep serving (stratum 10) when upstream is unreachable.",
            f"allow {cluster.network.subnet}",
            "local stratum 10",
        ]
    else:
        lines = [
            f"# Follow the head, {cluster.head.name}, only.",
            f"server {cluster.head.address} iburst",
        ]
    files = {CONF: text(cluster, CONF, [*lines, *_DEBIAN_DEFAULTS], restarts=("chrony.service",))}
    if time.container:
        # chrony.service is skipped without CAP_SYS_TIME, and chrony-wait (masked in
        # desired.units) would then hold time-sync.target, so munge never starts.
        # -x: keep time without setting the clock, which belongs to the host.
        files[CONTAINER_DROPIN] = text(
            cluster,
            CONTAINER_DROPIN,
            [
                "[Unit]",
                "ConditionCapability=",
                "",
                "[Service]",
                "ExecStart=",
                "ExecStart=!/usr/sbin/chronyd $DAEMON_OPTS -x",
            ],
            restarts=("chrony.service",),
        )
    return files


class TimeService(Service):
    """chrony: the head follows upstream and serves the cluster; the others follow the head."""

    name = "time"
    keys = ("enabled", "upstream", "container")

    def read(self, reader: Reader, table: dict[str, Any]) -> TimeSettings:
        path = "services.time"
        return TimeSettings(
            enabled=reader.get(table, path, "enabled", bool, True),
            upstream=reader.strings(table, path, "upstream", TimeSettings().upstream),
            container=reader.get(table, path, "container", bool, False),
        )

    def check(self, cluster: Cluster, reader: Reader) -> None:
        time = cluster.services.get(TimeSettings)
        if not time.enabled:
            return
        if not time.upstream:
            reader.problem(
                "services.time.upstream",
                "the head has no upstream time server",
                'e.g. upstream = ["2.debian.pool.ntp.org"]',
            )
        for server in time.upstream:
            if not HOST.fullmatch(server):
                reader.problem(
                    "services.time.upstream",
                    f"{server!r} is not a host name or address",
                    'e.g. "2.debian.pool.ntp.org" or "192.168.1.1"',
                )

    def init_table(self, answers: Answers) -> InitTable:
        del answers
        return InitTable(
            "chrony: the head follows upstream and serves the nodes",
            (InitEntry("enabled", True), InitEntry("upstream", list(INIT_UPSTREAM))),
        )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        return list(render(cluster, node).values())

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        del cluster, node
        return ("chrony",)

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        del node
        result = [UnitSpec("chrony.service")]
        if cluster.services.get(TimeSettings).container:
            # Never synchronises in a container; it would hold time-sync.target and munge.
            result.append(UnitSpec("chrony-wait.service", enable=False, masked=True))
        return result

    def health_units(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        del cluster, node
        return ("chrony",)
