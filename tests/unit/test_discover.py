"""discover's pure parts: Pi MACs, the neighbour table, matching, naming, cluster.toml edits."""

from __future__ import annotations

import asyncio
import json
import socket
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from piherd.app.discovery import DiscoverError, sweep_targets, to_record
from piherd.discover.assign import Assigner
from piherd.discover.match import Found, State, match
from piherd.discover.neighbours import parse_neighbours
from piherd.discover.pi_macs import is_pi
from piherd.discover.record import RecordError, with_found
from piherd.discover.sweep import Answer, sweep
from piherd.model.problems import ConfigError
from piherd.services import load

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"
A = IPv4Address


def cluster_with(tmp_path: Path, extra: str, edit: tuple[str, str] | None = None):  # type: ignore[no-untyped-def]
    text = EXAMPLE.read_text()
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    path = tmp_path / "cluster.toml"
    path.write_text(text + extra)
    return load(path)


def test_pi_prefixes_and_the_clusters_own() -> None:
    assert is_pi("DC:A6:32:01:02:03") and is_pi("2c:cf:67:00:00:01")
    assert not is_pi("00:11:22:33:44:55")
    assert is_pi("00:11:22:33:44:55", ["00:11:22"])


def test_neighbour_table_keeps_answers_in_the_subnet_only() -> None:
    text = json.dumps([
        {"dst": "10.0.0.12", "lladdr": "DC:A6:32:00:00:01", "confirmed": 0, "state": ["REACHABLE"]},
        {"dst": "10.0.0.13", "lladdr": "dc:a6:32:00:00:02", "confirmed": 95, "state": ["STALE"]},
        {"dst": "10.0.0.14", "state": ["FAILED"]},
        {"dst": "10.0.0.15", "lladdr": "dc:a6:32:00:00:03", "state": ["INCOMPLETE"]},
        {"dst": "10.0.0.16", "lladdr": "dc:a6:32:00:00:06", "confirmed": 22,
         "state": ["REACHABLE"]},
        {"dst": "10.0.0.17", "lladdr": "dc:a6:32:00:00:07", "confirmed": 0, "state": ["PERMANENT"]},
        {"dst": "10.9.0.1", "lladdr": "dc:a6:32:00:00:04", "state": ["REACHABLE"]},
        {"dst": "fe80::1", "lladdr": "dc:a6:32:00:00:05", "state": ["REACHABLE"]},
    ])  # fmt: skip
    table = parse_neighbours(text, IPv4Network("10.0.0.0/24"))
    # Confirmed during a 2 s sweep: only .12. A REACHABLE entry confirmed 22 s ago (a
    # machine gone since) does not count, nor a STALE or hand-set one.
    assert {str(a): (n.mac, n.confirmed_within(2.0)) for a, n in table.items()} == {
        "10.0.0.12": ("dc:a6:32:00:00:01", True),
        "10.0.0.13": ("dc:a6:32:00:00:02", False),
        "10.0.0.16": ("dc:a6:32:00:00:06", False),
        "10.0.0.17": ("dc:a6:32:00:00:07", False),
    }


def test_every_state_of_a_match(tmp_path: Path) -> None:
    nodes = """
[[nodes]]
name = "node02"
mac = "dc:a6:32:00:00:02"
[[nodes]]
name = "node03"
mac = "dc:a6:32:00:00:03"
bootstrap_address = "192.168.1.150"
"""
    node04 = '[[nodes]]\nname = "node04"'
    cluster = cluster_with(tmp_path, "", (node04, nodes + node04))
    found = [
        Found(A("192.168.1.11"), "dc:a6:32:00:00:01", Answer.SSH),  # node01, no MAC yet
        Found(A("192.168.1.120"), "dc:a6:32:00:00:02", Answer.SSH),  # node02 elsewhere
        Found(A("192.168.1.150"), "dc:a6:32:00:00:03", Answer.REFUSED),  # node03 at bootstrap
        Found(A("192.168.1.121"), "e4:5f:01:00:00:09", Answer.SSH),  # a new Pi
        Found(A("192.168.1.122"), "00:11:22:33:44:55", Answer.SSH),  # not a Pi: left out
    ]
    rows = {(r.state, r.node, str(r.address), r.ssh) for r in match(cluster, found)}
    assert rows == {
        (State.KNOWN, "node01", "192.168.1.11", "open"),
        (State.MOVED, "node02", "192.168.1.120", "open"),
        (State.KNOWN, "node03", "192.168.1.150", "closed"),
        (State.NEW, None, "192.168.1.121", "open"),
    }
    # Another machine at node02's own address; node02 itself not seen.
    other = [Found(A("192.168.1.12"), "dc:a6:32:00:00:99", Answer.SSH)]
    states = {(r.state, r.node) for r in match(cluster, other)}
    assert states == {
        (State.MISMATCHED, None),
        (State.MISSING, "node02"),
        (State.MISSING, "node03"),
    }
    updates = to_record(cluster, match(cluster, found))
    assert updates == {
        "node01": {"mac": "dc:a6:32:00:00:01"},
        "node02": {"bootstrap_address": "192.168.1.120"},
    }


def test_naming_waits_until_one_unnamed_pi_is_up() -> None:
    assigner = Assigner(["node03", "node04"])
    assert assigner.round([]) == ({}, [])
    assert assigner.round(["m1", "m2"]) == ({}, ["m1", "m2"])  # two at once: no guess
    assert assigner.round(["m2"]) == ({"m2": "node03"}, [])
    assert assigner.round(["m2", "m1"]) == ({"m1": "node04"}, [])
    assert assigner.round(["m3"]) == ({}, [])  # no names left
    assert assigner.given == {"m2": "node03", "m1": "node04"}


def test_a_refused_pi_gives_its_name_back_and_is_never_named() -> None:
    assigner = Assigner(["node03", "node04"])
    assert assigner.round(["m1"]) == ({"m1": "node03"}, [])
    assigner.refuse("m1")  # it did not present the cluster's first-boot key
    assert assigner.round(["m1"]) == ({}, [])
    assert assigner.round(["m1", "m2"]) == ({"m2": "node03"}, [])  # m1 no longer counts
    assert assigner.given == {"m2": "node03"} and assigner.names == ["node04"]


def test_found_values_written_with_comments_kept(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    out = with_found(
        text,
        {
            "node01": {"mac": "dc:a6:32:00:00:01"},
            "node03": {"mac": "dc:a6:32:00:00:03", "bootstrap_address": "192.168.1.150"},
        },
    )
    assert out.startswith(text.split("[[nodes]]")[0])  # everything before, as it was
    assert "memory_mb = 8192                          # a Pi 4 with 8 GB" in out
    path = tmp_path / "cluster.toml"
    path.write_text(out)
    cluster = load(path)
    assert cluster.node("node01").mac == "dc:a6:32:00:00:01"
    assert cluster.node("node01").memory_mb == 8192
    assert cluster.node("node03").bootstrap_address == "192.168.1.150"
    assert with_found(out, {"node03": {"mac": "dc:a6:32:00:00:03"}}) == out  # idempotent


@pytest.mark.parametrize(
    "values",
    [{"mac": "dc:a6:32:00:00:01\nx"}, {"mac": "zz"}, {"address": "1.2.3.4"},
     {"bootstrap_address": "10.0.0.1\n[cluster]"}],
)  # fmt: skip
def test_found_values_that_would_change_the_file_are_refused(values: dict[str, str]) -> None:
    with pytest.raises((RecordError, ValueError)):
        with_found(EXAMPLE.read_text(), {"node01": values})


def test_sweep_targets_are_the_pool_and_the_nodes(tmp_path: Path) -> None:
    cluster = load(EXAMPLE)
    targets = sweep_targets(cluster, whole_subnet=False)
    assert (
        len(targets) == 100 + 4 and A("192.168.1.100") in targets and A("192.168.1.14") in targets
    )
    assert len(sweep_targets(cluster, whole_subnet=True)) == 254
    big = cluster_with(tmp_path, "", ('subnet = "192.168.1.0/24"', 'subnet = "192.0.0.0/8"'))
    with pytest.raises(DiscoverError, match="too many to sweep"):
        sweep_targets(big, whole_subnet=True)


def test_pi_mac_prefixes_are_checked(tmp_path: Path) -> None:
    pool = 'router_dhcp_pool = "192.168.1.100-192.168.1.199"'
    edit = (pool, pool + '\npi_mac_prefixes = ["00:11:22", "00:1\\n"]')
    with pytest.raises(ConfigError, match=r"network\.pi_mac_prefixes"):
        cluster_with(tmp_path, "", edit)


def test_sweep_tells_a_listener_from_a_refusal() -> None:
    """Real sockets on this machine: one listening, one closed. (Silence, a powered-off
    node, is tested on the sim: test_discover_sim.py.)"""
    listener = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    port, closed_port = listener.getsockname()[1], closed.getsockname()[1]
    closed.close()
    try:
        here = asyncio.run(sweep([A("127.0.0.1")], port, timeout=2))
        refused = asyncio.run(sweep([A("127.0.0.1")], closed_port, timeout=2))
    finally:
        listener.close()
    local = A("127.0.0.1")
    assert (here, refused) == ({local: Answer.SSH}, {local: Answer.REFUSED})
