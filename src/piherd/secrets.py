"""The cluster's secrets (munge key; storage, watch, cluster keys): made once, 0600, never shown.

Not pure (it reads and writes cluster.secrets_dir); render receives its result
through a RenderContext.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from piherd.model import Cluster
from piherd.model.specs import RenderContext

MUNGE_KEY_FILE = "munge.key"
STORAGE_KEY_FILE = "storage_key"
WATCH_KEY_FILE = "watch_key"  # the head's `piherd watch` logs in to the nodes with it
POWER_DIR = "power"  # the power controllers' secrets, one file each (written by the admin)
CLUSTER_KEY_FILE = "cluster_key"  # the admin user logs in from node to node with it (mpiexec)
RECORDED_FILE = "known-facts.json"  # what `up` learnt of the nodes (app/recorded.py)
OWNED_MARKER = ".piherd-secrets"  # written when piherd creates or adopts the directory
HOST_KEYS_DIR = "host-keys"  # per-node SSH host keys made by `piherd image` (image/node_keys.py)
MUNGE_KEY_BYTES = 1024  # what `mungekey` generates by default
_MUNGE_MIN_BYTES = 32  # munged refuses shorter keys
_OWN_FILES = frozenset(
    {
        MUNGE_KEY_FILE,
        STORAGE_KEY_FILE,
        f"{STORAGE_KEY_FILE}.pub",
        WATCH_KEY_FILE,
        f"{WATCH_KEY_FILE}.pub",
        CLUSTER_KEY_FILE,
        f"{CLUSTER_KEY_FILE}.pub",
        RECORDED_FILE,
        OWNED_MARKER,
        POWER_DIR,
        HOST_KEYS_DIR,
    }
)
_SHOWN_FOREIGN = 5  # how many foreign entries a refusal names


class SecretsError(RuntimeError):
    """The secrets directory or one of its files cannot be used."""


class ForeignSecretsDir(SecretsError):
    """cluster.secrets_dir names a directory piherd did not create and will not take over."""


@dataclass(frozen=True, repr=False)
class Secrets:
    """The cluster's secrets. repr() hides them so they cannot leak into logs."""

    munge_key: bytes
    storage_private_key: bytes
    storage_public_key: str
    watch_private_key: bytes
    watch_public_key: str
    cluster_private_key: bytes = b""
    cluster_public_key: str = ""
    # secrets_dir/power/NAME: the power controllers' passwords and communities.
    power_secrets: Mapping[str, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"


def load_or_create_secrets(cluster: Cluster) -> Secrets:
    """Read the secrets from cluster.secrets_dir, creating missing ones (dir 0700, files 0600)."""
    directory = Path(cluster.secrets_dir)
    munge_path = directory / MUNGE_KEY_FILE
    try:
        claim_directory(cluster, directory)
        os.chmod(directory, 0o700)
        if not munge_path.exists():
            write_secret(munge_path, os.urandom(MUNGE_KEY_BYTES))
        munge_key = _read_secret(munge_path)
        storage = _key_pair(directory, STORAGE_KEY_FILE, f"piherd-storage@{cluster.name}")
        watch = _key_pair(directory, WATCH_KEY_FILE, f"piherd-watch@{cluster.name}")
        node_to_node = _key_pair(directory, CLUSTER_KEY_FILE, f"piherd-cluster@{cluster.name}")
    except OSError as exc:
        raise SecretsError(f"cannot use secrets directory {directory}: {exc}") from None
    if len(munge_key) < _MUNGE_MIN_BYTES:
        raise SecretsError(
            f"{munge_path} holds {len(munge_key)} bytes; munge needs at least {_MUNGE_MIN_BYTES}"
            " (delete it to make a new one, then run piherd up)"
        )
    return Secrets(
        munge_key, *storage, *watch, *node_to_node, power_secrets=_power_secrets(directory)
    )


def _power_secrets(directory: Path) -> dict[str, bytes]:
    """Every file of secrets_dir/power (made by the admin; tightened to 0600 when read)."""
    folder = directory / POWER_DIR
    if not folder.is_dir() or folder.is_symlink():
        return {}
    return {
        path.name: _read_secret(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.is_symlink() and not path.name.startswith(".")
    }


def claim_directory(cluster: Cluster, directory: Path) -> None:
    """Make sure piherd owns `directory`: create it, or adopt it when empty or all piherd's.

    piherd makes the directory private and writes keys into it, so it never takes over a
    directory that holds anything else (`secrets_dir = "."`, a home directory, /etc).
    """
    marker = directory / OWNED_MARKER
    if not directory.exists() and not directory.is_symlink():
        directory.mkdir(mode=0o700, parents=True)
    elif not directory.is_dir():
        raise _refusal(cluster, directory, "is not a directory")
    elif marker.is_file() and not marker.is_symlink():
        return
    else:
        foreign = sorted(
            e.name for e in directory.iterdir() if not _is_own_entry(e.name) or e.is_symlink()
        )
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:_SHOWN_FOREIGN])
            more = (
                f" and {len(foreign) - _SHOWN_FOREIGN} more"
                if len(foreign) > _SHOWN_FOREIGN
                else ""
            )
            raise _refusal(cluster, directory, f"holds files that are not piherd's ({shown}{more})")
    write_secret(marker, b"This directory holds the secrets of a piherd cluster.\n")


def _is_own_entry(name: str) -> bool:
    """A file piherd writes in its secrets directory (or one of its temporary files)."""
    if name in _OWN_FILES:
        return True
    return name.startswith(".") and name.partition(".tmp")[0][1:] in _OWN_FILES


def _refusal(cluster: Cluster, directory: Path, why: str) -> ForeignSecretsDir:
    where = f"{cluster.source}: " if cluster.source else ""
    return ForeignSecretsDir(
        f"{where}cluster.secrets_dir: {str(directory)!r} {why}. piherd makes its secrets "
        "directory private (0700) and writes keys into it, so it only uses a directory it "
        "created or an empty one: set secrets_dir to a new or empty directory "
        '(e.g. secrets_dir = "secrets")'
    )


def _key_pair(directory: Path, name: str, comment: str) -> tuple[bytes, str]:
    """(private key, public key line) of DIR/NAME and DIR/NAME.pub, made on first use."""
    key_path, pub_path = directory / name, directory / f"{name}.pub"
    try:
        if not key_path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
            write_secret(pub_path, key.export_public_key("openssh"))
            write_secret(key_path, key.export_private_key("openssh"))
        private = _read_secret(key_path)
        if not pub_path.exists():
            public_key = asyncssh.import_private_key(private).export_public_key("openssh")
            write_secret(pub_path, public_key)
        return private, _read_secret(pub_path).decode().strip()
    except (asyncssh.KeyImportError, UnicodeDecodeError) as exc:
        raise SecretsError(f"{key_path} is not an SSH key: {exc}") from None


def render_context(
    secrets: Secrets,
    hardware: Mapping[str, tuple[int, int]] | None = None,
    host_keys: Mapping[str, tuple[str, ...]] | None = None,
    admin_ids: tuple[int, int] = (1000, 1000),
    *,
    piherd_bundle: bytes = b"",
    cluster_toml: str = "",
) -> RenderContext:
    """The RenderContext for `secrets` plus facts read from the nodes."""
    return RenderContext.from_secrets(
        secrets,
        hardware,
        host_keys,
        admin_ids,
        piherd_bundle=piherd_bundle,
        cluster_toml=cluster_toml,
    )


def write_secret(path: Path, data: bytes) -> None:
    """Create or replace `path` with mode 0600 atomically (temp file, fsync, then rename):
    a crash leaves the old file or the new one, never half of one."""
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
