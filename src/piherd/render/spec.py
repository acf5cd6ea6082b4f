"""What a renderer returns: files, directories and units a node must have, plus shared helpers."""

from __future__ import annotations

import re
from collections.abc import Iterable

from piherd.model import Cluster, Node
from piherd.model.escape import has_unsafe_char, shown
from piherd.model.paths import is_system_dir, normal_path
from piherd.model.specs import FileSpec, RenderContext


class RenderError(ValueError):
    """The cluster cannot be rendered (a value that would be unsafe in a file or command)."""


def header(cluster: Cluster, comment: str = "#") -> str:
    """The one-line header every managed text file starts with."""
    return f"{comment} Managed by piherd for cluster {cluster.name}; local edits are overwritten.\n"


def text(
    cluster: Cluster,
    path: str,
    lines: Iterable[str],
    *,
    comment: str = "#",
    mode: int = 0o644,
    owner: str = "root",
    group: str = "root",
    restarts: tuple[str, ...] = (),
    reloads: tuple[str, ...] = (),
) -> FileSpec:
    """A text file: the header, then `lines` (each ends with a newline).

    RenderError when a line holds a newline or another control character (a tab is a
    separator, allowed): no value can change the line structure of a file.
    """
    lines = [header(cluster, comment).removesuffix("\n"), *lines]
    for line in lines:
        if has_unsafe_char(line.replace("\t", " ")):
            raise RenderError(f"{path}: a line would hold a control character: {shown(line)}")
    body = "".join(f"{line}\n" for line in lines)
    return FileSpec(path, body.encode(), mode, owner, group, restarts, reloads)


def needs_daemon_reload(spec: FileSpec) -> bool:
    """True when systemd must re-read its units after this file changes."""
    return spec.path.startswith(("/etc/systemd/system/", "/lib/systemd/", "/usr/lib/systemd/"))


_UNIT_SAFE = re.compile(r"[A-Za-z0-9:_.]")


def unit_name_for_path(path: str, suffix: str) -> str:
    """systemd's name for a path unit (`/srv/my-dir` -> `srv-my\\x2ddir.mount`).

    The same algorithm as `systemd-escape --path`, written here because render
    must not run programs.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        return f"-.{suffix}"
    chars = []
    for index, char in enumerate("/".join(parts)):
        if char == "/":
            chars.append("-")
        elif _UNIT_SAFE.match(char) and not (index == 0 and char == "."):
            chars.append(char)
        else:
            chars.append("".join(f"\\x{b:02x}" for b in char.encode()))
    return "".join(chars) + f".{suffix}"


def safe_path(value: str, what: str) -> str:
    """`value` normalised (`//srv/./x/` -> `/srv/x`) when it is a plain absolute path and
    not a system directory itself; RenderError otherwise."""
    normal = normal_path(value)
    if normal is None:
        raise RenderError(f"{what} {shown(value)} is not a plain absolute path")
    if is_system_dir(normal):
        raise RenderError(f"{what} {shown(value)} is the system directory {normal}")
    return normal


def node_cpus(node: Node, ctx: RenderContext) -> int | None:
    """CPUs of `node`: the model's value, else what the node reported, else None."""
    if node.cpus:
        return node.cpus
    reported = ctx.hardware.get(node.name)
    return reported[0] if reported and reported[0] > 0 else None


def node_memory(node: Node, ctx: RenderContext) -> int | None:
    """Memory for Slurm in MiB: the model's value, else 95% of what the node reported.

    slurmd refuses a node whose configured RealMemory exceeds what it finds, and
    MemTotal moves a little between kernels, so the reported value gets headroom.
    """
    if node.memory_mb:
        return node.memory_mb
    reported = ctx.hardware.get(node.name)
    if reported and reported[1] > 0:
        return max(1, reported[1] * 95 // 100)
    return None


def by_address(nodes: Iterable[Node]) -> list[Node]:
    """`nodes` sorted by address: the order every multi-node file uses."""
    return sorted(nodes, key=lambda n: (n.address, n.name))
