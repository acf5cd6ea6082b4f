"""Jobs the way users start them, on a sim cluster ("mpj": head + 3, accounting on).

`srun --mpi=pmix` runs mpi4py over 3 hosts; a rank that dies before MPI_Init ends its
job and the next job gets the nodes at once; `mpiexec -machinefile` from the head as the
admin user reaches the workers over SSH with piherd's cluster key; `sacct` still lists
the jobs after slurmctld restarts. One cluster serves the module; tests run in order.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from test_up import MPI_JOB, on, piherd_up, wait_idle

from piherd.model import Cluster, fold
from piherd.services import load
from piherd.services.cluster_key import CLUSTER_KEY
from piherd.services.mpi import OPENMPI_HOSTS
from piherd.services.storage import StorageSettings
from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = pytest.mark.sim

NAME = "mpj"
# Rank 1 exits before MPI_Init: without KillOnBadExit the other ranks wait there forever.
DIES_AT_START = """\
import os, sys
if os.environ.get("SLURM_PROCID") == "1":
    sys.exit(3)
from mpi4py import MPI
MPI.COMM_WORLD.Barrier()
"""


def ranks(output: str) -> list[dict[str, str]]:
    """The `rank=.. size=.. host=.. sum=..` lines of MPI_JOB as dicts."""
    return [
        dict(field.split("=", 1) for field in line.split())
        for line in output.splitlines()
        if line.startswith("rank=")
    ]


@pytest.fixture(scope="module")
def sim(sim_cm: Callable[..., AbstractContextManager[VirtualCluster]]) -> Iterator[VirtualCluster]:
    with sim_cm(NAME, 3) as vc:
        yield vc


@pytest.fixture(scope="module")
def cluster(sim: VirtualCluster) -> Cluster:
    """The sim's cluster with accounting on, brought up by `piherd up`."""
    text = sim.cluster_file.read_text()
    marker = "[services.slurm]\n"
    assert marker in text
    accounting = Path(sim.cluster_file).with_name("cluster-accounting.toml")
    accounting.write_text(text.replace(marker, marker + "accounting = true\n"))
    rc, events = piherd_up(accounting)
    failed = {n: v["reason"] for n, v in events[-1]["nodes"].items() if v["status"] == "failed"}
    assert failed == {} and rc == 0, failed
    loaded = load(accounting)
    wait_idle(loaded, 3)
    shared = loaded.services.get(StorageSettings).mount
    head = loaded.head.name
    on(loaded, [head], ["tee", f"{shared}/mpi_job.py"], input=MPI_JOB.encode())
    on(loaded, [head], ["tee", f"{shared}/dies.py"], input=DIES_AT_START.encode())
    return loaded


def head_run(cluster: Cluster, command: str, sudo: bool = False) -> tuple[bool, str, str]:
    """`sh -c command` on the head as the admin user, in the shared directory."""
    shared = cluster.services.get(StorageSettings).mount
    head = cluster.head.name
    result = on(cluster, [head], ["sh", "-c", f"cd {shared} && {command}"], sudo=sudo)[head]
    return result.ok, result.stdout, result.stderr


def test_srun_pmix_runs_mpi4py_on_three_hosts(cluster: Cluster) -> None:
    ok, out, err = head_run(cluster, "srun -J mpj-pmix -N3 --mpi=pmix python3 mpi_job.py")
    assert ok, err
    found = ranks(out)
    assert sorted(r["rank"] for r in found) == ["0", "1", "2"]
    assert {r["size"] for r in found} == {"3"} and {r["sum"] for r in found} == {"6"}
    assert {r["host"] for r in found} == {n.name for n in cluster.compute_nodes}


def test_mpi_default_is_pmix(cluster: Cluster) -> None:
    """A plain `srun` (no --mpi) starts MPI ranks too: MpiDefault=pmix."""
    ok, out, err = head_run(cluster, "srun -N3 python3 mpi_job.py")
    assert ok, err
    assert {r["size"] for r in ranks(out)} == {"3"}


def test_a_job_dying_at_start_frees_its_nodes_for_the_next(cluster: Cluster) -> None:
    ok, _, err = head_run(cluster, "srun -J mpj-dies -N3 python3 dies.py")
    assert not ok and "exit code 3" in err
    # --immediate: the next job is refused unless its nodes are free (not COMPLETING).
    ok, out, err = head_run(cluster, "srun -N3 --immediate=30 hostname")
    assert ok, err
    assert set(out.split()) == {n.name for n in cluster.compute_nodes}


def test_mpiexec_machinefile_from_the_head_as_the_admin_user(cluster: Cluster) -> None:
    workers = {n.name for n in cluster.compute_nodes}
    command = f"mpiexec -machinefile {OPENMPI_HOSTS} --map-by node -n 3 python3 mpi_job.py"
    ok, out, err = head_run(cluster, command)
    assert ok, err
    assert {r["host"] for r in ranks(out)} == workers
    names = [n.name for n in cluster.nodes if n.is_head or n.compute]
    stats = on(cluster, names, ["stat", "-c", "%a %U", CLUSTER_KEY])
    assert {r.stdout.strip() for r in stats.values()} == {f"600 {cluster.admin_user}"}


def test_sacct_lists_the_jobs_after_slurmctld_restarts(cluster: Cluster) -> None:
    ok, _, err = head_run(cluster, "systemctl restart slurmctld.service", sudo=True)
    assert ok, err
    workers = fold([n.name for n in cluster.compute_nodes])
    wanted = {("mpj-pmix", "COMPLETED", workers), ("mpj-dies", "FAILED", workers)}
    # slurmctld hands job records to slurmdbd in the background, and sends what it held
    # at shutdown once it runs again: the records arrive a moment after the restart.
    deadline = time.monotonic() + 120
    while True:
        ok, out, err = head_run(cluster, "sacct -X -n -P -o jobname,state,nodelist -S 00:00")
        assert ok, err
        rows = {tuple(line.split("|")) for line in out.splitlines()}
        if wanted <= rows or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert wanted <= rows, rows
    ok, out, err = head_run(cluster, "sreport -n -P cluster utilization")
    assert ok, err


def test_a_logout_keeps_a_running_jobs_shared_memory(sim: VirtualCluster, cluster: Cluster) -> None:
    """logind deletes a user's /dev/shm objects at their last logout (RemoveIPC=yes by
    default); jobs run outside login sessions, so piherd turns that off on compute nodes.
    Without it, this logout deletes the job's file (and Dask's workers died of it)."""
    node = cluster.compute_nodes[0].name
    marker = "/dev/shm/piherd-ipc-test"
    job = f"touch {marker}; sleep 300"
    ok, _, err = head_run(cluster, f"sbatch --parsable -w {node} -J mpj-ipc --wrap '{job}'")
    assert ok, err

    def root(command: str) -> bool:  # as root from outside the node: no login session
        argv = [*sim.shell_argv(node), "-c", command]
        return subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode == 0

    def there() -> bool:
        return root(f"test -e {marker}")

    try:
        deadline = time.monotonic() + 120
        while not there():
            assert time.monotonic() < deadline, "the job never made its file"
            time.sleep(1)
        logout = on(cluster, [node], ["true"])[node]  # the admin logs in and out
        assert logout.ok, logout
        # logind cleans up once the user's last session has closed: wait for that.
        deadline = time.monotonic() + 60
        while root(f"loginctl show-user {cluster.admin_user} >/dev/null 2>&1"):
            assert time.monotonic() < deadline, "the admin's login never ended"
            time.sleep(1)
        assert there(), "the logout deleted the running job's shared memory"
    finally:
        head_run(cluster, "scancel -n mpj-ipc")
