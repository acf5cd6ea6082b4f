"""Processes of the sim: run a command, launch a daemon that outlives us, stop one by PID."""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

# The daemon wrapper: joins the given cgroups, records its PID, then runs the command as
# its child and waits for it (so the command is reaped even when PID 1 does not reap,
# as on this machine). When the command exits with REBOOT_STATUS and an on-reboot program
# is given, the wrapper becomes that program (which boots the node again). Every value
# arrives as a positional argument, never in the script.
REBOOT_STATUS = 133  # systemd-nspawn's exit status when the container asked for a reboot
_WRAPPER = rf"""
pidfile=$1; childfile=$2; log=$3; onreboot=$4; ncg=$5; shift 5
while [ "$ncg" -gt 0 ]; do echo $$ > "$1" || exit 70; shift; ncg=$((ncg - 1)); done
echo $$ > "$pidfile"
"$@" >>"$log" 2>&1 </dev/null &
echo $! > "$childfile"
wait $!
rc=$?
if [ "$rc" = {REBOOT_STATUS} ] && [ -n "$onreboot" ]; then
   exec "$onreboot" >>"$log" 2>&1 </dev/null
fi
exit $rc
"""


class SimError(Exception):
    """A step of the sim failed; the message says which and why."""


async def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: bytes | None = None,
    timeout: float = 120.0,
) -> tuple[int, str, str]:
    """Run argv; (rc, stdout, stderr). SimError when check and rc != 0 or on timeout."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(input)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise SimError(f"timed out after {timeout:.0f}s: {' '.join(argv[:6])}") from None
    rc = proc.returncode if proc.returncode is not None else -1
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if check and rc != 0:
        tail = "\n".join((stderr.strip() or stdout.strip()).splitlines()[-12:])
        raise SimError(f"{' '.join(argv[:6])} failed ({rc}): {tail}")
    return rc, stdout, stderr


async def launch(
    argv: Sequence[str],
    *,
    pidfile: Path,
    childfile: Path,
    log: Path,
    cgroup_procs: Sequence[Path] = (),
    on_reboot: Path | None = None,
    timeout: float = 10.0,
) -> int:
    """Start argv detached (own session) under a small waiting wrapper; the child's PID.
    `on_reboot`: a program the wrapper execs when argv exits asking for a reboot."""
    for stale in (pidfile, childfile):
        stale.unlink(missing_ok=True)
    wrapper = ["sh", "-c", _WRAPPER, "piherd-sim", str(pidfile), str(childfile), str(log)]
    wrapper.append(str(on_reboot) if on_reboot else "")
    wrapper += [str(len(cgroup_procs)), *map(str, cgroup_procs), *argv]
    # Not run(): the daemon must not inherit our pipes, or we would wait for it to exit.
    starter = await asyncio.create_subprocess_exec(
        "setsid", "-f", *wrapper,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(timeout):
        await starter.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(childfile.read_text().strip())
        await asyncio.sleep(0.02)
    raise SimError(f"{argv[0]} did not start within {timeout:.0f}s (log: {log})")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    """True when pid runs (zombies count as gone)."""
    if pid is None or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reap(pid: int) -> None:
    """Collect pid's exit status when it is our child (tests run as a subreaper)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# A killed container's init is gone only once every process of its PID namespace is:
# nine full nodes cut at once on a loaded machine took more than 5 s.
KILL_GRACE = 60.0


async def stop(pid: int | None, *, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Signal pid and wait until it is gone; SIGKILL after `timeout`, then wait up to
    KILL_GRACE for the kernel to finish it."""
    if not alive(pid):
        if pid:
            _reap(pid)
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + (KILL_GRACE if sig == signal.SIGKILL else timeout)
    while alive(pid):
        _reap(pid)
        if time.monotonic() > deadline and sig != signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            sig = signal.SIGKILL
            deadline = time.monotonic() + KILL_GRACE
        elif time.monotonic() > deadline:
            raise SimError(f"process {pid} survived SIGKILL")
        await asyncio.sleep(0.02)
    _reap(pid)


async def stop_daemon(pidfile: Path, childfile: Path, *, sig: int = signal.SIGTERM) -> None:
    """Stop a launch()ed daemon, then its wrapper; both by the PIDs they recorded.

    The PID files go too: left behind, a later stop of a node already off would signal
    whatever process has been given that PID since (seen with a busy machine).
    """
    await stop(read_pid(childfile), sig=sig)
    await stop(read_pid(pidfile), sig=signal.SIGTERM, timeout=2.0)
    for path in (childfile, pidfile):
        path.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def file_lock(path: Path, poll: float) -> AsyncIterator[None]:
    """Hold an exclusive flock on `path` (created if missing), polling without blocking
    the event loop; released on exit."""
    with path.open("w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(poll)
        yield
