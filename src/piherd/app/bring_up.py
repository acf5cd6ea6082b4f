"""The `up` use case: first contact by password (optional), then facts, plan and apply.

What the nodes report (hardware, host keys, admin ids) is recorded after a real run
(app/recorded.py), so an unreachable node keeps its values and `render` shows the files
`up` writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from piherd.app.first_identity import own_keys_again
from piherd.app.recorded import load_recorded, save_recorded
from piherd.bundle import watch_service_inputs
from piherd.model import Cluster
from piherd.ops.desired import DesiredState
from piherd.runner.apply import NodeResult, Reporter, UpOptions, UpResult, up
from piherd.runner.fanout import each_node
from piherd.secrets import Secrets
from piherd.services import netboot
from piherd.services.ssh_keys import render_no_password
from piherd.transport import first_contact
from piherd.transport.base import TransportError
from piherd.transport.pool import ConnectionPool


async def up_cluster(
    cluster: Cluster,
    names: Sequence[str],
    options: UpOptions,
    reporter: Reporter,
    secrets: Secrets,
    *,
    password: str | None = None,
    results: dict[str, NodeResult] | None = None,
) -> UpResult:
    """Bring `names` to what cluster.toml describes; `password`: first contact (--ask-pass).

    `results` (optional) is filled as nodes go, so the caller still has them on Ctrl-C.
    """
    results = {} if results is None else results
    async with ConnectionPool(cluster) as pool:
        failed: dict[str, NodeResult] = {}
        if password is not None:
            failed = await password_first_contact(cluster, pool, names, password, reporter)
            results.update(failed)
        ready = [n for n in names if n not in failed]
        # Netbooted nodes boot with the shared root's first-boot key: their own first.
        booting = netboot.settings_of(cluster).node_models
        await each_node([n for n in ready if n in booting], lambda n: own_keys_again(cluster, n))
        bundle, cluster_toml = watch_service_inputs(cluster)
        build = DesiredState(
            secrets, load_recorded(cluster), piherd_bundle=bundle, cluster_toml=cluster_toml
        )
        result = await up(cluster, pool, build, reporter, options, ready, results)
        if not options.dry_run:
            save_recorded(cluster, build.remembered)
        return result


async def password_first_contact(
    cluster: Cluster, pool: ConnectionPool, names: Sequence[str], password: str, reporter: Reporter
) -> dict[str, NodeResult]:
    """--ask-pass on every node: key installed by password, key login verified, password off.

    Returns the nodes where that failed, each with its reason (already reported).
    """
    key = first_contact.public_key_line(cluster)

    async def one(name: str) -> NodeResult | None:
        reporter.phase(name, "installing the admin key (password login)")
        try:
            await first_contact.install_key_by_password(cluster, name, password, key)
            transport = await pool.get(name)  # a key login: proves the key works
            keys_only = render_no_password(cluster, cluster.node(name))
            await first_contact.disable_password_login(transport, keys_only.path, keys_only.content)
        except TransportError as exc:
            failed = NodeResult(name, "failed", reason=exc.reason)
            reporter.done(failed)
            return failed
        return None

    outcomes = await each_node(names, one)
    return {name: result for name, result in outcomes.items() if result is not None}
