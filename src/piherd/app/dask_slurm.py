"""Dask from a laptop: a distributed.Client whose workers are Slurm jobs on the cluster.

`DaskOnSlurm.start()`:
1. asks the head which Python, machine and C library the nodes have;
2. downloads, on this machine, wheels of the *same* versions of dask and distributed
   (and numpy, cloudpickle, msgpack) as this Python has, plus dask-jobqueue, for the
   nodes' platform (`pip download`, cached under ~/.cache/piherd/wheels): the nodes need
   no Internet, and client and workers agree on every version;
3. copies them to the shared storage through the head and builds one virtual
   environment there from them alone (`pip install --no-index`), once per set;
4. runs dask-jobqueue's SLURMCluster on the head in that environment, over SSH: its
   scheduler listens on the head's cluster address and each worker is one `sbatch` job
   running the environment's Python from the shared storage;
5. forwards a local port to the scheduler through the same SSH connection.

`close()` ends the remote process (its stdin closes): SLURMCluster cancels its jobs
(`scancel`) before it exits, and the tunnel and connection close. If this machine
goes away instead, sshd hangs up the process, which cancels the jobs the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import threading
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from piherd.model import Cluster
from piherd.services.storage import StorageSettings
from piherd.transport.pool import ConnectionPool
from piherd.transport.ssh import SshTransport

T = TypeVar("T")

JOBQUEUE = "dask-jobqueue==0.9.0"
# Installed on the nodes at this machine's versions, so both ends speak the same protocol
# and pickle format (numpy only when this machine has it).
PINNED = ("dask", "distributed", "cloudpickle", "msgpack", "numpy")
MAX_WORKERS = 1024
_MEMORY = re.compile(r"[0-9]{1,6}(\.[0-9]{1,3})?\s?(B|[kKMGT]B|[KMGT]iB)")
_WALLTIME = re.compile(r"([0-9]{1,3}-)?[0-9]{1,3}:[0-5][0-9](:[0-5][0-9])?")
_PLATFORM = re.compile(
    r"(?P<machine>[a-z0-9_]{1,20}) (?P<py>3\.[0-9]{1,2}) glibc (?P<libc>2\.[0-9]{1,3})"
)

# Runs on the head in the environment built from the wheels. argv: host python job_name
# jobs cores memory walltime log_dir. One JSON line when the scheduler is up; the jobs
# are cancelled when stdin closes or the session hangs up.
REMOTE = """\
import json, signal, sys
from dask_jobqueue import SLURMCluster
host, python, name, jobs, cores, memory, walltime, logs = sys.argv[1:9]
def stop(*_):
    raise SystemExit(0)
signal.signal(signal.SIGHUP, stop)
signal.signal(signal.SIGTERM, stop)
cluster = SLURMCluster(
    cores=int(cores), processes=1, memory=memory, walltime=walltime, python=python,
    job_name=name, log_directory=logs, local_directory="/tmp",
    job_extra_directives=["--chdir=/tmp"],
    scheduler_options={"host": host, "port": 0, "dashboard": False},
)
try:
    cluster.scale(jobs=int(jobs))
    print(json.dumps({"scheduler": cluster.scheduler_address, "job_name": name}), flush=True)
    sys.stdin.read()
finally:
    cluster.close()
    print(json.dumps({"closed": True}), flush=True)
"""


class DaskSetupError(RuntimeError):
    """The Dask cluster could not be set up (the message says where and why)."""


@dataclass(frozen=True)
class DaskOptions:
    """What each worker job asks Slurm for."""

    workers: int = 3
    cores: int = 1
    memory: str = "1GiB"
    walltime: str = "01:00:00"

    def check(self) -> None:
        """ValueError when a value is out of range or not of its form."""
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1-{MAX_WORKERS}, not {self.workers}")
        if not 1 <= self.cores <= 256:
            raise ValueError(f"cores must be 1-256, not {self.cores}")
        if not _MEMORY.fullmatch(self.memory):
            raise ValueError(f"memory {self.memory!r} is not like '1GiB' or '500MB'")
        if not _WALLTIME.fullmatch(self.walltime):
            raise ValueError(f"walltime {self.walltime!r} is not like '01:00:00' or '1-00:00'")


def node_platforms(machine: str, glibc_minor: int) -> list[str]:
    """pip's --platform tags for a Linux node: every manylinux its C library accepts."""
    tags = [f"manylinux_2_{m}_{machine}" for m in range(glibc_minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{machine}" for minor, name in legacy.items() if minor <= glibc_minor]
    return tags


def pinned_requirements() -> list[str]:
    """This Python's versions of what client and workers must share, plus dask-jobqueue."""
    pins = []
    for name in PINNED:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name in ("dask", "distributed"):
                raise DaskSetupError(
                    f"{name} is not installed here: pip install 'dask[array]' distributed"
                ) from None
    return [*pins, JOBQUEUE]


def download_wheels(requirements: Sequence[str], machine: str, py: str, glibc_minor: int) -> Path:
    """Wheels for the nodes' platform, downloaded once into a cache directory."""
    key = hashlib.sha256(" ".join([*requirements, machine, py]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    target = cache / "piherd" / "wheels" / key
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    platforms = [arg for tag in node_platforms(machine, glibc_minor) for arg in ("--platform", tag)]
    argv = [
        sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", py,
        *platforms, "-d", str(target), *requirements, "pip",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise DaskSetupError(f"pip download of the nodes' wheels failed: {done.stderr[-2000:]}")
    (target / ".complete").write_text(" ".join(requirements) + "\n")
    return target


def _tar(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(directory.glob("*.whl")):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def build_script(wheels: str, venv: str, requirements: Sequence[str]) -> str:
    """sh script (run on the head) that builds the environment from the wheels, once.

    `--copies`: the nodes read the environment over the shared storage, and sshfs (the
    virtual cluster's) cannot read the symbolic links a venv makes by default.
    """
    w, v = shlex.quote(wheels), shlex.quote(venv)
    return (
        "set -e\n"
        f"if [ ! -e {v}/piherd-ready ]; then\n"
        f"  rm -rf {v}\n"
        f"  python3 -m venv --without-pip --copies {v}\n"
        f"  set -- {w}/pip-*.whl\n"
        f'  {v}/bin/python "$1/pip" install -q --disable-pip-version-check --no-index '
        f"--find-links {w} {shlex.join(requirements)}\n"
        f"  touch {v}/piherd-ready\n"
        "fi\n"
    )


class DaskOnSlurm:
    """A SLURMCluster on the head, reached from here through an SSH tunnel.

    Its own event loop runs in a thread, so callers stay synchronous (a notebook).
    """

    def __init__(self, cluster: Cluster, options: DaskOptions) -> None:
        options.check()
        storage = cluster.services.find(StorageSettings)
        if storage is None or not storage.enabled:
            raise DaskSetupError("dask needs the shared storage: turn [services.storage] on")
        self.cluster = cluster
        self.options = options
        self.storage = storage
        self.job_name = f"piherd-dask-{os.urandom(4).hex()}"
        self.local_port = 0
        self.scheduler = ""
        self.stderr: deque[str] = deque(maxlen=200)
        self._logs = ""  # the worker jobs' log directory, on the head
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._pool: ConnectionPool | None = None
        self._process: asyncssh.SSHClientProcess[str] | None = None
        self._listener: asyncssh.SSHListener | None = None
        self._drains: list[asyncio.Task[None]] = []
        self._closed = False

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self, timeout: float = 900) -> str:
        """Set everything up; the local address (tcp://127.0.0.1:PORT) of the scheduler."""
        self._thread.start()
        try:
            self._call(self._start(), timeout)
        except BaseException:
            self.close()
            raise
        return f"tcp://127.0.0.1:{self.local_port}"

    async def _head(self) -> SshTransport:
        if self._pool is None:  # one connection for the whole session
            self._pool = ConnectionPool(self.cluster)
            await self._pool.__aenter__()
        transport = await self._pool.get(self.cluster.head.name)
        if not isinstance(transport, SshTransport):
            raise DaskSetupError("the head is not reached over SSH")
        return transport

    async def _run(self, t: SshTransport, argv: Sequence[str], what: str, **kw: Any) -> str:
        result = await t.run(argv, timeout=900, **kw)
        if not result.ok:
            raise DaskSetupError(
                f"{what} on {t.node} failed: {result.error or result.stderr[-2000:]}"
            )
        return result.stdout

    async def _start(self) -> None:
        t = await self._head()
        probe = (
            "import os, platform, sys; print(platform.machine(), '%d.%d' % sys.version_info[:2],"
            " os.confstr('CS_GNU_LIBC_VERSION'))"
        )
        found = _PLATFORM.fullmatch(
            (await self._run(t, ["python3", "-c", probe], "python3")).strip()
        )
        if found is None:
            raise DaskSetupError("the head's Python or C library is not one piherd knows")
        requirements = pinned_requirements()
        machine, py, libc = found["machine"], found["py"], found["libc"]
        wheels = await asyncio.to_thread(
            download_wheels, requirements, machine, py, int(libc.split(".")[1])
        )
        key = wheels.name
        export = self.storage.export if self.cluster.head.name == self.storage.server_name else ""
        if not export:
            raise DaskSetupError("dask needs the head to be the storage server")
        base_here = f"{export.rstrip('/')}/.piherd/dask/{key}"
        base_nodes = f"{self.storage.mount.rstrip('/')}/.piherd/dask/{key}"
        self._logs = f"{base_here}/logs"
        await self._run(t, ["mkdir", "-p", f"{base_here}/wheels", self._logs], "mkdir")
        await self._run(t, ["tar", "-x", "-C", f"{base_here}/wheels"], "copying wheels",
                        input=await asyncio.to_thread(_tar, wheels))  # fmt: skip
        script = build_script(f"{base_here}/wheels", f"{base_here}/venv", requirements)
        await self._run(t, ["sh", "-c", script], "building the Python environment")
        o = self.options
        argv = [
            f"{base_here}/venv/bin/python", "-c", REMOTE, str(self.cluster.head.address),
            f"{base_nodes}/venv/bin/python", self.job_name, str(o.workers), str(o.cores),
            o.memory, o.walltime, f"{base_nodes}/logs",
        ]  # fmt: skip
        process = await t.connection.create_process(shlex.join(argv), encoding="utf-8")
        self._process = process
        self._drains.append(asyncio.ensure_future(self._drain(process.stderr)))
        async with asyncio.timeout(300):
            line = await process.stdout.readline()
        try:
            self.scheduler = json.loads(line)["scheduler"]
        except (ValueError, KeyError, TypeError):
            await asyncio.sleep(1)
            raise DaskSetupError(
                "SLURMCluster did not start on the head:\n" + "".join(self.stderr)[-3000:]
            ) from None
        self._drains.append(asyncio.ensure_future(self._drain(process.stdout)))
        host, port = self.scheduler.removeprefix("tcp://").rsplit(":", 1)
        self._listener = await t.connection.forward_local_port("127.0.0.1", 0, host, int(port))
        self.local_port = self._listener.get_port()

    def queue(self) -> str:
        """Slurm's view of the worker jobs (`squeue`: id, state, reason or nodes) and the
        end of their logs, for an error message when they do not all join."""
        try:
            return self._call(self._queue(), 60)
        except (TimeoutError, DaskSetupError, OSError, asyncssh.Error) as error:
            return f"(squeue failed: {error})"

    async def _queue(self) -> str:
        # squeue's view of the jobs, then the end of each one's log (why a worker that ran
        # did not join): one round trip.
        script = (
            'q=$(squeue -h -n "$2" -o "%i %T %R"); echo "${q:-(no jobs in the queue)}"\n'
            'for f in "$1"/"$2"-*.err; do [ -e "$f" ] && tail -v -n 8 "$f"; done; :'
        )
        argv = ["sh", "-c", script, "sh", self._logs, self.job_name]
        return await self._run(await self._head(), argv, "squeue")

    async def _drain(self, stream: asyncssh.SSHReader[str]) -> None:
        """Keep reading so the remote process never blocks on a full pipe."""
        with contextlib.suppress(asyncssh.Error, OSError):
            async for line in stream:
                self.stderr.append(line)

    async def _close(self) -> None:
        try:
            if self._process is not None:
                self._process.stdin.write_eof()
                try:
                    async with asyncio.timeout(120):
                        await self._process.wait_closed()
                except TimeoutError:
                    self._process.terminate()
            if self._listener is not None:
                self._listener.close()
        finally:
            for task in self._drains:
                task.cancel()
            if self._pool is not None:
                await self._pool.__aexit__(None, None, None)

    def close(self) -> None:
        """Cancel the worker jobs, close the tunnel and the connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread.is_alive():
                self._call(self._close(), 180)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._loop.is_running():
                self._loop.close()
