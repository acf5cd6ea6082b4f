"""`piherd netboot build`: the netbooted nodes' shared root and boot files, made on the head.

The root is a copy of the head's own system (one file system, as rsync -x sees it), so
the nodes run the cluster's OS release with the head's packages and settings. What makes
a copy the head is left out or switched off: the data the head serves (/srv, the shared
storage), the head's own services (every unit the head runs that no netbooted node does
is masked), its network stack (a node's address is the kernel's, and the root is on that
network), its host keys and machine id. The root gets the cluster's first-boot host key
instead, as a generic card does: piherd gives each node its own keys after every boot
(app/first_identity.py), once the node has proven it booted this root.

Each netbooted node's TFTP directory is filled from the new root (a Pi's boot partition,
or Debian's kernel and initramfs for iPXE), hard-linked where the file system allows,
beside piherd's own per-node file.

Nothing is half-built: the root and each directory are made beside the old ones
(`*.piherd-new`) and swapped in only once whole; a build cut off leaves the old ones
serving, and the next build starts afresh (a root moved aside by a cut between the two
renames is moved back first). The NFS export is refreshed last. Nodes running on the
old root go on reading it (it is kept, beside the new one, until the next build) and
boot the new one at their next reset (`piherd reset`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from piherd.app.imaging import GENERIC
from piherd.image import node_keys
from piherd.image.netboot_files import BOOT_TREES, missing_files, per_node_file, tftp_directory
from piherd.model import Cluster
from piherd.model.specs import FileSpec
from piherd.render.node import node_units
from piherd.render.spec import safe_path
from piherd.services import netboot
from piherd.services.storage import StorageSettings
from piherd.transport.base import Transport
from piherd.transport.pool import ConnectionPool

NEW, OLD = ".piherd-new", ".piherd-old"
COPY_TIMEOUT = 3600.0  # seconds: the head's system, a few GiB on a Pi's card
STEP_TIMEOUT = 300.0

# A root on the network must keep its interface as the kernel set it up; swap on NFS
# and the head's boot-partition tooling have no place on a netbooted node.
MASKED_ALWAYS = (
    "NetworkManager.service",
    "NetworkManager-wait-online.service",
    "dhcpcd.service",
    "systemd-networkd.service",
    "systemd-networkd-wait-online.service",
    "dphys-swapfile.service",
)

# Left out of the copy: what is volatile, and what only the head has or serves.
VOLATILE = (
    "/srv/*",
    "/tmp/*",
    "/var/tmp/*",
    "/var/cache/apt/archives/*.deb",
    "/var/log/journal/*",
    "/var/lib/slurm/slurmctld/*",
    "/var/lib/prometheus/*",
    "/var/lib/grafana/*",
    "/etc/ssh/ssh_host_*",
    "/swapfile",
    "/var/swap",
    "/lost+found",
)

FSTAB = (
    "# A netbooted node: its root is the head's shared root over NFS, with a writable\n"
    "# layer in memory (kernel command line, services.netboot). piherd adds its mounts.\n"
)

# Before the copy: a root moved aside by a build cut off between its two renames comes
# back; the new tree of a build cut off earlier goes.
RECOVER = r"""set -eu
root=$1
if [ ! -d "$root" ] && [ -d "$root.piherd-old" ]; then mv -- "$root.piherd-old" "$root"; fi
rm -rf -- "$root.piherd-new" "$root.piherd-old"
mkdir -p -- "$root.piherd-new"
"""

# One node's TFTP directory from the new root, staged beside the old one: hard links
# where the root and the TFTP tree share a file system, copies otherwise.
STAGE_BOOT = r"""set -eu
source=$1 stage=$2 own=$3; shift 3
rm -rf -- "$stage"
mkdir -p -- "$stage"
for name in "$@"; do
    [ -e "$source/$name" ] || { echo "the root has no $name (in $source)" >&2; exit 3; }
    dest=$stage/$name
    mkdir -p -- "$(dirname -- "$dest")"
    if [ -d "$source/$name" ]; then
        cp -al -- "$source/$name" "$dest" 2>/dev/null || cp -a -- "$source/$name" "$dest"
    else
        target=$(readlink -f -- "$source/$name")
        ln -- "$target" "$dest" 2>/dev/null || cp -- "$target" "$dest"
    fi
done
rm -f -- "$stage/$own"
"""

# Swap each staged tree in: old aside, new in place. The root's old tree stays (running
# nodes still read it, through file handles the export's fsid keeps valid) until the
# next build; the boot directories' old trees go.
SWAP = r"""set -eu
root=$1; shift
for path in "$root" "$@"; do
    if [ -e "$path" ]; then mv -- "$path" "$path.piherd-old"; fi
    mv -- "$path.piherd-new" "$path"
    [ "$path" = "$root" ] || rm -rf -- "$path.piherd-old"
done
"""
# The export names the root by path: exported again, it is the new tree.
_EXPORT = ["sh", "-c", "! command -v exportfs >/dev/null || exportfs -ra"]


class BuildError(Exception):
    """The build failed on the head (the message says where); the old root still serves."""


@dataclass(frozen=True)
class BuildPlan:
    """What a build does, from cluster.toml and piherd's files (shown by --dry-run)."""

    root: str
    tftp_root: str
    excluded: tuple[str, ...]  # rsync patterns, anchored at the head's /
    masked: tuple[str, ...]  # units masked in the root
    boot_dirs: tuple[tuple[str, str, str], ...]  # (node, model, directory)
    head_files: tuple[str, ...] = ()  # piherd's files of the head the nodes must not have


def head_only_files(
    cluster: Cluster, rendered: Mapping[str, Mapping[str, FileSpec]]
) -> tuple[str, ...]:
    """The files piherd writes on the head that a netbooted node would hold otherwise (or
    not at all): the head's mounts, its exports, its own services' settings. Files every
    netbooted node holds byte for byte (/etc/hosts, slurm.conf, the munge key) stay, so
    a node boots nearly ready; `up` writes the rest into its layer."""
    head = rendered.get(cluster.head.name, {})
    nodes = [rendered.get(n.name, {}) for n in netboot.netbooted(cluster)]
    return tuple(
        sorted(
            path
            for path, spec in head.items()
            if any(path not in files or files[path].content != spec.content for files in nodes)
        )
    )


def plan_build(
    cluster: Cluster, rendered: Mapping[str, Mapping[str, FileSpec]] | None = None
) -> BuildPlan:
    """The build's plan: paths, exclusions, masked units, one boot directory per node;
    `rendered`: piherd's files of the head and the netbooted nodes (app/exact_files.py)."""
    svc = netboot.settings_of(cluster)
    root = safe_path(svc.root, "services.netboot.root")
    tftp_root = safe_path(svc.tftp_root, "services.netboot.tftp_root")
    booting = netboot.netbooted(cluster)
    worker_units = {u.name for n in booting for u in node_units(cluster, n)}
    head_only = [u.name for u in node_units(cluster, cluster.head) if u.name not in worker_units]
    excluded = [*VOLATILE, root, root + NEW, root + OLD, tftp_root]
    storage = cluster.services.get(StorageSettings)
    if cluster.services.is_on(StorageSettings):
        excluded.append(safe_path(storage.export, "services.storage.export"))
    dirs = tuple(
        (n.name, svc.node_models.get(n.name, "pi4"), tftp_directory(n.serial))
        for n in booting
        if n.serial
    )
    return BuildPlan(
        root=root,
        tftp_root=tftp_root,
        excluded=tuple(dict.fromkeys(excluded)),
        masked=tuple(dict.fromkeys([*MASKED_ALWAYS, *head_only])),
        boot_dirs=dirs,
        head_files=head_only_files(cluster, rendered) if rendered else (),
    )


def copy_argv(plan: BuildPlan) -> list[str]:
    """rsync of the head's root file system into the new tree (hard links, ACLs, xattrs)."""
    excludes = [f"--exclude={pattern}" for pattern in plan.excluded]
    return ["rsync", "-aHAXx", "--numeric-ids", *excludes, "/", f"{plan.root}{NEW}/"]


def boot_sources(model: str) -> tuple[str, list[str]]:
    """Where in the root a model's boot files are, and which to take (a Pi: all of its
    boot partition, cmdline.txt aside; iPXE: the kernel and initramfs)."""
    if model == "ipxe":
        return ".", ["vmlinuz", "initrd.img"]
    return "boot/firmware", ["."]


async def build_root(cluster: Cluster, plan: BuildPlan, say: Callable[[str], None]) -> None:
    """Build the shared root and the boot directories on the head; BuildError on failure."""
    head = cluster.head.name
    async with ConnectionPool(cluster) as pool:
        transport = await pool.get(head)
        new = plan.root + NEW
        started = time.monotonic()
        await _run(transport, ["sh", "-c", RECOVER, "piherd-netboot", plan.root], "prepare")
        say(f"copying {head}'s system into {new} (rsync, one file system)")
        await _run(transport, copy_argv(plan), "copy", timeout=COPY_TIMEOUT)
        say(f"copied in {time.monotonic() - started:.0f}s; making it the nodes' root")
        served = netboot.render(cluster, cluster.head)  # the overlay init, the boot files
        await _scrub(cluster, transport, plan, served)
        staged = await _stage_boot_dirs(transport, plan, served, say)
        await _run(transport, ["sh", "-c", SWAP, "piherd-netboot", plan.root, *staged], "swap")
        await _run(transport, _EXPORT, "export")
        say(f"{plan.root} and {len(staged)} boot directorie(s) in place; export refreshed")


async def _scrub(
    cluster: Cluster, transport: Transport, plan: BuildPlan, served: Mapping[str, FileSpec]
) -> None:
    """The head's identity out, the nodes' in: units, keys, fstab, host name, overlay init."""
    new = plan.root + NEW
    await _run(transport, ["systemctl", f"--root={new}", "mask", *plan.masked], "mask units")
    if plan.head_files:  # plain paths, no patterns: removed one by one
        head_files = [f"{new}{path}" for path in plan.head_files]
        await _run(transport, ["rm", "-f", "--", *head_files], "the head's own files")
    for name in ("etc/hostname", "var/lib/dbus/machine-id"):  # the kernel names the node
        await _run(transport, ["rm", "-f", "--", f"{new}/{name}"], "identity")
    await transport.write_file(f"{new}/etc/machine-id", b"", mode=0o444)
    await transport.write_file(f"{new}/etc/fstab", FSTAB.encode(), mode=0o644)
    first_boot = node_keys.host_keys(
        Path(cluster.secrets_dir), GENERIC, f"piherd-firstboot@{cluster.name}"
    )
    for key in first_boot:
        path = f"{new}/etc/ssh/ssh_host_{key.kind}_key"
        await transport.write_file(path, key.private, mode=0o600)
        await transport.write_file(f"{path}.pub", (key.public + "\n").encode(), mode=0o644)
    for spec in served.values():
        if spec.path.startswith(plan.root + "/"):  # the overlay init, inside the root
            inside = spec.path.removeprefix(plan.root)
            await transport.write_file(f"{new}{inside}", spec.content, mode=spec.mode)


async def _stage_boot_dirs(
    transport: Transport,
    plan: BuildPlan,
    served: Mapping[str, FileSpec],
    say: Callable[[str], None],
) -> list[str]:
    """Each node's directory staged from the new root, with piherd's per-node file."""
    staged = []
    for node, model, directory in plan.boot_dirs:
        final = f"{plan.tftp_root}/{directory}"
        source_dir, names = boot_sources(model)
        source = plan.root + NEW + ("" if source_dir == "." else f"/{source_dir}")
        own = per_node_file(model)
        argv = ["sh", "-c", STAGE_BOOT, "piherd-netboot", source, final + NEW, own, *names]
        await _run(transport, argv, f"boot files of {node}")
        listing = ["find", final + NEW, "-type", "f", "-printf", "%P\\n"]
        missing = missing_files(model, (await _run(transport, listing, "list")).splitlines())
        if missing:  # what the board asks for, by name, before a node fails to boot
            raise BuildError(
                f"{node} ({model}) would ask for {', '.join(missing)}: not in {source}"
            )
        spec = served[f"{final}/{own}"]
        await transport.write_file(f"{final}{NEW}/{own}", spec.content, mode=spec.mode)
        say(f"{node}: {final} ({model}: {', '.join(BOOT_TREES[model].required)})")
        staged.append(final)
    return staged


async def _run(
    transport: Transport, argv: Sequence[str], step: str, *, timeout: float = STEP_TIMEOUT
) -> str:
    result = await transport.run(argv, sudo=True, timeout=timeout)
    if result.error is not None or result.rc != 0:
        why = result.error or (result.stderr or result.stdout).strip()[-500:]
        raise BuildError(f"{step} on {transport.node}: {why}")
    return result.stdout
