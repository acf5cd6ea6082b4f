"""Renderer behaviours, and rendered files checked by the programs that read them."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest
from test_render_support import GOLDEN, cluster_of, context_of

from piherd.render import (
    RenderContext,
    RenderError,
    UnitSpec,
    needs_daemon_reload,
    node_directories,
    node_packages,
    node_units,
    render_node,
)
from piherd.render.spec import unit_name_for_path
from piherd.services import loads
from piherd.services.slurm import SlurmSettings
from piherd.services.ssh_keys import host_keys_from_known_hosts

BASE = (GOLDEN / "bookworm" / "cluster.toml").read_text()
CTX = RenderContext(b"k" * 1024, b"private\n", "ssh-ed25519 AAAA test")


def _file(text: str, node: str, path: str) -> str:
    cluster = loads(text)
    return render_node(cluster, cluster.node(node), CTX)[path].content.decode()


def test_exports_limit_to_subnet_and_squash_root() -> None:
    exports = _file(BASE, "cluster01", "/etc/exports")
    assert "/clusterfs 192.168.1.0/24(rw,sync,no_subtree_check,root_squash)" in exports
    assert "*" not in exports


def test_exports_without_root_squash_and_for_some_clients_only() -> None:
    text = BASE.replace('clients = "@workers"', 'clients = "cluster[02-03]"\nroot_squash = false')
    exports = _file(text, "cluster01", "/etc/exports")
    line = exports.splitlines()[-1]
    assert line == (
        "/clusterfs 192.168.1.129/32(rw,sync,no_subtree_check,no_root_squash) "
        "192.168.1.130/32(rw,sync,no_subtree_check,no_root_squash)"
    )
    cluster = loads(text)
    assert "/etc/systemd/system/clusterfs.mount" not in render_node(
        cluster, cluster.node("cluster04"), CTX
    )


def test_networkmanager_keyfile_is_private() -> None:
    cluster = cluster_of("bookworm")
    files = render_node(cluster, cluster.head, CTX)
    spec = files["/etc/NetworkManager/system-connections/piherd-eth0.nmconnection"]
    assert spec.mode == 0o600 and spec.owner == "root"


def test_bullseye_gets_dhcpcd_and_legacy_slurm() -> None:
    cluster = cluster_of("bullseye")
    files = render_node(cluster, cluster.node("rpi3"), CTX)
    assert "static ip_address=192.168.0.103/24" in files["/etc/dhcpcd.conf"].content.decode()
    assert "ProctrackType=proctrack/linuxproc" in files["/etc/slurm/slurm.conf"].content.decode()
    assert not any("NetworkManager" in path for path in files)


def test_munge_key_is_a_secret_owned_by_munge() -> None:
    cluster = cluster_of("sim")
    spec = render_node(cluster, cluster.head, CTX)["/etc/munge/munge.key"]
    assert (spec.owner, spec.group, spec.mode, spec.secret) == ("munge", "munge", 0o400, True)
    assert spec.content == CTX.munge_key


def test_model_hardware_overrides_reported_hardware() -> None:
    text = BASE + '\n[[nodes]]\nname = "cluster02"\ncpus = 2\nmemory_mb = 1000\n'
    cluster = loads(text)
    ctx = RenderContext(b"k" * 64, b"p", "ssh-ed25519 AAAA", hardware={"cluster02": (4, 4000)})
    conf = render_node(cluster, cluster.head, ctx)["/etc/slurm/slurm.conf"].content.decode()
    assert "NodeName=cluster02 NodeAddr=192.168.1.129 CPUs=2 RealMemory=1000 " in conf


def test_unsafe_path_is_refused() -> None:
    # Built past the loader: render must refuse it even if check did not.
    valid = loads(BASE)
    slurm = replace(valid.services.get(SlurmSettings), cgroup_mountpoint="/run/x; rm -rf /")
    cluster = replace(valid, services=valid.services.replacing(slurm))
    with pytest.raises(RenderError, match="cgroup_mountpoint"):
        render_node(cluster, cluster.node("cluster02"), CTX)


def test_desired_state_of_the_sim_head_and_worker() -> None:
    cluster = cluster_of("sim")
    head, worker = cluster.node("node01"), cluster.node("node02")
    assert node_units(cluster, head) == (
        UnitSpec("chrony.service"),
        UnitSpec("chrony-wait.service", enable=False, masked=True),
        UnitSpec("ssh.service"),
        UnitSpec("var-lib-piherd-sftp-srv-cluster.mount"),
        UnitSpec("cluster.mount"),
        UnitSpec("apt-cacher-ng.service"),
        UnitSpec("munge.service"),
        UnitSpec("piherd-cgroup-v1.service"),
        UnitSpec("slurmctld.service"),
        UnitSpec("slurmd.service"),
    )
    assert [u.name for u in node_units(cluster, worker)] == [
        "chrony.service",
        "chrony-wait.service",
        "cluster.automount",
        "cluster.mount",
        "munge.service",
        "piherd-cgroup-v1.service",
        "slurmd.service",
    ]
    assert "sshfs" in node_packages(cluster, worker)
    assert "slurmctld" not in node_packages(cluster, worker)
    assert {"slurmctld", "slurmd", "apt-cacher-ng"} <= set(node_packages(cluster, head))
    assert [d.path for d in node_directories(cluster, head)] == [
        "/srv/cluster",
        "/var/lib/piherd/sftp",  # the storage key's chroot (services/storage_sftp.py)
        "/var/lib/piherd/sftp/srv",
    ]
    assert node_directories(cluster, head)[0].owner == "piherd"
    assert node_directories(cluster, worker) == ()


def test_nfs_packages_and_netboot_head() -> None:
    cluster = cluster_of("netboot")
    assert {"nfs-kernel-server", "dnsmasq", "slurmctld"} <= set(
        node_packages(cluster, cluster.head)
    )
    assert "slurmd" not in node_packages(cluster, cluster.head)
    worker = cluster.node("rpinode05")
    assert {"nfs-common", "slurmd", "openmpi-bin", "chrony"} <= set(node_packages(cluster, worker))
    assert node_packages(cluster, worker) == tuple(sorted(node_packages(cluster, worker)))


def test_every_unit_file_needs_daemon_reload() -> None:
    cluster = cluster_of("sim")
    files = render_node(cluster, cluster.node("node02"), CTX)
    reloads = {path for path, spec in files.items() if needs_daemon_reload(spec)}
    assert reloads == {p for p in files if p.startswith("/etc/systemd/system/")}
    assert reloads


@pytest.mark.parametrize("path", ["/cluster", "/srv/my-dir/.x", "/.hidden/a b", "/home/pi/mpi"])
def test_unit_names_match_systemd_escape(path: str) -> None:
    real = subprocess.run(
        ["systemd-escape", "--path", "--suffix=mount", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert unit_name_for_path(path, "mount") == real


def test_dnsmasq_accepts_the_netboot_config(tmp_path: Path) -> None:
    cluster = cluster_of("netboot")
    conf = render_node(cluster, cluster.head, context_of("netboot", cluster))
    target = tmp_path / "piherd.conf"
    target.write_bytes(conf["/etc/dnsmasq.d/piherd.conf"].content)
    result = subprocess.run(
        ["dnsmasq", "--test", f"--conf-file={target}"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "dhcp-host=b8:27:eb:19:dc:95,rpinode15,192.168.2.15" in target.read_text()


def test_ssh_reads_known_hosts_and_client_config(tmp_path: Path) -> None:
    cluster = cluster_of("bookworm")
    keys = {
        n.name: (asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode(),)
        for n in cluster.nodes
    }
    ctx = RenderContext(b"k" * 64, b"p", "ssh-ed25519 AAAA", host_keys=keys)
    files = render_node(cluster, cluster.node("cluster02"), ctx)
    known = tmp_path / "known_hosts"
    known.write_bytes(files["/etc/ssh/ssh_known_hosts"].content)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(known)], capture_output=True)
    assert listed.returncode == 0 and listed.stdout.count(b"ED25519") == 4
    for name in ("cluster03", "cluster03.cluster.lan", "192.168.1.130"):
        found = subprocess.run(["ssh-keygen", "-F", name, "-f", str(known)], capture_output=True)
        assert found.returncode == 0, name
        assert keys["cluster03"][0].split()[1].encode() in found.stdout
    config = tmp_path / "ssh_config"
    config.write_bytes(files["/etc/ssh/ssh_config.d/piherd.conf"].content)
    parsed = subprocess.run(
        ["ssh", "-G", "-F", str(config), "cluster04.cluster.lan"], capture_output=True, text=True
    )
    assert parsed.returncode == 0, parsed.stderr
    assert "stricthostkeychecking true" in parsed.stdout
    assert host_keys_from_known_hosts(known.read_text(), cluster) == {
        name: (" ".join(lines[0].split()[:2]),) for name, lines in keys.items()
    }


def test_storage_key_entry_parses_as_authorized_keys(tmp_path: Path) -> None:
    cluster = cluster_of("sim")
    key = asyncssh.generate_private_key("ssh-ed25519")
    ctx = RenderContext(b"k" * 64, b"p", key.export_public_key().decode())
    files = render_node(cluster, cluster.head, ctx)
    entry = tmp_path / "authorized_keys"
    entry.write_bytes(files["/etc/ssh/piherd/storage_keys/piherd"].content)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(entry)], capture_output=True)
    assert listed.returncode == 0, listed.stderr
    assert b'restrict,command="internal-sftp"' in entry.read_bytes()


def test_apt_reads_the_proxy_setting(tmp_path: Path) -> None:
    cluster = cluster_of("bookworm")
    files = render_node(cluster, cluster.node("cluster03"), CTX)
    conf = tmp_path / "apt.conf"
    conf.write_bytes(files["/etc/apt/apt.conf.d/01piherd-proxy"].content)
    dump = subprocess.run(
        ["apt-config", "dump", "Acquire::http::Proxy"],
        capture_output=True,
        text=True,
        env={**os.environ, "APT_CONFIG": str(conf)},
    )
    assert dump.returncode == 0, dump.stderr
    assert 'Acquire::http::Proxy "http://192.168.1.128:3142/";' in dump.stdout


@pytest.mark.parametrize(
    ("case", "node"), [("sim", "node01"), ("sim", "node02"), ("bullseye", "rpi2")]
)
def test_systemd_accepts_the_units(tmp_path: Path, case: str, node: str) -> None:
    cluster = cluster_of(case)
    files = render_node(cluster, cluster.node(node), context_of(case, cluster))
    names = []
    for path, spec in files.items():
        parent, _, name = path.rpartition("/")
        if parent == "/etc/systemd/system":  # whole units; drop-ins need their package's unit
            (tmp_path / name).write_bytes(spec.content)
            names.append(f"./{name}")
    assert names
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    # The cgroup helper script is installed with the units, not on this machine.
    problems = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "/usr/local/lib/piherd/cgroup-v1-mount is not executable" not in line
    ]
    assert problems == [], result.stderr


def test_apt_cacher_ng_reads_the_cache_config(tmp_path: Path) -> None:
    shutil.copytree("/etc/apt-cacher-ng", tmp_path / "acng")
    cluster = cluster_of("bookworm")
    for path, spec in render_node(cluster, cluster.head, CTX).items():
        if path.startswith("/etc/apt-cacher-ng/"):
            (tmp_path / "acng" / path.rsplit("/", 1)[1]).write_bytes(spec.content)
    dump = subprocess.run(
        ["/usr/lib/apt-cacher-ng/acngtool", "cfgdump", "-c", str(tmp_path / "acng")],
        capture_output=True,
        text=True,
    )
    assert dump.returncode == 0, dump.stdout + dump.stderr
    assert "BindAddress = 127.0.0.1 192.168.1.128" in dump.stdout
    assert "Port = 3142" in dump.stdout


def test_sshd_accepts_the_storage_drop_in(tmp_path: Path) -> None:
    cluster = cluster_of("sim")
    files = render_node(cluster, cluster.head, CTX)
    config = tmp_path / "sshd_config"
    config.write_bytes(files["/etc/ssh/sshd_config.d/piherd-keys.conf"].content)
    host_key = tmp_path / "host_key"
    host_key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    host_key.chmod(0o600)
    sshd = ["/usr/sbin/sshd", "-f", str(config), "-h", str(host_key)]
    assert subprocess.run([*sshd, "-t"], capture_output=True).returncode == 0
    effective = subprocess.run(
        [*sshd, "-T", "-C", "user=piherd,host=node02,addr=10.213.0.11"],
        capture_output=True,
        text=True,
    )
    assert (
        "authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2 "
        "/etc/ssh/piherd/authorized_keys/%u"
    ) in effective.stdout


def test_a_worker_that_does_not_compute_gets_no_mpi_and_no_slurmd() -> None:
    cluster = loads(BASE + '\n[[nodes]]\nname = "cluster04"\ncompute = false\n')
    idle = cluster.node("cluster04")
    files = render_node(cluster, idle, CTX)
    assert not [p for p in files if "openmpi" in p or "hosts.mpich" in p]
    assert files["/etc/slurm/slurm.conf"].restarts == ()
    assert "NodeName=cluster04" not in files["/etc/slurm/slurm.conf"].content.decode()
    assert "slurmd" not in node_packages(cluster, idle)
    assert "slurmd.service" not in [u.name for u in node_units(cluster, idle)]
    hosts = render_node(cluster, cluster.head, CTX)["/etc/piherd/hosts.openmpi"].content
    assert b"cluster04" not in hosts
