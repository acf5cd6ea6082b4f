"""Fan-out: one operation on many nodes at once, with a concurrency limit and per-node deadline.

`each_node` is the one fan-out loop of piherd (apply, health, first contact and `run` all
use it): a bounded number of nodes at a time, every node's work cancelled when the caller
is. `fan_out` builds `piherd run`/`copy` on it: each node gets one deadline covering
connect and command; a node that cannot be reached becomes a CommandResult with `error`
set, never an exception, and what finished stays in the caller's `results` mapping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import TypeVar

from piherd.transport.base import CommandResult, Transport, TransportError

GetTransport = Callable[[str], Awaitable[Transport]]
NodeWork = Callable[[Transport, float | None], Awaitable[CommandResult]]
ProgressCallback = Callable[[CommandResult], None]
T = TypeVar("T")

DEFAULT_FANOUT = 64
# After a cancel, how long to wait for nodes to stop their remote commands.
_CANCEL_GRACE = 5.0


async def each_node(
    names: Iterable[str], work: Callable[[str], Awaitable[T]], *, limit: int | None = None
) -> dict[str, T]:
    """Run `work(name)` for every name, at most `limit` at a time (None: all at once).

    Returns {name: result} in the order of `names`. When the caller is cancelled or one
    node's work raises, the other nodes' work is cancelled (and given a few seconds to
    stop) before the exception propagates.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"the fan-out limit must be at least 1, not {limit}")
    order = list(dict.fromkeys(names))
    gate = asyncio.Semaphore(limit if limit is not None else max(1, len(order)))

    async def one(name: str) -> T:
        async with gate:
            return await work(name)

    tasks = [asyncio.ensure_future(one(name)) for name in order]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_CANCEL_GRACE)
        raise
    return {name: task.result() for name, task in zip(order, tasks, strict=True)}


async def fan_out(
    get: GetTransport,
    nodes: Sequence[str],
    work: NodeWork,
    *,
    fanout: int = DEFAULT_FANOUT,
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    results: MutableMapping[str, CommandResult] | None = None,
) -> list[CommandResult]:
    """Run `work(transport, remaining_seconds)` on every node, at most `fanout` at a time.

    Results come back in the order of `nodes`. `results`, when given, is filled as nodes
    finish (so a caller still has them after a cancel).
    """
    if fanout < 1:
        raise ValueError(f"fanout must be at least 1, not {fanout}")
    done: MutableMapping[str, CommandResult] = results if results is not None else {}

    async def one(node: str) -> None:
        result = await _one_node(get, node, work, timeout)
        done[node] = result
        if progress is not None:
            progress(result)

    await each_node(nodes, one, limit=fanout)
    return [done[node] for node in nodes]


async def _one_node(
    get: GetTransport, node: str, work: NodeWork, timeout: float | None
) -> CommandResult:
    started = time.monotonic()

    def failed(error: str) -> CommandResult:
        return CommandResult(node, None, error=error, elapsed=time.monotonic() - started)

    try:
        async with asyncio.timeout(timeout):
            transport = await get(node)
    except TimeoutError:
        return failed(f"unreachable (timed out after {timeout:g}s)")
    except TransportError as exc:
        return failed(exc.reason)
    remaining = None if timeout is None else max(0.05, timeout - (time.monotonic() - started))
    try:
        result = await work(transport, remaining)
    except TransportError as exc:
        return failed(exc.reason)
    elapsed = time.monotonic() - started
    error = result.error
    if error is not None and error.startswith("timeout") and timeout is not None:
        error = f"timeout after {timeout:g}s"  # the user's deadline, not what was left of it
    return CommandResult(node, result.rc, result.stdout, result.stderr, error, elapsed)


def run_command(argv: Sequence[str], *, sudo: bool = False, input: bytes | None = None) -> NodeWork:
    """The work of `piherd run`: argv on the node with the time left of its deadline."""

    async def work(transport: Transport, remaining: float | None) -> CommandResult:
        return await transport.run(argv, sudo=sudo, input=input, timeout=remaining)

    return work
