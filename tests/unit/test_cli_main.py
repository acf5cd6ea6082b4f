"""The lazy command table: every entry imports, names match, help lists them all."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from piherd.cli.main import COMMANDS, cli


def test_every_command_module_defines_the_named_command() -> None:
    for name, (module, short_help) in COMMANDS.items():
        command = importlib.import_module(module).command
        assert isinstance(command, click.Command)
        assert command.name == name, f"{module} defines {command.name!r}, table says {name!r}"
        assert short_help.endswith(".")


def test_help_lists_every_command_and_each_sub_help_works() -> None:
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in top.output
        sub = runner.invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "Usage:" in sub.output


def test_check_does_not_import_the_ssh_stack() -> None:
    code = (
        "import sys; from piherd.cli.main import cli\n"
        "try:\n    cli(['check', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('asyncssh' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_inventory_ansible_matches_groups_ansible(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "cluster.toml"
    runner = CliRunner()
    inventory = runner.invoke(cli, ["inventory", "--ansible", "-f", str(example)])
    groups = runner.invoke(cli, ["groups", "--ansible", "-f", str(example)])
    assert inventory.exit_code == 0, inventory.output
    assert inventory.output == groups.output
    assert "[workers]" in inventory.output
    assert runner.invoke(cli, ["inventory", "-f", str(example)]).exit_code == 2
