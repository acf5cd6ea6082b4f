"""Keys piherd lets log in as the admin user, in a file piherd owns (on every node).

sshd reads one more AuthorizedKeysFile, /etc/ssh/piherd/authorized_keys/%u (a drop-in
adds it), so the admin's own ~/.ssh/authorized_keys is never edited. Each key there is
restricted to its one use:

- the sshfs storage key, on the storage server: SFTP only, from the storage clients
  (render/storage.py);
- the watch key, on every node when health.watch_enabled: from the head's address only
  (render/watch.py).
"""

from __future__ import annotations

from piherd.model import Cluster, Node
from piherd.render import storage, watch
from piherd.render.spec import FileSpec, RenderContext, text

SSHD_DROPIN = "/etc/ssh/sshd_config.d/piherd-keys.conf"
AUTHORIZED_DIR = "/etc/ssh/piherd/authorized_keys"


def render(cluster: Cluster, node: Node, ctx: RenderContext) -> dict[str, FileSpec]:
    """The sshd drop-in on every node; the admin user's key file where a key is wanted.

    Where no key is wanted any more (watch or storage turned off), `up` removes the
    key file it created (ops/removals.py).
    """
    entries = [
        *storage.authorized_entries(cluster, node, ctx),
        *watch.authorized_entries(cluster, ctx),
    ]
    dropin = text(
        cluster,
        SSHD_DROPIN,
        [
            "# Also read the keys piherd manages (see the file named below).",
            f"AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 {AUTHORIZED_DIR}/%u",
        ],
        reloads=("ssh.service",),
    )
    if not entries:
        return {dropin.path: dropin}
    keys = text(cluster, f"{AUTHORIZED_DIR}/{cluster.admin_user}", entries)
    return {dropin.path: dropin, keys.path: keys}
