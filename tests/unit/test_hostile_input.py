"""Hostile input (issue 12): injected values, path spellings, odd numbers, files that hang."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from piherd.cli.common import FiniteFloat, Seconds
from piherd.cli.main import cli
from piherd.model import ConfigError, NodeSetError, expand, loads
from piherd.model.checks import absolute_path
from piherd.model.locate import Locator
from piherd.model.reader import Reader
from piherd.render.spec import RenderError, safe_path, text
from piherd.services import SERVICES

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
PIHERD = ROOT / ".venv" / "bin" / "piherd"
BASE = (ROOT / "examples" / "cluster.toml").read_text()
MINIMAL = """[cluster]
name = "pi"
[network]
subnet = "10.0.0.0/16"
[naming]
prefix = "node"
count = 4
width = 5
first_address = "10.0.0.11"
"""


def problems_of(toml: str) -> str:
    with pytest.raises(ConfigError) as caught:
        loads(toml, SERVICES)
    return caught.value.render()


# 1. Value injection: a trailing newline, NUL or escape never passes; errors stay escaped.


@pytest.mark.parametrize("value", ["picluster\\n", "pi\\u0000", "pi\\r", "pi\\u001b[2J"])
def test_a_control_character_in_a_value_is_refused(value: str) -> None:
    assert 'name = "picluster"' in BASE
    shown = problems_of(BASE.replace('name = "picluster"', f'name = "{value}"', 1))
    assert "cluster.name" in shown and "control character" in shown
    assert not any(c in shown for c in "\x00\r\x1b")


def test_an_escape_sequence_in_a_key_reaches_no_terminal() -> None:
    shown = problems_of(BASE.replace("[cluster]", '[cluster]\n"\\u001b]0;owned\\u0007" = 1', 1))
    assert "\\x1b]0;owned\\x07" in shown
    assert "\x1b" not in shown and "\x07" not in shown


def test_a_huge_value_is_not_echoed_whole() -> None:
    shown = problems_of(BASE.replace('name = "picluster"', f'name = "{"x" * 100_000}"', 1))
    assert "characters..." in shown and len(shown) < 2000


def test_the_text_renderer_refuses_a_line_break_in_a_line() -> None:
    cluster = loads(BASE, SERVICES)
    with pytest.raises(RenderError, match="control character"):
        text(cluster, "/etc/exports", ["/srv/cluster 10.0.0.0/8(rw)\n/ *(rw)"])
    assert text(cluster, "/etc/hosts", ["127.0.0.1\tlocalhost"]).content.endswith(b"\tlocalhost\n")


# 2. Path guards: every spelling of a system directory is one.


@pytest.mark.parametrize(
    "spelled", ["//etc", "/etc/.", "/.", "/run", "/boot/firmware", "/srv/../etc", "/home", "/tmp"]
)
def test_a_system_directory_is_refused_however_it_is_spelled(spelled: str) -> None:
    reader = Reader(Locator(""), "cluster.toml")
    assert not absolute_path(reader, "services.storage.export", spelled)
    assert len(reader.problems) == 1


@pytest.mark.parametrize("fine", ["/srv/cluster", "/cluster", "/srv/cluster/", "/mnt/shared"])
def test_a_directory_of_its_own_is_accepted(fine: str) -> None:
    reader = Reader(Locator(""), "cluster.toml")
    assert absolute_path(reader, "services.storage.export", fine), reader.problems


def test_render_normalises_a_path_and_refuses_a_system_directory() -> None:
    assert safe_path("//srv/./cluster/", "export") == "/srv/cluster"
    with pytest.raises(RenderError):
        safe_path("//etc/", "export")


# 4. Numbers: NaN and infinity refused, every number bounded.


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("watch_interval_s", "nan"),
        ("watch_interval_s", "inf"),
        ("watch_interval_s", "1e-300"),
        ("temp_warn_c", "-inf"),
        ("disk_crit_pct", "nan"),
    ],
)
def test_a_health_number_must_be_finite_and_sane(key: str, value: str) -> None:
    shown = problems_of(MINIMAL + f"[health]\n{key} = {value}\n")
    assert f"health.{key}" in shown


def test_a_numeric_option_refuses_nan_and_a_day_and_more() -> None:
    for bad in ("nan", "inf", "1e-300", "90000"):
        with pytest.raises(click.BadParameter):
            Seconds(0.5).convert(bad, None, None)
    assert Seconds(0.5).convert("2", None, None) == 2.0


def test_every_seconds_option_of_every_command_refuses_nan() -> None:
    """click.FloatRange lets NaN through: every float option must be a FiniteFloat."""

    def commands(group: click.Group) -> list[click.Command]:
        ctx = click.Context(group)  # the group loads its sub-commands on first use
        found: list[click.Command] = []
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            found += commands(command) if isinstance(command, click.Group) else [command]
        return found

    loose = [
        f"{command.name} {param.name}"
        for command in commands(cli)
        for param in command.params
        if isinstance(param.type, click.FloatRange) and not isinstance(param.type, FiniteFloat)
    ]
    assert loose == []


# 5. No traceback, no hang, bounded work.


def test_a_node_set_of_millions_is_refused_before_it_is_expanded() -> None:
    started = time.monotonic()
    with pytest.raises(NodeSetError, match="at most 10000 are allowed"):
        expand("node[1-100000000]", {"all": ["node1"]}, ["node1"])
    with pytest.raises(NodeSetError):
        expand("a[1-1000]b[1-1000]", {"all": ["node1"]}, ["node1"])
    # A hang guard, not a speed measurement: expanding first would take minutes.
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_a_cluster_file_that_is_not_one_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cluster.toml"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would block for ever
    elif kind == "device":
        path = Path("/dev/zero")  # reading it would never end
    else:
        path.write_text(BASE + "#" * (2 * 1024 * 1024))
    done = subprocess.run(
        [str(PIHERD), "check", str(path)], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "regular file" in done.stderr or "larger than" in done.stderr


def test_every_broken_file_is_answered_within_ten_seconds() -> None:
    for path in sorted((TESTS / "broken").glob("*.toml")):
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["check", str(path)])
        assert time.monotonic() - started < 10, path.name
        assert result.exit_code == 2 and "Traceback" not in result.output, path.name


def test_the_groups_of_a_big_cluster_are_all_checked() -> None:
    # How fast this runs is measured in bench/, not asserted here (timings vary with load).
    plan = MINIMAL.replace("count = 4", "count = 10000")
    groups = "".join(f'g{i} = "@all!node{i + 1:05d}"\n' for i in range(1000))
    cluster = loads(plan + "[groups]\n" + groups, SERVICES)
    assert len(cluster.groups["g999"]) == 9999
    assert "node01000" not in cluster.groups["g999"]
    assert "node01000" in cluster.groups["g0"]


@pytest.mark.parametrize("command", ["run", "copy"])
def test_an_argument_that_is_not_utf8_is_a_clear_error(command: str) -> None:
    bad = os.fsdecode(b"/tmp/\xff")  # what Python makes of undecodable argv bytes
    args = ["@all", "--", "echo", bad] if command == "run" else [bad, "@all:/tmp/"]
    result = CliRunner().invoke(
        cli, [command, "-f", str(ROOT / "examples" / "cluster.toml"), *args]
    )
    assert result.exit_code == 2, result.output
    assert "not UTF-8 text" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
