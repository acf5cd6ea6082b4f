"""`piherd up` input errors and the reporters' output (no nodes needed)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from click.testing import CliRunner

from piherd.cli.main import cli
from piherd.ops.changes import Change, ChangeKind
from piherd.runner.apply import NodeResult
from piherd.runner.progress import JsonReporter, PlainReporter

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"


def test_unknown_nodeset_is_usage_error() -> None:
    result = CliRunner().invoke(cli, ["up", "-f", str(EXAMPLE), "node99"])
    assert result.exit_code == 2
    assert "not a node of this cluster: node99" in result.output
    assert "Traceback" not in result.output


def test_missing_cluster_file_is_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["up", "-f", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def results() -> dict[str, NodeResult]:
    change = Change(ChangeKind.FILE, "/etc/hosts", "content changed", diff="-a\n+b\n")
    return {
        "node01": NodeResult("node01", "changed", [change], 1, "", 1.5),
        "node02": NodeResult("node02", "unchanged"),
        "node03": NodeResult("node03", "failed", [], 3, "unreachable (timed out after 10s)"),
    }


def test_json_reporter_summary() -> None:
    out = io.StringIO()
    reporter = JsonReporter(out)
    reporter.change("node01", results()["node01"].applied[0])
    reporter.summary(results())
    change, summary = (json.loads(line) for line in out.getvalue().splitlines())
    assert change["kind"] == "file" and change["diff"] == "-a\n+b\n"
    assert (summary["changed"], summary["unchanged"], summary["failed"]) == (1, 1, 1)
    assert summary["nodes"]["node03"]["reason"] == "unreachable (timed out after 10s)"


def test_plain_summary_names_failures() -> None:
    out = io.StringIO()
    PlainReporter(out).summary(results())
    text = out.getvalue()
    assert "node03" in text and "unreachable" in text
    assert "1 changed, 1 unchanged, 1 failed" in text


def test_summary_counts_interrupted_nodes_only_after_ctrl_c() -> None:
    out = io.StringIO()
    stopped = NodeResult("node04", "interrupted", [], 5, "after 0 of 5 changes")
    cut = {**results(), "node04": stopped}
    PlainReporter(out).summary(cut)
    assert "1 changed, 1 unchanged, 1 failed, 1 interrupted" in out.getvalue()
    assert "after 0 of 5 changes" in out.getvalue()


def test_a_plan_of_keeps_alters_nothing() -> None:
    """KEEP reports an edited file left in place: a node whose plan holds only that is
    unchanged, and a dry run does not count it as one that would change."""
    from piherd.ops.changes import Change, ChangeKind, Plan

    keep = Change(ChangeKind.KEEP, "/etc/x.conf", "edited by the admin: left in place")
    assert not Plan("node02", (keep,)).alters
    assert Plan("node02", (keep, Change(ChangeKind.RESTART, "ssh.service", "input"))).alters


def test_dry_run_summary_says_would_change_and_counts_right() -> None:
    from piherd.runner.apply import WOULD_CHANGE

    nothing = {n: NodeResult(n, "unchanged") for n in ("node01", "node02")}
    out = io.StringIO()
    PlainReporter(out, dry_run=True).summary(nothing)
    assert out.getvalue().splitlines()[-1] == "0 would change, 2 unchanged, 0 failed"
    one = {**nothing, "node02": NodeResult("node02", WOULD_CHANGE, planned=1)}
    out = io.StringIO()
    PlainReporter(out, dry_run=True).summary(one)
    assert out.getvalue().splitlines()[-1] == "1 would change, 1 unchanged, 0 failed"
    out = io.StringIO()
    JsonReporter(out, dry_run=True).summary(one)
    summary = json.loads(out.getvalue())
    assert (summary["would_change"], summary["unchanged"], summary["failed"]) == (1, 1, 0)
    assert "changed" not in summary


def test_one_node_is_one_node() -> None:
    from piherd.cli.status import summary
    from piherd.health.collect import Snapshot
    from piherd.health.probe import unreachable
    from piherd.health.verdicts import Level, Verdict

    health = (unreachable("node02", "unreachable (no route to host)"),)
    snap = Snapshot(1.0, health, {"node02": Verdict("node02", Level.CRITICAL)}, None)
    assert summary(snap).startswith("1 node: 0 ok, 0 warn, 1 critical")
