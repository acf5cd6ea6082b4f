"""Full nodes: systemd-nspawn containers booting systemd on an overlay of the base image.

Each node = its own overlayfs (lower = the cached base, upper = the node's dir: the SD
card), its own netns with `host0` (the Pi's eth0), its own machine-id and host keys,
systemd as PID 1. The launcher joins its own cgroup in every mounted hierarchy before
exec'ing nspawn: without host systemd, parallel starts otherwise fail.
"""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path

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


def _owner(root: Path, user: str) -> tuple[int, int]:
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


def seed(root: Path, node: str, node_dir: Path, state: SimState, files: SimFiles) -> None:
    """What Raspberry Pi Imager customises on a card: hostname, user key, host keys."""
    if (node_dir / "seeded").exists():
        return
    machine_id = node_dir / "machine-id"
    if not machine_id.exists():
        machine_id.write_text(os.urandom(16).hex() + "\n")
    _put(root / "etc/machine-id", machine_id.read_text(), 0o444)
    _put(root / "etc/hostname", f"{node}\n", 0o644)
    _put(root / "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{node}\n", 0o644)
    for key in sorted((node_dir / "ssh").iterdir()):
        private = not key.name.endswith(".pub")
        _put(root / "etc/ssh" / key.name, key.read_text(), 0o600 if private else 0o644)
    pi = _owner(root, "pi")
    ssh_dir = root / "home/pi/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, *pi)
    _put(ssh_dir / "authorized_keys", files.public_key.read_text(), 0o600, pi)
    proxy = f'Acquire::http::Proxy "http://{state.names.gateway}:3142";\n'
    _put(root / "etc/apt/apt.conf.d/01piherd-sim-proxy", proxy, 0o644)
    (node_dir / "seeded").write_text("")


def wipe(state: SimState, node: str) -> None:
    """A freshly flashed card: the overlay's upper layer is gone (identity is kept)."""
    node_dir = state.node_dir(node)
    for sub in ("upper", "work"):
        shutil.rmtree(node_dir / sub, ignore_errors=True)
    (node_dir / "seeded").unlink(missing_ok=True)
    shutil.rmtree(node_dir / "pi", ignore_errors=True)
    pisys.seed(node_dir / "pi")


# ----- power -------------------------------------------------------------------------


def running(node_dir: Path) -> bool:
    return alive(read_pid(node_dir / "child.pid"))


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
    base = await ensure_base()
    raise_host_limits()
    names, node_dir = state.names, state.node_dir(node)
    root = await _mount_card(base, node_dir)
    seed(root, node, node_dir, state, files)
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
        f"--hostname={node}", "--register=no", "--keep-unit", "-b",
        f"--network-namespace-path={NETNS_DIR / names.netns(node)}",
        f"--bind={node_dir / 'pi'}:{PI_IN_NODE}", "--bind=/dev/fuse",
        *(["--bind=/dev/autofs"] if Path("/dev/autofs").exists() else []),
        "--capability=CAP_NET_ADMIN", "--console=read-only",
    ]  # fmt: skip
    await launch(
        argv,
        pidfile=node_dir / "wrapper.pid",
        childfile=node_dir / "child.pid",
        log=node_dir / "node.log",
        cgroup_procs=cgroup_procs(names, node),
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
