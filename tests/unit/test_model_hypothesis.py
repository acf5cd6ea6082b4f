"""Property tests of the model: random valid plans load; nothing crashes the loader."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

import tomlkit
from ClusterShell.NodeSet import NodeSet
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_examples import examples
from piherd.model import ConfigError, expand, fold
from piherd.model.locate import Locator
from piherd.services import loads

PREFIX = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z]", fullmatch=True) | st.from_regex(
    r"[a-z]", fullmatch=True
)


@st.composite
def naming_plans(draw: st.DrawFn) -> dict[str, Any]:
    """A [naming] plan, a subnet and a first address that together are valid."""
    width = draw(st.integers(1, 4))
    start = draw(st.integers(0, 20))
    most = min(10**width - start, 300)
    if most < 1:
        start, most = 0, min(10**width, 300)
    length = draw(st.integers(16, 29))
    size = 2 ** (32 - length)
    count = draw(st.integers(1, min(most, size - 3)))
    network = draw(st.integers(0, 2**32 - 1)) & ~(size - 1) & 0xFFFFFFFF
    subnet = IPv4Network((network, length))
    # .1 is the gateway; nodes from .2 up to the address before broadcast
    offset = draw(st.integers(2, size - 1 - count))
    return {
        "prefix": draw(PREFIX),
        "width": width,
        "start": start,
        "count": count,
        "subnet": subnet,
        "first": subnet.network_address + offset,
    }


def plan_text(plan: dict[str, Any]) -> str:
    doc = {
        "cluster": {"name": "prop"},
        "network": {
            "subnet": str(plan["subnet"]),
            "gateway": str(plan["subnet"].network_address + 1),
        },
        "naming": {
            "prefix": plan["prefix"],
            "width": plan["width"],
            "start": plan["start"],
            "count": plan["count"],
            "first_address": str(plan["first"]),
        },
        "services": {
            "slurm": {"head_computes": plan["count"] == 1},
            "storage": {"enabled": plan["count"] > 1},
        },
    }
    return tomlkit.dumps(doc)


@settings(max_examples=examples(150))
@given(naming_plans())
def test_valid_plans_load_with_unique_names_and_addresses(plan: dict[str, Any]) -> None:
    cluster = loads(plan_text(plan))
    names = [n.name for n in cluster.nodes]
    addresses = [n.address for n in cluster.nodes]
    assert len(cluster.nodes) == plan["count"]
    assert len(set(names)) == len(names)
    assert len(set(addresses)) == len(addresses)
    assert all(a in plan["subnet"] for a in addresses)
    assert addresses[0] == plan["first"]
    assert names[0] == f"{plan['prefix']}{plan['start']:0{plan['width']}d}"
    assert cluster.head.name == names[0]
    assert cluster.groups["all"] == tuple(names)


@settings(max_examples=examples(300))
@given(st.text(max_size=400), st.text(max_size=40))
def test_locator_never_crashes(text: str, path: str) -> None:
    line = Locator(text).line(path)
    assert 0 <= line <= len(text.splitlines()) + 1


@settings(max_examples=examples(300))
@given(st.text(max_size=400))
def test_loader_only_raises_config_error_on_any_text(text: str) -> None:
    try:
        loads(text)
    except ConfigError as exc:
        assert exc.problems
        assert all(p.line >= 0 for p in exc.problems)


KEYS = st.sampled_from(
    [
        "cluster", "network", "naming", "nodes", "services", "groups", "health", "name",
        "subnet", "gateway", "router_dhcp_pool", "prefix", "width", "count", "first_address",
        "head", "address", "mac", "serial", "os", "role", "slurm", "storage", "dnsmasq",
        "dhcp_range", "partitions", "nodes", "clients", "enabled", "kind", "upstream", "cpus",
    ]
)  # fmt: skip
SCALARS = (
    st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.sampled_from(["192.168.1.0/24", "192.168.1.11", "node[01-04]", "@all", "", "x"])
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=examples(300))
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_loader_only_raises_config_error_on_any_structure(data: dict[str, Any]) -> None:
    try:
        text = tomlkit.dumps(data)
    except (TypeError, ValueError):
        return  # not representable as TOML (e.g. a list of mixed tables and values)
    try:
        cluster = loads(text)
    except ConfigError as exc:
        assert exc.problems
    else:  # whatever loads is usable: a head, unique names and addresses
        assert cluster.nodes
        assert cluster.head.is_head
        assert len({n.name for n in cluster.nodes}) == len(cluster.nodes)
        assert len({n.address for n in cluster.nodes}) == len(cluster.nodes)


NAMES = st.builds(
    lambda prefix, index, width: f"{prefix}{index:0{width}d}",
    st.sampled_from(["node", "rpi", "rpinode", "cluster", "n-"]),
    st.integers(0, 2000),
    st.integers(1, 4),
)


@settings(max_examples=examples(300))
@given(st.sets(NAMES, min_size=1, max_size=60))
def test_fold_expand_round_trip(names: set[str]) -> None:
    folded = fold(names)
    expanded = expand(folded, {}, known=names)
    assert sorted(expanded) == sorted(names)
    assert len(expanded) == len(names)


ANY_NAMES = NAMES | st.from_regex(r"[a-z]{1,3}[0-9]{0,3}([a-z.-]{1,2}[0-9]{0,3})?", fullmatch=True)


@settings(max_examples=examples(300))
@given(st.lists(ANY_NAMES, max_size=60))
def test_fold_is_clustershells_fold(names: list[str]) -> None:
    """The fast fold (one RangeSet per name pattern) writes what NodeSet.fromlist writes."""
    assert fold(names) == str(NodeSet.fromlist(names))


@settings(max_examples=examples(100))
@given(naming_plans(), st.data())
def test_groups_and_node_sets_resolve(plan: dict[str, Any], data: st.DataObject) -> None:
    cluster = loads(plan_text(plan))
    names = [n.name for n in cluster.nodes]
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    groups = dict(cluster.groups)
    groups["chosen"] = tuple(chosen)
    assert sorted(expand("@chosen", groups, names)) == sorted(chosen)
    assert set(expand("@all!@chosen", groups, names)) == set(names) - set(chosen)
    assert IPv4Address(int(plan["first"]) + len(names) - 1) == cluster.nodes[-1].address
