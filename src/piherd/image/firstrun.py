"""bookworm (and older, with /boot): firstrun.sh run once by systemd.run= at first boot.

The script follows what Raspberry Pi Imager writes (src/customization_generator.cpp):
hostname through imager_custom when present, the first user (uid 1000) renamed to the
admin user, the admin key, sshd enabled, the time zone; then it removes itself and its
words from cmdline.txt. piherd adds the node's SSH host keys (made at image time, so the
first connection is verified), passwordless sudo (the admin has no password) and the
node's static address in its network stack. Every file travels base64-encoded and every
other value is shell-quoted, so no value can change the script.
"""

from __future__ import annotations

import base64
import shlex

from piherd.image.firstboot import FirstBoot

SCRIPT = "firstrun.sh"
_IMAGER_CUSTOM = "/usr/lib/raspberrypi-sys-mods/imager_custom"


def cmdline_words(boot_mount: str) -> list[str]:
    """What Raspberry Pi Imager appends to cmdline.txt to run the script once."""
    return [
        f"systemd.run={boot_mount}/{SCRIPT}",
        "systemd.run_success_action=reboot",
        "systemd.unit=kernel-command-line.target",
    ]


def _put(path: str, mode: int, data: bytes, owner: str = "root") -> list[str]:
    """A `put` line; `path` is quoted unless it is the one literal "$HOMEDIR/..." form."""
    encoded = base64.b64encode(data).decode("ascii")
    where = path if path.startswith('"$HOMEDIR/') else shlex.quote(path)
    return [f"put {where} {mode:04o} {shlex.quote(owner)} {encoded}"]


_HEAD = r"""#!/bin/bash
# Written by `piherd image` for {label} of cluster {cluster}. Runs once at first boot
# (systemd.run= in cmdline.txt), then removes itself. It holds private host keys.

set +e

put() {{  # put PATH MODE OWNER BASE64: write a file atomically
   install -d -m 755 "$(dirname "$1")"
   printf '%s' "$4" | base64 -d >"$1.piherd-tmp" \
      && chown "$3:" "$1.piherd-tmp" && chmod "$2" "$1.piherd-tmp" && mv -f "$1.piherd-tmp" "$1"
}}
"""


def _hostname(fb: FirstBoot) -> list[str]:
    if fb.hostname is None:
        return []
    name = shlex.quote(fb.hostname)
    names = shlex.quote(f"{fb.hostname}.{fb.domain} {fb.hostname}" if fb.domain else fb.hostname)
    return [
        f"if [ -f {_IMAGER_CUSTOM} ]; then",
        f"   {_IMAGER_CUSTOM} set_hostname {name}",
        "else",
        f"   echo {name} >/etc/hostname",
        "fi",
        r"sed -i '/^127\.0\.1\.1[[:space:]]/d' /etc/hosts",
        f"printf '127.0.1.1\\t%s\\n' {names} >>/etc/hosts",
    ]


def _user(fb: FirstBoot) -> list[str]:
    user = shlex.quote(fb.user)
    sudoers = shlex.quote(f"/etc/sudoers.d/010_{fb.user}-nopasswd")
    return [
        "FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)",
        'if [ -z "$FIRSTUSER" ]; then',
        f"   useradd -m -u 1000 -s /bin/bash -G sudo {user}",
        f'elif [ "$FIRSTUSER" != {user} ]; then',
        "   if [ -f /usr/lib/userconf-pi/userconf ]; then",
        # No password: '*' never matches one; the admin logs in with the key only.
        f"      /usr/lib/userconf-pi/userconf {user} '*'",
        "   else",
        f'      usermod -l {user} "$FIRSTUSER"',
        f"      usermod -m -d /home/{user} {user}",
        f'      groupmod -n {user} "$FIRSTUSER"',
        "   fi",
        "fi",
        f"usermod -p '*' {user}",
        f"HOMEDIR=$(getent passwd {user} | cut -d: -f6)",
        f'install -o {user} -g {user} -m 700 -d "$HOMEDIR/.ssh"',
        *_put('"$HOMEDIR/.ssh/authorized_keys"', 0o600, (fb.admin_key + "\n").encode(), fb.user),
        *_put(
            f"/etc/sudoers.d/010_{fb.user}-nopasswd",
            0o440,
            f"{fb.user} ALL=(ALL) NOPASSWD:ALL\n".encode(),
        ),
        # The image's own rule for its first user, when the admin has another name.
        *([] if fb.user == "pi" else ["rm -f /etc/sudoers.d/010_pi-nopasswd"]),
        f"test -f {sudoers}",
    ]


def _host_keys(fb: FirstBoot) -> list[str]:
    lines = [
        "# Host keys made by piherd image and recorded in the cluster's known_hosts.",
        "systemctl disable regenerate_ssh_host_keys.service 2>/dev/null",
        "rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub",
    ]
    for key in fb.host_keys:
        path = f"/etc/ssh/ssh_host_{key.kind}_key"
        lines += _put(path, 0o600, key.private)
        lines += _put(f"{path}.pub", 0o644, (key.public + "\n").encode())
    return [*lines, "systemctl enable ssh"]


def _timezone(fb: FirstBoot) -> list[str]:
    zone = shlex.quote(fb.timezone)
    return [
        f"if [ -f {_IMAGER_CUSTOM} ]; then",
        f"   {_IMAGER_CUSTOM} set_timezone {zone}",
        "else",
        f"   ln -sf /usr/share/zoneinfo/{zone} /etc/localtime",
        f"   echo {zone} >/etc/timezone",
        "fi",
    ]


def _network(fb: FirstBoot) -> list[str]:
    if fb.static is None:
        return []
    spec = fb.static.stack_file
    return [
        "# The node's static address (what `piherd up` keeps there).",
        *_put(spec.path, spec.mode, spec.content, spec.owner),
    ]


def script(fb: FirstBoot, boot_mount: str) -> str:
    """The whole firstrun.sh for `fb`, for a boot partition mounted at `boot_mount`."""
    lines = [
        _HEAD.format(label=fb.label, cluster=fb.cluster).rstrip("\n"),
        "",
        *_hostname(fb),
        *_user(fb),
        *_host_keys(fb),
        *_timezone(fb),
        *_network(fb),
        "",
        f"rm -f {boot_mount}/{SCRIPT}",
        f"sed -i 's| systemd.run.*||g' {boot_mount}/cmdline.txt",
        "exit 0",
    ]
    return "\n".join(lines) + "\n"


def files(fb: FirstBoot, boot_mount: str = "/boot/firmware") -> dict[str, bytes]:
    """The boot partition's files for bookworm: firstrun.sh."""
    return {SCRIPT: script(fb, boot_mount).encode("utf-8")}
