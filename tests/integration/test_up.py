"""`piherd up` end to end on fresh full sim nodes ("tup": head + 3 workers, then a 4th).

One virtual cluster serves the whole module; the tests run in file order and build on
each other (first up, checks of what it built, second up, kill mid-up, growing).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from piherd.model import Cluster
from piherd.ops.changes import ChangeKind
from piherd.services import load
from piherd.services.storage import StorageSettings
from piherd.sim.virtual_cluster import VirtualCluster
from piherd.transport.base import CommandResult
from piherd.transport.pool import ConnectionPool

pytestmark = pytest.mark.sim

NAME = "tup"
PIHERD = [str(Path(sys.executable).parent / "piherd")]
UNITS = ("chrony.service", "munge.service", "slurmctld.service", "slurmd.service")
UNIT_KINDS = {k.value for k in ChangeKind if k.rank >= ChangeKind.DAEMON_RELOAD.rank}

MPI_JOB = """\
from mpi4py import MPI
import socket
comm = MPI.COMM_WORLD
total = comm.allreduce(comm.Get_rank() + 1, op=MPI.SUM)
print(f"rank={comm.Get_rank()} size={comm.Get_size()} host={socket.gethostname()} sum={total}",
      flush=True)
"""


def batch_script(cluster: Cluster, nodes: int, directory: str) -> str:
    subnet = str(cluster.network.subnet)
    return (
        "#!/bin/sh\n"
        f"#SBATCH --nodes={nodes}\n#SBATCH --ntasks-per-node=1\n"
        f"#SBATCH --output={directory}/mpi-%j.out\n"
        "export OMPI_MCA_btl_vader_single_copy_mechanism=none\n"
        f"mpirun --mca btl_tcp_if_include {subnet} --mca oob_tcp_if_include {subnet} "
        f"python3 {directory}/mpi_job.py\n"
    )


def piherd_up(cluster_file: Path, *extra: str, timeout: float = 1500) -> tuple[int, list[dict]]:  # type: ignore[type-arg]
    proc = subprocess.run(
        [*PIHERD, "up", "-f", str(cluster_file), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if not events or events[-1]["event"] != "summary":
        pytest.fail(f"piherd up gave no summary (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode, events


def on(cluster: Cluster, nodes: Sequence[str], argv: Sequence[str], sudo: bool = False,
       input: bytes | None = None) -> dict[str, CommandResult]:  # fmt: skip
    """Run argv on nodes (as the admin user) through piherd's own transport."""

    async def go() -> dict[str, CommandResult]:
        async with ConnectionPool(cluster) as pool:

            async def one(name: str) -> CommandResult:
                t = await pool.get(name)
                return await t.run(argv, sudo=sudo, input=input, timeout=120)

            results = await asyncio.gather(*(one(n) for n in nodes))
            return dict(zip(nodes, results, strict=True))

    return asyncio.run(go())


def wait_idle(cluster: Cluster, count: int, timeout: float = 120) -> list[str]:
    head = cluster.head.name
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        out = on(cluster, [head], ["sinfo", "-h", "-N", "-o", "%N %t"])[head].stdout
        states = sorted(set(out.split("\n")) - {""})
        if len([s for s in states if s.endswith(" idle")]) == count:
            return states
        time.sleep(2)
    pytest.fail(f"sinfo never showed {count} idle nodes: {states}")


def run_mpi(cluster: Cluster, nodes: int) -> list[str]:
    head = cluster.head.name
    shared = cluster.services.get(StorageSettings).mount  # the same path on every node
    on(cluster, [head], ["tee", f"{shared}/mpi_job.py"], input=MPI_JOB.encode())
    on(
        cluster,
        [head],
        ["tee", f"{shared}/job.sh"],
        input=batch_script(cluster, nodes, shared).encode(),
    )
    # sbatch runs from the shared dir, as the admin user; --wait blocks until the job ends
    result = on(cluster, [head], ["sh", "-c", f"cd {shared} && sbatch --parsable --wait job.sh"])[
        head
    ]
    assert result.ok, result.stderr
    job = result.stdout.strip().splitlines()[-1]
    out = on(cluster, [head], ["cat", f"{shared}/mpi-{job}.out"])[head].stdout
    return [line for line in out.splitlines() if line.startswith("rank=")]


async def _banner(address: str) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, 22), 2)
    except (OSError, TimeoutError):
        return False
    try:
        return (await asyncio.wait_for(reader.readline(), 2)).startswith(b"SSH-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


def wait_ssh(cluster: Cluster, timeout: float = 180) -> None:
    """Every node's sshd answers at its static or its bootstrap address."""
    deadline = time.monotonic() + timeout
    pending = {n.name for n in cluster.nodes}
    while pending and time.monotonic() < deadline:
        for node in cluster.nodes:
            if node.name in pending and any(
                asyncio.run(_banner(a)) for a in (str(node.address), node.bootstrap_address) if a
            ):
                pending.discard(node.name)
        time.sleep(1)
    assert not pending, f"no sshd answers on {sorted(pending)}"


def unit_state(cluster: Cluster) -> dict[str, str]:
    argv = ["systemctl", "show", "-p", "Id,ActiveEnterTimestampMonotonic,MainPID", *UNITS]
    names = [n.name for n in cluster.nodes]
    return {n: r.stdout for n, r in on(cluster, names, argv).items()}


@pytest.fixture(scope="module")
def sim(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm(NAME, 3) as vc:
        yield vc


@pytest.fixture(scope="module")
def cluster(sim: VirtualCluster) -> Cluster:
    return load(sim.cluster_file)


def test_first_up_converges(sim: VirtualCluster, cluster: Cluster) -> None:
    head = cluster.head.name
    rc, events = piherd_up(sim.cluster_file)
    summary = events[-1]
    failed = {n: v["reason"] for n, v in summary["nodes"].items() if v["status"] == "failed"}
    assert failed == {}
    assert rc == 0
    assert summary["changed"] == 4
    # The workers install their packages while the head is set up, and start their
    # units (the head's storage, slurmd) only once it is done.
    head_done = events.index(next(e for e in events if e["event"] == "node" and e["node"] == head))
    for worker in [n for n in summary["nodes"] if n != head]:
        mine = [(i, e["kind"]) for i, e in enumerate(events) if e.get("node") == worker
                and e["event"] == "change"]  # fmt: skip
        packages = next(i for i, kind in mine if kind == "packages")
        first_unit = next(i for i, kind in mine if kind in UNIT_KINDS)
        assert packages < head_done < first_unit, (worker, packages, head_done, first_unit)


def test_static_addresses_hostnames_hosts(cluster: Cluster) -> None:
    names = [n.name for n in cluster.nodes]
    hostnames = on(cluster, names, ["hostname"])
    addresses = on(cluster, names, ["ip", "-4", "-o", "addr", "show"])
    hosts = on(cluster, names, ["cat", "/etc/hosts"])
    for node in cluster.nodes:
        assert hostnames[node.name].stdout.strip() == node.name
        assert f" {node.address}/" in addresses[node.name].stdout
        for other in cluster.nodes:
            assert any(
                line.split()[:1] == [str(other.address)] and other.name in line.split()
                for line in hosts[node.name].stdout.splitlines()
            ), f"{node.name}: /etc/hosts lacks {other.name}: {hosts[node.name]}"


def test_password_login_off_key_login_on(cluster: Cluster) -> None:
    """Every node's sshd now takes keys only (its effective settings, `sshd -T`), and the
    key login that checked it is a fresh one: the rollback timer was cancelled."""
    names = [n.name for n in cluster.nodes]
    # -C: the settings a connection to the ssh port gets (sshfs storage adds a Match block).
    spec = (
        f"user={cluster.admin_user},host=x,addr=127.0.0.1,laddr=127.0.0.1,lport={cluster.ssh_port}"
    )
    effective = on(cluster, names, ["sshd", "-T", "-C", spec], sudo=True)
    timers = on(cluster, names, ["systemctl", "is-active", "piherd-login-rollback.timer"])
    for name in names:
        settings = effective[name].stdout.splitlines()
        assert "passwordauthentication no" in settings, (name, effective[name])
        assert "kbdinteractiveauthentication no" in settings, name
        assert "pubkeyauthentication yes" in settings, name
        assert timers[name].stdout.strip() != "active", f"{name}: rollback still armed"


def test_workers_follow_head_clock(cluster: Cluster) -> None:
    """chronyc shows the head as the selected (^*) or a combined (^+) source."""
    workers = [n.name for n in cluster.workers]
    head = str(cluster.head.address)
    deadline = time.monotonic() + 90
    while True:
        sources = on(cluster, workers, ["chronyc", "-n", "sources"])
        following = {
            name
            for name, result in sources.items()
            if any(
                line.startswith(("^*", "^+")) and head in line
                for line in result.stdout.splitlines()
            )
        }
        if following == set(workers) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert following == set(workers), {n: r.stdout for n, r in sources.items()}


def test_shared_directory_everywhere(cluster: Cluster) -> None:
    storage = cluster.services.get(StorageSettings)
    for writer in cluster.nodes:
        path = storage.mount  # the head bind-mounts its export there too
        text = f"written on {writer.name}\n".encode()
        result = on(cluster, [writer.name], ["tee", f"{path}/from-{writer.name}"], input=text)
        assert result[writer.name].ok, result[writer.name].stderr
    for reader in cluster.nodes:
        path = storage.mount
        for writer in cluster.nodes:
            got = on(cluster, [reader.name], ["cat", f"{path}/from-{writer.name}"])[reader.name]
            assert got.stdout == f"written on {writer.name}\n", (reader.name, got.stderr)


def test_slurm_idle_and_mpi_job(cluster: Cluster) -> None:
    wait_idle(cluster, 3)
    lines = run_mpi(cluster, 3)
    assert len(lines) == 3
    assert {line.split()[1] for line in lines} == {"size=3"}
    assert {line.split()[2] for line in lines} == {f"host={w.name}" for w in cluster.workers}
    assert {line.split()[3] for line in lines} == {"sum=6"}


def test_second_up_changes_and_restarts_nothing(sim: VirtualCluster, cluster: Cluster) -> None:
    before = unit_state(cluster)
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 0
    assert [e for e in events if e["event"] == "change"] == []
    assert events[-1]["changed"] == 0 and events[-1]["unchanged"] == 4
    assert unit_state(cluster) == before
    rc, events = piherd_up(sim.cluster_file, "--dry-run")
    assert rc == 0 and [e for e in events if e["event"] == "change"] == []


def test_dpkg_cut_off_earlier_is_finished_first(sim: VirtualCluster, cluster: Cluster) -> None:
    """A power cut or Ctrl-C during an install leaves dpkg's journal behind, and apt then
    refuses to install anything ("dpkg was interrupted, you must manually run 'dpkg
    --configure -a'"): up finishes dpkg's work, then installs, and converges."""
    victim = cluster.workers[1].name
    cut = ["sh", "-c", "apt-get remove -y -q python3-mpi4py > /dev/null && "
           ": > /var/lib/dpkg/updates/0000"]  # fmt: skip
    assert on(cluster, [victim], cut, sudo=True)[victim].rc == 0
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 0, events[-1]
    assert events[-1]["nodes"][victim]["status"] == "changed"
    check = "ls -A /var/lib/dpkg/updates; dpkg-query -W -f='${Status}' python3-mpi4py"
    state = on(cluster, [victim], ["sh", "-c", check], sudo=True)[victim]
    assert state.stdout == "install ok installed", state


def test_ctrl_c_mid_up(sim: VirtualCluster, cluster: Cluster) -> None:
    """Ctrl-C while a worker installs a package: the install runs to its end (a killed
    apt-get leaves packages half-installed), then exit 130 with a summary saying how
    far each node got; the next `up` finishes the job."""
    victim = cluster.workers[1].name
    gone = on(cluster, [victim], ["apt-get", "remove", "-y", "-q", "python3-mpi4py"], sudo=True)
    assert gone[victim].rc == 0, gone[victim]
    # dpkg's lock held on the node: apt-get waits, so the Ctrl-C surely lands mid-install.
    held = "/run/piherd-test-dpkg-lock-held"
    hold = ("import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
            f"fcntl.lockf(f, fcntl.LOCK_EX); open('{held}', 'w').close(); "
            "time.sleep(120)")  # fmt: skip
    locker = on(cluster, [victim], ["sh", "-c", 'setsid python3 -c "$1" >/dev/null 2>&1 & echo $!',
                                    "sh", hold], sudo=True)[victim]  # fmt: skip
    assert locker.rc == 0 and locker.stdout.strip().isdigit(), locker
    # Held before `up` starts (a slow python3 start would let apt-get in first).
    deadline = time.monotonic() + 60
    while on(cluster, [victim], ["test", "-e", held])[victim].rc != 0:
        assert time.monotonic() < deadline, "the dpkg lock was never taken"
        time.sleep(0.5)
    proc = subprocess.Popen(
        [*PIHERD, "up", "-f", str(sim.cluster_file), "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    waiting = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("node") != victim:
                continue
            if event.get("kind") == "packages":
                time.sleep(2)  # apt-get is waiting for the lock on the node
                proc.send_signal(signal.SIGINT)
            elif "letting the package install finish" in str(event.get("text")):
                waiting = True
                break
        on(cluster, [victim], ["kill", locker.stdout.strip()], sudo=True)  # apt goes on
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        on(cluster, [victim], ["kill", locker.stdout.strip()], sudo=True)
        on(cluster, [victim], ["rm", "-f", held], sudo=True)
    assert waiting, f"no 'letting the package install finish' (rc={proc.returncode}): {err}"
    summary = json.loads(out.splitlines()[-1])
    assert proc.returncode == 130, err
    assert summary["nodes"][victim]["status"] == "interrupted", summary
    assert summary["nodes"][victim]["reason"] == "after 1 of 1 changes", summary
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err, err
    status = "dpkg-query -W -f='${Status}' python3-mpi4py; ls -A /var/lib/dpkg/updates"
    installed = on(cluster, [victim], ["sh", "-c", status])[victim]
    assert installed.stdout == "install ok installed", installed
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 0, events[-1]
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 0 and events[-1]["changed"] == 0, events[-1]


def test_killed_worker_mid_up(sim: VirtualCluster, cluster: Cluster) -> None:
    """Power cut on a worker while `up` applies changes to it: the others finish, the
    summary names it, and the next `up` after revive converges."""
    victim = cluster.workers[-1].name
    # Give the victim seconds of work (a package to reinstall, then a file), so the cut
    # lands while it is being changed, not after a one-file apply has already finished.
    stale = on(
        cluster,
        [victim],
        ["sh", "-c", "echo '# stale' > /etc/hosts && apt-get remove -y -q python3-mpi4py"],
        sudo=True,
    )[victim]
    assert stale.rc == 0, stale
    proc = subprocess.Popen(
        [*PIHERD, "up", "-f", str(sim.cluster_file), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            event = json.loads(line)
            applying = event.get("event") == "change" or str(event.get("text", "")).startswith(
                "applying"
            )
            if event.get("node") == victim and applying:
                asyncio.run(sim.kill(victim))
                break
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines.extend(out.splitlines())
    summary = json.loads(lines[-1])
    assert proc.returncode == 1, err
    assert summary["nodes"][victim]["status"] == "failed"
    assert summary["nodes"][victim]["reason"]
    assert {v["status"] for n, v in summary["nodes"].items() if n != victim} == {"unchanged"}
    asyncio.run(sim.revive(victim, timeout=180))
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 0, events[-1]
    assert events[-1]["nodes"][victim]["status"] == "changed"
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 0 and events[-1]["changed"] == 0, events[-1]
    wait_idle(cluster, 3, timeout=180)


def test_full_disk_on_a_worker(sim: VirtualCluster, cluster: Cluster) -> None:
    """A node whose disk is full fails with the path and the reason, keeps no partial
    or temporary file, and the next `up` after space is freed converges."""
    victim = cluster.workers[0].name
    full = ["sh", "-c", "mount -t tmpfs -o size=64k piherd-test-full /etc/slurm && "
            "dd if=/dev/zero of=/etc/slurm/filler bs=1k count=64 2>/dev/null; true"]  # fmt: skip
    assert on(cluster, [victim], full, sudo=True)[victim].rc == 0
    try:
        rc, events = piherd_up(sim.cluster_file)
        summary = events[-1]
        assert rc == 1, summary
        reason = summary["nodes"][victim]["reason"]
        assert summary["nodes"][victim]["status"] == "failed"
        assert "/etc/slurm/" in reason and "No space left on device" in reason, reason
        assert {v["status"] for n, v in summary["nodes"].items() if n != victim} == {"unchanged"}
        listing = on(cluster, [victim], ["ls", "-A", "/etc/slurm"], sudo=True)[victim]
        assert listing.stdout.split() == ["filler"], listing
    finally:
        freed = on(cluster, [victim], ["umount", "/etc/slurm"], sudo=True)[victim]
        assert freed.rc == 0, freed
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 0, events[-1]
    rc, events = piherd_up(sim.cluster_file)
    assert rc == 0 and events[-1]["changed"] == 0, events[-1]
    wait_idle(cluster, 3, timeout=180)


def test_grow_fourth_worker(sim: VirtualCluster) -> None:
    bigger = VirtualCluster(NAME, workers=4)
    asyncio.run(bigger.up(timeout=180))
    cluster = load(bigger.cluster_file)
    wait_ssh(cluster)
    assert len(cluster.workers) == 4
    rc, events = piherd_up(bigger.cluster_file)
    assert rc == 0, events[-1]
    wait_idle(cluster, 4, timeout=180)
    lines = run_mpi(cluster, 4)
    assert len(lines) == 4
    assert {line.split()[3] for line in lines} == {"sum=10"}


def test_shrink_back_to_three_workers(sim: VirtualCluster) -> None:
    """Removing a node from cluster.toml and re-running up takes it out of every node's
    hosts file and slurm.conf, and out of Slurm."""
    smaller = VirtualCluster(NAME, workers=3)
    asyncio.run(smaller.up(timeout=180))
    cluster = load(smaller.cluster_file)
    assert [n.name for n in cluster.workers] == ["node02", "node03", "node04"]
    rc, events = piherd_up(smaller.cluster_file)
    assert rc == 0, events[-1]
    states = wait_idle(cluster, 3, timeout=180)
    assert [s.split()[0] for s in states] == ["node02", "node03", "node04"]
    names = [n.name for n in cluster.nodes]
    hosts = on(cluster, names, ["cat", "/etc/hosts"])
    confs = on(cluster, names, ["cat", "/etc/slurm/slurm.conf"])
    for name in names:
        assert "node05" not in hosts[name].stdout, name
        assert "node05" not in confs[name].stdout, name
    assert len({r.stdout for r in confs.values()}) == 1  # identical everywhere
