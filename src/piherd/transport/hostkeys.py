"""Host-key policy "accept-new" for asyncssh: trust on first contact, record, refuse changes.

A host absent from known_hosts is accepted once, its fingerprint reported and appended to
the known_hosts file; a host whose key differs from the recorded one is refused with both
fingerprints. Checking is never turned off.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncssh

NewKeyCallback = Callable[[str, str, str], None]  # (node, address, fingerprint)


def default_known_hosts() -> Path:
    """The user's own known_hosts file (~/.ssh/known_hosts)."""
    return Path.home() / ".ssh" / "known_hosts"


def host_pattern(host: str, port: int) -> str:
    """The known_hosts name of `host`: bare on port 22, `[host]:port` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def known_entries(path: Path, host: str, addr: str, port: int | None) -> tuple[Any, ...]:
    """asyncssh's match of host/addr/port in `path`: (host keys, CA keys, revoked, ...)."""
    if not path.exists():
        return ([], [], [])
    known = asyncssh.import_known_hosts(path.read_text(encoding="utf-8", errors="replace"))
    return tuple(known.match(host, addr, port))


class KnownHostsCache:
    """Parsed known_hosts files shared by a pool's transports, re-read when a file changes.

    Parsing a 256-line file costs ~2 ms; a fan-out would otherwise pay it per connection.
    """

    def __init__(self) -> None:
        self._parsed: dict[Path, tuple[tuple[int, int], Any]] = {}

    def match(self, path: Path, host: str, addr: str, port: int | None) -> tuple[Any, ...]:
        """Like known_entries(), from the cached parse while the file is unchanged."""
        try:
            info = path.stat()
        except FileNotFoundError:
            return ([], [], [])
        signature = (info.st_mtime_ns, info.st_size)
        cached = self._parsed.get(path)
        if cached is None or cached[0] != signature:
            text = path.read_text(encoding="utf-8", errors="replace")
            cached = (signature, asyncssh.import_known_hosts(text))
            self._parsed[path] = cached
        return tuple(cached[1].match(host, addr, port))


def known_keys(path: Path, host: str, addr: str, port: int) -> list[asyncssh.SSHKey]:
    """Host keys recorded in `path` for host/addr/port (none when the file is missing)."""
    keys = known_entries(path, host, addr, None if port == 22 else port)[0]
    return list(dict.fromkeys(keys))  # host and addr may both match the same line


def record_key(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Append `key` for host:port to `path` under a lock (mode 0600 when created)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{host_pattern(host, port)} {key.export_public_key('openssh').decode().strip()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


class AcceptNewClient(asyncssh.SSHClient):
    """An asyncssh client that applies accept-new and remembers why it refused a key."""

    def __init__(
        self,
        node: str,
        known_hosts: Path,
        known: Sequence[asyncssh.SSHKey],
        port: int,
        on_new_key: NewKeyCallback | None,
        cache: KnownHostsCache | None = None,
    ) -> None:
        self._node = node
        self._cache = cache
        self._known_hosts = known_hosts
        self._known: list[Any] = list(known)  # replaced by lookup() when asyncssh calls it
        self._port = port
        self._on_new_key = on_new_key
        self.refusal: str | None = None

    def lookup(self, host: str, addr: str, port: int | None) -> tuple[Any, ...]:
        """The `known_hosts` callable for asyncssh (host is the HostKeyAlias when set)."""
        if self._cache is not None:
            entries = self._cache.match(self._known_hosts, host, addr, port)
        else:
            entries = known_entries(self._known_hosts, host, addr, port)
        self._known = list(entries[0])
        return entries

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        """Called by asyncssh for a key not already trusted: accept only a new host."""
        fingerprint = str(key.get_fingerprint("sha256"))
        if self._known:
            recorded = ", ".join(sorted({str(k.get_fingerprint("sha256")) for k in self._known}))
            self.refusal = (
                f"host key changed: {host_pattern(host, self._port)} now presents "
                f"{fingerprint} but {self._known_hosts} records {recorded} for node "
                f"{self._node}; if the node was reinstalled, remove its line from "
                f"{self._known_hosts} and retry"
            )
            return False
        record_key(self._known_hosts, host, self._port, key)
        if self._on_new_key is not None:
            self._on_new_key(self._node, host, fingerprint)
        return True
