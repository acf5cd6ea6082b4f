"""The current cluster: which cluster.toml a command reads without -f (`piherd use`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from piherd.app.current_cluster import (
    CurrentError,
    choose,
    choose_sim,
    clear_setting,
    read_setting,
    resolve_cluster_ref,
    setting_path,
    write_setting,
)
from piherd.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.toml"


def fake_sim(root: Path, name: str) -> Path:
    """A state dir as `sim up` leaves it: sim.json and cluster.toml."""
    (root / name).mkdir(parents=True)
    (root / name / "sim.json").write_text("{}")
    shutil.copy(EXAMPLE, root / name / "cluster.toml")
    return root / name / "cluster.toml"


def test_order_is_flag_env_local_file_then_setting(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    cwd = tmp_path / "here"
    cwd.mkdir()
    assert choose(None, env, cwd).source == "./cluster.toml"  # nothing set: the old default
    write_setting(env, EXAMPLE)
    assert setting_path(env) == tmp_path / "cfg" / "piherd" / "current"
    assert choose(None, env, cwd) == choose(None, env, cwd)
    picked = choose(None, env, cwd)
    assert picked.path == EXAMPLE and picked.implicit
    (cwd / "cluster.toml").write_text("")
    assert choose(None, env, cwd).source == "./cluster.toml"
    env["PIHERD_CLUSTER"] = "/x/y.toml"
    assert choose(None, env, cwd).path == Path("/x/y.toml")
    assert choose(Path("z.toml"), env, cwd).path == Path("z.toml")


@pytest.mark.parametrize(
    "text", ["relative/cluster.toml", "/a\nb", "/a\x1bb", "", "/" + "a" * 5000]
)
def test_a_broken_setting_is_refused_not_followed(tmp_path: Path, text: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    setting_path(env).parent.mkdir(parents=True)
    setting_path(env).write_text(text + "\n")
    with pytest.raises(CurrentError):
        read_setting(env)
    result = CliRunner(env=env).invoke(cli, ["status"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "piherd use" in result.output


def test_commands_find_the_current_cluster_and_say_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "PIHERD_CLUSTER": ""}
    runner = CliRunner(env=env)
    missing = runner.invoke(cli, ["check"])
    assert missing.exit_code == 2  # no ./cluster.toml and nothing current
    used = runner.invoke(cli, ["use", str(EXAMPLE)])
    assert used.exit_code == 0, used.output
    assert f"current cluster: {EXAMPLE}" in used.output
    checked = runner.invoke(cli, ["check"])
    assert checked.exit_code == 0, checked.output
    assert f"piherd: cluster {EXAMPLE} (the current cluster" in checked.output
    groups = runner.invoke(cli, ["groups", "--clustershell"])
    assert groups.exit_code == 0 and "the current cluster" in groups.output
    as_json = runner.invoke(cli, ["use", "--json"])
    assert '"source": "current"' in as_json.output
    cleared = runner.invoke(cli, ["use", "--clear"])
    assert "current cluster: none" in cleared.output
    assert runner.invoke(cli, ["check"]).exit_code == 2


def test_use_refuses_what_is_not_a_cluster(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    runner = CliRunner(env=env)
    for ref in (str(tmp_path / "nope.toml"), "no-such-sim-xyz", "a\x07b"):
        result = runner.invoke(cli, ["use", ref])
        assert result.exit_code == 2 and "Traceback" not in result.output, ref
    assert read_setting(env) is None


def test_sim_names_resolve_and_sim_commands_refuse_to_guess(tmp_path: Path) -> None:
    root = tmp_path / "state"
    env: dict[str, str] = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    assert choose_sim(None, env, root) == (None, "none running")
    aux = fake_sim(root, "aux")
    assert choose_sim(None, env, root) == ("aux", "the only one running")
    assert choose_sim(None, env, root, only_one=False)[0] is None  # `sim up` creates "sim"
    fake_sim(root, "aux2")
    name, why = choose_sim(None, env, root)
    assert name is None and why == "several running: aux, aux2"
    assert choose_sim("aux2", env, root) == ("aux2", "--name")
    assert resolve_cluster_ref("aux", root) == aux
    write_setting(env, resolve_cluster_ref("aux", root))
    assert choose_sim(None, env, root) == ("aux", "current")
    assert (
        choose_sim(None, {**env, "PIHERD_CLUSTER": str(root / "aux2" / "cluster.toml")}, root)[0]
        == "aux2"
    )
    assert not clear_setting(env, only_if=root / "aux2" / "cluster.toml")  # `sim down aux2`
    assert clear_setting(env, only_if=aux)  # `sim down aux` forgets it
    assert choose_sim(None, env, root)[0] is None
