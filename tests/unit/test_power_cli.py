"""`piherd power` and `piherd identify` on bad input: exit 2, a clear message, no traceback;
the power log: who, why, private."""

from __future__ import annotations

import json
import os
from pathlib import Path

import tomlkit
from click.testing import CliRunner

from piherd.cli.main import cli
from piherd.power.journal import default_log_path, record, who

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"


def with_power(tmp_path: Path) -> Path:
    doc = tomlkit.parse(EXAMPLE.read_text())
    doc["cluster"]["secrets_dir"] = str(tmp_path / "secrets")
    path = tmp_path / "cluster.toml"
    extra = (
        "\n[services.power]\nenabled = true\nstagger_s = 0\n"
        '[[services.power.controllers]]\nnodes = "@workers"\ndriver = "command"\n'
        f'on = "touch {tmp_path}/on-{{name}}"\noff = "rm -f {tmp_path}/on-{{name}}"\n'
    )
    path.write_text(tomlkit.dumps(doc) + extra)
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_power_off_unless_configured() -> None:
    code, out = invoke("power", "status", "@all", "-f", str(EXAMPLE))
    assert code == 2 and "power control is off" in out


def test_bad_nodeset_and_reason_exit_2(tmp_path: Path) -> None:
    path = str(with_power(tmp_path))
    code, out = invoke("power", "on", "node99", "-f", path)
    assert code == 2 and "not a node of this cluster" in out
    code, out = invoke("power", "on", "@workers", "-f", path, "--reason", "two\nlines")
    assert code == 2 and "--reason" in out


def test_a_node_without_controller_is_named(tmp_path: Path) -> None:
    path = with_power(tmp_path)
    head = tomlkit.parse(path.read_text())["naming"]["prefix"]
    code, out = invoke("power", "off", "@head", "-f", str(path))
    assert code == 2 and "has no power controller" in out and str(head) in out


def test_command_driver_end_to_end_with_log(tmp_path: Path) -> None:
    path = str(with_power(tmp_path))
    log = tmp_path / "log" / "power.log"
    code, out = invoke("power", "on", "@workers", "-f", path, "--json", "--log", str(log),
                       "--reason", "rack moved")  # fmt: skip
    assert code == 0, out
    nodes = [json.loads(line)["node"] for line in out.splitlines()]
    assert all((tmp_path / f"on-{n}").exists() for n in nodes)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["reason"] for e in entries} == {"rack moved"} and len(entries) == len(nodes)
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_log_path_and_user() -> None:
    assert default_log_path({"PIHERD_POWER_LOG": "/x/p.log"}) == Path("/x/p.log")
    assert default_log_path({"XDG_STATE_HOME": "/s"}) == Path("/s/piherd/power.log")
    assert "(as " in who({"SUDO_USER": "alice-not-me"})


def test_record_appends_lines(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    record(log, {"node": "a"})
    record(log, {"node": "b"})
    assert [json.loads(line)["node"] for line in log.read_text().splitlines()] == ["a", "b"]


def test_identify_needs_the_led_service() -> None:
    code, out = invoke("identify", "node02", "-f", str(EXAMPLE), "--seconds", "1")
    assert code == 1 and "LED service is off" in out
