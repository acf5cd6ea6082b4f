"""The `piherd image` use case: one customised Raspberry Pi OS card per node (or one generic).

From a .img or .img.xz: detect the release, make or reuse each node's host keys, write
its first-boot files onto the boot partition of a sparse copy (`--out`), of a temporary
copy then a card (`--device`), or of a mounted boot directory (`--boot-dir`), and record
its host keys in the cluster's known_hosts. The root partition is never written.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from piherd.image import device as card
from piherd.image import node_keys, release, sparse
from piherd.image.bootfs import BootDirectory, BootFiles, FatImage
from piherd.image.customise import customise
from piherd.image.firstboot import FirstBoot, FirstBootError, for_node
from piherd.image.partitions import ImageError, Layout, read_layout
from piherd.model import Cluster, Node
from piherd.model.cluster import OS_RELEASES
from piherd.secrets import SecretsError, claim_directory
from piherd.transport.base import TransportError
from piherd.transport.first_contact import public_key_line
from piherd.transport.hostkeys import default_known_hosts

GENERIC = "generic"
ProgressFactory = Callable[[str, int], Callable[[int], None]]  # (label, total bytes)

__all__ = [
    "GENERIC",
    "BadInput",
    "ImageError",
    "ImageRequest",
    "ImageResult",
    "check_device",
    "image_cards",
]


class BadInput(ImageError):
    """A value from cluster.toml, the admin key file or the command line that is refused."""


def generic_host(cluster: Cluster) -> str:
    """The known_hosts name of a generic image's first-boot host key (a HostKeyAlias)."""
    return f"piherd-firstboot.{cluster.name}"


@dataclass(frozen=True)
class ImageRequest:
    """What `piherd image` was asked: a source, the nodes (none: generic), one target."""

    source: Path | None
    nodes: tuple[str, ...]
    timezone: str
    out: Path | None = None
    device: Path | None = None
    boot_dir: Path | None = None
    release: str | None = None
    force: bool = False


@dataclass(frozen=True)
class ImageResult:
    """One card made: for whom, which release, where, what was written, host key fingerprints."""

    label: str
    release: str
    target: str
    files: list[str]
    fingerprints: dict[str, str] = field(default_factory=dict)
    known_hosts: str = ""


def check_device(device: Path, force: bool) -> card.Disk:
    """The card `--device` names, or ImageError saying why it is refused."""
    return card.check_target(device, force)


def _release(request: ImageRequest, image: Path | None, layout: Layout | None) -> str:
    if request.release is not None:
        if request.release not in OS_RELEASES:
            raise BadInput(f"--release must be one of {', '.join(OS_RELEASES)}")
        return request.release
    if image is None or layout is None:
        raise BadInput("--boot-dir cannot tell the release; pass --release")
    return release.detect(image, layout.root)


def _first_boot(cluster: Cluster, node: Node | None, request: ImageRequest, key: str) -> FirstBoot:
    label = node.name if node else GENERIC
    comment = f"root@{node.name}" if node else f"piherd-firstboot@{cluster.name}"
    keys = node_keys.host_keys(Path(cluster.secrets_dir), label, comment)
    instance = f"piherd-{label}-{secrets.token_hex(4)}"
    return for_node(cluster, node, key, request.timezone, keys, instance)


def _record(cluster: Cluster, node: Node | None, fb: FirstBoot) -> str:
    known_hosts = cluster.known_hosts or default_known_hosts()
    hosts = [str(node.address)] if node else [generic_host(cluster)]
    node_keys.record(known_hosts, hosts, cluster.ssh_port, fb.host_keys)
    return str(known_hosts)


def _result(fb: FirstBoot, rel: str, target: str, files: list[str], known: str) -> ImageResult:
    prints = {k.kind: node_keys.fingerprint(k) for k in fb.host_keys}
    return ImageResult(fb.label, rel, target, files, prints, known)


def image_cards(
    cluster: Cluster, request: ImageRequest, progress: ProgressFactory | None = None
) -> list[ImageResult]:
    """Make every card `request` asks for; ImageError (with what and why) when one cannot be."""
    targets: list[Node | None] = [cluster.node(n) for n in request.nodes] or [None]
    if sum(x is not None for x in (request.out, request.device, request.boot_dir)) != 1:
        raise BadInput("give exactly one of --out, --device, --boot-dir")
    if (request.device or request.boot_dir) and len(targets) != 1:
        raise BadInput("--device and --boot-dir write one card: name one node, or --generic")
    if request.device is not None:
        card.check_target(request.device, request.force)  # again: callers of the API too
    try:
        admin_key = public_key_line(cluster)
        claim_directory(cluster, Path(cluster.secrets_dir))
    except TransportError as exc:
        raise BadInput(str(exc).removeprefix("cluster: ")) from None
    except SecretsError as exc:
        raise ImageError(str(exc)) from None
    try:
        return _image_all(cluster, request, targets, admin_key, progress)
    except FirstBootError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise ImageError(f"{exc.filename or ''}: {exc.strerror or exc}") from None


def _image_all(
    cluster: Cluster,
    request: ImageRequest,
    targets: list[Node | None],
    admin_key: str,
    progress: ProgressFactory | None,
) -> list[ImageResult]:
    if request.boot_dir is not None:
        rel = _release(request, None, None)
        _check_release(targets, rel)
        node = targets[0]
        fb = _first_boot(cluster, node, request, admin_key)
        files = customise(BootDirectory(request.boot_dir), rel, fb)
        return [_result(fb, rel, str(request.boot_dir), files, _record(cluster, node, fb))]
    if request.source is None:
        raise BadInput("--from IMAGE is needed with --out and --device")
    if request.out is not None:
        request.out.mkdir(parents=True, exist_ok=True)
    # --device: the customised copy goes to disk-backed /var/tmp, not a RAM /tmp ($TMPDIR wins).
    scratch = request.out or Path(os.environ.get("TMPDIR") or "/var/tmp")
    with (
        tempfile.TemporaryDirectory(prefix=".piherd-image-", dir=scratch) as work,
        sparse.unpacked(request.source, Path(work)) as source,
    ):
        layout = read_layout(source)
        rel = _release(request, source, layout)
        _check_release(targets, rel)
        results = []
        for node in targets:
            fb = _first_boot(cluster, node, request, admin_key)
            destination = (request.out or Path(work)) / f"{fb.label}.img"
            sparse.copy(source, destination)
            files = customise(_fat(destination, layout), rel, fb)
            target = str(destination)
            if request.device is not None:
                report = progress(fb.label, destination.stat().st_size) if progress else _quiet
                card.write(destination, request.device, report)
                target = str(request.device)
            results.append(_result(fb, rel, target, files, _record(cluster, node, fb)))
        return results


def _quiet(done: int) -> None:
    del done


def _fat(image: Path, layout: Layout) -> BootFiles:
    return FatImage(image, layout.boot.offset)


def _check_release(targets: list[Node | None], rel: str) -> None:
    """Refuse an image of another release than cluster.toml gives the node (os = ...)."""
    for node in targets:
        if node is not None and node.os != rel:
            raise ImageError(
                f"node {node.name} has os = {node.os!r} in cluster.toml but the image holds "
                f"{rel}; image it with a {node.os} image, or change its os"
            )
