"""Prometheus /metrics from the dashboard's latest round, on a per-app CollectorRegistry."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from piherd.health.probe import THROTTLE_FLAGS, NodeHealth
from piherd.health.slurm_state import METRIC_STATES
from piherd.web.dashboard_state import DashboardState


def _ratio(pct: float | None) -> float | None:
    return None if pct is None else pct / 100.0


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)


# One gauge per node: name, help, and its value from a NodeHealth (None: not reported).
NODE_GAUGES: tuple[tuple[str, str, Callable[[NodeHealth], float | None]], ...] = (
    ("piherd_node_up", "1 when the node answered its probe", lambda h: float(h.reachable)),
    ("piherd_node_load1", "1-minute load average", lambda h: h.load[0] if h.load else None),
    ("piherd_node_load5", "5-minute load average", lambda h: h.load[1] if h.load else None),
    ("piherd_node_load15", "15-minute load average", lambda h: h.load[2] if h.load else None),
    ("piherd_node_temperature_celsius", "CPU temperature (thermal_zone0)", lambda h: h.temp_c),
    (
        "piherd_node_memory_used_ratio",
        "memory in use (1 - available/total)",
        lambda h: _ratio(h.mem_used_pct),
    ),
    ("piherd_node_root_used_ratio", "root filesystem use", lambda h: _ratio(h.root_use_pct)),
    (
        "piherd_node_root_read_only",
        "1 when / is mounted read-only",
        lambda h: _flag(h.root_ro),
    ),
    ("piherd_node_clock_offset_seconds", "node clock minus head clock", lambda h: h.clock_offset_s),
    (
        "piherd_node_storage_mounted",
        "1 when the shared storage is mounted",
        lambda h: _flag(h.storage_mounted),
    ),
)


class SnapshotCollector(Collector):
    """Yields gauges built from the state's latest round at scrape time."""

    def __init__(self, state: DashboardState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.state.latest
        gauges = [GaugeMetricFamily(name, text, labels=["node"]) for name, text, _ in NODE_GAUGES]
        level = GaugeMetricFamily(
            "piherd_node_health_level", "0 ok, 1 warn, 2 critical", labels=["node"]
        )
        throttled = GaugeMetricFamily(
            "piherd_node_throttled",
            "Raspberry Pi throttling flags (vcgencmd get_throttled / rpi_volt hwmon)",
            labels=["node", "flag", "when"],
        )
        slurm = GaugeMetricFamily(
            "piherd_slurm_node_state",
            "1 for each Slurm base state and flag that applies to the node, 0 for the others"
            " (a closed set: docs/health.md)",
            labels=["node", "state"],
        )
        health = snap.health if snap is not None else ()
        for h in health:
            for gauge, (_, _, value_of) in zip(gauges, NODE_GAUGES, strict=True):
                value = value_of(h)
                if value is not None:
                    gauge.add_metric([h.node], value)
            if snap is not None:
                level.add_metric([h.node], float(snap.verdicts[h.node].level))
            _add_throttling(throttled, h)
            _add_slurm_state(slurm, h)
        yield from (*gauges, level, throttled, slurm)


def _add_throttling(family: GaugeMetricFamily, h: NodeHealth) -> None:
    if h.reachable and h.throttling.known:
        for _, flag in THROTTLE_FLAGS:
            family.add_metric([h.node, flag, "now"], float(flag in h.throttling.now))
            family.add_metric([h.node, flag, "since_boot"], float(flag in h.throttling.since_boot))


def _add_slurm_state(family: GaugeMetricFamily, h: NodeHealth) -> None:
    if h.slurm is not None:
        applied = h.slurm.metric_states
        for state in METRIC_STATES:
            family.add_metric([h.node, state], float(state in applied))


def make_registry(state: DashboardState) -> CollectorRegistry:
    """A registry of this app's own (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(state))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
