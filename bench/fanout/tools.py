"""The fan-out tools compared: argv and environment of one run of each on a node list.

The OpenSSH-based tools and piherd use the sim's ssh_config (HostName, key, known_hosts
with checking on); the bare asyncssh script, like a 25-line script would, gets the user,
key, known_hosts and addresses directly. All open fresh connections (no ControlMaster),
fanout 64.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ClusterShell.NodeSet import NodeSet

from piherd.services import load

ANSIBLE = Path("/var/cache/piherd/bench-ansible/bin/ansible")
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Setup:
    """What every tool needs to reach the sim's nodes."""

    cluster_file: Path
    ssh_config: Path
    known_hosts: Path
    key: Path
    workdir: Path
    fanout: int = 64


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]


def available() -> list[str]:
    """Tool names that can run here, in table order (OpenSSH-based first)."""
    names = [n for n, exe in (("clush", "clush"), ("pdsh", "pdsh"), ("pssh", "parallel-ssh"))
             if shutil.which(exe)]  # fmt: skip
    if ANSIBLE.exists():
        names.append("ansible")
    return [*names, "bare-asyncssh", "piherd"]


OPENSSH_TOOLS = ("clush", "pdsh", "pssh", "ansible")


def invocation(tool: str, setup: Setup, nodes: Sequence[str], command: str) -> Invocation:
    """How to run `command` on `nodes` with `tool`."""
    env = dict(os.environ)
    nodeset = str(NodeSet.fromlist(list(nodes)))
    fan = str(setup.fanout)
    ssh_opts = f"-F {setup.ssh_config} -o ControlMaster=no -o ControlPath=none"
    if tool == "clush":
        cfg = setup.workdir / "clush"
        cfg.mkdir(parents=True, exist_ok=True)
        (cfg / "clush.conf").write_text(
            f"[Main]\nfanout: {fan}\nconnect_timeout: 60\ncommand_timeout: 0\n"
            f"color: never\nssh_options: {ssh_opts}\n"
        )
        env["CLUSTERSHELL_CFGDIR"] = str(cfg)
        return Invocation(["clush", "-b", "-f", fan, "-w", nodeset, command], env)
    if tool == "pdsh":
        env["PDSH_SSH_ARGS"] = f"{ssh_opts} -x -l%u %h"
        return Invocation(["pdsh", "-R", "ssh", "-f", fan, "-w", nodeset, command], env)
    if tool == "pssh":
        hosts = setup.workdir / f"hosts-{len(nodes)}"
        hosts.write_text("".join(f"{n}\n" for n in nodes))
        argv = ["parallel-ssh", "-p", fan, "-t", "0", "-h", str(hosts), "-x", ssh_opts, command]
        return Invocation(argv, env)
    if tool == "ansible":
        inventory = setup.workdir / f"inventory-{len(nodes)}.ini"
        inventory.write_text(
            "[bench]\n" + "".join(f"{n}\n" for n in nodes)
            + "\n[bench:vars]\nansible_user=root\n"
            + f"ansible_ssh_common_args='-F {setup.ssh_config}'\n"
        )  # fmt: skip
        env.update(
            ANSIBLE_SSH_ARGS="-o ControlMaster=no -o ControlPath=none",
            ANSIBLE_LOCAL_TEMP=str(setup.workdir / "ansible-tmp"),
            ANSIBLE_HOME=str(setup.workdir / "ansible-home"),
            ANSIBLE_NOCOLOR="1",
        )
        argv = [str(ANSIBLE), "-i", str(inventory), "bench", "-m", "raw", "-a", command, "-f", fan]
        return Invocation(argv, env)
    if tool == "bare-asyncssh":
        cluster = load(setup.cluster_file)
        addresses = [str(cluster.node(n).address) for n in nodes]
        argv = [
            sys.executable, str(HERE / "bare_asyncssh.py"), cluster.admin_user,
            str(setup.known_hosts), str(setup.key), fan, command, *addresses,
        ]  # fmt: skip
        return Invocation(argv, env)
    if tool == "piherd":
        argv = [
            str(VENV_BIN / "piherd"), "run", "-f", str(setup.cluster_file), "--fanout", fan,
            "--no-progress", nodeset, "--", command,
        ]  # fmt: skip
        return Invocation(argv, env)
    raise ValueError(f"unknown tool {tool}")
