"""VM nodes: one QEMU machine per node (software emulation), with Debian's own kernel.

Where containers share this machine's kernel, a VM node runs its own: the kernel NFS
server and client, overlayfs over NFS, a reboot that really reboots. Each node keeps the
sim's wiring: its network namespace and cable on the cluster's switch (so `partition`,
`kill`, the router's DHCP and ARP behave as for any node); inside the namespace a small
bridge joins the cable to the VM's tap device. QEMU runs in that namespace.

A node's disks: its card, a qcow2 layer over the shared image (sim/vm_image.py; `reset`
throws it away), and a small seed disk with its identity (host name, host keys, the
admin's key, the apt proxy) that the image's first-boot unit copies over the root,
as Raspberry Pi Imager customises a card. The kernel and initramfs boot directly
(-kernel), and the serial console goes to the node's console.log.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from piherd.sim import full
from piherd.sim.clusterfile import SimFiles
from piherd.sim.image import base_path
from piherd.sim.proc import SimError, alive, launch, read_pid, run, stop_daemon
from piherd.sim.proc import stop as stop_pid
from piherd.sim.state_file import SimState
from piherd.sim.vm_image import ensure_vm_image

QEMU = "qemu-system-x86_64"
MEMORY_MB = 512  # measured: ~340 MB resident once booted (docs/benchmarks.md)
TAP, SWITCH = "tap0", "br0"  # inside the node's namespace, beside its cable (eth0)
CONSOLE = "console.log"
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"


def serial_of(index: int) -> str:
    """A netbooted VM's serial number (SMBIOS), as a Pi's: 8 hex digits, its TFTP directory."""
    return f"5e{index:06x}"


def cable_mac(mac: str) -> str:
    """The MAC of the cable's end inside the namespace: the node's own belongs to the VM,
    and a bridge port with the VM's MAC would take the VM's frames for itself."""
    first, rest = mac.split(":", 1)
    return f"{int(first, 16) ^ 0x02:02x}:{rest}"  # the locally administered twin


async def wire(netns: str, mac: str) -> None:
    """The namespace's bridge between the cable (eth0) and the VM's tap; idempotent."""
    rc, _, _ = await run(["ip", "-n", netns, "link", "show", TAP], check=False)
    if rc == 0:
        return
    twin = cable_mac(mac)
    lines = [
        f"link set eth0 address {twin}",
        f"link add {SWITCH} address {twin} type bridge",
        f"link set eth0 master {SWITCH}",
        f"tuntap add dev {TAP} mode tap",
        f"link set {TAP} master {SWITCH} up",
        f"link set {SWITCH} up",
        "link set eth0 up",
    ]
    await run(["ip", "-n", netns, "-batch", "-"], input=("\n".join(lines) + "\n").encode())
    # The namespace's own bridge stays silent on the LAN (no IPv6 address, no router
    # solicitations under the VM's feet).
    quiet = f"net.ipv6.conf.{SWITCH}.disable_ipv6=1"
    await run(["ip", "netns", "exec", netns, "sysctl", "-q", quiet])


async def _seed_disk(state: SimState, node: str, node_dir: Path, files: SimFiles) -> Path:
    """The node's identity as a small ext4 disk (what `full.seed` puts on a card)."""
    disk = node_dir / "seed.img"
    if disk.exists() and (node_dir / "seeded").exists():
        return disk
    stage = node_dir / "seed"
    shutil.rmtree(stage, ignore_errors=True)
    pi = full.owner(base_path(release="bookworm"), "pi")  # the image's admin, from its base
    home = stage / "home/pi"
    home.mkdir(parents=True, mode=0o755)
    os.chown(home, *pi)
    (node_dir / "seeded").unlink(missing_ok=True)
    full.seed(stage, node, node_dir, state, files, admin=pi)
    await run(["mkfs.ext4", "-q", "-F", "-L", "piherd-seed", "-d", str(stage), str(disk), "16M"])
    shutil.rmtree(stage)
    return disk


async def _disks(state: SimState, node: str, node_dir: Path, files: SimFiles) -> list[str]:
    """QEMU's boot arguments: a card and seed disk with a kernel, or, for a node that boots
    from the head, no disk at all: the NIC's iPXE asks the LAN, again every 5 s until the
    head answers, with the serial number it names its TFTP directory by."""
    if state.netbooted(node):
        serial = serial_of(state.index(node))
        return ["-boot", "n,reboot-timeout=5000", "-smbios", f"type=1,serial={serial}"]
    image = await ensure_vm_image()
    card = node_dir / "card.qcow2"
    if not card.exists():
        await run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "root.raw"),
                   "-F", "raw", str(card)])  # fmt: skip
    seed = await _seed_disk(state, node, node_dir, files)
    return [
        "-drive", f"file={card},if=virtio,format=qcow2",
        "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
        "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
        "-append", f"{KERNEL_ARGS} systemd.hostname={node}",
    ]  # fmt: skip


async def start(state: SimState, node: str, files: SimFiles) -> None:
    """Power on: wire the namespace, make the card and seed when missing, boot QEMU."""
    node_dir = state.node_dir(node)
    node_dir.mkdir(parents=True, exist_ok=True)
    netns = state.names.netns(node)
    await wire(netns, state.names.mac(state.index(node)))
    boot = await _disks(state, node, node_dir, files)
    mac = state.names.mac(state.index(node))
    argv = [
        "ip", "netns", "exec", netns,
        QEMU, "-name", node, "-machine", "pc", "-accel", "tcg,tb-size=64",
        "-smp", "1", "-m", str(MEMORY_MB), "-display", "none", "-monitor", "none",
        "-serial", f"file:{node_dir / CONSOLE}",
        "-netdev", f"tap,id=cable,ifname={TAP},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=cable,mac={mac}",
        *boot,
    ]  # fmt: skip
    await launch(
        argv, pidfile=node_dir / "wrapper.pid", childfile=node_dir / "child.pid",
        log=node_dir / "node.log",
    )  # fmt: skip


def running(node_dir: Path) -> bool:
    """The VM has power: its QEMU runs."""
    return alive(read_pid(node_dir / "child.pid"))


async def stop(node_dir: Path) -> None:
    """Power off: QEMU is killed, as a power cut would (the card keeps what was written)."""
    pid = read_pid(node_dir / "child.pid")
    if alive(pid) and pid is not None:
        await stop_pid(pid, sig=signal.SIGKILL)
    await stop_daemon(node_dir / "wrapper.pid", node_dir / "child.pid")


def wipe(node_dir: Path) -> None:
    """A freshly flashed card: the node's layer and seed go (its identity files stay)."""
    for name in ("card.qcow2", "seed.img", "seeded", CONSOLE):
        (node_dir / name).unlink(missing_ok=True)


def check_host() -> None:
    """QEMU and qemu-img must be installed (scripts/apt-packages.txt)."""
    for program in (QEMU, "qemu-img"):
        if shutil.which(program) is None:
            raise SimError(f"{program} not found: apt-get install qemu-system-x86 qemu-utils")
