"""The head's `piherd watch` service: the unit, piherd's bundle, the head's cluster.toml, keys."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import tomlkit

from piherd.bundle import build_bundle, watch_service_inputs
from piherd.model import Cluster
from piherd.render import (
    RenderContext,
    RenderError,
    UnitSpec,
    node_packages,
    node_units,
    render_node,
)
from piherd.secrets import load_or_create_secrets, render_context
from piherd.services import load
from piherd.services import ssh_keys as keys
from piherd.services import watch_service as watch
from piherd.services.watch_service import render_unit

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"


def test_no_unit_unless_enabled() -> None:
    assert render_unit(load(EXAMPLE)) is None


def test_unit_runs_watch_with_the_interval() -> None:
    cluster = load(EXAMPLE)
    cluster = replace(
        cluster, health=replace(cluster.health, watch_enabled=True, watch_interval_s=3)
    )
    unit = render_unit(cluster, cluster_file="/etc/piherd/my cluster.toml")
    assert unit is not None
    assert (
        "ExecStart=/usr/local/bin/piherd watch --file '/etc/piherd/my cluster.toml' "
        "--interval 3 --log-dir /var/log/piherd\n" in unit
    )
    assert "After=network-online.target slurmctld.service\n" in unit
    assert "WantedBy=multi-user.target" in unit and "Restart=on-failure" in unit
    assert unit == render_unit(cluster, cluster_file="/etc/piherd/my cluster.toml")


def test_print_unit_from_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from piherd.cli.watch import command

    runner = CliRunner()
    result = runner.invoke(command, ["-f", str(EXAMPLE), "--print-unit"])
    assert result.exit_code == 2 and "watch_enabled is false" in result.output
    doc = tomlkit.parse(EXAMPLE.read_text())
    doc["health"]["watch_enabled"] = True  # type: ignore[index]
    doc["health"]["watch_interval_s"] = 4  # type: ignore[index]
    enabled = tmp_path / "cluster.toml"
    enabled.write_text(tomlkit.dumps(doc))
    result = runner.invoke(command, ["-f", str(enabled), "--print-unit"])
    assert result.exit_code == 0, result.output
    assert "--interval 4 " in result.output and result.output.startswith("[Unit]\n")


def _enabled(tmp_path: Path, enabled: bool = True) -> Path:
    """A copy of the example (secrets go beside it) with watch enabled, and an ssh_config
    that the head lacks."""
    doc = tomlkit.parse(EXAMPLE.read_text())
    doc["health"]["watch_enabled"] = enabled  # type: ignore[index]
    doc["cluster"]["ssh_config"] = "local/ssh_config"  # type: ignore[index]
    doc["cluster"]["ssh_public_key"] = "~/.ssh/id_ed25519.pub"  # type: ignore[index]
    path = tmp_path / "cluster.toml"
    path.write_text("# my notes\n" + tomlkit.dumps(doc))
    return path


def _context(cluster: Cluster, tmp_path: Path) -> RenderContext:
    secrets = load_or_create_secrets(cluster)
    bundle, text = watch_service_inputs(cluster)
    return render_context(secrets, piherd_bundle=bundle, cluster_toml=text)


def test_head_gets_piherd_its_config_key_and_unit(tmp_path: Path) -> None:
    cluster = load(_enabled(tmp_path))
    ctx = _context(cluster, tmp_path)
    files = render_node(cluster, cluster.head, ctx)
    program = files[watch.PROGRAM]
    assert program.mode == 0o755 and program.content.startswith(b"#!/usr/bin/python3\n")
    key = files[watch.WATCH_KEY]
    assert key.secret and key.mode == 0o600 and key.content == ctx.watch_private_key
    unit = files[watch.UNIT_PATH].content.decode()
    assert f"ExecStart={watch.PROGRAM} watch --file {watch.CLUSTER_FILE} " in unit
    for path in (
        watch.PROGRAM,
        watch.CLUSTER_FILE,
        watch.WATCH_KEY,
        watch.UNIT_PATH,
    ):
        assert files[path].restarts == (watch.UNIT_NAME,), path
    # The head's copy loads, logs in with the watch key, trusts the cluster's known_hosts.
    copy = files[watch.CLUSTER_FILE].content.decode()
    assert "# my notes" in copy and "the piherd watch service" in copy
    head_copy = tmp_path / "head" / "cluster.toml"
    head_copy.parent.mkdir()
    head_copy.write_text(copy)
    on_head = load(head_copy)
    assert on_head.ssh_identity == Path(watch.WATCH_KEY)
    assert on_head.known_hosts == Path(watch.KNOWN_HOSTS)
    assert on_head.ssh_config is None and on_head.ssh_public_key == ""
    assert on_head.nodes == cluster.nodes and on_head.health == cluster.health
    assert set(watch.PACKAGES) <= set(node_packages(cluster, cluster.head))
    assert node_units(cluster, cluster.head)[-1] == UnitSpec(watch.UNIT_NAME)
    worker = cluster.workers[0]
    assert watch.PROGRAM not in render_node(cluster, worker, ctx)
    assert not set(watch.PACKAGES) & set(node_packages(cluster, worker)) - {"python3"}


def test_every_node_accepts_the_watch_key_from_the_head_only(tmp_path: Path) -> None:
    cluster = load(_enabled(tmp_path))
    ctx = _context(cluster, tmp_path)
    public = " ".join(ctx.watch_public_key.split()[:2])
    for node in cluster.nodes:
        files = render_node(cluster, node, ctx)
        entry = files[f"{keys.AUTHORIZED_DIR}/{cluster.admin_user}"].content.decode()
        assert f'from="{cluster.head.address}",restrict {public} piherd-watch' in entry
        assert f"{keys.AUTHORIZED_DIR}/%u" in files[keys.SSHD_DROPIN].content.decode()
    private = ctx.watch_private_key.decode()
    for node in cluster.nodes:  # the private half goes to the head alone, as a secret
        for spec in render_node(cluster, node, ctx).values():
            assert spec.path == watch.WATCH_KEY or private not in spec.content.decode("latin-1")


def test_turned_off_nothing_of_the_service_is_rendered(tmp_path: Path) -> None:
    """No unit, no file, no key: `up` removes what it had put there (ops/removals.py)."""
    cluster = load(_enabled(tmp_path, enabled=False))
    ctx = _context(cluster, tmp_path)
    assert watch.UNIT_NAME not in [u.name for u in node_units(cluster, cluster.head)]
    for node in cluster.nodes:
        files = render_node(cluster, node, ctx)
        assert watch.PROGRAM not in files and watch.UNIT_PATH not in files
        entry = files.get(f"{keys.AUTHORIZED_DIR}/{cluster.admin_user}")
        assert entry is None or b"piherd-watch" not in entry.content


def test_enabled_without_the_bundle_is_a_render_error(tmp_path: Path) -> None:
    cluster = load(_enabled(tmp_path))
    secrets = load_or_create_secrets(cluster)
    with pytest.raises(RenderError, match="bundle"):
        render_node(cluster, cluster.head, render_context(secrets))


def test_the_bundle_is_deterministic_and_runs(tmp_path: Path) -> None:
    first = build_bundle()
    assert first == build_bundle()
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "__main__.py" in names and "piherd/services/watch_service.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    program = tmp_path / "piherd"
    program.write_bytes(first)
    # -I: only the bundle's piherd is importable (not the checkout's), as on the head.
    result = subprocess.run(
        [sys.executable, "-I", str(program), "watch", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Watch NODESET" in result.stdout
