"""Slurm power saving ([services.power] slurm_suspend): what the head needs for it.

Slurm powers idle nodes off after `suspend_time_s` and on again when a job needs them,
through SuspendProgram and ResumeProgram: two small scripts on the head that run
`piherd power off|on` for the hostlist Slurm passes, as SlurmUser. The head gets piherd
(the same bundle as the watch service; one copy when both are on), a copy of
cluster.toml pointed at /etc/piherd/power/secrets, and only the secrets of the
controllers that switch compute nodes (0600, owned by slurm). Nodes without a controller,
and the head, are listed in SuspendExcNodes. Each action is logged with who (slurm)
and why to /var/log/slurm/piherd-power.log.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from piherd.model import fold
from piherd.model.specs import DirSpec, FileSpec
from piherd.power.settings import PowerSettings
from piherd.render.spec import RenderError, header

if TYPE_CHECKING:
    from piherd.model import Cluster, Node
    from piherd.model.reader import Reader
    from piherd.model.specs import RenderContext

PROGRAM = "/usr/local/bin/piherd"  # shared with the watch service (services/watch_service.py)
SUSPEND = "/usr/local/lib/piherd/slurm-suspend"
RESUME = "/usr/local/lib/piherd/slurm-resume"
POWER_DIR = "/etc/piherd/power"
CLUSTER_FILE = f"{POWER_DIR}/cluster.toml"
SECRETS_DIR = f"{POWER_DIR}/secrets"
LOG = "/var/log/slurm/piherd-power.log"
# What the scripts print (Slurm runs them with every descriptor closed).
OUTPUT = "/var/log/slurm/piherd-power.out"
SLURM_USER = "slurm"
KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"  # services/ssh_keys.py writes every node's keys
# What the bundle imports on the head (as the watch service), plus each driver's tool.
HEAD_PACKAGES = ("python3", "python3-asyncssh", "python3-click", "python3-clustershell")
DRIVER_PACKAGES = {
    "ipmi": ("ipmitool",),
    "poe-snmp": ("snmp",),
    "clusterhat": ("openssh-client",),
}
# Drivers the head cannot use for Slurm: `sim` needs this machine's root, `ssh` cannot
# power a Pi on (Pis have no Wake-on-LAN).
NOT_FOR_SLURM = ("sim", "ssh")


def _settings(cluster: Cluster) -> PowerSettings | None:
    settings = cluster.services.find(PowerSettings)
    on = settings is not None and settings.enabled and settings.slurm_suspend
    return settings if on else None


def _slurm_on(cluster: Cluster) -> bool:
    return any(s.name == "slurm" and s.enabled(v) for s, v in cluster.services.entries)


def suspendable(cluster: Cluster, settings: PowerSettings) -> list[str]:
    """Compute nodes Slurm may power off: those with a controller, never the head."""
    return [n.name for n in cluster.compute_nodes if n.name in settings.assigned and not n.is_head]


def check_saving(cluster: Cluster, settings: PowerSettings, reader: Reader) -> None:
    """Problems of slurm_suspend: Slurm off, no node to suspend, a driver the head lacks."""
    field = "services.power.slurm_suspend"
    if not _slurm_on(cluster):
        reader.problem(field, "Slurm power saving needs Slurm", "turn [services.slurm] on")
        return
    if not suspendable(cluster, settings):
        reader.problem(field, "no compute node has a power controller")
        return
    for index in sorted({settings.assigned[n] for n in suspendable(cluster, settings)}):
        driver = settings.controllers[index].driver
        if driver in NOT_FOR_SLURM:
            reader.problem(
                f"services.power.controllers[{index}].driver",
                f"Slurm's ResumeProgram on the head cannot power nodes on through {driver!r}",
                "use ipmi, poe-snmp, clusterhat, turingpi or command for these nodes",
            )
    if cluster.head.os == "bullseye":
        reader.problem(field, "the head runs piherd for Slurm, which needs bookworm or later")


def slurm_lines(cluster: Cluster) -> list[str]:
    """slurm.conf's power-saving lines ([] when it is off)."""
    settings = _settings(cluster)
    if settings is None:
        return []
    keep = [n.name for n in cluster.compute_nodes if n.name not in suspendable(cluster, settings)]
    lines = [
        "",
        "# Power saving (services.power.slurm_suspend): piherd powers idle nodes off and on.",
        f"SuspendProgram={SUSPEND}",
        f"ResumeProgram={RESUME}",
        f"SuspendTime={int(settings.suspend_time_s)}",
        # Slurm keeps a node POWERING_DOWN this long before it may be resumed.
        f"SuspendTimeout={int(settings.command_timeout_s + 15)}",
        f"ResumeTimeout={int(settings.resume_timeout_s)}",
    ]
    if keep:
        lines.append(f"SuspendExcNodes={fold(keep)}")
    return lines


def _script(cluster: Cluster, action: str, reason: str) -> bytes:
    argv = [PROGRAM, "power", action, "--file", CLUSTER_FILE, "--reason", reason, "--"]
    return (
        "#!/bin/sh\n"
        + header(cluster)
        + f"# Slurm's {'Suspend' if action == 'off' else 'Resume'}Program: "
        f"power {action} the nodes of the hostlist in $1.\n"
        f"export PIHERD_POWER_LOG={shlex.quote(LOG)}\n"
        f'exec {shlex.join(argv)} "$1" </dev/null >>{shlex.quote(OUTPUT)} 2>&1\n'
    ).encode()


def head_cluster_file(cluster: Cluster, original: str) -> str:
    """The head's copy of cluster.toml for power saving: its secrets in SECRETS_DIR."""
    import tomlkit  # as in watch_service: only `up` on the admin's machine renders this

    doc = tomlkit.parse(original)
    table: Any = doc.get("cluster")
    if not isinstance(table, dict):
        raise RenderError("cluster.toml has no [cluster] table")
    for key in ("ssh_config", "ssh_public_key", "ssh_identity"):
        table.pop(key, None)
    table["known_hosts"] = KNOWN_HOSTS
    table["secrets_dir"] = SECRETS_DIR
    note = "# The head's copy, for Slurm power saving (written by piherd up).\n"
    return header(cluster) + note + tomlkit.dumps(doc)


def _needed_secrets(cluster: Cluster, settings: PowerSettings) -> list[str]:
    indexes = {settings.assigned[n] for n in suspendable(cluster, settings)}
    return sorted({settings.controllers[i].secret for i in indexes} - {""})


def saving_files(cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
    """On the head: the suspend and resume programs, piherd, its cluster.toml, the secrets."""
    settings = _settings(cluster)
    if settings is None or not node.is_head:
        return []
    if not ctx.piherd_bundle or not ctx.cluster_toml:
        raise RenderError("services.power.slurm_suspend needs piherd's bundle and cluster.toml")
    restart = ("slurmctld.service",)
    specs = [
        FileSpec(SUSPEND, _script(cluster, "off", "slurm: idle for SuspendTime"), 0o755),
        FileSpec(RESUME, _script(cluster, "on", "slurm: jobs need the node"), 0o755),
        FileSpec(
            CLUSTER_FILE, head_cluster_file(cluster, ctx.cluster_toml).encode(), restarts=restart
        ),
    ]
    if not cluster.health.watch_enabled:  # else the watch service installs the same file
        specs.append(FileSpec(PROGRAM, ctx.piherd_bundle, 0o755))
    for name in _needed_secrets(cluster, settings):
        if name not in ctx.power_secrets:
            raise RenderError(
                f"the power secret {name!r} is missing: write it to "
                f"{cluster.secrets_dir}/power/{name} (mode 0600)"
            )
        path = f"{SECRETS_DIR}/power/{name}"
        specs.append(
            FileSpec(path, ctx.power_secrets[name], 0o600, SLURM_USER, SLURM_USER, secret=True)
        )
    return specs


def saving_directories(cluster: Cluster, node: Node) -> list[DirSpec]:
    """The head's private directory of power secrets, owned by SlurmUser."""
    if _settings(cluster) is None or not node.is_head:
        return []
    return [
        DirSpec(SECRETS_DIR, 0o700, SLURM_USER, SLURM_USER),
        DirSpec(f"{SECRETS_DIR}/power", 0o700, SLURM_USER, SLURM_USER),
    ]


def saving_packages(cluster: Cluster, node: Node) -> tuple[str, ...]:
    """Debian packages the head needs for power saving: piherd's, and the drivers' tools."""
    settings = _settings(cluster)
    if settings is None or not node.is_head:
        return ()
    drivers = {
        settings.controllers[settings.assigned[n]].driver for n in suspendable(cluster, settings)
    }
    extra = sorted({p for d in drivers for p in DRIVER_PACKAGES.get(d, ())})
    return (*HEAD_PACKAGES, *extra)
