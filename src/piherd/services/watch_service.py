"""The head's `piherd watch` service (health.watch_enabled): piherd, its key, its config, a unit.

On the head: piherd itself as one executable zip (/usr/local/bin/piherd, run by Debian's
python3 and python3-* packages), a copy of cluster.toml pointed at files the head has
(/etc/piherd/cluster.toml), the watch key (/etc/piherd/watch_key, 0600) and
piherd-watch.service. On every node: the watch key's public half, accepted only from the
head's address (see services/ssh_keys.py). Turning watch off again: `up` disables and stops
the service and removes these files (ops/removals.py).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from piherd.model import Cluster, Node
from piherd.model.reader import Reader
from piherd.model.service import Service
from piherd.model.specs import FileSpec, RenderContext, UnitSpec
from piherd.render.spec import RenderError, header
from piherd.services.slurm import SlurmSettings
from piherd.services.ssh_keys import KNOWN_HOSTS  # every node's host keys

UNIT_NAME = "piherd-watch.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
PROGRAM = "/usr/local/bin/piherd"
CLUSTER_FILE = "/etc/piherd/cluster.toml"
WATCH_KEY = "/etc/piherd/watch_key"
LOG_DIR = "/var/log/piherd"
# What the bundle imports on the head (cryptography comes with python3-asyncssh).
PACKAGES = ("python3", "python3-asyncssh", "python3-click", "python3-clustershell", "python3-rich")


def render_unit(
    cluster: Cluster,
    *,
    cluster_file: str = CLUSTER_FILE,
    piherd: str = PROGRAM,
    log_dir: str = LOG_DIR,
) -> str | None:
    """The unit text for `piherd watch`, or None when health.watch_enabled is off."""
    if not cluster.health.watch_enabled:
        return None
    argv = [
        piherd,
        "watch",
        "--file",
        cluster_file,
        "--interval",
        f"{cluster.health.watch_interval_s:g}",
        "--log-dir",
        log_dir,
    ]
    after = "network-online.target"
    if cluster.services.is_on(SlurmSettings):
        after += " slurmctld.service"
    return (
        "[Unit]\n"
        f"Description=piherd watch: drain unhealthy nodes of cluster {cluster.name} in Slurm\n"
        f"After={after}\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={shlex.join(argv)}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        f"LogsDirectory={log_dir.rstrip('/').rsplit('/', 1)[-1]}\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def head_cluster_file(cluster: Cluster, original: str) -> str:
    """The head's copy of cluster.toml: the same cluster, logging in with the watch key.

    Paths that only mean something on the admin's machine (an ssh_config, a public key)
    are dropped; host keys come from the cluster-wide known_hosts piherd keeps on every
    node. Everything else, comments included, is kept as written.
    """
    # Imported here: the head runs this module (for the unit) without python3-tomlkit.
    import tomlkit

    doc = tomlkit.parse(original)
    table = doc.get("cluster")
    if not isinstance(table, dict):  # the loader has already refused such a file
        raise RenderError("cluster.toml has no [cluster] table")
    for key in ("ssh_config", "ssh_public_key"):
        table.pop(key, None)
    table["known_hosts"] = KNOWN_HOSTS
    table["ssh_identity"] = WATCH_KEY
    note = (
        "# The head's copy, for the piherd watch service (written by piherd up).\n"
        "# Edit the original on the admin's machine and run piherd up there.\n"
    )
    return header(cluster) + note + tomlkit.dumps(doc)


def authorized_entries(cluster: Cluster, ctx: RenderContext) -> list[str]:
    """Authorized-keys lines for the admin user on every node: the watch key, from the head."""
    if not cluster.health.watch_enabled:
        return []
    key = " ".join(ctx.watch_public_key.split()[:2])
    if not key:
        raise RenderError("health.watch_enabled needs the watch key (piherd.secrets)")
    head = cluster.head.address
    return [
        "# The head's piherd watch service, from the head only.",
        f'from="{head}",restrict {key} piherd-watch',
    ]


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """On the head with watch enabled: piherd, its cluster.toml, the watch key, the unit."""
    unit = render_unit(cluster)
    if unit is None or not node.is_head:
        return {}
    if not ctx.piherd_bundle or not ctx.cluster_toml or not ctx.watch_private_key:
        raise RenderError("health.watch_enabled needs piherd's bundle, cluster.toml and key")
    restart = (UNIT_NAME,)
    specs = [
        FileSpec(PROGRAM, ctx.piherd_bundle, 0o755, restarts=restart),
        FileSpec(
            CLUSTER_FILE, head_cluster_file(cluster, ctx.cluster_toml).encode(), restarts=restart
        ),
        FileSpec(WATCH_KEY, ctx.watch_private_key, 0o600, restarts=restart, secret=True),
        FileSpec(UNIT_PATH, (header(cluster) + unit).encode(), restarts=restart),
    ]
    return {s.path: s for s in specs}


def packages(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """Debian packages the watch service needs on the head."""
    return PACKAGES if cluster.health.watch_enabled and node.is_head else ()


def units(cluster: Cluster, node: Node) -> tuple[UnitSpec, ...]:
    """The service on the head, when enabled (turned off, `up` stops what it started)."""
    if cluster.health.watch_enabled and node.is_head:
        return (UnitSpec(UNIT_NAME),)
    return ()


@dataclass(frozen=True)
class WatchSettings:
    """Whether the head runs the watch service: [health] watch_enabled (no table of its own)."""

    enabled: bool = False


class WatchService(Service):
    """The head's `piherd watch` service ([health] watch_enabled): drains unhealthy nodes."""

    def read(self, reader: Reader, table: dict[str, Any]) -> WatchSettings:
        del reader, table
        return WatchSettings()

    def derive(self, settings: WatchSettings, cluster: Cluster) -> WatchSettings:
        return WatchSettings(enabled=cluster.health.watch_enabled)

    def check(self, cluster: Cluster, reader: Reader) -> None:
        heads = [n for n in cluster.nodes if n.is_head]  # none: reported by the node rules
        if cluster.health.watch_enabled and heads and heads[0].os == "bullseye":
            reader.problem(
                "health.watch_enabled",
                f"the watch service runs piherd on the head ({cluster.head.name}), which needs "
                "Python 3.11; the head runs bullseye (Python 3.9)",
                "move the head to bookworm, or run `piherd watch` from your own machine instead",
            )

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        return list(render(cluster, node, ctx).values())

    def packages(self, cluster: Cluster, node: Node) -> tuple[str, ...]:
        return packages(cluster, node)

    def units(self, cluster: Cluster, node: Node) -> tuple[UnitSpec, ...]:
        return units(cluster, node)

    def authorized_entries(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[str]:
        del node
        return authorized_entries(cluster, ctx)
