"""SSH keys of a virtual cluster: the admin's key pair and each node's host keys.

Host keys are generated here, before a node first boots, and recorded in the sim's
known_hosts: the same path as an image step that records fingerprints, so host keys
stay verified from the first connection on. `reset` reuses them (same flashed image).
"""

# Small local files (state dir, /proc, /sys): blocking access is intended and brief.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
from pathlib import Path

from piherd.sim.proc import run

HOST_KEY_TYPES: tuple[str, ...] = ("ed25519",)


async def ensure_user_key(path: Path, comment: str) -> Path:
    """The sim's admin key pair at `path` (+ .pub), created once; returns the .pub path."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    path.chmod(0o600)
    return path.with_name(path.name + ".pub")


async def ensure_host_keys(key_dir: Path, node: str) -> list[Path]:
    """Host key files for `node` in key_dir (private, 0600); created once."""
    key_dir.mkdir(parents=True, exist_ok=True)
    keys = []
    for kind in HOST_KEY_TYPES:
        key = key_dir / f"ssh_host_{kind}_key"
        if not key.exists():
            await run(
                ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{node}", "-f", str(key)]
            )
        key.chmod(0o600)
        keys.append(key)
    return keys


async def ensure_many_host_keys(dirs: dict[str, Path], limit: int = 8) -> None:
    """ensure_host_keys for many nodes, `limit` at a time."""
    gate = asyncio.Semaphore(limit)

    async def one(node: str, key_dir: Path) -> None:
        async with gate:
            await ensure_host_keys(key_dir, node)

    await asyncio.gather(*(one(node, d) for node, d in dirs.items()))


def public_keys(key_dir: Path) -> list[str]:
    """'type base64' of each host key in key_dir (comments dropped)."""
    found = []
    for kind in HOST_KEY_TYPES:
        text = (key_dir / f"ssh_host_{kind}_key.pub").read_text().split()
        found.append(f"{text[0]} {text[1]}")
    return found
