"""The systemd unit that runs `piherd watch` on the head (pure: cluster in, unit text out)."""

from __future__ import annotations

import shlex

from piherd.model.cluster import Cluster

UNIT_NAME = "piherd-watch.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"


def render_watch_unit(
    cluster: Cluster,
    *,
    cluster_file: str = "/etc/piherd/cluster.toml",
    piherd: str = "/usr/local/bin/piherd",
    log_dir: str = "/var/log/piherd",
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
    if cluster.services.slurm.enabled:
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
