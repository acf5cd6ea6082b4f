"""`piherd upgrade` without nodes: batch sizes, the rollout order, apt output, the health
gate, the reboot signals, the Debian command lines, watch leaving upgrade drains alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.app.upgrade import batches_for, new_outcomes
from piherd.app.upgrade_steps import UpgradeOptions, gate_problems
from piherd.cli.main import cli
from piherd.health.drain_policy import WatchMachine
from piherd.health.probe import NodeHealth, parse_reboot
from piherd.health.report import node_dict
from piherd.health.slurm_state import (
    SlurmNode,
    drain_argv,
    node_jobs_argv,
    requeue_argv,
)
from piherd.health.verdicts import Level, Verdict, evaluate
from piherd.model.cluster import HealthRules
from piherd.ops import debian
from piherd.ops.rollout import (
    BatchSize,
    apt_failure,
    has_rebooted,
    parse_batch,
    plan_batches,
    simulated_packages,
    upgraded_packages,
)
from piherd.services import load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"
NODES = [f"n{i:02d}" for i in range(1, 11)]


@pytest.mark.parametrize(
    ("text", "size"),
    [("1", BatchSize(count=1)), ("12", BatchSize(count=12)), ("25%", BatchSize(percent=25)),
     ("100%", BatchSize(percent=100))],
)  # fmt: skip
def test_batch_sizes(text: str, size: BatchSize) -> None:
    assert parse_batch(text) == size


@pytest.mark.parametrize(
    "text", ["0", "0%", "101%", "-1", "1.5", "nan", "1e3", "4 nodes", "4\n5", "", "%", "123456"]
)
def test_bad_batch_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="batch size"):
        parse_batch(text)


def test_canary_first_then_batches_head_last() -> None:
    names = ["head", *NODES]
    batches = plan_batches(names, canary=1, batch=BatchSize(count=4), last=["head"])
    assert batches == [["n01"], NODES[1:5], NODES[5:9], NODES[9:], ["head"]]
    # A percentage is of every node in the rollout (11 -> 3 at 25%), never zero.
    by_share = plan_batches(names, canary=2, batch=BatchSize(percent=25), last=["head"])
    assert [len(b) for b in by_share] == [2, 3, 3, 2, 1]
    assert BatchSize(percent=1).of(3) == 1
    assert plan_batches(NODES[:2], canary=0, batch=BatchSize(count=5)) == [NODES[:2]]


def test_every_node_once_in_some_batch() -> None:
    for canary in (0, 1, 3, 20):
        for size in (BatchSize(count=1), BatchSize(count=3), BatchSize(percent=50)):
            batches = plan_batches(NODES, canary=canary, batch=size)
            assert [n for b in batches for n in b] == NODES
            assert all(b for b in batches)


def test_rollout_of_the_example_cluster() -> None:
    cluster = load(EXAMPLE)
    workers = list(cluster.groups["workers"])
    everything = list(cluster.groups["all"])
    head = cluster.head.name
    options = UpgradeOptions(canary=1, batch=BatchSize(count=2))
    assert batches_for(cluster, everything, options)[-1] == [head]
    # A release upgrade: the head (slurmctld) first, since slurmd may not be newer.
    release = UpgradeOptions(canary=1, release="trixie")
    assert batches_for(cluster, everything, release)[0] == [head]
    outcomes = new_outcomes(cluster, workers, options)
    assert list(outcomes) == workers
    first = outcomes[workers[0]]
    assert first.canary and first.batch == 1 and first.state == "untouched"
    assert not any(o.canary for o in list(outcomes.values())[1:])


def test_packages_from_apt_output() -> None:
    out = (
        "Preparing to unpack .../piherd-demo_2_all.deb ...\n"
        "Unpacking piherd-demo (2) over (1) ...\n"
        "Unpacking linux-image-6.1.0-29-arm64 (6.1.123-1) ...\n"
        "Setting up piherd-demo (2) ...\n"
    )
    assert upgraded_packages(out) == (
        "piherd-demo 1 -> 2",
        "linux-image-6.1.0-29-arm64 (new) 6.1.123-1",
    )
    simulated = "Inst piherd-demo [1] (2 localhost [all])\nConf piherd-demo (2 localhost [all])\n"
    assert simulated_packages(simulated) == ("piherd-demo 1 -> 2",)
    failure = (
        "Setting up piherd-demo (3) ...\n"
        "dpkg: error processing package piherd-demo (--configure):\n"
        " installed piherd-demo package post-installation script subprocess returned error exit "
        "status 1\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n"
    )  # fmt: skip
    why = apt_failure(failure)
    assert why.startswith("dpkg: error processing package piherd-demo")
    assert "post-installation script" in why and "E: Sub-process" in why
    assert apt_failure("") == "no output"


def health(**kw: object) -> NodeHealth:
    values: dict[str, object] = {"node": "n02", "reachable": True}
    values.update(kw)
    return NodeHealth(**values)  # type: ignore[arg-type]


def test_health_gate() -> None:
    ok = Verdict("n02", Level.OK)
    idle_drained = SlurmNode("n02", "idle", frozenset({"DRAIN"}), "piherd: upgrade")
    good = health(services={"slurmd": "active"}, slurm=idle_drained)
    assert gate_problems(good, ok, compute=True) == []
    dead = health(services={"slurmd": "failed"}, slurm=SlurmNode("n02", "down", frozenset()))
    assert gate_problems(dead, ok, compute=True) == ["slurmd failed", "slurmctld sees it down"]
    no_answer = health(slurm=SlurmNode("n02", "idle", frozenset({"NOT_RESPONDING"})))
    assert gate_problems(no_answer, ok, compute=True) == ["slurmctld sees it idle*"]
    assert gate_problems(health(), ok, compute=True) == ["not known to slurmctld"]
    assert gate_problems(health(), ok, compute=False) == []
    storage = Verdict("n02", Level.CRITICAL, ("shared storage not mounted",))
    assert gate_problems(good, storage, compute=True) == ["shared storage not mounted"]
    gone = NodeHealth("n02", reachable=False, error="timeout")
    assert gate_problems(gone, Verdict("n02", Level.CRITICAL, ("unreachable",)), compute=False)


def test_reboot_needed_signals() -> None:
    assert parse_reboot([]) == ()
    assert parse_reboot(["required", "running 6.1.0-28-amd64"]) == (
        "packages ask for it (/run/reboot-required)",
    )
    debian_new = ["running 6.1.0-28-amd64", "installed 6.1.0-28-amd64", "installed 6.1.0-29-amd64"]
    assert parse_reboot(debian_new) == ("new kernel 6.1.0-29-amd64 (running 6.1.0-28-amd64)",)
    # A Pi image carries kernels for other boards: only the running flavour counts.
    pi = [
        "running 6.6.51+rpt-rpi-v8",
        "installed 6.6.51+rpt-rpi-v8",
        "installed 6.6.62+rpt-rpi-2712",
    ]
    assert parse_reboot(pi) == ()
    pi_new = [*pi, "installed 6.6.62+rpt-rpi-v8"]
    assert parse_reboot(pi_new) == ("new kernel 6.6.62+rpt-rpi-v8 (running 6.6.51+rpt-rpi-v8)",)
    # The running kernel's modules removed by the upgrade: the other one is newer anyway.
    assert parse_reboot(["running 6.1.0-28-amd64", "installed 6.1.0-29-amd64"])
    # A container: the host's kernel, no kernel of its own installed.
    assert parse_reboot(["running 6.18.44-fc-v769"]) == ()
    owed = health(reboot_needed=("new kernel x",))
    verdict = evaluate(owed, HealthRules())
    assert verdict.level == Level.WARN and verdict.warnings == ("reboot needed: new kernel x",)
    # What `status --json` and the dashboard read.
    assert node_dict(owed, verdict, "worker")["reboot_needed"] == ["new kernel x"]


def test_watch_leaves_the_upgrades_drains_alone() -> None:
    m = WatchMachine(resume_after=1)
    for reason in ("piherd: upgrade", "piherd: upgrade failed: dpkg: error"):
        node = SlurmNode("node02", "idle", frozenset({"DRAIN"}), reason, "root")
        assert node.drained_by_piherd and node.drained_for_upgrade
        ok, gone = Verdict("node02", Level.OK), Verdict("node02", Level.CRITICAL, ("unreachable",))
        # Healthy: not resumed; rebooting (unreachable): not marked down or re-drained.
        for round_, verdict in enumerate([ok, ok, gone, gone, gone, ok]):
            assert m.step(float(round_), [verdict], {"node02": node})[0] == []
    other = SlurmNode("node02", "idle", frozenset({"DRAIN"}), "piherd: upgraded-kernel-x", "root")
    assert not other.drained_for_upgrade


def test_slurm_command_lines() -> None:
    assert requeue_argv("42") == ["scontrol", "requeue", "42"]
    with pytest.raises(ValueError):
        requeue_argv("42;reboot")
    assert node_jobs_argv("node02")[:4] == ["squeue", "-h", "-w", "node02"]
    with pytest.raises(ValueError):
        node_jobs_argv("-node02")
    assert drain_argv("node02", "piherd: upgrade failed: a\nb")[-1] == (
        "Reason=piherd: upgrade failed: a b"
    )


def test_debian_upgrade_command_lines() -> None:
    upgrade = debian.apt_upgrade()
    assert upgrade[:2] == ["env", "DEBIAN_FRONTEND=noninteractive"]
    assert "upgrade" in upgrade and "--with-new-pkgs" in upgrade and "-y" in upgrade
    assert "Dpkg::Options::=--force-confold" in upgrade
    assert "Dpkg::Options::=--force-confdef" in upgrade
    assert "full-upgrade" in debian.apt_upgrade(full=True)
    assert debian.apt_upgrade_simulated()[:2] == ["apt-get", "-s"]
    assert debian.reboot_soon()[0] == "systemd-run" and debian.reboot_soon()[-2:] == [
        "systemctl",
        "reboot",
    ]
    for bad in ("Trixie", "trixie;reboot", "", "a b", "../x"):
        with pytest.raises(ValueError):
            debian.switch_release("bookworm", bad)


def test_release_switch_changes_suites_only(tmp_path: Path) -> None:
    apt = tmp_path / "etc/apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "deb http://deb.debian.org/debian bookworm main\n"
        "deb http://mirror.example/bookworm/ bookworm-security main\n"
        "# deb-src http://deb.debian.org/debian bookworm main\n"
    )
    (apt / "sources.list.d/raspi.sources").write_text(
        "Types: deb\nURIs: http://archive.raspberrypi.com/debian/\n"
        "Suites: bookworm bookworm-updates bookworm-backports\nComponents: main\n"
    )
    (apt / "sources.list.d/other.list").write_text("deb http://x.example/ bookwormish main\n")
    subprocess.run([*debian.switch_release("bookworm", "trixie"), str(tmp_path)], check=True)
    assert (apt / "sources.list").read_text() == (
        "deb http://deb.debian.org/debian trixie main\n"
        "deb http://mirror.example/bookworm/ trixie-security main\n"
        "# deb-src http://deb.debian.org/debian trixie main\n"
    )
    assert (
        "Suites: trixie trixie-updates trixie-backports\n"
        in (apt / "sources.list.d/raspi.sources").read_text()
    )
    assert "bookwormish" in (apt / "sources.list.d/other.list").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "batch size"),
        (["--batch", "200%"], "batch size"),
        (["--canary", "-1"], "canary"),
        (["--release", "bookworm"], "already run bookworm"),
        (["--release", "bullseye"], "already run bullseye or later"),
        (["--reboot", "sometimes"], "reboot"),
        (["--gate-timeout", "nan"], "gate-timeout"),
        (["node99"], "node99"),
    ],
)
def test_bad_input_exits_2_without_traceback(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["upgrade", "-f", str(EXAMPLE), "--dry-run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


BOOT_A = "6f1c0d0e-2b7a-4f5e-9a51-0c1d2e3f4a5b"
BOOT_B = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"


def test_a_reboot_shows_as_a_new_boot_id_or_a_fresh_uptime() -> None:
    before = f"{BOOT_A}\n5000.10 9000.00\n"
    assert has_rebooted(before, f"{BOOT_B}\n12.00 20.00\n", 30.0)  # a Pi: new id
    assert has_rebooted(before, f"{BOOT_A}\n12.00 20.00\n", 30.0)  # a container: new uptime
    assert not has_rebooted(before, f"{BOOT_A}\n5030.10 9060.00\n", 30.0)  # not yet
    # A node that had booted just before: its uptime grows with the wait, never below it.
    assert not has_rebooted(f"{BOOT_A}\n1.00 1.00\n", f"{BOOT_A}\n31.00 60.00\n", 30.0)
    assert not has_rebooted(before, "", 30.0) and not has_rebooted("", before, 30.0)
    assert not has_rebooted(before, f"{BOOT_A}\nnot-a-number\n", 30.0)
