"""`piherd image --device` against real block devices (loop devices made here, root needed),
and the host keys made at image time checked by a real sshd on first contact."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.app.first_identity import IdentityError, give_host_keys, has_generic_cards
from piherd.cli.main import cli
from piherd.image import node_keys
from piherd.image.device import check_target, system_disks
from piherd.image.partitions import ImageError
from piherd.transport.base import TransportError
from piherd.transport.loopback import LoopbackSshd
from piherd.transport.ssh import SshTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from rpi_image import BOOT_OFFSET, build_image, fat_read, root_digest
from test_image import cluster_file

from piherd.services import load

pytestmark = pytest.mark.root


def _root() -> None:
    assert os.geteuid() == 0, "these tests need root (loop devices, sshd): run them as root"


@contextlib.contextmanager
def loop_device(backing: Path) -> Iterator[Path]:
    """A loop device over `backing`, detached by name at the end."""
    _root()
    argv = ["losetup", "--find", "--show", str(backing)]
    name = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
    device = Path(name.strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", str(device)], check=False, timeout=30)
        backing_file = Path("/sys/block") / device.name / "loop" / "backing_file"
        assert not backing_file.exists(), f"{device} still attached"


def test_the_system_disk_is_refused() -> None:
    _root()
    source = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", "--target", "/"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split("[")[0].strip()  # fmt: skip
    assert source.startswith("/dev/"), f"/ is not on a block device here: {source}"
    disks = system_disks()
    assert os.path.realpath(source) in disks
    for disk in disks:
        with pytest.raises(ImageError, match="running system"):
            check_target(Path(disk), force=True)


# Mounts and checks in a private mount namespace: a mount made in the shared one is
# copied into namespaces others create meanwhile (e.g. sim nodes) and outlives its umount.
_MOUNTED_CHECK = """
set -e
mount -o ro "$1" "$2"
shift 2
exec "$@"
"""


def test_a_mounted_loop_device_is_refused(tmp_path: Path) -> None:
    # This kernel has no vfat module and no loop partition scan: an ext4 file system on
    # the whole loop device stands for a card whose partition is mounted.
    backing = tmp_path / "card.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", str(backing), "8M"], check=True, timeout=60)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    source = build_image(tmp_path / "b.img", "bookworm")
    piherd = [sys.executable, "-c", "from piherd.cli.main import main; main()"]
    with loop_device(backing) as device:
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _MOUNTED_CHECK,
             "sh", str(device), str(mountpoint), *piherd, "image", "-f",
             str(cluster_file(tmp_path)), "node02", "--from", str(source), "--device",
             str(device), "--force", "--yes"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert f"{device} is mounted at {mountpoint}" in result.stderr
        assert fat_read(backing, "firstrun.sh") is None
    assert not os.path.ismount(mountpoint)


def test_writes_and_verifies_an_unmounted_loop_device(tmp_path: Path) -> None:
    source = build_image(tmp_path / "bookworm.img", "bookworm")
    backing = tmp_path / "card"
    with open(backing, "wb") as card:
        card.truncate(source.stat().st_size + (8 << 20))
    config = str(cluster_file(tmp_path))
    with loop_device(backing) as device:
        refused = CliRunner().invoke(
            cli,
            [
                "image",
                "-f",
                config,
                "node02",
                "--from",
                str(source),
                "--device",
                str(device),
                "--yes",
            ],
        )
        assert refused.exit_code == 1 and "not a removable disk" in refused.output
        assert fat_read(backing, "firstrun.sh") is None
        made = CliRunner().invoke(
            cli,
            ["image", "-f", config, "node02", "--from", str(source), "--device", str(device),
             "--force", "--yes"],
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        assert f"node02: bookworm -> {device}" in made.output
        script = fat_read(device, "firstrun.sh", BOOT_OFFSET)
        assert script is not None and b"set_hostname node02" in script
        assert root_digest(backing) == root_digest(source)
    assert not list(tmp_path.glob(".piherd-image-*"))


def _connect(sshd: LoopbackSshd, known_hosts: Path) -> None:
    async def main() -> None:
        transport = SshTransport(
            "node01", "127.0.0.1", port=sshd.port, username="root", known_hosts=known_hosts,
            ssh_config=None, client_keys=[sshd.client_key], connect_timeout=5.0,
        )  # fmt: skip
        await transport.connect()
        try:
            assert (await transport.run(["true"], timeout=10)).ok
        finally:
            await transport.close()

    asyncio.run(main())


def test_first_contact_is_verified_against_the_imaged_host_key(tmp_path: Path) -> None:
    _root()
    keys = node_keys.host_keys(tmp_path / "secrets", "node01", "root@node01")
    known_hosts = tmp_path / "known_hosts"
    # A node whose sshd got its keys from the image: accepted, nothing new recorded.
    workdir = tmp_path / "imaged"
    workdir.mkdir()
    (workdir / "host_ed25519").write_bytes(keys[0].private)
    os.chmod(workdir / "host_ed25519", 0o600)
    (workdir / "host_ed25519.pub").write_text(keys[0].public + "\n")
    with LoopbackSshd(workdir) as sshd:
        node_keys.record(known_hosts, ["127.0.0.1"], sshd.port, keys)
        recorded = known_hosts.read_text()
        _connect(sshd, known_hosts)
        assert known_hosts.read_text() == recorded
    # A machine answering at that address with another host key: refused on first contact.
    other = tmp_path / "other"
    with LoopbackSshd(other) as sshd:
        node_keys.record(known_hosts, ["127.0.0.1"], sshd.port, keys)
        with pytest.raises(TransportError, match="host key changed"):
            _connect(sshd, known_hosts)


def test_a_pi_without_the_first_boot_key_gets_no_identity(tmp_path: Path) -> None:
    """discover --assign's check: a machine that does not present the cluster's first-boot
    key (another card, another machine) is refused before anything is written to it."""
    _root()
    cluster = load(cluster_file(tmp_path))
    node_keys.host_keys(tmp_path / "secrets", "generic", "piherd-firstboot@imgtest")
    assert has_generic_cards(cluster)
    # The loopback sshd has its own host key, not the first-boot one.
    with LoopbackSshd(tmp_path / "sshd") as sshd, pytest.raises(IdentityError, match="changed"):
        asyncio.run(give_host_keys(cluster, "node02", "127.0.0.1", port=sshd.port))
    assert (
        not (tmp_path / "known_hosts").exists()
        or "127.0.0.1" not in (tmp_path / "known_hosts").read_text()
    )
