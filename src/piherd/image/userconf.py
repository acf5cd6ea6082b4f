"""bullseye and older (boot partition at /boot): `userconf.txt` and `ssh`, plus firstrun.sh.

userconf.txt (`user:crypt-hash`) names the first user and `ssh` turns sshd on, as the
headless set-up of those releases expects. The admin has no password (`*` never matches
one), so the key is the only way in; the key, host keys, host name, time zone and the
dhcpcd.conf static address come from the same firstrun.sh as bookworm, run from /boot.
"""

from __future__ import annotations

from piherd.image import firstrun
from piherd.image.firstboot import FirstBoot

BOOT_MOUNT = "/boot"


def files(fb: FirstBoot) -> dict[str, bytes]:
    """userconf.txt, ssh (empty) and firstrun.sh."""
    return {
        "userconf.txt": f"{fb.user}:*\n".encode(),
        "ssh": b"",
        **firstrun.files(fb, BOOT_MOUNT),
    }


def cmdline_words() -> list[str]:
    """systemd.run= for the script at /boot/firstrun.sh."""
    return firstrun.cmdline_words(BOOT_MOUNT)
