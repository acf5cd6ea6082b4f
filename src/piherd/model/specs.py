"""The desired state as data: files, directories and units a node must have, and render's inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True)
class FileSpec:
    """One file a node must hold, byte for byte, and what to restart when it changes.

    `guards_login`: a change could lock logins out (sshd's settings): the unit it
    reloads is reloaded with a rollback armed, kept only once a fresh key login works.
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
    guards_login: bool = False


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
    @property
    def cluster_private_key(self) -> bytes: ...
    @property
    def cluster_public_key(self) -> str: ...


@dataclass(frozen=True)
class RenderContext:
    """Everything render needs beyond cluster.toml: secrets and facts read from nodes.

    hardware: node name -> (cpus, memory_mb) as the node reports them (nproc,
    MemTotal in MiB); the model's cpus/memory_mb override it.
    host_keys: node name -> public host-key lines ("ssh-ed25519 AAAA... [comment]").
    admin_uid/admin_gid: the admin user's ids (sshfs maps remote files to them);
    1000 is the first user Debian and Raspberry Pi OS create.
    watch_*: the key pair the head's `piherd watch` service logs in with.
    cluster_*: the key pair the admin user logs in from node to node with (mpiexec over
    SSH); empty: no such key is rendered (contexts built by hand in tests).
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
    cluster_private_key: bytes = b""
    cluster_public_key: str = ""
    piherd_bundle: bytes = b""
    cluster_toml: str = ""
    # Power controllers' secrets by name (secrets_dir/power/NAME), for Slurm power saving.
    power_secrets: Mapping[str, bytes] = field(default_factory=dict)
    # What `shared` made: key -> (the cluster it was made for, the value).
    _shared: dict[str, tuple[object, object]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def shared(self, cluster: object, key: str, make: Callable[[], T]) -> T:
        """`make()`, made once per context and cluster object: a file every node gets alike
        (/etc/hosts, slurm.conf, known_hosts) is built once per render, not once per node,
        so rendering n nodes costs O(n) lines, not O(n^2). `key` names the file's maker."""
        entry = self._shared.get(key)
        if entry is None or entry[0] is not cluster:
            entry = (cluster, make())
            self._shared[key] = entry
        return cast(T, entry[1])

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
            cluster_private_key=secrets.cluster_private_key,
            cluster_public_key=secrets.cluster_public_key,
            piherd_bundle=piherd_bundle,
            cluster_toml=cluster_toml,
            power_secrets=dict(sorted(getattr(secrets, "power_secrets", {}).items())),
        )
