"""Gather facts from nodes: one round trip per node, all nodes in parallel."""

from __future__ import annotations

from collections.abc import Sequence

from piherd.facts.node_facts import NodeFacts
from piherd.facts.parse import parse_facts
from piherd.facts.record import RECORD_PATH
from piherd.facts.script import facts_argv
from piherd.transport.base import Transport, TransportError


async def gather_facts(
    transport: Transport,
    paths: Sequence[str] = (),
    units: Sequence[str] = (),
    *,
    timeout: float = 60.0,
    record_path: str = RECORD_PATH,
) -> NodeFacts:
    """Run the facts script on one node (as root) and parse it; TransportError on failure."""
    argv = facts_argv(paths, units, record_path)
    result = await transport.run(argv, sudo=True, timeout=timeout)
    if result.error is not None:
        raise TransportError(transport.node, result.error)
    if result.rc != 0:
        reason = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.rc}"]
        raise TransportError(transport.node, f"gathering facts failed: {reason[0]}")
    try:
        return parse_facts(transport.node, result.stdout, tuple(units))
    except ValueError as exc:
        raise TransportError(transport.node, str(exc)) from exc
