"""The network move: its scripts, and the order of its steps on a scripted node."""

from __future__ import annotations

import asyncio

import pytest
from scripted_node import ScriptedNode

from piherd.facts.node_facts import NodeFacts
from piherd.ops import debian
from piherd.ops.changes import Change, ChangeKind, DesiredFile
from piherd.runner import netmove
from piherd.runner.netmove import (
    MARKER,
    OldFile,
    activate_command,
    connection_id,
    move_network,
    rollback_script,
)
from piherd.runner.node_step import ApplyError
from piherd.transport.base import CommandResult, Transport

NM = DesiredFile(
    "/etc/NetworkManager/system-connections/piherd-host0.nmconnection",
    b"[connection]\nid=piherd-host0\n",
    0o600,
)
STATIC = "10.0.0.5"


def test_netmove_scripts() -> None:
    assert connection_id(NM.path, NM.content) == "piherd-host0"
    assert connection_id("/x/eth0.nmconnection", b"[ipv4]\n") == "eth0"
    cmd = activate_command("networkmanager", "host0", ("piherd-host0",))
    assert "nmcli connection up piherd-host0" in cmd
    script = rollback_script(
        "networkmanager",
        "host0",
        {
            NM.path: OldFile(NM.path, None),
            "/etc/x y": OldFile("/etc/x y", b"old; rm -rf /", 0o600),
        },
    )
    assert f"[ -e {MARKER} ] || exit 0" in script
    assert f"rm -f -- {NM.path}" in script
    assert "rm -rf /" not in script  # old content travels base64-encoded
    assert "mv -f -- '/etc/x y.piherd-rollback' '/etc/x y'" in script
    assert script.rstrip().endswith("nmcli device connect host0")


class Node(ScriptedNode):
    """One node's side of the move: every step lands in `log`, in order."""

    def __init__(self, address: str) -> None:
        super().__init__("node05")
        self.address = address

    def answer(self, argv: list[str]) -> CommandResult | None:
        out = f"2: host0    inet {self.address}/24 brd ...\n" if argv[0] == "ip" else ""
        return CommandResult(self.node, 0, stdout=out)


class Moving:
    """A pool whose node answers at its old address until the first reconnect."""

    def __init__(self, new_address: str) -> None:
        self.node = Node("192.168.1.77")
        self.new_address = new_address
        self.forgotten = 0

    async def get(self, name: str) -> Transport:
        return self.node

    async def forget(self, name: str) -> None:
        self.forgotten += 1
        self.node.address = self.new_address


def move(pool: Moving, timeout: float) -> None:
    change = Change(ChangeKind.NETWORK, NM.path, "missing", files=(NM,))
    facts = NodeFacts(node="node05")
    asyncio.run(
        move_network(pool, "node05", STATIC, "networkmanager", "host0", change, facts,
                     network_timeout=timeout, rollback_after=90)
    )  # fmt: skip


def test_rollback_is_armed_before_the_new_config_and_cancelled_at_the_new_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(netmove, "RECONNECT_POLL", 0.0)
    pool = Moving(STATIC)
    move(pool, timeout=5)
    log = pool.node.log
    arm = log.index(" ".join(netmove.arm_rollback_command(90)))
    assert log.index(f"write {netmove.ROLLBACK_SCRIPT}") < arm
    assert log.index(f"write {MARKER}") < arm < log.index(f"write {NM.path}")
    activate = next(i for i, line in enumerate(log) if "--unit=piherd-net-apply" in line)
    assert log.index(f"write {NM.path}") < activate
    assert log[-2:] == [
        " ".join(debian.remove_file(MARKER)),
        " ".join(debian.systemctl_stop("piherd-net-rollback.timer")),
    ]


def test_a_node_that_never_answers_at_its_address_keeps_the_rollback_armed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(netmove, "RECONNECT_POLL", 0.01)
    pool = Moving("192.168.1.77")  # the new config did not take
    with pytest.raises(ApplyError, match=r"not reachable at 10\.0\.0\.5 within 0\.2s") as caught:
        move(pool, timeout=0.2)
    assert "restores its previous network config after 90s" in str(caught.value)
    assert " ".join(debian.remove_file(MARKER)) not in pool.node.log
