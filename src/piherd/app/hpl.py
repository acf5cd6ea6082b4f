"""`piherd bench hpl`: HPL (Debian's hpcc) through Slurm on one node and on a node set.

Each run is a batch job (`sbatch --wait`, one MPI rank per CPU, `mpirun hpcc` in a
directory of its own on the shared storage) sized from the nodes' memory as Slurm
knows it: N = sqrt(fraction x memory / 8 bytes), a multiple of NB. While a run lasts
every node in it is sampled for its SoC temperature and the firmware's throttling bits.
The report holds Gflops per run and the efficiency of the big run against N x the
one-node run.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from piherd.model import Cluster, fold
from piherd.services.storage import StorageSettings
from piherd.transport.base import Transport
from piherd.transport.pool import ConnectionPool

NB = 128
MAX_FRACTION = 0.9
_SINFO = re.compile(r"(?P<node>\S+) (?P<cpus>[0-9]{1,5}) (?P<mem>[0-9]{1,9})")
_RESULT = re.compile(r"^(HPL_Tflops|HPL_N|HPL_time|HPL_NB|HPL_nprow|HPL_npcol)=(\S+)$", re.M)
SAMPLE = (
    "cat /sys/class/thermal/thermal_zone0/temp 2>/dev/null || echo -; "
    "vcgencmd get_throttled 2>/dev/null || echo -"
)

# hpcc's input: HPL's 31 lines, then PTRANS's (no extra sizes). See hpcc's _hpccinf.txt.
HPCCINF = """\
HPLinpack benchmark input file (written by piherd bench hpl)
Innovative Computing Laboratory, University of Tennessee
HPL.out      output file name (if any)
6            device out (6=stdout,7=stderr,file)
1            # of problems sizes (N)
{n}          Ns
1            # of NBs
{nb}         NBs
0            PMAP process mapping (0=Row-,1=Column-major)
1            # of process grids (P x Q)
{p}          Ps
{q}          Qs
16.0         threshold
1            # of panel fact
2            PFACTs (0=left, 1=Crout, 2=Right)
1            # of recursive stopping criterium
4            NBMINs (>= 1)
1            # of panels in recursion
2            NDIVs
1            # of recursive panel fact.
1            RFACTs (0=left, 1=Crout, 2=Right)
1            # of broadcast
1            BCASTs (0=1rg,1=1rM,2=2rg,3=2rM,4=Lng,5=LnM)
1            # of lookahead depth
1            DEPTHs (>=0)
2            SWAP (0=bin-exch,1=long,2=mix)
64           swapping threshold
0            L1 in (0=transposed,1=no-transposed) form
0            U  in (0=transposed,1=no-transposed) form
1            Equilibration (0=no,1=yes)
8            memory alignment in double (> 0)
##### This line (no. 32) is ignored (it serves as a separator). ######
0                               Number of additional problem sizes for PTRANS
1200                            values of N
0                               number of additional blocking sizes for PTRANS
40                              values of NB
"""


class HplError(RuntimeError):
    """A run could not be set up or did not finish (the message says why)."""


@dataclass(frozen=True)
class Sizing:
    """One run's problem: N, block size and the P x Q process grid."""

    n: int
    nb: int
    p: int
    q: int

    @property
    def ranks(self) -> int:
        return self.p * self.q


@dataclass
class HplRun:
    """What one run did."""

    nodes: str
    node_count: int
    ranks: int
    n: int
    nb: int
    grid: str
    seconds: float = 0.0
    gflops: float = 0.0
    efficiency: float | None = None  # against node_count x the one-node run
    max_temp_c: dict[str, float | None] = field(default_factory=dict)
    throttled: dict[str, str] = field(default_factory=dict)  # OR of the bits seen, hex


def grid(ranks: int) -> tuple[int, int]:
    """P x Q = ranks with P <= Q and P as large as possible (HPL likes it near square)."""
    p = math.isqrt(ranks)
    while ranks % p:
        p -= 1
    return p, ranks // p


def size(memory_mib: int, node_count: int, ranks: int, fraction: float, nb: int = NB) -> Sizing:
    """N filling `fraction` of the nodes' memory (memory_mib: the smallest node's)."""
    total = memory_mib * 1024 * 1024 * node_count * fraction
    n = int(math.sqrt(total / 8)) // nb * nb
    p, q = grid(ranks)
    return Sizing(max(n, nb), nb, p, q)


def hpccinf(sizing: Sizing) -> str:
    """hpccinf.txt for one run."""
    return HPCCINF.format(n=sizing.n, nb=sizing.nb, p=sizing.p, q=sizing.q)


def parse_summary(text: str) -> dict[str, float]:
    """hpcc's summary values for HPL (HPL_Tflops, HPL_N, HPL_time, ...)."""
    values: dict[str, float] = {}
    for key, value in _RESULT.findall(text):
        try:
            values[key] = float(value)
        except ValueError:
            continue
    return values


def parse_sample(text: str) -> tuple[float | None, int | None]:
    """(temperature in C, throttled bits) from SAMPLE's output; None where unknown."""
    lines = text.split("\n")
    temp = None
    if lines and lines[0].strip().isdigit():
        temp = int(lines[0].strip()) / 1000
    bits = None
    found = re.search(r"throttled=0x([0-9a-fA-F]{1,8})", text)
    if found:
        bits = int(found.group(1), 16)
    return temp, bits


def batch_script(nodes: Sequence[str], ranks_per_node: int, directory: str, name: str) -> str:
    """The sbatch file of one run: every CPU of `nodes` one rank of hpcc."""
    return (
        "#!/bin/sh\n"
        f"#SBATCH --job-name={name}\n"
        f"#SBATCH --nodes={len(nodes)}\n"
        f"#SBATCH --nodelist={','.join(nodes)}\n"
        f"#SBATCH --ntasks-per-node={ranks_per_node}\n"
        "#SBATCH --exclusive\n"
        f"#SBATCH --chdir={directory}\n"
        f"#SBATCH --output={directory}/slurm.out\n"
        "export OPENBLAS_NUM_THREADS=1\n"
        "exec mpirun hpcc\n"
    )


class _Sampler:
    """Temperature and throttling of some nodes, every `interval` seconds, until stopped."""

    def __init__(self, pool: ConnectionPool, nodes: Sequence[str], interval: float) -> None:
        self.pool, self.nodes, self.interval = pool, list(nodes), interval
        self.temps: dict[str, float | None] = dict.fromkeys(self.nodes)
        self.bits: dict[str, int] = dict.fromkeys(self.nodes, 0)

    async def once(self) -> None:
        async def one(name: str) -> None:
            t = await self.pool.get(name)
            result = await t.run(["sh", "-c", SAMPLE], timeout=10)
            temp, bits = parse_sample(result.stdout)
            if temp is not None:
                old = self.temps[name]
                self.temps[name] = temp if old is None else max(old, temp)
            if bits is not None:
                self.bits[name] |= bits

        await asyncio.gather(*(one(n) for n in self.nodes), return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.once()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await stop.wait()


async def _checked(t: Transport, argv: Sequence[str], what: str, **kw: Any) -> str:
    result = await t.run(argv, **kw)
    if not result.ok:
        raise HplError(f"{what} on {t.node}: {result.error or result.stderr.strip()[-1500:]}")
    return result.stdout


INSTALL = (
    "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
    "--no-install-recommends", "hpcc", "libopenblas0-serial",
)  # fmt: skip


async def _install_hpcc(pool: ConnectionPool, nodes: Sequence[str]) -> None:
    """Debian's hpcc on every node that lacks it (through the node's apt and its proxy),
    with OpenBLAS's single-threaded build as its BLAS (one MPI rank per CPU already uses
    every core; Debian's reference BLAS would be several times slower)."""

    async def one(name: str) -> None:
        t = await pool.get(name)
        has = "command -v hpcc && test -e /usr/lib/$(uname -m)-linux-gnu/openblas-serial"
        if (await t.run(["sh", "-c", has], timeout=30)).ok:
            return
        await _checked(t, INSTALL, "apt-get install hpcc", sudo=True, timeout=1200)

    await asyncio.gather(*(one(n) for n in nodes))


async def _node_resources(t: Transport, nodes: Sequence[str]) -> dict[str, tuple[int, int]]:
    out = await _checked(t, ["sinfo", "-h", "-N", "-o", "%N %c %m"], "sinfo", timeout=30)
    found = {
        m["node"]: (int(m["cpus"]), int(m["mem"]))
        for m in map(_SINFO.fullmatch, out.split("\n"))
        if m
    }
    missing = [n for n in nodes if n not in found]
    if missing:
        raise HplError(f"Slurm does not know {fold(missing)}: are they compute nodes?")
    return {n: found[n] for n in nodes}


async def _one_run(
    pool: ConnectionPool,
    cluster: Cluster,
    nodes: Sequence[str],
    resources: dict[str, tuple[int, int]],
    fraction: float,
    timeout: float,
    sample_interval: float,
) -> HplRun:
    storage = cluster.services.get(StorageSettings)
    head = await pool.get(cluster.head.name)
    per_node = min(resources[n][0] for n in nodes)
    memory = min(resources[n][1] for n in nodes)
    sizing = size(memory, len(nodes), per_node * len(nodes), fraction)
    name = f"piherd-hpl-{os.urandom(3).hex()}"
    where = f"{storage.mount.rstrip('/')}/.piherd/hpl/{name}"
    here = f"{storage.export.rstrip('/')}/.piherd/hpl/{name}"
    await _checked(head, ["mkdir", "-p", here], "mkdir", timeout=30)
    await _checked(head, ["dd", f"of={here}/hpccinf.txt", "status=none"], "writing hpccinf.txt",
                   input=hpccinf(sizing).encode(), timeout=30)  # fmt: skip
    script = batch_script(nodes, per_node, where, name)
    await _checked(head, ["dd", f"of={here}/hpl.sbatch", "status=none"], "writing the job",
                   input=script.encode(), timeout=30)  # fmt: skip
    sampler = _Sampler(pool, nodes, sample_interval)
    stop = asyncio.Event()
    sampling = asyncio.ensure_future(sampler.run(stop))
    started = time.monotonic()
    try:
        submit = f"cd {shlex.quote(here)} && sbatch --parsable --wait hpl.sbatch"
        result = await head.run(["sh", "-c", submit], timeout=timeout)
    finally:
        stop.set()
        await sampling
    output = await head.run(["cat", f"{here}/hpccoutf.txt"], timeout=30)
    values = parse_summary(output.stdout)
    if not result.ok or "HPL_Tflops" not in values:
        log = await head.run(["tail", "-n", "30", f"{here}/slurm.out"], timeout=30)
        raise HplError(
            f"HPL on {fold(nodes)} did not finish (sbatch rc={result.rc} {result.error or ''}):\n"
            f"{log.stdout}{result.stderr[-1000:]}"
        )
    await head.run(["rm", "-rf", here], timeout=60)
    return HplRun(
        nodes=fold(nodes),
        node_count=len(nodes),
        ranks=sizing.ranks,
        n=int(values.get("HPL_N", sizing.n)),
        nb=sizing.nb,
        grid=f"{sizing.p}x{sizing.q}",
        seconds=round(values.get("HPL_time", time.monotonic() - started), 2),
        gflops=round(values["HPL_Tflops"] * 1000, 4),
        max_temp_c=sampler.temps,
        throttled={n: f"0x{b:x}" for n, b in sampler.bits.items()},
    )


async def hpl(
    cluster: Cluster,
    nodes: Sequence[str],
    *,
    fraction: float = 0.5,
    timeout: float = 3600,
    sample_interval: float = 2.0,
) -> list[HplRun]:
    """HPL on the first node of `nodes`, then on all of them (one run when there is one)."""
    if not 0 < fraction <= MAX_FRACTION:
        raise ValueError(f"fraction must be in (0, {MAX_FRACTION}], not {fraction}")
    if (
        not cluster.services.find(StorageSettings)
        or not cluster.services.get(StorageSettings).enabled
    ):
        raise HplError("bench hpl needs the shared storage: turn [services.storage] on")
    async with ConnectionPool(cluster) as pool:
        head = await pool.get(cluster.head.name)
        resources = await _node_resources(head, nodes)
        missing = await head.run(["sh", "-c", "command -v sbatch"], timeout=30)
        if not missing.ok:
            raise HplError("sbatch is missing on the head: is [services.slurm] on?")
        await _install_hpcc(pool, nodes)
        runs = [
            await _one_run(pool, cluster, nodes[:1], resources, fraction, timeout, sample_interval)
        ]
        if len(nodes) > 1:
            runs.append(
                await _one_run(pool, cluster, nodes, resources, fraction, timeout, sample_interval)
            )
    one = runs[0].gflops
    for run in runs:
        run.efficiency = round(run.gflops / (run.node_count * one), 3) if one > 0 else None
    return runs


def as_dicts(runs: Sequence[HplRun]) -> list[dict[str, Any]]:
    """The runs as JSON-ready dicts."""
    return [asdict(r) for r in runs]
