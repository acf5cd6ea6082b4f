"""A service added in one module of its own: loaded, checked, rendered, planned, applied, removed.

The service below lives only in this test and a test-only registry; no other module of
piherd names it. It goes through the real loader, render, plan and apply (on the local
transport, into a scratch directory: this machine has no systemd to manage units).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from piherd.facts.node_facts import NodeFacts
from piherd.model import Cluster, ConfigError, Node
from piherd.model import loads as load_with
from piherd.model.reader import Reader
from piherd.model.service import Service
from piherd.model.specs import FileSpec, RenderContext
from piherd.ops.changes import Change, ChangeKind, DesiredNode
from piherd.ops.desired import DesiredState
from piherd.render.spec import text
from piherd.runner.apply import NodeResult, UpOptions, UpResult, up
from piherd.secrets import load_or_create_secrets
from piherd.transport.base import Transport
from piherd.transport.local import LocalTransport


@dataclass(frozen=True)
class MotdSettings:
    """[services.motd]: a message of the day, written into `directory` on every node."""

    enabled: bool = False
    text: str = "Welcome"
    directory: str = "/etc"


class MotdService(Service):
    """The test's own service: one file per node, nothing else."""

    name = "motd"
    keys = ("enabled", "text", "directory")

    def read(self, reader: Reader, table: dict[str, Any]) -> MotdSettings:
        path = "services.motd"
        return MotdSettings(
            enabled=reader.get(table, path, "enabled", bool, False),
            text=reader.get(table, path, "text", str, "Welcome"),
            directory=reader.get(table, path, "directory", str, "/etc"),
        )

    def check(self, cluster: Cluster, reader: Reader) -> None:
        if not cluster.services.get(MotdSettings).text.isprintable():
            reader.problem("services.motd.text", "must be one printable line")

    def files(self, cluster: Cluster, node: Node, ctx: RenderContext) -> list[FileSpec]:
        motd = cluster.services.get(MotdSettings)
        return [text(cluster, f"{motd.directory}/motd", [f"{motd.text} on {node.name}"])]


REGISTRY = (MotdService(),)


def cluster_text(directory: Path, *, enabled: bool, message: str = "Welcome") -> str:
    return f"""
[cluster]
name = "motdtest"
secrets_dir = "{directory / "secrets"}"

[network]
subnet = "192.168.77.0/24"

[naming]
prefix = "node"
count = 1
first_address = "192.168.77.11"

[services.motd]
enabled = {str(enabled).lower()}
text = "{message}"
directory = "{directory / "etc"}"
"""


class LocalPool:
    """The one node is this machine."""

    async def get(self, name: str) -> Transport:
        return LocalTransport(name)

    async def forget(self, name: str) -> None:
        del name


class Events:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def phase(self, node: str, text: str) -> None:
        pass

    def change(self, node: str, change: Change) -> None:
        self.changes.append(change)

    def done(self, result: NodeResult) -> None:
        pass


def converge(tmp_path: Path, **kwargs: Any) -> tuple[UpResult, Events]:
    """`up` with the test registry; the record kept in the scratch directory."""
    cluster = load_with(cluster_text(tmp_path, **kwargs), REGISTRY)
    state = DesiredState(load_or_create_secrets(cluster))

    def build(cluster: Cluster, facts: Mapping[str, NodeFacts]) -> dict[str, DesiredNode]:
        # The node is this machine: keep its own host name.
        return {n: replace(d, hostname="") for n, d in state(cluster, facts).items()}

    events = Events()
    options = UpOptions(record_path=str(tmp_path / "state" / "record"))
    result = asyncio.run(up(cluster, LocalPool(), build, events, options, ["node01"]))
    assert not result.failed, result.results
    return result, events


def test_the_registry_decides_which_tables_a_file_may_have(tmp_path: Path) -> None:
    cluster = load_with(cluster_text(tmp_path, enabled=True), REGISTRY)
    assert [s.name for s in cluster.services.enabled()] == ["motd"]
    with pytest.raises(ConfigError, match="services"):
        load_with(cluster_text(tmp_path, enabled=True) + "[services.slurm]\n", REGISTRY)
    with pytest.raises(ConfigError, match="one printable line"):
        load_with(cluster_text(tmp_path, enabled=True, message="a\\u00a0b"), REGISTRY)


def test_rendered_planned_applied_and_removed(tmp_path: Path) -> None:
    motd = tmp_path / "etc" / "motd"
    _, events = converge(tmp_path, enabled=True)
    assert [(c.kind, c.target) for c in events.changes] == [(ChangeKind.FILE, str(motd))]
    assert motd.read_text().endswith("Welcome on node01\n")
    assert str(motd) in (tmp_path / "state" / "record").read_text()
    assert not converge(tmp_path, enabled=True)[1].changes  # a second up changes nothing

    admin = tmp_path / "etc" / "issue"  # an admin's file beside it is never touched
    admin.write_text("mine\n")
    _, events = converge(tmp_path, enabled=False)
    assert [(c.kind, c.target) for c in events.changes] == [
        (ChangeKind.REMOVE, str(motd)),
        (ChangeKind.REMOVE_DIR, str(motd.parent)),  # piherd made it; kept, as not empty
    ]
    assert not motd.exists() and admin.read_text() == "mine\n"
    assert not converge(tmp_path, enabled=False)[1].changes

    converge(tmp_path, enabled=True)  # on again: back
    assert motd.read_text().endswith("Welcome on node01\n")


def test_a_file_the_admin_edited_is_reported_not_removed(tmp_path: Path) -> None:
    motd = tmp_path / "etc" / "motd"
    converge(tmp_path, enabled=True)
    motd.write_text("edited by hand\n")
    _, events = converge(tmp_path, enabled=False)
    assert [(c.kind, c.target) for c in events.changes] == [
        (ChangeKind.KEEP, str(motd)),
        (ChangeKind.REMOVE_DIR, str(motd.parent)),
    ]
    assert motd.read_text() == "edited by hand\n"
    assert not converge(tmp_path, enabled=False)[1].changes  # reported once, then left
