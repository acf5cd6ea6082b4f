"""SSH host keys made at image time: kept in the secrets directory, recorded in known_hosts.

Each node's keys live in SECRETS/host-keys/NODE/ (0700; private keys 0600) and are reused
when the node is imaged again, so its known_hosts lines stay valid. Recording replaces
any earlier line for the same host, since the card being written is what will answer.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

import asyncssh

from piherd.image.firstboot import HostKey
from piherd.secrets import HOST_KEYS_DIR as HOST_KEY_DIR
from piherd.secrets import write_secret
from piherd.transport.hostkeys import host_pattern

# Raspberry Pi OS (Debian's `ssh-keygen -A`) makes rsa, ecdsa and ed25519; piherd makes
# the two that are quick to generate and that every OpenSSH since 6.5 accepts.
KINDS: tuple[tuple[str, str], ...] = (("ed25519", "ssh-ed25519"), ("ecdsa", "ecdsa-sha2-nistp256"))


def host_keys(secrets_dir: Path, owner: str, comment: str) -> tuple[HostKey, ...]:
    """The host keys of `owner` (a node name, or "generic"), made on first use."""
    directory = secrets_dir / HOST_KEY_DIR / owner
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(secrets_dir / HOST_KEY_DIR, 0o700)
    os.chmod(directory, 0o700)
    keys = []
    for kind, algorithm in KINDS:
        path = directory / f"ssh_host_{kind}_key"
        if not path.exists():
            key = asyncssh.generate_private_key(algorithm, comment=comment)
            write_secret(path, key.export_private_key("openssh"))
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        private = path.read_bytes()
        public = asyncssh.import_private_key(private).export_public_key("openssh")
        keys.append(HostKey(kind, private, public.decode("ascii").strip()))
    return tuple(keys)


def fingerprint(key: HostKey) -> str:
    """The SHA256 fingerprint of a host key, as ssh shows it."""
    return str(asyncssh.import_public_key(key.public).get_fingerprint("sha256"))


def known_lines(hosts: Iterable[str], port: int, keys: Iterable[HostKey]) -> list[str]:
    """known_hosts lines for every host in `hosts` and every key (without comments)."""
    keys = list(keys)
    lines = []
    for host in hosts:
        for key in keys:
            key_type, key_data = key.public.split()[:2]
            lines.append(f"{host_pattern(host, port)} {key_type} {key_data}")
    return lines


def record(known_hosts: Path, hosts: Iterable[str], port: int, keys: Iterable[HostKey]) -> None:
    """Replace the lines of `hosts` in `known_hosts` with these keys (0600 if new).

    Rewritten in place under the same lock the transport takes to append a key
    (transport/hostkeys.py), so neither loses the other's line.
    """
    hosts = list(hosts)
    patterns = {host_pattern(h, port) for h in hosts}
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(known_hosts, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as handle:
            kept = [
                line
                for line in handle.read().splitlines()
                if not (line.split() and set(line.split()[0].split(",")) & patterns)
            ]
            handle.seek(0)
            handle.truncate()
            handle.write("".join(f"{ln}\n" for ln in [*kept, *known_lines(hosts, port, keys)]))
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        os.close(fd)  # closing releases the lock
