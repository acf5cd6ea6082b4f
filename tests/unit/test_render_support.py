"""Shared inputs of the render tests (no tests here): golden cases, a fixed context."""

from __future__ import annotations

import base64
from pathlib import Path

from piherd.model import Cluster
from piherd.render import RenderContext
from piherd.services import load

GOLDEN = Path(__file__).parent.parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "cluster.toml").exists())

# Made-up bytes, not keys: render passes secrets through untouched.
MUNGE_KEY = bytes(range(256)) * 4
STORAGE_PRIVATE = b"piherd test storage key (not a real key)\n"
STORAGE_PUBLIC = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBpaGVyZC10ZXN0LXN0b3JhZ2Uta2V5 piherd-storage@test"
)
CLUSTER_PRIVATE = b"piherd test cluster key (not a real key)\n"
CLUSTER_PUBLIC = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBpaGVyZC10ZXN0LWNsdXN0ZXIta2V5 piherd-cluster@test"
)

# What the nodes of each case "reported" (cpus, MemTotal MiB); missing nodes are unknown.
HARDWARE = {
    "bookworm": {"cluster01": (4, 3796), "cluster02": (4, 3796), "cluster03": (4, 7812)},
    "bullseye": {f"rpi{i}": (4, 924) for i in range(1, 5)},
    "netboot": {f"rpinode{i:02d}": (4, 924) for i in range(1, 16)},
    "sim": {f"node{i:02d}": (2, 24034) for i in range(1, 4)},
}


def fake_host_key(name: str) -> str:
    """A well-formed, made-up ed25519 host-key line for `name`."""
    blob = base64.b64encode(f"test-host-key-of-{name}".encode().ljust(32, b".")).decode()
    return f"ssh-ed25519 {blob} root@{name}"


def cluster_of(case: str) -> Cluster:
    return load(GOLDEN / case / "cluster.toml")


def context_of(case: str, cluster: Cluster) -> RenderContext:
    """The fixed context of a golden case: every node's host key except the last one's."""
    keys = {n.name: (fake_host_key(n.name),) for n in cluster.nodes[:-1]}
    return RenderContext(
        munge_key=MUNGE_KEY,
        storage_private_key=STORAGE_PRIVATE,
        storage_public_key=STORAGE_PUBLIC,
        hardware=HARDWARE.get(case, {}),
        host_keys=keys,
        cluster_private_key=CLUSTER_PRIVATE,
        cluster_public_key=CLUSTER_PUBLIC,
    )
