"""Fan-out: one operation on many nodes at once, with a concurrency limit and per-node deadline.

Each node gets one deadline covering connect and command; a node that cannot be reached
becomes a CommandResult with `error` set, never an exception. Cancelling the fan-out
(Ctrl-C) cancels every node's work, which stops the remote commands, and leaves what
finished in the caller's `results` mapping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence

from piherd.transport.base import CommandResult, Transport, TransportError

GetTransport = Callable[[str], Awaitable[Transport]]
NodeWork = Callable[[Transport, float | None], Awaitable[CommandResult]]
ProgressCallback = Callable[[CommandResult], None]

DEFAULT_FANOUT = 64
# After a cancel, how long to wait for nodes to stop their remote commands.
_CANCEL_GRACE = 5.0


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
    gate = asyncio.Semaphore(fanout)

    async def one(node: str) -> None:
        async with gate:
            result = await _one_node(get, node, work, timeout)
        done[node] = result
        if progress is not None:
            progress(result)

    tasks = [asyncio.ensure_future(one(node)) for node in nodes]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=_CANCEL_GRACE)
        raise
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
