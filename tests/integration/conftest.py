"""Fixtures for tests on virtual clusters (piherd sim), reusable by every room.

- `start_sim(name, workers, light=...)`: a context manager that brings a named sim
  cluster up and always takes it down (in `finally`), asserting nothing is left.
- `sim_cm`: start_sim as a fixture (for module-scoped clusters); it records the name.
- `sim_factory`: a function fixture; clusters it started are downed at its end.
- `sim_names`: the names of the clusters this session starts. sim_cm and sim_factory
  add theirs; a test that starts a cluster another way adds its name itself.
- a session-end check that fails when a cluster of `sim_names` left anything behind
  (state dir, netns, links, nft table, mounts, cgroups, processes). It runs only in a
  session that has sim tests, and never looks at other clusters on the machine.

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

from piherd.sim.leftovers import leftovers, leftovers_of
from piherd.sim.virtual_cluster import VirtualCluster

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@contextlib.contextmanager
def start_sim(
    name: str, workers: int = 2, *, light: bool = False, blank: bool = False,
    release: str = "bookworm", vm: bool = False, netboot: bool = False,
) -> Iterator[VirtualCluster]:  # fmt: skip
    """A running sim cluster `name`; downed on exit, and proven to leave nothing."""
    assert os.geteuid() == 0, "sim tests need root: run them as root (they must not skip)"
    vc = VirtualCluster(
        name, workers, light=light, blank=blank, release=release, vm=vm, netboot=netboot
    )
    try:
        asyncio.run(vc.up())
        yield vc
    finally:
        asyncio.run(vc.down())
        left = leftovers(name)
        assert not left, f"sim {name} left behind: {left}"


@pytest.fixture(scope="session")
def sim_names() -> set[str]:
    """Names of the sim clusters this session starts: the session-end check looks at these."""
    return set()


@pytest.fixture(scope="session")
def sim_cm(sim_names: set[str]) -> Callable[..., contextlib.AbstractContextManager[VirtualCluster]]:
    """`with sim_cm(name, workers, light=False, blank=False, release="bookworm", vm=False)
    as vc:` (start_sim, the name recorded)."""

    def cm(
        name: str, workers: int = 2, *, light: bool = False, blank: bool = False,
        release: str = "bookworm", vm: bool = False, netboot: bool = False,
    ) -> contextlib.AbstractContextManager[VirtualCluster]:  # fmt: skip
        sim_names.add(name)
        return start_sim(
            name, workers, light=light, blank=blank, release=release, vm=vm, netboot=netboot
        )

    return cm


@pytest.fixture(scope="session")
def sim_factory(
    sim_cm: Callable[..., contextlib.AbstractContextManager[VirtualCluster]],
) -> Iterator[Callable[..., VirtualCluster]]:
    """`sim_factory(name, workers, light=False)` -> a running VirtualCluster (downed later)."""
    stack = contextlib.ExitStack()

    def factory(name: str, workers: int = 2, *, light: bool = False) -> VirtualCluster:
        return stack.enter_context(sim_cm(name, workers, light=light))

    with stack:
        yield factory


@pytest.fixture(scope="session", autouse=True)
def sim_leftovers_check(request: pytest.FixtureRequest, sim_names: set[str]) -> Iterator[None]:
    """At session end: no sim cluster this session started left anything behind."""
    if os.geteuid() == 0:
        _become_subreaper()
    yield
    if not any(item.get_closest_marker("sim") for item in request.session.items):
        return  # no sim test ran: nothing of a sim to look for
    problems = leftovers_of(sim_names)
    assert not problems, "sim resources left after the test session: " + "; ".join(problems)


def ssh_argv(vc: VirtualCluster, node: str, *command: str) -> list[str]:
    """argv of `ssh -F <the sim's ssh_config> node command...` (host keys verified)."""
    return ["ssh", "-F", str(vc.files.ssh_config), node, *command]


def state_path(vc: VirtualCluster, node: str) -> Path:
    return vc.state.node_dir(node)
