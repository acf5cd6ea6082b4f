"""Light nodes: a network namespace running only sshd, with its own hostname (UTS ns),
its own mount table (private /tmp and /root, Pi signals under /sys/class), address and
host key.

No systemd, no own root filesystem: the host's files are shared (documented), which is
what makes hundreds of them cheap enough for fan-out and status tests at scale.
"""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.
# ruff: noqa: ASYNC240

from __future__ import annotations

import signal
from pathlib import Path

from piherd.sim import pisys
from piherd.sim.bridge import NETNS_DIR
from piherd.sim.proc import alive, launch, read_pid, stop_daemon

SSHD = "/usr/sbin/sshd"
LIGHT_CLASSES = "net block tty"  # real /sys/class entries a light node keeps
# $1 hostname, $2 pi tree, $3 sshd_config; runs in the node's own UTS + mount ns.
_BOOT = (
    'hostname "$1"\n'
    'sh -c "$PIHERD_SYS_OVERLAY" sys-overlay "$2" "$LIGHT_CLASSES" ||\n'
    '  echo "piherd: no Pi signals" >&2\n'
    "mount -t tmpfs -o size=16m,mode=1777 piherd-tmp /tmp\n"
    # root's own empty home: not the host's ~/.bashrc etc. on every command.
    "mount -t tmpfs -o size=64m,mode=0700 piherd-root /root\n"
    "unset PIHERD_SYS_OVERLAY LIGHT_CLASSES\n"
    'exec "$4" -D -e -f "$3"\n'
)


def sshd_config(node_dir: Path, address: str, authorized_keys: Path) -> str:
    """sshd settings of one light node: root by key only, its own host key and pid file."""
    return (
        f"ListenAddress {address}\n"
        f"HostKey {node_dir / 'ssh' / 'ssh_host_ed25519_key'}\n"
        f"PidFile {node_dir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized_keys}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "MaxStartups 100:30:200\n"
        "Subsystem sftp internal-sftp\n"
    )


def prepare(node_dir: Path, address: str, authorized_keys: Path) -> None:
    """Config and Pi signal tree of a light node (keys are made by keys.py)."""
    node_dir.mkdir(parents=True, exist_ok=True)
    (node_dir / "sshd_config").write_text(sshd_config(node_dir, address, authorized_keys))
    if not (node_dir / "pi" / "firmware").exists():
        pisys.seed(node_dir / "pi")


def running(node_dir: Path) -> bool:
    return alive(read_pid(node_dir / "child.pid"))


async def start(node_dir: Path, node: str, netns: str, not_before: float = 0.0) -> int:
    """Boot the node (sshd in its namespaces); its PID. `not_before`: when its power-on
    was asked for (CLOCK_BOOTTIME), which its uptime must not predate."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    argv = [
        "env",
        f"PIHERD_SYS_OVERLAY={pisys.SYS_OVERLAY_SCRIPT}",
        f"LIGHT_CLASSES={LIGHT_CLASSES}",
        "nsenter",
        f"--net={NETNS_DIR / netns}",
        "--",
        "unshare",
        *await pisys.fresh_boot_clocks(not_before),  # uptime from 0, as after a power-on
        "--uts",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _BOOT,
        "light-node",
        node,
        str(node_dir / "pi"),
        str(node_dir / "sshd_config"),
        SSHD,
    ]
    return await launch(
        argv,
        pidfile=node_dir / "wrapper.pid",
        childfile=node_dir / "child.pid",
        log=node_dir / "node.log",
    )


async def stop(node_dir: Path, *, power_cut: bool = False) -> None:
    sig = signal.SIGKILL if power_cut else signal.SIGTERM
    await stop_daemon(node_dir / "wrapper.pid", node_dir / "child.pid", sig=sig)
