"""A load-balanced web cluster: HAProxy on one node, nginx on the backends ([services.web]).

The balancer (the head unless `balancer` names a node) runs HAProxy: the site on its
cluster address, every backend health-checked every `check_interval` seconds
(`GET /piherd-health`), a dead one taken out after `fall` failed checks, and a
request whose connection fails retried on another backend (`retries`, `option
redispatch`, `retry-on`), so clients see no error when a backend dies. The stats page
listens on the balancer's cluster address and answers the cluster subnet only.

Each backend runs Debian's nginx-light with piherd's whole nginx.conf: one server on
the node's cluster address and `backend_port`, serving `root`, answering the health
check and naming itself in an `X-Backend` header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from piherd.model import Cluster, Node, expand
from piherd.model.checks import absolute_path, nodeset_members
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitTable, Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import by_address, safe_path, text

if TYPE_CHECKING:
    from piherd.model.template import Answers

HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
NGINX_CONF = "/etc/nginx/nginx.conf"
HEALTH_PATH = "/piherd-health"
BACKEND_HEADER = "X-Backend"


@dataclass(frozen=True)
class WebSettings:
    """[services.web]: HAProxy on `balancer`, nginx on `backends`; off by default."""

    enabled: bool = False
    balancer: str = ""  # a node name; "" = the head
    backends: str = "@workers"
    port: int = 80  # the site, on the balancer
    backend_port: int = 8080
    stats_port: int = 8404
    check_interval: float = 2.0  # seconds between health checks of a backend
    fall: int = 2  # failed checks before a backend is taken out
    rise: int = 2  # good checks before it is put back
    retries: int = 3
    root: str = "/var/www/html"


def balancer(cluster: Cluster) -> Node:
    """The node that runs HAProxy."""
    name = cluster.services.get(WebSettings).balancer
    return cluster.node(name) if name else cluster.head


def backends(cluster: Cluster) -> list[Node]:
    """The nodes that run nginx, by address."""
    names = set(
        expand(cluster.services.get(WebSettings).backends, cluster.groups, cluster.groups["all"])
    )
    return by_address(n for n in cluster.nodes if n.name in names)


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def haproxy_cfg(cluster: Cluster) -> FileSpec:
    """The balancer's whole haproxy.cfg."""
    web = cluster.services.get(WebSettings)
    here = balancer(cluster).address
    servers = [
        f"    server {n.name} {n.address}:{web.backend_port} check" for n in backends(cluster)
    ]
    lines = [
        "global",
        "    log /dev/log local0",
        "    chroot /var/lib/haproxy",
        "    stats socket /run/haproxy/admin.sock mode 660 level admin",
        "    user haproxy",
        "    group haproxy",
        "    daemon",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    # A request whose backend fails before answering goes to another backend.",
        f"    retries {web.retries}",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
        "",
        "frontend piherd-web",
        f"    bind {here}:{web.port}",
        "    default_backend piherd-web-backends",
        "",
        "backend piherd-web-backends",
        "    balance roundrobin",
        f"    option httpchk GET {HEALTH_PATH}",
        "    http-check expect status 200",
        f"    default-server inter {_ms(web.check_interval)} fall {web.fall} rise {web.rise}",
        *servers,
        "",
        "# The stats page: the cluster subnet only.",
        "listen piherd-web-stats",
        f"    bind {here}:{web.stats_port}",
        f"    http-request deny unless {{ src {cluster.network.subnet} }}",
        "    stats enable",
        "    stats uri /",
        "    stats refresh 5s",
    ]
    # A restart, not a reload: haproxy's postinst starts it with Debian's configuration
    # before this file is written, and `up` plans a start (a no-op then) for a unit that
    # was not running when it read the node.
    return text(cluster, HAPROXY_CFG, lines, restarts=("haproxy.service",))


def nginx_conf(cluster: Cluster, node: Node) -> FileSpec:
    """A backend's whole nginx.conf: one server on its cluster address."""
    web = cluster.services.get(WebSettings)
    root = safe_path(web.root, "services.web.root")
    lines = [
        "user www-data;",
        "worker_processes auto;",
        "pid /run/nginx.pid;",
        "error_log /var/log/nginx/error.log;",
        "include /etc/nginx/modules-enabled/*.conf;",
        "events {",
        "    worker_connections 768;",
        "}",
        "http {",
        "    include /etc/nginx/mime.types;",
        "    default_type application/octet-stream;",
        "    access_log /var/log/nginx/access.log;",
        "    server_tokens off;",
        "    sendfile on;",
        "    server {",
        f"        listen {node.address}:{web.backend_port};",
        f"        root {root};",
        "        index index.html index.htm index.nginx-debian.html;",
        f"        add_header {BACKEND_HEADER} {node.name} always;",
        f"        location = {HEALTH_PATH} {{",
        "            access_log off;",
        "            default_type text/plain;",
        '            return 200 "ok\\n";',
        "        }",
        "        location / {",
        "            try_files $uri $uri/ =404;",
        "        }",
        "    }",
        "}",
    ]
    return text(cluster, NGINX_CONF, lines, restarts=("nginx.service",))


class WebService(Service):
    """HAProxy on the balancer, nginx on the backends."""

    name = "web"
    keys = (
        "enabled",
        "balancer",
        "backends",
        "port",
        "backend_port",
        "stats_port",
        "check_interval",
        "fall",
        "rise",
        "retries",
        "root",
    )

    def read(self, reader: Reader, table: dict[str, Any]) -> WebSettings:
        path, d = "services.web", WebSettings()
        return WebSettings(
            enabled=reader.get(table, path, "enabled", bool, d.enabled),
            balancer=reader.get(table, path, "balancer", str, d.balancer),
            backends=reader.get(table, path, "backends", str, d.backends),
            port=reader.number(table, path, "port", d.port, 1, 65535),
            backend_port=reader.number(table, path, "backend_port", d.backend_port, 1, 65535),
            stats_port=reader.number(table, path, "stats_port", d.stats_port, 1, 65535),
            check_interval=reader.number(
                table, path, "check_interval", d.check_interval, 0.1, 3600.0
            ),
            fall=reader.number(table, path, "fall", d.fall, 1, 100),
            rise=reader.number(table, path, "rise", d.rise, 1, 100),
            retries=reader.number(table, path, "retries", d.retries, 1, 100),
            root=reader.get(table, path, "root", str, d.root),
        )

    def check(self, cluster: Cluster, reader: Reader) -> None:
        web = cluster.services.get(WebSettings)
        if not web.enabled:
            return
        path = "services.web"
        names = [n.name for n in cluster.nodes]
        if web.balancer and web.balancer not in names:
            reader.problem(
                f"{path}.balancer", f"{web.balancer!r} is not a node", "name one node, or omit it"
            )
            return
        members = nodeset_members(cluster, reader, f"{path}.backends", web.backends)
        absolute_path(reader, f"{path}.root", web.root, inside_system_ok=True)
        if web.port == web.stats_port:
            reader.problem(f"{path}.stats_port", "is the same as port", "use another port")
        if balancer(cluster).name in members and web.backend_port in (web.port, web.stats_port):
            reader.problem(
                f"{path}.backend_port",
                f"the balancer {balancer(cluster).name} is a backend too, on the same port",
                "use another backend_port",
            )

    def init_table(self, answers: Answers) -> InitTable:
        del answers
        return InitTable(
            "a load-balanced web site: HAProxy on the head, nginx on the workers",
            (InitEntry("enabled", False), InitEntry("check_interval", 2.0)),
        )

    def _roles(self, cluster: Cluster, node: Node) -> tuple[bool, bool]:
        is_balancer = node.name == balancer(cluster).name
        return is_balancer, node.name in {n.name for n in backends(cluster)}

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        is_balancer, is_backend = self._roles(cluster, node)
        specs = [haproxy_cfg(cluster)] if is_balancer else []
        if is_backend:
            specs.append(nginx_conf(cluster, node))
        return specs

    def packages(self, cluster: Cluster, node: Node) -> list[str]:
        is_balancer, is_backend = self._roles(cluster, node)
        return [p for p, on in (("haproxy", is_balancer), ("nginx-light", is_backend)) if on]

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        is_balancer, is_backend = self._roles(cluster, node)
        return [u for u, on in ((UnitSpec("nginx.service"), is_backend),
                                (UnitSpec("haproxy.service"), is_balancer)) if on]  # fmt: skip

    def health_units(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        is_balancer, is_backend = self._roles(cluster, node)
        return tuple(u for u, on in (("nginx", is_backend), ("haproxy", is_balancer)) if on)
