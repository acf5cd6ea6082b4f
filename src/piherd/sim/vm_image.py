"""The image VM nodes boot: the full nodes' base with Debian's kernel, built once, cached.

A copy of the bookworm base (sim/image.py) gets linux-image-cloud-amd64 (virtio, ext4,
NFS client and server, overlayfs), a small initramfs (MODULES=list: what a virtio disk
or an NFS root needs, 6 MB instead of 30), the kernel NFS server (a VM head serves
`kind = "nfs"` storage for real), and a first-boot unit that copies the node's seed
disk (its identity, sim/vm.py) over the root. The tree becomes an ext4 file system image
with `mkfs.ext4 -d` (no loop device, no root mount), and the kernel and initramfs are
kept beside it: QEMU boots them directly, with no boot loader. Each node boots a qcow2
copy-on-write layer over the shared image: its "card".

Timers that only cost CPU under software emulation are masked (apt, man-db, fstrim...).
Measured on this machine kind: about 20 s to build from the cached base; a VM head
answers SSH 30 s after QEMU starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from piherd.sim.image import MIRROR, ensure_base
from piherd.sim.image import recipe_hash as base_recipe_hash
from piherd.sim.names import CACHE_ROOT
from piherd.sim.proc import SimError, file_lock, run

VM_PACKAGES = ("linux-image-cloud-amd64", "initramfs-tools", "zstd", "nfs-kernel-server")
# What `piherd up` installs on a VM cluster's nodes (tests/unit/test_sim_vm.py keeps this
# in step with the services): installed here at native speed, they make `up` under
# emulation a matter of files and units instead of 7 minutes of dpkg. Their daemons
# stay off until `up` configures and enables them, as on a fresh Pi.
CLUSTER_PACKAGES = (
    "chrony",
    "dnsmasq",
    "rsync",
    "munge",
    "nfs-common",
    "slurmctld",
    "slurmd",
    "slurm-client",
    "openmpi-bin",
    "libopenmpi-dev",
    "libpmix-dev",
    "python3-mpi4py",
)
DISABLED = ("slurmctld.service", "slurmd.service", "munge.service", "dnsmasq.service")
INITRAMFS_MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "ext4", "nfs", "nfsv3", "overlay")
MASKED = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer",
    "fstrim.timer", "e2scrub_reap.service", "systemd-tmpfiles-clean.timer",
    "dpkg-db-backup.timer", "logrotate.timer", "NetworkManager-wait-online.service",
)  # fmt: skip
IMAGE_SIZE = "3G"  # sparse: ~900 MB used
SEED_DEVICE = "/dev/vdb"
SEED_UNIT = "piherd-sim-seed.service"

# Copies the node's seed disk (its identity) over the root at its first boot only.
_SEED_SERVICE = f"""[Unit]
Description=piherd sim: this node's identity from its seed disk
DefaultDependencies=no
ConditionPathExists={SEED_DEVICE}
ConditionPathExists=!/var/lib/piherd-sim-seeded
After=local-fs.target
Before=ssh.service NetworkManager.service sysinit.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /run/piherd-seed && mount -o ro {SEED_DEVICE} /run/piherd-seed \
&& cp -a /run/piherd-seed/. / && umount /run/piherd-seed && touch /var/lib/piherd-sim-seeded'

[Install]
WantedBy=sysinit.target
"""

_CUSTOMISE = f"""
set -e
for unit in {" ".join(MASKED)}; do ln -sf /dev/null /etc/systemd/system/$unit; done
systemctl disable {" ".join(DISABLED)} >/dev/null 2>&1
systemctl enable {SEED_UNIT} >/dev/null
: > /etc/fstab
rm -f /etc/ssh/ssh_host_*
apt-get clean
rm -rf /var/lib/apt/lists/*
"""


def recipe_hash() -> str:
    """Hash of everything that shapes the VM image (the base's recipe included)."""
    recipe = {
        "base": base_recipe_hash("bookworm"),
        "mirror": MIRROR,
        "packages": (*VM_PACKAGES, *CLUSTER_PACKAGES),
        "disabled": DISABLED,
        "modules": INITRAMFS_MODULES,
        "customise": _CUSTOMISE,
        "seed": _SEED_SERVICE,
        "size": IMAGE_SIZE,
        "version": 1,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def vm_image_path(cache: Path = CACHE_ROOT) -> Path:
    """Where the VM image of the current recipe lives: vmlinuz, initrd.img, root.raw."""
    return cache / f"vm-{recipe_hash()}"


async def ensure_vm_image(*, cache: Path = CACHE_ROOT, log: Callable[[str], None] = print) -> Path:
    """The cached VM image directory, built first when missing."""
    target = vm_image_path(cache)
    base = await ensure_base("bookworm", cache=cache, log=log)
    async with file_lock(cache / "vm-image.lock", poll=1.0):
        if not (target / ".piherd-complete").exists():
            await _build(base, target, log)
    return target


@contextlib.asynccontextmanager
async def _chroot_mounts(root: Path) -> AsyncIterator[None]:
    """/proc, /sys and /dev of this machine inside `root` while packages install."""
    mounted: list[Path] = []
    try:
        for sub in ("proc", "sys", "dev", "dev/pts"):
            where = root / sub
            where.mkdir(parents=True, exist_ok=True)
            await run(["mount", "--bind", f"/{sub}", str(where)])
            mounted.append(where)
        yield
    finally:
        for where in reversed(mounted):
            await run(["umount", "-l", str(where)], check=False)


def _remove(tree: Path) -> None:
    """rmtree, once nothing is mounted below `tree` (a bound /dev must never be emptied)."""
    inside = str(tree.resolve()) + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if (line.split()[4] + "/").startswith(inside):
            raise SimError(f"{line.split()[4]} is still mounted; {tree} left in place")
    shutil.rmtree(tree, ignore_errors=True)


async def _build(base: Path, target: Path, log: Callable[[str], None]) -> None:
    work = target.with_name(target.name + ".building")
    _remove(work)
    root = work / "root"
    log(f"building the VM image in {work} (the base plus Debian's kernel, about a minute)")
    try:
        work.mkdir(parents=True)
        await run(["cp", "-a", str(base), str(root)], timeout=600)
        tools = root / "etc/initramfs-tools"
        (tools / "conf.d").mkdir(parents=True, exist_ok=True)
        (tools / "modules").write_text("".join(f"{m}\n" for m in INITRAMFS_MODULES))
        (tools / "conf.d/piherd-sim.conf").write_text("MODULES=list\nCOMPRESS=zstd\n")
        (root / "etc/systemd/system" / SEED_UNIT).write_text(_SEED_SERVICE)
        no_daemons = root / "usr/sbin/policy-rc.d"  # packages start nothing in the chroot
        no_daemons.write_text("#!/bin/sh\nexit 101\n")
        no_daemons.chmod(0o755)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        apt = ["chroot", str(root), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q"]
        async with _chroot_mounts(root):
            await run([*apt, "update"], timeout=600)
            await run(
                [*apt, "install", "-y", "--no-install-recommends", *VM_PACKAGES,
                 *CLUSTER_PACKAGES],
                timeout=1800,
            )  # fmt: skip
        no_daemons.unlink()
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        await run(["chroot", str(root), "/bin/sh", "-c", _CUSTOMISE], timeout=300)
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        initrds = sorted((root / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise SimError(f"no kernel or initramfs in {root / 'boot'}")
        shutil.copy(kernels[-1], work / "vmlinuz")
        shutil.copy(initrds[-1], work / "initrd.img")
        await run(
            ["mkfs.ext4", "-q", "-F", "-L", "piherd-vm", "-d", str(root),
             str(work / "root.raw"), IMAGE_SIZE],
            timeout=900,
        )  # fmt: skip
        _remove(root)
        (work / ".piherd-complete").write_text(recipe_hash() + "\n")
    except (SimError, OSError):
        _remove(work)
        raise
    _remove(target)
    work.rename(target)
    log(f"VM image ready: {target}")
