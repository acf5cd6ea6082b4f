"""Absolute paths on a node: one spelling for each, and the system directories they must avoid."""

from __future__ import annotations

import posixpath
import re

_PLAIN = re.compile(r"/[A-Za-z0-9_./\-]*")
# Never exported, mounted over or served, whatever the spelling: the root, the OS's own
# trees and the places services and logins need (a mount over /home or /run locks out).
SYSTEM_DIRS = frozenset(
    (
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/lost+found",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/local",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/log",
        "/var/spool",
        "/var/tmp",
    )
)
# Trees nothing may be shared from or mounted into, at any depth (/boot/firmware, /etc/ssh).
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib64",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
)


def normal_path(value: str) -> str | None:
    """The one spelling of a plain absolute path (`//etc/.` -> `/etc`); None when `value`
    is not one: relative, with `..`, or with characters beyond letters, digits and `_./-`."""
    if not _PLAIN.fullmatch(value) or ".." in value.split("/"):
        return None
    # normpath keeps a leading "//" (POSIX leaves its meaning open); Linux reads it as "/".
    return "/" + posixpath.normpath(value).lstrip("/")


def is_system_dir(path: str) -> bool:
    """True when normalised `path` is a system directory itself."""
    return path in SYSTEM_DIRS


def system_tree(path: str) -> str | None:
    """The system tree normalised `path` lies inside (`/boot` for `/boot/firmware`), if any."""
    return next((tree for tree in SYSTEM_TREES if path.startswith(tree + "/")), None)
