"""`piherd monitoring`: the Grafana dashboard piherd ships, and where Prometheus answers."""

from __future__ import annotations

import json
from pathlib import Path

import click

from piherd.cli.common import cluster_file_option, fail, load_cluster


@click.group("monitoring")
def command() -> None:
    """Prometheus and Grafana for a cluster with [services.monitoring] enabled.

    \b
    piherd monitoring url                     # Prometheus' address: Grafana's data source
    piherd monitoring grafana-json -o piherd.json   # then Grafana: Dashboards > Import

    See docs/monitoring.md (and Grafana's "Node Exporter Full", id 1860, on the same data).
    """


@command.command("grafana-json")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write to FILE instead of stdout.",
)  # fmt: skip
def grafana_json(out: Path | None) -> None:
    """Print the Grafana dashboard piherd ships (JSON, for Dashboards > Import).

    It shows the Pi's own signals (SoC temperature, under-voltage, throttling, read-only
    root) and node_exporter basics, per node, with a data source, cluster and node picker.
    It reads only series a piherd cluster's Prometheus has.
    """
    from piherd.web.grafana import dashboard_text

    text = dashboard_text()
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"piherd monitoring grafana-json: cannot write {out}: {exc.strerror}")


@command.command("url")
@cluster_file_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object: url, node, enabled.")
def url(cluster_file: Path, as_json: bool) -> None:
    """Print Prometheus' URL (the node running it, at its cluster address).

    Use it as Grafana's Prometheus data source, or with Prometheus' HTTP API:
    curl "$(piherd monitoring url)/api/v1/query?query=node_load1"
    """
    from piherd.services.monitoring import prometheus_node, prometheus_url, settings_of

    cluster = load_cluster(cluster_file)
    enabled = settings_of(cluster).enabled
    address = prometheus_url(cluster)
    if as_json:
        node = prometheus_node(cluster).name
        click.echo(json.dumps({"url": address, "node": node, "enabled": enabled}))
    elif not enabled:
        fail(
            f"piherd monitoring: [services.monitoring] is off in {cluster_file}; "
            "set enabled = true and run piherd up"
        )
    else:
        click.echo(address)
