"""cluster.secrets_dir: only a directory piherd created, an empty one, or its own old one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.cli.main import cli
from piherd.secrets import OWNED_MARKER, ForeignSecretsDir, load_or_create_secrets
from piherd.services import load

TOML = """
[cluster]
name = "own"
secrets_dir = "{secrets}"
[network]
subnet = "10.9.0.0/24"
[naming]
prefix = "n"
count = 2
first_address = "10.9.0.10"
"""
KEY_FILES = ("munge.key", "storage_key", "storage_key.pub", "watch_key", "watch_key.pub")


def cluster_file(directory: Path, secrets: str) -> Path:
    path = directory / "cluster.toml"
    path.write_text(TOML.format(secrets=secrets))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_current_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = cluster_file(tmp_path, ".")
    tmp_path.chmod(0o755)
    with pytest.raises(ForeignSecretsDir) as refused:
        load_or_create_secrets(load(path))
    message = str(refused.value)
    assert "cluster.secrets_dir" in message and repr(str(tmp_path)) in message
    assert "'cluster.toml'" in message and str(path) in message
    assert mode(tmp_path) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.toml"]


def test_render_refuses_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o751)
    (home / ".bashrc").write_text("alias x=y\n")
    (home / "notes\x1b[31m.txt").write_text("mine\n")
    path = cluster_file(tmp_path, str(home))
    result = CliRunner().invoke(cli, ["render", "-f", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "cluster.secrets_dir" in result.output and "Traceback" not in result.output
    assert "\x1b" not in result.output and "\\x1b" in result.output
    assert mode(home) == 0o751 and not (home / "munge.key").exists()


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secrets").write_text("not a directory\n")
    with pytest.raises(ForeignSecretsDir, match="is not a directory"):
        load_or_create_secrets(load(cluster_file(tmp_path, "secrets")))


def test_a_new_directory_is_created_marked_and_kept(tmp_path: Path) -> None:
    cluster = load(cluster_file(tmp_path, "state/secrets"))
    first = load_or_create_secrets(cluster)
    directory = tmp_path / "state" / "secrets"
    assert (directory / OWNED_MARKER).is_file() and mode(directory) == 0o700
    (directory / "admin-note.txt").write_text("piherd's directory, an admin's note\n")
    assert load_or_create_secrets(cluster) == first


def test_an_empty_directory_is_adopted(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o755)
    load_or_create_secrets(load(cluster_file(tmp_path, "keys")))
    assert (tmp_path / "keys" / OWNED_MARKER).is_file() and mode(tmp_path / "keys") == 0o700
    for name in KEY_FILES:
        assert mode(tmp_path / "keys" / name) == 0o600


def test_an_older_piherd_directory_keeps_working(tmp_path: Path) -> None:
    """Made before the marker existed: only piherd's files (and its temporary ones)."""
    cluster = load(cluster_file(tmp_path, "secrets"))
    first = load_or_create_secrets(cluster)
    directory = tmp_path / "secrets"
    (directory / OWNED_MARKER).unlink()
    (directory / "known-facts.json").write_text("{}\n")
    (directory / ".known-facts.json.tmp").write_text("{}\n")
    assert load_or_create_secrets(cluster) == first
    assert (directory / OWNED_MARKER).is_file()


def test_a_symlinked_marker_does_not_count(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (tmp_path / "elsewhere").write_text("x\n")
    (directory / OWNED_MARKER).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ForeignSecretsDir, match=OWNED_MARKER):
        load_or_create_secrets(load(cluster_file(tmp_path, "secrets")))
