"""One change on a node: which commands apply_change runs, and how it recovers.

A scripted transport answers each command; no node, no systemd needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from scripted_node import ScriptedNode

from piherd.ops import debian
from piherd.ops.changes import Change, ChangeKind, DesiredDir, DesiredFile
from piherd.runner.apply import ApplyError, apply_change, batches, set_up_units
from piherd.transport.base import CommandResult

Answer = Callable[[list[str]], CommandResult | None]


class Scripted(ScriptedNode):
    """Every command logged; `answer` may fail one (None: it succeeds)."""

    def __init__(self, answer: Answer | None = None) -> None:
        super().__init__("node01")
        self.scripted = answer

    def answer(self, argv: list[str]) -> CommandResult | None:
        return self.scripted(argv) if self.scripted else None

    async def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        assert sudo and timeout is not None  # apply runs everything as root, bounded
        return await super().run(argv, sudo=sudo, input=input, timeout=timeout)


def fails(rc: int, stderr: str) -> CommandResult:
    return CommandResult("node01", rc, stderr=stderr)


def apply(change: Change, answer: Answer | None = None) -> Scripted:
    t = Scripted(answer)
    asyncio.run(apply_change(t, change))
    return t


def test_every_kind_but_network_is_applied_by_one_step() -> None:
    examples = {
        ChangeKind.HOSTNAME: Change(ChangeKind.HOSTNAME, "node01", ""),
        ChangeKind.PACKAGES: Change(ChangeKind.PACKAGES, "chrony", "", packages=("chrony",)),
        ChangeKind.DIR: Change(ChangeKind.DIR, "/c", "", directory=DesiredDir("/c", 0o750)),
        ChangeKind.FILE: Change(ChangeKind.FILE, "/etc/a", "", files=(DesiredFile("/etc/a", b""),)),
        ChangeKind.DAEMON_RELOAD: Change(ChangeKind.DAEMON_RELOAD, "systemd", ""),
        ChangeKind.REMOVE: Change(ChangeKind.REMOVE, "/etc/old", ""),
        ChangeKind.REMOVE_DIR: Change(ChangeKind.REMOVE_DIR, "/srv/old", ""),
        ChangeKind.PURGE: Change(ChangeKind.PURGE, "sshfs", "", packages=("sshfs",)),
    }
    first = {
        ChangeKind.HOSTNAME: debian.set_hostname("node01"),
        ChangeKind.PACKAGES: debian.apt_install(["chrony"]),
        ChangeKind.DIR: debian.install_dir("/c", 0o750, "root", "root"),
        ChangeKind.FILE: debian.mkdir_parents("/etc"),
        ChangeKind.DAEMON_RELOAD: debian.systemctl_daemon_reload(),
        ChangeKind.REMOVE: debian.remove_file("/etc/old"),
        ChangeKind.REMOVE_DIR: debian.remove_dir_if_empty("/srv/old"),
        ChangeKind.PURGE: debian.apt_purge(["sshfs"]),
    }
    assert apply(Change(ChangeKind.KEEP, "/etc/edited", "")).ran == []  # reported only
    for kind in ChangeKind:
        if kind in (ChangeKind.NETWORK, ChangeKind.KEEP):
            continue
        change = examples.get(kind, Change(kind, "x.service", ""))
        want = first[kind] if kind in first else debian.systemctl_for(kind, "x.service")
        assert apply(change).ran == [want], kind
    assert apply(examples[ChangeKind.FILE]).written == ["/etc/a"]


def test_network_is_not_a_single_step() -> None:
    with pytest.raises(ApplyError, match="unknown change network"):
        apply(Change(ChangeKind.NETWORK, "/etc/dhcpcd.conf", ""))


def test_interrupted_dpkg_is_finished_then_install_retried() -> None:
    tries: list[int] = []

    def answer(argv: list[str]) -> CommandResult | None:
        if argv == debian.apt_install(["munge"]) and not tries:
            tries.append(1)
            return fails(
                100, "E: dpkg was interrupted, you must manually run 'dpkg --configure -a'"
            )
        return None

    change = Change(ChangeKind.PACKAGES, "munge", "", packages=("munge",))
    install = debian.apt_install(["munge"])
    assert apply(change, answer).ran == [install, debian.dpkg_resume(), install]


def test_stale_lists_update_once_then_install_again() -> None:
    def answer(argv: list[str]) -> CommandResult | None:
        stale = argv == debian.apt_install(["munge"]) and debian.apt_update() not in ran
        return fails(100, "E: Unable to locate package munge") if stale else None

    t = Scripted(answer)
    ran = t.ran
    change = Change(ChangeKind.PACKAGES, "munge", "", packages=("munge",))
    asyncio.run(apply_change(t, change))
    install = debian.apt_install(["munge"])
    assert t.ran == [install, debian.apt_update(), install]
    first = Change(ChangeKind.PACKAGES, "munge", "", packages=("munge",), update_first=True)
    assert apply(first).ran == [debian.apt_update(), install]


def test_an_automount_is_stopped_then_started_and_mounted_where_autofs_is_missing() -> None:
    unit = "cluster.automount"
    change = Change(ChangeKind.RESTART, unit, "")
    start = debian.systemctl_start(unit)
    assert apply(change).ran == [debian.systemctl_stop(unit), start]

    def no_autofs(argv: list[str]) -> CommandResult | None:
        return fails(1, "Failed to start: Operation not supported") if argv == start else None

    assert apply(change, no_autofs).ran == [
        debian.systemctl_stop(unit), start, debian.systemctl_restart("cluster.mount")
    ]  # fmt: skip


def test_a_failing_unit_reports_its_journal() -> None:
    def answer(argv: list[str]) -> CommandResult | None:
        if argv[0] == "journalctl":
            return CommandResult("node01", 0, stdout="bad key\nexiting\n")
        return fails(1, "Job failed") if argv[0] == "systemctl" else None

    t = Scripted(answer)
    with pytest.raises(ApplyError, match="journal: bad key / exiting") as caught:
        asyncio.run(apply_change(t, Change(ChangeKind.START, "munge.service", "")))
    assert "systemctl start -- munge.service" in str(caught.value)
    assert t.ran[-1] == debian.journal_tail("munge.service")


def test_runs_of_one_set_up_kind_go_in_one_systemctl() -> None:
    """systemd reloads its configuration once per `systemctl enable`: a node's enables
    (and masks) go together; a failing batch is retried one by one to name the unit."""
    plan = [
        Change(ChangeKind.DAEMON_RELOAD, "systemd", ""),
        Change(ChangeKind.MASK, "a.service", ""),
        Change(ChangeKind.ENABLE, "b.service", ""),
        Change(ChangeKind.ENABLE, "c.service", ""),
        Change(ChangeKind.START, "b.service", ""),
        Change(ChangeKind.START, "c.service", ""),
    ]
    assert [[c.target for c in batch] for batch in batches(plan)] == [
        ["systemd"], ["a.service"], ["b.service", "c.service"], ["b.service"], ["c.service"]
    ]  # fmt: skip
    together = plan[2:4]
    t = Scripted()
    asyncio.run(set_up_units(t, together))
    assert t.ran == [debian.systemctl_for(ChangeKind.ENABLE, "b.service", "c.service")]

    def no_c(argv: list[str]) -> CommandResult | None:
        return fails(1, "Unit c.service does not exist") if "c.service" in argv else None

    t = Scripted(no_c)
    with pytest.raises(ApplyError, match=r"c\.service does not exist"):
        asyncio.run(set_up_units(t, together))
    one_by_one = [debian.systemctl_for(ChangeKind.ENABLE, u) for u in ("b.service", "c.service")]
    assert t.ran[1:3] == one_by_one
    with pytest.raises(ApplyError, match="not one set-up kind"):
        asyncio.run(set_up_units(Scripted(), plan[3:5]))
