"""The `power` use case: on, off, cycle and status of node sets through their controllers.

Power-ons are staggered (services.power.stagger_s between two, the boot current of a
stack of Pis adds up); offs and status queries run side by side. Every on, off and
cycle is logged with who and why (power/journal.py). With `wait`, each node powered on
is waited for until its sshd accepts piherd's login (services.power.wait_timeout_s).
The work itself is piherd.power.control's (`piherd watch` cycles nodes through it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from piherd.model import Cluster
from piherd.power.control import (
    ACTIONS,
    PowerOutcome,
    PowerRun,
    PowerSetupError,
    Progress,
    power_targets,
)

__all__ = ["ACTIONS", "PowerOutcome", "PowerSetupError", "power", "power_targets"]


async def power(
    cluster: Cluster,
    names: Sequence[str],
    action: str,
    *,
    reason: str = "",
    wait: bool = False,
    log_path: Path | None = None,
    progress: Progress | None = None,
) -> list[PowerOutcome]:
    """Power `names` on, off, cycle them, or ask their state (see the module docstring)."""
    run = PowerRun(cluster, names, reason=reason, log_path=log_path, progress=progress)
    return await run.run(action, wait=wait)
