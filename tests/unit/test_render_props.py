"""Render properties: deterministic bytes, headers everywhere, random valid clusters render."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st
from test_render_support import CASES, cluster_of, context_of

from hypothesis_examples import examples
from piherd.model import Cluster
from piherd.render import RenderContext, render_cluster, render_node
from piherd.render.spec import header
from piherd.services import loads


def test_rendering_twice_gives_identical_bytes() -> None:
    for case in CASES:
        cluster = cluster_of(case)
        first = render_cluster(cluster, context_of(case, cluster))
        second = render_cluster(cluster_of(case), context_of(case, cluster_of(case)))
        assert first == second


def test_fact_order_does_not_change_output() -> None:
    cluster = cluster_of("bookworm")
    ctx = context_of("bookworm", cluster)
    shuffled = replace(
        ctx,
        hardware=dict(reversed(list(ctx.hardware.items()))),
        host_keys=dict(reversed(list(ctx.host_keys.items()))),
    )
    assert render_cluster(cluster, ctx) == render_cluster(cluster, shuffled)


def test_files_are_sorted_by_path() -> None:
    cluster = cluster_of("netboot")
    files = render_node(cluster, cluster.head, context_of("netboot", cluster))
    assert list(files) == sorted(files)


def _check_headers(cluster: Cluster, ctx: RenderContext) -> None:
    line = header(cluster).encode()
    slashes = header(cluster, "//").encode()
    dashes = header(cluster, "--").encode()  # SQL
    for node, files in render_cluster(cluster, ctx).items():
        for path, spec in files.items():
            assert spec.path == path
            if spec.secret:
                assert line not in spec.content, f"{node}:{path} is a secret with a header"
                continue
            if path.endswith("/cmdline.txt"):  # one line the Pi's firmware reads whole:
                assert spec.content.count(b"\n") == 1, path  # no comment can go in it
                continue
            first, _, rest = spec.content.partition(b"\n")
            if first.startswith(b"#!"):  # scripts: the header comes after the shebang
                first = rest.partition(b"\n")[0]
            assert first + b"\n" in (line, slashes, dashes), f"{node}:{path} has no header"


def test_every_text_file_has_the_header_and_secrets_none() -> None:
    for case in CASES:
        cluster = cluster_of(case)
        _check_headers(cluster, context_of(case, cluster))


@st.composite
def cluster_texts(draw: st.DrawFn) -> str:
    """cluster.toml text of a random valid cluster."""
    count = draw(st.integers(2, 40))
    width = draw(st.integers(len(str(count)), 4))
    prefix = draw(st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8))
    needed = (count + 3).bit_length()
    prefixlen = draw(st.integers(16, 32 - needed))
    base = draw(st.integers(0, 2**24 - 1))
    subnet = IPv4Network((167772160 + base, prefixlen), strict=False)  # inside 10.0.0.0/8
    room = subnet.num_addresses - 3 - count  # network, broadcast, gateway
    first = subnet.network_address + 1 + draw(st.integers(0, room))
    gateway = subnet.broadcast_address - 1
    os_release = draw(st.sampled_from(["bullseye", "bookworm", "trixie"]))
    stack = draw(st.sampled_from(["", "networkmanager", "dhcpcd", "networkd"]))
    kind = draw(st.sampled_from(["nfs", "sshfs"]))
    impls = draw(st.sampled_from(['["openmpi"]', '["mpich"]', '["openmpi", "mpich"]']))
    return f"""
[cluster]
name = "c{draw(st.integers(0, 999))}"
domain = "{draw(st.sampled_from(["", "lan", "cluster.example.org"]))}"
os = "{os_release}"
network_stack = "{stack}"
ssh_port = {draw(st.sampled_from([22, 2222]))}

[network]
subnet = "{subnet}"
{f'gateway = "{gateway}"' if draw(st.booleans()) else ""}

[naming]
prefix = "{prefix}"
width = {width}
count = {count}
first_address = "{first}"

[services.time]
container = {str(draw(st.booleans())).lower()}

[services.storage]
kind = "{kind}"

[services.slurm]
head_computes = {str(draw(st.booleans())).lower()}
cgroup_mountpoint = "{draw(st.sampled_from(["", "/run/piherd/cgroup"]))}"

[services.mpi]
implementations = {impls}

[services.dnsmasq]
enabled = {str(draw(st.booleans())).lower()}
tftp = {str(draw(st.booleans())).lower()}
dhcp = false

[services.package_cache]
enabled = {str(draw(st.booleans())).lower()}
"""


@settings(max_examples=examples(40))
@given(cluster_texts())
def test_random_valid_clusters_render(text: str) -> None:
    cluster = loads(text)
    ctx = RenderContext(b"k" * 1024, b"private\n", "ssh-ed25519 AAAA test")
    rendered = render_cluster(cluster, ctx)
    slurm_confs = {files["/etc/slurm/slurm.conf"].content for files in rendered.values()}
    assert len(slurm_confs) == 1, "slurm.conf differs between nodes"
    for node in cluster.nodes:
        hosts = rendered[node.name]["/etc/hosts"].content.decode().splitlines()
        entries = [line.split() for line in hosts[6:]]
        addresses = [fields[0] for fields in entries]
        names = [name for fields in entries for name in fields[1:]]
        assert len(entries) == len(cluster.nodes)
        assert len(set(addresses)) == len(addresses)
        assert len(set(names)) == len(names)
        own = next(fields for fields in entries if node.name in fields[1:])
        assert own[0] == str(node.address)
        assert "127.0.1.1" not in rendered[node.name]["/etc/hosts"].content.decode()
    _check_headers(cluster, ctx)
