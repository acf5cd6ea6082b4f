"""Unit tests of the model: loading, defaults, overrides, folding of problems, locating."""

from __future__ import annotations

import re
import tomllib
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from piherd.model import ConfigError, Problem, expand, fold
from piherd.model.locate import Locator
from piherd.model.nodecheck import fold_values
from piherd.services import load, loads
from piherd.services.dnsmasq import DnsmasqSettings
from piherd.services.slurm import SlurmSettings
from piherd.services.storage import StorageSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE = """\
[cluster]
name = "pi"
[network]
subnet = "192.168.1.0/24"
gateway = "192.168.1.1"
[naming]
prefix = "node"
count = 4
first_address = "192.168.1.11"
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        loads(text)
    return caught.value.problems


def test_defaults() -> None:
    cluster = loads(BASE)
    assert [n.name for n in cluster.nodes] == ["node01", "node02", "node03", "node04"]
    assert cluster.head.name == "node01"
    assert [n.name for n in cluster.workers] == ["node02", "node03", "node04"]
    assert [n.name for n in cluster.compute_nodes] == ["node02", "node03", "node04"]
    assert cluster.domain == "cluster.lan"
    assert cluster.fqdn(cluster.head) == "node01.cluster.lan"
    assert cluster.nodes[0].os == "bookworm"
    assert cluster.nodes[0].network_stack == "networkmanager"
    assert cluster.groups["head"] == ("node01",)
    assert (
        cluster.services.get(SlurmSettings).enabled
        and not cluster.services.get(DnsmasqSettings).enabled
    )


def test_override_keeps_planned_address_and_sets_the_rest() -> None:
    cluster = loads(
        BASE
        + '[[nodes]]\nname = "node03"\nmac = "DC:A6:32:01:02:03"\nos = "bullseye"\ncpus = 4\n'
        + 'groups = ["big"]\n'
    )
    node = cluster.node("node03")
    assert node.address == IPv4Address("192.168.1.13")
    assert node.os == "bullseye" and node.network_stack == "dhcpcd"
    assert node.cpus == 4 and node.memory_mb is None
    assert cluster.groups["big"] == ("node03",)


def test_extra_node_outside_the_plan() -> None:
    cluster = loads(BASE + '[[nodes]]\nname = "login"\naddress = "192.168.1.5"\n')
    assert cluster.node("login").address == IPv4Address("192.168.1.5")
    assert len(cluster.nodes) == 5


def test_head_computes_makes_the_head_compute() -> None:
    cluster = loads(BASE + "[services.slurm]\nhead_computes = true\n")
    assert cluster.head.compute
    assert len(cluster.compute_nodes) == 4


def test_user_groups_node_sets() -> None:
    cluster = loads(BASE + '[groups]\nodd = "node[01,03]"\nrest = "@all!@odd"\n')
    assert cluster.groups["odd"] == ("node01", "node03")
    assert cluster.groups["rest"] == ("node02", "node04")
    assert expand("@rest&@workers", cluster.groups, cluster.groups["all"]) == [
        "node02",
        "node04",
    ]


def test_problems_shared_by_nodes_fold_into_one() -> None:
    text = BASE.replace("count = 4", "count = 10").replace(
        'gateway = "192.168.1.1"',
        'gateway = "192.168.1.1"\nrouter_dhcp_pool = "192.168.1.15-192.168.1.30"',
    )
    found = problems(text)
    assert len(found) == 1
    assert found[0].field == "naming.first_address"
    assert found[0].line == 10
    assert found[0].message.startswith("node[05-10] (192.168.1.15-20): ")


def test_inherited_os_is_reported_at_the_cluster_default_once() -> None:
    text = BASE.replace('name = "pi"', 'name = "pi"\nos = "buster"')
    text += '[[nodes]]\nname = "node02"\nmac = "dc:a6:32:01:02:03"\n'
    found = problems(text)
    assert [(p.line, p.field) for p in found] == [(3, "cluster.os")]
    assert "node[01-04]" in found[0].message


def test_node_without_address_is_still_checked() -> None:
    text = BASE + '[[nodes]]\nname = "extra"\nmac = "nope"\nos = "sarge"\n'
    fields = {p.field for p in problems(text)}
    assert fields == {"nodes[0].address", "nodes[0].mac", "nodes[0].os"}


def test_all_problems_at_once_sorted_by_line() -> None:
    text = BASE.replace('name = "pi"', 'name = "Pi!"').replace("count = 4", "count = 0")
    text += "[health]\ntemp_warn_c = 90\n"
    found = problems(text)
    assert [p.field for p in found] == ["cluster.name", "naming.count", "health.temp_warn_c"]
    assert [p.line for p in found] == sorted(p.line for p in found)


def test_render_limits_output_to_a_screen() -> None:
    many = [Problem(i, f"f{i}", "bad", "fix") for i in range(1, 40)]
    text = ConfigError(many).render()
    assert "39 problems found (27 more not shown" in text
    assert len(text.splitlines()) <= 25
    assert "f39" in ConfigError(many).render(limit=None)


def test_problem_render_format() -> None:
    problem = Problem(12, "nodes[1].mac", "duplicate mac", "every node needs its own", "c.toml")
    assert (
        problem.render()
        == "c.toml:12: nodes[1].mac: duplicate mac\n    hint: every node needs its own"
    )


def test_syntax_error_names_line_and_column() -> None:
    (found,) = problems('[cluster]\nname = "pi\n')
    assert found.line == 2
    assert "column" in found.message
    assert 'name = "pi' in found.hint


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "nope.toml")
    (found,) = caught.value.problems
    assert found.file.endswith("nope.toml") and found.message == "no such file"


def test_relative_paths_are_anchored_at_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE.replace('name = "pi"', 'name = "pi"\nsecrets_dir = "s"'))
    assert load(path).secrets_dir == tmp_path / "s"


def test_locator_lines() -> None:
    text = BASE + "[[nodes]]\nname = 'a'\n[[nodes]]\nname = 'b'\n[services]\nslurm.enabled = true\n"
    locator = Locator(text)
    assert locator.line("naming.count") == 8
    assert locator.line("nodes[1].name") == 13
    assert locator.line("nodes[1].address") == 12  # falls back to the entry's header
    assert locator.line("services.slurm.enabled") == 15
    assert locator.line("nothing.here") == 0


def test_fold_values_runs() -> None:
    values = ["192.168.1.10", "192.168.1.11", "192.168.1.12", "192.168.1.20", "10.0.0.1"]
    assert fold_values(values) == "10.0.0.1,192.168.1.10-12,192.168.1.20"
    assert fold_values(["192.168.1.255", "192.168.2.0"]) == "192.168.1.255-192.168.2.0"
    assert fold_values(["b", "a", "a"]) == "a, b"


def test_fold() -> None:
    assert fold(["node03", "node01", "node02", "node05"]) == "node[01-03,05]"


def test_large_cluster_loads() -> None:
    text = (
        BASE.replace("count = 4", "count = 400\nwidth = 3")
        .replace("/24", "/16")
        .replace("192.168.1.0/16", "192.168.0.0/16")
    )
    cluster = loads(text + '[[services.slurm.partitions]]\nnodes = "@workers"\n')
    assert len(cluster.nodes) == 400
    assert cluster.nodes[-1].name == "node400"
    assert cluster.nodes[-1].address == IPv4Address("192.168.1.11") + 399


@pytest.mark.parametrize(
    ("example", "names", "first"),
    [
        ("seed-cluster01.toml", "cluster[01-04]", "192.168.1.128"),
        ("seed-rpi.toml", "rpi[1-4]", "192.168.0.101"),
        ("seed-rpinode.toml", "rpinode[01-15]", "192.168.2.1"),
        ("cluster.toml", "node[01-04]", "192.168.1.11"),
    ],
)
def test_seed_examples(example: str, names: str, first: str) -> None:
    cluster = load(EXAMPLES / example)
    assert fold(n.name for n in cluster.nodes) == names
    assert cluster.nodes[0].address == IPv4Address(first)
    assert cluster.head == cluster.nodes[0]


def test_rpinode_example_reserves_every_node_by_mac() -> None:
    cluster = load(EXAMPLES / "seed-rpinode.toml")
    macs = [n.mac for n in cluster.nodes]
    assert all(m and m.startswith("b8:27:eb:") for m in macs)
    assert len(set(macs)) == 15
    span = cluster.services.get(DnsmasqSettings).dhcp_range
    assert span == (IPv4Address("192.168.2.20"), IPv4Address("192.168.2.250"))


def test_short_ranges() -> None:
    text = BASE.replace(
        'gateway = "192.168.1.1"', 'gateway = "192.168.1.1"\nrouter_dhcp_pool = "192.168.1.100-199"'
    )
    pool = loads(text).network.router_dhcp_pool
    assert pool == (IPv4Address("192.168.1.100"), IPv4Address("192.168.1.199"))


def test_docs_snippets() -> None:
    """The smallest file of docs/cluster-toml.md is what it says; every snippet is TOML."""
    docs = (EXAMPLES.parent / "docs" / "cluster-toml.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", docs, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        tomllib.loads(block)
    smallest = loads(blocks[0])
    assert [n.name for n in smallest.nodes] == ["node01", "node02", "node03", "node04"]
    assert str(smallest.nodes[-1].address) == "192.168.1.14"
    assert smallest.services.get(StorageSettings).export == "/srv/cluster"


def test_groups_may_use_groups_defined_later() -> None:
    cluster = loads(BASE + '[groups]\nbig = "@rack2&@compute"\nrack2 = "node[03-04]"\n')
    assert cluster.groups["big"] == ("node03", "node04")


def test_groups_in_a_circle() -> None:
    found = problems(BASE + '[groups]\na = "@b"\nb = "@a,node01"\n')
    assert [(p.line, p.field) for p in found] == [(11, "groups.a"), (12, "groups.b")]
    assert "circle" in found[0].message
