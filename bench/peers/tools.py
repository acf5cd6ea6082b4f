"""The three converge tools: their bench-only venvs, inventories and command lines.

Ansible and pyinfra live in their own venvs under /var/cache/piherd (pinned in
requirements-*.txt beside this file), never in the project's .venv nor in CI. Each tool
reaches a node at the address it answers at now (its DHCP lease on a fresh node, its
static address once moved), as a name resolved by mDNS would on a Pi LAN.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path("/var/cache/piherd")
VENVS = {"ansible": CACHE / "bench-ansible", "pyinfra": CACHE / "bench-pyinfra"}
PIHERD = Path(sys.executable).parent / "piherd"
TOOLS = ("piherd", "ansible", "pyinfra")


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # "head" or "workers"
    address: str  # where it answers now
    static: str  # where `up` puts it


@dataclass(frozen=True)
class Setup:
    """What every tool needs: the cluster file, the sim's key, known_hosts, the render."""

    cluster_file: Path
    key: Path
    known_hosts: Path
    user: str
    interface: str
    render_dir: Path
    workdir: Path


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def ensure_venv(tool: str) -> Path:
    """Create the tool's venv with its pinned requirements unless it is there already."""
    venv = VENVS[tool]
    if not (venv / "bin" / "python").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    reqs = HERE / f"requirements-{tool}.txt"
    stamp = venv / ".piherd-requirements"
    if not stamp.exists() or stamp.read_text() != reqs.read_text():
        pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "-r", str(reqs)]
        subprocess.run(pip, check=True)
        stamp.write_text(reqs.read_text())
    return venv


def ansible_inventory(setup: Setup, nodes: list[Node], path: Path) -> None:
    """An INI inventory: [head], [workers], [cluster:children], connection variables."""
    lines = []
    for role in ("head", "workers"):
        lines.append(f"[{role}]")
        lines += [f"{n.name} ansible_host={n.address} static_address={n.static}"
                  for n in nodes if n.role == role]  # fmt: skip
        lines.append("")
    ssh_args = f"-o UserKnownHostsFile={setup.known_hosts} -o StrictHostKeyChecking=yes"
    lines += [
        "[cluster:children]", "head", "workers", "",
        "[cluster:vars]",
        f"ansible_user={setup.user}",
        f"ansible_ssh_private_key_file={setup.key}",
        f"ansible_ssh_common_args='{ssh_args}'",
        f"render_dir={setup.render_dir}",
        f"cluster_interface={setup.interface}",
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def pyinfra_inventory(setup: Setup, nodes: list[Node], path: Path) -> None:
    """The JSON that bench/peers/pyinfra/inventory.py and group_data/all.py read."""
    spec: dict[str, object] = {
        "data": {
            "ssh_user": setup.user,
            "ssh_key": str(setup.key),
            "ssh_known_hosts_file": str(setup.known_hosts),
            "render_dir": str(setup.render_dir),
            "cluster_interface": setup.interface,
        },
    }
    for role in ("head", "workers"):
        spec[role] = [
            [n.name, {"ssh_hostname": n.address, "static_address": n.static}]
            for n in nodes
            if n.role == role
        ]
    path.write_text(json.dumps(spec, indent=1))


def invocation(tool: str, setup: Setup, nodes: list[Node], run: str) -> Invocation:
    """The command line of one converge run (`run` names its files in the workdir)."""
    env = dict(os.environ)
    if tool == "piherd":
        argv = [str(PIHERD), "up", "-f", str(setup.cluster_file), "--json"]
        return Invocation(argv, env, setup.workdir)
    if tool == "ansible":
        inventory = setup.workdir / f"{run}.ini"
        ansible_inventory(setup, nodes, inventory)
        env.update(
            ANSIBLE_CONFIG=str(HERE / "ansible" / "ansible.cfg"),
            ANSIBLE_CACHE_PLUGIN_CONNECTION=str(setup.workdir / "ansible-facts"),
            ANSIBLE_LOCAL_TEMP=str(setup.workdir / "ansible-tmp"),
            ANSIBLE_HOME=str(setup.workdir / "ansible-home"),
            # One ControlPersist socket directory per cycle (first + no-op run): a fresh
            # node never meets a master of the connection before its reset.
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(setup.workdir / f"cp-{run.split('-')[0]}"),
            ANSIBLE_NOCOLOR="1",
        )
        playbook = str(HERE / "ansible" / "site.yml")
        argv = [str(VENVS["ansible"] / "bin" / "ansible-playbook"), "-i", str(inventory), playbook]
        return Invocation(argv, env, HERE / "ansible")
    if tool == "pyinfra":
        spec = setup.workdir / f"{run}.json"
        pyinfra_inventory(setup, nodes, spec)
        env["PEERS_INVENTORY"] = str(spec)
        argv = [str(VENVS["pyinfra"] / "bin" / "pyinfra"), "-y", "--sudo", "--parallel",
                str(len(nodes)), "inventory.py", "deploy.py"]  # fmt: skip
        return Invocation(argv, env, HERE / "pyinfra")
    raise ValueError(f"unknown tool {tool}")
