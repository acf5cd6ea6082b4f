"""The base root filesystem full nodes boot from: a freshly flashed Pi OS Lite lookalike.

Debian bookworm (debootstrap minbase) with systemd, NetworkManager, sshd, sudo and
python3, and the admin user `pi` in sudo without password, as Raspberry Pi Imager sets
it up. Built once per recipe into /var/cache/piherd/base-<hash>, under a file lock so
concurrent `sim up`s share one build. Slurm, munge, chrony... are NOT here: `piherd up`
installs them through the sim's package cache, as on real Pis.

A trixie base (`sim up --release trixie`) is Debian trixie with cloud-init, which
Raspberry Pi OS trixie runs at every boot: its NoCloud seed is the card's boot partition
(the seed directory links to /boot/firmware: a container has no block device for
cloud-init to find by label), and it writes NetworkManager's files, the trixie stack.
"""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.
# ruff: noqa: ASYNC240

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from piherd.sim.names import CACHE_ROOT
from piherd.sim.pisys import VCGENCMD
from piherd.sim.proc import SimError, file_lock, run

RELEASES = ("bookworm", "trixie")
MIRROR = "http://deb.debian.org/debian/"
PACKAGES: tuple[str, ...] = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "network-manager", "sudo",
    "python3", "iproute2", "ca-certificates", "curl", "less", "procps", "iputils-ping",
    "kmod", "fuse3",
    # debootstrap does not resolve virtual packages: polkitd (network-manager needs it)
    # depends on default-logind, which libpam-systemd provides.
    "libpam-systemd",
)  # fmt: skip

# Runs in the new tree (chroot). Shapes it like a Pi OS Lite card after Imager.
CUSTOMISE = r"""
set -e
systemctl disable systemd-networkd.service systemd-networkd.socket \
  systemd-networkd-wait-online.service >/dev/null 2>&1 || true
systemctl enable NetworkManager.service ssh.service
systemctl disable apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
useradd -m -s /bin/bash -G sudo,adm,dialout,video,plugdev,users pi
passwd -l pi >/dev/null
echo 'pi ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/010_pi-nopasswd
chmod 0440 /etc/sudoers.d/010_pi-nopasswd
echo raspberrypi > /etc/hostname
rm -f /etc/ssh/ssh_host_* /var/lib/dbus/machine-id
: > /etc/machine-id
apt-get clean
rm -rf /var/lib/apt/lists/*
"""


# trixie: cloud-init as Raspberry Pi OS trixie has it. debootstrap does not resolve virtual
# packages: python3-cryptography (cloud-init needs it) wants python3-cffi-backend-api-*,
# which python3-cffi-backend provides.
CLOUD_INIT_PACKAGES: tuple[str, ...] = ("cloud-init", "python3-cffi-backend")
CLOUD_INIT_CUSTOMISE = r"""
set -e
mkdir -p /var/lib/cloud/seed
ln -sfn /boot/firmware /var/lib/cloud/seed/nocloud
cat > /etc/cloud/cloud.cfg.d/99_piherd-sim.cfg <<'EOF'
# piherd sim: the NoCloud seed is the card's boot partition (seed/nocloud -> /boot/firmware);
# no seed there (a stock card) and ds-identify leaves cloud-init off.
datasource_list: [ NoCloud, None ]
system_info:
  network:
    renderers: [ network-manager ]
EOF
cloud-init clean --logs >/dev/null 2>&1 || true
"""


def _packages(release: str) -> tuple[str, ...]:
    if release not in RELEASES:
        raise SimError(f"the sim has no {release!r} base; it has {', '.join(RELEASES)}")
    return PACKAGES + (CLOUD_INIT_PACKAGES if release == "trixie" else ())


def _customise(release: str) -> str:
    return CUSTOMISE + (CLOUD_INIT_CUSTOMISE if release == "trixie" else "")


def recipe_hash(release: str = "bookworm") -> str:
    """Hash of everything that shapes the base: change the recipe, get a new base."""
    recipe = {
        "suite": release,
        "mirror": MIRROR,
        "packages": _packages(release),
        "customise": _customise(release),
        "vcgencmd": VCGENCMD,
        "version": 1,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def base_path(cache: Path = CACHE_ROOT, release: str = "bookworm") -> Path:
    return cache / f"base-{recipe_hash(release)}"


async def ensure_base(
    release: str = "bookworm",
    *,
    rebuild: bool = False,
    cache: Path = CACHE_ROOT,
    log: Callable[[str], None] = print,
) -> Path:
    """The cached base tree of `release`, built first when missing (or when `rebuild`)."""
    target = base_path(cache, release)
    cache.mkdir(parents=True, exist_ok=True)
    async with file_lock(cache / "base.lock", poll=1.0):
        if (target / ".piherd-complete").exists() and not rebuild:
            return target
        await _build(target, release, log)
    return target


async def _build(target: Path, release: str, log: Callable[[str], None]) -> None:
    work = target.with_name(target.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    log(f"building the base image in {work} (debootstrap {release}, a few minutes)")
    try:
        await run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(_packages(release))}",
             release, str(work), MIRROR],
            timeout=1800,
        )  # fmt: skip
        vcgencmd = work / "usr/bin/vcgencmd"
        vcgencmd.write_text(VCGENCMD)
        vcgencmd.chmod(0o755)
        await run(["chroot", str(work), "/bin/sh", "-c", _customise(release)], timeout=300)
        (work / ".piherd-complete").write_text(recipe_hash(release) + "\n")
    except (SimError, OSError):
        log_file = work / "debootstrap/debootstrap.log"
        if log_file.exists():
            shutil.copy(log_file, target.with_name("base-build.log"))
        shutil.rmtree(work, ignore_errors=True)
        raise
    if target.exists():
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    work.rename(target)
    log(f"base image ready: {target}")
