"""What `up` takes away: what the node's record says piherd created and no longer wants. Pure.

Only recorded things are candidates (see facts/record.py), so an admin's own unit, file
or package is never touched. Order: units stopped and disabled while their files still
exist, then files, then directories (deepest first, only when empty), then systemd
re-reads its units, then (with --purge only) packages.
"""

from __future__ import annotations

from piherd.facts.node_facts import NodeFacts
from piherd.facts.record import RECORD_PATH
from piherd.ops.changes import Change, ChangeKind, DesiredNode

UNIT_DIR = "/etc/systemd/system/"
UNIT_DIRS = (UNIT_DIR, "/lib/systemd/system/", "/usr/lib/systemd/system/")


def ancestors(path: str) -> tuple[str, ...]:
    """The directories above `path`, nearest first, "/" left out."""
    parts = path.rstrip("/").split("/")
    return tuple("/".join(parts[:i]) for i in range(len(parts) - 1, 1, -1))


def parent_paths(desired: DesiredNode) -> tuple[str, ...]:
    """Directories above the desired paths, for the facts: tells which ones a run creates."""
    own = set(desired.paths)
    return tuple(sorted({a for p in own for a in ancestors(p)} - own))


def needed_dirs(desired: DesiredNode) -> set[str]:
    """Directories the node still needs: desired ones and those above any desired path."""
    return {*(d.path for d in desired.dirs), *(a for p in desired.paths for a in ancestors(p))}


def unit_of_file(path: str) -> str | None:
    """`cluster.mount` for /etc/systemd/system/cluster.mount; None for drop-ins and others."""
    if not path.startswith(UNIT_DIR) or "/" in path[len(UNIT_DIR) :]:
        return None
    return path[len(UNIT_DIR) :] or None


def owed_restarts(desired: DesiredNode, facts: NodeFacts) -> tuple[str, ...]:
    """Restarts an interrupted run still owes, less those of units no longer wanted."""
    wanted = {u.name for u in desired.units if u.enable and not u.masked}
    for spec in desired.files:
        wanted.update(spec.restarts, spec.reloads)
    return tuple(name for name in facts.pending_restarts if name in wanted)


def plan_removals(desired: DesiredNode, facts: NodeFacts, *, purge: bool = False) -> list[Change]:
    """The removal changes for one node, each with its reason (empty when none is due)."""
    record = facts.record
    changes: list[Change] = []
    if record.problem:
        changes.append(
            Change(ChangeKind.KEEP, RECORD_PATH, f"{record.problem}; nothing removed this time")
        )
    files = _file_removals(desired, facts)
    gone = [c.target for c in files if c.kind == ChangeKind.REMOVE]
    changes += _unit_removals(desired, facts, gone)
    changes += files
    changes += _dir_removals(desired, facts)
    if any(p.startswith(UNIT_DIRS) for p in gone):
        changes.append(Change(ChangeKind.DAEMON_RELOAD, "systemd", "unit files removed"))
    changes += _reloads_for(gone, facts, stopping={c.target for c in changes})
    unneeded = sorted((record.packages - set(desired.packages)) & facts.packages)
    if purge and unneeded:
        reason = "installed by piherd, no longer needed (--purge)"
        changes.append(
            Change(ChangeKind.PURGE, " ".join(unneeded), reason, packages=tuple(unneeded))
        )
    return changes


def _reloads_for(gone: list[str], facts: NodeFacts, stopping: set[str]) -> list[Change]:
    """Reload what still runs and read a removed file (sshd, once its drop-in is gone)."""
    inputs: dict[str, list[str]] = {}
    for path in gone:
        for unit in facts.record.feeds.get(path, ()):
            inputs.setdefault(unit, []).append(path)
    return [
        Change(ChangeKind.RELOAD, unit, f"input removed: {', '.join(sorted(paths))}")
        for unit, paths in sorted(inputs.items())
        if unit not in stopping and facts.unit(unit).active
    ]


def _file_removals(desired: DesiredNode, facts: NodeFacts) -> list[Change]:
    rendered = {f.path for f in desired.files}
    changes = []
    for path, written in sorted(facts.record.files.items()):
        now = facts.file(path)
        if path in rendered or not now.exists:
            continue
        if now.kind != "file" or now.sha256 != written:
            reason = "no longer rendered, but changed since piherd wrote it: left in place"
            changes.append(Change(ChangeKind.KEEP, path, reason))
        else:
            changes.append(Change(ChangeKind.REMOVE, path, "no longer rendered"))
    return changes


def _unit_removals(desired: DesiredNode, facts: NodeFacts, gone: list[str]) -> list[Change]:
    """Disable/stop units piherd enabled or started (or whose unit file goes); unmask."""
    listed = {u.name: u for u in desired.units}
    file_units = {u for u in map(unit_of_file, gone) if u}
    changes = []
    for name in sorted(set(facts.record.units) | file_units):
        flags = facts.record.units.get(name, frozenset())
        now = facts.unit(name)
        wanted = listed.get(name)
        if "masked" in flags and now.masked and not (wanted and wanted.masked):
            changes.append(
                Change(ChangeKind.UNMASK, name, "masked by piherd, no longer needs to be")
            )
            continue
        if now.masked or (wanted is not None and name not in file_units):
            continue
        why = "its unit file is no longer rendered" if name in file_units else "no longer wanted"
        if not (flags & {"enabled", "started"}) and name not in file_units:
            continue
        if now.unit_file_state in ("enabled", "enabled-runtime"):
            changes.append(Change(ChangeKind.DISABLE, name, f"{why} (piherd enabled it)"))
        elif now.active:
            changes.append(Change(ChangeKind.STOP, name, f"{why} (piherd started it)"))
    return changes


def _dir_removals(desired: DesiredNode, facts: NodeFacts) -> list[Change]:
    needed = needed_dirs(desired)
    candidates = [d for d in facts.record.dirs if d not in needed and facts.file(d).kind == "dir"]
    deepest_first = sorted(candidates, key=lambda d: (-d.count("/"), d))
    reason = "created by piherd, no longer needed (kept if not empty)"
    return [Change(ChangeKind.REMOVE_DIR, d, reason) for d in deepest_first]
