"""What the dashboard knows: the latest health round and an hour of load/temperature history.

Kept in one object per app (no globals); `update` is the only writer.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from piherd.health.collect import Snapshot
from piherd.health.report import snapshot_dict


@dataclass(frozen=True)
class Sample:
    """One point of a node's history."""

    time: float
    load1: float | None
    temp_c: float | None


class DashboardState:
    """The latest Snapshot plus, per node, a ring buffer covering `history_s` seconds."""

    def __init__(self, *, interval: float, history_s: float = 3600.0) -> None:
        self.interval = interval
        self.history_s = history_s
        self.capacity = max(2, math.ceil(history_s / interval))
        self.latest: Snapshot | None = None
        self.history: dict[str, deque[Sample]] = {}
        self.rounds = 0

    def update(self, snap: Snapshot) -> None:
        """Record a round: it becomes the latest, and each node gains a history point."""
        self.latest = snap
        self.rounds += 1
        for h in snap.health:
            ring = self.history.setdefault(h.node, deque(maxlen=self.capacity))
            ring.append(Sample(snap.time, h.load[0] if h.load else None, h.temp_c))
        horizon = snap.time - self.history_s
        for ring in self.history.values():
            while ring and ring[0].time < horizon:
                ring.popleft()

    def as_dict(self) -> dict[str, Any]:
        """The JSON the page polls: the latest round, each node's history, and meta data."""
        if self.latest is None:
            return {"ready": False, "nodes": [], "jobs": [], "history": {}}
        data = snapshot_dict(self.latest)
        data["ready"] = True
        data["interval_s"] = self.interval
        data["history"] = {
            node: {
                "t": [round(s.time, 1) for s in ring],
                "load1": [s.load1 for s in ring],
                "temp_c": [s.temp_c for s in ring],
            }
            for node, ring in self.history.items()
        }
        return data
