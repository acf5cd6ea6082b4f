"""`piherd watch` and the dashboard against Slurm on a full sim cluster brought up by `piherd up`.

One cluster ("thealth": a head and three workers running systemd, munge, slurmd) for the
whole module. Each test leaves Slurm as it found it (every node resumed).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from test_dashboard_browser import (
    cards,
    chromium,
    click,
    dashboard,
    http_get,
    interrupt,
    load_page,
    metric,
    metric_values,
    piherd,
    screenshot,
    wait_for,
)

from piherd.health.slurm_state import SlurmNode, parse_nodes
from piherd.services.ssh_keys import AUTHORIZED_DIR
from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

NAME = "thealth"
WORKERS = 3
INTERVAL = "1"


def head(path: Path, *argv: str, check: bool = True) -> str:
    """Run argv on the head with `piherd run` (the real path); its stdout."""
    result = subprocess.run(
        [piherd(), "run", "-f", str(path), "--json", "--sudo", "node01", "--", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"piherd run printed nothing: {result.stderr}"
    out = lines[0]
    if check:
        assert out["rc"] == 0 and not out["error"], f"{argv} on node01: {out}"
    return str(out["stdout"])


def slurm(path: Path, node: str) -> SlurmNode:
    return parse_nodes(head(path, "scontrol", "show", "node", "-o", node))[node]


def resume_all(path: Path, vc: VirtualCluster) -> None:
    for node in vc.node_names()[1:]:
        if slurm(path, node).held:
            head(path, "scontrol", "update", f"NodeName={node}", "State=RESUME")


def without_storage(cluster_file: Path, directory: Path) -> Path:
    """A copy of the sim's cluster.toml with shared storage off: these tests are about
    health rules and Slurm. A sim node revived after a power cut does not mount sshfs
    again until the next `piherd up` (containers have no autofs), which would keep it
    critical ("storage missing") and drained; storage has its own tests (test_up.py),
    and the storage rule is unit-tested."""
    doc = tomlkit.parse(cluster_file.read_text())
    services = doc.setdefault("services", tomlkit.table())
    storage = services.setdefault("storage", tomlkit.table())
    storage["enabled"] = False
    copy = directory / "cluster.toml"
    copy.write_text(tomlkit.dumps(doc))
    return copy


def up_events(cluster_file: Path) -> list[dict[str, Any]]:
    """`piherd up --json` (it must succeed); its events."""
    result = subprocess.run(
        [piherd(), "up", "-f", str(cluster_file), "--json"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, f"piherd up failed:\n{result.stdout[-3000:]}{result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def full(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[VirtualCluster, Path]]:
    with sim_cm(NAME, WORKERS) as vc:
        path = without_storage(vc.cluster_file, tmp_path_factory.mktemp("thealth"))
        for node in vc.node_names():
            vc.inject(node, "clear")
        up_events(path)

        def idle() -> bool:
            states = [slurm(path, n).state for n in vc.node_names()[1:]]
            return all(s == "idle" for s in states)

        resume_all(path, vc)  # a cluster left up by an earlier run may hold drains
        wait_for(idle, 120, "every worker idle in Slurm")
        yield vc, path


@pytest.fixture
def watcher(full: tuple[VirtualCluster, Path], tmp_path: Path) -> Iterator[Path]:
    """`piherd watch` running for the test; yields its log directory."""
    vc, path = full
    log_dir = tmp_path / "watch-log"
    proc = subprocess.Popen(
        [piherd(), "watch", "-f", str(path), "--interval", INTERVAL, "--log-dir", str(log_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield log_dir
        assert proc.poll() is None, (
            f"watch died: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    finally:
        interrupt(proc)
        for node in vc.node_names():
            vc.inject(node, "clear")
        resume_all(path, vc)


def events(log_dir: Path) -> list[dict[str, Any]]:
    path = log_dir / "watch.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def status_json(path: Path, node: str) -> dict[str, Any]:
    result = subprocess.run(
        [piherd(), "status", "-f", str(path), "--json", node],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr
    return dict(json.loads(result.stdout)["nodes"][0])


def test_undervoltage_drains_then_clear_resumes(
    full: tuple[VirtualCluster, Path], watcher: Path
) -> None:
    vc, path = full
    vc.inject("node02", "undervoltage")
    shown = status_json(path, "node02")
    assert "under-voltage" in shown["throttling"]["now"]
    assert shown["level"] == "critical" and "under-voltage" in shown["critical"]

    def drained() -> SlurmNode | None:
        node = slurm(path, "node02")
        return node if node.drain else None

    node = wait_for(drained, 60, "node02 drained by watch")
    assert node.reason == "piherd: under-voltage"
    assert status_json(path, "node02")["slurm"]["state"] in ("drained", "draining")

    vc.inject("node02", "clear")
    wait_for(lambda: not slurm(path, "node02").held, 60, "node02 resumed by watch")
    log = [e for e in events(watcher) if e["node"] == "node02"]
    kinds = [e["kind"] for e in log]
    assert "drain" in kinds and "resume" in kinds
    assert kinds.index("drain") < kinds.index("resume")
    drain = next(e for e in log if e["kind"] == "drain")
    assert drain["reasons"] == ["under-voltage"] and drain["time"] > 0
    human = (watcher / "watch.log").read_text()
    assert "node02 drain: piherd: under-voltage" in human


def test_node_drained_by_hand_stays_drained(
    full: tuple[VirtualCluster, Path], watcher: Path
) -> None:
    _, path = full
    head(path, "scontrol", "update", "NodeName=node03", "State=DRAIN", "Reason=fan swap by hand")
    wait_for(
        lambda: any(e["kind"] == "hold" and e["node"] == "node03" for e in events(watcher)),
        60,
        "watch noticing the hand drain",
    )
    # Let several more rounds pass (resume needs two healthy rounds): it must stay drained.
    time.sleep(5 * float(INTERVAL) + 2)
    node = slurm(path, "node03")
    assert node.drain and node.reason == "fan swap by hand"
    assert not any(e["kind"] == "resume" and e["node"] == "node03" for e in events(watcher))


def job_fields(path: Path, job_id: str) -> dict[str, str]:
    text = head(path, "scontrol", "show", "job", "-o", job_id)
    fields = {}
    for word in text.split():
        key, _, value = word.partition("=")
        fields.setdefault(key, value)
    return fields


def test_power_cut_drains_and_requeued_job_completes_elsewhere(
    full: tuple[VirtualCluster, Path], watcher: Path
) -> None:
    vc, path = full
    # Keep node02 and node04 busy-free by hand so the job must start on node03.
    for node in ("node02", "node04"):
        head(path, "scontrol", "update", f"NodeName={node}", "State=DRAIN", "Reason=test: hold")
    out = head(
        path, "sbatch", "--parsable", "--requeue", "-N1", "-J", "requeue-me",
        "-o", "/tmp/requeue-%j.out", "--wrap", "sleep 20; hostname",
    )  # fmt: skip
    job_id = out.strip().split(";")[0]
    wait_for(lambda: job_fields(path, job_id).get("JobState") == "RUNNING", 60, "the job running")
    assert job_fields(path, job_id)["NodeList"] == "node03"
    for node in ("node02", "node04"):
        head(path, "scontrol", "update", f"NodeName={node}", "State=RESUME")
    asyncio.run(vc.kill("node03"))
    try:
        node = wait_for(
            lambda: (n := slurm(path, "node03")).drained_by_piherd and n,
            60,
            "node03 down and drained by watch",
        )
        assert node.reason == "piherd: unreachable"
        assert node.down and node.drain
        done = wait_for(
            lambda: (f := job_fields(path, job_id)).get("JobState") == "COMPLETED" and f,
            # A requeued job waits for its old credential to expire (~2 min) before it starts.
            400,
            "the requeued job completing",
        )
        assert done["NodeList"] in ("node02", "node04")
        assert int(done.get("Restarts", "0")) >= 1
        log = [e for e in events(watcher) if e["node"] == "node03"]
        assert any(e["kind"] == "drain" and e["reasons"] == ["unreachable"] for e in log)
    finally:
        asyncio.run(vc.revive("node03", timeout=180))
    wait_for(lambda: status_json(path, "node03")["reachable"], 120, "node03 back")
    wait_for(lambda: not slurm(path, "node03").held, 120, "node03 resumed once back")


def test_dashboard_shows_drained_node_and_drains_on_click(
    full: tuple[VirtualCluster, Path],
) -> None:
    vc, path = full
    head(path, "scontrol", "update", "NodeName=node04", "State=DRAIN", "Reason=shown drained")
    try:
        with dashboard(path, "--interval", "1") as (base, _), chromium() as driver:
            load_page(driver, base + "/")

            def drained_shown() -> dict[str, dict[str, str]] | None:
                found = cards(driver)
                node04 = found.get("node04", {})
                return found if node04.get("slurm", "").startswith("drained") else None

            found = wait_for(drained_shown, 30, "node04 shown drained")
            assert sorted(found) == vc.node_names()
            assert "drained" in found["node04"]["class"].split()
            assert "shown drained" in found["node04"]["text"]
            assert found["node02"]["slurm"] == "idle"
            screenshot(driver, "dashboard-slurm")
            click(driver, "#node-node02 button.drain")
            confirm = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
            assert "Drain node02" in confirm.text  # drain asks first
            confirm.accept()
            node = wait_for(
                lambda: (n := slurm(path, "node02")).drain and n, 30, "node02 drained by click"
            )
            assert node.reason == "dashboard: drained from the dashboard"
            wait_for(
                lambda: cards(driver).get("node02", {}).get("slurm", "").startswith("drained"),
                30,
                "the page showing node02 drained",
            )
            status, text = http_get(base + "/metrics")
            assert status == 200
            values = metric_values(text)
            assert metric(values, "piherd_slurm_node_state", node="node04", state="drained") == 1
            assert metric(values, "piherd_slurm_node_state", node="node04", state="idle") == 0
            assert metric(values, "piherd_node_up", node="node03") == 1
            # The click went through Slurm, so the queue shown comes from squeue too.
            assert driver.find_element(By.ID, "queue").is_displayed()
    finally:
        resume_all(path, vc)


AUTHORIZED = f"{AUTHORIZED_DIR}/pi"  # the admin user of the sim is pi


def with_watch(cluster_file: Path, enabled: bool) -> Path:
    """A copy beside `cluster_file` (so it shares its secrets) with the watch service on/off."""
    doc = tomlkit.parse(cluster_file.read_text())
    health = doc.setdefault("health", tomlkit.table())
    health["watch_enabled"] = enabled
    health["watch_interval_s"] = 1.0
    copy = cluster_file.parent / f"watch-{'on' if enabled else 'off'}.toml"
    copy.write_text(tomlkit.dumps(doc))
    return copy


def test_up_installs_the_watch_service_which_drains_and_resumes(
    full: tuple[VirtualCluster, Path],
) -> None:
    """Last in this module: it leaves the service installed until its own final step.
    No `watcher` fixture here: every drain and resume comes from the head's service."""
    vc, path = full
    on = with_watch(path, enabled=True)
    try:
        changes = [e for e in up_events(on) if e["event"] == "change"]
        assert {"node01"} <= {e["node"] for e in changes}
        assert head(on, "systemctl", "is-active", "piherd-watch.service").strip() == "active"
        assert head(on, "stat", "-c", "%a %U", "/etc/piherd/watch_key").split() == ["600", "root"]
        assert "piherd-watch" in head(on, "cat", AUTHORIZED)
        # The head's copy of cluster.toml: it works there as it does here.
        assert "node02" in head(on, "/usr/local/bin/piherd", "status", "-f",
                                "/etc/piherd/cluster.toml", "--json", "node02")  # fmt: skip
        again = up_events(on)
        assert [e for e in again if e["event"] == "change"] == [], "second up changed things"

        vc.inject("node02", "undervoltage")
        node = wait_for(
            lambda: (n := slurm(on, "node02")).drain and n, 60, "node02 drained by the service"
        )
        assert node.reason == "piherd: under-voltage"
        vc.inject("node02", "clear")
        wait_for(lambda: not slurm(on, "node02").held, 60, "node02 resumed by the service")
        log = head(on, "cat", "/var/log/piherd/watch.log")
        assert "node02 drain: piherd: under-voltage" in log and "node02 resume" in log

        # Turned off in cluster.toml: the next up stops and disables it, then removes
        # what it put there (the unit, piherd, its key and cluster.toml) and the key's entry.
        up_events(with_watch(path, enabled=False))
        state = head(on, "systemctl", "is-active", "piherd-watch.service", check=False)
        assert state.strip() == "inactive"
        gone = ("/etc/systemd/system/piherd-watch.service", "/usr/local/bin/piherd",
                "/etc/piherd/watch_key", "/etc/piherd/cluster.toml")  # fmt: skip
        left = head(on, "sh", "-c", 'for p; do [ -e "$p" ] && echo "$p"; done; true', "sh", *gone)
        assert left.strip() == "", f"left behind: {left}"
        loaded = head(on, "systemctl", "show", "-p", "LoadState", "piherd-watch.service")
        assert loaded.strip() == "LoadState=not-found"
        # The watch key is let in nowhere: its entry is gone (the whole file, when no
        # other key, such as an sshfs storage key, is wanted there).
        assert "piherd-watch" not in head(on, "cat", AUTHORIZED, check=False)
        again = up_events(with_watch(path, enabled=False))
        assert [e for e in again if e["event"] == "change"] == [], "second up changed things"
    finally:
        vc.inject("node02", "clear")
        resume_all(path, vc)
