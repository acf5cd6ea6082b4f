"""Full nodes: systemd-nspawn containers booting systemd on an overlay of the base image.

Each node = its own overlayfs (lower = the cached base, upper = the node's dir: the SD
card), its own netns with `host0` (the Pi's eth0), its own machine-id and host keys,
systemd as PID 1. The launcher joins its own cgroup in every mounted hierarchy before
exec'ing nspawn: without host systemd, parallel starts otherwise fail.

Blank nodes (`sim up --blank`) get a stock card instead: no identity, sshd off, and a boot
partition at /boot/firmware whose cmdline.txt is read at every power-on, as a Pi's
firmware does. Its `systemd.*` words reach the container's systemd as its arguments (a
systemd in a container takes its own argv as the kernel command line), so an image's
`systemd.run=` first boot runs; the reboot it ends with boots the node again (the
launcher's on-reboot program: `python -m piherd.sim.reboot`).
"""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from piherd.image.cmdline import words as cmdline_words
from piherd.image.firstboot import HOSTNAME
from piherd.image.partitions import ImageError
from piherd.sim import pisys
from piherd.sim.bridge import NETNS_DIR
from piherd.sim.clusterfile import SimFiles
from piherd.sim.image import ensure_base
from piherd.sim.names import CGROUP_ROOT, SimNames
from piherd.sim.proc import SimError, alive, launch, read_pid, run, stop_daemon
from piherd.sim.proc import stop as stop_pid
from piherd.sim.router import router_down, router_up
from piherd.sim.state_file import SimState

PI_IN_NODE = "/run/piherd-sim/pi"  # where the node's Pi signal tree is bound
BOOT_IN_NODE = "/boot/firmware"  # where Raspberry Pi OS (bookworm on) mounts the boot partition
STOCK_HOSTNAME = "raspberrypi"
# A stock Raspberry Pi OS Lite card's boot partition, as far as a container can use it.
STOCK_BOOT_FILES = {
    "cmdline.txt": "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 "
    "rootfstype=ext4 fsck.repair=yes rootwait quiet\n",
    "config.txt": "# For more options and information see\n"
    "# http://rptl.io/configtxt\n[all]\narm_64bit=1\ndtparam=audio=on\n",
}
# Kernel arguments read from PID 1's argv inside a container: systemd's own, and
# cloud-init's NoCloud `ds=` (ds-identify reads /proc/1/cmdline in a container). No other
# word of cmdline.txt means anything to a container (and none may look like an option).
_INIT_WORD = re.compile(r"systemd\.[a-z_.]+=[!-~]{1,512}|ds=nocloud(?:-net)?(?:;[!-~]{0,512})?")
SHELL_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

__all__ = ["router_down", "router_up"]

# Every container's systemd, logind, NetworkManager... takes inotify instances from
# the same (root) budget; the default 128 runs out at ~10 nodes (EMFILE, D-Bus
# activation timeouts). Raised (never lowered) as LXC/LXD advise for many containers.
INOTIFY_LIMITS = {"max_user_instances": 8192, "max_user_watches": 1048576}
# /proc/sys/net of the node's own netns made writable, as nspawn does for containers
# with a private network (NetworkManager sets per-interface sysctls).
PROC_SYS_NET_RW = (
    "mount --make-rprivate /proc && mount --bind /proc/sys/net /proc/sys/net && "
    "mount -o remount,bind,rw /proc/sys/net"
)


def raise_host_limits() -> None:
    for key, wanted in INOTIFY_LIMITS.items():
        knob = Path("/proc/sys/fs/inotify") / key
        if int(knob.read_text()) < wanted:
            knob.write_text(f"{wanted}\n")


# ----- cgroups -----------------------------------------------------------------------


def hierarchies() -> list[Path]:
    """Mounted cgroup hierarchies (v1 controllers, name=systemd, the v2 tree)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        mount = Path(fields[4])
        if fstype in ("cgroup", "cgroup2") and mount.parent == CGROUP_ROOT:
            found.append(mount)
    return found


def _make_cgroup(path: Path) -> None:
    if path.exists():
        return
    path.mkdir()
    # cpuset v1: a new cgroup starts with no CPUs/memory nodes; inherit the parent's.
    for knob in ("cpuset.cpus", "cpuset.mems"):
        if (path / knob).exists():
            (path / knob).write_text((path.parent / knob).read_text())


def cgroup_procs(names: SimNames, node: str) -> list[Path]:
    """Create the node's cgroup in every hierarchy; the cgroup.procs files to join."""
    procs = []
    for hierarchy in hierarchies():
        _make_cgroup(hierarchy / names.cgroup)
        _make_cgroup(hierarchy / names.cgroup / node)
        procs.append(hierarchy / names.cgroup / node / "cgroup.procs")
    return procs


def _rmdir_tree(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir():
            _rmdir_tree(child)
    try:
        path.rmdir()
    except OSError as exc:
        raise SimError(f"cannot remove cgroup {path}: {exc.strerror}") from None


async def cgroups_remove(names: SimNames, node: str | None) -> None:
    """Remove the node's cgroups (node None: the cluster's, when empty)."""
    for hierarchy in hierarchies():
        top = hierarchy / names.cgroup
        if node is None:
            if top.is_dir() and not any(p.is_dir() for p in top.iterdir()):
                top.rmdir()
            continue
        for _ in range(50):  # the kernel frees a cgroup shortly after its last task
            try:
                _rmdir_tree(top / node)
                break
            except SimError:
                await asyncio.sleep(0.1)
        else:
            _rmdir_tree(top / node)


# ----- the card: overlay + identity --------------------------------------------------


def _mounted(path: Path) -> bool:
    target = str(path)
    return any(
        line.split()[4] == target for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )


async def _mount_card(base: Path, node_dir: Path) -> Path:
    root = node_dir / "root"
    if _mounted(root):
        return root
    for sub in ("upper", "work", "root"):
        (node_dir / sub).mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={base},upperdir={node_dir / 'upper'},workdir={node_dir / 'work'}"
    await run(["mount", "-t", "overlay", "piherd-card", "-o", options, str(root)])
    return root


async def _unmount_card(node_dir: Path) -> None:
    root = node_dir / "root"
    for _ in range(50):
        if not _mounted(root):
            return
        rc, _, _ = await run(["umount", str(root)], check=False)
        if rc != 0:
            await asyncio.sleep(0.1)
    await run(["umount", "-l", str(root)], check=False)


def owner(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise SimError(f"user {user!r} missing from the base image")


def _put(path: Path, text: str, mode: int, owner: tuple[int, int] = (0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".piherd-tmp")
    tmp.write_text(text)
    os.chown(tmp, *owner)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _seed_card(root: Path, node_dir: Path, state: SimState, hostname: str) -> None:
    """What every card of the sim gets: the node's machine-id (kept across re-flashes),
    /etc/hosts naming `hostname`, and the sim's package cache as apt proxy."""
    machine_id = node_dir / "machine-id"
    if not machine_id.exists():
        machine_id.write_text(os.urandom(16).hex() + "\n")
    _put(root / "etc/machine-id", machine_id.read_text(), 0o444)
    _put(root / "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n", 0o644)
    proxy = f'Acquire::http::Proxy "http://{state.names.gateway}:3142";\n'
    _put(root / "etc/apt/apt.conf.d/01piherd-sim-proxy", proxy, 0o644)


def seed(
    root: Path,
    node: str,
    node_dir: Path,
    state: SimState,
    files: SimFiles,
    admin: tuple[int, int] | None = None,
) -> None:
    """What Raspberry Pi Imager customises on a card: hostname, user key, host keys.
    `admin`: pi's uid and gid, when `root` is not a whole system to look them up in."""
    if (node_dir / "seeded").exists():
        return
    _seed_card(root, node_dir, state, node)
    _put(root / "etc/hostname", f"{node}\n", 0o644)
    for key in sorted((node_dir / "ssh").iterdir()):
        private = not key.name.endswith(".pub")
        _put(root / "etc/ssh" / key.name, key.read_text(), 0o600 if private else 0o644)
    pi = admin or owner(root, "pi")
    ssh_dir = root / "home/pi/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, *pi)
    _put(ssh_dir / "authorized_keys", files.public_key.read_text(), 0o600, pi)
    (node_dir / "seeded").write_text("")


def seed_blank(root: Path, node_dir: Path, state: SimState) -> None:
    """A card freshly flashed with stock Raspberry Pi OS Lite: host name raspberrypi, no
    host keys, no admin key, sshd off (the base's `pi` is the image's first user, locked),
    and the stock boot partition unless an image was flashed onto it."""
    if (node_dir / "seeded").exists():
        return
    _seed_card(root, node_dir, state, STOCK_HOSTNAME)
    for link in ("multi-user.target.wants/ssh.service", "sshd.service"):  # systemctl disable ssh
        (root / "etc/systemd/system" / link).unlink(missing_ok=True)
    boot = node_dir / "bootfs"
    if not boot.is_dir():
        boot.mkdir(mode=0o700)
        for name, text in STOCK_BOOT_FILES.items():
            _put(boot / name, text, 0o700)
    (node_dir / "seeded").write_text("")


def card_hostname(root: Path, default: str) -> str:
    """The host name the card gives the node (/etc/hostname), else `default`."""
    try:
        name = (root / "etc/hostname").read_text().strip()
    except OSError:
        return default
    return name if HOSTNAME.fullmatch(name) else default


def init_arguments(boot: Path) -> list[str]:
    """The `systemd.*` and `ds=nocloud` words of the card's cmdline.txt (none when it has
    none, or when it is not one line of text: the firmware would not boot that card either)."""
    try:
        words = cmdline_words((boot / "cmdline.txt").read_bytes())
    except (OSError, ImageError):
        return []
    return [w for w in words if _INIT_WORD.fullmatch(w)]


def card_runs_sshd(node_dir: Path) -> bool:
    """Whether a blank node's card starts sshd: a first boot (firstrun.sh, cloud-init) is
    on it, or one enabled ssh.service (a link in the card's own layer; the stock card has
    none)."""
    wants = node_dir / "upper/etc/systemd/system/multi-user.target.wants/ssh.service"
    return bool(init_arguments(node_dir / "bootfs")) or wants.is_symlink()


def wipe(state: SimState, node: str) -> None:
    """A freshly flashed card: the overlay's upper layer is gone (identity is kept; a blank
    node's boot partition is stock again)."""
    node_dir = state.node_dir(node)
    for sub in ("upper", "work", *(["bootfs"] if state.blank else [])):
        shutil.rmtree(node_dir / sub, ignore_errors=True)
    (node_dir / "seeded").unlink(missing_ok=True)
    shutil.rmtree(node_dir / "pi", ignore_errors=True)
    pisys.seed(node_dir / "pi")


# ----- power -------------------------------------------------------------------------


def running(node_dir: Path) -> bool:
    """The node has power: its container runs, or it is between a reboot and the next boot."""
    return alive(read_pid(node_dir / "child.pid")) or alive(read_pid(node_dir / "wrapper.pid"))


def leader(node_dir: Path) -> int | None:
    """PID of the container's init (systemd), the child of systemd-nspawn."""
    nspawn = read_pid(node_dir / "child.pid")
    if not alive(nspawn):
        return None
    for task in Path(f"/proc/{nspawn}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            if alive(int(child)):
                return int(child)
    return None


async def _wait_init(node_dir: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = leader(node_dir)
        if pid is not None:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return pid
            except OSError:
                pass
        if not running(node_dir):
            break
        await asyncio.sleep(0.05)
    raise SimError(f"{node_dir.name} did not boot (see {node_dir / 'node.log'})")


async def start(state: SimState, node: str, files: SimFiles, not_before: float = 0.0) -> None:
    """Power on: mount the card, seed it when fresh, boot systemd in the container.
    `not_before`: when the power-on was asked for (CLOCK_BOOTTIME; pisys.fresh_boot_clocks)."""
    base = await ensure_base(state.release)
    raise_host_limits()
    names, node_dir = state.names, state.node_dir(node)
    root = await _mount_card(base, node_dir)
    if state.blank:
        seed_blank(root, node_dir, state)
    else:
        seed(root, node, node_dir, state, files)
    boot = node_dir / "bootfs"
    on_reboot = node_dir / "on-reboot"
    again = [sys.executable, "-m", "piherd.sim.reboot", state.state_dir, node]
    _put(on_reboot, f"#!/bin/sh\nexec {shlex.join(again)}\n", 0o700)
    if not (node_dir / "pi" / "firmware").exists():
        pisys.seed(node_dir / "pi")
    # Booted in a time namespace of its own (its uptime starts at 0), with /dev/autofs so
    # systemd starts automount units at boot (the shared storage comes back after a
    # power cut, as on a Pi; without it systemd deems automounts "unsupported").
    clocks = await pisys.fresh_boot_clocks(not_before)
    argv = [
        *(["unshare", *clocks, "--"] if clocks else []),
        "env", "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1", "SYSTEMD_NSPAWN_TMPFS_TMP=0",
        "systemd-nspawn", "--quiet", "-D", str(root), f"--machine={names.netns(node)}",
        f"--hostname={card_hostname(root, node)}", "--register=no", "--keep-unit", "-b",
        f"--network-namespace-path={NETNS_DIR / names.netns(node)}",
        f"--bind={node_dir / 'pi'}:{PI_IN_NODE}", "--bind=/dev/fuse",
        *(["--bind=/dev/autofs"] if Path("/dev/autofs").exists() else []),
        *([f"--bind={boot}:{BOOT_IN_NODE}"] if boot.is_dir() else []),
        "--capability=CAP_NET_ADMIN", "--console=read-only",
        *(init_arguments(boot) if boot.is_dir() else []),
    ]  # fmt: skip
    await launch(
        argv,
        pidfile=node_dir / "wrapper.pid",
        childfile=node_dir / "child.pid",
        log=node_dir / "node.log",
        cgroup_procs=cgroup_procs(names, node),
        on_reboot=on_reboot,
    )
    init = await _wait_init(node_dir)
    enter = ["nsenter", "-t", str(init), "-m", "-p", "-n", "-r", "--", "/bin/sh", "-c"]
    await run([*enter, PROC_SYS_NET_RW])
    # Pi signals under /sys/class, inside the container's mount namespace.
    await run(
        [*enter, pisys.SYS_OVERLAY_SCRIPT, "sys-overlay", PI_IN_NODE],
    )


async def stop(state: SimState, node: str, *, power_cut: bool = False) -> None:
    """Power off (always a cut: the card is re-flashed or thrown away anyway) and unmount."""
    node_dir = state.node_dir(node)
    init = leader(node_dir)
    if init is not None:
        await stop_pid(init, sig=signal.SIGKILL)
    await stop_daemon(node_dir / "wrapper.pid", node_dir / "child.pid")
    await _unmount_card(node_dir)
    del power_cut


def shell_argv(state: SimState, node: str) -> list[str]:
    """nsenter into the container's namespaces and root, as root, with a login shell."""
    init = leader(state.node_dir(node))
    if init is None:
        raise SimError(f"{node} is powered off")
    term = os.environ.get("TERM", "linux")
    return [
        "nsenter", "-t", str(init), "-m", "-u", "-i", "-n", "-p", "-C", "-T", "-r", "-w", "--",
        "/usr/bin/env", "-i", "HOME=/root", f"TERM={term}", SHELL_PATH, "/bin/bash", "-l",
    ]  # fmt: skip
