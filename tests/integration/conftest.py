"""Fixtures for tests on virtual clusters (piherd sim), reusable by every room.

- `start_sim(name, workers, light=...)`: a context manager that brings a named sim
  cluster up and always takes it down (in `finally`), asserting nothing is left.
- `sim_cm`: start_sim itself, as a fixture (for module-scoped clusters).
- `sim_factory`: a function fixture; clusters it started are downed at its end.
- a session-end check (autouse) that fails when any sim resource created during the
  session (netns, links, state dirs, processes) is still there.

The pytest process becomes a child subreaper, so the sim's daemons are reaped by it
(this machine's PID 1 does not reap orphans) and leave no zombies behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from piherd.sim.cluster import VirtualCluster
from piherd.sim.leftovers import leftovers
from piherd.sim.names import STATE_ROOT
from piherd.sim.network import NETNS_DIR

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@contextlib.contextmanager
def start_sim(name: str, workers: int = 2, *, light: bool = False) -> Iterator[VirtualCluster]:
    """A running sim cluster `name`; downed on exit, and proven to leave nothing."""
    assert os.geteuid() == 0, "sim tests need root: run them as root (they must not skip)"
    vc = VirtualCluster(name, workers, light=light)
    try:
        asyncio.run(vc.up())
        yield vc
    finally:
        asyncio.run(vc.down())
        left = leftovers(name)
        assert not left, f"sim {name} left behind: {left}"


@pytest.fixture(scope="session")
def sim_cm() -> Callable[..., contextlib.AbstractContextManager[VirtualCluster]]:
    """`with sim_cm(name, workers, light=False) as vc:` (start_sim as a fixture)."""
    return start_sim


@pytest.fixture(scope="session")
def sim_factory() -> Iterator[Callable[..., VirtualCluster]]:
    """`sim_factory(name, workers, light=False)` -> a running VirtualCluster (downed later)."""
    stack = contextlib.ExitStack()

    def factory(name: str, workers: int = 2, *, light: bool = False) -> VirtualCluster:
        return stack.enter_context(start_sim(name, workers, light=light))

    with stack:
        yield factory


def _sim_names() -> set[str]:
    return {p.name for p in STATE_ROOT.iterdir()} if STATE_ROOT.is_dir() else set()


def _sim_netns() -> set[str]:
    if not NETNS_DIR.is_dir():
        return set()
    return {p.name for p in NETNS_DIR.iterdir() if p.name.startswith("piherd-")}


@pytest.fixture(scope="session", autouse=True)
def sim_leftovers_check() -> Iterator[None]:
    """At session end: no sim cluster created by this session left anything behind."""
    if os.geteuid() == 0:
        _become_subreaper()
    names_before, netns_before = _sim_names(), _sim_netns()
    yield
    problems: list[str] = []
    for name in sorted(_sim_names() - names_before):
        problems.append(f"state dir {STATE_ROOT / name}")
        problems += leftovers(name)
    problems += [f"netns {ns}" for ns in sorted(_sim_netns() - netns_before)]
    assert not problems, "sim resources left after the test session: " + "; ".join(problems)


def ssh_argv(vc: VirtualCluster, node: str, *command: str) -> list[str]:
    """argv of `ssh -F <the sim's ssh_config> node command...` (host keys verified)."""
    return ["ssh", "-F", str(vc.files.ssh_config), node, *command]


def state_path(vc: VirtualCluster, node: str) -> Path:
    return vc.state.node_dir(node)
