"""The sshfs storage key is confined by sshd itself: its port, a chroot, SFTP only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncssh
import pytest
from test_render_support import cluster_of

from piherd.model.problems import ConfigError
from piherd.model.specs import RenderContext
from piherd.render import render_node
from piherd.services import loads

KEY = asyncssh.generate_private_key("ssh-ed25519")
CTX = RenderContext(b"k" * 64, b"p", KEY.export_public_key().decode())
DROPINS = ("piherd-keys.conf", "piherd-storage.conf")


def effective(tmp_path: Path, port: int) -> dict[str, str]:
    """`sshd -T` for the admin from a worker on `port`, with the head's drop-ins included
    the way Debian's sshd_config does (at the top, global settings after them)."""
    cluster = cluster_of("sim")
    files = render_node(cluster, cluster.head, CTX)
    for name in DROPINS:
        (tmp_path / name).write_bytes(files[f"/etc/ssh/sshd_config.d/{name}"].content)
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Include {tmp_path}/*.conf\nUsePAM yes\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    host_key = tmp_path / "host_key"
    host_key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    host_key.chmod(0o600)
    sshd = ["/usr/sbin/sshd", "-f", str(config), "-h", str(host_key)]
    checked = subprocess.run([*sshd, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    spec = f"user=piherd,host=node02,addr=10.213.0.11,laddr=10.213.0.10,lport={port}"
    shown = subprocess.run([*sshd, "-T", "-C", spec], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    values: dict[str, str] = {}
    for line in shown.stdout.splitlines():
        key, _, value = line.partition(" ")
        values[key] = f"{values[key]} {value}" if key in values else value
    return values


def test_on_the_storage_port_sessions_are_chrooted_sftp(tmp_path: Path) -> None:
    seen = effective(tmp_path, 2222)
    assert seen["port"] == "22 2222"
    assert seen["chrootdirectory"] == "/var/lib/piherd/sftp"
    assert seen["forcecommand"] == "internal-sftp -d /srv/cluster"
    assert seen["authorizedkeysfile"] == "/etc/ssh/piherd/storage_keys/%u"
    assert seen["authenticationmethods"] == "publickey"
    assert seen["allowtcpforwarding"] == "no" and seen["permittty"] == "no"


def test_on_the_normal_port_nothing_changes_and_the_key_is_absent(tmp_path: Path) -> None:
    seen = effective(tmp_path, 22)
    assert seen["chrootdirectory"] == "none" and seen.get("forcecommand", "none") == "none"
    assert "storage_keys" not in seen["authorizedkeysfile"]
    cluster = cluster_of("sim")
    files = render_node(cluster, cluster.head, CTX)
    key = " ".join(CTX.storage_public_key.split()[:2])
    admin_keys = [p for p in files if p.startswith("/etc/ssh/piherd/authorized_keys/")]
    assert all(key.encode() not in files[p].content for p in admin_keys)
    assert key.encode() in files["/etc/ssh/piherd/storage_keys/piherd"].content


def test_the_chroot_is_root_owned_and_clients_keep_their_path() -> None:
    cluster = cluster_of("sim")
    head = render_node(cluster, cluster.head, CTX)
    bind = head["/etc/systemd/system/var-lib-piherd-sftp-srv-cluster.mount"].content.decode()
    assert "What=/srv/cluster\nWhere=/var/lib/piherd/sftp/srv/cluster\n" in bind
    mount = render_node(cluster, cluster.node("node02"), CTX)
    options = mount["/etc/systemd/system/cluster.mount"].content.decode()
    assert "What=piherd@10.213.0.10:/srv/cluster\n" in options
    assert ",Port=2222" in options and ",HostKeyAlias=10.213.0.10," in options


BASE = """
[cluster]
name = "p"
{extra}
[network]
subnet = "10.9.0.0/24"
[naming]
prefix = "n"
count = 2
first_address = "10.9.0.10"
[services.storage]
kind = "sshfs"
sftp_port = {port}
"""


@pytest.mark.parametrize(("extra", "port"), [("", 22), ("ssh_port = 2200", 2200), ("", 0)])
def test_the_storage_port_must_be_a_free_port(extra: str, port: int) -> None:
    with pytest.raises(ConfigError, match=r"services\.storage\.sftp_port"):
        loads(BASE.format(extra=extra, port=port))
