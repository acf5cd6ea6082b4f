"""Write one node's first-boot files onto a boot partition, the way its OS release reads them."""

from __future__ import annotations

from piherd.image import cloudinit, firstrun, userconf
from piherd.image.bootfs import BootFiles
from piherd.image.cmdline import with_first_boot
from piherd.image.firstboot import FirstBoot
from piherd.image.partitions import ImageError

FORMATS = {
    "bookworm": "firstrun.sh",
    "trixie": "cloud-init",
    "bullseye": "userconf.txt + firstrun.sh",
}


def boot_files(release: str, fb: FirstBoot) -> tuple[dict[str, bytes], list[str]]:
    """(files for the boot partition, words to append to cmdline.txt) for `release`."""
    if release == "bookworm":
        return firstrun.files(fb), firstrun.cmdline_words("/boot/firmware")
    if release == "trixie":
        return cloudinit.files(fb), cloudinit.cmdline_words(fb)
    if release == "bullseye":
        return userconf.files(fb), userconf.cmdline_words()
    raise ImageError(f"piherd does not know how release {release!r} boots the first time")


def customise(boot: BootFiles, release: str, fb: FirstBoot) -> list[str]:
    """Write the files and cmdline.txt; the names written, cmdline.txt last."""
    cmdline = boot.read("cmdline.txt")
    if cmdline is None:
        raise ImageError("the boot partition has no cmdline.txt (not a Raspberry Pi OS image?)")
    files, words = boot_files(release, fb)
    new_cmdline = with_first_boot(cmdline, words)
    for name, data in sorted(files.items()):
        boot.write(name, data)
    boot.write("cmdline.txt", new_cmdline)
    return [*sorted(files), "cmdline.txt"]
