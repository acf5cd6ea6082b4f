"""The sim cluster the tools converge: fresh nodes (sim reset), where each node answers,
the check that a run left a working cluster, and the apt floor.

Every command reaches a node over OpenSSH with the sim's key and known_hosts (host keys
checked), run as the admin user with sudo where it needs root.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.peers.tools import Node, Setup

from piherd.ops.debian import apt_install, apt_update
from piherd.services import load
from piherd.sim.virtual_cluster import VirtualCluster


def nodes_of(setup: Setup, moved: bool) -> list[Node]:
    """The cluster's nodes, reached at their static address once moved, else their lease."""
    cluster = load(setup.cluster_file)
    head = cluster.head.name
    result = []
    for node in cluster.nodes:
        static = str(node.address)
        boot = str(node.bootstrap_address or static)
        role = "head" if node.name == head else "workers"
        result.append(Node(node.name, role, static if moved else boot, static))
    return result


def ssh_argv(setup: Setup, node: Node, command: str) -> list[str]:
    return [
        "ssh", "-i", str(setup.key), "-o", f"UserKnownHostsFile={setup.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", f"HostKeyAlias={node.name}",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ControlPath=none",
        f"{setup.user}@{node.address}", command,
    ]  # fmt: skip


def ssh(setup: Setup, node: Node, command: str, timeout: float = 120) -> tuple[int, str]:
    proc = subprocess.run(
        ssh_argv(setup, node, command), capture_output=True, text=True, timeout=timeout
    )
    return proc.returncode, proc.stdout + proc.stderr


async def reset_all(vc: VirtualCluster, names: list[str]) -> None:
    """Every node back to a freshly flashed card, in parallel."""
    await asyncio.gather(*(vc.reset(name, timeout=300) for name in names))


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def _file_sums(setup: Setup, node: Node, manifest: dict) -> str:  # type: ignore[type-arg]
    """Paths whose sha256, mode or owner differ from the render on the node, or ''."""
    files = manifest["nodes"][node.name]["files"]
    paths = " ".join(shlex.quote(p) for p in sorted(files))
    rc, out = ssh(setup, node, f"sudo stat -c '%n %a %U %G' {paths} && sudo sha256sum {paths}")
    if rc != 0:
        return f"{node.name}: {out.strip()[-200:]}"
    got: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            got.setdefault(parts[0], {}).update(mode=parts[1], owner=parts[2], group=parts[3])
        elif len(parts) == 2:
            got.setdefault(parts[1], {})["sha256"] = parts[0]
    bad = []
    for path, want in files.items():
        have = got.get(path, {})
        if (have.get("sha256"), have.get("mode"), have.get("owner"), have.get("group")) != (
            want["sha256"],
            want["mode"].lstrip("0") or "0",
            want["owner"],
            want["group"],
        ):
            bad.append(path)
    return f"{node.name}: differs {bad}" if bad else ""


def _packages(setup: Setup, node: Node, manifest: dict) -> str:  # type: ignore[type-arg]
    """The render's packages that are not installed on the node, or ''."""
    wanted = manifest["nodes"][node.name]["packages"]
    query = "dpkg-query -W -f '${Package} ${db:Status-Status}\\n' " + " ".join(
        shlex.quote(p) for p in wanted
    )
    _, out = ssh(setup, node, query)
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    missing = sorted(set(wanted) - installed)
    return f"{node.name}: packages not installed {missing}" if missing else ""


def verify(setup: Setup, nodes: list[Node], timeout: float = 180) -> Check:
    """Same files and packages as the render on every node, /cluster mounted on every node, Slurm's
    workers idle and `srun -N<workers> hostname` answered by every worker."""
    manifest = json.loads((setup.render_dir / "manifest.json").read_text())
    problems = [p for p in (_file_sums(setup, n, manifest) for n in nodes) if p]
    problems += [p for p in (_packages(setup, n, manifest) for n in nodes) if p]
    for node in nodes:
        rc, out = ssh(setup, node, "findmnt -n -o FSTYPE /cluster")
        if rc != 0:
            problems.append(f"{node.name}: /cluster not mounted")
    head = next(n for n in nodes if n.role == "head")
    workers = sorted(n.name for n in nodes if n.role == "workers")
    deadline = time.monotonic() + timeout
    idle = ""
    while time.monotonic() < deadline:
        rc, idle = ssh(setup, head, "sinfo -h -N -o '%N %t'")
        states = dict(line.split() for line in idle.splitlines() if len(line.split()) == 2)
        if rc == 0 and sorted(states) == workers and set(states.values()) == {"idle"}:
            break
        time.sleep(2)
    else:
        problems.append(f"sinfo: {idle.strip()}")
    rc, out = ssh(setup, head, f"timeout 120 srun -N{len(workers)} hostname", timeout=150)
    if rc != 0 or sorted(out.split()) != workers:
        problems.append(f"srun: rc={rc} {out.strip()[-300:]}")
    return Check(not problems, "; ".join(problems) or "files, /cluster, sinfo idle, srun ok")


def _files_tar(setup: Setup, node: Node, manifest: dict, path: Path) -> None:  # type: ignore[type-arg]
    """The node's rendered files as a tar with their modes and owners."""
    with tarfile.open(path, "w") as tar:
        for name, spec in sorted(manifest["nodes"][node.name]["files"].items()):
            info = tar.gettarinfo(str(setup.render_dir / node.name / name.lstrip("/")), name)
            info.mode, info.uname, info.gname = int(spec["mode"], 8), spec["owner"], spec["group"]
            info.uid = info.gid = 0
            with open(setup.render_dir / node.name / name.lstrip("/"), "rb") as handle:
                tar.addfile(info, handle)


def floor_jobs(setup: Setup, nodes: list[Node]) -> list[tuple[list[str], Path]]:
    """Per node: one ssh running `apt-get update` and one `apt-get install` of its packages
    (piherd's argv), then unpacking its rendered files from the tar given on its stdin."""
    manifest = json.loads((setup.render_dir / "manifest.json").read_text())
    argvs = []
    for node in nodes:
        packages = manifest["nodes"][node.name]["packages"]
        tar_path = setup.workdir / f"floor-{node.name}.tar"
        _files_tar(setup, node, manifest, tar_path)
        # A fresh card has no package lists: update first, as piherd does then.
        script = (
            f"sudo {shlex.join(apt_update())} >/dev/null && "
            f"sudo {shlex.join(apt_install(packages))} >/dev/null && sudo tar -x -p -C / "
        )
        argvs.append((ssh_argv(setup, node, script), tar_path))
    return argvs


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
