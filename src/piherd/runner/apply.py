"""Apply plans over the connection pool: head first, then workers in parallel.

A node's failure is recorded with its reason and never stops the others. Files go through
the transport's atomic write (temp file + rename), so Ctrl-C or a dropped connection leaves
no truncated file. A network change is applied with a rollback armed on the node first.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from piherd.facts.gather import gather_facts
from piherd.facts.record import RECORD_MODE, RECORD_PATH, NodeRecord
from piherd.facts.script import PENDING_RESTARTS
from piherd.facts.types import NodeFacts
from piherd.model import Cluster
from piherd.ops import netmove
from piherd.ops.bookkeeping import forget_paths, newly_created
from piherd.ops.plan import plan_node
from piherd.ops.removals import parent_paths
from piherd.ops.types import (
    DAEMON_RELOAD,
    DIR,
    DISABLE,
    ENABLE,
    FILE,
    HOSTNAME,
    MASK,
    NETWORK,
    PACKAGES,
    PURGE,
    RELOAD,
    RESTART,
    START,
    STOP,
    UNMASK,
    Change,
    DesiredNode,
    Plan,
)
from piherd.runner import undo
from piherd.transport.base import Transport, TransportError

APT_TIMEOUT = 1200.0
COMMAND_TIMEOUT = 120.0
APT_ENV = ["env", "DEBIAN_FRONTEND=noninteractive"]
APT_INSTALL = [
    "apt-get",
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
    "-o",  # wait for a dpkg still finishing what an interrupted run started
    "DPkg::Lock::Timeout=300",
]
APT_UPDATE = ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"]
# Finishes what a dpkg cut off by a power cut or Ctrl-C left half-done; apt refuses to
# install anything until this has run ("dpkg was interrupted, you must manually run ...").
DPKG_RESUME = ["dpkg", "--force-confdef", "--force-confold", "--configure", "-a"]
SYSTEMCTL = {
    MASK: "mask",
    DISABLE: "disable",
    UNMASK: "unmask",
    ENABLE: "enable",
    START: "start",
    RESTART: "restart",
    RELOAD: "reload-or-restart",
    STOP: "stop",
}


class Pool(Protocol):
    """What apply needs of transport.pool.ConnectionPool."""

    async def get(self, name: str) -> Transport: ...

    async def forget(self, name: str) -> None: ...


class Reporter(Protocol):
    """Receives progress events (runner/progress.py has the terminal, plain and JSON ones)."""

    def phase(self, node: str, text: str) -> None: ...

    def change(self, node: str, change: Change) -> None: ...

    def done(self, result: NodeResult) -> None: ...


@dataclass
class NodeResult:
    """How one node's `up` ended: changed, unchanged, failed or interrupted (and why)."""

    node: str
    status: str = "unchanged"
    applied: list[Change] = field(default_factory=list)
    planned: int = 0
    reason: str = ""
    elapsed: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == "failed"


class ApplyError(Exception):
    """A change failed on a node; the message is the reason shown in the summary."""


DesiredBuilder = Callable[[Cluster, Mapping[str, NodeFacts]], Mapping[str, DesiredNode]]


@dataclass
class UpOptions:
    """Knobs of one `up` run."""

    dry_run: bool = False
    diffs: bool = True  # dry run: read the current files to show unified diffs
    network_timeout: float = 60.0  # reconnect at the new address within this
    rollback_after: float = 90.0  # the node restores its old network config after this
    fact_timeout: float = 120.0
    parallel: int = 16
    purge: bool = False  # also purge packages piherd installed and no longer needs
    # Where each node keeps its record of what piherd created (facts/record.py); "": none
    # is kept (the local tests, whose "nodes" all share this one machine).
    record_path: str = RECORD_PATH


# -- one change -----------------------------------------------------------------------


async def _run(t: Transport, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str:
    result = await t.run(argv, sudo=True, timeout=timeout)
    if result.error is not None:
        raise TransportError(t.node, result.error)
    if result.rc != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ApplyError(f"`{shlex.join(argv)}` failed (rc={result.rc}): {' / '.join(tail)}")
    return result.stdout


async def _apt(t: Transport, argv: Sequence[str]) -> None:
    """Run an apt-get command; when an earlier dpkg run was cut off, finish it first."""
    try:
        await _run(t, [*APT_ENV, *argv], APT_TIMEOUT)
    except ApplyError as exc:
        if "dpkg --configure -a" not in str(exc):
            raise
        await _run(t, [*APT_ENV, *DPKG_RESUME], APT_TIMEOUT)
        await _run(t, [*APT_ENV, *argv], APT_TIMEOUT)


async def _install(t: Transport, change: Change) -> None:
    install = [*APT_INSTALL, *change.packages]
    if change.update_first:
        await _apt(t, APT_UPDATE)
        await _apt(t, install)
        return
    try:
        await _apt(t, install)
    except ApplyError:  # stale package lists: update once, then try again
        await _apt(t, APT_UPDATE)
        await _apt(t, install)


async def _unit(t: Transport, change: Change) -> None:
    # A masked or disabled unit is also stopped: alone, both leave a running one running.
    now = ["--now"] if change.kind in (MASK, DISABLE) else []
    argv = ["systemctl", SYSTEMCTL[change.kind], *now, "--", change.target]
    automount = change.kind in (START, RESTART) and change.target.endswith(".automount")
    if automount:
        # systemd cannot restart an automount: stop it, then start it.
        await t.run(["systemctl", "stop", "--", change.target], sudo=True, timeout=60)
        argv = ["systemctl", "start", "--", change.target]
    try:
        await _run(t, argv)
    except ApplyError as exc:
        if automount and "not supported" in str(exc):
            # No autofs (a container): mount now instead; plan_node then counts the
            # active .mount as the automount's job done.
            mount = change.target.removesuffix(".automount") + ".mount"
            await _run(t, ["systemctl", "restart", "--", mount])
            return
        status = await t.run(
            ["journalctl", "-u", change.target, "-n", "5", "--no-pager", "-o", "cat"],
            sudo=True,
            timeout=30,
        )
        log = " / ".join(status.stdout.strip().splitlines()[-5:])
        raise ApplyError(f"{exc}; journal: {log}" if log else str(exc)) from exc


async def apply_change(t: Transport, change: Change) -> None:
    """Do one (non-network) change on a node; ApplyError/TransportError when it fails."""
    if change.kind == FILE:
        wanted = change.files[0]
        parent = wanted.path.rsplit("/", 1)[0] or "/"
        await _run(t, ["mkdir", "-p", "--", parent])
        await t.write_file(
            wanted.path, wanted.content, mode=wanted.mode, owner=wanted.owner, group=wanted.group
        )
    elif change.kind == HOSTNAME:
        await _run(t, ["hostname", "--", change.target])
    elif change.kind == PACKAGES:
        await _install(t, change)
    elif change.kind == DIR and change.directory is not None:
        d = change.directory
        argv = ["install", "-d", "-m", f"{d.mode:o}", "-o", d.owner, "-g", d.group, d.path]
        await _run(t, argv)
    elif change.kind == DAEMON_RELOAD:
        await _run(t, ["systemctl", "daemon-reload"])
    elif change.kind in SYSTEMCTL:
        await _unit(t, change)
    elif change.kind in undo.REMOVAL_KINDS:
        removal = undo.removal_argv(change)
        if removal is not None and change.kind == PURGE:
            await _apt(t, removal)
        elif removal is not None:
            await _run(t, removal)
    else:
        raise ApplyError(f"unknown change {change.kind}")


async def _write_record(t: Transport, record: NodeRecord, path: str) -> None:
    """The node's record of what piherd created, root's only, replaced atomically."""
    parent = path.rsplit("/", 1)[0] or "/"
    await _run(t, ["mkdir", "-p", "-m", undo.RECORD_DIR_MODE, "--", parent])
    await t.write_file(path, record.to_text().encode(), mode=RECORD_MODE)


async def _shipped(t: Transport, paths: Sequence[str]) -> list[str]:
    """Those of `paths` that exist now (after a package install: the package's own)."""
    if not paths:
        return []
    script = 'for p; do if [ -e "$p" ] || [ -L "$p" ]; then printf "%s\\n" "$p"; fi; done'
    out = await _run(t, ["sh", "-c", script, "piherd-exists", *paths])
    return [line for line in out.splitlines() if line in paths]


# -- network move ---------------------------------------------------------------------


async def move_network(
    pool: Pool,
    node_name: str,
    static: str,
    stack: str,
    interface: str,
    change: Change,
    facts: NodeFacts,
    options: UpOptions,
) -> None:
    """Write new network config with a rollback armed, reconnect at `static`, confirm."""
    t = await pool.get(node_name)
    old: dict[str, netmove.OldFile] = {}
    for wanted in change.files:
        now = facts.file(wanted.path)
        content = await t.read_file(wanted.path, sudo=True) if now.exists else None
        old[wanted.path] = netmove.OldFile(
            wanted.path, content, now.mode or 0o600, now.owner or "root", now.group or "root"
        )
    script = netmove.rollback_script(stack, interface, old)
    units = [netmove.ROLLBACK_UNIT, netmove.APPLY_UNIT]
    await t.run(["systemctl", "stop", *[f"{u}.timer" for u in units[:1]], *units], sudo=True)
    await t.run(["systemctl", "reset-failed", *units], sudo=True)
    await _run(t, ["mkdir", "-p", netmove.STATE_DIR])
    await t.write_file(netmove.ROLLBACK_SCRIPT, script.encode(), mode=0o700)
    await t.write_file(netmove.MARKER, b"", mode=0o600)
    await _run(
        t,
        [
            "systemd-run",
            f"--unit={netmove.ROLLBACK_UNIT}",
            f"--on-active={int(options.rollback_after)}s",
            "--timer-property=AccuracySec=1s",
            "/bin/sh",
            netmove.ROLLBACK_SCRIPT,
        ],
    )
    for wanted in change.files:
        await apply_change(t, Change(FILE, wanted.path, "", files=(wanted,)))
    ids = tuple(
        netmove.connection_id(f.path, f.content)
        for f in change.files
        if f.path.endswith(".nmconnection")
    )
    activate = netmove.activate_command(stack, interface, ids)
    await _run(
        t, ["systemd-run", f"--unit={netmove.APPLY_UNIT}", "--collect", "/bin/sh", "-c", activate]
    )
    await pool.forget(node_name)
    deadline = time.monotonic() + options.network_timeout
    last = "no answer"
    while time.monotonic() < deadline:
        await asyncio.sleep(2.0)
        try:
            t = await pool.get(node_name)
            out = await _run(t, ["ip", "-4", "-o", "addr", "show"], timeout=15)
        except (TransportError, ApplyError) as exc:
            last = str(exc)
            await pool.forget(node_name)
            continue
        if f" {static}/" in out and getattr(t, "address", static) == static:
            await _run(t, ["rm", "-f", netmove.MARKER])
            await t.run(["systemctl", "stop", f"{netmove.ROLLBACK_UNIT}.timer"], sudo=True)
            return
        last = f"answers at {getattr(t, 'address', '?')} but {static} is not configured yet"
        await pool.forget(node_name)
    raise ApplyError(
        f"not reachable at {static} within {options.network_timeout:g}s ({last}); "
        f"the node restores its previous network config after {options.rollback_after:g}s"
    )


# -- one node, the cluster -------------------------------------------------------------


async def apply_plan(
    pool: Pool,
    cluster: Cluster,
    plan: Plan,
    facts: NodeFacts,
    reporter: Reporter,
    options: UpOptions,
    result: NodeResult | None = None,
) -> NodeResult:
    """Apply one node's plan in order; stop at its first failure and record why.

    `result` (optional) is filled as changes apply, so it still tells how far the node
    got when the run is cancelled (Ctrl-C): status "interrupted".
    """
    if result is None:
        result = NodeResult(plan.node)
    result.planned = len(plan.changes)
    started = time.monotonic()
    node = cluster.node(plan.node)
    owed = sorted({c.target for c in plan.changes if c.kind in (RESTART, RELOAD)})
    try:
        if owed:  # remembered on the node until done, so an interrupted run still restarts
            t = await pool.get(plan.node)
            await _run(t, ["mkdir", "-p", "--", netmove.STATE_DIR])
            await t.write_file(PENDING_RESTARTS, "\n".join(owed).encode() + b"\n", mode=0o644)
        keep = options.record_path
        record = plan.record
        intent = undo.record_to_write(plan.intent, facts.record) if keep else None
        if intent is not None:  # before any change: whatever this run creates is recorded
            await _write_record(await pool.get(plan.node), intent, keep)
        unit_failures: list[str] = []
        for change in plan.changes:
            reporter.change(plan.node, change)
            if change.kind in (START, RESTART, RELOAD):
                # One unit failing to start must not keep the others from starting.
                try:
                    await apply_change(await pool.get(plan.node), change)
                except ApplyError as exc:
                    unit_failures.append(str(exc))
                    continue
            elif change.kind == NETWORK:
                stack = facts.network_stack or node.network_stack
                await move_network(
                    pool,
                    node.name,
                    str(node.address),
                    stack,
                    node.interface,
                    change,
                    facts,
                    options,
                )
            elif change.kind == PACKAGES:
                # apt-get or dpkg killed half-way leaves packages half-installed: on Ctrl-C
                # the install runs to its end first (a second Ctrl-C stops it at once).
                install = asyncio.ensure_future(apply_change(await pool.get(plan.node), change))
                try:
                    await asyncio.shield(install)
                except asyncio.CancelledError:
                    reporter.phase(plan.node, "interrupted: letting the package install finish")
                    with contextlib.suppress(ApplyError, TransportError):
                        await install
                        result.applied.append(change)
                    raise
                if keep and plan.record is not None:  # what the packages brought is theirs
                    new = newly_created(facts.record, plan.record)
                    shipped = await _shipped(await pool.get(plan.node), new)
                    if shipped:
                        record = forget_paths(plan.record, shipped)
                        intent = forget_paths(intent or plan.record, shipped)
                        await _write_record(await pool.get(plan.node), intent, keep)
            else:
                await apply_change(await pool.get(plan.node), change)
            result.applied.append(change)
        if unit_failures:
            raise ApplyError("; ".join(unit_failures))
        if owed or facts.pending_restarts:
            await _run(await pool.get(plan.node), ["rm", "-f", "--", PENDING_RESTARTS])
        final = undo.record_to_write(record, intent or facts.record) if keep else None
        if final is not None:
            await _write_record(await pool.get(plan.node), final, keep)
        result.status = "changed" if plan.changes else "unchanged"
    except (ApplyError, TransportError) as exc:
        result.status = "failed"
        result.reason = exc.reason if isinstance(exc, TransportError) else str(exc)
    except Exception as exc:  # a bug or an odd node must not stop the other nodes
        result.status = "failed"
        result.reason = f"internal error: {exc!r}"
    except asyncio.CancelledError:
        result.status = "interrupted"
        result.reason = f"after {len(result.applied)} of {result.planned} changes"
        result.elapsed = time.monotonic() - started
        reporter.done(result)
        raise
    finally:
        result.elapsed = time.monotonic() - started
    reporter.done(result)
    return result


@dataclass
class UpResult:
    """Every node's result, plans included (dry runs only plan)."""

    results: dict[str, NodeResult]
    plans: dict[str, Plan]
    facts: dict[str, NodeFacts]

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if r.failed]


async def _facts(pool: Pool, name: str, desired: DesiredNode, options: UpOptions) -> NodeFacts:
    t = await pool.get(name)
    paths = (*desired.paths, *parent_paths(desired))  # parents: which ones a write creates
    units = [u.name for u in desired.units]
    return await gather_facts(
        t, paths, units, timeout=options.fact_timeout, record_path=options.record_path
    )


async def _old_contents(pool: Pool, plan: Plan) -> dict[str, bytes | None]:
    """Current bytes of the files a plan rewrites (secrets are never read)."""
    t = await pool.get(plan.node)
    old: dict[str, bytes | None] = {}
    for change in plan.changes:
        for wanted in change.files:
            if not wanted.secret:
                old[wanted.path] = await t.read_file(wanted.path, sudo=True)
    return old


async def up(
    cluster: Cluster,
    pool: Pool,
    build: DesiredBuilder,
    reporter: Reporter,
    options: UpOptions,
    names: Sequence[str],
    results: dict[str, NodeResult] | None = None,
) -> UpResult:
    """Gather facts, plan and (unless dry-run) apply on `names`: head first, then the rest.

    `results` (optional) is filled as nodes start and finish, so the caller still has
    them when the run is cancelled.
    """
    results = {} if results is None else results
    facts: dict[str, NodeFacts] = {}
    skeleton = build(cluster, {})  # paths and units do not depend on facts

    selected = set(names)

    async def one_facts(name: str) -> None:
        if name in selected:
            reporter.phase(name, "gathering facts")
        try:
            facts[name] = await _facts(pool, name, skeleton[name], options)
        except (TransportError, ApplyError) as exc:
            if name not in selected:
                return  # only its hardware/host keys were wanted, for the others' files
            reason = exc.reason if isinstance(exc, TransportError) else str(exc)
            results[name] = NodeResult(name, "failed", reason=reason)
            reporter.done(results[name])

    # Facts of every node, even outside `names`: slurm.conf, hosts and known_hosts on the
    # selected nodes name them all, and must not change with the node set given.
    await asyncio.gather(*(one_facts(n.name) for n in cluster.nodes))
    desired = build(cluster, facts)
    plans = {n: plan_node(desired[n], facts[n], purge=options.purge) for n in names if n in facts}
    facts = {n: f for n, f in facts.items() if n in selected}
    if options.dry_run:
        for name, plan in plans.items():
            old: dict[str, bytes | None] = {}
            if options.diffs:
                with contextlib.suppress(TransportError, ApplyError):
                    old = await _old_contents(pool, plan)
            plans[name] = plan_node(desired[name], facts[name], old, purge=options.purge)
            for change in plans[name].changes:
                reporter.change(name, change)
            results[name] = NodeResult(
                name, "changed" if plan.changes else "unchanged", planned=len(plan.changes)
            )
            reporter.done(results[name])
        return UpResult(results, plans, facts)

    limit = asyncio.Semaphore(max(1, options.parallel))

    async def one_apply(name: str) -> None:
        async with limit:
            reporter.phase(name, f"applying {len(plans[name].changes)} changes")
            results[name] = NodeResult(name)
            await apply_plan(
                pool, cluster, plans[name], facts[name], reporter, options, results[name]
            )

    head = cluster.head.name
    if head in plans:
        await one_apply(head)
    await asyncio.gather(*(one_apply(n) for n in names if n in plans and n != head))
    return UpResult(results, plans, facts)
