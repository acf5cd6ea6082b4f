"""`piherd check` on every broken file of tests/broken/ (one per rule) and on valid files."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.cli.main import cli

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
BROKEN = sorted((TESTS / "broken").glob("*.toml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
PIHERD = ROOT / ".venv" / "bin" / "piherd"
_EXPECT = re.compile(r"^# expect: (\d+) (\S+) (.+)$")


@dataclass(frozen=True)
class Expected:
    """One problem a broken file must produce: its line, field and a fragment of its text."""

    line: int
    field: str  # "" for problems of the whole file (written "-" in the header)
    fragment: str


def expectations(path: Path) -> list[Expected]:
    found = []
    for text in path.read_text().splitlines():
        match = _EXPECT.match(text)
        if match:
            field = "" if match.group(2) == "-" else match.group(2)
            found.append(Expected(int(match.group(1)), field, match.group(3).strip()))
    return found


def check_json(path: Path) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["check", "--json", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def test_there_is_a_broken_file_per_rule() -> None:
    assert len(BROKEN) >= 30
    for path in BROKEN:
        assert expectations(path), f"{path.name} has no '# expect:' header"


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_file_reports_its_rule(path: Path) -> None:
    status, report = check_json(path)
    assert status == 2
    assert report["valid"] is False
    problems = report["problems"]
    assert isinstance(problems, list)
    wanted = expectations(path)
    for want in wanted:
        hits = [
            p
            for p in problems
            if p["line"] == want.line
            and p["field"] == want.field
            and want.fragment in f"{p['message']} {p['hint']}"
        ]
        assert hits, f"{path.name}: no problem {want} in {problems}"
    # one rule per file: nothing else goes wrong in it
    assert len(problems) == len(wanted), problems


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_file_text_output(path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    want = expectations(path)[0]
    where = f"{path}:{want.line}: " if want.line else f"{path}: "
    assert where + (f"{want.field}: " if want.field else "") in result.output
    assert "problem" in result.output.splitlines()[-1]
    # one screen: every typical mistake fits in 25 lines
    assert len(result.output.splitlines()) <= 25


def test_broken_files_through_the_installed_command() -> None:
    """The real console script, as a user runs it: exit 2, located errors, no traceback.

    Every third file (each costs a Python start-up of ~0.5 s); CliRunner covers all.
    """
    for path in BROKEN[::3]:
        done = subprocess.run(
            [str(PIHERD), "check", str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (path.name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        want = expectations(path)[0]
        assert f"{path}:{want.line}: " in done.stderr or not want.line, done.stderr


def test_missing_file() -> None:
    result = CliRunner().invoke(cli, ["check", "/nonexistent/cluster.toml"])
    assert result.exit_code == 2
    assert "/nonexistent/cluster.toml: no such file" in result.output
    assert "piherd init" in result.output


def test_directory_instead_of_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_bytes(b'[cluster]\nname = "\xff"\n')
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 2
    assert "UTF-8" in result.output


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_are_valid(path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert ": ok: cluster" in result.output


def test_example_through_the_installed_command() -> None:
    done = subprocess.run(
        [str(PIHERD), "check", str(ROOT / "examples" / "cluster.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "4 nodes (node[01-04]), head node01" in done.stdout


def test_default_file_is_cluster_toml_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["check"]).exit_code == 2  # no ./cluster.toml yet
    (tmp_path / "cluster.toml").write_text((ROOT / "examples" / "cluster.toml").read_text())
    result = runner.invoke(cli, ["check"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cluster.toml: ok")


def test_missing_public_key_is_a_note_not_an_error(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "cluster.toml").read_text()
    path = tmp_path / "cluster.toml"
    path.write_text(text.replace("~/.ssh/id_ed25519.pub", str(tmp_path / "missing.pub")))
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 0
    assert "missing.pub does not exist yet" in result.output
    (tmp_path / "missing.pub").write_text("ssh-ed25519 AAAA test\n")
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 0
    assert "note:" not in result.output
