"""The steps `piherd upgrade` takes on one node: drain in Slurm, wait for (or requeue) its
jobs, apt upgrade, reboot when one is owed, the health gate, resume. Every command line
comes from ops/debian.py and health/slurm_state.py; Slurm is asked on the head."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from piherd.app.first_identity import own_keys_again
from piherd.app.power_control import PowerSetupError, power, power_targets
from piherd.health.collect import HealthCollector
from piherd.health.probe import NodeHealth
from piherd.health.slurm_state import (
    UPGRADE_REASON,
    SlurmNode,
    drain_argv,
    node_argv,
    node_jobs_argv,
    parse_nodes,
    parse_queue,
    requeue_argv,
    resume_argv,
)
from piherd.health.verdicts import Level, Verdict
from piherd.model import Cluster
from piherd.ops import debian
from piherd.ops.rollout import (
    BatchSize,
    NodeOutcome,
    apt_failure,
    has_rebooted,
    upgraded_packages,
)
from piherd.services import netboot
from piherd.services.slurm import SlurmSettings
from piherd.transport.base import TransportError

APT_UPDATE_TIMEOUT = 600.0
APT_UPGRADE_TIMEOUT = 3600.0
REBOOT_PROBE_EVERY = 3.0  # seconds between SSH tries while a node reboots (a Pi needs ~30 s)
STILL_WAITING_EVERY = 60.0  # seconds between "still waiting for jobs" lines
_REASON_MAX = 200  # characters of a failure kept in the Slurm reason


@dataclass(frozen=True)
class UpgradeOptions:
    """What `piherd upgrade` was asked to do (see its --help)."""

    canary: int = 1
    batch: BatchSize = field(default_factory=BatchSize)
    reboot: str = "auto"  # "auto": when a node owes one; "never"
    requeue: bool = False
    release: str = ""  # a major release upgrade to this release (full-upgrade), or ""
    dry_run: bool = False
    drain_timeout: float = 0.0  # seconds to wait for a node's jobs; 0: as long as they run
    reboot_timeout: float = 600.0
    gate_timeout: float = 300.0
    poll: float = 2.0
    reset: bool = False  # `piherd reset`: no packages; every node reboots to its clean root


class Progress(Protocol):
    """Receives what the rollout does, as it happens."""

    def step(self, node: str, step: str, text: str) -> None: ...

    def batch(self, index: int, nodes: Sequence[str], canary: bool) -> None: ...

    def note(self, text: str) -> None: ...


class StepFailed(Exception):
    """A step failed on a node; the message is the reason shown in the report."""


@dataclass
class NodeRun:
    """What this run did to a node so far: whether it drained it, changed its packages."""

    ours: bool = False  # drained by this rollout: resume it when done
    touched: bool = False  # packages are being (or were) changed
    finished: bool = False


def gate_problems(health: NodeHealth, verdict: Verdict, *, compute: bool) -> list[str]:
    """Why a node may not go back into service yet (empty: it may): the status rules'
    critical findings, slurmd not active, or slurmctld not hearing from it."""
    problems = list(verdict.critical) if verdict.level == Level.CRITICAL else []
    if not health.reachable:
        return problems or ["unreachable"]
    if compute:
        state = health.services.get("slurmd", "unknown")
        if state not in ("active", "unknown"):
            problems.append(f"slurmd {state}")
        slurm = health.slurm
        if slurm is None:
            problems.append("not known to slurmctld")
        elif "NOT_RESPONDING" in slurm.flags or slurm.state in ("down", "unknown"):
            problems.append(f"slurmctld sees it {slurm.label}")
    return problems


def _has_power_controller(cluster: Cluster, name: str) -> bool:
    try:
        power_targets(cluster, [name])
    except PowerSetupError:
        return False
    return True


class Steps:
    """The steps of one rollout, over the collector's connection pool."""

    def __init__(
        self,
        cluster: Cluster,
        collector: HealthCollector,
        options: UpgradeOptions,
        progress: Progress,
        stop: asyncio.Event,
    ) -> None:
        self.cluster = cluster
        self.collector = collector
        self.options = options
        self.progress = progress
        self.stop = stop
        self._slurm = cluster.services.is_on(SlurmSettings)

    def in_slurm(self, name: str) -> bool:
        return self._slurm and self.cluster.node(name).compute

    def mark(self, outcome: NodeOutcome, step: str, text: str) -> None:
        outcome.times[step] = time.time()
        self.progress.step(outcome.node, step, text)

    async def on_head(self, argv: Sequence[str]) -> str:
        """Run argv as root on the head (Slurm's commands); StepFailed when it fails."""
        error, out, _ = await self.collector.run_on(
            self.cluster.head.name, argv, sudo=True, timeout=60
        )
        if error is not None:
            raise StepFailed(f"`{' '.join(argv[:3])}` on {self.cluster.head.name}: {error}")
        return out

    async def on_node(self, name: str, argv: Sequence[str], timeout: float) -> str:
        """Run argv as root on the node; its output, or StepFailed with why."""
        try:
            transport = await self.collector.pool.get(name)
            result = await transport.run(argv, sudo=True, timeout=timeout)
        except TransportError as exc:
            raise StepFailed(exc.reason) from None
        if result.error is not None:
            raise StepFailed(result.error)
        if result.rc != 0:
            raise StepFailed(apt_failure(result.stdout + "\n" + result.stderr))
        return result.stdout

    async def slurm_node(self, name: str) -> SlurmNode | None:
        nodes = parse_nodes(await self.on_head(node_argv(name)))
        return nodes.get(name)

    async def drain(self, name: str, outcome: NodeOutcome, run: NodeRun) -> None:
        """Drain the node with piherd's upgrade reason, unless someone else holds it drained
        (then it stays theirs: never resumed by this run)."""
        if not self.in_slurm(name):
            return
        node = await self.slurm_node(name)
        if node is None:
            raise StepFailed("not known to slurmctld")
        if node.held and not node.drained_for_upgrade:
            outcome.slurm = f"kept drained: {node.reason} ({node.reason_user or 'admin'})"
            self.mark(outcome, "drain", f"already drained ({node.reason!r}): kept, not resumed")
            return
        await self.on_head(drain_argv(name, UPGRADE_REASON))
        run.ours = True
        outcome.slurm = "drained"
        self.mark(outcome, "drain", f"drained in Slurm ({UPGRADE_REASON})")

    async def _pause(self) -> bool:
        """Sleep one poll interval; True when a stop was asked for meanwhile."""
        try:
            async with asyncio.timeout(self.options.poll):
                await self.stop.wait()
        except TimeoutError:
            pass
        return self.stop.is_set()

    async def wait_jobs(self, name: str, outcome: NodeOutcome) -> bool:
        """Wait until no job holds the node (requeue them with --requeue); False when a stop
        was asked for first. StepFailed after --drain-timeout."""
        if not self.in_slurm(name):
            return not self.stop.is_set()
        started = time.monotonic()
        shown: tuple[str, ...] = ()
        shown_at = started
        requeued: set[str] = set()
        while True:
            jobs = parse_queue(await self.on_head(node_jobs_argv(name)))
            ids = tuple(j.job_id for j in jobs)
            if not ids:
                self.mark(outcome, "jobs_done", "no job running")
                return True
            waited = time.monotonic() - started
            if ids != shown or time.monotonic() - shown_at >= STILL_WAITING_EVERY:
                since = f" ({waited:.0f}s so far)" if shown else ""
                self.progress.step(name, "jobs", f"waiting for job(s) {', '.join(ids)}{since}")
                shown, shown_at = ids, time.monotonic()
            if self.options.requeue:
                for job_id in (i for i in ids if i not in requeued and i.isdigit()):
                    requeued.add(job_id)
                    try:
                        await self.on_head(requeue_argv(job_id))
                        self.progress.step(name, "jobs", f"requeued job {job_id}")
                    except StepFailed as exc:
                        self.progress.step(name, "jobs", f"job {job_id} not requeued ({exc})")
            limit = self.options.drain_timeout
            if limit and waited > limit:
                raise StepFailed(f"job(s) {', '.join(ids)} still running after {limit:g}s")
            if await self._pause():
                return False

    async def apt(self, name: str, outcome: NodeOutcome) -> None:
        """Switch the release (--release), refresh the lists, upgrade."""
        release = self.options.release
        self.mark(outcome, "upgrade", "apt-get " + ("full-upgrade" if release else "upgrade"))
        if release:
            old = self.cluster.node(name).os
            await self.on_node(name, debian.switch_release(old, release), 60)
            self.progress.step(name, "upgrade", f"apt sources: {old} -> {release}")
        # Finish what an interrupted dpkg left (a power cut, an earlier run cut off):
        # apt refuses to upgrade until then. Nothing to do, nothing done.
        await self.on_node(name, debian.dpkg_resume(), APT_UPGRADE_TIMEOUT)
        await self.on_node(name, debian.apt_update(), APT_UPDATE_TIMEOUT)
        out = await self.on_node(name, debian.apt_upgrade(full=bool(release)), APT_UPGRADE_TIMEOUT)
        outcome.packages = upgraded_packages(out)
        count = len(outcome.packages)
        self.mark(outcome, "upgraded", f"{count} package(s) upgraded")

    async def reboot_if_needed(self, name: str, outcome: NodeOutcome) -> None:
        """Reboot when the node owes one (--reboot auto; always after --release) and wait
        until SSH answers from the new boot (rollout.has_rebooted)."""
        if self.options.reboot == "never":
            return
        why: tuple[str, ...] = ("a release upgrade",) if self.options.release else ()
        if not why:
            health, _ = await self.collector.probe(name)
            why = health.reboot_needed
        if not why:
            return
        await self.reboot(name, outcome, "; ".join(why))

    async def reboot(self, name: str, outcome: NodeOutcome, why: str) -> None:
        """Reboot the node (its power controller cycles it when it has one; else it reboots
        itself) and wait until SSH answers from the new boot (rollout.has_rebooted). A node
        that boots from the network comes back with the shared root's first-boot key and is
        given its own keys again first."""
        before = await self.on_node(name, debian.boot_marks(), 30)
        powered = _has_power_controller(self.cluster, name)
        self.mark(outcome, "reboot", f"rebooting ({'power cycle' if powered else 'ssh'}): {why}")
        asked = time.monotonic()
        if powered:
            done = await power(self.cluster, [name], "cycle", reason=f"piherd: {why}")
            if not done or not done[0].ok:
                raise StepFailed(f"power cycle: {done[0].error if done else 'no outcome'}")
        else:
            await self.on_node(name, debian.reboot_soon(), 30)
        await self.collector.pool.forget(name)
        netbooted = name in netboot.settings_of(self.cluster).node_models
        deadline = time.monotonic() + self.options.reboot_timeout
        await asyncio.sleep(REBOOT_PROBE_EVERY)
        while time.monotonic() < deadline:
            try:
                if netbooted:
                    await own_keys_again(self.cluster, name)
                async with asyncio.timeout(10):
                    now = await self.on_node(name, debian.boot_marks(), 10)
                if has_rebooted(before, now, time.monotonic() - asked):
                    outcome.rebooted = True
                    self.mark(outcome, "back", "back after the reboot (SSH answers)")
                    return
            except (StepFailed, TimeoutError):
                await self.collector.pool.forget(name)
            await asyncio.sleep(REBOOT_PROBE_EVERY)
        raise StepFailed(f"not back within {self.options.reboot_timeout:g}s after the reboot")

    async def gate(self, name: str, outcome: NodeOutcome) -> None:
        """Wait until the node passes the health gate; StepFailed with what is wrong."""
        self.mark(outcome, "gate", "health gate")
        compute = self.in_slurm(name)
        deadline = time.monotonic() + self.options.gate_timeout
        problems: list[str] = []
        while time.monotonic() < deadline:
            snap = await self.collector.round([name])
            health = next(h for h in snap.health if h.node == name)
            problems = gate_problems(health, snap.verdicts[name], compute=compute)
            if not problems:
                return
            await asyncio.sleep(self.options.poll)
        raise StepFailed(f"health gate: {'; '.join(problems)}")

    async def resume(self, name: str, outcome: NodeOutcome, run: NodeRun) -> None:
        """Back into service, when this run drained it."""
        if run.ours:
            await self.on_head(resume_argv(name))
            run.ours = False
            outcome.slurm = "drained, then resumed"
            self.mark(outcome, "resumed", "resumed in Slurm")

    async def keep_failed(self, name: str, outcome: NodeOutcome, run: NodeRun, why: str) -> None:
        """A node whose packages changed and failed stays drained, with the reason in Slurm
        (`watch` leaves it alone; the next `piherd upgrade` takes it up again)."""
        outcome.state, outcome.reason = "failed", why
        if run.ours:
            reason = f"{UPGRADE_REASON} failed: {why}"[:_REASON_MAX]
            try:
                await self.on_head(drain_argv(name, reason))
                outcome.slurm = "left drained: upgrade failed"
            except StepFailed as exc:
                outcome.slurm = f"drained ({UPGRADE_REASON}); its reason not updated: {exc}"
        self.progress.step(name, "failed", why)
