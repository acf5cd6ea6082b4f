"""Golden files: every file each case's nodes receive, byte for byte, plus the manifest.

Regenerate after an intended change with `PIHERD_UPDATE_GOLDEN=1 pytest
tests/unit/test_render_golden.py`, then read the diff (`git diff tests/golden`)
against the programs' documentation before committing it.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from pathlib import Path

import pytest
from test_render_support import CASES, GOLDEN, cluster_of, context_of

from piherd.render import render_cluster
from piherd.render.manifest import manifest

UPDATE = os.environ.get("PIHERD_UPDATE_GOLDEN") == "1"
NOT_FILES = {"cluster.toml", "manifest.json"}


def _expected(case_dir: Path) -> dict[str, bytes]:
    found = {}
    for path in sorted(case_dir.rglob("*")):
        relative = path.relative_to(case_dir)
        if path.is_file() and str(relative) not in NOT_FILES:
            found[str(relative)] = path.read_bytes()
    return found


def _actual(case: str) -> tuple[dict[str, bytes], str]:
    cluster = cluster_of(case)
    rendered = render_cluster(cluster, context_of(case, cluster))
    files = {
        f"{node}{path}": spec.content
        for node, specs in rendered.items()
        for path, spec in specs.items()
        if not spec.secret  # secrets: metadata and sha256 in the manifest only
    }
    return files, json.dumps(manifest(cluster, rendered), indent=2) + "\n"


def _update(case_dir: Path, files: dict[str, bytes], manifest_text: str) -> None:
    for child in case_dir.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    for relative, content in files.items():
        target = case_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    (case_dir / "manifest.json").write_text(manifest_text)


def test_there_are_golden_cases() -> None:
    assert {"bookworm", "bullseye", "netboot", "sim"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_golden_files(case: str) -> None:
    case_dir = GOLDEN / case
    files, manifest_text = _actual(case)
    if UPDATE:
        _update(case_dir, files, manifest_text)
    expected = _expected(case_dir)
    assert sorted(files) == sorted(expected), "files added or removed; see the lists"
    for relative, content in files.items():
        if content != expected[relative]:
            diff = "".join(
                difflib.unified_diff(
                    expected[relative].decode(errors="replace").splitlines(keepends=True),
                    content.decode(errors="replace").splitlines(keepends=True),
                    f"golden/{case}/{relative}",
                    "rendered",
                )
            )
            pytest.fail(f"{relative} differs from its golden file:\n{diff}")


@pytest.mark.parametrize("case", CASES)
def test_golden_manifest(case: str) -> None:
    _, manifest_text = _actual(case)
    assert manifest_text == (GOLDEN / case / "manifest.json").read_text()
