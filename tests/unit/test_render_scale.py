"""Render and check at the scale of big sites: 1,000 and 10,000 nodes, every file right.

Times are not asserted here (bench/render_bench.py measures them); these tests check
that the files that list every node are whole and the same on every node, and that the
node sets Slurm gets are folded right, at sizes where a per-node fold used to take
minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from piherd.app.exact_files import render_files
from piherd.model import Cluster, expand
from piherd.services import loads


def scale_toml(count: int, secrets: Path) -> str:
    """A valid cluster of `count` nodes on a /16 with storage, Slurm (two partitions),
    MPI and time: every service that writes a file naming every node."""
    width = len(str(count))
    half = count // 2
    return f"""
[cluster]
name = "big"
domain = "big.lan"
secrets_dir = "{secrets}"
[network]
subnet = "10.20.0.0/16"
gateway = "10.20.255.254"
[naming]
prefix = "node"
width = {width}
count = {count}
first_address = "10.20.0.1"
[groups]
rack1 = "node[{2:0{width}d}-{half:0{width}d}]"
[services.storage]
clients = "@workers"
[[services.slurm.partitions]]
name = "all"
nodes = "@compute"
default = true
[[services.slurm.partitions]]
name = "rack1"
nodes = "@rack1!node{3:0{width}d}"
"""


def _lines(content: bytes, start: str) -> list[str]:
    return [line for line in content.decode().splitlines() if line.startswith(start)]


def _check_render(cluster: Cluster) -> None:
    count = len(cluster.nodes)
    width = len(str(count))
    names = [n.name for n in cluster.nodes]
    result = render_files(cluster, names)
    assert list(result.files) == names
    head, last = names[0], names[-1]
    hosts = result.files[last]["/etc/hosts"].content
    assert len(_lines(hosts, "10.20.")) == count
    assert f"10.20.{count // 256}.{count % 256}\t{last}.big.lan {last}\n".encode() in hosts
    conf = result.files[last]["/etc/slurm/slurm.conf"].content
    assert len(_lines(conf, "NodeName=")) == count - 1  # the head does not compute
    assert _lines(conf, "PartitionName=") == [
        f"PartitionName=all Nodes=node[{2:0{width}d}-{count}] Default=YES "
        "MaxTime=INFINITE State=UP",
        f"PartitionName=rack1 Nodes=node[{2:0{width}d},{4:0{width}d}-{count // 2:0{width}d}] "
        "Default=NO MaxTime=INFINITE State=UP",
    ]
    folded = _lines(conf, "# Hardware not known yet for ")[0].split()[6].rstrip(":")
    assert expand(folded, {}) == names[1:]
    hostfile = result.files[last]["/etc/openmpi/openmpi-default-hostfile"].content
    assert len(_lines(hostfile, "node")) == count - 1
    for name in (head, names[1], names[count // 2], last):
        files = result.files[name]
        assert files["/etc/hostname"].content.decode().endswith(f"{name}\n")
        # Files that list every node are byte for byte the same on every node.
        assert files["/etc/hosts"].content == hosts
        assert files["/etc/slurm/slurm.conf"].content == conf
    restarts = {n: result.files[n]["/etc/slurm/slurm.conf"].restarts for n in (head, last)}
    assert restarts == {head: ("slurmctld.service",), last: ("slurmd.service",)}
    known = result.files[head]["/etc/ssh/ssh_known_hosts"].content
    assert _lines(known, "# No host key known yet for ") == [
        f"# No host key known yet for node[{1:0{width}d}-{count}]."
    ]


@pytest.mark.parametrize("count", [1000, 10_000])
def test_render_of_a_big_cluster_is_whole(tmp_path: Path, count: int) -> None:
    cluster = loads(scale_toml(count, tmp_path / "secrets"), tmp_path / "cluster.toml")
    assert len(cluster.nodes) == count
    _check_render(cluster)


def test_node_lookup_and_views_follow_a_replaced_cluster(tmp_path: Path) -> None:
    """The cached views (head, compute nodes, name index) belong to one Cluster object."""
    from dataclasses import replace

    cluster = loads(scale_toml(1000, tmp_path / "secrets"), tmp_path / "cluster.toml")
    assert cluster.node("node0500").address.exploded == "10.20.1.244"
    smaller = replace(cluster, nodes=cluster.nodes[:10])
    assert len(smaller.compute_nodes) == 9 and len(cluster.compute_nodes) == 999
    with pytest.raises(KeyError):
        smaller.node("node0500")


def test_every_file_that_names_every_node_is_built_once(tmp_path: Path) -> None:
    """The guard against O(n^2) render, without timing: a file that names every node is
    made once and shared by all nodes (RenderContext.shared), not rebuilt per node. A new
    service that rebuilds such a file per node fails here (the cluster key's drop-in did)."""
    count = 300
    cluster = loads(scale_toml(count, tmp_path / "secrets"), tmp_path / "cluster.toml")
    names = [n.name for n in cluster.nodes]
    files = render_files(cluster, names).files
    some = (names[1], names[2], names[-1])  # compute nodes get every node-wide file
    checked = []
    for path, spec in files[some[0]].items():
        if sum(name.encode() in spec.content for name in names) < count - 1:
            continue  # does not name (nearly) every node
        checked.append(path)
        for other in some[1:]:
            # The same bytes object: made once (a node's spec may differ in what it restarts).
            assert files[other][path].content is spec.content, f"{path} rebuilt for {other}"
    assert {
        "/etc/hosts",
        "/etc/slurm/slurm.conf",
        "/etc/ssh/ssh_config.d/piherd-cluster-key.conf",
    } <= set(checked)
