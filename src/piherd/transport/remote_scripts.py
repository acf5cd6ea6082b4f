"""Fixed shell scripts the SSH transport runs on nodes; every value reaches them as "$1".. args.

No caller-supplied text is ever interpolated into these scripts: paths, modes, owners and
checksums are passed as positional parameters (`sh -c SCRIPT sh ARG...`).
"""

from __future__ import annotations

TEMP_PREFIX = ".piherd-tmp-"

# Atomic write: content arrives on stdin. It lands in a temp file next to the target,
# is checked against the expected size and sha256 (a dropped connection gives a short
# stdin, which must never replace the old file), fsynced, chmod/chowned, then renamed
# over the target. Leftovers of an earlier interrupted write of the same file are removed
# first; the trap removes this run's temp file on any failure or signal.
WRITE_FILE = r"""
set -eu
target=$1 mode=$2 owner=$3 group=$4 size=$5 digest=$6
dir=$(dirname -- "$target")
base=$(basename -- "$target")
for old in "$dir/.piherd-tmp-$base".*; do
    if [ -e "$old" ]; then rm -f -- "$old"; fi
done
tmp=$(mktemp -- "$dir/.piherd-tmp-$base.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE
cat > "$tmp"
got=$(wc -c < "$tmp")
if [ "$got" -ne "$size" ]; then
    echo "short write: got $got of $size bytes; $target left unchanged" >&2
    exit 75
fi
sum=$(sha256sum < "$tmp")
if [ "${sum%% *}" != "$digest" ]; then
    echo "checksum mismatch; $target left unchanged" >&2
    exit 75
fi
chown -- "$owner:$group" "$tmp"
chmod -- "$mode" "$tmp"
sync -- "$tmp"
mv -f -- "$tmp" "$target"
trap - EXIT
sync -- "$dir" 2>/dev/null || true
"""

READ_MISSING_RC = 44

# Read a file, telling "missing" (rc 44) apart from other failures.
READ_FILE = r"""
if [ ! -e "$1" ]; then exit 44; fi
exec cat -- "$1"
"""
