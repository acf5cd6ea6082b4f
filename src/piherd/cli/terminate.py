"""SIGTERM taken like Ctrl-C: one cancellation path (remote commands stopped, results kept)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """Hand SIGTERM to whatever handles SIGINT now (asyncio.run cancels its main task)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM takes Ctrl-C's path; the previous handler is restored after."""
    try:
        previous = signal.signal(signal.SIGTERM, _as_ctrl_c)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
