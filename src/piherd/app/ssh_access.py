"""Reaching nodes with the admin's own tools: an OpenSSH client config (`piherd ssh-config`)
that names every node at the address it answers at now, and ClusterShell's user files.

Files live in the user's config dir ($XDG_CONFIG_HOME, default ~/.config):

- `piherd/ssh/<cluster>.conf`: one `Host NAME NAME.DOMAIN` block per node (HostName, user,
  port, key, the cluster's known_hosts, `StrictHostKeyChecking yes`); `piherd up` and
  `sim up` refresh it. No HostKeyAlias: host keys are checked under the address, where
  piherd records them (`image`, `discover --assign`, the first contact of `up`).
- `piherd/ssh/config`: `Include`s every cluster's file, the one `-F` for clush; the file of
  the cluster piherd wrote last comes first, so a name two clusters share (node01 of
  each) is that cluster's (OpenSSH takes each option from the first block that matches).
- `clustershell/groups.conf`, `groups.d/<cluster>.yaml`, `clush.conf`: ClusterShell 1.9
  reads a user's groups.d only through a groups.conf that names it (`autodir`), and this
  directory is the per-user one it ranks highest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from piherd.model import Cluster

WRITTEN_BY = "# Written by piherd"  # files starting so are piherd's to rewrite
PROBE_TIMEOUT_S = 2.0
_SAFE_PATH = re.compile(r"[^\x00-\x1f\x7f]+")


class AccessError(ValueError):
    """A file piherd would write belongs to someone else, or a path is unusable."""


@dataclass(frozen=True)
class AccessPaths:
    """Where the files of this module go for one user."""

    config_home: Path

    @classmethod
    def of(cls, env: Mapping[str, str]) -> AccessPaths:
        base = env.get("XDG_CONFIG_HOME", "")
        if base and Path(base).is_absolute():
            return cls(Path(base))
        return cls(Path(env.get("HOME") or os.path.expanduser("~")) / ".config")

    @property
    def ssh_dir(self) -> Path:
        return self.config_home / "piherd" / "ssh"

    def ssh_config(self, cluster: Cluster) -> Path:
        return self.ssh_dir / f"{cluster.name}.conf"

    @property
    def ssh_main(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def clustershell_dir(self) -> Path:
        return self.config_home / "clustershell"


def _config_word(value: str, what: str) -> str:
    """`value` quoted for an ssh_config line; AccessError for control characters."""
    if not _SAFE_PATH.fullmatch(value):
        raise AccessError(f"{what} {value!r} cannot go into an ssh_config (control characters)")
    return f'"{value}"' if any(c in value for c in ' \t"#') else value


def identity_file(cluster: Cluster) -> Path | None:
    """The key to log in with: ssh_identity, else the private half of ssh_public_key when it
    lies beside it (`id_ed25519` for `id_ed25519.pub`, as ssh-keygen writes them)."""
    if cluster.ssh_identity is not None:
        return cluster.ssh_identity
    public = cluster.ssh_public_key
    if public.endswith(".pub"):
        private = Path(public.removesuffix(".pub")).expanduser()
        if private.is_absolute() and private.is_file():
            return private
    return None


def ssh_config_text(cluster: Cluster, addresses: Mapping[str, str]) -> str:
    """The client config of `cluster`: every node by name at `addresses[name]`."""
    lines = [
        f"{WRITTEN_BY} (`piherd ssh-config`) for cluster {cluster.name}; `piherd up` "
        "refreshes it. Edits are lost.",
    ]
    known = cluster.known_hosts or Path.home() / ".ssh" / "known_hosts"
    common = [
        f"    User {cluster.admin_user}",
        f"    Port {cluster.ssh_port}",
        f"    UserKnownHostsFile {_config_word(str(known), 'known_hosts')}",
        "    StrictHostKeyChecking yes",
        "    CheckHostIP no",
    ]
    key = identity_file(cluster)
    if key is not None:
        common += [
            f"    IdentityFile {_config_word(str(key), 'ssh_identity')}",
            "    IdentitiesOnly yes",
        ]
    for node in cluster.nodes:
        names = " ".join(dict.fromkeys((node.name, cluster.fqdn(node))))
        lines += [
            "",
            f"Host {names}",
            f"    HostName {addresses.get(node.name, str(node.address))}",
            *common,
        ]
    return "\n".join(lines) + "\n"


def main_config_text(paths: AccessPaths, first: Cluster) -> str:
    """The one file for `ssh -F`: `first`'s config, then every cluster's."""
    own = _config_word(str(paths.ssh_config(first)), "config file")
    pattern = _config_word(str(paths.ssh_dir / "*.conf"), "config dir")
    return (
        f"{WRITTEN_BY}: every cluster's client config, for `ssh -F` and clush.\n"
        f"# {first.name} first: its node names win over another cluster's same names.\n"
        f"Include {own}\nInclude {pattern}\n"
    )


def groups_conf_text(cluster: Cluster) -> str:
    """ClusterShell's groups.conf: this cluster's source is the default (`clush -g workers`)."""
    return (
        f"{WRITTEN_BY} (`piherd groups --clustershell --install`).\n"
        "[Main]\n"
        f"default: {cluster.name}\n"
        "confdir: /etc/clustershell/groups.conf.d $CFGDIR/groups.conf.d\n"
        "autodir: /etc/clustershell/groups.d $CFGDIR/groups.d\n"
    )


def clush_conf_text(paths: AccessPaths) -> str:
    """ClusterShell's clush.conf: ssh reads piherd's client config."""
    options = shlex.join(["-F", str(paths.ssh_main)])
    if not _SAFE_PATH.fullmatch(options):
        raise AccessError(f"{paths.ssh_main}: control characters in the path")
    header = f"{WRITTEN_BY} (`piherd groups --clustershell --install`)."
    return f"{header}\n[Main]\nssh_options: {options}\n"


async def _answers(address: str, port: int, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(address, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def current_addresses(
    cluster: Cluster, timeout: float = PROBE_TIMEOUT_S, fanout: int = 256
) -> dict[str, str]:
    """Each node's address that accepts a TCP connection on the SSH port now: its address,
    else its bootstrap_address (a node still on its DHCP lease), else its address."""
    limit = asyncio.Semaphore(fanout)

    async def one(name: str, candidates: Sequence[str]) -> tuple[str, str]:
        async with limit:
            for address in candidates:
                if await _answers(address, cluster.ssh_port, timeout):
                    return name, address
        return name, candidates[0]

    jobs = []
    for node in cluster.nodes:
        candidates = [str(node.address)]
        if node.bootstrap_address is not None and str(node.bootstrap_address) != candidates[0]:
            candidates.append(str(node.bootstrap_address))
        jobs.append(one(node.name, candidates))
    return dict(await asyncio.gather(*jobs))


def _check_ours(path: Path) -> None:
    """AccessError when `path` exists and its first line does not say piherd wrote it."""
    if not path.exists():
        return
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            first = file.readline()
    except OSError as exc:
        raise AccessError(f"{path}: cannot read it: {exc.strerror}") from None
    if "written by piherd" not in first.lower() and "written by `piherd" not in first.lower():
        raise AccessError(
            f"{path} exists and piherd did not write it; leaving it alone "
            "(move it aside, or merge what `--print` shows into it)"
        )


def _write(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (mode 0644: no secret in it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_all(files: Sequence[tuple[Path, str]]) -> list[Path]:
    """Write every file, or none when one of them is someone else's."""
    for path, _ in files:
        _check_ours(path)
    for path, text in files:
        _write(path, text)
    return [path for path, _ in files]


async def write_ssh_config(cluster: Cluster, paths: AccessPaths) -> Path:
    """Probe every node's current address and (re)write the cluster's client config and
    the including main file; returns the main file, the one for `ssh -F`."""
    text = ssh_config_text(cluster, await current_addresses(cluster))
    main = main_config_text(paths, cluster)
    _write_all([(paths.ssh_config(cluster), text), (paths.ssh_main, main)])
    return paths.ssh_main


def install_clustershell(cluster: Cluster, paths: AccessPaths, groups_yaml: str) -> list[Path]:
    """Write groups.d/<cluster>.yaml, groups.conf and clush.conf; returns their paths."""
    target = paths.clustershell_dir
    return _write_all(
        [
            (target / "groups.d" / f"{cluster.name}.yaml", groups_yaml),
            (target / "groups.conf", groups_conf_text(cluster)),
            (target / "clush.conf", clush_conf_text(paths)),
        ]
    )
