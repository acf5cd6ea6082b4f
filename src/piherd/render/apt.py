"""The package cache: apt-cacher-ng on the head, an apt proxy setting on every other node."""

from __future__ import annotations

import re

from piherd.model import Cluster, Node
from piherd.render.spec import FileSpec, RenderError, text

ACNG_CONF = "/etc/apt-cacher-ng/piherd.conf"
ACNG_DEBIAN = "/etc/apt-cacher-ng/backends_debian"
ACNG_DROPIN = "/etc/systemd/system/apt-cacher-ng.service.d/piherd.conf"
APT_PROXY = "/etc/apt/apt.conf.d/01piherd-proxy"

_URL = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]+)?(/[A-Za-z0-9._~/\-]*)?$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def proxy_url(cluster: Cluster) -> str:
    """Where nodes fetch packages: the head's apt-cacher-ng."""
    return f"http://{cluster.head.address}:{cluster.services.package_cache.port}/"


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """apt-cacher-ng settings on the head; Acquire::http::Proxy on the other nodes."""
    cache = cluster.services.package_cache
    if not cache.enabled:
        return {}
    if not node.is_head:
        proxy = f'Acquire::http::Proxy "{proxy_url(cluster)}";'
        return {APT_PROXY: text(cluster, APT_PROXY, [proxy], comment="//")}
    lines = [f"Port: {cache.port}", f"BindAddress: 127.0.0.1 {node.address}"]
    specs = []
    for name, url in sorted(cache.upstreams.items()):
        if not (_URL.match(url) and _NAME.match(name)):
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
