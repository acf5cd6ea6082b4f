"""The Debian command vocabulary: the argv of every apt, dpkg, systemctl and file command
`up` runs on a node. Pure: lists of strings, never shell text.

Every path, unit and package comes after `--`, so a name that starts with a dash is never
read as an option. The transport quotes argv (shlex.join) where a shell is in the way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from piherd.ops.changes import ChangeKind

_APT_ENV = ("env", "DEBIAN_FRONTEND=noninteractive")
# Wait for a dpkg still finishing what an interrupted run started, rather than fail.
_APT_LOCK_WAIT = ("-o", "DPkg::Lock::Timeout=300")
# Keep an admin's edited config file, take the package's for files nobody touched.
_DPKG_KEEP_CONFIG = ("--force-confdef", "--force-confold")

# What apt-get prints when a dpkg run was cut off ("dpkg was interrupted, you must
# manually run 'dpkg --configure -a' to correct the problem").
DPKG_INTERRUPTED = "dpkg --configure -a"


def apt_install(packages: Sequence[str]) -> list[str]:
    """Install `packages` without recommends, keeping edited config files."""
    keep = [arg for option in _DPKG_KEEP_CONFIG for arg in ("-o", f"Dpkg::Options::={option}")]
    return [
        *_APT_ENV,
        *("apt-get", "install", "-y", "-q", "--no-install-recommends"),
        *keep,
        *_APT_LOCK_WAIT,
        "--",
        *packages,
    ]


def apt_update() -> list[str]:
    """Refresh the package lists."""
    return [*_APT_ENV, "apt-get", "update", "-q", *_APT_LOCK_WAIT]


def apt_purge(packages: Sequence[str]) -> list[str]:
    """Remove `packages` and their config files (only for `up --purge`)."""
    return [*_APT_ENV, "apt-get", "purge", "-y", "-q", *_APT_LOCK_WAIT, "--", *packages]


def dpkg_resume() -> list[str]:
    """Finish what a dpkg cut off by a power cut or Ctrl-C left half-done.

    apt refuses to install anything until this has run (see DPKG_INTERRUPTED).
    """
    return [*_APT_ENV, "dpkg", *_DPKG_KEEP_CONFIG, "--configure", "-a"]


def _systemctl(verb: str, units: Sequence[str], now: bool = False) -> list[str]:
    return ["systemctl", verb, *(["--now"] if now else []), "--", *units]


def systemctl_for(kind: ChangeKind, unit: str, *more: str) -> list[str]:
    """The systemctl command of a unit change (UNMASK ... RELOAD) on one or more units;
    ValueError for other kinds.

    A masked or disabled unit is also stopped (--now): alone, both leave a running unit
    running. RELOAD falls back to a restart for units that cannot reload.
    """
    verbs = {
        ChangeKind.UNMASK: "unmask",
        ChangeKind.MASK: "mask",
        ChangeKind.DISABLE: "disable",
        ChangeKind.ENABLE: "enable",
        ChangeKind.START: "start",
        ChangeKind.RESTART: "restart",
        ChangeKind.RELOAD: "reload-or-restart",
        ChangeKind.STOP: "stop",
    }
    if kind not in verbs:
        raise ValueError(f"{kind} is not a systemctl change")
    now = kind in (ChangeKind.MASK, ChangeKind.DISABLE)
    return _systemctl(verbs[kind], [unit, *more], now=now)


def systemctl_start(unit: str) -> list[str]:
    """Start a unit."""
    return _systemctl("start", [unit])


def systemctl_restart(unit: str) -> list[str]:
    """Restart a unit (starts it when it is stopped)."""
    return _systemctl("restart", [unit])


def systemctl_reload(unit: str) -> list[str]:
    """Reload a unit's configuration; fails when the unit cannot reload or is stopped."""
    return _systemctl("reload", [unit])


def systemctl_stop(*units: str) -> list[str]:
    """Stop units."""
    return _systemctl("stop", units)


def systemctl_disable_now(unit: str) -> list[str]:
    """Disable a unit and stop it: what removing a unit piherd started does."""
    return _systemctl("disable", [unit], now=True)


def systemctl_reset_failed(*units: str) -> list[str]:
    """Forget units' failed state, so a transient unit of that name can run again."""
    return _systemctl("reset-failed", units)


def systemctl_daemon_reload() -> list[str]:
    """Make systemd read changed unit files."""
    return ["systemctl", "daemon-reload"]


def journal_tail(unit: str, lines: int = 5) -> list[str]:
    """The last `lines` of a unit's journal, messages only."""
    return ["journalctl", f"--unit={unit}", "-n", str(lines), "--no-pager", "-o", "cat"]


def set_hostname(name: str) -> list[str]:
    """Set the running host name (/etc/hostname is a file change of its own)."""
    return ["hostname", "--", name]


def install_dir(path: str, mode: int, owner: str, group: str) -> list[str]:
    """Create a directory (and its parents) with this mode and owner."""
    return ["install", "-d", "-m", f"{mode:o}", "-o", owner, "-g", group, "--", path]


def mkdir_parents(path: str) -> list[str]:
    """Create a directory and its parents; nothing when it exists."""
    return ["mkdir", "-p", "--", path]


def remove_file(path: str) -> list[str]:
    """Remove a file; nothing when it is gone already."""
    return ["rm", "-f", "--", path]


def run_later(unit: str, after: float, script: str) -> list[str]:
    """A transient timer `unit` that runs `sh script` `after` seconds from now (a rollback
    that fires unless piherd stops the timer first)."""
    return [
        "systemd-run",
        f"--unit={unit}",
        f"--on-active={int(after)}s",
        "--timer-property=AccuracySec=1s",
        "/bin/sh",
        script,
    ]


def run_detached(unit: str, shell_text: str) -> list[str]:
    """Run `shell_text` as a transient unit: it goes on when our connection drops."""
    return ["systemd-run", f"--unit={unit}", "--collect", "/bin/sh", "-c", shell_text]


def mkdir_private(path: str) -> list[str]:
    """Create a directory (and parents) only root may enter: where the node's record lives."""
    return ["mkdir", "-p", "-m", "0700", "--", path]


def exists_filter(paths: Sequence[str]) -> list[str]:
    """Prints those of `paths` that exist (files, directories or dangling links), one a line."""
    script = 'for p; do if [ -e "$p" ] || [ -L "$p" ]; then printf "%s\\n" "$p"; fi; done'
    return ["sh", "-c", script, "piherd-exists", *paths]


def remove_dir_if_empty(path: str) -> list[str]:
    """Remove a directory unless something (an admin's file) is still in it."""
    return ["rmdir", "--ignore-fail-on-non-empty", "--", path]


def apt_upgrade(*, full: bool = False) -> list[str]:
    """Upgrade every installed package, keeping edited config files (`piherd upgrade`).

    `upgrade --with-new-pkgs` installs what an upgrade newly depends on (a new kernel's
    ABI package) but removes nothing; `full` is `full-upgrade`, which may remove packages
    (a release upgrade needs it).
    """
    keep = [arg for option in _DPKG_KEEP_CONFIG for arg in ("-o", f"Dpkg::Options::={option}")]
    verb = ["full-upgrade"] if full else ["upgrade", "--with-new-pkgs"]
    return [*_APT_ENV, "apt-get", *verb, "-y", "-q", *keep, *_APT_LOCK_WAIT]


def apt_upgrade_simulated(*, full: bool = False) -> list[str]:
    """What apt_upgrade would do, as `Inst PACKAGE [OLD] (NEW ...)` lines; changes nothing."""
    verb = ["full-upgrade"] if full else ["upgrade", "--with-new-pkgs"]
    return ["apt-get", "-s", "-q", *verb]


_RELEASE = re.compile(r"[a-z]{3,20}")
# Every apt source file: one-line .list files and deb822 .sources files, under an optional
# root ($3, for tests). A suite is a word after a space: `bookworm`, `bookworm-updates`,
# `bookworm-security`; "/bookworm/" in a URL is left alone. The `t` loop re-scans the line,
# since two suites in a row share the space between them.
_SWITCH_SOURCES = r"""
old=$1; new=$2; root=${3:-}
for f in "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*.list \
         "$root"/etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  sed -i -E -e ':a' -e "s/(^|[[:space:]])$old(-[a-z]+)?([[:space:]]|\$)/\1$new\2\3/" -e 'ta' "$f"
done
"""


def switch_release(old: str, new: str) -> list[str]:
    """Point every apt source from release `old` to `new` (bookworm -> trixie): the suite
    words only (`bookworm`, `bookworm-updates`, `bookworm-security`), never a URL part."""
    for name in (old, new):
        if not _RELEASE.fullmatch(name):
            raise ValueError(f"bad release name {name!r}")
    return ["sh", "-c", _SWITCH_SOURCES, "piherd-release", old, new]


# The transient unit of a reboot `piherd upgrade` asked for.
REBOOT_UNIT = "piherd-upgrade-reboot"


def reboot_soon(delay: int = 2) -> list[str]:
    """Reboot `delay` seconds from now (a timer), so the command returns over SSH first."""
    return [
        "systemd-run",
        f"--unit={REBOOT_UNIT}",
        f"--on-active={int(delay)}s",
        "--timer-property=AccuracySec=1s",
        "systemctl",
        "reboot",
    ]


def boot_marks() -> list[str]:
    """Print the kernel's boot id and the uptime (rollout.has_rebooted reads them)."""
    return ["cat", "/proc/sys/kernel/random/boot_id", "/proc/uptime"]
