"""`piherd ssh-config`, `piherd ssh` and `groups --clustershell --install`, without nodes:
the files' text, the real `nodeset` reading the installed groups, foreign files left alone."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

from click.testing import CliRunner

from piherd.app.ssh_access import current_addresses, ssh_config_text
from piherd.cli.main import cli
from piherd.services import load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


def test_config_names_every_node_with_alias_and_checked_host_keys() -> None:
    cluster = load(EXAMPLE)
    text = ssh_config_text(cluster, {cluster.nodes[1].name: "192.0.2.7"})
    first, second = cluster.nodes[0], cluster.nodes[1]
    assert f"Host {first.name} {cluster.fqdn(first)}\n    HostName {first.address}\n" in text
    assert f"Host {second.name} {cluster.fqdn(second)}\n    HostName 192.0.2.7\n" in text
    assert text.count("    StrictHostKeyChecking yes\n") == len(cluster.nodes)
    # Host keys are looked up under the address, where piherd records them (an alias
    # such as the node's name would find no key for an imaged node).
    assert "HostKeyAlias" not in text
    assert "Host *" not in text  # one cluster's settings never reach another's hosts


LOOP_CLUSTER = """\
[cluster]
name = "loop"
ssh_port = {port}
known_hosts = "{dir}/known_hosts"

[network]
subnet = "127.0.0.0/24"
gateway = "127.0.0.1"

[naming]
prefix = "node"
width = 2
count = 3
first_address = "127.0.0.11"

[[nodes]]
name = "node02"
bootstrap_address = "127.0.0.102"

[groups]
odd = "node[01,03]"
"""


def loop_cluster(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(LOOP_CLUSTER.format(port=port, dir=tmp_path))
    return path


def test_current_address_is_the_one_that_answers(tmp_path: Path) -> None:
    """A node still on its lease (its bootstrap_address answers, its address does not) is
    named at the lease; once its address answers, at its address."""
    with socket.socket() as lease:
        lease.bind(("127.0.0.102", 0))
        lease.listen()
        cluster = load(loop_cluster(tmp_path, lease.getsockname()[1]))
        addresses = asyncio.run(current_addresses(cluster, timeout=1.0))
        assert addresses == {
            "node01": "127.0.0.11",
            "node02": "127.0.0.102",
            "node03": "127.0.0.13",
        }
        with socket.socket() as static:
            static.bind(("127.0.0.12", lease.getsockname()[1]))
            static.listen()
            assert asyncio.run(current_addresses(cluster, timeout=1.0))["node02"] == "127.0.0.12"


def test_clustershell_install_is_read_by_the_real_nodeset(tmp_path: Path) -> None:
    """ClusterShell 1.9 itself (Debian's `nodeset`) resolves @workers from what --install
    wrote, with no -s and nothing else configured; clush gets piherd's ssh config."""
    cluster_file = loop_cluster(tmp_path, 22)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    result = CliRunner(env=env).invoke(
        cli, ["groups", "--clustershell", "--install", "-f", str(cluster_file)]
    )
    assert result.exit_code == 0, result.output
    cfg = tmp_path / "cfg"
    assert (cfg / "piherd" / "ssh" / "loop.conf").is_file()
    clush_conf = (cfg / "clustershell" / "clush.conf").read_text()
    assert f"ssh_options: -F {cfg}/piherd/ssh/config\n" in clush_conf
    run_env = {**os.environ, **env}
    for group, expected in (("@workers", "node[02-03]"), ("@odd", "node[01,03]")):
        out = subprocess.run(
            ["nodeset", "-f", group], env=run_env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected
    again = CliRunner(env=env).invoke(
        cli, ["groups", "--clustershell", "--install", "-f", str(cluster_file)]
    )
    assert again.exit_code == 0  # its own files are rewritten


def test_install_leaves_foreign_files_alone(tmp_path: Path) -> None:
    cluster_file = loop_cluster(tmp_path, 22)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    mine = tmp_path / "cfg" / "clustershell" / "groups.conf"
    mine.parent.mkdir(parents=True)
    mine.write_text("[Main]\ndefault: site\n")
    result = CliRunner(env=env).invoke(
        cli, ["groups", "--clustershell", "--install", "-f", str(cluster_file)]
    )
    assert result.exit_code == 1 and "piherd did not write it" in result.output
    assert mine.read_text() == "[Main]\ndefault: site\n"
    assert not (tmp_path / "cfg" / "clustershell" / "clush.conf").exists()  # all or nothing
    bad = CliRunner(env=env).invoke(
        cli, ["groups", "--ansible", "--install", "-f", str(cluster_file)]
    )
    assert bad.exit_code == 2


def test_ssh_refuses_a_node_set_and_unknown_nodes(tmp_path: Path) -> None:
    cluster_file = loop_cluster(tmp_path, 22)
    runner = CliRunner(env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    for target in ("node09", "@workers", "node[01-02]"):
        result = runner.invoke(cli, ["ssh", "-f", str(cluster_file), target, "--", "true"])
        assert result.exit_code == 2 and "Traceback" not in result.output, target


def test_ssh_config_writes_and_prints(tmp_path: Path) -> None:
    cluster_file = loop_cluster(tmp_path, 22)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    result = CliRunner(env=env).invoke(cli, ["ssh-config", "-f", str(cluster_file)])
    assert result.exit_code == 0
    main = tmp_path / "cfg" / "piherd" / "ssh" / "config"
    assert result.output.strip() == str(main)
    assert f"Include {main.parent}/*.conf" in main.read_text()
    shown = CliRunner(env=env).invoke(cli, ["ssh-config", "--print", "-f", str(cluster_file)])
    assert "Host node02\n" in shown.output or "Host node02 " in shown.output
    # OpenSSH itself reads it: the node's name resolves to its address and its alias.
    out = subprocess.run(
        ["ssh", "-G", "-F", str(main), "node03"], capture_output=True, text=True, check=True
    ).stdout
    assert "hostname 127.0.0.13\n" in out and "hostkeyalias" not in out
    assert "stricthostkeychecking true\n" in out


def test_a_name_two_clusters_share_is_the_last_written_clusters(tmp_path: Path) -> None:
    """node01 of cluster "a" and node01 of "loop": `ssh -F config node01` reaches the one
    of the cluster piherd wrote last, as OpenSSH reads the file."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    other = tmp_path / "a"
    other.mkdir()
    (other / "cluster.toml").write_text(
        LOOP_CLUSTER.format(port=22, dir=other).replace('name = "loop"', 'name = "a"')
        .replace("127.0.0.11", "127.0.0.51")
    )  # fmt: skip
    main = tmp_path / "cfg" / "piherd" / "ssh" / "config"

    def resolved() -> str:
        out = subprocess.run(["ssh", "-G", "-F", str(main), "node01"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return next(ln.split()[1] for ln in out.splitlines() if ln.startswith("hostname "))

    for path, address in ((loop_cluster(tmp_path, 22), "127.0.0.11"),
                          (other / "cluster.toml", "127.0.0.51")):  # fmt: skip
        result = CliRunner(env=env).invoke(cli, ["ssh-config", "-f", str(path)])
        assert result.exit_code == 0, result.output
        assert resolved() == address  # "a" sorts first; the last written wins anyway
