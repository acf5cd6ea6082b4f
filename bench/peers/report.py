"""Medians, ratios and the docs/benchmarks.md section of a converge benchmark run."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from docs_table import machine  # noqa: E402  (bench/ is not a package)

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Converge: piherd up vs Ansible vs pyinfra"
LABELS = {
    "piherd": "**piherd up**",
    "ansible": "ansible-playbook (bench/peers/ansible)",
    "pyinfra": "pyinfra (bench/peers/pyinfra)",
    "floor": "floor: one `apt-get install` per node + files",
}
TARGETS = (  # (what, numerator tool/phase, denominator tool/phase, target, "faster"/"within")
    ("no-op: piherd vs ansible", ("ansible", "noop"), ("piherd", "noop"), 10.0),
    ("no-op: piherd vs pyinfra", ("pyinfra", "noop"), ("piherd", "noop"), 3.0),
)


def load(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def median(samples: list[dict], tool: str, phase: str, key: str = "wall") -> float | None:  # type: ignore[type-arg]
    values = [s[key] for s in samples if s["tool"] == tool and s["phase"] == phase]
    return statistics.median(values) if values else None


def table(samples: list[dict]) -> list[str]:  # type: ignore[type-arg]
    rows = [
        "| tool | first run s (median) | first runs | no-op s (median) | no-op runs | "
        "client CPU s first / no-op | nodes' CPU s first / no-op | load at start first / no-op | "
        "changes reported (first / no-op) | check after the runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tool, label in LABELS.items():
        mine = [s for s in samples if s["tool"] == tool]
        if not mine:
            continue
        first = [s for s in mine if s["phase"] == "first"]
        noop = [s for s in mine if s["phase"] == "noop"]

        def spread(runs: list[dict]) -> str:  # type: ignore[type-arg]
            return ", ".join(f"{s['wall']:.1f}" for s in runs) or "-"

        def med(phase: str, key: str = "wall", tool: str = tool) -> str:
            value = median(samples, tool, phase, key)
            return "-" if value is None else f"{value:.1f}" if phase == "first" else f"{value:.2f}"

        changed = "/".join(
            "-" if not runs else ",".join(str(s["changed"]) for s in runs) for runs in (first, noop)
        )
        checks = {s["check"] for s in mine if s["check"]}
        check = "; ".join(sorted(checks)) or ("not checked (floor)" if tool == "floor" else "-")
        cpu = f"{med('first', 'cpu')} / {med('noop', 'cpu')}" if tool != "floor" else "-"
        nodes_cpu = f"{med('first', 'node_cpu')} / {med('noop', 'node_cpu')}"
        load = f"{med('first', 'load')} / {med('noop', 'load')}"
        rows.append(
            f"| {label} | {med('first')} | {spread(first)} | {med('noop')} | {spread(noop)} "
            f"| {cpu} | {nodes_cpu} | {load} | {changed} | {check} |"
        )
    return rows


def ratios(samples: list[dict]) -> list[str]:  # type: ignore[type-arg]
    lines = []
    for what, (num_tool, num_phase), (den_tool, den_phase), target in TARGETS:
        num, den = median(samples, num_tool, num_phase), median(samples, den_tool, den_phase)
        if num is None or den is None:
            continue
        ratio = num / den
        verdict = "met" if ratio >= target else f"missed by {target / ratio:.2f}x"
        cpu = [
            (median(samples, tool, phase, "cpu") or 0)
            + (median(samples, tool, phase, "node_cpu") or 0)
            for tool, phase in ((num_tool, num_phase), (den_tool, den_phase))
        ]
        by_cpu = (
            f"; by CPU (client + nodes) {cpu[0]:.1f} s / {cpu[1]:.1f} s = {cpu[0] / cpu[1]:.1f}x"
            if cpu[1]
            else ""
        )
        lines.append(f"- {what}: {num:.2f} s / {den:.2f} s = **{ratio:.1f}x** "
                     f"(target >= {target:g}x: {verdict}){by_cpu}")  # fmt: skip
    first, floor = median(samples, "piherd", "first"), median(samples, "floor", "first")
    if first is not None and floor is not None:
        ratio = first / floor
        verdict = "met" if ratio <= 1.2 else f"missed: {ratio / 1.2:.2f}x over the 1.2x allowance"
        cpu_first = (median(samples, "piherd", "first", "cpu") or 0) + (
            median(samples, "piherd", "first", "node_cpu") or 0
        )
        cpu_floor = median(samples, "floor", "first", "node_cpu") or 0
        by_cpu = (
            f"; nodes' + client CPU {cpu_first:.1f} s vs the floor's nodes' CPU {cpu_floor:.1f} s"
        )
        lines.append(f"- first run: piherd {first:.1f} s / apt floor {floor:.1f} s = "
                     f"**{ratio:.2f}x** (target <= 1.2x: {verdict}){by_cpu}")  # fmt: skip
    for tool in ("ansible", "pyinfra"):
        other = median(samples, tool, "first")
        if first is not None and other is not None:
            lines.append(f"- first run: {tool} {other:.1f} s / piherd {first:.1f} s = "
                         f"{other / first:.2f}x")  # fmt: skip
    return lines


def section(samples: list[dict], args: argparse.Namespace, notes: str) -> str:  # type: ignore[type-arg]
    load_avg = os.getloadavg()[0]
    command = (
        f"sudo .venv/bin/python -m bench.peers --name {args.name} --workers {args.workers} "
        f"--repeat {args.repeat} --write"
    )
    return "\n".join([
        SECTION, "",
        f"Machine: {machine()}, shared with other work (1-minute load average "
        f"{load_avg:.0f} when the report was written: times vary with load). Nodes: "
        f"`piherd sim up --name {args.name} --workers {args.workers}` (full nodes: head + "
        f"{args.workers}), packages from the sim's warm apt-cacher-ng.",
        "", f"Command: `{command}`", "",
        *table(samples), "", *ratios(samples), "", notes.strip(), "", "",
    ])  # fmt: skip


def show(samples_file: Path, write: bool, args: argparse.Namespace) -> None:
    samples = load(samples_file)
    notes_file = Path(__file__).with_name("NOTES.md")
    notes = notes_file.read_text() if notes_file.exists() else ""
    text = section(samples, args, notes)
    print(text)
    if write:
        docs = DOCS.read_text()
        start = docs.find(SECTION)
        if start >= 0:
            end = docs.find("\n## ", start + len(SECTION))
            docs = docs[:start] + text + ("" if end < 0 else docs[end + 1 :])
        else:
            docs = docs.rstrip("\n") + "\n\n" + text
        DOCS.write_text(docs)
