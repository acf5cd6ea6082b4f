"""Monitoring ([services.monitoring]): node_exporter on every node, Prometheus on the head.

Every node runs Debian's `prometheus-node-exporter`, listening on its cluster address
only, with the textfile collector fed by `piherd-pi-metrics` (services/pi_metrics.py:
throttling, under-voltage, SoC temperature, read-only root). The head (or `server`) runs
Debian's `prometheus`, also on its cluster address only, scraping every node (job
`node`, `instance` = the node's name, labels `cluster`, `node`, `role`, `groups`),
itself (job `prometheus`) and, when `dashboard` is set, a `piherd dashboard`'s /metrics
(job `piherd`). Retention is bounded by size and age, for an SD card. Off by default.
See docs/monitoring.md; the Grafana dashboard shipped with piherd is
piherd/data/grafana/piherd.json (`piherd monitoring grafana-json`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from piherd.model import Cluster, Node
from piherd.model.checks import absolute_path
from piherd.model.escape import shown
from piherd.model.nodecheck import HOST
from piherd.model.paths import normal_path
from piherd.model.reader import Reader
from piherd.model.service import InitEntry, InitFlag, InitTable, Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import RenderError, text
from piherd.services import pi_metrics
from piherd.services.prometheus_config import prometheus_yml

if TYPE_CHECKING:
    from piherd.model.template import Answers

EXPORTER_UNIT = "prometheus-node-exporter.service"
PROMETHEUS_UNIT = "prometheus.service"
EXPORTER_DROPIN = "/etc/systemd/system/prometheus-node-exporter.service.d/piherd.conf"
PROMETHEUS_DROPIN = "/etc/systemd/system/prometheus.service.d/piherd.conf"
PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
PROMETHEUS_DATA = "/var/lib/prometheus/metrics2/"  # Debian's default --storage.tsdb.path
# node_exporter 1.5's default --collector.filesystem.fs-types-exclude without `overlay`:
# a Pi with raspi-config's overlay root file system (and a sim node) has / on overlayfs,
# and / is the file system an SD card fills. `$$` is a literal `$` for systemd.
FS_TYPES_EXCLUDE = (
    "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|"
    "iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|"
    "tracefs)$$"
)
_DASHBOARD = re.compile(r"(?P<host>[^:]+):(?P<port>[0-9]{1,5})")
PATH = "services.monitoring"

# Bounds of the numbers (inclusive).
INTERVAL_S = (5, 3600)
RETENTION_MB = (64, 16 * 1024 * 1024)  # 64 MiB .. 16 TiB
RETENTION_DAYS = (1, 3650)
PORT = (1, 65535)


@dataclass(frozen=True)
class MonitoringSettings:
    """[services.monitoring]: node_exporter everywhere, Prometheus on the head or `server`.

    `server_name` is derived: `server`, or the head when `server` is empty.
    """

    enabled: bool = False
    server: str = ""
    scrape_interval_s: int = 30
    retention_size_mb: int = 1024
    retention_days: int = 30
    prometheus_port: int = 9090
    node_exporter_port: int = 9100
    dashboard: str = ""  # "HOST:PORT" of a `piherd dashboard` to scrape (job "piherd")
    dashboard_token_file: str = ""  # on the Prometheus node, readable by user prometheus
    server_name: str = ""


def settings_of(cluster: Cluster) -> MonitoringSettings:
    """This cluster's monitoring settings."""
    return cluster.services.get(MonitoringSettings)


def prometheus_node(cluster: Cluster) -> Node:
    """The node that runs Prometheus."""
    return cluster.node(settings_of(cluster).server_name or cluster.head.name)


def prometheus_url(cluster: Cluster) -> str:
    """Prometheus' address for Grafana and the HTTP API (its cluster address)."""
    node = prometheus_node(cluster)
    return f"http://{node.address}:{settings_of(cluster).prometheus_port}"


def dashboard_target(value: str) -> tuple[str, int] | None:
    """("host", port) of a `dashboard` value, or None when it is not HOST:PORT."""
    match = _DASHBOARD.fullmatch(value)
    if match is None or not HOST.fullmatch(match["host"]):
        return None
    port = int(match["port"])
    return (match["host"], port) if PORT[0] <= port <= PORT[1] else None


def _exporter_dropin(cluster: Cluster, node: Node) -> FileSpec:
    settings = settings_of(cluster)
    argv = [
        "/usr/bin/prometheus-node-exporter",
        f"--web.listen-address={node.address}:{settings.node_exporter_port}",
        f"--collector.textfile.directory={pi_metrics.TEXTFILE_DIR}",
        f"--collector.filesystem.fs-types-exclude={FS_TYPES_EXCLUDE}",
        "$ARGS",  # /etc/default/prometheus-node-exporter, for extra collectors
    ]
    return _dropin(cluster, EXPORTER_DROPIN, argv, EXPORTER_UNIT)


def _prometheus_dropin(cluster: Cluster, node: Node) -> FileSpec:
    settings = settings_of(cluster)
    argv = [
        "/usr/bin/prometheus",
        f"--config.file={PROMETHEUS_YML}",
        f"--storage.tsdb.path={PROMETHEUS_DATA}",
        f"--storage.tsdb.retention.size={settings.retention_size_mb}MB",
        f"--storage.tsdb.retention.time={settings.retention_days}d",
        f"--web.listen-address={node.address}:{settings.prometheus_port}",
        "$ARGS",  # /etc/default/prometheus
    ]
    return _dropin(cluster, PROMETHEUS_DROPIN, argv, PROMETHEUS_UNIT)


def _dropin(cluster: Cluster, path: str, argv: list[str], unit: str) -> FileSpec:
    """A drop-in that starts `unit` once the network is up, with piherd's command line."""
    return text(
        cluster,
        path,
        [
            "[Unit]",
            # Listening on the cluster address needs that address first.
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "ExecStart=",
            "ExecStart=" + " ".join(argv),
        ],
        restarts=(unit,),
    )


def _prometheus_yml(cluster: Cluster, server: Node) -> FileSpec:
    settings = settings_of(cluster)
    dashboard = None
    if settings.dashboard:
        dashboard = dashboard_target(settings.dashboard)
        if dashboard is None:
            raise RenderError(f"{PATH}.dashboard: {shown(settings.dashboard)} is not HOST:PORT")
    lines = prometheus_yml(cluster, settings, server, dashboard, token_file(cluster))
    return text(cluster, PROMETHEUS_YML, lines, reloads=(PROMETHEUS_UNIT,))


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """node_exporter's drop-in and the Pi metrics on every node; Prometheus' on the server."""
    settings = settings_of(cluster)
    if not settings.enabled:
        return {}
    specs = [
        _exporter_dropin(cluster, node),
        *pi_metrics.files(cluster, settings.scrape_interval_s),
    ]
    if node.name == prometheus_node(cluster).name:
        specs.append(_prometheus_dropin(cluster, node))
        specs.append(_prometheus_yml(cluster, node))
    return {s.path: s for s in specs}


def _read(reader: Reader, table: dict[str, Any]) -> MonitoringSettings:
    d = MonitoringSettings()
    return MonitoringSettings(
        enabled=reader.get(table, PATH, "enabled", bool, d.enabled),
        server=reader.get(table, PATH, "server", str, d.server),
        scrape_interval_s=reader.number(
            table, PATH, "scrape_interval_s", d.scrape_interval_s, *INTERVAL_S
        ),
        retention_size_mb=reader.number(
            table, PATH, "retention_size_mb", d.retention_size_mb, *RETENTION_MB
        ),
        retention_days=reader.number(
            table, PATH, "retention_days", d.retention_days, *RETENTION_DAYS
        ),
        prometheus_port=reader.number(table, PATH, "prometheus_port", d.prometheus_port, *PORT),
        node_exporter_port=reader.number(
            table, PATH, "node_exporter_port", d.node_exporter_port, *PORT
        ),
        dashboard=reader.get(table, PATH, "dashboard", str, d.dashboard),
        dashboard_token_file=reader.get(table, PATH, "dashboard_token_file", str, ""),
    )


def _check_ports(cluster: Cluster, reader: Reader, settings: MonitoringSettings) -> None:
    if settings.prometheus_port == settings.node_exporter_port:
        reader.problem(
            f"{PATH}.prometheus_port",
            f"Prometheus and node_exporter would both listen on {settings.prometheus_port}",
            "the defaults are 9090 (Prometheus) and 9100 (node_exporter)",
        )
    for key in ("prometheus_port", "node_exporter_port"):
        if getattr(settings, key) == cluster.ssh_port:
            reader.problem(
                f"{PATH}.{key}",
                f"{cluster.ssh_port} is the nodes' SSH port (cluster.ssh_port)",
                "leave it out for the default",
            )


class MonitoringService(Service):
    """node_exporter (+ the Pi's own signals) on every node; Prometheus on the head."""

    name = "monitoring"
    keys = (
        "enabled",
        "server",
        "scrape_interval_s",
        "retention_size_mb",
        "retention_days",
        "prometheus_port",
        "node_exporter_port",
        "dashboard",
        "dashboard_token_file",
    )
    init_flags = (
        InitFlag(
            "--monitoring",
            "node_exporter on every node, Prometheus on the head (docs/monitoring.md).",
            is_flag=True,
        ),
    )

    def read(self, reader: Reader, table: dict[str, Any]) -> MonitoringSettings:
        return _read(reader, table)

    def derive(self, settings: MonitoringSettings, cluster: Cluster) -> MonitoringSettings:
        names = cluster.groups["all"]
        server = settings.server if settings.server in names else cluster.head.name
        token = normal_path(settings.dashboard_token_file) or settings.dashboard_token_file
        return replace(settings, server_name=server, dashboard_token_file=token)

    def check(self, cluster: Cluster, reader: Reader) -> None:
        settings = settings_of(cluster)
        if not settings.enabled:
            return
        if settings.server and settings.server not in cluster.groups["all"]:
            reader.problem(
                f"{PATH}.server",
                f"Prometheus would run on {shown(settings.server)}, which is not a node",
                "leave server out to run it on the head, or name a node of the cluster",
            )
        _check_ports(cluster, reader, settings)
        if settings.dashboard and dashboard_target(settings.dashboard) is None:
            reader.problem(
                f"{PATH}.dashboard",
                f"{shown(settings.dashboard)} is not HOST:PORT",
                'where `piherd dashboard --bind` listens, e.g. "192.168.1.5:8470"',
            )
        if settings.dashboard_token_file:
            if not settings.dashboard:
                reader.problem(
                    f"{PATH}.dashboard_token_file",
                    "a token file without a dashboard to scrape",
                    'set dashboard = "HOST:PORT" too, or leave the token file out',
                )
            absolute_path(
                reader, f"{PATH}.dashboard_token_file", settings.dashboard_token_file,
                inside_system_ok=True,
            )  # fmt: skip

    def init_table(self, answers: Answers) -> InitTable:
        return InitTable(
            "node_exporter on every node, Prometheus on the head (docs/monitoring.md)",
            (
                InitEntry("enabled", answers.option_on("monitoring")),
                InitEntry("retention_size_mb", 1024, "what Prometheus may keep on the SD card"),
            ),
        )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        del ctx
        return list(render(cluster, node).values())

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        if node.name == prometheus_node(cluster).name:
            return ("prometheus-node-exporter", "prometheus")
        return ("prometheus-node-exporter",)

    def units(self, cluster: Cluster, node: Node) -> list[UnitSpec]:
        result = [UnitSpec(EXPORTER_UNIT), UnitSpec(pi_metrics.TIMER_NAME)]
        if node.name == prometheus_node(cluster).name:
            result.append(UnitSpec(PROMETHEUS_UNIT))
        return result

    def health_units(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        if node.name == prometheus_node(cluster).name:
            return ("prometheus-node-exporter", "prometheus")
        return ("prometheus-node-exporter",)


def token_file(cluster: Cluster) -> str:
    """The dashboard token file Prometheus reads ("" for none); RenderError when unsafe."""
    value = settings_of(cluster).dashboard_token_file
    if not value:
        return ""
    normal = normal_path(value)
    if normal is None:
        raise RenderError(f"{PATH}.dashboard_token_file: {shown(value)} is not a plain path")
    return normal
