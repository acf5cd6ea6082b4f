"""Presenting fan-out results: identical outputs folded under their node set, a summary line,
per-node JSON, and the exit status of `piherd run`.

Folding uses ClusterShell's MsgTree (what `clush -b` and clubak use): each node's lines are
added to a tree and nodes whose whole output is identical come out together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ClusterShell.MsgTree import MsgTree
from ClusterShell.NodeSet import NodeSet

from piherd.transport.base import CommandResult

# Exit status of `piherd run` / `piherd copy` (documented in docs/run.md).
EXIT_OK = 0  # every node ran the command and it exited 0
EXIT_FAILED = 1  # every node was reached, some command exited non-zero
EXIT_USAGE = 2  # bad input: unknown node set, bad flag, unreadable cluster.toml
EXIT_UNREACHABLE = 3  # some node was unreachable, refused us or timed out
EXIT_INTERRUPTED = 130  # Ctrl-C: remote commands stopped; what finished was reported

JSON_FIELDS = ("node", "rc", "stdout", "stderr", "error", "elapsed")


def natural(names: Iterable[str]) -> list[str]:
    """Node names in ClusterShell's natural order (node2 before node10), duplicates dropped."""
    return list(NodeSet.fromlist(list(names)))


def fold_outputs(outputs: Mapping[str, str]) -> list[tuple[list[str], str]]:
    """Groups of (nodes, text) where every node printed exactly `text`; empty output omitted."""
    tree = MsgTree()
    for node, text in outputs.items():
        for line in text.splitlines():
            tree.add(node, line.encode("utf-8", "surrogateescape"))
    groups = [
        (natural(keys), bytes(message).decode("utf-8", "surrogateescape"))
        for message, keys in tree.walk()
    ]
    order = {name: i for i, name in enumerate(natural(outputs))}
    return sorted(groups, key=lambda group: order[group[0][0]])


def render_folded(outputs: Mapping[str, str]) -> str:
    """`clush -b` style: a header naming the node set (and count) above each distinct output."""
    blocks = []
    for nodes, text in fold_outputs(outputs):
        header = f"{NodeSet.fromlist(nodes)} ({len(nodes)})"
        rule = "-" * len(header)
        blocks.append(f"{rule}\n{header}\n{rule}\n{text}\n")
    return "".join(blocks)


def render_prefixed(outputs: Mapping[str, str]) -> str:
    """`node: line` for every line of every node, nodes in natural order."""
    lines: list[str] = []
    for node in natural(outputs):
        lines.extend(f"{node}: {line}" for line in outputs[node].splitlines())
    return "".join(line + "\n" for line in lines)


def status_of(result: CommandResult) -> str:
    """ok | rc=N | timeout | interrupted | unreachable | failed (could not run: auth, host key)."""
    if result.error is None:
        return "ok" if result.rc == 0 else f"rc={result.rc}"
    for kind in ("timeout", "interrupted", "unreachable"):
        if result.error.startswith(kind):
            return kind
    return "failed"


def _status_order(status: str) -> tuple[int, int]:
    rank = {"ok": 0, "timeout": 3, "interrupted": 4, "unreachable": 5, "failed": 6}
    if status.startswith("rc="):
        rc = status[3:]
        return (1, int(rc) if rc.lstrip("-").isdigit() else 0)
    return (rank.get(status, 9), 0)


def summary_line(results: Sequence[CommandResult]) -> str:
    """`ok node[01-14]  rc=1 node15  timeout node17  unreachable node16`."""
    by_status: dict[str, list[str]] = {}
    for result in results:
        by_status.setdefault(status_of(result), []).append(result.node)
    parts = [
        f"{status} {NodeSet.fromlist(nodes)}"
        for status, nodes in sorted(by_status.items(), key=lambda item: _status_order(item[0]))
    ]
    return "  ".join(parts)


def error_lines(results: Sequence[CommandResult]) -> list[str]:
    """One line per distinct reason a node could not run the command: `node[3-4]: reason`."""
    by_reason: dict[str, list[str]] = {}
    for result in results:
        if result.error is not None:
            by_reason.setdefault(result.error, []).append(result.node)
    ordered = sorted(by_reason.items(), key=lambda item: natural(item[1])[0])
    return [f"{NodeSet.fromlist(nodes)}: {reason}" for reason, nodes in ordered]


def exit_code(results: Sequence[CommandResult], *, interrupted: bool = False) -> int:
    """0 all ok; 3 some node unreachable/timed out/refused; else 1 when a command failed."""
    if interrupted:
        return EXIT_INTERRUPTED
    if any(r.error is not None for r in results):
        return EXIT_UNREACHABLE
    if any(r.rc != 0 for r in results):
        return EXIT_FAILED
    return EXIT_OK


def result_json(result: CommandResult) -> dict[str, Any]:
    """The `--json` object of one node: node, rc, stdout, stderr, error, elapsed (seconds)."""
    return {
        "node": result.node,
        "rc": result.rc,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "error": result.error,
        "elapsed": round(result.elapsed, 6),
    }
