"""Removals as data: a node's record and facts in, removal changes and the next record out."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import replace
from pathlib import Path

from piherd.facts.node_facts import FileState, NodeFacts, UnitState
from piherd.facts.parse import parse_facts
from piherd.facts.record import HEADER, NodeRecord, make_record, parse_record
from piherd.facts.script import facts_argv
from piherd.ops.bookkeeping import forget_paths, intent_record, newly_created, next_record
from piherd.ops.changes import DesiredFile, DesiredNode, DesiredUnit
from piherd.ops.plan import plan_node
from piherd.ops.removals import ancestors, owed_restarts, parent_paths

MOUNT = DesiredFile(
    "/etc/systemd/system/cluster.mount", b"[Mount]\n", restarts=("cluster.automount",)
)
AUTO = DesiredFile("/etc/systemd/system/cluster.automount", b"[Automount]\n")
KEY = DesiredFile("/etc/piherd/storage_key", b"secret\n", 0o600, secret=True)
HOSTS = DesiredFile("/etc/hosts", b"10.0.0.1 head\n")
CHRONY = DesiredFile("/etc/chrony/chrony.conf", b"server head\n", restarts=("chrony.service",))
STORAGE = (MOUNT, AUTO, KEY)
UNITS = (DesiredUnit("cluster.automount"), DesiredUnit("cluster.mount", enable=False))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def node(files: tuple[DesiredFile, ...], units: tuple[DesiredUnit, ...] = ()) -> DesiredNode:
    return DesiredNode("node02", "node02", ("chrony",), (), files, units)


def on_node(files: tuple[DesiredFile, ...], *dirs: str) -> dict[str, FileState]:
    states = {
        f.path: FileState(f.path, "file", f.mode, "root", "root", sha(f.content)) for f in files
    }
    for d in dirs:
        states[d] = FileState(d, "dir", 0o755, "root", "root")
    return states


def running(*names: str, enabled: bool = True) -> dict[str, UnitState]:
    state = "enabled" if enabled else "static"
    return {n: UnitState(n, "loaded", "active", state, 5, 10) for n in names}


def storage_recorded(**changes: object) -> NodeFacts:
    """A worker as `up` left it with storage on: its record lists the mount and the key."""
    record = make_record(
        {f.path: sha(f.content) for f in STORAGE},
        {"/etc/piherd"},
        {"cluster.automount": {"enabled", "started"}},
        {"sshfs"},
        {f.path: {*f.restarts, *f.reloads} for f in STORAGE},
    )
    facts = NodeFacts(
        node="node02",
        hostname="node02",
        packages=frozenset({"chrony", "sshfs"}),
        files=on_node((*STORAGE, HOSTS, CHRONY), "/etc/piherd"),
        units=running("cluster.automount") | running("cluster.mount", enabled=False),
        record=record,
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


def kinds(plan_changes: tuple) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(c.kind, c.target) for c in plan_changes]


def test_record_text_round_trips_and_is_sorted() -> None:
    record = make_record(
        {"/b": "1" * 64, "/a": "2" * 64}, {"/d"}, {"x.service": {"started"}}, {"p"}
    )
    text = record.to_text()
    assert text.splitlines()[0] == HEADER and text.index("\t/a") < text.index("\t/b")
    assert parse_record(text) == record


def test_an_unreadable_record_is_empty_with_a_reason_and_nothing_is_removed() -> None:
    assert parse_record("") == NodeRecord()
    for text in ("{json?", f"{HEADER}\nfile\tnot-a-sha\n", f"{HEADER}\nbogus\t-\t/x\n"):
        record = parse_record(text)
        assert record.empty and record.problem, text
    facts = storage_recorded(record=parse_record("garbage"))
    plan = plan_node(node((HOSTS, CHRONY)), facts)
    assert kinds(plan.changes) == [("keep", "/var/lib/piherd/record")]
    assert plan.record is not None and plan.record.empty  # rewritten, readable again


def test_storage_off_stops_units_then_removes_files_then_dirs() -> None:
    plan = plan_node(node((HOSTS, CHRONY)), storage_recorded())
    assert kinds(plan.changes) == [
        ("disable", "cluster.automount"),  # piherd enabled it
        ("stop", "cluster.mount"),  # its file goes: stopped first
        ("remove", KEY.path),
        ("remove", AUTO.path),
        ("remove", MOUNT.path),
        ("remove-dir", "/etc/piherd"),
        ("daemon-reload", "systemd"),
    ]
    assert all(c.reason for c in plan.changes)
    assert plan.record is not None
    assert plan.record.files == {} and plan.record.dirs == frozenset()
    assert plan.record.units == {} and plan.record.packages == {"sshfs"}  # no --purge


def test_purge_only_packages_piherd_installed_and_no_longer_needs() -> None:
    facts = storage_recorded(
        record=replace(storage_recorded().record, packages={"sshfs", "chrony"})
    )
    plan = plan_node(node((HOSTS, CHRONY)), facts, purge=True)
    purge = plan.of_kind("purge")
    assert [c.packages for c in purge] == [("sshfs",)]  # chrony is still wanted
    assert plan.record is not None and plan.record.packages == {"chrony"}


def test_a_file_the_admin_edited_is_reported_and_kept() -> None:
    files = dict(storage_recorded().files)
    files[KEY.path] = replace(files[KEY.path], sha256=sha(b"the admin's own key\n"))
    plan = plan_node(node((HOSTS, CHRONY)), storage_recorded(files=files))
    assert ("keep", KEY.path) in kinds(plan.changes)
    assert ("remove", KEY.path) not in kinds(plan.changes)
    assert plan.record is not None and KEY.path not in plan.record.files  # the admin's now


def test_what_piherd_did_not_create_is_never_touched() -> None:
    """An admin's dnsmasq (running before piherd), /etc/hosts (overwritten, not created)."""
    facts = storage_recorded(
        record=NodeRecord(),
        units=running("dnsmasq.service", "cluster.automount"),
    )
    assert plan_node(node((HOSTS, CHRONY)), facts).empty


def test_still_rendered_nothing_goes_and_a_second_run_plans_nothing() -> None:
    desired = node((*STORAGE, HOSTS, CHRONY), UNITS)
    plan = plan_node(desired, storage_recorded())
    assert plan.empty
    assert plan.record is not None and plan.record.to_text() == storage_recorded().record.to_text()


def test_already_gone_things_are_forgotten_without_a_change() -> None:
    facts = storage_recorded(files=on_node((HOSTS, CHRONY)), units={})
    plan = plan_node(node((HOSTS, CHRONY)), facts)
    assert plan.empty and plan.record is not None and plan.record.files == {}


def test_owed_restarts_of_units_no_longer_wanted_are_dropped() -> None:
    facts = storage_recorded(pending_restarts=("chrony.service", "cluster.automount"))
    without_time = node((*STORAGE, HOSTS), UNITS)
    assert owed_restarts(without_time, facts) == ("cluster.automount",)
    plan = plan_node(without_time, facts)
    assert ("restart", "chrony.service") not in kinds(plan.changes)
    assert ("restart", "cluster.automount") in kinds(plan.changes)
    with_time = node((*STORAGE, HOSTS, CHRONY), UNITS)
    assert ("restart", "chrony.service") in kinds(plan_node(with_time, facts).changes)


def test_a_fresh_node_records_what_it_creates_and_not_what_was_there() -> None:
    desired = node((*STORAGE, HOSTS), UNITS)
    facts = NodeFacts(
        node="node02",
        files={
            **{f.path: FileState(f.path, "absent") for f in STORAGE},
            HOSTS.path: FileState(HOSTS.path, "file", 0o644, "root", "root", sha(b"old\n")),
            "/etc": FileState("/etc", "dir", 0o755, "root", "root"),
            "/etc/piherd": FileState("/etc/piherd", "absent"),
            "/etc/systemd": FileState("/etc/systemd", "dir", 0o755, "root", "root"),
            "/etc/systemd/system": FileState("/etc/systemd/system", "dir"),
        },
    )
    assert set(parent_paths(desired)) == {
        "/etc",
        "/etc/piherd",
        "/etc/systemd",
        "/etc/systemd/system",
    }
    plan = plan_node(desired, facts)
    assert plan.record is not None
    assert set(plan.record.files) == {f.path for f in STORAGE}  # not /etc/hosts
    assert plan.record.dirs == {"/etc/piherd"}
    assert plan.record.units == {"cluster.automount": {"enabled", "started"}}
    assert plan.record.packages == {"chrony"}
    assert newly_created(facts.record, plan.record) == (
        "/etc/piherd",
        "/etc/piherd/storage_key",
        *sorted(f.path for f in (MOUNT, AUTO)),
    )
    shipped = forget_paths(plan.record, [KEY.path])
    assert KEY.path not in shipped.files and MOUNT.path in shipped.files


def test_the_intent_keeps_the_old_record_and_adds_what_the_run_may_create() -> None:
    facts = storage_recorded(
        files={**on_node((*STORAGE, HOSTS)), CHRONY.path: FileState(CHRONY.path, "absent")}
    )
    desired = node((HOSTS, CHRONY), (DesiredUnit("chrony.service"),))
    plan = plan_node(desired, facts)
    intent = intent_record(desired, facts, plan.changes)
    assert set(intent.files) == {*(f.path for f in STORAGE), CHRONY.path}
    assert "cluster.automount" in intent.units and "chrony.service" in intent.units
    assert kinds(plan.changes[:1]) == [("file", CHRONY.path)]
    cut_short = next_record(desired, facts, plan.changes, plan.changes[:1])
    assert set(cut_short.files) == {*(f.path for f in STORAGE), CHRONY.path}  # none removed yet
    assert "chrony.service" not in cut_short.units  # not enabled yet
    assert set(plan.record.files) == {CHRONY.path}  # type: ignore[union-attr]


def test_ancestors() -> None:
    assert ancestors("/etc/piherd/storage_key") == ("/etc/piherd", "/etc")
    assert ancestors("/srv") == ()


def test_the_facts_script_stats_what_the_record_lists(tmp_path: Path) -> None:
    """The real script, on this machine: recorded paths are looked at too, safely quoted."""
    odd = tmp_path / "a file; echo $(id)"
    odd.write_bytes(b"x\n")
    gone = tmp_path / "gone"
    record = make_record({str(odd): sha(b"x\n"), str(gone): "0" * 64}, {str(tmp_path)}, {}, ())
    path = tmp_path / "record"
    path.write_text(record.to_text())
    out = subprocess.run(
        facts_argv([], [], str(path)), capture_output=True, text=True, timeout=60, check=True
    ).stdout
    facts = parse_facts("here", out)
    assert facts.record == record
    assert facts.file(str(odd)).sha256 == sha(b"x\n")
    assert facts.files[str(gone)].kind == "absent" and facts.file(str(tmp_path)).kind == "dir"


def test_a_unit_restarted_while_it_was_not_running_counts_as_started_by_piherd() -> None:
    desired = node((*STORAGE, HOSTS), UNITS)
    files = {**storage_recorded().files, MOUNT.path: FileState(MOUNT.path, "absent")}
    facts = storage_recorded(files=files, units={}, record=NodeRecord())
    plan = plan_node(desired, facts)
    assert ("restart", "cluster.automount") in kinds(plan.changes)
    assert plan.record is not None
    assert plan.record.units == {"cluster.automount": {"enabled", "started"}}


def test_a_unit_only_a_file_names_is_never_recorded_as_started() -> None:
    """ssh.service, reloaded by sshd's drop-in: its state is not asked, so never claimed."""
    dropin = DesiredFile("/etc/ssh/sshd_config.d/piherd.conf", b"x\n", restarts=("ssh.service",))
    facts = NodeFacts("node02", files={dropin.path: FileState(dropin.path, "absent")})
    plan = plan_node(node((dropin,)), facts)
    assert ("restart", "ssh.service") in kinds(plan.changes)
    assert plan.record is not None and "ssh.service" not in plan.record.units


def test_a_running_unit_that_read_a_removed_file_is_reloaded() -> None:
    """sshd's drop-in goes: sshd (still running, still wanted) reloads; a unit being
    stopped, or one not running, is not started by it."""
    dropin = DesiredFile(
        "/etc/ssh/sshd_config.d/piherd-x.conf", b"Port 2222\n", reloads=("ssh.service",)
    )
    record = make_record(
        {dropin.path: sha(dropin.content), **{f.path: sha(f.content) for f in STORAGE}},
        (),
        {"cluster.automount": {"enabled", "started"}},
        (),
        {dropin.path: {"ssh.service"}, **{f.path: {*f.restarts, *f.reloads} for f in STORAGE}},
    )
    assert parse_record(record.to_text()) == record  # feeds survive the file
    facts = replace(
        storage_recorded(record=record),
        files=on_node((dropin, *STORAGE, HOSTS, CHRONY), "/etc/piherd"),
        units=running("ssh.service") | running("cluster.automount"),
    )
    changes = kinds(plan_node(node((HOSTS, CHRONY)), facts).changes)
    assert ("reload", "ssh.service") in changes
    assert changes.index(("remove", dropin.path)) < changes.index(("reload", "ssh.service"))
    assert ("reload", "cluster.automount") not in changes  # it is being stopped
    idle = replace(facts, units=running("cluster.automount"))  # ssh.service not running
    assert ("reload", "ssh.service") not in kinds(plan_node(node((HOSTS, CHRONY)), idle).changes)
