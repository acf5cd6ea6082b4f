"""Where a `piherd up --json` run spends its time: per node, seconds per kind of change
(each change event marks its start; it lasts until the node's next event).

    .venv/bin/python -m bench.peers.profile /var/tmp/piherd-bench-peers/r0piherd-first.log
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

GROUPS = {
    "network": "network move",
    "packages": "apt-get install",
    "file": "files and directories",
    "dir": "files and directories",
}


def profile(log: Path) -> dict[str, dict[str, float]]:
    """node -> {"wait": s before its changes began, "facts": s, kind group: s, "total": s}."""
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    start = events[0]["time"]
    end = events[-1]["time"]
    by_node: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for event in events:
        if event.get("node") and event["event"] in ("phase", "change", "node"):
            by_node[event["node"]].append(event)
    result: dict[str, dict[str, float]] = {}
    for node, mine in by_node.items():
        spans: dict[str, float] = defaultdict(float)
        facts_at = next((e["time"] for e in mine if e.get("text") == "gathering facts"), start)
        applying = [e["time"] for e in mine if str(e.get("text", "")).startswith("applying")]
        # Facts come in parallel; the workers then wait for the head to finish.
        spans["facts (+ waiting for the head)"] = (applying[0] if applying else end) - facts_at
        changes = [e for e in mine if e["event"] == "change"]
        for this, after in zip(changes, [*changes[1:], None], strict=True):
            until = (
                after["time"]
                if after
                else next((e["time"] for e in mine if e["event"] == "node"), end)
            )
            spans[GROUPS.get(this["kind"], "units (enable, start, restart)")] += (
                until - this["time"]
            )
        spans["total"] = max(e["time"] for e in mine) - start
        result[node] = dict(spans)
    return result


def main() -> None:
    spans = profile(Path(sys.argv[1]))
    head = min(spans)
    workers = [n for n in spans if n != head]
    keys = sorted({k for s in spans.values() for k in s})
    print(f"{'':32} {head:>8} {'workers (median)':>18}")
    for key in keys:
        med = statistics.median(spans[n].get(key, 0.0) for n in workers) if workers else 0.0
        print(f"{key:32} {spans[head].get(key, 0.0):8.1f} {med:18.1f}")


if __name__ == "__main__":
    main()
