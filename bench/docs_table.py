"""Shared by the benchmarks: the machine line and updating one table section of
docs/benchmarks.md in place (rows keyed by their first cell; new rows replace old)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def machine() -> str:
    """Kernel, cores, memory and Python, e.g. `Linux 6.1, 2 cores, 23 GiB, Python 3.11.7`."""
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1048576
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, {mem} GiB, "
        f"Python {platform.python_version()}"
    )


def update_table_section(
    docs: Path, section: str, intro: list[str], header: str, rows: list[str], command: str
) -> None:
    """Rewrite `section` of `docs`: intro lines, then the table with `rows` (each given
    the `command` cell) merged over the rows already there."""
    text = docs.read_text() if docs.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text)
    old = [r for r in found.group(0).splitlines() if r.startswith("| ")] if found else []
    old = [r for r in old if "---" not in r and not r.startswith("| what ")]
    new = [f"{r} `{command}` |" for r in rows]
    keys = {r.split("|")[1] for r in new}
    columns = header.count("|") - 1
    body = "\n".join(
        [
            section,
            "",
            f"Machine: {machine()} (shared with other work: times vary with load).",
            *intro,
            "",
            header,
            "|" + "---|" * columns,
            *[r for r in old if r.split("|")[1] not in keys],
            *new,
            "",
        ]
    )
    text = pattern.sub(body + "\n", text) if found else text.rstrip("\n") + "\n\n" + body + "\n"
    docs.write_text(text)
