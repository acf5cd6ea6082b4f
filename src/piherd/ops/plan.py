"""Desired state vs facts -> a Plan of ordered changes, each with its reason. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping

from piherd.facts.node_facts import NodeFacts
from piherd.ops.bookkeeping import intent_record, next_record
from piherd.ops.changes import Change, ChangeKind, DesiredFile, DesiredNode, Plan
from piherd.ops.diff import file_diff, sha256
from piherd.ops.removals import owed_restarts, plan_removals

# Files that must be in place before packages install: the name and the apt set-up.
EARLY_PREFIXES = ("/etc/hostname", "/etc/hosts", "/etc/apt/")
# So are drop-ins of units (/etc/systemd/system/UNIT.d/): a package starts its daemon as it
# installs, and the drop-in must hold from that first start (node_exporter and Prometheus
# listen on the cluster address only, never on all addresses for a moment).
DROPIN_DIR = re.compile(r"/etc/systemd/system/[^/]+\.d/[^/]+\.conf")
# Files whose change moves the node on the network (applied with rollback).
NETWORK_PREFIXES = (
    "/etc/NetworkManager/system-connections/",
    "/etc/dhcpcd.conf",
    "/etc/systemd/network/",
)
UNIT_DIRS = ("/etc/systemd/system/", "/lib/systemd/system/", "/usr/lib/systemd/system/")


def is_early_file(path: str) -> bool:
    """True for files written before packages install (see EARLY_PREFIXES, DROPIN_DIR)."""
    return path.startswith(EARLY_PREFIXES) or DROPIN_DIR.fullmatch(path) is not None


def is_network_file(path: str) -> bool:
    return path.startswith(NETWORK_PREFIXES)


def file_reason(facts: NodeFacts, wanted: DesiredFile) -> str | None:
    """Why `wanted` must be written, or None when the node already has it."""
    now = facts.file(wanted.path)
    if not now.exists:
        return "missing"
    if now.kind != "file":
        return f"is a {now.kind}, not a file"
    reasons = []
    if now.sha256 != sha256(wanted.content):
        reasons.append("content changed" + (" (secret, not shown)" if wanted.secret else ""))
    if now.mode != wanted.mode:
        reasons.append(f"mode {now.mode:o} -> {wanted.mode:o}" if now.mode is not None else "mode")
    if (now.owner, now.group) != (wanted.owner, wanted.group):
        reasons.append(f"owner {now.owner}:{now.group} -> {wanted.owner}:{wanted.group}")
    return ", ".join(reasons) or None


def plan_node(
    desired: DesiredNode,
    facts: NodeFacts,
    old_contents: Mapping[str, bytes | None] | None = None,
    *,
    purge: bool = False,
) -> Plan:
    """The changes that make the node described by `facts` into `desired`.

    In order: early files (name, apt set-up, unit drop-ins), hostname, the network move, packages,
    directories, the other files, daemon-reload, units; then removals of what piherd
    created and no longer renders. `old_contents` (path -> current bytes) lets the plan
    carry unified diffs; without it, changes carry no diff (applying does not need
    one). `purge`: also purge the packages piherd installed and no longer needs.
    """
    files = _FileChanges(facts, old_contents)
    early = [f for f in desired.files if is_early_file(f.path)]
    network = [f for f in desired.files if is_network_file(f.path)]
    late = [f for f in desired.files if f not in early and f not in network]
    changes = files.each(early)
    if desired.hostname and facts.hostname != desired.hostname:
        was = facts.hostname or "unset"
        changes.append(Change(ChangeKind.HOSTNAME, desired.hostname, f"hostname is {was!r}"))
    changes += files.network_move(network)
    changes += _packages(desired, facts, files.changed)
    changes += _directories(desired, facts)
    changes += files.each(late)
    if any(f.path.startswith(UNIT_DIRS) for f in files.changed):
        changes.append(Change(ChangeKind.DAEMON_RELOAD, "systemd", "unit files changed"))
    changes += _unit_changes(desired, facts, files.changed)
    changes += plan_removals(desired, facts, purge=purge)
    intent = intent_record(desired, facts, changes)
    return Plan(desired.node, tuple(changes), intent, next_record(desired, facts, changes, changes))


def head_needed_from(plan: Plan, desired: DesiredNode) -> int:
    """Where in a plan (another node's than the head) the head must be done: the first
    unit change (mounts of the head's storage, slurmd, chrony, daemon-reload before
    them), or its packages when they come through the head. Everything before (files,
    the network move, the hostname) runs while the head's own `up` does."""
    for index, change in enumerate(plan.changes):
        if change.kind.rank >= ChangeKind.DAEMON_RELOAD.rank:
            return index
        if change.kind == ChangeKind.PACKAGES and desired.packages_from_head:
            return index
    return len(plan.changes)


class _FileChanges:
    """FILE (and NETWORK) changes with their reasons and diffs; remembers what changed."""

    def __init__(self, facts: NodeFacts, old_contents: Mapping[str, bytes | None] | None):
        self.facts = facts
        self.old_contents = old_contents
        self.changed: list[DesiredFile] = []

    def change(self, wanted: DesiredFile, reason: str) -> Change:
        diff = ""
        if self.old_contents is not None and wanted.path in self.old_contents:
            old = self.old_contents[wanted.path]
            diff = file_diff(wanted.path, old, wanted.content, secret=wanted.secret)
        elif wanted.secret:
            diff = "content changed (secret, not shown)\n"
        return Change(ChangeKind.FILE, wanted.path, reason, diff=diff, files=(wanted,))

    def each(self, wanted: list[DesiredFile]) -> list[Change]:
        """A FILE change for each file the node does not hold as wanted."""
        changes = []
        for spec in wanted:
            reason = file_reason(self.facts, spec)
            if reason:
                changes.append(self.change(spec, reason))
                self.changed.append(spec)
        return changes

    def network_move(self, network: list[DesiredFile]) -> list[Change]:
        """One NETWORK change for all network files that differ (applied with rollback)."""
        reasons = {f.path: r for f in network if (r := file_reason(self.facts, f))}
        moved = [f for f in network if f.path in reasons]
        if not moved:
            return []
        why = "; ".join(
            f"{f.path}: {reasons[f.path]}" if len(moved) > 1 else reasons[f.path] for f in moved
        )
        diff = "".join(self.change(f, "").diff for f in moved)
        self.changed.extend(moved)
        target = ", ".join(f.path for f in moved)
        return [Change(ChangeKind.NETWORK, target, why, diff, tuple(moved))]


def _packages(desired: DesiredNode, facts: NodeFacts, changed: list[DesiredFile]) -> list[Change]:
    missing = tuple(p for p in desired.packages if p not in facts.packages)
    if not missing:
        return []
    apt_changed = any(f.path.startswith("/etc/apt/") for f in changed)
    return [
        Change(
            ChangeKind.PACKAGES,
            " ".join(missing),
            "not installed",
            packages=missing,
            update_first=not facts.apt_lists or apt_changed,
        )
    ]


def _directories(desired: DesiredNode, facts: NodeFacts) -> list[Change]:
    changes = []
    for directory in desired.dirs:
        now = facts.file(directory.path)
        reason = None
        if not now.exists:
            reason = "missing"
        elif now.kind != "dir":
            reason = f"is a {now.kind}, not a directory"
        # An existing directory keeps its owner and mode: a mount point shows the mounted
        # file system's, and the export's are its users' business once created.
        if reason:
            changes.append(Change(ChangeKind.DIR, directory.path, reason, directory=directory))
    return changes


def _unit_changes(
    desired: DesiredNode, facts: NodeFacts, changed: list[DesiredFile]
) -> list[Change]:
    """Unmask, mask, disable and enable units, in ChangeKind's order (the units' order
    within each kind), then start, restart or reload them in the desired order."""
    restart_by: dict[str, list[str]] = {}
    reload_by: dict[str, list[str]] = {}
    for wanted in changed:
        for name in wanted.restarts:
            restart_by.setdefault(name, []).append(wanted.path)
        for name in wanted.reloads:
            reload_by.setdefault(name, []).append(wanted.path)
    for name in owed_restarts(desired, facts):  # an earlier run changed inputs, then stopped
        restart_by.setdefault(name, []).append("(restart owed by an interrupted run)")
    setup: list[Change] = []
    runs: list[Change] = []
    for unit in desired.units:
        now = facts.unit(unit.name)
        if unit.masked:
            if not now.masked:
                setup.append(Change(ChangeKind.MASK, unit.name, "must not run"))
            continue
        if now.masked:
            setup.append(Change(ChangeKind.UNMASK, unit.name, "is masked"))
        # A unit that is not installed yet is enabled once its package is in.
        if unit.enable and (not now.enabled or now.masked):
            state = now.unit_file_state or now.load_state
            setup.append(Change(ChangeKind.ENABLE, unit.name, f"is {state}"))
        if not unit.enable:
            continue
        if unit.name in restart_by:
            inputs = ", ".join(sorted(set(restart_by[unit.name])))
            runs.append(Change(ChangeKind.RESTART, unit.name, f"input changed: {inputs}"))
        elif not now.active and not _mounted_instead(facts, unit.name):
            runs.append(Change(ChangeKind.START, unit.name, f"is {now.active_state}"))
        elif unit.name in reload_by:
            inputs = ", ".join(sorted(set(reload_by[unit.name])))
            runs.append(Change(ChangeKind.RELOAD, unit.name, f"input changed: {inputs}"))
    # Units a file names that the node's unit list does not (ssh.service for sshd's
    # drop-ins): restarted or reloaded all the same, last.
    listed = {unit.name for unit in desired.units}
    for name in sorted(restart_by.keys() - listed):
        inputs = ", ".join(sorted(set(restart_by[name])))
        runs.append(Change(ChangeKind.RESTART, name, f"input changed: {inputs}"))
    for name in sorted(reload_by.keys() - listed - restart_by.keys()):
        inputs = ", ".join(sorted(set(reload_by[name])))
        runs.append(Change(ChangeKind.RELOAD, name, f"input changed: {inputs}"))
    return sorted(setup, key=lambda c: c.kind.rank) + runs


def _mounted_instead(facts: NodeFacts, unit: str) -> bool:
    """An automount whose .mount is active: where autofs is missing (a container),
    apply mounts directly, and that counts as done."""
    if not unit.endswith(".automount"):
        return False
    return facts.unit(unit.removesuffix(".automount") + ".mount").active
