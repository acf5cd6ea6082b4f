"""services.netboot: the boot server's files, checked against dnsmasq and Raspberry Pi's lists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_render_support import cluster_of, context_of

from piherd.image.netboot_files import BOOT_TREES, missing_files, tftp_directory
from piherd.model import ConfigError
from piherd.render import render_node
from piherd.render.manifest import node_directories, node_packages
from piherd.services import loads
from piherd.services.netboot import EXPORTS, OVERLAY_INIT, export_fsid, kernel_command_line

CLUSTER = """[cluster]
name = "nb"
[network]
subnet = "10.9.0.0/24"
gateway = "10.9.0.254"
[naming]
prefix = "pi"
width = 1
count = 4
first_address = "10.9.0.1"
[[nodes]]
name = "pi2"
serial = "10000000abcdef02"
[[nodes]]
name = "pi3"
serial = "ABCDEF03"
[[nodes]]
name = "pi4"
serial = "abcdef04"
"""


def _problems(extra: str, base: str = CLUSTER) -> str:
    with pytest.raises(ConfigError) as caught:
        loads(base + extra)
    return caught.value.render()


def _head_files(text: str) -> dict[str, bytes]:
    cluster = loads(text)
    ctx = context_of("netboot", cluster)
    return {p: s.content for p, s in render_node(cluster, cluster.head, ctx).items()}


# Raspberry Pi's documentation (docs/netboot.md cites each): the Pi 4's bootloader asks
# for the firmware in <serial>/, which then reads config.txt, the device tree, its
# overlays, cmdline.txt, the 64-bit kernel and its initramfs; the Pi 5 has its firmware
# in the EEPROM and the 2712 kernel.
PI4_TREE = (
    "start4.elf",
    "fixup4.dat",
    "config.txt",
    "bcm2711-rpi-4-b.dtb",
    "overlays/overlay_map.dtb",
    "cmdline.txt",
    "kernel8.img",
    "initramfs8",
)
PI5_TREE = (
    "config.txt",
    "bcm2712-rpi-5-b.dtb",
    "overlays/overlay_map.dtb",
    "cmdline.txt",
    "kernel_2712.img",
    "initramfs_2712",
)


def test_the_pi4_and_pi5_trees_are_raspberry_pis_lists() -> None:
    assert BOOT_TREES["pi4"].required == PI4_TREE
    assert BOOT_TREES["pi5"].required == PI5_TREE
    assert not any(name.startswith("start") for name in BOOT_TREES["pi5"].required)


def test_a_boot_partition_is_checked_for_every_file_but_cmdline() -> None:
    assert missing_files("pi4", PI4_TREE) == []
    assert missing_files("pi5", [n for n in PI5_TREE if n != "cmdline.txt"]) == []
    assert missing_files("pi4", ["start4.elf", "config.txt"]) == [
        "fixup4.dat",
        "bcm2711-rpi-4-b.dtb",
        "overlays/overlay_map.dtb",
        "kernel8.img",
        "initramfs8",
    ]


@pytest.mark.parametrize(
    ("serial", "directory"),
    [("10000000abcdef02", "abcdef02"), ("ABCDEF03", "abcdef03"), ("0000beef", "0000beef")],
)
def test_the_tftp_directory_is_the_serials_last_eight_digits(serial: str, directory: str) -> None:
    assert tftp_directory(serial) == directory


def test_golden_netboot_head_serves_every_worker_by_serial() -> None:
    cluster = cluster_of("netboot")
    files = render_node(cluster, cluster.head, context_of("netboot", cluster))
    cmdlines = sorted(p for p in files if p.endswith("/cmdline.txt"))
    assert len(cmdlines) == 14  # rpinode02..15
    for worker in cluster.workers:
        assert worker.serial is not None
        path = f"/data/slaves/tftp/{tftp_directory(worker.serial)}/cmdline.txt"
        line = files[path].content.decode()
        assert line.count("\n") == 1 and line.endswith("\n")
        assert f"ip={worker.address}::192.168.2.254:255.255.255.0:{worker.name}:eth0:off" in line
    assert "/data/slaves/root 192.168.2.0/24(ro," in files[EXPORTS].content.decode()
    assert files[f"/data/slaves/root{OVERLAY_INIT}"].mode == 0o755
    dirs = [d.path for d in node_directories(cluster, cluster.head)]
    assert "/data/slaves/tftp" in dirs and "/data/slaves/root" in dirs
    assert {"dnsmasq", "nfs-kernel-server"} <= set(node_packages(cluster, cluster.head))
    # The workers themselves get nothing of it: their root is the head's.
    assert not any(
        "tftp" in p
        for p in render_node(cluster, cluster.workers[0], context_of("netboot", cluster))
    )


def test_pi5_nodes_are_the_models_table_s() -> None:
    cluster = cluster_of("netboot")
    from piherd.services.netboot import settings_of

    models = settings_of(cluster).node_models
    assert [n for n, m in models.items() if m == "pi5"] == ["rpinode13", "rpinode14", "rpinode15"]
    assert models["rpinode02"] == "pi4" and "rpinode01" not in models


def _dnsmasq_test(tmp_path: Path, files: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    args = ["dnsmasq", "--test"]
    for path, content in files.items():
        if path.startswith("/etc/dnsmasq.d/"):
            target = tmp_path / Path(path).name
            target.write_bytes(content)
            args.append(f"--conf-file={target}")
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def test_dnsmasq_accepts_the_full_dhcp_boot_server(tmp_path: Path) -> None:
    cluster = cluster_of("netboot")
    files = render_node(cluster, cluster.head, context_of("netboot", cluster))
    contents = {p: s.content for p, s in files.items()}
    result = _dnsmasq_test(tmp_path, contents)
    assert result.returncode == 0, result.stderr
    netboot = contents["/etc/dnsmasq.d/piherd-netboot.conf"].decode()
    assert 'pxe-service=0,"Raspberry Pi Boot"' in netboot
    assert "proxy" not in netboot  # the head's own DHCP makes the offer


def test_dnsmasq_accepts_the_proxy_beside_a_home_router(tmp_path: Path) -> None:
    files = _head_files(CLUSTER + "[services.netboot]\nenabled = true\n")
    conf = files["/etc/dnsmasq.d/piherd-netboot.conf"].decode()
    assert "dhcp-range=10.9.0.255,proxy" in conf.splitlines()
    assert "port=0" in conf.splitlines()  # DNS stays with the router
    result = _dnsmasq_test(tmp_path, files)
    assert result.returncode == 0, result.stderr
    # Only some nodes netboot: the root is exported to those nodes, not the subnet.
    files = _head_files(CLUSTER + '[services.netboot]\nenabled = true\nnodes = "pi[2-3]"\n')
    exports = files[EXPORTS].decode().splitlines()[-1]
    fsid = export_fsid("/srv/netboot/root")
    assert exports.split(" ", 1)[1].split() == [
        f"10.9.0.2/32(ro,no_root_squash,no_subtree_check,async,fsid={fsid})",
        f"10.9.0.3/32(ro,no_root_squash,no_subtree_check,async,fsid={fsid})",
    ]
    # Stable, never NFSv4's pseudo root (0), different for another root.
    assert fsid == export_fsid("/srv/netboot/root") and fsid > 0
    assert export_fsid("/srv/other") != fsid


def test_the_command_line_names_the_root_and_the_layer() -> None:
    cluster = loads(CLUSTER + '[services.netboot]\nenabled = true\nroot = "/srv//nb/./root/"\n')
    words = kernel_command_line(cluster, cluster.node("pi3")).split()
    assert "root=/dev/nfs" in words and "ro" in words
    assert "nfsroot=10.9.0.1:/srv/nb/root,vers=3,tcp,nolock" in words
    assert f"init={OVERLAY_INIT}" in words


def test_a_netbooted_node_without_a_serial_is_refused() -> None:
    text = CLUSTER.replace('serial = "abcdef04"\n', "")
    out = _problems("[services.netboot]\nenabled = true\n", text)
    assert "services.netboot.nodes" in out and "pi4 boots from the network but has no serial" in out


def test_two_nodes_with_one_serial_directory_are_refused() -> None:
    text = CLUSTER.replace('serial = "ABCDEF03"', 'serial = "00000000abcdef04"')
    out = _problems("[services.netboot]\nenabled = true\n", text)
    assert "share the serial directory abcdef04" in out


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('nodes = "@all"', "pi1 is the head"),
        ('nodes = "pi[7-9]"', "services.netboot.nodes"),
        ('dhcp = "full"', '"full" needs the head to serve DHCP'),
        ('dhcp = "both"', "is not a DHCP mode"),
        ('models = { pi3 = "pi2" }', "unknown model 'pi3'"),
        ('models = { pi5 = "nope[1-2]" }', "services.netboot.models.pi5"),
        ('nodes = "pi[2-3]"\nmodels = { pi5 = "pi[3-4]" }', "pi4: not in services.netboot.nodes"),
        ('tftp_root = "/etc"', "services.netboot.tftp_root"),
        ('root = "srv/root"', "services.netboot.root"),
        ('tftp_root = "/srv/tftp\\n"', "services.netboot.tftp_root"),
        ("serve = true", "unknown key 'serve'"),
    ],
)
def test_bad_settings_are_refused_by_field(table: str, expected: str) -> None:
    out = _problems(f"[services.netboot]\nenabled = true\n{table}\n")
    assert expected in out


def test_dnsmasq_tftp_and_a_proxy_beside_the_heads_dhcp_are_refused() -> None:
    dnsmasq = '[services.dnsmasq]\nenabled = true\ndhcp_range = "10.9.0.100-10.9.0.200"\n'
    out = _problems(dnsmasq + "tftp = true\n[services.netboot]\nenabled = true\n")
    assert "services.dnsmasq.tftp" in out and "netboot serves TFTP itself" in out
    out = _problems(dnsmasq + '[services.netboot]\nenabled = true\ndhcp = "proxy"\n')
    assert "a proxy beside it is not needed" in out
