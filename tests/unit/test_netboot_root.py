"""`piherd netboot build`: its plan from cluster.toml, and its shell steps run for real on
trees in a temporary directory (the same programs the head runs)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from click.testing import CliRunner
from test_render_support import cluster_of

from piherd.app.netboot_root import (
    MASKED_ALWAYS,
    NEW,
    RECOVER,
    STAGE_BOOT,
    SWAP,
    boot_sources,
    copy_argv,
    plan_build,
)
from piherd.cli.main import cli
from piherd.image.netboot_files import missing_files


def _sh(program: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = ["sh", "-c", program, "piherd-netboot", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_the_plan_leaves_the_heads_data_and_services_out() -> None:
    cluster = cluster_of("netboot")
    plan = plan_build(cluster)
    assert plan.root == "/data/slaves/root" and plan.tftp_root == "/data/slaves/tftp"
    for pattern in ("/srv/*", "/data/slaves/root", "/data/slaves/root" + NEW, "/data/slaves/tftp",
                    "/etc/ssh/ssh_host_*"):  # fmt: skip
        assert pattern in plan.excluded
    # The head's own daemons are masked in the copy, the workers' are not.
    assert {"slurmctld.service", "dnsmasq.service", "nfs-server.service"} <= set(plan.masked)
    assert "slurmd.service" not in plan.masked and "munge.service" not in plan.masked
    assert set(MASKED_ALWAYS) <= set(plan.masked)
    assert len(plan.boot_dirs) == 14
    assert {model for _, model, _ in plan.boot_dirs} == {"pi4", "pi5"}
    argv = copy_argv(plan)
    assert argv[:3] == ["rsync", "-aHAXx", "--numeric-ids"]
    assert argv[-2:] == ["/", "/data/slaves/root.piherd-new/"]


def test_a_pi_gets_its_boot_partition_and_ipxe_the_kernel_and_initramfs() -> None:
    assert boot_sources("pi4") == ("boot/firmware", ["."])
    assert boot_sources("pi5") == ("boot/firmware", ["."])
    assert boot_sources("ipxe") == (".", ["vmlinuz", "initrd.img"])


def test_boot_files_are_hard_links_beside_piherds_own_file(tmp_path: Path) -> None:
    root = tmp_path / "root.piherd-new"
    (root / "boot").mkdir(parents=True)
    (root / "boot/vmlinuz-6.1").write_bytes(b"kernel")
    (root / "boot/initrd.img-6.1").write_bytes(b"initrd")
    (root / "vmlinuz").symlink_to("boot/vmlinuz-6.1")
    (root / "initrd.img").symlink_to("boot/initrd.img-6.1")
    stage = tmp_path / "tftp/5e000001.piherd-new"
    done = _sh(STAGE_BOOT, root, stage, "boot.ipxe", "vmlinuz", "initrd.img")
    assert done.returncode == 0, done.stderr
    assert (stage / "vmlinuz").read_bytes() == b"kernel"
    assert not (stage / "vmlinuz").is_symlink()  # TFTP serves the file itself
    assert os.stat(stage / "vmlinuz").st_ino == os.stat(root / "boot/vmlinuz-6.1").st_ino
    # A Pi: its whole boot partition, never the image's cmdline.txt.
    firmware = root / "boot/firmware"
    (firmware / "overlays").mkdir(parents=True)
    for name in ("start4.elf", "config.txt", "cmdline.txt", "overlays/overlay_map.dtb"):
        (firmware / name).write_text(name)
    pi = tmp_path / "tftp/abcdef02.piherd-new"
    assert _sh(STAGE_BOOT, firmware, pi, "cmdline.txt", ".").returncode == 0
    assert sorted(str(p.relative_to(pi)) for p in pi.rglob("*")) == [
        "config.txt", "overlays", "overlays/overlay_map.dtb", "start4.elf",
    ]  # fmt: skip


def test_a_root_without_the_models_files_is_refused_by_name(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    done = _sh(STAGE_BOOT, root, tmp_path / "stage", "boot.ipxe", "vmlinuz")
    assert done.returncode == 3
    assert "the root has no vmlinuz" in done.stderr


def test_the_swap_puts_whole_trees_in_place_and_recovers_from_a_cut(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/old").write_text("old")
    new = tmp_path / ("root" + NEW)
    (new / "etc").mkdir(parents=True)
    (new / "etc/new").write_text("new")
    boot = tmp_path / "tftp/5e000001"
    boot.mkdir(parents=True)
    (tmp_path / "tftp/5e000001.piherd-new").mkdir()
    assert _sh(SWAP, root, boot).returncode == 0
    assert (root / "etc/new").exists() and not (root / "etc/old").exists()
    assert not new.exists()
    # The old root stays for the nodes still running on it; an old boot directory goes.
    assert (tmp_path / "root.piherd-old/etc/old").exists()
    assert boot.is_dir() and not (tmp_path / "tftp/5e000001.piherd-old").exists()
    # The next build drops it.
    assert _sh(RECOVER, root).returncode == 0
    assert not (tmp_path / "root.piherd-old").exists() and (root / "etc/new").exists()
    # A power cut between the swap's two renames: the root is aside, no root in place.
    root.rename(tmp_path / "root.piherd-old")
    assert _sh(RECOVER, root).returncode == 0
    assert (root / "etc/new").exists()  # the old root is back, serving
    assert (tmp_path / ("root" + NEW)).is_dir()  # and a fresh, empty tree to build in
    assert not any((tmp_path / ("root" + NEW)).iterdir())


def test_build_refuses_a_cluster_without_netboot(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nname = "c"\n[network]\nsubnet = "10.0.0.0/24"\n'
                    '[naming]\ncount = 2\nfirst_address = "10.0.0.10"\n')  # fmt: skip
    result = CliRunner().invoke(cli, ["netboot", "build", "-f", str(path)])
    assert result.exit_code == 2
    assert "[services.netboot] is not enabled" in result.output


def test_reset_refuses_nodes_that_boot_from_a_card(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('[cluster]\nname = "c"\n[network]\nsubnet = "10.0.0.0/24"\n'
                    '[naming]\ncount = 3\nfirst_address = "10.0.0.10"\n')  # fmt: skip
    result = CliRunner().invoke(cli, ["reset", "-f", str(path), "@workers"])
    assert result.exit_code == 2
    assert "boot(s) from a card" in result.output


def test_an_ipxe_directory_needs_the_kernel_and_initramfs_beside_its_script() -> None:
    assert missing_files("ipxe", ["vmlinuz", "initrd.img"]) == []  # boot.ipxe is piherd's
    assert missing_files("ipxe", ["vmlinuz"]) == ["initrd.img"]


def test_upgrade_sends_netbooted_nodes_to_build_and_reset(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        '[cluster]\nname = "c"\n[network]\nsubnet = "10.0.0.0/24"\n'
        '[naming]\ncount = 3\nfirst_address = "10.0.0.10"\n'
        '[[nodes]]\nname = "node02"\nserial = "abcdef02"\n'
        '[[nodes]]\nname = "node03"\nserial = "abcdef03"\n'
        "[services.netboot]\nenabled = true\n"
    )
    result = CliRunner().invoke(cli, ["upgrade", "-f", str(path), "@workers"])
    assert result.exit_code == 2
    assert "node[02-03] boot(s) from the head's shared root" in result.output
    assert "piherd netboot build" in result.output
