"""What a Raspberry Pi asks the TFTP server for when it boots from the network, per model.

The lists follow Raspberry Pi's documentation of network boot (sources in
docs/netboot.md): the Pi 4's bootloader loads the firmware (start4.elf, fixup4.dat)
from `<serial>/`, and the firmware then reads config.txt, the device tree and its
overlays, cmdline.txt, the kernel and the initramfs from the same directory. The Pi 5
keeps its firmware in the EEPROM, so it asks for no start*.elf; its kernel and
initramfs carry the 2712 suffix. Every file comes from the boot partition of a
Raspberry Pi OS image, except cmdline.txt, which piherd writes per node.

The third model, `ipxe`, is an x86 machine whose network boot is iPXE (QEMU's virtual
NIC ROM, or a PC that chain-loads it): the sim's netbooted VM nodes. It asks for
`boot.ipxe` (piherd's, per node: the kernel command line) and loads the Debian kernel and
initramfs named there, from the same per-serial directory a Pi uses.

The serial directory is the last 8 hex digits of the board's serial number, lower
case (the bootloader's default TFTP_PREFIX=0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MODELS = ("pi4", "pi5", "ipxe")
PI_MODELS = ("pi4", "pi5")
CMDLINE = "cmdline.txt"  # piherd's, per node; never taken from the image
IPXE_SCRIPT = "boot.ipxe"  # the iPXE model's cmdline.txt: piherd's, per node


@dataclass(frozen=True)
class BootTree:
    """The files one Pi model needs in its TFTP directory."""

    model: str
    firmware: tuple[str, ...]  # loaded by the bootloader (empty: firmware in EEPROM)
    files: tuple[str, ...]  # read by the firmware, the kernel and its device tree last

    @property
    def required(self) -> tuple[str, ...]:
        """Every file a boot needs, in the order the Pi asks for them."""
        return (*self.firmware, *self.files)


BOOT_TREES: dict[str, BootTree] = {
    "pi4": BootTree(
        model="pi4",
        firmware=("start4.elf", "fixup4.dat"),
        files=(
            "config.txt",
            "bcm2711-rpi-4-b.dtb",
            "overlays/overlay_map.dtb",
            CMDLINE,
            "kernel8.img",
            "initramfs8",
        ),
    ),
    "pi5": BootTree(
        model="pi5",
        firmware=(),
        files=(
            "config.txt",
            "bcm2712-rpi-5-b.dtb",
            "overlays/overlay_map.dtb",
            CMDLINE,
            "kernel_2712.img",
            "initramfs_2712",
        ),
    ),
    "ipxe": BootTree(model="ipxe", firmware=(), files=(IPXE_SCRIPT, "vmlinuz", "initrd.img")),
}

# Where `piherd netboot build` takes each model's files from, inside the shared root: a
# Pi's whole boot partition (Raspberry Pi OS mounts it at /boot/firmware), or Debian's
# links to the newest kernel and initramfs.
BOOT_SOURCES: dict[str, str] = {"pi4": "boot/firmware", "pi5": "boot/firmware", "ipxe": "."}


def per_node_file(model: str) -> str:
    """The one file of a node's directory that piherd writes (never copied from the root)."""
    return IPXE_SCRIPT if model == "ipxe" else CMDLINE


def tftp_directory(serial: str) -> str:
    """The directory the bootloader asks for: the serial's last 8 hex digits, lower case.

    `serial` is checked by the cluster model (8 or 16 hex digits); /proc/device-tree's
    16-digit form ("10000000" + the 8 digits) names the same directory.
    """
    return serial.lower()[-8:]


def missing_files(model: str, present: Iterable[str]) -> list[str]:
    """The files `model` needs (its per-node file aside: piherd writes it) that `present`
    lacks."""
    have, own = set(present), per_node_file(model)
    return [name for name in BOOT_TREES[model].required if name != own and name not in have]
