"""The cluster's secrets (munge key, sshfs storage key pair): made once, kept 0600, never printed.

Not pure (it reads and writes cluster.secrets_dir); render receives its result
through a RenderContext.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from piherd.model import Cluster
from piherd.render.spec import RenderContext

MUNGE_KEY_FILE = "munge.key"
STORAGE_KEY_FILE = "storage_key"
STORAGE_PUB_FILE = "storage_key.pub"
MUNGE_KEY_BYTES = 1024  # what `mungekey` generates by default
_MUNGE_MIN_BYTES = 32  # munged refuses shorter keys


class SecretsError(RuntimeError):
    """The secrets directory or one of its files cannot be used."""


@dataclass(frozen=True, repr=False)
class Secrets:
    """The cluster's secrets. repr() hides them so they cannot leak into logs."""

    munge_key: bytes
    storage_private_key: bytes
    storage_public_key: str

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"


def load_or_create_secrets(cluster: Cluster) -> Secrets:
    """Read the secrets from cluster.secrets_dir, creating missing ones (dir 0700, files 0600)."""
    directory = Path(cluster.secrets_dir)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        munge_path = directory / MUNGE_KEY_FILE
        if not munge_path.exists():
            _write_secret(munge_path, os.urandom(MUNGE_KEY_BYTES))
        munge_key = _read_secret(munge_path)
        key_path, pub_path = directory / STORAGE_KEY_FILE, directory / STORAGE_PUB_FILE
        if not key_path.exists():
            key = asyncssh.generate_private_key(
                "ssh-ed25519", comment=f"piherd-storage@{cluster.name}"
            )
            _write_secret(pub_path, key.export_public_key("openssh"))
            _write_secret(key_path, key.export_private_key("openssh"))
        private = _read_secret(key_path)
        if not pub_path.exists():
            public_key = asyncssh.import_private_key(private).export_public_key("openssh")
            _write_secret(pub_path, public_key)
        public = _read_secret(pub_path).decode().strip()
    except OSError as exc:
        raise SecretsError(f"cannot use secrets directory {directory}: {exc}") from None
    except (asyncssh.KeyImportError, UnicodeDecodeError) as exc:
        raise SecretsError(f"{directory / STORAGE_KEY_FILE} is not an SSH key: {exc}") from None
    if len(munge_key) < _MUNGE_MIN_BYTES:
        raise SecretsError(
            f"{munge_path} holds {len(munge_key)} bytes; munge needs at least {_MUNGE_MIN_BYTES}"
            " (delete it to make a new one, then run piherd up)"
        )
    return Secrets(munge_key, private, public)


def render_context(
    secrets: Secrets,
    hardware: Mapping[str, tuple[int, int]] | None = None,
    host_keys: Mapping[str, tuple[str, ...]] | None = None,
    admin_ids: tuple[int, int] = (1000, 1000),
) -> RenderContext:
    """The RenderContext for `secrets` plus facts read from the nodes."""
    return RenderContext.from_secrets(secrets, hardware, host_keys, admin_ids)


def _write_secret(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 atomically (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_secret(path: Path) -> bytes:
    """Read `path`, tightening its mode to 0600 first if others could read it."""
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return path.read_bytes()
