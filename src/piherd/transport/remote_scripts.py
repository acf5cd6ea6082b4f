"""Fixed shell scripts the SSH transport runs on nodes; every value reaches them as "$1".. args.

No caller-supplied text is ever interpolated into these scripts: paths, modes, owners and
checksums are passed as positional parameters (`sh -c SCRIPT sh ARG...`).
"""

from __future__ import annotations

TEMP_PREFIX = ".piherd-tmp-"

# Removes leftovers "$1".PID.* of earlier runs whose process PID is gone (a run killed
# hard, a power cut). Temporary names carry their writer's PID, so runs side by side
# (two `up`, several `copy`) never delete each other's files.
SWEEP = r"""
sweep() {
    for old in "$1".*; do
        [ -e "$old" ] || continue
        pid=${old#"$1".}
        pid=${pid%%.*}
        case $pid in ''|*[!0-9]*) continue ;; esac
        [ -d "/proc/$pid" ] || rm -rf -- "$old" 2>/dev/null || true
    done
}
"""

# Atomic write: content arrives on stdin. It lands in a temp file next to the target
# (named with this run's PID), is checked against the expected size and sha256 (a dropped
# connection gives a short stdin, which must never replace the old file), fsynced,
# chmod/chowned, then renamed over the target. Leftovers of earlier interrupted writes of
# the same file are removed first, those of runs still going are not; the trap removes
# this run's temp file on any failure or signal.
WRITE_FILE = (
    SWEEP
    + r"""
set -eu
target=$1 mode=$2 owner=$3 group=$4 size=$5 digest=$6
dir=$(dirname -- "$target")
base=$(basename -- "$target")
sweep "$dir/.piherd-tmp-$base"
tmp=$(mktemp -- "$dir/.piherd-tmp-$base.$$.XXXXXX")
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
)

READ_MISSING_RC = 44

# Read a file, telling "missing" (rc 44) apart from other failures.
READ_FILE = r"""
if [ ! -e "$1" ]; then exit 44; fi
exec cat -- "$1"
"""
