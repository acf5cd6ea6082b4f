"""The package cache: apt-cacher-ng on the head, an apt proxy setting on every other node."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from piherd.model import Cluster, Node
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitFlag, InitTable, Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import RenderError, text

ACNG_CONF = "/etc/apt-cacher-ng/piherd.conf"
ACNG_DEBIAN = "/etc/apt-cacher-ng/backends_debian"
ACNG_DROPIN = "/etc/systemd/system/apt-cacher-ng.service.d/piherd.conf"
APT_PROXY = "/etc/apt/apt.conf.d/01piherd-proxy"

# An apt URL and a name usable in a config key (checked by the service and again here).
_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]+)?(/[A-Za-z0-9._~/\-]*)?")
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")

if TYPE_CHECKING:
    from piherd.model.template import Answers


@dataclass(frozen=True)
class PackageCacheSettings:
    """[services.package_cache]: apt-cacher-ng on the head; nodes fetch packages through it."""

    enabled: bool = False
    port: int = 3142
    upstreams: Mapping[str, str] = field(
        default_factory=lambda: {
            "debian": "http://deb.debian.org/debian/",
            "raspberrypi": "http://archive.raspberrypi.com/debian/",
        }
    )


def proxy_url(cluster: Cluster) -> str:
    """Where nodes fetch packages: the head's apt-cacher-ng."""
    return f"http://{cluster.head.address}:{cluster.services.get(PackageCacheSettings).port}/"


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """apt-cacher-ng settings on the head; Acquire::http::Proxy on the other nodes."""
    cache = cluster.services.get(PackageCacheSettings)
    if not cache.enabled:
        return {}
    if not node.is_head:
        proxy = f'Acquire::http::Proxy "{proxy_url(cluster)}";'
        return {APT_PROXY: text(cluster, APT_PROXY, [proxy], comment="//")}
    lines = [f"Port: {cache.port}", f"BindAddress: 127.0.0.1 {node.address}"]
    specs = []
    for name, url in sorted(cache.upstreams.items()):
        if not (_URL.fullmatch(url) and _NAME.fullmatch(name)):
            raise RenderError(f"services.package_cache.upstreams: bad entry {name} = {url!r}")
        base = url if url.endswith("/") else url + "/"
        if name == "debian":
            # Debian's own rule (Remap-debrep) takes its upstream from this file; the
            # package default (ftp.debian.org) may not be reachable.
            specs.append(text(cluster, ACNG_DEBIAN, [base], restarts=("apt-cacher-ng.service",)))
        else:
            prefix = base.split("://", 1)[1].rstrip("/")
            lines.append(f"Remap-piherd-{name}: /{name} {prefix} ; {base}")
    specs.append(text(cluster, ACNG_CONF, lines, restarts=("apt-cacher-ng.service",)))
    # Binding the cluster address needs it up first.
    specs.append(
        text(
            cluster,
            ACNG_DROPIN,
            ["[Unit]", "Wants=network-online.target", "After=network-online.target"],
            restarts=("apt-cacher-ng.service",),
        )
    )
    return {s.path: s for s in specs}


class PackageCacheService(Service):
    """apt-cacher-ng on the head, and the apt proxy setting on every other node."""

    name = "package_cache"
    keys = ("enabled", "port", "upstreams")
    init_flags = (InitFlag("--package-cache", "apt-cacher-ng on the head.", is_flag=True),)

    def read(self, reader: Reader, table: dict[str, Any]) -> PackageCacheSettings:
        default = PackageCacheSettings()
        upstreams = table.get("upstreams", default.upstreams)
        if not (
            isinstance(upstreams, dict) and all(isinstance(v, str) for v in upstreams.values())
        ):
            reader.problem(
                "services.package_cache.upstreams",
                "must be a table of name = URL",
                'e.g. upstreams = { debian = "http://deb.debian.org/debian/" }',
            )
            upstreams = default.upstreams
        return PackageCacheSettings(
            enabled=reader.get(table, "services.package_cache", "enabled", bool, False),
            port=reader.get(table, "services.package_cache", "port", int, 3142),
            upstreams=dict(sorted(upstreams.items())),
        )

    def check(self, cluster: Cluster, reader: Reader) -> None:
        cache = cluster.services.get(PackageCacheSettings)
        for name, url in cache.upstreams.items() if cache.enabled else ():
            if not (_NAME.fullmatch(name) and _URL.fullmatch(url)):
                reader.problem(
                    "services.package_cache.upstreams",
                    f"bad upstream {name} = {url!r}",
                    "a lower-case name and an http(s) URL, "
                    'e.g. debian = "http://deb.debian.org/debian/"',
                )
        if not 0 < cache.port < 65536:
            reader.problem(
                "services.package_cache.port",
                f"{cache.port} is not a TCP port",
                "apt-cacher-ng listens on 3142 by default",
            )

    def init_table(self, answers: Answers) -> InitTable:
        return InitTable(
            "apt-cacher-ng on the head; workers fetch packages through it",
            (InitEntry("enabled", answers.option_on("package_cache")),),
        )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        return list(render(cluster, node).values())

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        return ("apt-cacher-ng",) if node.is_head else ()

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        return [UnitSpec("apt-cacher-ng.service")] if node.is_head else []

    def packages_from_head(self, cluster: Cluster, node: Node) -> bool:
        return not node.is_head
