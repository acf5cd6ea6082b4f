"""[services.monitoring]: settings, what each node gets, the Pi metrics script, the Grafana JSON.

The Prometheus side runs for real in tests/integration/test_monitoring_sim.py; here the
rendered files are read as their programs read them (YAML, the Prometheus text format,
POSIX sh) and the settings' checks are exercised. Broken files: tests/broken/monitoring-*.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from test_render_support import cluster_of, context_of

from piherd.cli.main import cli
from piherd.model import Cluster, ConfigError
from piherd.render import render_cluster
from piherd.render.node import node_packages, node_units
from piherd.services import loads, pi_metrics
from piherd.services import monitoring as mon
from piherd.web import grafana

BASE = """[cluster]
name = "pis"
[network]
subnet = "10.1.0.0/24"
[naming]
count = 3
first_address = "10.1.0.11"
"""
ON = BASE + "[services.monitoring]\nenabled = true\n"


def files_of(cluster: Cluster) -> dict[str, dict[str, bytes]]:
    rendered = render_cluster(cluster, context_of("monitoring", cluster))
    return {node: {p: s.content for p, s in specs.items()} for node, specs in rendered.items()}


def prometheus_config(cluster: Cluster, node: str) -> dict[str, object]:
    loaded = yaml.safe_load(files_of(cluster)[node][mon.PROMETHEUS_YML])
    assert isinstance(loaded, dict)
    return loaded


def test_off_by_default_nothing_of_it_anywhere() -> None:
    cluster = loads(BASE)
    assert not mon.settings_of(cluster).enabled
    for node in cluster.nodes:
        assert not any("prometheus" in p or "pi-metrics" in p for p in files_of(cluster)[node.name])
        assert not [p for p in node_packages(cluster, node) if "prometheus" in p]
        assert not [u for u in node_units(cluster, node) if "prometheus" in u.name]


def test_exporter_on_every_node_prometheus_on_the_head() -> None:
    cluster = loads(ON)
    files = files_of(cluster)
    for node in cluster.nodes:
        mine = files[node.name]
        dropin = mine[mon.EXPORTER_DROPIN].decode()
        assert f"--web.listen-address={node.address}:9100 " in dropin
        assert f"--collector.textfile.directory={pi_metrics.TEXTFILE_DIR}" in dropin
        assert "After=network-online.target" in dropin
        assert pi_metrics.SCRIPT_PATH in mine and pi_metrics.TIMER_PATH in mine
        assert "OnUnitActiveSec=30s" in mine[pi_metrics.TIMER_PATH].decode()
        units = [u.name for u in node_units(cluster, node)]
        assert mon.EXPORTER_UNIT in units and pi_metrics.TIMER_NAME in units
        assert ("prometheus" in node_packages(cluster, node)) == node.is_head
        assert (mon.PROMETHEUS_YML in mine) == node.is_head
        assert (mon.PROMETHEUS_UNIT in units) == node.is_head
    head = files[cluster.head.name][mon.PROMETHEUS_DROPIN].decode()
    for flag in (
        "--storage.tsdb.retention.size=1024MB",
        "--storage.tsdb.retention.time=30d",
        f"--web.listen-address={cluster.head.address}:9090",
    ):
        assert f" {flag} " in head


def test_prometheus_scrapes_every_node_with_the_cluster_labels() -> None:
    cluster = loads(ON + 'scrape_interval_s = 5\n[groups]\nrack = "node[02-03]"\n')
    config = prometheus_config(cluster, "node01")
    assert config["global"] == {
        "scrape_interval": "5s",
        "scrape_timeout": "5s",  # never longer than the interval
        "evaluation_interval": "5s",
        "external_labels": {"cluster": "pis"},
    }
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"node", "prometheus"}
    targets = [(t["targets"], t["labels"]) for t in jobs["node"]["static_configs"]]
    assert targets == [
        (
            [f"{n.address}:9100"],
            {
                "cluster": "pis",
                "instance": n.name,
                "node": n.name,
                "role": n.role,
                "groups": ",head," if n.is_head else ",compute,rack,workers,",
            },
        )
        for n in cluster.nodes
    ]


def test_a_chosen_server_runs_prometheus_instead_of_the_head() -> None:
    cluster = loads(ON + 'server = "node03"\nprometheus_port = 9091\n')
    assert mon.prometheus_url(cluster) == "http://10.1.0.13:9091"
    files = files_of(cluster)
    assert mon.PROMETHEUS_YML in files["node03"] and mon.PROMETHEUS_YML not in files["node01"]
    assert "prometheus" not in node_packages(cluster, cluster.head)
    assert "prometheus" in node_packages(cluster, cluster.node("node03"))


def test_the_dashboard_job_reads_its_token_from_a_normalised_path() -> None:
    cluster = cluster_of("monitoring")  # dashboard_token_file has a doubled slash there
    jobs = {j["job_name"]: j for j in prometheus_config(cluster, "pi1")["scrape_configs"]}
    assert jobs["piherd"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/etc/prometheus/piherd-dashboard.token",
    }
    assert jobs["piherd"]["static_configs"][0]["targets"] == ["192.168.1.5:8470"]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("scrape_interval_s = 4", "scrape_interval_s"),
        ("scrape_interval_s = 3601", "scrape_interval_s"),
        ('scrape_interval_s = "30"', "scrape_interval_s"),
        ("scrape_interval_s = 30.5", "scrape_interval_s"),
        ("retention_size_mb = 63", "retention_size_mb"),
        ("retention_size_mb = 99999999999999999", "retention_size_mb"),
        ("retention_days = 0", "retention_days"),
        ("retention_days = inf", "retention_days"),
        ("prometheus_port = 0", "prometheus_port"),
        ("node_exporter_port = 65536", "node_exporter_port"),
        ('server = "node01\\n"', "server"),
        ('server = "node1"', "server"),
        ('dashboard = "192.168.1.5"', "dashboard"),
        ('dashboard = "192.168.1.5:0"', "dashboard"),
        ('dashboard = "192.168.1.5:99999"', "dashboard"),
        ('dashboard = "a b:80"', "dashboard"),
        ('dashboard = "-oProxyCommand:80"', "dashboard"),
        ('dashboard = "h:80:90"', "dashboard"),
        ('dashboard = "h:80"\ndashboard_token_file = "token"', "dashboard_token_file"),
        ('dashboard = "h:80"\ndashboard_token_file = "/etc/../x"', "dashboard_token_file"),
        ('dashboard_token_file = "/etc/prometheus/t"', "dashboard_token_file"),
        ("colour = 1", "colour"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_field(line: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(ON + line + "\n")
    shown = caught.value.render()
    assert f"services.monitoring.{field}" in shown
    assert "cluster.toml:" in shown  # the file and line


def test_settings_are_not_checked_when_the_service_is_off() -> None:
    assert not mon.settings_of(loads(BASE + '[services.monitoring]\nserver = "nope"\n')).enabled


@pytest.mark.parametrize("flag", [True, False])
def test_init_writes_the_table_on_with_the_flag(tmp_path: Path, flag: bool) -> None:
    path = tmp_path / "cluster.toml"
    argv = ["init", "--nodes", "4", "--subnet", "192.168.1.0/24", str(path)]
    result = CliRunner().invoke(cli, [*argv, "--monitoring"] if flag else argv)
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert "[services.monitoring]" in text
    assert mon.settings_of(loads(text)).enabled is flag


# -- the Pi metrics script, run by this machine's sh with a stand-in vcgencmd -------------


def run_script(tmp_path: Path, vcgencmd: str | None) -> str:
    """Run the script writing into tmp_path; `vcgencmd`: what the firmware tool prints."""
    out = tmp_path / "textfile"
    out.mkdir(exist_ok=True)
    script = pi_metrics.SCRIPT.replace(f"dir={pi_metrics.TEXTFILE_DIR}\n", f"dir={out}\n", 1)
    assert f"dir={out}" in script
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if vcgencmd is not None:
        tool = bin_dir / "vcgencmd"
        tool.write_text(f"#!/bin/sh\nprintf '%s\\n' '{vcgencmd}'\n")
        tool.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C"}
    subprocess.run(["sh", "-c", script], env=env, check=True, timeout=30)
    assert [p.name for p in out.iterdir()] == [pi_metrics.PROM_FILE]  # no temp file left
    return (out / pi_metrics.PROM_FILE).read_text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed by prometheus_client's parser of the text format (node_exporter's format)."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.name in pi_metrics.METRICS and family.type == "gauge"
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_script_decodes_the_firmware_bits(tmp_path: Path) -> None:
    got = samples(run_script(tmp_path, "throttled=0x50005"))
    assert got[("piherd_pi_under_voltage", ())] == 1
    assert got[("piherd_pi_throttled_mask", ())] == 0x50005
    flag = (("flag", "under-voltage"), ("when", "now"))
    assert got[("piherd_pi_throttled", flag)] == 1
    capped = (("flag", "arm-freq-capped"), ("when", "since_boot"))
    assert got[("piherd_pi_throttled", capped)] == 0
    throttled = (("flag", "throttled"), ("when", "since_boot"))
    assert got[("piherd_pi_throttled", throttled)] == 1
    assert len([k for k in got if k[0] == "piherd_pi_throttled"]) == 8
    assert got[("piherd_pi_root_read_only", ())] in (0, 1)


@pytest.mark.parametrize(
    "answer", ["throttled=0xZZ", "throttled=0x123456789", "error=1", "throttled=0x1 x", ""]
)
def test_script_writes_no_throttling_from_an_odd_answer(tmp_path: Path, answer: str) -> None:
    got = samples(run_script(tmp_path, answer))
    assert not [k for k in got if k[0].startswith(("piherd_pi_throttled", "piherd_pi_under"))]
    assert ("piherd_pi_root_read_only", ()) in got


def test_script_is_posix_sh() -> None:
    for shell in ("sh", "dash") if os.path.exists("/bin/dash") else ("sh",):
        subprocess.run([shell, "-n", "-c", pi_metrics.SCRIPT], check=True, timeout=10)


# -- the Grafana dashboard ----------------------------------------------------------------


def test_grafana_dashboard_queries_only_known_series() -> None:
    dashboard = grafana.load()
    exprs = grafana.queries(dashboard)
    assert len(exprs) >= 10
    names = set().union(*(grafana.metric_names(e) for e in exprs))
    ours = {n for n in names if n.startswith("piherd_")}
    assert ours and ours <= set(pi_metrics.METRICS)
    assert {n for n in names - ours if n != "up"} <= {n for n in names if n.startswith("node_")}
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="node"}', {"up"}),
        ("1 - avg by (instance) (rate(x_total{mode='idle'}[$__rate_interval]))", {"x_total"}),
        ('a{l="b{c}"} / on (instance) group_left b', {"a", "b"}),
        ("time() - node_boot_time_seconds", {"node_boot_time_seconds"}),
        ("max without (cpu) (c) > bool 0 offset 5m", {"c"}),
        ('label_values(node_uname_info{job="node"}, instance)', {"node_uname_info"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    found = set().union(*(grafana.metric_names(e) for e in grafana.queries(
        {"panels": [{"targets": [{"expr": expr}]}]} if "label_values" not in expr
        else {"templating": {"list": [{"type": "query", "query": {"query": expr}}]}}
    )))  # fmt: skip
    assert found == names


def test_cli_prints_the_shipped_dashboard_and_the_url(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["monitoring", "grafana-json"])
    assert result.exit_code == 0 and json.loads(result.output) == grafana.load()
    path = tmp_path / "cluster.toml"
    path.write_text(ON)
    result = CliRunner().invoke(cli, ["monitoring", "url", "--json", "-f", str(path)])
    assert json.loads(result.output) == {
        "url": "http://10.1.0.11:9090",
        "node": "node01",
        "enabled": True,
    }
    path.write_text(BASE)
    result = CliRunner().invoke(cli, ["monitoring", "url", "-f", str(path)])
    assert result.exit_code == 2 and "enabled = true" in result.output
