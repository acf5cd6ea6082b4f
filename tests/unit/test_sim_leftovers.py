"""The sim leftovers check looks only at the clusters it is given, by exact name."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from piherd.sim.leftovers import leftovers_of


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[dict[str, int]]:
    """A live process in the state dir of clusters `mine`, `mine2` and `other`, by cluster."""
    procs = {}
    try:
        for cluster in ("mine", "mine2", "other"):
            (tmp_path / cluster).mkdir()
            marker = str(tmp_path / cluster / "node01")
            procs[cluster] = subprocess.Popen(["sh", "-c", "sleep 60", marker])
        yield {cluster: proc.pid for cluster, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_only_the_named_clusters_are_examined(tmp_path: Path, daemons: dict[str, int]) -> None:
    found = leftovers_of({"mine"}, tmp_path)
    assert found[0] == f"state dir {tmp_path / 'mine'}"
    assert [line.split(":")[0] for line in found[1:]] == [f"process {daemons['mine']}"]
    assert not any("other" in line or "mine2" in line for line in found)


def test_each_named_cluster_is_reported_once_in_name_order(
    tmp_path: Path, daemons: dict[str, int]
) -> None:
    found = leftovers_of(["other", "mine", "other"], tmp_path)
    states = [line for line in found if line.startswith("state dir ")]
    assert states == [f"state dir {tmp_path / 'mine'}", f"state dir {tmp_path / 'other'}"]
    processes = sorted(line.split(":")[0] for line in found if line.startswith("process "))
    assert processes == sorted(f"process {daemons[c]}" for c in ("mine", "other"))


def test_a_cluster_that_left_nothing_reports_nothing(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    assert leftovers_of({"mine", "gone"}, tmp_path) == []
    assert leftovers_of(set(), tmp_path) == []
