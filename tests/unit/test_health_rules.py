"""Health rules: thresholds turn probed values into ok / warn / critical with reasons."""

from __future__ import annotations

from dataclasses import replace

from piherd.health.probe import NodeHealth, Throttling, decode_throttled, unreachable
from piherd.health.verdicts import Level, evaluate
from piherd.model.cluster import HealthRules

RULES = HealthRules()
GOOD = NodeHealth(
    node="node02",
    reachable=True,
    temp_c=50.0,
    throttling=decode_throttled(0),
    root_use_pct=40.0,
    root_ro=False,
    clock_offset_s=0.01,
    clock_uncertainty_s=0.01,
    storage_fstype="nfs4",
    services={"slurmd": "active"},
)


def test_healthy_node_is_ok() -> None:
    v = evaluate(GOOD, RULES)
    assert v.level == Level.OK and v.reasons == ()


def test_unreachable_is_critical() -> None:
    v = evaluate(unreachable("node03", "timed out"), RULES)
    assert v.level == Level.CRITICAL and v.critical == ("unreachable",)


def test_under_voltage_now_is_critical_since_boot_warns() -> None:
    v = evaluate(replace(GOOD, throttling=decode_throttled(0x50005)), RULES)
    assert v.level == Level.CRITICAL and v.critical == ("under-voltage",)
    assert "throttled" in v.warnings
    v = evaluate(replace(GOOD, throttling=decode_throttled(0x10000)), RULES)
    assert v.level == Level.WARN and v.warnings == ("under-voltage since boot",)
    hw = Throttling("hwmon", 1, frozenset({"under-voltage"}))
    assert evaluate(replace(GOOD, throttling=hw), RULES).critical == ("under-voltage",)


def test_temperature_thresholds() -> None:
    assert evaluate(replace(GOOD, temp_c=74.9), RULES).level == Level.OK
    v = evaluate(replace(GOOD, temp_c=76.0), RULES)
    assert v.level == Level.WARN and v.warnings == ("temperature 76.0 C >= 75",)
    v = evaluate(replace(GOOD, temp_c=82.0), RULES)
    assert v.level == Level.CRITICAL and v.critical == ("temperature 82.0 C >= 80",)
    hot = HealthRules(temp_warn_c=60, temp_crit_c=70.5)
    assert evaluate(replace(GOOD, temp_c=71.0), hot).critical == ("temperature 71.0 C >= 70.5",)


def test_disk_and_read_only_root() -> None:
    assert evaluate(replace(GOOD, root_use_pct=91.0), RULES).warnings == ("disk 91% >= 90",)
    assert evaluate(replace(GOOD, root_use_pct=99.0), RULES).critical == ("disk 99% >= 98",)
    assert evaluate(replace(GOOD, root_ro=True), RULES).critical == ("root filesystem read-only",)


def test_clock_offset_judged_beyond_its_uncertainty() -> None:
    v = evaluate(replace(GOOD, clock_offset_s=-1.5, clock_uncertainty_s=0.1), RULES)
    assert v.critical == ("clock offset -1.50 s > 1",)
    # 1.2 s measured with 0.5 s uncertainty could be 0.7 s: not judged critical.
    assert evaluate(replace(GOOD, clock_offset_s=1.2, clock_uncertainty_s=0.5), RULES).level == (
        Level.OK
    )
    v = evaluate(replace(GOOD, chrony_offset_s=2.0, chrony_synced=True), RULES)
    assert v.critical == ("chrony offset +2.00 s > 1",)
    assert evaluate(replace(GOOD, chrony_synced=False), RULES).warnings == (
        "clock not synchronised",
    )


def test_storage_missing_is_critical_unless_not_checked() -> None:
    assert evaluate(replace(GOOD, storage_fstype=""), RULES).critical == (
        "shared storage not mounted",
    )
    assert evaluate(replace(GOOD, storage_fstype="autofs"), RULES).level == Level.CRITICAL
    assert evaluate(replace(GOOD, storage_fstype=None), RULES).level == Level.OK


def test_slurmd_not_running_warns_on_compute_nodes_only() -> None:
    down = replace(GOOD, services={"slurmd": "failed"})
    assert evaluate(down, RULES).warnings == ("slurmd failed",)
    assert evaluate(down, RULES, compute=False).level == Level.OK


def test_several_reasons_critical_first() -> None:
    bad = replace(GOOD, temp_c=90.0, throttling=decode_throttled(0x1), root_use_pct=95.0)
    v = evaluate(bad, RULES)
    assert v.critical == ("under-voltage", "temperature 90.0 C >= 80")
    assert v.reasons == (*v.critical, "disk 95% >= 90")
    assert max(Level.OK, Level.CRITICAL, Level.WARN) == Level.CRITICAL


def test_no_systemd_to_ask_is_not_a_warning() -> None:
    assert evaluate(replace(GOOD, services={"slurmd": "unknown"}), RULES).level == Level.OK
    assert evaluate(replace(GOOD, services={}), RULES).level == Level.OK
