"""Planning as data: facts in, changes out; a converged node plans nothing."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace

from piherd.facts.node_facts import FileState, NodeFacts, UnitState
from piherd.facts.record import NodeRecord
from piherd.ops.changes import ChangeKind, DesiredDir, DesiredFile, DesiredNode, DesiredUnit
from piherd.ops.plan import head_needed_from, plan_node
from piherd.ops.removals import plan_removals

HOSTS = DesiredFile("/etc/hosts", b"10.0.0.1 head\n10.0.0.2 node01\n")
KEY = DesiredFile(
    "/etc/munge/munge.key", b"\x00secret", 0o400, "munge", "munge", ("munge.service",), (), True
)
SLURM = DesiredFile("/etc/slurm/slurm.conf", b"ClusterName=c\n", restarts=("slurmd.service",))
CHRONY = DesiredFile(
    "/etc/chrony/conf.d/piherd.conf", b"server head\n", reloads=("chrony.service",)
)
NM = DesiredFile(
    "/etc/NetworkManager/system-connections/piherd-host0.nmconnection",
    b"[connection]\nid=piherd-host0\n",
    0o600,
)
UNIT_FILE = DesiredFile("/etc/systemd/system/chrony.service.d/piherd.conf", b"[Service]\n")
APT = DesiredFile("/etc/apt/apt.conf.d/01proxy", b'Acquire::http::Proxy "http://h:3142";\n')

DESIRED = DesiredNode(
    node="node01",
    hostname="node01",
    packages=("chrony", "munge", "slurmd"),
    dirs=(DesiredDir("/cluster"),),
    files=(SLURM, HOSTS, KEY, CHRONY, NM, UNIT_FILE, APT),
    units=(
        DesiredUnit("chrony.service"),
        DesiredUnit("chrony-wait.service", enable=False, masked=True),
        DesiredUnit("munge.service"),
        DesiredUnit("slurmd.service"),
    ),
)


def state_of(f: DesiredFile) -> FileState:
    return FileState(
        f.path, "file", f.mode, f.owner, f.group, hashlib.sha256(f.content).hexdigest()
    )


def converged() -> NodeFacts:
    running = {
        u.name: UnitState(u.name, "loaded", "active", "enabled", 5, 10)
        for u in DESIRED.units
        if not u.masked
    }
    running["chrony-wait.service"] = UnitState(
        "chrony-wait.service", "masked", "inactive", "masked"
    )
    return NodeFacts(
        node="node01",
        hostname="node01",
        packages=frozenset(DESIRED.packages) | {"bash"},
        apt_lists=True,
        files={f.path: state_of(f) for f in DESIRED.files}
        | {"/cluster": FileState("/cluster", "dir", 0o755, "root", "root")},
        units=running,
    )


def fresh() -> NodeFacts:
    return NodeFacts(node="node01", hostname="raspberrypi", packages=frozenset({"bash"}))


def kinds(plan_changes: tuple) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(c.kind, c.target) for c in plan_changes]


def test_second_run_plans_nothing() -> None:
    assert plan_node(DESIRED, converged()).empty


def test_fresh_node_full_plan_in_order() -> None:
    plan = plan_node(DESIRED, fresh())
    got = kinds(plan.changes)
    order = [k for k, _ in got]
    # early files, hostname, network, packages, dirs, files, daemon-reload, units
    assert got[0] == ("file", "/etc/hosts")
    # A unit's drop-in is in place before the package first starts the unit.
    assert got[1] == ("file", "/etc/systemd/system/chrony.service.d/piherd.conf")
    assert got[2] == ("file", "/etc/apt/apt.conf.d/01proxy")
    assert order.index("hostname") < order.index("network") < order.index("packages")
    assert order.index("packages") < order.index("dir") < order.index("daemon-reload")
    packages = plan.of_kind(ChangeKind.PACKAGES)[0]
    assert packages.packages == ("chrony", "munge", "slurmd")
    assert packages.update_first  # no lists yet, and the apt proxy changed
    assert ("mask", "chrony-wait.service") in got
    assert ("enable", "slurmd.service") in got
    restarts = [t for k, t in got if k == "restart"]
    assert restarts == ["munge.service", "slurmd.service"]
    # chrony's file only reloads it, but it is not running: it is started
    assert ("start", "chrony.service") in got
    assert order.index("enable") < order.index("restart")


def test_a_node_waits_for_the_head_at_its_first_unit_or_at_packages_from_the_head() -> None:
    """Files, the hostname, the network move and the packages need nothing from the
    head; units do (its storage, slurmctld), and packages do through its cache."""
    plan = plan_node(DESIRED, fresh())
    order = [c.kind for c in plan.changes]
    at = head_needed_from(plan, DESIRED)
    assert order[at] == ChangeKind.DAEMON_RELOAD
    assert ChangeKind.PACKAGES in order[:at] and ChangeKind.NETWORK in order[:at]
    assert all(k.rank >= ChangeKind.DAEMON_RELOAD.rank for k in order[at:])
    cached = replace(DESIRED, packages_from_head=True)
    assert order[head_needed_from(plan, cached)] == ChangeKind.PACKAGES
    assert head_needed_from(plan_node(DESIRED, converged()), DESIRED) == 0  # nothing to do


def test_only_missing_packages_and_no_update_when_lists_exist() -> None:
    facts = converged()
    facts = NodeFacts(**{**facts.__dict__, "packages": frozenset({"chrony"})})
    plan = plan_node(DESIRED, facts)
    (change,) = plan.changes
    assert change.packages == ("munge", "slurmd")
    assert not change.update_first


def test_changed_file_restarts_only_its_units() -> None:
    facts = converged()
    files = dict(facts.files)
    files[SLURM.path] = FileState(SLURM.path, "file", 0o644, "root", "root", "0" * 64)
    plan = plan_node(DESIRED, NodeFacts(**{**facts.__dict__, "files": files}))
    assert kinds(plan.changes) == [
        ("file", "/etc/slurm/slurm.conf"),
        ("restart", "slurmd.service"),
    ]
    assert "content changed" in plan.changes[0].reason


def test_mode_change_only_and_reload() -> None:
    facts = converged()
    files = dict(facts.files)
    files[CHRONY.path] = FileState(
        CHRONY.path, "file", 0o666, "root", "root", state_of(CHRONY).sha256
    )
    plan = plan_node(DESIRED, NodeFacts(**{**facts.__dict__, "files": files}))
    assert kinds(plan.changes) == [("file", CHRONY.path), ("reload", "chrony.service")]
    assert plan.changes[0].reason == "mode 666 -> 644"


def test_stopped_unit_is_started_without_file_change() -> None:
    facts = converged()
    units = dict(facts.units)
    units["munge.service"] = UnitState("munge.service", "loaded", "failed", "enabled")
    plan = plan_node(DESIRED, NodeFacts(**{**facts.__dict__, "units": units}))
    assert kinds(plan.changes) == [("start", "munge.service")]
    assert plan.changes[0].reason == "is failed"


def test_secret_never_in_diff() -> None:
    facts = converged()
    files = dict(facts.files)
    del files[KEY.path]
    old = {KEY.path: b"old-secret", HOSTS.path: b"10.0.0.1 head\n"}
    plan = plan_node(DESIRED, NodeFacts(**{**facts.__dict__, "files": files}), old)
    change = plan.of_kind(ChangeKind.FILE)[0]
    assert change.diff == "content changed (secret, not shown)\n"
    assert "secret" not in change.reason or "not shown" in change.reason


def test_diff_of_text_file() -> None:
    facts = converged()
    files = dict(facts.files)
    files[HOSTS.path] = FileState(HOSTS.path, "file", 0o644, "root", "root", "0" * 64)
    old = {HOSTS.path: b"10.0.0.1 head\n"}
    plan = plan_node(DESIRED, NodeFacts(**{**facts.__dict__, "files": files}), old)
    diff = plan.of_kind(ChangeKind.FILE)[0].diff
    assert "+10.0.0.2 node01" in diff and "--- /etc/hosts (now)" in diff


def test_network_change_is_a_move() -> None:
    facts = converged()
    files = dict(facts.files)
    del files[NM.path]
    plan = plan_node(DESIRED, NodeFacts(**{**facts.__dict__, "files": files}))
    (change,) = plan.changes
    assert change.kind == "network" and change.files == (NM,)


def test_a_unit_only_a_file_names_is_reloaded_too() -> None:
    """sshd's drop-in reloads ssh.service, which no node lists among its units."""
    dropin = DesiredFile(
        "/etc/ssh/sshd_config.d/piherd-keys.conf", b"x\n", reloads=("ssh.service",)
    )
    desired = DesiredNode(
        node=DESIRED.node,
        hostname=DESIRED.hostname,
        packages=DESIRED.packages,
        dirs=DESIRED.dirs,
        files=(*DESIRED.files, dropin),
        units=DESIRED.units,
    )
    assert kinds(plan_node(desired, converged()).changes) == [
        ("file", dropin.path),
        ("reload", "ssh.service"),
    ]


def test_change_kinds_keep_their_json_names() -> None:
    """`up --json` and the docs show these strings: renaming one breaks their readers."""
    assert [k.value for k in ChangeKind] == [
        "hostname", "network", "packages", "dir", "file", "daemon-reload",
        "unmask", "mask", "disable", "enable", "start", "restart", "reload",
        "stop", "remove", "remove-dir", "purge", "keep",
    ]  # fmt: skip
    assert f"{ChangeKind.DAEMON_RELOAD}" == "daemon-reload" == ChangeKind("daemon-reload")


def test_plans_apply_changes_in_change_kind_order() -> None:
    """After the early files, kinds never go back in ChangeKind order; only starts,
    restarts and reloads mix, in the units' dependency order. Removals come last, in
    their own order (plan_removals')."""
    desired = DesiredNode(
        node=DESIRED.node,
        hostname=DESIRED.hostname,
        packages=DESIRED.packages,
        dirs=DESIRED.dirs,
        files=DESIRED.files,
        units=(*DESIRED.units, DesiredUnit("nfs-server.service")),
    )
    started = {"piherd-watch.service": frozenset({"enabled", "started"})}
    facts = replace(fresh(), record=NodeRecord(units=started))
    facts.units["piherd-watch.service"] = UnitState(
        "piherd-watch.service", "loaded", "active", "enabled"
    )
    facts.units["munge.service"] = UnitState("munge.service", "masked", "inactive", "masked")
    facts.units["chrony.service"] = UnitState("chrony.service", "loaded", "active", "enabled")
    changes = plan_node(desired, facts).changes
    removals = plan_removals(desired, facts)
    assert [(c.kind, c.target) for c in removals] == [(ChangeKind.DISABLE, "piherd-watch.service")]
    assert list(changes[-len(removals) :]) == removals
    changes = changes[: -len(removals)]
    early_paths = (HOSTS.path, UNIT_FILE.path, APT.path)
    early = [c for c in changes if c.kind == ChangeKind.FILE and c.target in early_paths]
    assert list(changes[: len(early)]) == early
    rest = changes[len(early) :]
    # DISABLE is only planned for a unit piherd started and no longer wants (a removal).
    additions = {k for k in ChangeKind if not k.removes} - {ChangeKind.DISABLE}
    assert {c.kind for c in rest} == additions  # the test sees every kind that adds
    for before, after in itertools.pairwise(rest):
        if not (before.kind.runs_unit and after.kind.runs_unit):
            assert before.kind.rank <= after.kind.rank, (before.describe(), after.describe())
    runs = [c.target for c in rest if c.kind.runs_unit]
    assert runs == ["chrony.service", "munge.service", "slurmd.service", "nfs-server.service"]
