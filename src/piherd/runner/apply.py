"""Apply plans over the connection pool: every node at once, each worker waiting for
the head's apply where it needs the head (ops.plan.head_needed_from).

A node's failure is recorded with its reason and never stops the others. Files go through
the transport's atomic write (temp file + rename), so Ctrl-C or a dropped connection leaves
no truncated file. A network change is applied with a rollback armed on the node first.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from piherd.facts.node_facts import NodeFacts
from piherd.facts.record import RECORD_MODE, RECORD_PATH, NodeRecord
from piherd.facts.script import PENDING_RESTARTS
from piherd.model import Cluster
from piherd.ops import debian
from piherd.ops.bookkeeping import forget_paths, newly_created, record_to_write
from piherd.ops.changes import Change, ChangeKind, DesiredNode, Plan
from piherd.ops.plan import head_needed_from, plan_node
from piherd.ops.removals import parent_paths
from piherd.runner.fanout import each_node
from piherd.runner.gather import gather_facts
from piherd.runner.login_guard import reload_guarded
from piherd.runner.netmove import OldFile, move_network
from piherd.runner.node_lock import NodeLocks, node_lock_path, node_locks
from piherd.runner.node_step import ApplyError, Pool, run_checked, write_desired_file
from piherd.transport.base import Transport, TransportError

# ApplyError and Pool live in runner/node_step.py (netmove.py needs them too).
__all__ = [
    "ApplyError",
    "DesiredBuilder",
    "NodeResult",
    "Pool",
    "Reporter",
    "UpOptions",
    "UpResult",
    "apply_change",
    "apply_plan",
    "up",
]

APT_TIMEOUT = 1200.0


class Reporter(Protocol):
    """Receives progress events (runner/progress.py has the terminal, plain and JSON ones)."""

    def phase(self, node: str, text: str) -> None: ...

    def change(self, node: str, change: Change) -> None: ...

    def done(self, result: NodeResult) -> None: ...


WOULD_CHANGE = "would change"  # a dry run's status of a node a real run would change


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


# -- one change: ops/debian.py has the commands, these the order and the recovery ------


async def _apt(t: Transport, argv: Sequence[str]) -> None:
    """Run an apt-get command; when an earlier dpkg run was cut off, finish it first."""
    try:
        await run_checked(t, argv, APT_TIMEOUT)
    except ApplyError as exc:
        if debian.DPKG_INTERRUPTED not in str(exc):
            raise
        await run_checked(t, debian.dpkg_resume(), APT_TIMEOUT)
        await run_checked(t, argv, APT_TIMEOUT)


async def _install(t: Transport, change: Change) -> None:
    install = debian.apt_install(change.packages)
    if change.update_first:
        await _apt(t, debian.apt_update())
        await _apt(t, install)
        return
    try:
        await _apt(t, install)
    except ApplyError:  # stale package lists: update once, then try again
        await _apt(t, debian.apt_update())
        await _apt(t, install)


async def _unit(t: Transport, change: Change) -> None:
    argv = debian.systemctl_for(change.kind, change.target)
    automount = change.target.endswith(".automount") and change.kind in (
        ChangeKind.START,
        ChangeKind.RESTART,
    )
    if automount:
        # systemd cannot restart an automount: stop it, then start it.
        await t.run(debian.systemctl_stop(change.target), sudo=True, timeout=60)
        argv = debian.systemctl_start(change.target)
    try:
        await run_checked(t, argv)
    except ApplyError as exc:
        if automount and "not supported" in str(exc):
            # No autofs (a container): mount now instead; plan_node then counts the
            # active .mount as the automount's job done.
            mount = change.target.removesuffix(".automount") + ".mount"
            await run_checked(t, debian.systemctl_restart(mount))
            return
        status = await t.run(debian.journal_tail(change.target), sudo=True, timeout=30)
        log = " / ".join(status.stdout.strip().splitlines()[-5:])
        raise ApplyError(f"{exc}; journal: {log}" if log else str(exc)) from exc


async def set_up_units(t: Transport, changes: Sequence[Change]) -> None:
    """Several changes of one set-up kind (enable, mask...) in one systemctl: systemd
    reloads its whole configuration once per enable or mask, not once per unit. When the
    batch fails, one at a time, so the error names the unit."""
    kind = changes[0].kind
    if not kind.sets_up_unit or any(c.kind != kind for c in changes):
        raise ApplyError(f"not one set-up kind: {[c.kind.value for c in changes]}")
    try:
        await run_checked(t, debian.systemctl_for(kind, *(c.target for c in changes)))
    except ApplyError:
        for change in changes:
            await _unit(t, change)


def batches(changes: Sequence[Change]) -> list[list[Change]]:
    """A plan's changes in apply order, runs of one set-up kind (enable, mask...) grouped."""
    out: list[list[Change]] = []
    for change in changes:
        if out and change.kind.sets_up_unit and out[-1][0].kind == change.kind:
            out[-1].append(change)
        else:
            out.append([change])
    return out


async def _write_file(t: Transport, change: Change) -> None:
    await write_desired_file(t, change.files[0])


async def _set_hostname(t: Transport, change: Change) -> None:
    await run_checked(t, debian.set_hostname(change.target))


async def _make_dir(t: Transport, change: Change) -> None:
    d = change.directory
    if d is None:
        raise ApplyError(f"dir change without a directory: {change.target}")
    await run_checked(t, debian.install_dir(d.path, d.mode, d.owner, d.group))


async def _daemon_reload(t: Transport, change: Change) -> None:
    await run_checked(t, debian.systemctl_daemon_reload())


async def _remove_file(t: Transport, change: Change) -> None:
    await run_checked(t, debian.remove_file(change.target))


async def _remove_dir(t: Transport, change: Change) -> None:
    # An admin's file inside keeps the directory (the change's reason says so).
    await run_checked(t, debian.remove_dir_if_empty(change.target))


async def _purge(t: Transport, change: Change) -> None:
    await _apt(t, debian.apt_purge(change.packages))


async def _report_only(t: Transport, change: Change) -> None:
    """KEEP: a file piherd would remove but the admin edited; shown, left in place."""


# ChangeKind.NETWORK is not here: it needs the pool, to reconnect (runner/netmove.py).
_STEPS: Mapping[ChangeKind, Callable[[Transport, Change], Awaitable[None]]] = MappingProxyType(
    {
        ChangeKind.HOSTNAME: _set_hostname,
        ChangeKind.PACKAGES: _install,
        ChangeKind.DIR: _make_dir,
        ChangeKind.FILE: _write_file,
        ChangeKind.DAEMON_RELOAD: _daemon_reload,
        **{kind: _unit for kind in ChangeKind if kind.sets_up_unit or kind.runs_unit},
        ChangeKind.STOP: _unit,
        ChangeKind.REMOVE: _remove_file,
        ChangeKind.REMOVE_DIR: _remove_dir,
        ChangeKind.PURGE: _purge,
        ChangeKind.KEEP: _report_only,
    }
)


async def apply_change(t: Transport, change: Change) -> None:
    """Do one (non-network) change on a node; ApplyError/TransportError when it fails."""
    step = _STEPS.get(change.kind)
    if step is None:
        raise ApplyError(f"unknown change {change.kind}")
    await step(t, change)


async def _write_record(t: Transport, record: NodeRecord, path: str) -> None:
    """The node's record of what piherd created, root's only, replaced atomically."""
    await run_checked(t, debian.mkdir_private(path.rsplit("/", 1)[0] or "/"))
    await t.write_file(path, record.to_text().encode(), mode=RECORD_MODE)


async def _shipped(t: Transport, paths: Sequence[str]) -> list[str]:
    """Those of `paths` that exist now (after a package install: the package's own)."""
    if not paths:
        return []
    out = await run_checked(t, debian.exists_filter(paths))
    return [line for line in out.splitlines() if line in paths]


# -- one node, the cluster -------------------------------------------------------------


# Takes a node's lock again after a reconnect: None, or why it could not.
Relock = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class HeadWait:
    """Where a node's plan waits for the head's own apply (ops.plan.head_needed_from),
    and the event set when the head is done, failed or not."""

    at: int
    done: asyncio.Event


class _NodeRun:
    """One node's plan being applied: its bookkeeping (owed restarts, the node's record)."""

    def __init__(
        self,
        pool: Pool,
        cluster: Cluster,
        plan: Plan,
        facts: NodeFacts,
        reporter: Reporter,
        options: UpOptions,
        result: NodeResult,
        relock: Relock | None = None,
    ) -> None:
        self.pool, self.plan, self.facts = pool, plan, facts
        self.relock = relock
        self.node = cluster.node(plan.node)
        self.reporter, self.options, self.result = reporter, options, result
        self.keep = options.record_path  # "": no record kept
        self.record = plan.record
        self.intent: NodeRecord | None = None
        self.owed = sorted(
            {c.target for c in plan.changes if c.kind in (ChangeKind.RESTART, ChangeKind.RELOAD)}
        )
        # Files that could lock logins out, and the units that read them (sshd).
        self.guarded = [
            f for c in plan.changes if c.kind == ChangeKind.FILE for f in c.files if f.guards_login
        ]
        self.guarded_units = {u for f in self.guarded for u in (*f.restarts, *f.reloads)}
        self.guarded_old: dict[str, OldFile] = {}

    async def transport(self) -> Transport:
        return await self.pool.get(self.plan.node)

    async def begin(self) -> None:
        """Remember owed restarts and what this run may create, before any change."""
        if self.owed:  # kept on the node until done, so an interrupted run still restarts
            t = await self.transport()
            await run_checked(t, debian.mkdir_parents(posixpath.dirname(PENDING_RESTARTS)))
            owed = "\n".join(self.owed).encode() + b"\n"
            await t.write_file(PENDING_RESTARTS, owed, mode=0o644)
        for wanted in self.guarded:  # as they are now, for the login rollback
            now = self.facts.file(wanted.path)
            t = await self.transport()
            content = await t.read_file(wanted.path, sudo=True) if now.exists else None
            mode, owner, group = now.mode or 0o644, now.owner or "root", now.group or "root"
            self.guarded_old[wanted.path] = OldFile(wanted.path, content, mode, owner, group)
        if self.keep:
            self.intent = record_to_write(self.plan.intent, self.facts.record)
            if self.intent is not None:
                await _write_record(await self.transport(), self.intent, self.keep)

    async def apply(self, change: Change) -> None:
        """One change, in the way its kind needs."""
        if change.kind == ChangeKind.NETWORK:
            await move_network(
                self.pool,
                self.node.name,
                str(self.node.address),
                self.facts.network_stack or self.node.network_stack,
                self.node.interface,
                change,
                self.facts,
                network_timeout=self.options.network_timeout,
                rollback_after=self.options.rollback_after,
            )
            await self.lock_again()
        elif change.kind in (ChangeKind.PACKAGES, ChangeKind.PURGE):
            await self.packages(change)
        elif change.kind.runs_unit and change.target in self.guarded_units:
            await reload_guarded(
                self.pool,
                self.plan.node,
                lambda t: apply_change(t, change),
                self.guarded_old,
                confirm_within=self.options.network_timeout,
                rollback_after=self.options.rollback_after,
            )
            await self.lock_again()
        else:
            await apply_change(await self.transport(), change)

    async def lock_again(self) -> None:
        """The node's lock went with the connection piherd just replaced: take it again."""
        if self.relock is not None:
            reason = await self.relock(self.plan.node)
            if reason is not None:
                raise ApplyError(f"lost the node's lock when reconnecting: {reason}")

    async def packages(self, change: Change) -> None:
        """apt-get or dpkg killed half-way leaves packages half-done: on Ctrl-C the run
        goes to its end first (a second Ctrl-C stops it at once)."""
        run = asyncio.ensure_future(apply_change(await self.transport(), change))
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            what = "install" if change.kind == ChangeKind.PACKAGES else "purge"
            self.reporter.phase(self.plan.node, f"interrupted: letting the package {what} finish")
            with contextlib.suppress(ApplyError, TransportError):
                await run
                self.result.applied.append(change)
            raise
        if change.kind == ChangeKind.PACKAGES and self.keep and self.record is not None:
            # Files the packages brought are theirs, not piherd's to remove later; what
            # piherd itself wrote before them (unit drop-ins) and its new parents stay its.
            written = [c.target for c in self.result.applied if c.kind == ChangeKind.FILE]
            new = [
                path
                for path in newly_created(self.facts.record, self.record)
                if path not in written and not any(w.startswith(path + "/") for w in written)
            ]
            shipped = await _shipped(await self.transport(), new)
            if shipped:
                self.record = forget_paths(self.record, shipped)
                self.intent = forget_paths(self.intent or self.record, shipped)
                await _write_record(await self.transport(), self.intent, self.keep)

    async def finish(self) -> None:
        """Owed restarts done: forget them; the record becomes exactly what is there."""
        if self.owed or self.facts.pending_restarts:
            await run_checked(await self.transport(), debian.remove_file(PENDING_RESTARTS))
        if self.keep:
            final = record_to_write(self.record, self.intent or self.facts.record)
            if final is not None:
                await _write_record(await self.transport(), final, self.keep)


async def apply_plan(
    pool: Pool,
    cluster: Cluster,
    plan: Plan,
    facts: NodeFacts,
    reporter: Reporter,
    options: UpOptions,
    result: NodeResult | None = None,
    relock: Relock | None = None,
    head: HeadWait | None = None,
) -> NodeResult:
    """Apply one node's plan in order; stop at its first failure and record why.

    `result` (optional) is filled as changes apply, so it still tells how far the node
    got when the run is cancelled (Ctrl-C): status "interrupted". `relock` takes the
    node's lock again after a change that reconnects on purpose (runner/node_lock.py).
    `head`: where to wait for the head's own apply to end.
    """
    result = result if result is not None else NodeResult(plan.node)
    result.planned = len(plan.changes)
    started = time.monotonic()
    run = _NodeRun(pool, cluster, plan, facts, reporter, options, result, relock)
    try:
        await run.begin()
        unit_failures: list[str] = []
        index = 0
        for batch in batches(plan.changes):
            index += len(batch)
            if head is not None and head.at < index and not head.done.is_set():
                reporter.phase(plan.node, "waiting for the head")
                await head.done.wait()
            for change in batch:
                reporter.change(plan.node, change)
            if len(batch) > 1:
                await set_up_units(await run.transport(), batch)
                result.applied.extend(batch)
                continue
            change = batch[0]
            try:
                await run.apply(change)
            except ApplyError as exc:
                if not change.kind.runs_unit:
                    raise
                unit_failures.append(str(exc))  # one unit must not keep the others down
                continue
            result.applied.append(change)
        if unit_failures:
            raise ApplyError("; ".join(unit_failures))
        await run.finish()
        result.status = "changed" if plan.alters else "unchanged"
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


async def _dry_run(
    pool: Pool, desired: DesiredNode, facts: NodeFacts, plan: Plan, options: UpOptions
) -> Plan:
    """`plan` again, its changes with unified diffs of the files it would rewrite."""
    old: dict[str, bytes | None] = {}
    if options.diffs:
        with contextlib.suppress(TransportError, ApplyError):
            old = await _old_contents(pool, plan)
    return plan_node(desired, facts, old, purge=options.purge)


async def up(
    cluster: Cluster,
    pool: Pool,
    build: DesiredBuilder,
    reporter: Reporter,
    options: UpOptions,
    names: Sequence[str],
    results: dict[str, NodeResult] | None = None,
) -> UpResult:
    """Gather facts, plan and (unless dry-run) apply on `names`; the head's apply goes
    first where the others need it.

    `results` (optional) is filled as nodes start and finish, so the caller still has
    them when the run is cancelled. Each node is locked for the whole run (beside its
    record, runner/node_lock.py): a node another `up` is changing fails with its holder.
    """
    results = {} if results is None else results
    lock = "" if options.dry_run else node_lock_path(options.record_path)
    async with node_locks(pool, names, lock) as locks:
        # A node another run holds (or that cannot be locked) is left alone, and says why.
        for name, reason in locks.refused.items():
            results[name] = NodeResult(name, "failed", reason=reason)
            reporter.done(results[name])
        free = [n for n in names if n not in locks.refused]
        return await _up_locked(cluster, pool, build, reporter, options, free, results, locks)


async def _up_locked(
    cluster: Cluster,
    pool: Pool,
    build: DesiredBuilder,
    reporter: Reporter,
    options: UpOptions,
    names: Sequence[str],
    results: dict[str, NodeResult],
    locks: NodeLocks,
) -> UpResult:
    """up() on nodes it holds: facts, plans, then the head's apply and the others'."""
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
    await each_node([n.name for n in cluster.nodes], one_facts)
    desired = build(cluster, facts)
    plans = {n: plan_node(desired[n], facts[n], purge=options.purge) for n in names if n in facts}
    facts = {n: f for n, f in facts.items() if n in selected}
    if options.dry_run:
        for name, first in plans.items():
            plan = plans[name] = await _dry_run(pool, desired[name], facts[name], first, options)
            for change in plan.changes:
                reporter.change(name, change)
            status = WOULD_CHANGE if plan.alters else "unchanged"
            results[name] = NodeResult(name, status, planned=len(plan.changes))
            reporter.done(results[name])
        return UpResult(results, plans, facts)

    head = cluster.head.name
    head_done = asyncio.Event()

    async def one_apply(name: str) -> None:
        count = len(plans[name].changes)
        reporter.phase(name, f"applying {count} change{'' if count == 1 else 's'}")
        results[name] = NodeResult(name)
        wait = None  # the head itself, or a run without it: nobody to wait for
        if head in plans and name != head:
            wait = HeadWait(head_needed_from(plans[name], desired[name]), head_done)
        await apply_plan(
            pool, cluster, plans[name], facts[name], reporter, options, results[name],
            locks.relock, wait,
        )  # fmt: skip

    async def head_apply() -> None:
        try:
            if head in plans:
                await one_apply(head)
        finally:
            head_done.set()

    # The others' packages, files and network move go on while the head is set up; each
    # waits for it at its first unit (a mount of the head's storage, slurmd) or, when
    # its packages come through the head, at its packages.
    rest = [n for n in names if n in plans and n != head]
    head_task = asyncio.ensure_future(head_apply())
    try:
        await each_node(rest, one_apply, limit=max(1, options.parallel))
        await head_task
    finally:
        if not head_task.done():  # cancelled (Ctrl-C), or a bug in the others' work
            head_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await head_task
    return UpResult(results, plans, facts)
