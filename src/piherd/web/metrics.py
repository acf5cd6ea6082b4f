"""Prometheus /metrics from the dashboard's latest round, on a per-app CollectorRegistry."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from piherd.health.probe import THROTTLE_FLAGS
from piherd.web.dashboard_state import DashboardState

SLURM_STATES = ("idle", "allocated", "mixed", "drained", "draining", "down", "completing")


class SnapshotCollector(Collector):
    """Yields gauges built from the state's latest round at scrape time."""

    def __init__(self, state: DashboardState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.state.latest
        up = GaugeMetricFamily(
            "piherd_node_up", "1 when the node answered its probe", labels=["node"]
        )
        load1 = GaugeMetricFamily("piherd_node_load1", "1-minute load average", labels=["node"])
        load5 = GaugeMetricFamily("piherd_node_load5", "5-minute load average", labels=["node"])
        load15 = GaugeMetricFamily("piherd_node_load15", "15-minute load average", labels=["node"])
        temp = GaugeMetricFamily(
            "piherd_node_temperature_celsius", "CPU temperature (thermal_zone0)", labels=["node"]
        )
        throttled = GaugeMetricFamily(
            "piherd_node_throttled",
            "Raspberry Pi throttling flags (vcgencmd get_throttled / rpi_volt hwmon)",
            labels=["node", "flag", "when"],
        )
        level = GaugeMetricFamily(
            "piherd_node_health_level", "0 ok, 1 warn, 2 critical", labels=["node"]
        )
        mem = GaugeMetricFamily(
            "piherd_node_memory_used_ratio", "memory in use (1 - available/total)", labels=["node"]
        )
        root = GaugeMetricFamily(
            "piherd_node_root_used_ratio", "root filesystem use", labels=["node"]
        )
        root_ro = GaugeMetricFamily(
            "piherd_node_root_read_only", "1 when / is mounted read-only", labels=["node"]
        )
        clock = GaugeMetricFamily(
            "piherd_node_clock_offset_seconds", "node clock minus head clock", labels=["node"]
        )
        storage = GaugeMetricFamily(
            "piherd_node_storage_mounted", "1 when the shared storage is mounted", labels=["node"]
        )
        slurm = GaugeMetricFamily(
            "piherd_slurm_node_state",
            "1 for the node's current Slurm state",
            labels=["node", "state"],
        )
        families = [up, load1, load5, load15, temp, throttled, level, mem, root, root_ro, clock]
        families += [storage, slurm]
        if snap is None:
            yield from families
            return
        for h in snap.health:
            n = [h.node]
            up.add_metric(n, 1.0 if h.reachable else 0.0)
            level.add_metric(n, float(snap.verdicts[h.node].level))
            if h.load:
                load1.add_metric(n, h.load[0])
                load5.add_metric(n, h.load[1])
                load15.add_metric(n, h.load[2])
            if h.temp_c is not None:
                temp.add_metric(n, h.temp_c)
            if h.reachable and h.throttling.known:
                for _, flag in THROTTLE_FLAGS:
                    throttled.add_metric([h.node, flag, "now"], float(flag in h.throttling.now))
                    throttled.add_metric(
                        [h.node, flag, "since_boot"], float(flag in h.throttling.since_boot)
                    )
            if h.mem_used_pct is not None:
                mem.add_metric(n, h.mem_used_pct / 100.0)
            if h.root_use_pct is not None:
                root.add_metric(n, h.root_use_pct / 100.0)
            if h.root_ro is not None:
                root_ro.add_metric(n, float(h.root_ro))
            if h.clock_offset_s is not None:
                clock.add_metric(n, h.clock_offset_s)
            if h.storage_mounted is not None:
                storage.add_metric(n, float(h.storage_mounted))
            if h.slurm is not None:
                current = h.slurm.label.rstrip("*")
                states = SLURM_STATES if current in SLURM_STATES else (*SLURM_STATES, current)
                for state in states:
                    slurm.add_metric([h.node, state], float(state == current))
        yield from families


def make_registry(state: DashboardState) -> CollectorRegistry:
    """A registry of this app's own (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(state))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
