"""prometheus.yml for [services.monitoring]: scrape jobs with the cluster's labels, as lines.

Pure. Every string is written as a JSON string, which YAML reads as a double-quoted
scalar, so no value (a group name, a host) can add a key or a line; the numbers are
bounded integers. Jobs: `node` (every node's node_exporter; `instance` is the node's
name, so Grafana's host pickers show names), `prometheus` (itself) and `piherd` (a
`piherd dashboard`'s /metrics, when `dashboard` is set).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from piherd.model import Cluster, Node

if TYPE_CHECKING:
    from piherd.services.monitoring import MonitoringSettings

# Prometheus' own default; it must not exceed the scrape interval.
SCRAPE_TIMEOUT_S = 10


def _q(value: str) -> str:
    return json.dumps(value)


def node_groups(cluster: Cluster, node: Node) -> str:
    """The node's groups as one label value, ",compute,workers," (match with =~".*,G,.*")."""
    names = sorted(
        g for g, members in cluster.groups.items() if node.name in members and g != "all"
    )
    return "," + ",".join(names) + "," if names else ""


def _labels(pairs: list[tuple[str, str]], indent: str) -> list[str]:
    return [f"{indent}labels:"] + [f"{indent}  {key}: {_q(value)}" for key, value in pairs]


def _node_job(cluster: Cluster, port: int) -> list[str]:
    lines = ['  - job_name: "node"', "    static_configs:"]
    for node in cluster.nodes:
        lines.append(f"      - targets: [{_q(f'{node.address}:{port}')}]")
        lines += _labels(
            [
                ("cluster", cluster.name),
                ("instance", node.name),
                ("node", node.name),
                ("role", node.role),
                ("groups", node_groups(cluster, node)),
            ],
            "        ",
        )
    return lines


def _self_job(cluster: Cluster, server: Node, port: int) -> list[str]:
    return [
        '  - job_name: "prometheus"',
        "    static_configs:",
        f"      - targets: [{_q(f'{server.address}:{port}')}]",
        *_labels(
            [("cluster", cluster.name), ("instance", server.name), ("node", server.name)],
            "        ",
        ),
    ]


def _dashboard_job(cluster: Cluster, target: tuple[str, int], token_file: str) -> list[str]:
    lines = ['  - job_name: "piherd"', '    metrics_path: "/metrics"']
    if token_file:
        lines += [
            "    authorization:",
            '      type: "Bearer"',
            f"      credentials_file: {_q(token_file)}",
        ]
    host, port = target
    return [
        *lines,
        "    static_configs:",
        f"      - targets: [{_q(f'{host}:{port}')}]",
        *_labels([("cluster", cluster.name)], "        "),
    ]


def prometheus_yml(
    cluster: Cluster,
    settings: MonitoringSettings,
    server: Node,
    dashboard: tuple[str, int] | None = None,
    token_file: str = "",
) -> list[str]:
    """The lines of /etc/prometheus/prometheus.yml (after piherd's header).

    `server` runs Prometheus; `dashboard` is the (host, port) of a `piherd dashboard` to
    scrape, with the bearer token Prometheus reads from `token_file` ("" for none).
    """
    interval = settings.scrape_interval_s
    lines = [
        "global:",
        f"  scrape_interval: {interval}s",
        f"  scrape_timeout: {min(interval, SCRAPE_TIMEOUT_S)}s",
        f"  evaluation_interval: {interval}s",
        "  external_labels:",
        f"    cluster: {_q(cluster.name)}",
        "",
        "scrape_configs:",
        *_node_job(cluster, settings.node_exporter_port),
        *_self_job(cluster, server, settings.prometheus_port),
    ]
    if dashboard is not None:
        lines += _dashboard_job(cluster, dashboard, token_file)
    return lines
