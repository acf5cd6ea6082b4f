"""`piherd image`: customised Raspberry Pi OS cards, one per node, host keys made here."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import click

from piherd.app.imaging import BadInput, ImageError, ImageRequest, check_device, image_cards
from piherd.cli.common import cluster_file_option, fail, load_cluster, require_utf8, select_nodes
from piherd.image.firstboot import FirstBootError, check_timezone
from piherd.model.cluster import OS_RELEASES
from piherd.model.escape import shown


def host_timezone() -> str:
    """This machine's time zone (what Raspberry Pi Imager offers by default), else Etc/UTC."""
    try:
        return check_timezone(Path("/etc/timezone").read_text().strip())
    except (OSError, FirstBootError):
        pass
    target = os.path.realpath("/etc/localtime")
    _, sep, zone = target.partition("/zoneinfo/")
    try:
        return check_timezone(zone) if sep else "Etc/UTC"
    except FirstBootError:
        return "Etc/UTC"


def _progress(label: str, total: int):  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr (plain lines when it is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    console = Console(stderr=True)
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), console=console, transient=False)  # fmt: skip
    task = bar.add_task(f"writing {label}", total=total)
    bar.start()

    def report(done: int) -> None:
        bar.update(task, completed=done)
        if done >= total:
            bar.stop()

    return report


@click.command("image")
@cluster_file_option
@click.argument("nodeset", required=False)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Raspberry Pi OS image to start from (.img or .img.xz).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one image file per node into this directory (NODE.img).",
)
@click.option(
    "--device",
    type=click.Path(path_type=Path),
    help="Write the (one) customised image onto this card, e.g. /dev/sdb.",
)
@click.option(
    "--boot-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Customise a card already flashed (by Raspberry Pi Imager) and mounted here.",
)
@click.option(
    "--generic",
    is_flag=True,
    help="One image for any node: DHCP, the cluster's first-boot host key; no NODESET.",
)
@click.option(
    "--release",
    type=click.Choice(OS_RELEASES),
    help="The image's release (default: read from its root partition).",
)
@click.option(
    "--timezone",
    default=None,
    metavar="ZONE",
    help="Time zone of the nodes, e.g. Europe/London (default: this machine's).",
)
@click.option("--force", is_flag=True, help="With --device: accept a disk that is not removable.")
@click.option("--yes", is_flag=True, help="With --device: do not ask before overwriting it.")
@click.option("--json", "as_json", is_flag=True, help="Print what was made as JSON.")
def command(
    cluster_file: Path,
    nodeset: str | None,
    source: Path | None,
    out: Path | None,
    device: Path | None,
    boot_dir: Path | None,
    generic: bool,
    release: str | None,
    timezone: str | None,
    force: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Customise Raspberry Pi OS for each node of NODESET, so every Pi boots straight into
    the cluster: its host name, the admin user with the cluster's key (no password), sshd on,
    the time zone, its static address, and SSH host keys made here and recorded in the
    cluster's known_hosts, so even the first connection is verified.

    Only the boot partition is written (no root, no mount needed). What is written is what
    Raspberry Pi Imager writes for the image's release: bookworm firstrun.sh, trixie
    cloud-init (user-data, meta-data, network-config), bullseye userconf.txt and ssh.
    Images hold private host keys: they are written mode 0600.

    \b
    piherd image @all --from raspios-bookworm-arm64-lite.img.xz --out cards/
    piherd image node03 --from raspios.img.xz --device /dev/sdb
    piherd image node03 --boot-dir /media/$USER/bootfs --release bookworm
    piherd image --generic --from raspios.img.xz --out cards/
    """
    require_utf8([str(p) for p in (source, out, device, boot_dir) if p] + [nodeset or ""], "image")
    cluster = load_cluster(cluster_file)
    if generic == bool(nodeset):
        fail("piherd image: give a NODESET, or --generic (one image for any node), not both")
    names = () if generic else tuple(select_nodes(cluster, nodeset or "", "image"))
    try:
        zone = check_timezone(timezone) if timezone is not None else host_timezone()
    except FirstBootError as exc:
        fail(f"piherd image: --timezone: {exc}")
    request = ImageRequest(source, names, zone, out, device, boot_dir, release, force)
    try:
        if device is not None:
            disk = check_device(device, force)
            if not yes:
                gib = disk.size / (1 << 30)
                who = names[0] if names else "generic"
                question = f"Overwrite {disk.path} ({gib:.1f} GiB) with the image of {who}?"
                click.confirm(question, abort=True, err=True)
        results = image_cards(cluster, request, _progress if device is not None else None)
    except BadInput as exc:
        fail(f"piherd image: {shown(str(exc), 400)[1:-1]}")
    except ImageError as exc:
        fail(f"piherd image: {shown(str(exc), 400)[1:-1]}", 1)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=2))
        return
    for r in results:
        click.echo(f"{r.label}: {r.release} -> {r.target} ({', '.join(r.files)})")
        for kind, fp in r.fingerprints.items():
            click.echo(f"  host key {kind} {fp}")
    if results:
        click.echo(f"host keys recorded in {results[0].known_hosts}")
