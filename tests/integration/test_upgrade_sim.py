"""`piherd upgrade` on a full sim cluster ("upg": a head and four workers, `piherd up`).

Newer package versions come from an apt repository this module builds: a tiny
`piherd-demo` package (v1, v2, and a v3 whose postinst fails) made with dpkg-deb, indexed
with dpkg-scanpackages, served over HTTP on the sim's bridge address (the nodes have no
Internet; their apt reaches this one host directly, the Debian mirror through the sim's
cache as before).
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_browser import free_port, interrupt, piherd, wait_for
from test_watch_slurm import head, slurm, up_events

from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

NAME = "upg"
WORKERS = 4
PACKAGE = "piherd-demo"


def build_deb(repo: Path, version: str, *, failing: bool = False) -> None:
    """piherd-demo VERSION as a .deb in `repo` (a postinst that fails with `failing`)."""
    root = repo.parent / f"build-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/piherd-demo").mkdir(parents=True)
    (root / "usr/share/piherd-demo/version").write_text(version + "\n")
    (root / "DEBIAN/control").write_text(
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: piherd tests <tests@piherd.invalid>\n"
        "Description: a package piherd's upgrade tests roll out\n"
    )
    if failing:
        postinst = root / "DEBIAN/postinst"
        postinst.write_text("#!/bin/sh\necho 'piherd-demo: this version refuses to configure'\n"
                            "exit 1\n")  # fmt: skip
        postinst.chmod(0o755)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root),
         str(repo / f"{PACKAGE}_{version}_all.deb")],
        check=True, capture_output=True,
    )  # fmt: skip
    index = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."],
        cwd=repo, check=True, capture_output=True, text=True,
    )  # fmt: skip
    (repo / "Packages").write_text(index.stdout)


def bring_up(path: Path) -> None:
    """`piherd up`, once more when the first one fails: this module is about the upgrade,
    and on a loaded machine a first `up` of five nodes may run out of time (an apt
    install cut off, a network move not answering in 60 s). `up` is idempotent; the
    second run finishes the job, or fails the test."""
    try:
        up_events(path)
    except AssertionError:
        up_events(path)


def run_all(path: Path, nodes: str, *argv: str) -> dict[str, dict[str, Any]]:
    """`piherd run --sudo --json NODES -- argv`: {node: its result} (all must succeed)."""
    result = subprocess.run(
        [piherd(), "run", "-f", str(path), "--json", "--sudo", nodes, "--", *argv],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = {r["node"]: r for r in map(json.loads, result.stdout.splitlines()) if "node" in r}
    bad = {n: r for n, r in out.items() if r["rc"] != 0 or r["error"]}
    assert out and not bad, f"{argv} failed: {bad or result.stderr}"
    return out


def versions(path: Path) -> dict[str, str]:
    out = run_all(path, "@workers", "dpkg-query", "-W", "-f", "${Version}", PACKAGE)
    return {node: r["stdout"].strip() for node, r in out.items()}


def upgrade(path: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """`piherd upgrade --json ARGS`: its exit status and events."""
    result = subprocess.run(
        [piherd(), "upgrade", "-f", str(path), "--json", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["event"] == "summary", f"no summary: {result.stderr}"
    return result.returncode, events


def summary(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n["node"]: n for n in events[-1]["nodes"]}


@pytest.fixture(scope="module")
def full(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[VirtualCluster, Path, Path]]:
    """The cluster brought up, a repository served, piherd-demo 1 on every worker."""
    repo = tmp_path_factory.mktemp("upg-apt") / "repo"
    repo.mkdir()
    build_deb(repo, "1")
    with sim_cm(NAME, WORKERS) as vc:
        path = vc.cluster_file
        gateway = tomllib.loads(path.read_text())["network"]["gateway"]
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", gateway, "--directory", str(repo),
             str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            bring_up(path)
            source = f"deb [trusted=yes] http://{gateway}:{port}/ ./\n"
            direct = f'Acquire::http::Proxy::{gateway} "DIRECT";\n'
            run_all(path, "@workers", "sh", "-c",
                    'printf %s "$1" > /etc/apt/sources.list.d/piherd-demo.list && '
                    'printf %s "$2" > /etc/apt/apt.conf.d/02piherd-demo-direct', "sh",
                    source, direct)  # fmt: skip
            run_all(path, "@workers", "apt-get", "update", "-q")
            run_all(path, "@workers", "apt-get", "install", "-y", "-q", PACKAGE)
            assert set(versions(path).values()) == {"1"}
            workers = vc.node_names()[1:]
            wait_for(lambda: all(idle(path, n) for n in workers), 120, "workers idle")
            yield vc, path, repo
        finally:
            interrupt(server)  # type: ignore[arg-type]


def idle(path: Path, node: str) -> bool:
    """Whether Slurm has `node` idle; False also when the head did not answer this time
    (a loaded machine: a poll may time out, the next one answers)."""
    try:
        return slurm(path, node).state == "idle"
    except AssertionError:
        return False


def job_field(path: Path, job_id: str, key: str) -> str:
    words = head(path, "scontrol", "show", "job", "-o", job_id).split()
    return next((w.split("=", 1)[1] for w in words if w.startswith(f"{key}=")), "")


def step_time(events: list[dict[str, Any]], node: str, step: str) -> float:
    times = [e["time"] for e in events if e.get("node") == node and e.get("step") == step]
    assert times, f"no {step!r} step for {node}"
    return float(times[0])


def test_rolling_upgrade_canary_then_batches_after_the_running_job(
    full: tuple[VirtualCluster, Path, Path],
) -> None:
    vc, path, repo = full
    build_deb(repo, "2")
    # A job on the canary: the upgrade must drain node02 and wait for it, not kill it.
    out = head(path, "sbatch", "--parsable", "-w", "node02", "-J", "upg-hold",
               "-o", "/tmp/upg-hold-%j.out", "--wrap", "sleep 15")  # fmt: skip
    job_id = out.strip().split(";")[0]
    wait_for(lambda: job_field(path, job_id, "JobState") == "RUNNING", 60, "the job running")

    status, events = upgrade(path, "--canary", "1", "--batch", "50%")

    assert status == 0, events[-1]
    batches = [(e["nodes"], e["canary"]) for e in events if e["event"] == "batch"]
    assert batches == [(["node02"], True), (["node03", "node04"], False), (["node05"], False)]
    # Each batch starts after the previous one is back in service.
    order = [b for b, _ in batches]
    for before, after in itertools.pairwise(order):
        done = max(step_time(events, n, "resumed") for n in before)
        assert done <= min(step_time(events, n, "drain") for n in after)
    # The job ran to its end, and only then were node02's packages touched.
    assert job_field(path, job_id, "JobState") == "COMPLETED"
    assert job_field(path, job_id, "ExitCode") == "0:0"
    end = int(head(path, "date", "-u", "+%s", "-d", job_field(path, job_id, "EndTime")))
    assert step_time(events, "node02", "drain") < end <= int(step_time(events, "node02", "upgrade"))

    report = summary(events)
    assert {n: r["state"] for n, r in report.items()} == dict.fromkeys(vc.node_names()[1:],
                                                                        "upgraded")  # fmt: skip
    assert report["node02"]["packages"] == [f"{PACKAGE} 1 -> 2"]
    assert set(versions(path).values()) == {"2"}
    assert not any(slurm(path, n).held for n in vc.node_names()[1:])


def test_ctrl_c_while_a_job_runs_resumes_the_node_unchanged(
    full: tuple[VirtualCluster, Path, Path],
) -> None:
    """Ctrl-C (stop: finish what changes, resume what waits): the canary waiting for its
    job is back in service, its packages and its job untouched, later nodes never drained."""
    _, path, _ = full
    out = head(path, "sbatch", "--parsable", "-w", "node02", "-J", "upg-long",
               "-o", "/tmp/upg-long-%j.out", "--wrap", "sleep 300")  # fmt: skip
    job_id = out.strip().split(";")[0]
    try:
        wait_for(lambda: job_field(path, job_id, "JobState") == "RUNNING", 60, "the job running")
        proc = subprocess.Popen(
            [piherd(), "upgrade", "-f", str(path), "--json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_for(lambda: slurm(path, "node02").drain, 120, "the canary drained")
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 130, stderr
        events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        assert events[-1]["stopped"].startswith("stopped (Ctrl-C)")
        report = summary(events)
        canary = report["node02"]
        assert canary["state"] == "untouched" and "upgrade" not in canary["times"]
        assert "back in service" in canary["reason"]
        assert not slurm(path, "node02").held, "the canary stayed drained"
        assert job_field(path, job_id, "JobState") == "RUNNING", "the job was touched"
        assert all(report[n]["times"] == {} for n in ("node03", "node04", "node05"))
    finally:
        head(path, "scancel", job_id, check=False)
        wait_for(lambda: idle(path, "node02"), 120, "node02 idle again")


def test_failing_canary_stops_the_rollout_with_the_others_untouched(
    full: tuple[VirtualCluster, Path, Path],
) -> None:
    _, path, repo = full
    build_deb(repo, "3", failing=True)
    try:
        status, events = upgrade(path, "--batch", "2")

        assert status == 1
        report = summary(events)
        assert report["node02"]["state"] == "failed"
        assert "piherd-demo" in report["node02"]["reason"]
        assert "failed" in events[-1]["stopped"] and "canary" in events[-1]["stopped"]
        canary = slurm(path, "node02")
        assert canary.drain and canary.reason.startswith("piherd: upgrade failed")
        others = ["node03", "node04", "node05"]
        for node in others:
            assert report[node]["state"] == "untouched" and report[node]["times"] == {}
            assert not slurm(path, node).held, f"{node} drained"
        assert not [e for e in events if e.get("node") in others]
        now = versions(path)
        assert {n: now[n] for n in others} == dict.fromkeys(others, "2")
    finally:
        head(path, "scontrol", "update", "NodeName=node02", "State=RESUME", check=False)


def test_status_shows_reboot_needed(full: tuple[VirtualCluster, Path, Path]) -> None:
    _, path, _ = full
    run_all(path, "node05", "touch", "/run/reboot-required")
    try:
        result = subprocess.run(
            [piherd(), "status", "-f", str(path), "--json", "node05"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        node = json.loads(result.stdout)["nodes"][0]
        assert node["reboot_needed"] == ["packages ask for it (/run/reboot-required)"]
        assert "reboot needed: packages ask for it (/run/reboot-required)" in node["warnings"]
        table = subprocess.run(
            [piherd(), "status", "-f", str(path), "node05"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "needed" in table.stdout
    finally:
        run_all(path, "node05", "rm", "-f", "/run/reboot-required")


def test_a_node_that_owes_a_reboot_is_rebooted_and_comes_back(
    full: tuple[VirtualCluster, Path, Path],
) -> None:
    """--reboot auto: a node with /run/reboot-required is rebooted (a sim node reboots and
    boots again, as a Pi does), comes back (its uptime starts again: a container keeps its
    host's boot id), passes the health gate and is back in service; /run is empty after a
    boot, so it owes nothing any more."""
    _, path, repo = full
    build_deb(repo, "4")  # over the failing 3 an earlier test left: an upgrade that works
    run_all(path, "node05", "touch", "/run/reboot-required")
    started = time.monotonic()
    status, events = upgrade(path, "node05", "--reboot", "auto")
    report = summary(events)["node05"]
    why = (report["state"], report["reason"], [e for e in events if e.get("node") == "node05"])
    assert status == 0 and report["state"] == "upgraded" and report["rebooted"], why
    assert "reboot" in report["times"] and "gate" in report["times"]
    assert report["packages"] == [f"{PACKAGE} 2 -> 4"]
    after = run_all(path, "node05", "sh", "-c", "cut -d' ' -f1 /proc/uptime; "
                    "test -e /run/reboot-required && echo owed || echo clear")  # fmt: skip
    uptime, owed = after["node05"]["stdout"].split()
    assert float(uptime) < time.monotonic() - started and owed == "clear"
    assert idle(path, "node05")
