"""chrony: the head follows upstream and serves the cluster; the other nodes follow the head."""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.render.spec import FileSpec, text

CONF = "/etc/chrony/chrony.conf"
CONTAINER_DROPIN = "/etc/systemd/system/chrony.service.d/piherd-container.conf"

# Debian's defaults (bookworm's /usr/share/chrony/chrony.conf) that piherd keeps; the
# whole file is written so the image's `pool 2.debian.pool.ntp.org` cannot linger on
# workers, which must follow the head only.
_DEBIAN_DEFAULTS = (
    "keyfile /etc/chrony/chrony.keys",
    "driftfile /var/lib/chrony/chrony.drift",
    "ntsdumpdir /var/lib/chrony",
    "logdir /var/log/chrony",
    "maxupdateskew 100.0",
    "rtcsync",
    # Pis have no real-time clock: allow stepping the clock during the first updates.
    "makestep 1 3",
    "leapsectz right/UTC",
)


def render(cluster: Cluster, node: Node) -> dict[str, FileSpec]:
    """chrony.conf, plus a drop-in that lets chronyd run in a container when asked."""
    time = cluster.services.time
    if not time.enabled:
        return {}
    if node.is_head:
        lines = ["# Upstream time servers (services.time.upstream)."]
        for server in time.upstream:
            # A name with a "pool" label (2.debian.pool.ntp.org) stands for many servers.
            kind = "pool" if "pool" in server.split(".") else "server"
            lines.append(f"{kind} {server} iburst")
        lines += [
            "# Serve the cluster; keep serving (stratum 10) when upstream is unreachable.",
            f"allow {cluster.network.subnet}",
            "local stratum 10",
        ]
    else:
        lines = [
            f"# Follow the head, {cluster.head.name}, only.",
            f"server {cluster.head.address} iburst",
        ]
    files = {CONF: text(cluster, CONF, [*lines, *_DEBIAN_DEFAULTS], restarts=("chrony.service",))}
    if time.container:
        # chrony.service is skipped without CAP_SYS_TIME, and chrony-wait (masked in
        # desired.units) would then hold time-sync.target, so munge never starts.
        # -x: keep time without setting the clock, which belongs to the host.
        files[CONTAINER_DROPIN] = text(
            cluster,
            CONTAINER_DROPIN,
            [
                "[Unit]",
                "ConditionCapability=",
                "",
                "[Service]",
                "ExecStart=",
                "ExecStart=!/usr/sbin/chronyd $DAEMON_OPTS -x",
            ],
            restarts=("chrony.service",),
        )
    return files
