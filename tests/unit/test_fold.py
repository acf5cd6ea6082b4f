"""Output folding, summary line, exit codes and the --json schema of `piherd run`."""

from __future__ import annotations

import json

from piherd.runner import fold
from piherd.transport.base import CommandResult


def ok(node: str, out: str = "", err: str = "") -> CommandResult:
    return CommandResult(node, 0, out, err, None, 0.1)


def test_identical_outputs_fold_under_their_node_set() -> None:
    outputs = {
        "node10": "Linux 6.1\nup 3 days\n",
        "node02": "Linux 6.1\nup 3 days\n",
        "node03": "Linux 6.6\n",
        "node01": "Linux 6.1\nup 3 days\n",
        "node04": "",
    }
    groups = fold.fold_outputs(outputs)
    assert groups == [
        (["node01", "node02", "node10"], "Linux 6.1\nup 3 days"),
        (["node03"], "Linux 6.6"),
    ]


def test_render_folded_is_clush_like() -> None:
    text = fold.render_folded({"n1": "a\n", "n2": "a\n", "n3": "b\n"})
    assert text == (
        "----------\nn[1-2] (2)\n----------\na\n"  # header rule as long as the header
        "------\nn3 (1)\n------\nb\n"
    )


def test_render_prefixed_in_natural_order() -> None:
    text = fold.render_prefixed({"node10": "x\ny\n", "node9": "z\n"})
    assert text == "node9: z\nnode10: x\nnode10: y\n"


def test_summary_line_names_every_outcome() -> None:
    results = [ok(f"node{i:02d}") for i in range(1, 15)]
    results += [
        CommandResult("node15", 1, "", "", None, 0.1),
        CommandResult("node16", None, "", "", "unreachable (connection refused)", 0.1),
        CommandResult("node17", None, "", "", "timeout after 5s", 5.0),
    ]
    assert fold.summary_line(results) == (
        "ok node[01-14]  rc=1 node15  timeout node17  unreachable node16"
    )


def test_status_of_each_kind() -> None:
    assert fold.status_of(ok("a")) == "ok"
    assert fold.status_of(CommandResult("a", 2)) == "rc=2"
    assert fold.status_of(CommandResult("a", None, error="timeout after 1s")) == "timeout"
    assert fold.status_of(CommandResult("a", None, error="interrupted")) == "interrupted"
    assert fold.status_of(CommandResult("a", None, error="unreachable (no route)")) == (
        "unreachable"
    )
    assert fold.status_of(CommandResult("a", None, error="host key changed: x")) == "failed"


def test_error_lines_fold_nodes_by_reason() -> None:
    results = [
        CommandResult("n3", None, error="unreachable (connection refused)"),
        CommandResult("n1", None, error="unreachable (connection refused)"),
        CommandResult("n2", None, error="authentication refused for user pi"),
        ok("n4"),
    ]
    assert fold.error_lines(results) == [
        "n[1,3]: unreachable (connection refused)",
        "n2: authentication refused for user pi",
    ]


def test_exit_codes() -> None:
    failed = CommandResult("b", 1)
    down = CommandResult("c", None, error="unreachable (timed out after 10s)")
    assert fold.exit_code([ok("a")]) == fold.EXIT_OK == 0
    assert fold.exit_code([ok("a"), failed]) == fold.EXIT_FAILED == 1
    assert fold.exit_code([ok("a"), failed, down]) == fold.EXIT_UNREACHABLE == 3
    assert fold.exit_code([ok("a")], interrupted=True) == fold.EXIT_INTERRUPTED == 130
    assert len({0, 1, 2, 3, 130}) == len(
        {fold.EXIT_OK, fold.EXIT_FAILED, fold.EXIT_USAGE, fold.EXIT_UNREACHABLE, 130}
    )


def test_json_schema() -> None:
    record = fold.result_json(CommandResult("node01", 0, "out\n", "err\n", None, 0.1234567))
    assert tuple(record) == fold.JSON_FIELDS
    assert json.loads(json.dumps(record)) == {
        "node": "node01",
        "rc": 0,
        "stdout": "out\n",
        "stderr": "err\n",
        "error": None,
        "elapsed": 0.123457,
    }
    down = fold.result_json(CommandResult("node02", None, error="timeout after 1s"))
    assert (down["rc"], down["error"]) == (None, "timeout after 1s")
