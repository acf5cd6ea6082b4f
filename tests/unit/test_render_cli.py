"""`piherd render`: files per node, a manifest without secrets, clear errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

from click.testing import CliRunner
from test_render_support import GOLDEN

from piherd.app.recorded import save_recorded
from piherd.bundle import watch_service_inputs
from piherd.cli.main import cli
from piherd.ops.desired import DesiredState, Remembered
from piherd.secrets import load_or_create_secrets
from piherd.services import load


def _cluster(tmp_path: Path, case: str = "sim") -> Path:
    target = tmp_path / "cluster.toml"
    shutil.copy(GOLDEN / case / "cluster.toml", target)
    return target


def test_render_writes_files_and_manifest(tmp_path: Path) -> None:
    cluster_file = _cluster(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", "-f", str(cluster_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["nodes"]) == {"node01", "node02", "node03"}
    key = (tmp_path / "secrets" / "munge.key").read_bytes()
    for node, entry in manifest["nodes"].items():
        for path, info in entry["files"].items():
            written = out / node / path.lstrip("/")
            assert hashlib.sha256(written.read_bytes()).hexdigest() == info["sha256"]
            if info["secret"]:
                assert stat.S_IMODE(written.stat().st_mode) == 0o600
    munge = manifest["nodes"]["node02"]["files"]["/etc/munge/munge.key"]
    assert munge == {
        "owner": "munge",
        "group": "munge",
        "mode": "0400",
        "sha256": hashlib.sha256(key).hexdigest(),
        "restarts": ["munge.service"],
        "reloads": [],
        "secret": True,
    }
    assert key.hex()[:16] not in (out / "manifest.json").read_text()
    assert manifest["nodes"]["node02"]["units"][0] == {
        "name": "chrony.service",
        "enable": True,
        "masked": False,
    }
    # A second render of one node replaces that node only and keeps the others.
    again = CliRunner().invoke(
        cli, ["render", "-f", str(cluster_file), "--out", str(out), "node02"]
    )
    assert again.exit_code == 0, again.output
    assert set(json.loads((out / "manifest.json").read_text())["nodes"]) == set(manifest["nodes"])
    assert not [p for p in out.iterdir() if p.name.startswith(".render-")]


def test_summary_never_prints_secrets(tmp_path: Path) -> None:
    cluster_file = _cluster(tmp_path, "bookworm")
    result = CliRunner().invoke(cli, ["render", "-f", str(cluster_file), "@workers"])
    assert result.exit_code == 0, result.output
    assert "cluster[02-04]" in result.output and "cluster01" not in result.output
    assert "BEGIN OPENSSH" not in result.output


def test_unknown_node_set_exits_2(tmp_path: Path) -> None:
    cluster_file = _cluster(tmp_path)
    result = CliRunner().invoke(cli, ["render", "-f", str(cluster_file), "@nosuchgroup"])
    assert result.exit_code == 2
    assert "nosuchgroup" in result.output
    assert "Traceback" not in result.output


def test_broken_cluster_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    cluster_file = tmp_path / "cluster.toml"
    cluster_file.write_text('[cluster]\nname = "x"\n[network]\nsubnet = "nonsense"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", "-f", str(cluster_file), "--out", str(out)])
    assert result.exit_code == 2
    assert "network.subnet" in result.output
    assert not out.exists()
    assert not (tmp_path / "secrets").exists()


def test_refuses_a_foreign_non_empty_directory(tmp_path: Path) -> None:
    cluster_file = _cluster(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["render", "-f", str(cluster_file), "--out", str(out)])
    assert result.exit_code == 2
    assert "refusing" in result.output
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def _slurm_conf(out: Path) -> list[str]:
    text = (out / "node01" / "etc" / "slurm" / "slurm.conf").read_text()
    return [line for line in text.splitlines() if line.startswith("NodeName=")]


def test_render_says_when_nothing_is_recorded(tmp_path: Path) -> None:
    cluster_file = _cluster(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", "-f", str(cluster_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing recorded from the nodes yet" in result.stderr
    assert "nothing recorded" not in result.stdout
    assert all("CPUs=1 RealMemory=1 " in line for line in _slurm_conf(out))


def test_render_uses_the_hardware_up_recorded(tmp_path: Path) -> None:
    """With a record from `up`, render writes the nodes' real CPUs and memory: up's files."""
    cluster_file = _cluster(tmp_path)
    cluster = load(cluster_file)
    recorded = Remembered(
        {"node01": (4, 4000), "node02": (4, 4000), "node03": (2, 2000)},
        {"node02": ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJz node02",)},
        (1001, 1002),
    )
    (tmp_path / "secrets").mkdir()
    save_recorded(cluster, recorded)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", "-f", str(cluster_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "recorded" not in result.stderr
    assert _slurm_conf(out) == [
        "NodeName=node01 NodeAddr=10.213.0.10 CPUs=4 RealMemory=3800 State=UNKNOWN",
        "NodeName=node02 NodeAddr=10.213.0.11 CPUs=4 RealMemory=3800 State=UNKNOWN",
        "NodeName=node03 NodeAddr=10.213.0.12 CPUs=2 RealMemory=1900 State=UNKNOWN",
    ]
    # Byte for byte what `up` renders from the same record when no node answers.
    bundle, toml = watch_service_inputs(cluster)
    build = DesiredState(
        load_or_create_secrets(cluster), recorded, piherd_bundle=bundle, cluster_toml=toml
    )
    for name, desired in build(cluster, {}).items():
        for spec in desired.files:
            assert (out / name / spec.path.lstrip("/")).read_bytes() == spec.content, spec.path


def test_render_names_the_nodes_not_recorded(tmp_path: Path) -> None:
    cluster_file = _cluster(tmp_path)
    (tmp_path / "secrets").mkdir()
    save_recorded(load(cluster_file), Remembered({"node01": (4, 4000)}))
    result = CliRunner().invoke(cli, ["render", "-f", str(cluster_file)])
    assert result.exit_code == 0, result.output
    assert "no hardware recorded for node[02-03]" in result.stderr
