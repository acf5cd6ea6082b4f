"""Desired state from render, and what is remembered of nodes that are down."""

from __future__ import annotations

from pathlib import Path

from piherd.facts.node_facts import NodeFacts
from piherd.ops.desired import DesiredState, Remembered
from piherd.secrets import Secrets
from piherd.services import load

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"
SECRETS = Secrets(
    b"k" * 1024,
    b"private",
    "ssh-ed25519 AAAAstorage piherd-storage",
    b"watch-private",
    "ssh-ed25519 AAAAwatch piherd-watch",
)


def facts(name: str, cpus: int, keys: tuple[str, ...] = ()) -> NodeFacts:
    return NodeFacts(node=name, cpus=cpus, memory_mb=4000, host_keys=keys)


def slurm_conf(nodes: dict) -> bytes:  # type: ignore[type-arg]
    return next(f.content for f in nodes["node01"].files if f.path == "/etc/slurm/slurm.conf")


def test_remembered_round_trip_and_garbage() -> None:
    r = Remembered({"node02": (4, 3800)}, {"node02": ("ssh-ed25519 AAAA",)}, (1000, 1000))
    assert Remembered.from_json(r.to_json()) == r
    assert Remembered.from_json("{not json") == Remembered()
    assert Remembered.from_json('{"hardware": {"x": [1]}}') == Remembered()


def test_node_down_keeps_its_hardware_in_shared_files() -> None:
    cluster = load(EXAMPLE)
    build = DesiredState(SECRETS)
    everyone = {n.name: facts(n.name, 4, (f"ssh-ed25519 AAAA{n.name}",)) for n in cluster.nodes}
    before = build(cluster, everyone)
    without = {n: f for n, f in everyone.items() if n != "node03"}
    after = DesiredState(SECRETS, Remembered.from_json(build.remembered.to_json()))(
        cluster, without
    )
    assert slurm_conf(after) == slurm_conf(before)
    assert [f.content for f in after["node02"].files] == [f.content for f in before["node02"].files]
    # and with nothing remembered, node03's absence does change them
    fresh = DesiredState(SECRETS)(cluster, without)
    assert [f.content for f in fresh["node02"].files] != [f.content for f in before["node02"].files]


def test_desired_node_from_render() -> None:
    cluster = load(EXAMPLE)
    nodes = DesiredState(SECRETS)(cluster, {})
    head = nodes["node01"]
    assert "slurmctld" in head.packages
    assert any(u.name == "slurmctld.service" for u in head.units)
    key = next(f for f in head.files if f.path == "/etc/munge/munge.key")
    assert key.secret and key.mode == 0o400 and key.owner == "munge"
    assert nodes["node02"].hostname == "node02"


def test_packages_come_from_the_head_through_its_cache_or_its_only_resolver(
    tmp_path: Path,
) -> None:
    """A worker's install waits for the head only when it needs the head to fetch: the
    package cache, or dnsmasq as the node's only name server."""
    text = EXAMPLE.read_text()

    def from_head(*edits: tuple[str, str]) -> dict[str, bool]:
        edited = text
        for old, new in edits:
            assert old in edited
            edited = edited.replace(old, new)
        path = tmp_path / "cluster.toml"
        path.write_text(edited)
        return {n: d.packages_from_head for n, d in DesiredState(SECRETS)(load(path), {}).items()}

    assert not any(from_head().values())
    cache = (
        "[services.package_cache]\nenabled = false",
        "[services.package_cache]\nenabled = true",
    )
    assert from_head(cache) == {"node01": False, "node02": True, "node03": True, "node04": True}
    dnsmasq = (
        "[services.dnsmasq]\nenabled = false",
        "[services.dnsmasq]\nenabled = true\ndhcp = false",
    )
    assert not any(from_head(dnsmasq).values())  # the router still resolves
    no_dns = ('dns = ["192.168.1.1"]', "dns = []")
    assert from_head(dnsmasq, no_dns)["node02"] and not from_head(no_dns)["node02"]
