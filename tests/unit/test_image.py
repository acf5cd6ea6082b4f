"""`piherd image` on a Raspberry Pi OS-shaped image built here: files per release, the FAT
kept clean, the root partition untouched, host keys recorded, hostile values refused."""

from __future__ import annotations

import base64
import json
import lzma
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rpi_image import (
    boot_partition,
    build_image,
    fat_read,
    fsck_clean,
    root_digest,
)

from piherd.cli.main import cli
from piherd.image import node_keys
from piherd.image.cmdline import with_first_boot
from piherd.image.firstboot import FirstBootError, HostKey, check_timezone, for_node
from piherd.image.partitions import ImageError
from piherd.services import load

ADMIN_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk3V3K0Yb7mTQ5m8m2yxX4c6GhqA8k2e6c0cZ1dYk7N admin@laptop"
)
FIRSTRUN_WORDS = [
    "systemd.run=/boot/firmware/firstrun.sh",
    "systemd.run_success_action=reboot",
    "systemd.unit=kernel-command-line.target",
]


def cluster_file(tmp: Path) -> Path:
    (tmp / "id.pub").write_text(ADMIN_KEY + "\n")
    path = tmp / "cluster.toml"
    path.write_text(
        f"""
[cluster]
name = "imgtest"
domain = "cluster.lan"
admin_user = "admin"
ssh_public_key = "{tmp / "id.pub"}"
os = "bookworm"
secrets_dir = "{tmp / "secrets"}"
known_hosts = "{tmp / "known_hosts"}"

[network]
subnet = "192.168.1.0/24"
gateway = "192.168.1.1"
dns = ["192.168.1.1"]

[naming]
prefix = "node"
width = 2
count = 4
first_address = "192.168.1.11"
head = "node01"

[[nodes]]
name = "node03"
os = "trixie"

[[nodes]]
name = "node04"
os = "bullseye"
"""
    )
    return path


def image(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["image", *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    return {
        rel: build_image(base / f"{rel}.img", rel) for rel in ("bookworm", "trixie", "bullseye")
    }


def known(tmp: Path) -> list[str]:
    return (tmp / "known_hosts").read_text().splitlines()


def test_bookworm_gets_firstrun_and_cmdline(tmp_path: Path, images: dict[str, Path]) -> None:
    source = images["bookworm"]
    before = root_digest(source)
    status, output = image(
        "-f",
        str(cluster_file(tmp_path)),
        "node[01-02]",
        "--from",
        str(source),
        "--out",
        str(tmp_path / "cards"),
        "--timezone",
        "Europe/London",
        "--json",
    )
    assert status == 0, output
    made = json.loads(output)
    assert [m["label"] for m in made] == ["node01", "node02"]
    for entry in made:
        card = Path(entry["target"])
        assert card.stat().st_mode & 0o777 == 0o600
        assert root_digest(card) == before == root_digest(source)
        fsck = fsck_clean(boot_partition(card, tmp_path / "boot.fat"))
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        cmdline = fat_read(card, "cmdline.txt")
        assert cmdline is not None and cmdline.count(b"\n") == 1 and cmdline.endswith(b"\n")
        words = cmdline.decode().split()
        assert words[-3:] == FIRSTRUN_WORDS and words[0] == "console=serial0,115200"
        script = fat_read(card, "firstrun.sh")
        assert script is not None
        assert subprocess.run(["bash", "-n"], input=script, check=False).returncode == 0
        text = script.decode()
        assert f"set_hostname {entry['label']}" in text and "set_timezone Europe/London" in text
        blobs = [base64.b64decode(b) for b in re.findall(r"^put \S+ \d+ \S+ (\S+)$", text, re.M)]
        assert (ADMIN_KEY + "\n").encode() in blobs
        assert 'put "$HOMEDIR/.ssh/authorized_keys" 0600 admin ' in text
        keyfile = next(b for b in blobs if b.startswith(b"# Managed by piherd") and b"[ipv4]" in b)
        address = "192.168.1.11" if entry["label"] == "node01" else "192.168.1.12"
        assert f"address1={address}/24,192.168.1.1".encode() in keyfile
        assert "/etc/NetworkManager/system-connections/piherd-eth0.nmconnection 0600" in text
        # The host keys in the script are the ones recorded for the node's address.
        private = next(b for b in blobs if b.startswith(b"-----BEGIN OPENSSH PRIVATE KEY"))
        lines = [ln for ln in known(tmp_path) if ln.startswith(f"{address} ")]
        assert len(lines) == 2
        import asyncssh

        public = asyncssh.import_private_key(private).export_public_key("openssh").decode()
        assert " ".join(public.split()[:2]) in [ln.split(" ", 1)[1] for ln in lines]
        assert entry["fingerprints"]["ed25519"].startswith("SHA256:")
    # Private keys never printed.
    assert "PRIVATE KEY" not in output
    keys = sorted((tmp_path / "secrets" / "host-keys" / "node01").iterdir())
    assert [k.name for k in keys] == ["ssh_host_ecdsa_key", "ssh_host_ed25519_key"]
    assert all(k.stat().st_mode & 0o777 == 0o600 for k in keys)


def test_reimaging_reuses_host_keys_and_replaces_lines(
    tmp_path: Path, images: dict[str, Path]
) -> None:
    config = str(cluster_file(tmp_path))
    (tmp_path / "known_hosts").write_text("192.168.1.11 ssh-ed25519 AAAAold\nother ssh-rsa AAAAx\n")
    args = ["-f", config, "node01", "--from", str(images["bookworm"]), "--out", str(tmp_path / "o")]
    first = image(*args, "--json")
    second = image(*args, "--json")
    assert first[0] == second[0] == 0
    assert json.loads(first[1])[0]["fingerprints"] == json.loads(second[1])[0]["fingerprints"]
    lines = known(tmp_path)
    assert "other ssh-rsa AAAAx" in lines and "192.168.1.11 ssh-ed25519 AAAAold" not in lines
    assert len([ln for ln in lines if ln.startswith("192.168.1.11 ")]) == 2


def test_trixie_from_xz_gets_cloud_init(tmp_path: Path, images: dict[str, Path]) -> None:
    packed = tmp_path / "trixie.img.xz"
    packed.write_bytes(lzma.compress(images["trixie"].read_bytes(), preset=0))
    status, output = image(
        "-f",
        str(cluster_file(tmp_path)),
        "node03",
        "--from",
        str(packed),
        "--out",
        str(tmp_path / "cards"),
        "--timezone",
        "Etc/UTC",
    )
    assert status == 0, output
    card = tmp_path / "cards" / "node03.img"
    assert sorted(p.name for p in (tmp_path / "cards").iterdir()) == ["node03.img"]
    assert root_digest(card) == root_digest(images["trixie"])
    assert fsck_clean(boot_partition(card, tmp_path / "b.fat")).returncode == 0
    user_data = fat_read(card, "user-data")
    assert user_data is not None and user_data.startswith(b"#cloud-config\n")
    config = yaml.safe_load(user_data)
    assert config["hostname"] == "node03" and config["fqdn"] == "node03.cluster.lan"
    assert config["timezone"] == "Etc/UTC"
    assert config["user"]["name"] == "admin" and config["user"]["ssh_authorized_keys"] == [
        ADMIN_KEY
    ]
    assert ["systemctl", "enable", "--now", "ssh"] in config["runcmd"]
    recorded = {ln.split(" ", 1)[1] for ln in known(tmp_path) if ln.startswith("192.168.1.13 ")}
    assert {
        config["ssh_keys"]["ed25519_public"].rsplit(" ", 1)[0],
        config["ssh_keys"]["ecdsa_public"].rsplit(" ", 1)[0],
    } == recorded
    assert config["ssh_keys"]["ed25519_private"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    network = yaml.safe_load(fat_read(card, "network-config") or b"")
    eth0 = network["network"]["ethernets"]["eth0"]
    assert eth0["addresses"] == ["192.168.1.13/24"]
    assert eth0["routes"] == [{"to": "0.0.0.0/0", "via": "192.168.1.1"}]  # cloud-init 25.1 parses
    # cloud-init's own checks: a nameservers entry needs addresses; keys mean none are made.
    assert "nameservers" not in eth0 or eth0["nameservers"]["addresses"]
    assert "ssh_genkeytypes" not in config
    meta = yaml.safe_load(fat_read(card, "meta-data") or b"")
    cmdline = (fat_read(card, "cmdline.txt") or b"").decode()
    assert cmdline.count("\n") == 1 and cmdline.split()[-1] == f"ds=nocloud;i={meta['instance-id']}"
    assert "systemd.run" not in cmdline and fat_read(card, "firstrun.sh") is None


def test_bullseye_gets_userconf_ssh_and_dhcpcd(tmp_path: Path, images: dict[str, Path]) -> None:
    status, output = image(
        "-f",
        str(cluster_file(tmp_path)),
        "node04",
        "--from",
        str(images["bullseye"]),
        "--out",
        str(tmp_path / "c"),
    )
    assert status == 0, output
    card = tmp_path / "c" / "node04.img"
    assert fat_read(card, "userconf.txt") == b"admin:*\n"
    assert fat_read(card, "ssh") == b""
    script = (fat_read(card, "firstrun.sh") or b"").decode()
    assert subprocess.run(["bash", "-n"], input=script.encode(), check=False).returncode == 0
    assert "rm -f /boot/firstrun.sh" in script
    blobs = [base64.b64decode(b) for b in re.findall(r"^put \S+ \d+ \S+ (\S+)$", script, re.M)]
    dhcpcd = next(b for b in blobs if b"interface eth0" in b)
    assert (
        b"static ip_address=192.168.1.14/24" in dhcpcd and b"static routers=192.168.1.1" in dhcpcd
    )
    assert (fat_read(card, "cmdline.txt") or b"").split()[-3] == b"systemd.run=/boot/firstrun.sh"
    assert fsck_clean(boot_partition(card, tmp_path / "b.fat")).returncode == 0


def test_boot_dir_of_a_flashed_card(tmp_path: Path) -> None:
    boot = tmp_path / "bootfs"
    boot.mkdir()
    (boot / "cmdline.txt").write_text("console=tty1 root=PARTUUID=1-02 rootwait\n")
    status, output = image(
        "-f",
        str(cluster_file(tmp_path)),
        "node02",
        "--boot-dir",
        str(boot),
        "--release",
        "bookworm",
    )
    assert status == 0, output
    assert (boot / "firstrun.sh").stat().st_mode & 0o777 == 0o600
    assert (boot / "cmdline.txt").read_text().split()[-3:] == FIRSTRUN_WORDS
    assert sorted(p.name for p in boot.iterdir()) == ["cmdline.txt", "firstrun.sh"]
    # Imaging again does not stack the words.
    assert (
        image(
            "-f",
            str(tmp_path / "cluster.toml"),
            "node02",
            "--boot-dir",
            str(boot),
            "--release",
            "bookworm",
        )[0]
        == 0
    )
    assert (boot / "cmdline.txt").read_text().count("systemd.run=") == 1


def test_generic_image_has_no_identity(tmp_path: Path, images: dict[str, Path]) -> None:
    status, output = image(
        "-f",
        str(cluster_file(tmp_path)),
        "--generic",
        "--from",
        str(images["trixie"]),
        "--out",
        str(tmp_path / "g"),
    )
    assert status == 0, output
    card = tmp_path / "g" / "generic.img"
    config = yaml.safe_load(fat_read(card, "user-data") or b"")
    assert "hostname" not in config and fat_read(card, "network-config") is None
    assert config["user"]["ssh_authorized_keys"] == [ADMIN_KEY]
    assert [ln.split()[0] for ln in known(tmp_path)] == ["piherd-firstboot.imgtest"] * 2


def test_release_mismatch_is_refused(tmp_path: Path, images: dict[str, Path]) -> None:
    status, output = image(
        "-f",
        str(cluster_file(tmp_path)),
        "node01",
        "--from",
        str(images["trixie"]),
        "--out",
        str(tmp_path / "x"),
    )
    assert status == 1 and "os = 'bookworm'" in output and "holds trixie" in output
    assert not (tmp_path / "x" / "node01.img").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["node01", "--timezone", "../../etc/passwd"], "time zone"),
        (["node01", "--timezone", "Europe/Nowhere"], "unknown time zone"),
        (["node09"], "node09"),
        ([], "NODESET, or --generic"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, images: dict[str, Path], args: list[str], message: str
) -> None:
    status, output = image(
        "-f",
        str(cluster_file(tmp_path)),
        *args,
        "--from",
        str(images["bookworm"]),
        "--out",
        str(tmp_path / "x"),
    )
    assert status == 2 and message in output and "Traceback" not in output


def test_admin_key_with_a_newline_is_refused(tmp_path: Path, images: dict[str, Path]) -> None:
    config = cluster_file(tmp_path)
    (tmp_path / "id.pub").write_text(ADMIN_KEY + "\nssh-ed25519 AAAAsecond evil\n")
    status, output = image(
        "-f", str(config), "node01", "--from", str(images["bookworm"]), "--out", str(tmp_path / "x")
    )
    assert status == 2 and "not a single OpenSSH public key" in output


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "node01\nevil"),
        ("name", "node01; rm -rf /"),
        ("user", "root\nx"),
        ("user", "$(reboot)"),
        ("key", ADMIN_KEY + "\nssh-rsa AAAA injected"),
        ("key", "ssh-ed25519 AAAA' ; reboot ; '"),
        ("timezone", "Europe/London\n"),
    ],
)
def test_hostile_values_never_reach_a_file(tmp_path: Path, field: str, value: str) -> None:
    cluster = load(cluster_file(tmp_path))
    node = cluster.node("node01")
    key, zone = ADMIN_KEY, "Etc/UTC"
    if field == "name":
        node = replace(node, name=value)
    elif field == "user":
        cluster = replace(cluster, admin_user=value)
    elif field == "key":
        key = value
    else:
        zone = value
    host = node_keys.host_keys(tmp_path / "s", "k", "c")
    with pytest.raises(FirstBootError):
        for_node(cluster, node, key, zone, host, "piherd-x-1")


def test_forged_host_key_is_refused(tmp_path: Path) -> None:
    cluster = load(cluster_file(tmp_path))
    bad = HostKey("ed25519", b"-----BEGIN OPENSSH PRIVATE KEY-----\nx\n'; reboot\n", ADMIN_KEY)
    with pytest.raises(FirstBootError):
        for_node(cluster, cluster.node("node01"), ADMIN_KEY, "Etc/UTC", (bad,), "piherd-x-1")


def test_cmdline_must_stay_one_line() -> None:
    with pytest.raises(ImageError, match="single line"):
        with_first_boot(b"console=tty1\nrootwait\n", ["x=1"])
    with pytest.raises(ImageError, match="kernel argument"):
        with_first_boot(b"console=tty1\n", ["a b"])
    assert with_first_boot(b"a=1 systemd.run=/x b=2\n", ["c"]) == b"a=1 c\n"
    assert check_timezone("America/Argentina/Buenos_Aires") == "America/Argentina/Buenos_Aires"


def test_not_an_image_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 4096)
    status, output = image(
        "-f",
        str(cluster_file(tmp_path)),
        "node01",
        "--from",
        str(junk),
        "--out",
        str(tmp_path / "x"),
    )
    assert status == 1 and "partition table" in output


def test_tools_are_installed() -> None:
    for tool in ("mcopy", "sfdisk", "debugfs", "fsck.fat", "mkfs.fat", "mkfs.ext4", "lsblk"):
        assert shutil.which(tool), f"{tool} missing: see scripts/apt-packages.txt"


def test_device_must_be_a_block_device(tmp_path: Path, images: dict[str, Path]) -> None:
    plain = tmp_path / "not-a-card"
    plain.write_bytes(b"")
    status, output = image(
        "-f", str(cluster_file(tmp_path)), "node01", "--from", str(images["bookworm"]),
        "--device", str(plain), "--yes",
    )  # fmt: skip
    assert status == 1 and "not a block device" in output and plain.read_bytes() == b""


def test_device_and_boot_dir_take_one_node(tmp_path: Path, images: dict[str, Path]) -> None:
    status, output = image(
        "-f", str(cluster_file(tmp_path)), "node[01-02]", "--boot-dir", str(tmp_path),
        "--release", "bookworm",
    )  # fmt: skip
    assert status == 2 and "one card" in output


@pytest.mark.parametrize("user", ["pi", "admin"])
def test_firstrun_keeps_the_admins_sudo_rule(tmp_path: Path, user: str) -> None:
    """Run the script's user part in a scratch tree: the admin's NOPASSWD rule survives,
    also when the admin is the image's own `pi` (whose rule the script used to delete)."""
    from piherd.image import firstrun

    cluster = load(cluster_file(tmp_path))
    host = node_keys.host_keys(tmp_path / "s", "k", "c")
    fb = for_node(cluster, cluster.node("node01"), ADMIN_KEY, "Etc/UTC", host, "piherd-x-1")
    lines = firstrun._user(replace(fb, user=user))
    sudo_lines = [ln for ln in lines if "sudoers.d" in ln]
    root = tmp_path / "root"
    (root / "etc/sudoers.d").mkdir(parents=True)
    (root / "etc/sudoers.d/010_pi-nopasswd").write_text("pi ALL=(ALL) NOPASSWD: ALL\n")
    script = "\n".join(
        [firstrun._HEAD.format(label="x", cluster="c").replace("chown", ": chown"), *sudo_lines]
    ).replace("/etc/sudoers.d", f"{root}/etc/sudoers.d")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    rule = (root / f"etc/sudoers.d/010_{user}-nopasswd").read_text()
    assert rule == f"{user} ALL=(ALL) NOPASSWD:ALL\n"
    assert (root / "etc/sudoers.d/010_pi-nopasswd").exists() == (user == "pi")
