"""The `piherd upgrade` use case: a rolling upgrade through Slurm, canary first, in batches.

Per batch: every node is drained and its jobs finish (or are requeued), its packages are
upgraded and, when one is owed, it reboots (steps in app/upgrade_steps.py); then one `up` of
the batch's nodes puts back what cluster.toml describes; then each node passes the health
gate and is resumed. The first batch with a failed node stops the rollout: later batches
stay untouched, never drained.

Stopping (`stop` set, Ctrl-C once): nodes still waiting for their jobs are resumed
unchanged; nodes whose packages are changing finish (upgrade, up, gate, resume); no new
batch starts. Cancelling (Ctrl-C twice): nodes not yet changed are resumed; a node cut off
while its packages changed stays drained ("piherd: upgrade") and is reported so; the next
`piherd upgrade` takes it up again (its drain is recognised as the upgrade's own).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, MutableMapping, Sequence

from piherd.app.bring_up import up_cluster
from piherd.app.upgrade_steps import NodeRun, Progress, StepFailed, Steps, UpgradeOptions
from piherd.health.collect import HealthCollector
from piherd.health.slurm_state import node_jobs_argv, parse_queue
from piherd.model import Cluster
from piherd.ops import debian
from piherd.ops.changes import Change
from piherd.ops.rollout import (
    FAILED,
    INTERRUPTED,
    PLANNED,
    RESET,
    UNTOUCHED,
    UPGRADED,
    NodeOutcome,
    plan_batches,
    simulated_packages,
)
from piherd.runner.apply import NodeResult, UpOptions
from piherd.runner.fanout import each_node
from piherd.secrets import Secrets
from piherd.transport.pool import ConnectionPool

_CLEANUP_TIMEOUT = 20.0  # seconds to resume nodes after a cancel


class _UpProgress:
    """`up`'s reporter, passing its phases on as steps of the upgrade."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def phase(self, node: str, text: str) -> None:
        self.progress.step(node, "up", text)

    def change(self, node: str, change: Change) -> None:
        self.progress.step(node, "up", change.describe())

    def done(self, result: NodeResult) -> None:
        del result


def batches_for(cluster: Cluster, names: Sequence[str], options: UpgradeOptions) -> list[list[str]]:
    """The rollout's batches. The head (slurmctld) goes last, after its workers; in a release
    upgrade first, since slurmctld must be at least as new as every slurmd."""
    head = cluster.head.name
    if options.release and head in names:
        rest = [n for n in names if n != head]
        return [[head], *plan_batches(rest, canary=options.canary, batch=options.batch)]
    last = [head] if head in names else []
    return plan_batches(names, canary=options.canary, batch=options.batch, last=last)


def new_outcomes(
    cluster: Cluster, names: Sequence[str], options: UpgradeOptions
) -> dict[str, NodeOutcome]:
    """Every node's outcome before the rollout starts (untouched), in rollout order."""
    outcomes = {}
    for index, batch in enumerate(batches_for(cluster, names, options), start=1):
        canary = options.canary > 0 and index == 1 and cluster.head.name not in batch
        for name in batch:
            outcomes[name] = NodeOutcome(name, index, canary=canary)
    return outcomes


async def upgrade_cluster(
    cluster: Cluster,
    options: UpgradeOptions,
    progress: Progress,
    secrets: Secrets,
    outcomes: MutableMapping[str, NodeOutcome],
    stop: asyncio.Event,
) -> str:
    """Roll the upgrade over the nodes of `outcomes` (from new_outcomes; updated as nodes
    go, so the caller has them after a cancel). Returns why the rollout stopped early, or
    "" when every batch ran."""
    batches: dict[int, list[str]] = {}
    for outcome in outcomes.values():
        batches.setdefault(outcome.batch, []).append(outcome.node)
    async with ConnectionPool(cluster) as pool:
        collector = HealthCollector(cluster, pool, timeout=10.0)
        steps = Steps(cluster, collector, options, progress, stop)
        try:
            for index in sorted(batches):
                nodes = batches[index]
                if stop.is_set():
                    return "stopped (Ctrl-C) before this batch"
                progress.batch(index, nodes, outcomes[nodes[0]].canary)
                if options.dry_run:
                    await each_node(nodes, lambda n: _dry_run(steps, outcomes[n]))
                    continue
                await _batch(cluster, steps, secrets, nodes, outcomes)
                failed = [n for n in nodes if outcomes[n].state == FAILED]
                if failed:
                    kind = "canary" if outcomes[nodes[0]].canary else f"batch {index}"
                    return f"the {kind} failed on {', '.join(failed)}"
            return "stopped (Ctrl-C)" if stop.is_set() else ""
        finally:
            await collector.close()


async def _batch(
    cluster: Cluster,
    steps: Steps,
    secrets: Secrets,
    nodes: Sequence[str],
    outcomes: Mapping[str, NodeOutcome],
) -> None:
    """One batch: prepare (drain, jobs, apt, reboot) in parallel, one `up`, gate and resume."""
    runs = {name: NodeRun() for name in nodes}
    try:
        await each_node(nodes, lambda n: _prepare(steps, outcomes[n], runs[n]))
        ready = [n for n in nodes if runs[n].touched and outcomes[n].state != FAILED]
        if ready:
            await _up(cluster, steps, secrets, ready, outcomes, runs)
        ready = [n for n in ready if outcomes[n].state != FAILED]
        await each_node(ready, lambda n: _finish(steps, outcomes[n], runs[n]))
    except asyncio.CancelledError:
        with contextlib.suppress(TimeoutError):  # what was not resumed is reported so
            async with asyncio.timeout(_CLEANUP_TIMEOUT):
                await _after_cancel(steps, nodes, outcomes, runs)
        raise


async def _prepare(steps: Steps, outcome: NodeOutcome, run: NodeRun) -> None:
    name = outcome.node
    try:
        await steps.drain(name, outcome, run)
        if not await steps.wait_jobs(name, outcome):
            await steps.resume(name, outcome, run)
            outcome.reason = "stopped (Ctrl-C) before any change; back in service"
            run.finished = True
            return
        run.touched = True
        if steps.options.reset:
            await steps.reboot(name, outcome, "reset to the shared root")
        else:
            await steps.apt(name, outcome)
            await steps.reboot_if_needed(name, outcome)
    except StepFailed as exc:
        await _failed(steps, outcome, run, str(exc))


async def _failed(steps: Steps, outcome: NodeOutcome, run: NodeRun, why: str) -> None:
    """A step failed: before any change the node goes back into service; after, it stays
    drained with the reason."""
    run.finished = True
    if run.touched:
        await steps.keep_failed(outcome.node, outcome, run, why)
        return
    outcome.state, outcome.reason = FAILED, why
    with contextlib.suppress(StepFailed):
        await steps.resume(outcome.node, outcome, run)
    steps.progress.step(outcome.node, "failed", why)


async def _up(
    cluster: Cluster,
    steps: Steps,
    secrets: Secrets,
    ready: Sequence[str],
    outcomes: Mapping[str, NodeOutcome],
    runs: Mapping[str, NodeRun],
) -> None:
    """`up` of the batch's upgraded nodes: config files, units and packages as cluster.toml
    says (an upgrade may have replaced a config file or stopped a service)."""
    for name in ready:
        steps.mark(outcomes[name], "up", "piherd up")
    result = await up_cluster(cluster, ready, UpOptions(), _UpProgress(steps.progress), secrets)
    for name in ready:
        node_result = result.results.get(name)
        if node_result is None or node_result.failed:
            why = node_result.reason if node_result is not None else "no result"
            await _failed(steps, outcomes[name], runs[name], f"up: {why}")


async def _finish(steps: Steps, outcome: NodeOutcome, run: NodeRun) -> None:
    try:
        await steps.gate(outcome.node, outcome)
        await steps.resume(outcome.node, outcome, run)
    except StepFailed as exc:
        await _failed(steps, outcome, run, str(exc))
        return
    run.finished = True
    if steps.options.reset:
        outcome.state = RESET
        steps.mark(outcome, "done", "reset: clean, back in service")
        return
    outcome.state = UPGRADED
    steps.mark(outcome, "done", "upgraded" + (" and rebooted" if outcome.rebooted else ""))


async def _after_cancel(
    steps: Steps,
    nodes: Sequence[str],
    outcomes: Mapping[str, NodeOutcome],
    runs: Mapping[str, NodeRun],
) -> None:
    """After a cancel: unchanged nodes back into service; changed ones reported."""
    for name in nodes:
        outcome, run = outcomes[name], runs[name]
        if run.finished:
            continue
        if run.touched:
            outcome.state = INTERRUPTED
            outcome.reason = (
                "cut off while upgrading: left drained (piherd: upgrade); "
                "run `piherd upgrade` again to finish it"
            )
            continue
        outcome.reason = "interrupted before any change; back in service"
        try:
            await steps.resume(name, outcome, run)
        except StepFailed as exc:
            outcome.reason = f"interrupted before any change; resume failed: {exc}"
        outcome.state = UNTOUCHED


async def _dry_run(steps: Steps, outcome: NodeOutcome) -> None:
    """What would happen to the node: its Slurm state, its jobs, the packages (its package
    lists are refreshed, as `apt-get update` does; no package is changed)."""
    name = outcome.node
    outcome.state = PLANNED
    try:
        if steps.in_slurm(name):
            node = await steps.slurm_node(name)
            jobs = parse_queue(await steps.on_head(node_jobs_argv(name)))
            if node is not None and node.held and not node.drained_for_upgrade:
                outcome.slurm = f"kept drained: {node.reason}"
            else:
                outcome.slurm = "would drain"
            if jobs:
                ids = ", ".join(j.job_id for j in jobs)
                outcome.slurm += f"; would {'requeue' if steps.options.requeue else 'wait for'}"
                outcome.slurm += f" job(s) {ids}"
        full = bool(steps.options.release)
        if not full:  # a release upgrade's lists would need its sources: not switched here
            await steps.on_node(name, debian.apt_update(), 600)
        out = await steps.on_node(name, debian.apt_upgrade_simulated(full=full), 120)
        outcome.packages = simulated_packages(out)
    except StepFailed as exc:
        outcome.reason = str(exc)
    steps.progress.step(name, "plan", f"{len(outcome.packages)} package(s); {outcome.slurm}")
