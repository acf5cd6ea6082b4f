"""The `up` use case without nodes: password first contact over every node at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from piherd.app import bring_up
from piherd.model import Cluster
from piherd.runner.apply import NodeResult
from piherd.services import load
from piherd.transport import first_contact
from piherd.transport.base import Transport, TransportError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


class Recorder:
    def __init__(self) -> None:
        self.phases: list[str] = []
        self.done_nodes: list[NodeResult] = []

    def phase(self, node: str, text: str) -> None:
        self.phases.append(node)

    def change(self, node: str, change: object) -> None: ...

    def done(self, result: NodeResult) -> None:
        self.done_nodes.append(result)


class Pool:
    async def get(self, name: str) -> Transport:
        return name  # type: ignore[return-value]  # disable_password_login is faked


def test_first_contact_runs_on_every_node_and_reports_who_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster: Cluster = load(EXAMPLE)
    names = [n.name for n in cluster.nodes]
    bad = names[1]
    running = [0, 0]  # now, peak: all nodes at once
    turned_off: list[str] = []

    async def install(c: Cluster, name: str, password: str, key: str) -> None:
        assert (password, key) == ("pw", "ssh-ed25519 AAAA admin")
        running[0] += 1
        running[1] = max(running)
        await asyncio.sleep(0.02)
        running[0] -= 1
        if name == bad:
            raise TransportError(name, "password login failed: denied")

    async def disable(transport: Transport, dropin: str, text: bytes) -> None:
        assert dropin.endswith("10-piherd-no-password.conf")
        assert b"PasswordAuthentication no\n" in text  # what up renders for the node
        turned_off.append(str(transport))

    monkeypatch.setattr(first_contact, "public_key_line", lambda c: "ssh-ed25519 AAAA admin")
    monkeypatch.setattr(first_contact, "install_key_by_password", install)
    monkeypatch.setattr(first_contact, "disable_password_login", disable)
    reporter = Recorder()
    failed = asyncio.run(
        bring_up.password_first_contact(cluster, Pool(), names, "pw", reporter)  # type: ignore[arg-type]
    )
    assert list(failed) == [bad]
    assert failed[bad].status == "failed" and "denied" in failed[bad].reason
    assert [r.node for r in reporter.done_nodes] == [bad]
    assert sorted(turned_off) == sorted(n for n in names if n != bad)
    assert sorted(reporter.phases) == sorted(names)
    assert running[1] == len(names)
