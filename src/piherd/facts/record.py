"""The record each node keeps of what piherd created there: its text form and its parser.

One line per thing, tab-separated, so the facts script (plain sh) can stat the recorded
paths and ask systemd about the recorded units in the same round trip:

    piherd-record 1
    file<TAB>sha256 of what piherd wrote<TAB>/path
    dir<TAB>-<TAB>/path
    unit<TAB>enabled,started,masked<TAB>name.service
    package<TAB>-<TAB>name
    feeds<TAB>unit,unit<TAB>/path         (the units a recorded file is read by)

`feeds` lets `up` reload what read a file it removes (sshd after its drop-in goes).
Only things piherd created are listed (a file absent before its first write, a unit it
enabled, started or masked, a package it installed), so only those are ever removed.
The file is root's, mode 0600, and written atomically (temp file + rename).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

RECORD_PATH = "/var/lib/piherd/record"
RECORD_MODE = 0o600
HEADER = "piherd-record 1"
UNIT_FLAGS = frozenset({"enabled", "started", "masked"})


@dataclass(frozen=True)
class NodeRecord:
    """What piherd put on one node; `problem` says why an unreadable record was dropped."""

    files: Mapping[str, str] = field(default_factory=dict)  # path -> sha256 piherd wrote
    dirs: frozenset[str] = frozenset()
    units: Mapping[str, frozenset[str]] = field(default_factory=dict)  # name -> flags
    packages: frozenset[str] = frozenset()
    feeds: Mapping[str, frozenset[str]] = field(default_factory=dict)  # path -> units
    problem: str = ""

    @property
    def empty(self) -> bool:
        return not (self.files or self.dirs or self.units or self.packages)

    def paths(self) -> tuple[str, ...]:
        """Every recorded file and directory, sorted."""
        return tuple(sorted({*self.files, *self.dirs}))

    def to_text(self) -> str:
        """The record file's text (sorted, so an unchanged record is byte-identical)."""
        lines = [HEADER]
        lines += [f"file\t{sha}\t{path}" for path, sha in sorted(self.files.items())]
        lines += [f"dir\t-\t{path}" for path in sorted(self.dirs)]
        lines += [
            f"unit\t{','.join(sorted(flags))}\t{name}"
            for name, flags in sorted(self.units.items())
            if flags
        ]
        lines += [f"package\t-\t{name}" for name in sorted(self.packages)]
        lines += [
            f"feeds\t{','.join(sorted(units))}\t{path}"
            for path, units in sorted(self.feeds.items())
            if units
        ]
        return "\n".join(lines) + "\n"


def _plain(value: str) -> bool:
    """A value the line format can hold: no tab, newline or surrounding space."""
    return bool(value) and value == value.strip() and not any(c in value for c in "\t\n\r")


def make_record(
    files: Mapping[str, str],
    dirs: Iterable[str],
    units: Mapping[str, Iterable[str]],
    packages: Iterable[str],
    feeds: Mapping[str, Iterable[str]] | None = None,
) -> NodeRecord:
    """A NodeRecord, leaving out what the line format cannot hold (never rendered anyway).

    `feeds` is kept for recorded files only, and only unit names the format can hold.
    """
    kept = {p: s for p, s in files.items() if p.startswith("/") and _plain(p)}
    return NodeRecord(
        files=kept,
        dirs=frozenset(d for d in dirs if d.startswith("/") and _plain(d) and d != "/"),
        units={
            n: frozenset(f) & UNIT_FLAGS
            for n, f in units.items()
            if _plain(n) and " " not in n and not n.startswith("-") and frozenset(f) & UNIT_FLAGS
        },
        packages=frozenset(p for p in packages if _plain(p) and " " not in p),
        feeds={
            p: names
            for p, units in (feeds or {}).items()
            if p in kept and (names := frozenset(u for u in units if _unit_name(u)))
        },
    )


def _unit_name(name: str) -> bool:
    return _plain(name) and not any(c in name for c in " ,") and not name.startswith("-")


def parse_record(text: str) -> NodeRecord:
    """The record file's text -> NodeRecord; never raises.

    No record yet (empty text) is an empty record. A record piherd cannot read is also
    taken as empty, with `problem` set: nothing is removed on its account.
    """
    if not text.strip():
        return NodeRecord()
    lines = text.splitlines()
    if lines[0].strip() != HEADER:
        return NodeRecord(problem=f"unreadable record {RECORD_PATH} (no {HEADER!r} header)")
    files: dict[str, str] = {}
    dirs: set[str] = set()
    units: dict[str, set[str]] = {}
    packages: set[str] = set()
    feeds: dict[str, set[str]] = {}
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 3:
            if line.strip():
                return NodeRecord(problem=f"unreadable record {RECORD_PATH} (line {number})")
            continue
        kind, value, name = parts
        if kind == "file" and len(value) == 64:
            files[name] = value
        elif kind == "dir":
            dirs.add(name)
        elif kind == "unit":
            units.setdefault(name, set()).update(value.split(","))
        elif kind == "package":
            packages.add(name)
        elif kind == "feeds":
            feeds.setdefault(name, set()).update(value.split(","))
        else:
            return NodeRecord(problem=f"unreadable record {RECORD_PATH} (line {number})")
    return make_record(files, dirs, units, packages, feeds)
