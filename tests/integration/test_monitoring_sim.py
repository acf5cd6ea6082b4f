"""[services.monitoring] on a full sim cluster, asked through Prometheus' own HTTP API.

One cluster ("mon": a head and two workers) for the module, brought up by `piherd up`
with monitoring on (Slurm, storage and MPI off: these tests are about monitoring, and
each of those has its own tests). Prometheus runs on the head at its cluster address;
this machine reaches it over the sim's bridge like an admin's laptop on the LAN.
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from piherd.services import load, pi_metrics
from piherd.services import monitoring as mon
from piherd.sim.virtual_cluster import VirtualCluster
from piherd.web import grafana

pytestmark = pytest.mark.sim

NAME = "mon"
WORKERS = 2
SCRAPE_S = 5
WAIT_S = 300.0  # a bound, not a timing: a busy CI machine may take long
# What a Grafana dashboard's variables stand for when a person picks "this cluster, all nodes".
TOKEN_FILE = "/etc/prometheus/piherd-dashboard.token"
VARIABLES = {"$cluster": NAME, "$node": ".+", "$__rate_interval": "1m"}


def piherd() -> str:
    return str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "piherd")


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def monitored_copy(cluster_file: Path, directory: Path) -> Path:
    """The sim's cluster.toml with monitoring on (scraped every 5 s, a dashboard on this
    machine's bridge address too) and the services this module does not look at off."""
    doc = tomlkit.parse(cluster_file.read_text())
    gateway = str(doc["network"]["gateway"])  # type: ignore[index]
    services = doc.setdefault("services", tomlkit.table())
    for name in ("slurm", "storage", "mpi"):
        services.setdefault(name, tomlkit.table())["enabled"] = False
    monitoring = services.setdefault("monitoring", tomlkit.table())
    monitoring["enabled"] = True
    monitoring["scrape_interval_s"] = SCRAPE_S
    monitoring["dashboard"] = f"{gateway}:{free_port(gateway)}"
    monitoring["dashboard_token_file"] = TOKEN_FILE
    copy = directory / "cluster.toml"
    copy.write_text(tomlkit.dumps(doc))
    return copy


def run_piherd(*argv: str, timeout: float = 1800, stdin: str = "") -> str:
    result = subprocess.run(
        [piherd(), *argv], capture_output=True, text=True, timeout=timeout, input=stdin
    )
    assert result.returncode == 0, f"piherd {argv} failed:\n{result.stdout[-3000:]}{result.stderr}"
    return result.stdout


def api(base: str, endpoint: str, **params: str) -> Any:
    """GET BASE/api/v1/ENDPOINT?params from Prometheus; its `data` (status must be success)."""
    url = f"{base}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return body["data"]


def query(base: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    return list(api(base, "query", query=expr)["result"])


def by_instance(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"]["instance"]: float(r["value"][1]) for r in result}


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(1.0)


@pytest.fixture(scope="module")
def monitored(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[VirtualCluster, Path, str]]:
    """(the sim, its monitored cluster.toml, Prometheus' URL), every node answering."""
    with sim_cm(NAME, WORKERS) as vc:
        path = monitored_copy(vc.cluster_file, tmp_path_factory.mktemp(NAME))
        for node in vc.node_names():
            vc.inject(node, "clear")
        run_piherd("up", "-f", str(path), "--json")
        found = json.loads(run_piherd("monitoring", "url", "--json", "-f", str(path)))
        assert found["enabled"] and found["node"] == "node01"
        base = str(found["url"])
        everyone = set(vc.node_names())
        wait_until(
            lambda: set(by_instance(query(base, "piherd_pi_soc_temperature_celsius"))) == everyone,
            "Prometheus has every node's Pi metrics",
        )
        yield vc, path, base


def test_node_load1_answers_for_every_node_with_the_cluster_labels(
    monitored: tuple[VirtualCluster, Path, str],
) -> None:
    vc, _, base = monitored
    result = query(base, "node_load1")
    assert sorted(r["metric"]["instance"] for r in result) == vc.node_names()
    for r in result:
        labels = r["metric"]
        assert labels["job"] == "node" and labels["cluster"] == NAME
        assert labels["node"] == labels["instance"]
        assert labels["role"] == ("head" if labels["node"] == "node01" else "worker")
        head_groups = ",head,"
        assert labels["groups"] == (
            head_groups if labels["role"] == "head" else ",compute,workers,"
        )
        assert float(r["value"][1]) >= 0
    assert {t["labels"]["job"] for t in api(base, "targets")["activeTargets"]} == {
        "node",
        "prometheus",
        "piherd",
    }


def test_pi_metrics_for_every_node(monitored: tuple[VirtualCluster, Path, str]) -> None:
    vc, _, base = monitored
    names = vc.node_names()
    # The sim's idle SoC reads 45 C (sim/pisys.py), like a cool Pi.
    assert by_instance(query(base, "piherd_pi_soc_temperature_celsius")) == dict.fromkeys(
        names, 45.0
    )
    assert by_instance(query(base, "piherd_pi_under_voltage")) == dict.fromkeys(names, 0.0)
    assert by_instance(query(base, "piherd_pi_root_read_only")) == dict.fromkeys(names, 0.0)
    # node_exporter read the script's file without a complaint on every node.
    assert by_instance(query(base, "node_textfile_scrape_error")) == dict.fromkeys(names, 0.0)
    # node_exporter's own thermal_zone collector reads the same sensor, as on a Pi.
    assert by_instance(query(base, 'node_thermal_zone_temp{zone="0"}')) == dict.fromkeys(
        names, 45.0
    )
    flags = query(base, "piherd_pi_throttled")
    assert len(flags) == 8 * len(names)  # 4 flags, now and since boot, per node
    assert {(r["metric"]["flag"], r["metric"]["when"]) for r in flags} == {
        (flag, when)
        for flag in ("under-voltage", "arm-freq-capped", "throttled", "soft-temp-limit")
        for when in ("now", "since_boot")
    }


def test_injected_undervoltage_shows_in_the_metrics(
    monitored: tuple[VirtualCluster, Path, str],
) -> None:
    vc, _, base = monitored
    try:
        vc.inject("node02", "undervoltage")
        wait_until(
            lambda: by_instance(query(base, "piherd_pi_under_voltage")).get("node02") == 1.0,
            "node02's under-voltage in Prometheus",
        )
        now = 'piherd_pi_throttled{flag="under-voltage", when="now"}'
        assert by_instance(query(base, now)) == {"node01": 0.0, "node02": 1.0, "node03": 0.0}
        assert by_instance(query(base, "piherd_pi_throttled_mask"))["node02"] == 0x50005
    finally:
        vc.inject("node02", "clear")
    wait_until(
        lambda: by_instance(query(base, "piherd_pi_under_voltage")).get("node02") == 0.0,
        "node02's under-voltage cleared in Prometheus",
    )
    # The firmware keeps "since boot"; so does the metric.
    since = 'piherd_pi_throttled{flag="under-voltage", when="since_boot"}'
    assert by_instance(query(base, since))["node02"] == 1.0


def test_every_series_of_the_shipped_grafana_dashboard_exists(
    monitored: tuple[VirtualCluster, Path, str],
) -> None:
    vc, _, base = monitored
    dashboard = json.loads(run_piherd("monitoring", "grafana-json"))
    expressions = grafana.queries(dashboard)
    referenced = set().union(*(grafana.metric_names(e) for e in expressions))
    assert "piherd_pi_soc_temperature_celsius" in referenced  # the parser found them
    existing = set(api(base, "label/__name__/values"))
    assert referenced <= existing, f"missing in Prometheus: {sorted(referenced - existing)}"
    # Beyond names: each query, as Grafana sends it for this cluster, returns every node
    # (waited for: rate() needs two scrapes of a series).
    for expr in expressions:
        for variable, value in VARIABLES.items():
            expr = expr.replace(variable, value)
        wait_until(
            lambda e=expr: (
                {r["metric"].get("instance") for r in query(base, e)}  # type: ignore[misc]
                >= set(vc.node_names())
            ),
            f"{expr} answers for every node",
            timeout=4 * SCRAPE_S + 10,
        )


def test_node_exporter_full_finds_every_node(monitored: tuple[VirtualCluster, Path, str]) -> None:
    """Grafana's "Node Exporter Full" (id 1860) picks a job from node_uname_info, then an
    instance (and, in newer versions, a nodename) of that job; its panels select
    {instance="$node", job="$job"}. These are series of the kind its panels read."""
    vc, _, base = monitored
    jobs = api(base, "label/job/values", **{"match[]": "node_uname_info"})
    assert "node" in jobs
    instances = api(base, "label/instance/values", **{"match[]": 'node_uname_info{job="node"}'})
    assert sorted(instances) == vc.node_names()
    nodenames = api(base, "label/nodename/values", **{"match[]": 'node_uname_info{job="node"}'})
    assert sorted(nodenames) == vc.node_names()
    for node in vc.node_names():
        sel = f'instance="{node}", job="node"'
        for expr in (
            f"count(count(node_cpu_seconds_total{{{sel}}}) by (cpu))",
            f"node_load5{{{sel}}}",
            f"node_memory_MemAvailable_bytes{{{sel}}} / node_memory_MemTotal_bytes{{{sel}}}",
            f'node_filesystem_avail_bytes{{{sel}, mountpoint="/", fstype!="rootfs"}}',
            f"node_boot_time_seconds{{{sel}}}",
            f'node_network_receive_bytes_total{{{sel}, device!="lo"}}',
        ):
            assert query(base, expr), expr


def test_listening_on_the_cluster_address_only(
    monitored: tuple[VirtualCluster, Path, str],
) -> None:
    vc, path, _ = monitored
    out = run_piherd("run", "-f", str(path), "--json", "@all", "--", "ss", "-Hltn", timeout=120)
    listeners: dict[str, set[str]] = {}
    for line in out.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            listeners[entry["node"]] = set(re.findall(r"\S+:(?:9090|9100)\b", entry["stdout"]))
    addresses = {n.name: str(n.address) for n in load(path).nodes}
    for node in vc.node_names():
        expected = {f"{addresses[node]}:9100"}
        if node == "node01":
            expected.add(f"{addresses[node]}:9090")
        assert listeners[node] == expected, node
    # Never on all addresses, not even at the package's first start (the drop-ins are
    # written before the packages install): every start logged the cluster address.
    journal = ["journalctl", "-u", "prometheus-node-exporter", "-u", "prometheus", "-o", "cat"]
    out = run_piherd("run", "-f", str(path), "--json", "--sudo", "@all", "--", *journal)
    for line in out.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            started = re.findall(r'msg="Listening on" address=(\S+)', entry["stdout"])
            assert started, entry
            node = entry["node"]
            assert set(started) <= {f"{addresses[node]}:9100", f"{addresses[node]}:9090"}, node


def test_prometheus_scrapes_a_piherd_dashboard_with_its_token(
    monitored: tuple[VirtualCluster, Path, str], tmp_path: Path
) -> None:
    """`dashboard` = this machine's bridge address: a `piherd dashboard` there, bound to
    that address with a token, is scraped as job "piherd" once the head has the token
    (put there as docs/monitoring.md says)."""
    vc, path, base = monitored
    target = str(tomlkit.parse(path.read_text())["services"]["monitoring"]["dashboard"])  # type: ignore[index]
    host, port = target.rsplit(":", 1)
    token = secrets.token_hex(16)
    local = tmp_path / "token"
    local.write_text(token + "\n")
    local.chmod(0o600)
    install = ["install", "-m", "0640", "-g", "prometheus", "/dev/stdin", TOKEN_FILE]
    run_piherd("run", "-f", str(path), "--sudo", "node01", "--", *install, stdin=token, timeout=60)
    argv = [piherd(), "dashboard", "-f", str(path), "--bind", host, "--port", port]
    dashboard = subprocess.Popen(
        [*argv, "--token-file", str(local), "--interval", "2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: len(query(base, 'piherd_node_up{job="piherd"} == 1')) == len(vc.node_names()),
            "Prometheus scraped the dashboard's piherd_node_up for every node",
        )
        (up,) = query(base, 'up{job="piherd"}')
        assert up["metric"]["instance"] == target and up["metric"]["cluster"] == NAME
        assert float(up["value"][1]) == 1.0
    finally:
        dashboard.terminate()
        try:
            dashboard.wait(timeout=15)
        except subprocess.TimeoutExpired:
            dashboard.kill()
            dashboard.wait(timeout=15)
        assert dashboard.stderr is not None
        dashboard.stderr.close()


def test_turned_off_up_stops_it_and_removes_what_it_wrote(
    monitored: tuple[VirtualCluster, Path, str],
) -> None:
    """Last in this module: monitoring off again. The drop-ins, written before the packages
    installed, are piherd's too: `up` removes them with the rest (the packages stay)."""
    _, path, _ = monitored
    doc = tomlkit.parse(path.read_text())
    doc["services"]["monitoring"]["enabled"] = False  # type: ignore[index]
    off = path.with_name("off.toml")  # beside it: the same secrets_dir
    off.write_text(tomlkit.dumps(doc))
    run_piherd("up", "-f", str(off), "--json")
    ours = [
        mon.EXPORTER_DROPIN,
        posixpath.dirname(mon.EXPORTER_DROPIN),
        mon.PROMETHEUS_DROPIN,
        posixpath.dirname(mon.PROMETHEUS_DROPIN),
        pi_metrics.SCRIPT_PATH,
        pi_metrics.UNIT_PATH,
        pi_metrics.TIMER_PATH,
    ]
    script = 'for p; do [ ! -e "$p" ] || echo "left $p"; done'
    units = ["prometheus", "prometheus-node-exporter", pi_metrics.TIMER_NAME]
    out = run_piherd(
        "run", "-f", str(off), "--json", "@all", "--",
        "sh", "-c", f"{script}; systemctl is-active {' '.join(units)}; true", "sh", *ours,
        timeout=120,
    )  # fmt: skip
    for line in out.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            assert entry["stdout"].split() == ["inactive"] * 3, entry
