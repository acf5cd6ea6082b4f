"""The docs say what the code does: examples in docs/*.md checked against the code that
produces them, so a change to either shows up here."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from piherd.health.probe import unreachable
from piherd.health.slurm_state import METRIC_STATES
from piherd.health.verdicts import evaluate
from piherd.model.cluster import HealthRules
from piherd.render.spec import node_memory
from piherd.runner import fold
from piherd.services.time import INIT_UPSTREAM, TimeSettings
from piherd.transport.base import CommandResult

DOCS = Path(__file__).resolve().parents[2] / "docs"


def doc(name: str) -> str:
    return (DOCS / name).read_text()


def test_run_summary_line_is_the_one_printed() -> None:
    results = [CommandResult(f"node{i:02d}", 0, "", "", None, 0.1) for i in range(1, 15)]
    results += [
        CommandResult("node15", 1, "", "", None, 0.1),
        CommandResult("node16", None, "", "", "unreachable (timed out after 10s)", 10.0),
        CommandResult("node17", None, "", "", "timeout after 5s", 5.0),
    ]
    assert f"    {fold.summary_line(results)}\n" in doc("run.md")


def test_ntp_defaults_are_the_loaders_and_inits() -> None:
    row = next(
        line for line in doc("cluster-toml.md").splitlines() if line.startswith("| `upstream`")
    )
    assert f"`{json.dumps(list(TimeSettings().upstream))}`" in row
    assert f"`{json.dumps(list(INIT_UPSTREAM))}`" in row


def test_memory_mb_default_is_95_percent_of_what_the_node_reports() -> None:
    from piherd.model.specs import RenderContext
    from piherd.services import load

    example = load(DOCS.parent / "examples" / "cluster.toml")
    node = replace(example.nodes[1], memory_mb=None)
    ctx = RenderContext(b"", b"", "", hardware={node.name: (4, 1000)})
    assert node_memory(node, ctx) == 950
    row = next(line for line in doc("cluster-toml.md").splitlines() if "| `memory_mb`" in line)
    assert "95% of what the node reports" in row


def test_dead_slurmd_reason_text_is_documented() -> None:
    healthy = unreachable("node02", "x")
    for state in ("failed", "inactive"):
        probe = replace(healthy, reachable=True, services={"slurmd": state})
        verdict = evaluate(probe, HealthRules(), compute=True)
        assert f"slurmd {state}" in verdict.warnings
        assert f"`slurmd {state}`" in doc("health.md")


def test_every_slurm_state_label_value_is_documented() -> None:
    text = doc("health.md")
    assert all(f"`{value}`" in text for value in METRIC_STATES)
