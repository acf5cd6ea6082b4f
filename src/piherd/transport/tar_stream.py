"""Copying files and directories to and from nodes as tar streams over any Transport.

To nodes: one tar archive (modes kept) is built once and fed on stdin to a fixed remote
script that unpacks it in one round trip, as root with sudo when asked, into a temporary
directory beside the destination; every file then reaches its final name by rename, so
no file is ever seen half-written (a single source onto a path that is not a directory
replaces it, like cp/scp). From nodes: the
node tars the path and sends it base64-encoded (the Transport's stdout is text); it is
unpacked under DEST/<node>/ with tarfile's "data" filter: regular files, directories and
links that stay inside DEST only, owned by the caller, without setuid/setgid bits. Device
nodes, FIFOs and absolute or escaping links are skipped and named on stderr.
"""

from __future__ import annotations

import base64
import binascii
import io
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from piherd.transport.base import CommandResult, Transport
from piherd.transport.remote_scripts import SWEEP

# $1 destination, $2 name of the only top-level entry ("" when several). Tar arrives on
# stdin; files belong to the user running tar (root with sudo), modes are kept. Nothing is
# unpacked at a final name: the archive goes into a temporary directory beside the
# destination (named with this run's PID), then each file is renamed into place, so an
# interrupted copy or a full disk leaves every file whole, the old or the new one. The
# temporary directory goes on every exit (errors, signals), and leftovers of runs killed
# hard are swept by the next copy. A refusal reads stdin to its end first: the node's
# answer is then always that one error, never a broken pipe.
UNPACK = (
    SWEEP
    + r"""
set -eu
dest=$1 single=$2
fail() {
    echo "$1" >&2
    cat > /dev/null
    exit 1
}
if [ -d "$dest" ]; then
    work=$dest
else
    case $dest in */) fail "$dest: no such directory" ;; esac
    if [ -z "$single" ]; then
        fail "$dest: not a directory (several sources need a directory)"
    fi
    work=$(dirname -- "$dest")
    if [ ! -d "$work" ]; then fail "$work: no such directory"; fi
fi
sweep "$work/.piherd-tmp-copy"
tmp=$(mktemp -d -- "$work/.piherd-tmp-copy.$$.XXXXXX") || fail "$work: cannot write here"
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE
tar -C "$tmp" --no-same-owner -xpf - || fail "$work: cannot unpack here (disk full?)"
if [ "$work" != "$dest" ]; then
    if [ -d "$tmp/$single" ] && [ -e "$dest" ]; then
        echo "$dest: exists and is not a directory" >&2
        exit 1
    fi
    mv -f -T -- "$tmp/$single" "$dest"
    exit 0
fi
# Into a directory, like cp -r: directories merged, each file renamed over its old self,
# directory modes set last (a read-only directory still takes its files first).
find "$tmp" -mindepth 1 -type d -exec sh -c '
    set -e; t=$1 d=$2; shift 2
    for f; do if [ ! -d "$d/${f#"$t"/}" ]; then mkdir -- "$d/${f#"$t"/}"; fi; done
' sh "$tmp" "$dest" {} +
find "$tmp" -mindepth 1 ! -type d -exec sh -c '
    set -e; t=$1 d=$2; shift 2
    for f; do mv -f -T -- "$f" "$d/${f#"$t"/}"; done
' sh "$tmp" "$dest" {} +
find "$tmp" -mindepth 1 -type d -exec sh -c '
    set -e; t=$1 d=$2; shift 2
    for f; do chmod --reference="$f" -- "$d/${f#"$t"/}"; done
' sh "$tmp" "$dest" {} +
"""
)

# $1 the path to send; tar of its last component, base64 on stdout.
PACK = r"""
set -eu
if [ ! -e "$1" ]; then echo "$1: no such file or directory" >&2; exit 1; fi
cd -- "$(dirname -- "$1")"
tar -cf - -- "$(basename -- "$1")" | base64 -w 0
"""


def pack(sources: Sequence[Path]) -> bytes:
    """A tar archive of `sources` (files or directories, modes kept, symlinks as links)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for source in sources:
            archive.add(source, arcname=source.name, recursive=True)
    return buffer.getvalue()


async def copy_to(
    transport: Transport,
    archive: bytes,
    sources: Sequence[Path],
    dest: str,
    *,
    sudo: bool = False,
    timeout: float | None = None,
) -> CommandResult:
    """Unpack `archive` (made by pack(sources)) at `dest` on the node."""
    single = sources[0].name if len(sources) == 1 else ""
    argv = ["sh", "-c", UNPACK, "sh", dest, single]
    return await transport.run(argv, sudo=sudo, input=archive, timeout=timeout)


async def gather_from(
    transport: Transport,
    source: str,
    dest: Path,
    *,
    sudo: bool = False,
    timeout: float | None = None,
) -> CommandResult:
    """Fetch `source` from the node into dest/<node>/<basename of source>."""
    started = time.monotonic()
    result = await transport.run(["sh", "-c", PACK, "sh", source], sudo=sudo, timeout=timeout)
    if not result.ok:
        return result
    target = dest / transport.node
    try:
        data = base64.b64decode(result.stdout, validate=True)
        target.mkdir(parents=True, exist_ok=True)
        skipped = extract_safely(data, target)
    except (binascii.Error, tarfile.TarError, OSError, KeyError) as exc:
        return CommandResult(
            transport.node, 1, "", f"cannot unpack {source} into {target}: {exc}\n",
            None, time.monotonic() - started,
        )  # fmt: skip
    notes = "".join(f"skipped {reason}\n" for reason in skipped)
    return CommandResult(
        transport.node, 0, "", result.stderr + notes, None, time.monotonic() - started
    )


def extract_safely(data: bytes, target: Path) -> list[str]:
    """Unpack the tar `data` under `target` with tarfile's "data" filter; what it refused.

    A node's archive is not trusted: a member the filter refuses (a device node, a FIFO, a
    link to an absolute path or out of `target`, a path out of `target`) is left out and
    named in the returned list instead of failing the whole copy.
    """
    skipped: list[str] = []

    def only_data(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError as exc:
            skipped.append(str(exc))
            return None

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        archive.extractall(target, filter=only_data)  # noqa: S202 (data_filter on each member)
    return skipped
