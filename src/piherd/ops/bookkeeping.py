"""The node's next record of what piherd created, from a plan and the facts before it. Pure.

Two records per run: the intent (written before the first change: the old record plus
everything this run may create, so a run cut off by a power cut still leaves all it
created on the record) and the outcome (written after every change succeeded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from piherd.facts.node_facts import NodeFacts
from piherd.facts.record import NodeRecord, make_record
from piherd.ops.changes import Change, ChangeKind, DesiredNode
from piherd.ops.diff import sha256
from piherd.ops.removals import ancestors, needed_dirs


def next_record(
    desired: DesiredNode, facts: NodeFacts, changes: Iterable[Change], applied: Iterable[Change]
) -> NodeRecord:
    """The record once `applied` (some of `changes`, in order) is done on the node."""
    done = list(applied)
    undone = {(c.kind, c.target) for c in changes} - {(c.kind, c.target) for c in done}
    files = _files(desired, facts, done, undone)
    return make_record(
        files,
        _dirs(desired, facts, done, undone),
        _units(desired, facts, done, undone),
        _packages(facts, done),
        _feeds(desired, facts, files),
    )


def intent_record(desired: DesiredNode, facts: NodeFacts, changes: Iterable[Change]) -> NodeRecord:
    """The old record plus everything `changes` may create (nothing is forgotten yet)."""
    old = facts.record
    creating = [c for c in changes if not c.kind.removes]
    new = next_record(desired, facts, creating, creating)
    units = {n: set(f) for n, f in old.units.items()}
    for name, flags in new.units.items():
        units.setdefault(name, set()).update(flags)
    return make_record(
        {**new.files, **old.files},  # a file it rewrites keeps the sha it had: conservative
        old.dirs | new.dirs,
        units,
        old.packages | new.packages,
        {**old.feeds, **new.feeds},
    )


def _feeds(desired: DesiredNode, facts: NodeFacts, files: Mapping[str, str]) -> dict[str, set[str]]:
    """The units each recorded file is read by: as rendered now, else as recorded."""
    rendered = {f.path: {*f.restarts, *f.reloads} for f in desired.files}
    old = facts.record.feeds
    return {p: set(rendered[p]) if p in rendered else set(old.get(p, ())) for p in files}


def _created(facts: NodeFacts, path: str) -> bool:
    """True when the facts saw `path` absent (a path they did not look at counts as there)."""
    return path in facts.files and not facts.files[path].exists


def _files(
    desired: DesiredNode, facts: NodeFacts, done: list[Change], undone: set[tuple[ChangeKind, str]]
) -> dict[str, str]:
    old = facts.record.files
    rendered = {f.path: f for f in desired.files}
    files: dict[str, str] = {}
    for change in done:
        if change.kind == ChangeKind.FILE:
            spec = change.files[0]
            if spec.path in old or _created(facts, spec.path):
                files[spec.path] = sha256(spec.content)
    for path, written in old.items():
        if path in files:
            continue
        if path in rendered:
            files[path] = (
                written if (ChangeKind.FILE, path) in undone else sha256(rendered[path].content)
            )
        elif (ChangeKind.REMOVE, path) in undone or (ChangeKind.KEEP, path) in undone:
            files[path] = written  # still to remove (or to report) next time
    return files


def _dirs(
    desired: DesiredNode, facts: NodeFacts, done: list[Change], undone: set[tuple[ChangeKind, str]]
) -> set[str]:
    dirs: set[str] = set()
    for change in done:
        if change.kind in (ChangeKind.FILE, ChangeKind.DIR):
            above = ancestors(change.target)
            made = (change.target, *above) if change.kind == ChangeKind.DIR else above
            dirs.update(d for d in made if _created(facts, d))
    needed = needed_dirs(desired)
    dirs.update(d for d in facts.record.dirs if d in needed or (ChangeKind.REMOVE_DIR, d) in undone)
    return dirs


def _units(
    desired: DesiredNode, facts: NodeFacts, done: list[Change], undone: set[tuple[ChangeKind, str]]
) -> dict[str, set[str]]:
    listed = {u.name: u for u in desired.units}
    pending = {
        target
        for kind, target in undone
        if kind in (ChangeKind.DISABLE, ChangeKind.STOP, ChangeKind.UNMASK)
    }
    units = {
        name: set(flags)
        for name, flags in facts.record.units.items()
        if name in listed or name in pending
    }
    gained = {ChangeKind.ENABLE: "enabled", ChangeKind.START: "started", ChangeKind.MASK: "masked"}
    for change in done:
        if change.kind in gained:
            units.setdefault(change.target, set()).add(gained[change.kind])
        elif change.kind in (ChangeKind.RESTART, ChangeKind.RELOAD) and _was_stopped(
            facts, listed, change.target
        ):
            units.setdefault(change.target, set()).add("started")
        wanted = listed.get(change.target)
        if change.kind == ChangeKind.UNMASK and not (wanted and wanted.masked):
            units.get(change.target, set()).discard("masked")
    return units


def _was_stopped(facts: NodeFacts, listed: Mapping[str, object], name: str) -> bool:
    """A listed unit the facts saw stopped (one only a file names, ssh.service, is not asked)."""
    return name in listed and not facts.unit(name).active


def _packages(facts: NodeFacts, done: list[Change]) -> set[str]:
    installed = {p for c in done if c.kind == ChangeKind.PACKAGES for p in c.packages}
    purged = {p for c in done if c.kind == ChangeKind.PURGE for p in c.packages}
    kept = {p for p in facts.record.packages if p in facts.packages}  # the admin's removal
    return (kept | installed) - purged


def newly_created(old: NodeRecord, new: NodeRecord) -> tuple[str, ...]:
    """Paths `new` records as created that `old` did not: a package may have shipped them."""
    return tuple(sorted((set(new.files) - set(old.files)) | (new.dirs - old.dirs)))


def forget_paths(record: NodeRecord, paths: Iterable[str]) -> NodeRecord:
    """`record` without `paths` (there before piherd wrote them: a package installed them)."""
    drop = set(paths)
    return make_record(
        {p: s for p, s in record.files.items() if p not in drop},
        record.dirs - drop,
        record.units,
        record.packages,
        record.feeds,
    )


def record_to_write(new: NodeRecord | None, now: NodeRecord) -> NodeRecord | None:
    """`new` when the node's record must become it; None when it already says the same."""
    if new is None:
        return None
    if now.problem or new.to_text() != now.to_text():
        return new
    return None
