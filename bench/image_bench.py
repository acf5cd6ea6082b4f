"""Benchmark `piherd image` per node (--out and --boot-dir); write docs/benchmarks.md's section.

    python bench/image_bench.py --nodes 8 --root-mib 2048 --filler-mib 1200
    add --write-docs to record the rows in docs/benchmarks.md

The source is a Raspberry Pi OS-shaped bookworm image built here (tests/unit/rpi_image.py):
MBR, 40 MiB FAT32 boot partition, an ext4 root of --root-mib holding --filler-mib of
random data (a Raspberry Pi OS Lite root holds about 1.2 GiB). Host keys are made for each
node on its first imaging (the first row) and reused after (the second run of the same nodes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_table import update_table_section  # noqa: E402
from rpi_image import build_image  # noqa: E402

from piherd.app.imaging import ImageRequest, image_cards  # noqa: E402
from piherd.services import load  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## piherd image"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk3V3K0Yb7mTQ5m8m2yxX4c6GhqA8k2e6c0cZ1dYk7N bench"


def cluster_toml(work: Path, nodes: int) -> Path:
    (work / "id.pub").write_text(KEY + "\n")
    path = work / "cluster.toml"
    path.write_text(
        f'[cluster]\nname = "imgbench"\ndomain = "lan"\nadmin_user = "pi"\n'
        f'ssh_public_key = "{work / "id.pub"}"\nos = "bookworm"\n'
        f'secrets_dir = "{work / "secrets"}"\nknown_hosts = "{work / "known_hosts"}"\n'
        '[network]\nsubnet = "10.9.0.0/16"\ngateway = "10.9.0.1"\ndns = ["10.9.0.1"]\n'
        f'[naming]\nprefix = "node"\nwidth = 3\ncount = {nodes}\n'
        'first_address = "10.9.1.1"\nhead = "node001"\n'
    )
    return path


def timed(cluster_file: Path, request: ImageRequest) -> float:
    start = time.perf_counter()
    image_cards(load(cluster_file), request)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--root-mib", type=int, default=2048)
    parser.add_argument("--filler-mib", type=int, default=1200)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    rows = []
    load_avg = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="piherd-image-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        source = build_image(work / "raspios.img", "bookworm", args.root_mib, args.filler_mib)
        config = cluster_toml(work, args.nodes)
        names = tuple(f"node{i:03d}" for i in range(1, args.nodes + 1))
        size = f"{source.stat().st_size >> 20} MiB image, {args.filler_mib} MiB data"
        for run in ("new host keys", "host keys reused"):
            out = work / f"out-{run[:3]}"
            took = timed(config, ImageRequest(source, names, "Etc/UTC", out=out))
            rows.append(f"| --out, {run} ({size}) | {took / args.nodes:.2f} | {args.nodes} |")
            for card in out.iterdir():
                card.unlink()
        boot = work / "bootfs"
        boot.mkdir()
        (boot / "cmdline.txt").write_text("console=tty1 root=PARTUUID=1-02 rootwait\n")
        start = time.perf_counter()
        for name in names:
            image_cards(load(config), ImageRequest(None, (name,), "Etc/UTC", boot_dir=boot,
                                                   release="bookworm"))  # fmt: skip
        took = time.perf_counter() - start
        rows.append(f"| --boot-dir (host keys reused) | {took / args.nodes:.2f} | {args.nodes} |")
    print("\n".join(rows))
    if args.write_docs:
        command = (
            f"python bench/image_bench.py --nodes {args.nodes} --root-mib {args.root_mib}"
            f" --filler-mib {args.filler_mib}"
        )
        intro = [
            "Seconds per node of `piherd image` (the app call the CLI makes), on this machine's",
            "disk (ext4: no reflink, so --out copies the image's data sparsely per node; the",
            "copy dominates: the first-boot files, host keys and known_hosts take ~0.1-0.2 s,",
            "see --boot-dir and the small image). Each row: its own run; the last run started",
            f"at a 1-minute load average of {load_avg:.0f} (2 cores): disk times vary 2x or more.",
        ]
        header = "| what | s/node | nodes | command |"
        update_table_section(DOCS, SECTION, intro, header, rows, command)


if __name__ == "__main__":
    main()
