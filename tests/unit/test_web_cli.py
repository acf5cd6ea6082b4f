"""`piherd dashboard` refuses to serve beyond loopback without a token."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.cli.dashboard import command, is_loopback, read_token

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "cluster.toml")


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.11", "::", "pi-head.lan"])
def test_token_required_off_loopback(bind: str) -> None:
    result = CliRunner().invoke(command, ["-f", EXAMPLE, "--bind", bind], env={})
    assert result.exit_code == 2
    assert "token is required" in result.output
    assert "Traceback" not in result.output


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


def test_token_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIHERD_DASHBOARD_TOKEN", raising=False)
    assert read_token(None, None) is None
    assert read_token("flag", None) == "flag"
    monkeypatch.setenv("PIHERD_DASHBOARD_TOKEN", "env")
    assert read_token("flag", None) == "env"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert read_token("flag", secret) == "from-file"


def test_bad_nodeset_is_a_clear_error() -> None:
    result = CliRunner().invoke(command, ["-f", EXAMPLE, "node[99]"], env={})
    assert result.exit_code == 2 and "not a node of this cluster" in result.output


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--token", ""], {}, "--token is empty"),
        (["--token", "  \t"], {}, "--token is empty"),
        ([], {"PIHERD_DASHBOARD_TOKEN": ""}, "set but empty"),
        (["--token", "x"], {"PIHERD_DASHBOARD_TOKEN": "   "}, "set but empty"),
    ],
)
def test_a_blank_token_is_refused_not_taken_for_none(
    args: list[str], env: dict[str, str], words: str
) -> None:
    result = CliRunner().invoke(command, ["-f", EXAMPLE, *args], env=env)
    assert result.exit_code == 2 and words in result.output, result.output
    assert "Traceback" not in result.output


def test_a_blank_token_file_is_refused(tmp_path: Path) -> None:
    blank = tmp_path / "token"
    blank.write_text(" \n\t\n")
    result = CliRunner().invoke(command, ["-f", EXAMPLE, "--token-file", str(blank)], env={})
    assert result.exit_code == 2 and "is empty" in result.output


def test_a_busy_port_is_a_clear_error_before_any_url() -> None:
    """Something already listens: exit 2 naming the port, and no URL that would not work."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(command, ["-f", EXAMPLE, "--port", str(port)], env={})
    assert result.exit_code == 2, result.output
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "http://" not in result.output and "Traceback" not in result.output
