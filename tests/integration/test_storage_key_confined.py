"""The sshfs storage key on the sim ("tsec": head + 2 workers): SFTP inside the export only.

A worker's root holds the storage key. With it, sftp reaches the head's export and
nothing else (no /etc/passwd, no listing of the head's /), the key is refused on sshd's
normal port, and the sshfs mount of the export still works after `piherd up`.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from test_up import on, piherd_up

from piherd.model import Cluster
from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster
from piherd.transport.base import CommandResult

pytestmark = pytest.mark.sim

NAME = "tsec"
WORKER = "node02"


@pytest.fixture(scope="module")
def cluster(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[Cluster]:
    with sim_cm(NAME, 2) as vc:
        rc, events = piherd_up(vc.cluster_file)
        failed = {n: v["reason"] for n, v in events[-1]["nodes"].items() if v["status"] == "failed"}
        assert rc == 0 and not failed, failed
        yield load(vc.cluster_file)


def sftp(cluster: Cluster, batch: str, port: int = 2222) -> CommandResult:
    """sftp from the worker, as root, with the storage key, running the `batch` commands."""
    head = cluster.head
    argv = [
        "sftp", "-b", "-", "-P", str(port),
        "-i", "/etc/piherd/storage_key", "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=/etc/ssh/ssh_known_hosts",
        "-o", f"HostKeyAlias={head.address}", "-o", "StrictHostKeyChecking=yes",
        f"{cluster.admin_user}@{head.address}",
    ]  # fmt: skip
    return on(cluster, [WORKER], argv, sudo=True, input=batch.encode())[WORKER]


def test_the_storage_key_reads_and_writes_inside_the_export(cluster: Cluster) -> None:
    put = sftp(cluster, "put /etc/hostname /srv/cluster/from-worker\nls -l /srv/cluster\n")
    assert put.ok, put.stderr
    assert "from-worker" in put.stdout
    head = cluster.head.name
    owner = on(cluster, [head], ["stat", "-c", "%U %n", "/srv/cluster/from-worker"])[head]
    assert owner.stdout.split() == [cluster.admin_user, "/srv/cluster/from-worker"]
    got = sftp(cluster, "get /srv/cluster/from-worker /tmp/piherd-tsec-back\n")
    assert got.ok, got.stderr


@pytest.mark.parametrize(
    "batch",
    [
        "get /etc/passwd /tmp/piherd-tsec-passwd\n",
        "get ../../../../etc/passwd /tmp/piherd-tsec-passwd\n",
        "get /home/piherd/.ssh/authorized_keys /tmp/piherd-tsec-keys\n",
        "put /etc/hostname /tmp/piherd-tsec-planted\n",
        "put /etc/hostname /var/lib/piherd/planted\n",
    ],
)
def test_the_storage_key_reaches_nothing_else(cluster: Cluster, batch: str) -> None:
    result = sftp(cluster, "pwd\n" + batch)  # logged in (pwd answers), then refused
    assert "Remote working directory: /srv/cluster" in result.stdout, result.stderr
    assert not result.ok, result.stdout
    worker_has = on(cluster, [WORKER], ["ls", "/tmp"], sudo=True)[WORKER].stdout
    assert "piherd-tsec-passwd" not in worker_has and "piherd-tsec-keys" not in worker_has
    head = cluster.head.name
    planted = on(
        cluster, [head], ["sh", "-c", "ls /tmp /var/lib/piherd | grep -c planted || true"]
    )[head]
    assert planted.stdout.strip() == "0"


def test_listing_root_shows_only_the_way_to_the_export(cluster: Cluster) -> None:
    result = sftp(cluster, "ls -1 /\nls -1 /srv\n")
    assert result.ok, result.stderr
    names = {line.strip().rstrip("/") for line in result.stdout.splitlines()}
    names = {n for n in names if n and not n.startswith("sftp>")}
    assert names <= {"/srv", "srv", "/srv/cluster", "cluster"}, names
    assert "etc" not in result.stdout and "home" not in result.stdout


def test_the_storage_key_is_refused_on_the_normal_port(cluster: Cluster) -> None:
    result = sftp(cluster, "ls /\n", port=cluster.ssh_port)
    assert not result.ok
    assert "Permission denied" in result.stderr, result.stderr


def test_the_sshfs_mount_still_works(cluster: Cluster) -> None:
    head, other = cluster.head.name, "node03"
    write = f"echo mounted > /cluster/via-sshfs-{other} && cat /cluster/via-sshfs-{other}"
    result = on(cluster, [other], ["sh", "-c", write])[other]
    assert result.ok and result.stdout.strip() == "mounted", result.stderr
    seen = on(cluster, [head], ["stat", "-c", "%U", f"/srv/cluster/via-sshfs-{other}"])[head]
    assert seen.stdout.strip() == cluster.admin_user
    # The automount point (systemd-1) is listed too, under the sshfs mount it started.
    mounts = on(cluster, [other], ["findmnt", "-n", "-o", "SOURCE", "/cluster"])[other].stdout
    sources = [shlex.split(line)[0] for line in mounts.splitlines() if line.strip()]
    assert f"{cluster.admin_user}@{cluster.head.address}:/srv/cluster" in sources, sources
