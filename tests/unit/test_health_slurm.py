"""Parsing what Slurm prints on the head, and the drain/resume commands piherd sends."""

from __future__ import annotations

import pytest

from piherd.health.slurm_state import (
    METRIC_STATES,
    down_argv,
    drain_argv,
    parse_nodes,
    parse_queue,
    parse_state,
    piherd_reason,
    resume_argv,
    split_fields,
)

# `scontrol show node -o` from Slurm 22.05 (Debian bookworm), three nodes.
SCONTROL = (
    "NodeName=node01 Arch=aarch64 CoresPerSocket=4 CPUAlloc=0 CPUEfctv=4 CPUTot=4 CPULoad=0.01 "
    "AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=node01 "
    "NodeHostName=node01 Version=22.05.8 OS=Linux 6.1.0-rpi7-rpi-v8 #1 SMP PREEMPT "
    "Debian 1:6.1.63-1+rpt1 (2023-11-24)  RealMemory=3800 AllocMem=0 FreeMem=3100 "
    "Sockets=1 Boards=1 State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A "
    "MCS_label=N/A Partitions=main BootTime=2026-11-22T01:00:00 "
    "SlurmdStartTime=2026-11-22T01:00:10 LastBusyTime=2026-11-22T01:00:10 "
    "CfgTRES=cpu=4,mem=3800M,billing=4 AllocTRES= CapWatts=n/a CurrentWatts=0 AveWatts=0 "
    "ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s\n"
    "NodeName=node02 Arch=aarch64 CoresPerSocket=4 CPUAlloc=0 CPUTot=4 CPULoad=0.20 "
    "NodeAddr=node02 NodeHostName=node02 Version=22.05.8 OS=Linux 6.1.0 #1 SMP "
    "RealMemory=3800 State=IDLE+DRAIN ThreadsPerCore=1 Partitions=main "
    "CfgTRES=cpu=4,mem=3800M,billing=4 AllocTRES= CapWatts=n/a "
    "Reason=piherd: under-voltage [root@2026-11-22T03:10:00]\n"
    "NodeName=node03 Arch=aarch64 CPUAlloc=4 CPUTot=4 NodeAddr=node03 "
    "State=DOWN+DRAIN+NOT_RESPONDING ThreadsPerCore=1 Partitions=main "
    "Reason=fan broken, see ticket=42 [alice@2026-11-21T10:00:00]\n"
    "NodeName=node04 CPUAlloc=2 CPUTot=4 State=MIXED+DRAIN Reason=piherd: unreachable "
    "[root@2026-11-22T03:11:00]\n"
    "NodeName=node05 CPUAlloc=0 CPUTot=4 State=IDLE* Reason=(null)\n"
)

SQUEUE = (
    "12|RUNNING|alice|1:02|2|node[01-02]|None|mpi hello\n13|PENDING|bob|0:00|1||Resources|a|b|c\n"
)


def test_split_fields_keeps_values_with_spaces() -> None:
    f = split_fields("NodeName=n1 OS=Linux 6.1 #1 SMP CfgTRES=cpu=4,mem=1M Reason=a b c [u@t]")
    assert f["OS"] == "Linux 6.1 #1 SMP"
    assert f["CfgTRES"] == "cpu=4,mem=1M"
    assert f["Reason"] == "a b c [u@t]"


def test_parse_nodes_states_and_reasons() -> None:
    nodes = parse_nodes(SCONTROL)
    assert list(nodes) == ["node01", "node02", "node03", "node04", "node05"]
    n1 = nodes["node01"]
    assert (n1.state, n1.flags, n1.reason, n1.label) == ("idle", frozenset(), "", "idle")
    n2 = nodes["node02"]
    assert n2.drain and n2.drained_by_piherd and n2.label == "drained"
    assert (n2.reason, n2.reason_user, n2.reason_time) == (
        "piherd: under-voltage",
        "root",
        "2026-11-22T03:10:00",
    )
    n3 = nodes["node03"]
    assert n3.down and n3.drain and not n3.drained_by_piherd
    assert n3.reason == "fan broken, see ticket=42" and n3.reason_user == "alice"
    assert n3.label == "down+drained*"
    assert nodes["node04"].label == "draining"
    n5 = nodes["node05"]
    assert n5.state == "idle" and "NOT_RESPONDING" in n5.flags and n5.reason == ""
    assert n5.label == "idle*"


def test_parse_state() -> None:
    assert parse_state("ALLOCATED") == ("allocated", frozenset())
    assert parse_state("DOWN*+DRAIN") == ("down", frozenset({"NOT_RESPONDING", "DRAIN"}))
    assert parse_state("") == ("unknown", frozenset())


@pytest.mark.parametrize(
    ("state", "label", "metric"),
    [
        ("IDLE+COMPLETING", "idle+completing", {"idle", "completing"}),
        ("ALLOCATED+COMPLETING", "allocated+completing", {"allocated", "completing"}),
        ("IDLE+DRAIN+COMPLETING", "draining+completing", {"draining", "completing"}),
        ("DOWN+DRAIN", "down+drained", {"down", "drained"}),
        ("DOWN*+DRAIN", "down+drained*", {"down", "drained", "not_responding"}),
        ("IDLE+CLOUD+POWERED_DOWN", "idle+cloud+powered_down", {"idle", "cloud", "powered_down"}),
        ("IDLE~", "idle+powered_down", {"idle", "powered_down"}),
        (
            "MIXED+MAINT+RESERVED",
            "mixed+maintenance+reserved",
            {"mixed", "maintenance", "reserved"},
        ),
        ("IDLE+REBOOT_REQUESTED", "idle+reboot_requested", {"idle", "reboot_requested"}),
        ("IDLE+SOMETHING_NEW", "idle+other", {"idle", "other"}),
        ("WEIRD", "weird", {"unknown"}),
    ],
)
def test_every_flag_shows_in_label_and_metric_states(state: str, label: str, metric: set) -> None:
    """Every Slurm flag is visible (status, dashboard) and maps into the closed metric set."""
    node = parse_nodes(f"NodeName=n1 CPUTot=4 State={state} Reason=(null)\n")["n1"]
    assert node.label == label
    assert node.metric_states == metric
    assert node.metric_states <= set(METRIC_STATES)


def test_parse_queue() -> None:
    jobs = parse_queue(SQUEUE + "garbage line\n")
    assert [j.job_id for j in jobs] == ["12", "13"]
    assert jobs[0].nodelist == "node[01-02]" and jobs[0].nodes == 2 and jobs[0].name == "mpi hello"
    assert jobs[1].state == "PENDING" and jobs[1].reason == "Resources"
    assert jobs[1].name == "a|b|c"


def test_drain_and_resume_argv() -> None:
    assert drain_argv("node02", piherd_reason(["under-voltage"])) == [
        "scontrol",
        "update",
        "NodeName=node02",
        "State=DRAIN",
        "Reason=piherd: under-voltage",
    ]
    assert drain_argv("n1", "two\nlines")[-1] == "Reason=two lines"
    assert down_argv("node03", "piherd: unreachable") == [
        "scontrol",
        "update",
        "NodeName=node03",
        "State=DOWN",
        "Reason=piherd: unreachable",
    ]
    assert resume_argv("node02") == ["scontrol", "update", "NodeName=node02", "State=RESUME"]
    with pytest.raises(ValueError):
        resume_argv("node02 State=DOWN")
    with pytest.raises(ValueError):
        drain_argv("node02", "  ")
    assert piherd_reason(("a", "b")) == "piherd: a; b"
