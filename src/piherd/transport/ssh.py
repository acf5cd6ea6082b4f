"""SSH transport on asyncssh: one connection per node, sudo, atomic writes, accept-new keys.

Honours ~/.ssh/config plus the cluster's ssh_config, checks host keys against the
cluster's known_hosts (or ~/.ssh/known_hosts) with the "accept-new" policy of
transport/hostkeys.py, and tries the node's static address before its fallbacks
(a DHCP or bootstrap address). Errors become TransportError with a human reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import random
import shlex
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncssh

from piherd.transport import remote_scripts
from piherd.transport.base import CommandResult, TransportError
from piherd.transport.hostkeys import (
    AcceptNewClient,
    KnownHostsCache,
    NewKeyCallback,
    default_known_hosts,
)
from piherd.transport.sshconfig import SshConfigCache

log = logging.getLogger(__name__)

# sshd drops connections over its MaxStartups limit before sending its banner: retry
# those (and only those) a few times with a growing, jittered delay.
_BANNER_RETRIES = 6
_BANNER_BACKOFF = 0.25
# Extra seconds the client waits for a remote `timeout` to report before giving up.
_TIMEOUT_GRACE = 3.0
# Every command announces its process group on stderr, then execs: a cancelled command
# is killed by group, children included. With a time limit that group is `timeout`'s (it
# makes itself the leader, with the PID it was exec'd into); without, the one it runs in
# (sshd starts a session per command), read from field 5 of /proc/PID/stat.
_PGID_MARK = b"@piherd-pgid "
_MARK_SEARCH_LINES = 50
_ANNOUNCE_OWN_GROUP = 'echo "@piherd-pgid $$" >&2; exec "$@"'
_ANNOUNCE_GROUP = (
    'g() { set -- $1; echo "@piherd-pgid $3" >&2; }; '
    'read -r s < "/proc/$$/stat" && g "${s##*) }"; exec "$@"'
)
_KILL_GROUP = 'kill -TERM "-$1"'  # dash's kill takes no "--"
# A connection whose peer stops answering (a pulled cable) is declared dead after
# KEEPALIVE_INTERVAL * KEEPALIVE_COUNT seconds without a reply, instead of never.
KEEPALIVE_INTERVAL = 5.0
KEEPALIVE_COUNT = 3


class _Unreachable(Exception):
    """This address did not answer; the next fallback address may."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe_os_error(exc: OSError, timeout: float) -> str:
    """A short human reason for a failed TCP connect."""
    if isinstance(exc, socket.gaierror):
        return "unreachable (name does not resolve)"
    if isinstance(exc, TimeoutError):
        return f"unreachable (timed out after {timeout:g}s)"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable (connection refused)"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable (no route to host)"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return (
            "out of file descriptors on this machine (too many open connections): "
            "lower --fanout or raise `ulimit -n`"
        )
    return f"unreachable ({exc.strerror or exc})"


def _returncode(result: asyncssh.SSHCompletedProcess) -> int:
    code = result.returncode
    if code is None:
        return 255
    return 128 - code if code < 0 else int(code)


class SshTransport:
    """A Transport over SSH to one node. Construct cheaply; `connect()` does the I/O."""

    def __init__(
        self,
        node: str,
        host: str,
        *,
        port: int = 22,
        username: str,
        known_hosts: Path | None,
        ssh_config: Path | None,
        client_keys: Sequence[str | Path] | None = None,
        connect_timeout: float = 10.0,
        fallback_hosts: Sequence[str] = (),
        on_new_host_key: NewKeyCallback | None = None,
        use_sudo: bool | None = None,
        known_hosts_cache: KnownHostsCache | None = None,
        config_cache: SshConfigCache | None = None,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        keepalive_count: int = KEEPALIVE_COUNT,
    ) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.username = username
        self.known_hosts = known_hosts if known_hosts is not None else default_known_hosts()
        self.ssh_config = ssh_config
        self.client_keys = client_keys
        self.connect_timeout = connect_timeout
        self.fallback_hosts = tuple(h for h in fallback_hosts if h and h != host)
        self.on_new_host_key = on_new_host_key
        # sudo is skipped for root unless forced (tests force it to exercise the wrapper).
        self.use_sudo = use_sudo if use_sudo is not None else username != "root"
        self.known_hosts_cache = known_hosts_cache
        self.config_cache = config_cache
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self.address: str | None = None  # the address that answered, once connected
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()

    # -- connection ---------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to `host`, then each fallback; TransportError when none answers."""
        async with self._lock:
            if self._conn is not None:
                return
            tried: list[str] = []
            for address in (self.host, *self.fallback_hosts):
                try:
                    self._conn = await self._connect_to(address)
                except _Unreachable as exc:
                    tried.append(
                        exc.reason if not self.fallback_hosts else f"{address}: {exc.reason}"
                    )
                    continue
                self.address = address
                return
            raise TransportError(self.node, "; ".join(tried))

    def _config_files(self, address: str) -> list[str]:
        """The cluster's ssh_config and ~/.ssh/config, cut down to what can apply to address."""
        files = [self.ssh_config] if self.ssh_config is not None else []
        user_config = Path.home() / ".ssh" / "config"
        if user_config.exists():
            files.append(user_config)
        if self.config_cache is None:  # a transport on its own: asyncssh reads them whole
            return [str(f) for f in files]
        return self.config_cache.files_for(files, address)

    async def _connect_to(self, address: str) -> asyncssh.SSHClientConnection:
        options: dict[str, Any] = {}
        if self.client_keys is not None:
            options["client_keys"] = [str(k) for k in self.client_keys]
        delay = _BANNER_BACKOFF
        for attempt in range(_BANNER_RETRIES):
            client = AcceptNewClient(
                self.node, self.known_hosts, [], self.port, self.on_new_host_key,
                cache=self.known_hosts_cache,
            )  # fmt: skip
            try:
                async with asyncio.timeout(self.connect_timeout + 1.0):
                    conn = await asyncssh.connect(
                        address,
                        port=self.port,
                        username=self.username,
                        known_hosts=client.lookup,
                        config=self._config_files(address),
                        client_factory=lambda c=client: c,
                        connect_timeout=self.connect_timeout,
                        keepalive_interval=self.keepalive_interval,
                        keepalive_count_max=self.keepalive_count,
                        **options,
                    )
                return conn
            except asyncssh.HostKeyNotVerifiable as exc:
                raise TransportError(
                    self.node, client.refusal or f"host key refused: {exc}"
                ) from None
            except asyncssh.PermissionDenied:
                raise TransportError(
                    self.node, f"authentication refused for user {self.username}"
                ) from None
            except (asyncssh.ConnectionLost, ConnectionResetError) as exc:
                # Closed before the banner: sshd's MaxStartups. Back off and retry.
                if attempt == _BANNER_RETRIES - 1:
                    raise _Unreachable(
                        f"unreachable (connection closed before the SSH banner {attempt + 1} "
                        f"times: sshd MaxStartups? lower --fanout): {exc}"
                    ) from None
                await asyncio.sleep(delay * random.uniform(1.0, 1.5))  # noqa: S311 (jitter)
                delay *= 2
            except TimeoutError:
                raise _Unreachable(
                    f"unreachable (timed out after {self.connect_timeout:g}s)"
                ) from None
            except OSError as exc:
                raise _Unreachable(describe_os_error(exc, self.connect_timeout)) from None
            except asyncssh.Error as exc:
                raise _Unreachable(f"unreachable (ssh: {exc.reason})") from None
        raise AssertionError("unreachable code")  # pragma: no cover

    @property
    def connection(self) -> asyncssh.SSHClientConnection:
        """The open asyncssh connection (for port forwarding and long-lived processes)."""
        if self._conn is None:
            raise TransportError(self.node, "not connected")
        return self._conn

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.close()
        try:
            async with asyncio.timeout(5.0):
                await conn.wait_closed()
        except (TimeoutError, OSError, asyncssh.Error):
            pass

    async def __aenter__(self) -> SshTransport:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- commands -----------------------------------------------------------------

    def command_line(self, argv: Sequence[str], *, sudo: bool) -> str:
        """The remote command line for argv (quoted; `sudo -n --` when asked and not root)."""
        if not argv:
            raise ValueError("empty command")
        words = ["sudo", "-n", "--", *argv] if sudo and self.use_sudo else list(argv)
        return shlex.join(words)

    async def _exec(
        self,
        command: str,
        input: bytes | None,
        timeout: float | None,
        *,
        stop_with: list[str] | None = None,
    ) -> tuple[int | None, bytes, bytes, str | None]:
        """Run a command line: (rc, stdout, stderr, error). Stops it on timeout/cancel.

        With `stop_with` (the sudo prefix, possibly empty) the command is expected to announce
        its process group on its first stderr line (_ANNOUNCE_GROUP); a cancelled command is
        then killed by group over a second channel, which works where sshd refuses signal
        requests (root logins) and reaches the command's children too.
        """
        await self.connect()
        conn = self._conn
        if conn is None:  # pragma: no cover - connect() raised instead
            raise TransportError(self.node, "not connected")
        try:
            proc = await conn.create_process(command, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            await self.close()
            return None, b"", b"", f"connection lost ({exc})"
        finished = False
        pgid = ""
        first = b""
        try:
            async with asyncio.timeout(timeout):
                await _feed(proc, input)
                if stop_with is not None:
                    # Login scripts may print before the marker: keep their lines.
                    for _ in range(_MARK_SEARCH_LINES):
                        line = await proc.stderr.readline()
                        if line.startswith(_PGID_MARK):
                            pgid = line[len(_PGID_MARK) :].strip().decode()
                            break
                        first += line
                        if not line:
                            break
                result = await proc.wait()
            finished = True
            if result.returncode is None:  # no exit status: the channel went away
                await self.close()
                return None, b"", b"", "connection lost (no exit status from the node)"
            out = result.stdout if isinstance(result.stdout, bytes) else b""
            err = result.stderr if isinstance(result.stderr, bytes) else b""
            return _returncode(result), out, first + err, None
        except TimeoutError:
            return None, b"", b"", f"timeout after {timeout:g}s"
        except (asyncssh.Error, OSError, BrokenPipeError) as exc:
            await self.close()
            return None, b"", b"", f"connection lost ({exc})"
        finally:
            if not finished:
                _stop(proc)
                if pgid.isdigit() and stop_with is not None:
                    await _kill_group(conn, stop_with, pgid)
            proc.close()

    async def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run argv on the node; a failing command is a result, an unreachable node raises."""
        started = time.monotonic()
        # The remote `timeout` (its own process group) kills the command even where sshd
        # refuses signal requests (root logins run without privilege separation); the local
        # deadline, a little later, covers a node that stops answering.
        # Without a limit no `timeout` runs: one exec and fork less per command on the node.
        if timeout is None:
            wrapped = ["sh", "-c", _ANNOUNCE_GROUP, "piherd", *argv]
        else:
            limit = ["timeout", "-k", "2", f"{timeout:.3f}s"]
            wrapped = ["sh", "-c", _ANNOUNCE_OWN_GROUP, "piherd", *limit, *argv]
        prefix = ["sudo", "-n", "--"] if sudo and self.use_sudo else []
        rc, out, err, error = await self._exec(
            self.command_line(wrapped, sudo=sudo),
            input,
            None if timeout is None else timeout + _TIMEOUT_GRACE,
            stop_with=prefix,
        )
        if timeout is not None:
            if error is not None and error.startswith("timeout"):
                error = f"timeout after {timeout:g}s"
            elif rc in (124, 137) and time.monotonic() - started >= timeout:
                rc, error = None, f"timeout after {timeout:g}s"
        return CommandResult(
            node=self.node,
            rc=rc,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            error=error,
            elapsed=time.monotonic() - started,
        )

    # -- files --------------------------------------------------------------------

    async def write_file(
        self, path: str, content: bytes, *, mode: int, owner: str = "root", group: str = "root"
    ) -> None:
        """Atomically replace `path`: temp file beside it, checked, fsynced, renamed."""
        argv = [
            "sh",
            "-c",
            remote_scripts.WRITE_FILE,
            "sh",
            path,
            f"{mode:04o}",
            owner,
            group,
            str(len(content)),
            hashlib.sha256(content).hexdigest(),
        ]
        rc, _out, err, error = await self._exec(self.command_line(argv, sudo=True), content, None)
        if error is not None or rc != 0:
            detail = error or err.decode("utf-8", "replace").strip() or f"rc={rc}"
            raise TransportError(self.node, f"cannot write {path}: {detail}")

    async def read_file(self, path: str, *, sudo: bool = False) -> bytes | None:
        """Contents of `path`, or None when it does not exist."""
        argv = ["sh", "-c", remote_scripts.READ_FILE, "sh", path]
        rc, out, err, error = await self._exec(self.command_line(argv, sudo=sudo), None, None)
        if rc == remote_scripts.READ_MISSING_RC:
            return None
        if error is not None or rc != 0:
            detail = error or err.decode("utf-8", "replace").strip() or f"rc={rc}"
            raise TransportError(self.node, f"cannot read {path}: {detail}")
        return out


async def _kill_group(conn: asyncssh.SSHClientConnection, prefix: list[str], pgid: str) -> None:
    """Best effort, bounded: TERM the remote command's process group over a new channel."""
    command = shlex.join([*prefix, "sh", "-c", _KILL_GROUP, "sh", pgid])
    with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
        async with asyncio.timeout(3.0):
            await conn.run(command, check=False)


async def _feed(proc: asyncssh.SSHClientProcess[bytes], data: bytes | None) -> None:
    """Send stdin, then EOF. A command that exits before reading it all (a copy refused
    at once) closes its end: that is its answer, not a lost connection; wait() tells."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            proc.stdin.write(data)
            await proc.stdin.drain()
        proc.stdin.write_eof()


def _stop(proc: asyncssh.SSHClientProcess[bytes]) -> None:
    """Ask sshd to signal the remote command (sudo relays it), then close the channel."""
    with contextlib.suppress(asyncssh.Error, OSError, ValueError):
        proc.send_signal("TERM")
