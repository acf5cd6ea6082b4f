"""What a renderer returns: files, directories and units a node must have, plus shared helpers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from piherd.model import Cluster, Node


class RenderError(ValueError):
    """The cluster cannot be rendered (a value that would be unsafe in a file or command)."""


@dataclass(frozen=True)
class FileSpec:
    """One file a node must hold, byte for byte, and what to restart when it changes.

    `restarts`/`reloads` name systemd units. A file under /etc/systemd/ also needs
    `systemctl daemon-reload` before them (see `needs_daemon_reload`). `secret` files
    are never printed: logs, diffs and manifests show their sha256 only.
    """

    path: str
    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    restarts: tuple[str, ...] = ()
    reloads: tuple[str, ...] = ()
    secret: bool = False


@dataclass(frozen=True)
class DirSpec:
    """A directory a node must have (created with parents; then owner and mode set)."""

    path: str
    mode: int = 0o755
    owner: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class UnitSpec:
    """A systemd unit's desired state.

    enable=True: enabled at boot and running. enable=False: piherd neither enables
    nor starts it (e.g. a .mount its .automount triggers). masked=True: masked and
    stopped (wins over enable). A unit piherd started and no longer lists is stopped
    by `up` (ops/removals.py).
    """

    name: str
    enable: bool = True
    masked: bool = False


class SecretsLike(Protocol):
    """What RenderContext.from_secrets reads (piherd.secrets.Secrets has it)."""

    @property
    def munge_key(self) -> bytes: ...
    @property
    def storage_private_key(self) -> bytes: ...
    @property
    def storage_public_key(self) -> str: ...
    @property
    def watch_private_key(self) -> bytes: ...
    @property
    def watch_public_key(self) -> str: ...


@dataclass(frozen=True)
class RenderContext:
    """Everything render needs beyond cluster.toml: secrets and facts read from nodes.

    hardware: node name -> (cpus, memory_mb) as the node reports them (nproc,
    MemTotal in MiB); the model's cpus/memory_mb override it.
    host_keys: node name -> public host-key lines ("ssh-ed25519 AAAA... [comment]").
    admin_uid/admin_gid: the admin user's ids (sshfs maps remote files to them);
    1000 is the first user Debian and Raspberry Pi OS create.
    watch_*: the key pair the head's `piherd watch` service logs in with.
    piherd_bundle: piherd itself as a zip application, for the head's watch service.
    cluster_toml: the text of cluster.toml (the head gets a copy for the service).
    """

    munge_key: bytes
    storage_private_key: bytes
    storage_public_key: str
    hardware: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    host_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    admin_uid: int = 1000
    admin_gid: int = 1000
    watch_private_key: bytes = b""
    watch_public_key: str = ""
    piherd_bundle: bytes = b""
    cluster_toml: str = ""

    @classmethod
    def from_secrets(
        cls,
        secrets: SecretsLike,
        hardware: Mapping[str, tuple[int, int]] | None = None,
        host_keys: Mapping[str, tuple[str, ...]] | None = None,
        admin_ids: tuple[int, int] = (1000, 1000),
        *,
        piherd_bundle: bytes = b"",
        cluster_toml: str = "",
    ) -> RenderContext:
        """A context from piherd.secrets.Secrets plus facts read from the nodes."""
        return cls(
            munge_key=secrets.munge_key,
            storage_private_key=secrets.storage_private_key,
            storage_public_key=secrets.storage_public_key,
            hardware=dict(sorted((hardware or {}).items())),
            host_keys={k: tuple(v) for k, v in sorted((host_keys or {}).items())},
            admin_uid=admin_ids[0],
            admin_gid=admin_ids[1],
            watch_private_key=secrets.watch_private_key,
            watch_public_key=secrets.watch_public_key,
            piherd_bundle=piherd_bundle,
            cluster_toml=cluster_toml,
        )


def header(cluster: Cluster, comment: str = "#") -> str:
    """The one-line header every managed text file starts with."""
    return f"{comment} Managed by piherd for cluster {cluster.name}; local edits are overwritten.\n"


def text(
    cluster: Cluster,
    path: str,
    lines: Iterable[str],
    *,
    comment: str = "#",
    mode: int = 0o644,
    owner: str = "root",
    group: str = "root",
    restarts: tuple[str, ...] = (),
    reloads: tuple[str, ...] = (),
) -> FileSpec:
    """A text file: the header, then `lines` (each ends with a newline)."""
    body = header(cluster, comment) + "".join(f"{line}\n" for line in lines)
    return FileSpec(path, body.encode(), mode, owner, group, restarts, reloads)


def needs_daemon_reload(spec: FileSpec) -> bool:
    """True when systemd must re-read its units after this file changes."""
    return spec.path.startswith(("/etc/systemd/system/", "/lib/systemd/", "/usr/lib/systemd/"))


_UNIT_SAFE = re.compile(r"[A-Za-z0-9:_.]")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./\-]*$")


def unit_name_for_path(path: str, suffix: str) -> str:
    """systemd's name for a path unit (`/srv/my-dir` -> `srv-my\\x2ddir.mount`).

    The same algorithm as `systemd-escape --path`, written here because render
    must not run programs.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        return f"-.{suffix}"
    chars = []
    for index, char in enumerate("/".join(parts)):
        if char == "/":
            chars.append("-")
        elif _UNIT_SAFE.match(char) and not (index == 0 and char == "."):
            chars.append(char)
        else:
            chars.append("".join(f"\\x{b:02x}" for b in char.encode()))
    return "".join(chars) + f".{suffix}"


def safe_path(value: str, what: str) -> str:
    """`value` when it is a plain absolute path; RenderError otherwise."""
    if not _SAFE_PATH.match(value) or ".." in value.split("/"):
        raise RenderError(f"{what} {value!r} is not a plain absolute path")
    return value.rstrip("/") or "/"


def node_cpus(node: Node, ctx: RenderContext) -> int | None:
    """CPUs of `node`: the model's value, else what the node reported, else None."""
    if node.cpus:
        return node.cpus
    reported = ctx.hardware.get(node.name)
    return reported[0] if reported and reported[0] > 0 else None


def node_memory(node: Node, ctx: RenderContext) -> int | None:
    """Memory for Slurm in MiB: the model's value, else 95% of what the node reported.

    slurmd refuses a node whose configured RealMemory exceeds what it finds, and
    MemTotal moves a little between kernels, so the reported value gets headroom.
    """
    if node.memory_mb:
        return node.memory_mb
    reported = ctx.hardware.get(node.name)
    if reported and reported[1] > 0:
        return max(1, reported[1] * 95 // 100)
    return None


def by_address(nodes: Iterable[Node]) -> list[Node]:
    """`nodes` sorted by address: the order every multi-node file uses."""
    return sorted(nodes, key=lambda n: (n.address, n.name))


def storage_server(cluster: Cluster) -> Node:
    """The node that exports the shared storage (the head unless configured)."""
    name = cluster.services.storage.server
    return cluster.node(name) if name else cluster.head
