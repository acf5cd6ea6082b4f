"""piherd-overlay-init, the first process of a netbooted node, run for real in a mount namespace.

The "shared root" is this machine's own root file system, read-only under a test overlay
that adds the script and a stand-in /sbin/init; the script must lay a tmpfs over it, move
/dev along, pivot, and start init with its arguments on a writable root, leaving the
shared root untouched and visible read-only. A VM that boots it from NFS is issue #14's
next step; the mount and pivot steps are the same system calls here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from piherd.services import load
from piherd.services.netboot import OVERLAY_INIT, render

GOLDEN = Path(__file__).parent.parent / "golden" / "netboot" / "cluster.toml"

pytestmark = pytest.mark.root
UNSHARE = ("unshare", "--mount", "--propagation", "private")

# Reports on fd 3, which the script's redirections of 0-2 to the console leave alone.
STAND_IN_INIT = r"""#!/bin/sh
{
echo "args: $*"
mount -t proc proc /proc
awk '$2 == "/" {print "root:", $3, substr($4, 1, 2)}' /proc/mounts
echo changed > /etc/piherd-overlay-test && echo "wrote: $(cat /etc/piherd-overlay-test)"
[ -e /run/piherd-shared-root/etc/piherd-overlay-test ] || echo "shared root: unchanged"
touch /run/piherd-shared-root/etc/x 2>/dev/null || echo "shared root: read-only"
[ -e /dev/piherd-test-mark ] && echo "dev: moved"
} >&3
"""


def test_the_overlay_init_gives_a_writable_root_and_keeps_the_shared_one(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("mountpoint") is None:
        pytest.fail("util-linux's unshare and mountpoint are needed (installed by .ci/run)")
    cluster = load(GOLDEN)
    files = render(cluster, cluster.head)
    script = files[f"/data/slaves/root{OVERLAY_INIT}"].content
    upper, work, root = tmp_path / "up", tmp_path / "work", tmp_path / "root"
    for path, content in ((OVERLAY_INIT, script), ("/usr/sbin/init", STAND_IN_INIT.encode())):
        target = upper / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(0o755)
    work.mkdir()
    root.mkdir()
    # The namespace dies with the shell: every mount made here goes with it.
    shell = (
        'set -e; R="$1"\n'
        'mount -t overlay -o "lowerdir=/,upperdir=$2,workdir=$3" piherd-test-root "$R"\n'
        'mount -o remount,ro "$R"\n'
        'mount -t tmpfs piherd-test-dev "$R/dev"\n'
        ': > "$R/dev/console"; : > "$R/dev/piherd-test-mark"\n'
        f'chroot "$R" {OVERLAY_INIT} --unit=multi-user.target 3>&1\n'
    )
    result = subprocess.run(
        [*UNSHARE, "sh", "-c", shell, "sh", str(root), str(upper), str(work)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = result.stdout.splitlines()
    assert report == [
        "args: --unit=multi-user.target",
        "root: overlay rw",
        "wrote: changed",
        "shared root: unchanged",
        "shared root: read-only",
        "dev: moved",
    ], result.stderr
    assert not Path("/etc/piherd-overlay-test").exists()
    assert not (upper / "etc" / "piherd-overlay-test").exists()
