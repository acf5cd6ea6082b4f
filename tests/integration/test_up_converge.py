"""`piherd up` converges both ways, on full sim nodes ("tcv": head + 2 workers, sshfs).

What piherd created and no longer renders goes (storage turned off, a node moved out of
its clients); what it did not create stays (an admin's file, an edited file, a daemon
that ran before piherd); owed restarts of units no longer wanted are dropped. The tests
run in file order on one cluster and each ends converged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from test_up import on, piherd_up

from piherd.facts.record import RECORD_PATH, parse_record
from piherd.model import Cluster
from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

NAME = "tcv"
MOUNT_FILES = ("/etc/systemd/system/cluster.mount", "/etc/systemd/system/cluster.automount")
STORAGE_KEY = "/etc/piherd/storage_key"
KEYS = "/etc/ssh/piherd/storage_keys/pi"  # the storage key (services/storage_sftp.py)
ADMIN_FILES = ("/etc/systemd/system/admin-note.txt", "/etc/piherd/admin-note.txt")
REMOVALS = {"stop", "disable", "remove", "remove-dir", "daemon-reload", "keep", "unmask"}


@pytest.fixture(scope="module")
def sim(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm(NAME, 2) as vc:
        yield vc


@pytest.fixture(scope="module")
def cluster(sim: VirtualCluster) -> Cluster:
    return load(sim.cluster_file)


def variant(sim: VirtualCluster, name: str, **services: dict[str, Any]) -> Path:
    """cluster.toml with services tables amended, beside it (same secrets, same facts)."""
    doc = tomlkit.parse(sim.cluster_file.read_text())
    for service, values in services.items():
        table = doc["services"].setdefault(service, tomlkit.table())  # type: ignore[union-attr]
        table.update(values)
    path = sim.cluster_file.with_name(f"{name}.toml")
    path.write_text(tomlkit.dumps(doc))
    return path


def up_ok(cluster_file: Path, *extra: str) -> list[dict]:  # type: ignore[type-arg]
    rc, events = piherd_up(cluster_file, *extra)
    failed = {n: v["reason"] for n, v in events[-1]["nodes"].items() if v["status"] == "failed"}
    assert rc == 0 and not failed, failed
    return events


def converged(cluster_file: Path) -> None:
    events = up_ok(cluster_file)
    assert [e for e in events if e["event"] == "change"] == [], "a second up changed things"


def changes(events: list[dict], node: str) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [
        (e["kind"], e["target"]) for e in events if e["event"] == "change" and e["node"] == node
    ]


def exists(cluster: Cluster, node: str, *paths: str) -> dict[str, bool]:
    argv = ["sh", "-c", 'for p; do [ -e "$p" ] && echo "$p"; done; true', "sh", *paths]
    out = on(cluster, [node], argv, sudo=True)[node].stdout.split()
    return {p: p in out for p in paths}


def unit(cluster: Cluster, node: str, name: str) -> dict[str, str]:
    argv = ["systemctl", "show", "-p", "ActiveState,UnitFileState,ActiveEnterTimestampMonotonic"]
    out = on(cluster, [node], [*argv, "--", name])[node].stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_first_up_records_what_it_created(sim: VirtualCluster, cluster: Cluster) -> None:
    up_ok(sim.cluster_file)
    converged(sim.cluster_file)
    worker = cluster.workers[0].name
    mode = on(cluster, [worker], ["stat", "-c", "%a %U", RECORD_PATH], sudo=True)[worker]
    assert mode.stdout.split() == ["600", "root"], mode
    text = on(cluster, [worker], ["cat", RECORD_PATH], sudo=True)[worker].stdout
    record = parse_record(text)
    assert not record.problem
    assert set(MOUNT_FILES) | {STORAGE_KEY} <= set(record.files)
    assert "/etc/hosts" not in record.files  # there before piherd: overwritten, never removed
    assert "started" in record.units["cluster.automount"]


def test_storage_off_removes_what_piherd_put_there(sim: VirtualCluster, cluster: Cluster) -> None:
    head, worker = cluster.head.name, cluster.workers[0].name
    for node in (head, worker):
        note = ["sh", "-c", 'for p; do echo mine > "$p"; done', "sh", *ADMIN_FILES]
        assert on(cluster, [node], note, sudo=True)[node].ok
    edited = "/etc/systemd/system/cluster.mount"  # the head's bind mount, edited by the admin
    assert on(cluster, [head], ["sh", "-c", f"echo '# mine' >> {edited}"], sudo=True)[head].ok
    ssh_before = unit(cluster, head, "ssh.service")
    off = variant(sim, "storage-off", storage={"enabled": False})

    rc, dry = piherd_up(off, "--dry-run")
    assert rc == 0
    planned = changes(dry, worker)
    assert ("disable", "cluster.automount") in planned
    assert {("remove", p) for p in (*MOUNT_FILES, STORAGE_KEY)} <= set(planned)
    assert ("keep", edited) in changes(dry, head) and ("remove", KEYS) in changes(dry, head)
    assert all(e["reason"] for e in dry if e["event"] == "change")
    assert all(exists(cluster, worker, *MOUNT_FILES, STORAGE_KEY).values())  # dry: untouched

    events = up_ok(off)
    assert {k for k, _ in changes(events, worker)} <= REMOVALS
    assert not any(exists(cluster, worker, *MOUNT_FILES, STORAGE_KEY).values())
    assert exists(cluster, head, KEYS, edited) == {KEYS: False, edited: True}
    for node in (head, worker):
        assert all(exists(cluster, node, *ADMIN_FILES).values()), node
        assert not on(cluster, [node], ["mountpoint", "-q", "/cluster"])[node].ok, node
    assert unit(cluster, worker, "cluster.automount")["ActiveState"] == "inactive"
    assert unit(cluster, head, "cluster.mount")["UnitFileState"] != "enabled"
    assert unit(cluster, head, "ssh.service") == ssh_before  # there before piherd: untouched
    converged(off)


def test_storage_on_again_brings_it_back(sim: VirtualCluster, cluster: Cluster) -> None:
    head, worker = cluster.head.name, cluster.workers[0].name
    up_ok(sim.cluster_file)
    assert all(exists(cluster, worker, *MOUNT_FILES, STORAGE_KEY).values())
    assert exists(cluster, head, KEYS)[KEYS]
    text = b"back again\n"
    write = on(cluster, [worker], ["tee", "/cluster/converge-check"], input=text)[worker]
    assert write.ok, write
    read = on(cluster, [head], ["cat", "/srv/cluster/converge-check"])[head]
    assert read.stdout == text.decode(), read
    converged(sim.cluster_file)


def test_node_moved_out_of_clients_loses_only_its_mount(
    sim: VirtualCluster, cluster: Cluster
) -> None:
    head, kept, moved = cluster.head.name, cluster.workers[0].name, cluster.workers[1].name
    fewer = variant(sim, "fewer-clients", storage={"clients": f"{head},{kept}"})
    events = up_ok(fewer)
    mine = set(changes(events, moved))
    allowed = {("disable", "cluster.automount"), ("stop", "cluster.mount")}
    allowed |= {("remove", p) for p in (*MOUNT_FILES, STORAGE_KEY)}
    allowed |= {("daemon-reload", "systemd")}
    assert ("remove", STORAGE_KEY) in mine and mine <= allowed, mine
    assert changes(events, kept) == []
    assert not any(exists(cluster, moved, *MOUNT_FILES, STORAGE_KEY).values())
    assert all(exists(cluster, kept, *MOUNT_FILES, STORAGE_KEY).values())
    assert on(cluster, [kept], ["ls", "/cluster/converge-check"])[kept].ok
    converged(fewer)
    up_ok(sim.cluster_file)
    converged(sim.cluster_file)


def test_an_owed_restart_of_a_service_turned_off_is_dropped(
    sim: VirtualCluster, cluster: Cluster
) -> None:
    """A failed `up` owes chrony a restart; the admin turns time off and stops chrony: the
    next `up` must not start it again."""
    worker = cluster.workers[0].name
    # chrony.conf changed (a restart owed), then a full disk where slurm.conf goes (later).
    breakit = (
        "echo '# changed' >> /etc/chrony/chrony.conf && "
        "mount -t tmpfs -o size=64k piherd-test-full /etc/slurm && "
        "dd if=/dev/zero of=/etc/slurm/filler bs=1k count=64 2>/dev/null; true"
    )
    assert on(cluster, [worker], ["sh", "-c", breakit], sudo=True)[worker].ok
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 1 and events[-1]["nodes"][worker]["status"] == "failed", events[-1]
    owed = on(cluster, [worker], ["cat", "/var/lib/piherd/pending-restarts"], sudo=True)[worker]
    assert "chrony.service" in owed.stdout.split(), owed

    fix = "umount /etc/slurm && systemctl disable --now chrony.service"
    assert on(cluster, [worker], ["sh", "-c", fix], sudo=True)[worker].ok
    off = variant(sim, "time-off", time={"enabled": False})
    events = up_ok(off)
    assert ("restart", "chrony.service") not in changes(events, worker)
    assert ("start", "chrony.service") not in changes(events, worker)
    assert unit(cluster, worker, "chrony.service")["ActiveState"] == "inactive"
    gone = on(cluster, [worker], ["test", "-e", "/var/lib/piherd/pending-restarts"], sudo=True)
    assert not gone[worker].ok
    converged(off)
    up_ok(sim.cluster_file)
    assert unit(cluster, worker, "chrony.service")["ActiveState"] == "active"
    converged(sim.cluster_file)
