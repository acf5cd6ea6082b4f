"""Password login off without locking anyone out: the rollback script, and the steps'
order on a scripted node (the real sshd reload is exercised on the sim, test_up.py)."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from scripted_node import ScriptedNode

from piherd.facts.node_facts import FileState, NodeFacts
from piherd.ops import debian
from piherd.ops.changes import Change, ChangeKind, Plan
from piherd.runner import login_guard
from piherd.runner.apply import NodeResult, UpOptions, apply_plan
from piherd.runner.login_guard import MARKER, ROLLBACK_UNIT, rollback_script
from piherd.runner.netmove import OldFile
from piherd.services import load
from piherd.services.ssh_keys import KEYS_ONLY_DROPIN, render_no_password
from piherd.transport.base import Transport, TransportError

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"


class Node(ScriptedNode):
    """One node's side: every step lands in `log`, in order; sshd allows passwords now."""

    def __init__(self) -> None:
        super().__init__("node02")

    def contents(self, path: str) -> bytes | None:
        return b"PasswordAuthentication yes\n"


class Pool:
    """`logins_after_reload`: whether a fresh key login works once sshd has reloaded."""

    def __init__(self, logins_after_reload: bool) -> None:
        self.node = Node()
        self.works = logins_after_reload
        self.reloaded = False

    async def get(self, name: str) -> Transport:
        if self.reloaded and not self.works:
            raise TransportError(name, "authentication refused")
        return self.node

    async def forget(self, name: str) -> None:
        self.reloaded = any("ssh.service" in line for line in self.node.log)


def guarded_plan() -> tuple[Plan, NodeFacts]:
    cluster = load(EXAMPLE)
    spec = render_no_password(cluster, cluster.node("node02"))
    assert spec.guards_login and spec.reloads == ("ssh.service",)
    changes = (
        Change(ChangeKind.FILE, spec.path, "content changed", files=(spec,)),
        Change(ChangeKind.RELOAD, "ssh.service", f"input changed: {spec.path}"),
    )
    facts = NodeFacts(node="node02", files={spec.path: FileState(spec.path, "file", 0o644)})
    return Plan("node02", changes), facts


def apply(pool: Pool) -> NodeResult:
    plan, facts = guarded_plan()

    class Quiet:
        def phase(self, node: str, text: str) -> None:
            pass

        def change(self, node: str, change: Change) -> None:
            pass

        def done(self, result: NodeResult) -> None:
            pass

    options = UpOptions(record_path="", network_timeout=0.2, rollback_after=90)
    return asyncio.run(apply_plan(pool, load(EXAMPLE), plan, facts, Quiet(), options))


def test_keys_only_dropin_speaks_each_sshd_s_language() -> None:
    cluster = load(EXAMPLE)
    text = render_no_password(cluster, cluster.head).content.decode()
    assert "PasswordAuthentication no\nKbdInteractiveAuthentication no\n" in text
    old = replace(cluster.head, os="bullseye")
    assert "ChallengeResponseAuthentication no" in render_no_password(cluster, old).content.decode()
    assert KEYS_ONLY_DROPIN.startswith("/etc/ssh/sshd_config.d/10-")  # before Debian's own


def test_reload_is_armed_then_kept_only_after_a_fresh_key_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(login_guard, "RECONNECT_POLL", 0.0)
    pool = Pool(logins_after_reload=True)
    result = apply(pool)
    assert result.status == "changed", result.reason
    log = pool.node.log
    arm = log.index(" ".join(login_guard.arm_command(90)))
    reload = log.index(" ".join(debian.systemctl_for(ChangeKind.RELOAD, "ssh.service")))
    assert log.index(f"read {KEYS_ONLY_DROPIN}") < log.index(f"write {KEYS_ONLY_DROPIN}") < arm
    assert log.index(f"write {MARKER}") < arm < reload
    assert log[reload + 1 : reload + 3] == [  # then the owed restart is forgotten
        " ".join(debian.remove_file(MARKER)),
        " ".join(debian.systemctl_stop(f"{ROLLBACK_UNIT}.timer")),
    ]


def test_no_key_login_after_the_reload_leaves_the_rollback_armed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(login_guard, "RECONNECT_POLL", 0.01)
    pool = Pool(logins_after_reload=False)
    result = apply(pool)
    assert result.status == "failed"
    assert "no key login after sshd reloaded" in result.reason
    assert "restores its previous login settings after 90s" in result.reason
    assert " ".join(debian.remove_file(MARKER)) not in pool.node.log


def test_the_rollback_script_restores_the_old_files(tmp_path: Path) -> None:
    """Run for real (in a scratch dir, with systemctl and the marker path stood in)."""
    kept, new = tmp_path / "10-old.conf", tmp_path / "piherd-new.conf"
    kept.write_text("PasswordAuthentication no\n")
    new.write_text("fresh\n")
    marker = tmp_path / "pending"
    old = {
        str(kept): OldFile(str(kept), b"PasswordAuthentication yes\n", 0o644, "root", "root"),
        str(new): OldFile(str(new), None),
    }
    script = rollback_script(old).replace(MARKER, str(marker))
    script = script.replace("systemctl reload-or-restart -- ssh.service", f"touch {tmp_path}/re")
    (tmp_path / "rollback.sh").write_text(script)
    subprocess.run(["sh", str(tmp_path / "rollback.sh")], check=True, timeout=10)
    assert kept.read_text() == "PasswordAuthentication no\n"  # no marker: a no-op
    marker.touch()
    subprocess.run(["sh", str(tmp_path / "rollback.sh")], check=True, timeout=10)
    assert kept.read_text() == "PasswordAuthentication yes\n" and not new.exists()
    assert (tmp_path / "re").exists() and not marker.exists()
