"""How fast MPI jobs start, and how fast a job that fails at start gives its nodes back.

Run on a cluster `piherd up` has built (at least 3 compute nodes, [services.mpi] on),
e.g. the sim: `piherd sim up --name mpj --workers 3`, `piherd up -f CLUSTER`, then
`python bench/jobs_bench.py CLUSTER [--write-docs]`. Every command runs on the head as
the admin user, in the shared directory, like a user would type it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from docs_table import update_table_section  # bench/docs_table.py

from piherd.model import Cluster
from piherd.services import load
from piherd.services.mpi import OPENMPI_HOSTS
from piherd.services.storage import StorageSettings
from piherd.transport.pool import ConnectionPool

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
PROGRAMS = {
    "hello.py": (
        "from mpi4py import MPI\nimport socket\n"
        "print(MPI.COMM_WORLD.Get_rank(), socket.gethostname(), flush=True)\n"
    ),
    "dies.py": (
        "import os, sys\nif os.environ.get('SLURM_PROCID') == '1':\n    sys.exit(3)\n"
        "from mpi4py import MPI\nMPI.COMM_WORLD.Barrier()\n"
    ),
    "aborts.py": (
        "from mpi4py import MPI\nif MPI.COMM_WORLD.Get_rank() == 0:\n"
        "    MPI.COMM_WORLD.Abort(7)\nMPI.COMM_WORLD.Barrier()\n"
    ),
}
NEXT = "srun -N3 --immediate=600 hostname"


async def timed(pool: ConnectionPool, cluster: Cluster, command: str) -> tuple[float, bool]:
    """Seconds `command` took on the head (sh -c, in the shared directory), and its success."""
    shared = cluster.services.get(StorageSettings).mount
    transport = await pool.get(cluster.head.name)
    start = time.monotonic()
    result = await transport.run(["sh", "-c", f"cd {shared} && {command}"], timeout=900)
    return time.monotonic() - start, result.ok


async def bench(cluster: Cluster) -> list[str]:
    shared = cluster.services.get(StorageSettings).mount
    rows = []
    async with ConnectionPool(cluster) as pool:
        head = await pool.get(cluster.head.name)
        for name, program in PROGRAMS.items():
            await head.run(["tee", f"{shared}/{name}"], input=program.encode(), timeout=60)
        seconds, ok = await timed(pool, cluster, "srun -N3 --mpi=pmix python3 hello.py")
        rows.append(f"| srun -N3 --mpi=pmix, mpi4py | {seconds:.1f} | {ok} | |")
        mpiexec = f"mpiexec -machinefile {OPENMPI_HOSTS} --map-by node -n 3 python3 hello.py"
        seconds, ok = await timed(pool, cluster, mpiexec)
        rows.append(f"| mpiexec -machinefile (SSH), 3 ranks | {seconds:.1f} | {ok} | |")
        for what, program in (("a rank exits before MPI_Init", "dies.py"),
                              ("rank 0 calls MPI_Abort", "aborts.py")):  # fmt: skip
            failed, ok = await timed(pool, cluster, f"srun -N3 python3 {program}")
            following, next_ok = await timed(pool, cluster, NEXT)
            rows.append(
                f"| {what}: job fails / next job | {failed:.1f} | {ok} | "
                f"{following:.1f} ({'ran' if next_ok else 'refused'}) |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cluster", type=Path, help="cluster.toml of a cluster piherd built")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_average = os.getloadavg()[0]
    rows = asyncio.run(bench(load(args.cluster)))
    print("\n".join(rows))
    if args.write_docs:
        update_table_section(
            DOCS,
            "## MPI jobs",
            [
                "A sim cluster (head + 3 full workers) after `piherd up`; seconds for each",
                "command on the head (`sh -c` over SSH included); the next job is",
                f"`{NEXT}` right after the failed one (the time until it ran).",
                f"1-minute load average {load_average:.1f} when the run started.",
            ],
            "| what | seconds | succeeded | next job s | command |",
            rows,
            "python bench/jobs_bench.py " + " ".join(sys.argv[1:]),
        )


if __name__ == "__main__":
    main()
