"""A new user's first session, run from the docs' own text (issue 17).

The commands come from README.md, docs/sim.md ("Quick start") and docs/health.md (the
dashboard with a token), read out of the Markdown and run in bash as written, so this
test breaks when the docs drift from the code. Adaptations, all in `adapt()`: `sudo` is
dropped (tests run as root), the sim is this module's own (`--name aux`, two workers),
and the dashboard takes a free port. One cluster for the module; the later tests use it
for what the walk-through cannot show: a job stuck in COMPLETING in status, dashboard and
metrics, dashboard buttons, `sim` choosing among several clusters, and the sim's
uptime, injections and remount after a power cut.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from test_dashboard_browser import (
    cards,
    chromium,
    click,
    free_port,
    http_get,
    interrupt,
    load_page,
    metric,
    metric_values,
    piherd,
    screenshot,
    wait_for,
)

from piherd.health.slurm_state import parse_nodes
from piherd.sim.leftovers import leftovers
from piherd.sim.virtual_cluster import VirtualCluster

pytestmark = [pytest.mark.sim, pytest.mark.root]

NAME, OTHER = "aux", "aux2"
REPO = Path(__file__).resolve().parents[2]
STATE = Path("/var/lib/piherd/sim") / NAME
EPILOG = "/etc/slurm/piherd-test-epilog.sh"
RELEASE = "/run/piherd-test-release-epilog"


def code_block_after(text: str, heading: str) -> list[str]:
    """The indented block (4 spaces) that follows `heading` in Markdown `text`."""
    after = text.split(heading, 1)[1].splitlines()
    block: list[str] = []
    for line in after[1:]:
        if line.startswith("    "):
            block.append(line[4:])
        elif block and line.strip() != "":
            break
    assert block, f"no command block after {heading!r}"
    return block


def quick_start() -> list[str]:
    return code_block_after((REPO / "docs" / "sim.md").read_text(), "## Quick start")


def adapt(command: str) -> str:
    """The only changes made to a documented command (see the module docstring)."""
    command = command.removeprefix("sudo ")
    command = command.replace(
        "piherd sim up --workers 3", f"piherd sim up --name {NAME} --workers 2"
    )
    return command


def shell(
    command: str, env: dict[str, str], cwd: Path, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run one documented command line in bash, as a user would type it."""
    return subprocess.run(
        ["bash", "-c", command],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory, sim_names: set[str]) -> Iterator[dict[str, Any]]:
    """A fresh user: own home (so `~/.config` in the docs is theirs: no current cluster,
    no clush or ssh config yet), a working directory without a cluster.toml, piherd on
    PATH. The clusters are taken down by name whatever happens."""
    assert os.geteuid() == 0, "sim tests need root: run them as root (they must not skip)"
    sim_names.update({NAME, OTHER})
    home = tmp_path_factory.mktemp("walkthrough")
    dropped = ("PIHERD_CLUSTER", "PIHERD_DASHBOARD_TOKEN", "XDG_CONFIG_HOME", "CLUSTERSHELL_CFGDIR")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(piherd()).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["COLUMNS"] = "160"
    work = home / "work"
    work.mkdir()
    try:
        yield {"env": env, "cwd": work, "outputs": {}}
    finally:
        for name in (OTHER, NAME):
            if (Path("/var/lib/piherd/sim") / name).exists():
                subprocess.run(
                    [piherd(), "sim", "down", "--name", name],
                    env=env,
                    capture_output=True,
                    check=False,
                )
            assert not leftovers(name), f"sim {name} left behind: {leftovers(name)}"


def run_doc(user: dict[str, Any], command: str) -> subprocess.CompletedProcess[str]:
    result = shell(adapt(command), user["env"], user["cwd"])
    assert result.returncode == 0, (
        f"{command!r} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    user["outputs"][command] = result
    return result


def on_node(user: dict[str, Any], node: str, command: str) -> str:
    """`piherd ssh NODE -- sudo sh -c COMMAND` on the current cluster; its stdout."""
    result = shell(
        f"piherd ssh {node} -- sudo sh -c {json.dumps(command)}", user["env"], user["cwd"], 120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_points_at_the_quick_start() -> None:
    readme = (REPO / "README.md").read_text()
    assert "`sudo piherd sim up --workers 3`" in readme and "docs/sim.md" in readme
    assert quick_start()[0].split("#")[0].strip() == "sudo piherd sim up --workers 3"


def test_quick_start_as_written(user: dict[str, Any]) -> None:
    """README -> sim up -> (ssh, check) -> up -> (ssh again, clush) -> a job -> status."""
    commands = quick_start()
    assert commands[-1] == "sudo piherd sim down"
    ssh_lines = [c for c in commands if c.startswith("ssh -F ")]
    assert len(ssh_lines) == 2, "the quick start shows ssh before and after `piherd up`"
    for command in commands[:-1]:
        result = run_doc(user, command)
        if command.startswith("sudo piherd sim up"):
            printed = re.search(r"ssh -F (\S+) node01", result.stdout)
            assert printed, result.stdout
            user["printed_ssh"] = printed.group(0)
            assert "current cluster" in result.stderr
            assert (
                shell(f"{printed.group(0)} hostname", user["env"], user["cwd"], 60).stdout
                == "node01\n"
            )
        elif command.startswith("piherd check"):
            assert "(the current cluster" in result.stderr and "ok: cluster 'aux'" in result.stdout
        elif command.startswith("ssh -F"):
            assert result.stdout == "node02\n"
        elif command.startswith("clush"):
            assert "node02\n" in result.stdout and "node03\n" in result.stdout
        elif "srun" in command:
            assert sorted(result.stdout.split()) == ["node02", "node03"]
        elif command.startswith("piherd status"):
            assert all(f"node0{i}" in result.stdout for i in (1, 2, 3))
    # After `up` moved every node to its static address, what `sim up` printed still works.
    moved = shell(f"{user['printed_ssh']} hostname", user["env"], user["cwd"], 60)
    assert moved.stdout == "node01\n", moved.stderr
    config = Path(user["env"]["HOME"]) / ".config" / "piherd" / "ssh" / f"{NAME}.conf"
    assert "HostName 10." in config.read_text() and re.search(
        r"HostName \S+\.12\n", config.read_text()
    )


def test_dashboard_answers_with_its_token(user: dict[str, Any]) -> None:
    """docs/health.md's command line with a token, then the page and API with that token."""
    lines = code_block_after((REPO / "docs" / "health.md").read_text(), "## `piherd dashboard`")
    start = next(line for line in lines if "PIHERD_DASHBOARD_TOKEN=" in line)
    port = free_port()
    proc = subprocess.Popen(
        ["bash", "-c", f"{start} --port {port}"], env=user["env"], cwd=user["cwd"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        token = wait_for(lambda: _token_of(proc.pid), 30, "the dashboard's token")
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _answer(f"{base}/api/state"), 60, "listening")[0] == 401
        wait_for(lambda: _ready(f"{base}/api/state", token), 90, "a round")
        opened = next(line for line in lines if "?token=" in line).split("open ", 1)[1]
        url = opened.replace("http://HEAD:8470", base).replace("THE_TOKEN", token)
        with chromium() as driver:
            load_page(driver, url)
            found = wait_for(lambda: len(cards(driver)) == 3 and cards(driver), 30, "3 cards")
            assert sorted(found) == ["node01", "node02", "node03"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        interrupt(proc)


def _answer(url: str, token: str | None = None) -> tuple[int, str] | None:
    """http_get, or None while nothing listens yet."""
    try:
        return http_get(url, token)
    except OSError:
        return None


def _ready(url: str, token: str) -> bool:
    answer = _answer(url, token)
    return answer is not None and answer[0] == 200 and json.loads(answer[1])["ready"]


def _token_of(pid: int) -> str | None:
    """The token the documented `VAR=$(openssl ...) piherd dashboard` line made: read from
    the environment of the piherd process (bash itself or its child)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        pids += [int(p) for p in task.read_text().split()]
    for candidate in pids:
        try:
            environ = Path(f"/proc/{candidate}/environ").read_bytes()
        except OSError:
            continue
        for entry in environ.split(b"\0"):
            if entry.startswith(b"PIHERD_DASHBOARD_TOKEN="):
                return entry.split(b"=", 1)[1].decode()
    return None


def _slurm(user: dict[str, Any], node: str) -> Any:
    return parse_nodes(on_node(user, "node01", f"scontrol show node -o {node}"))[node]


def test_a_job_stuck_in_completing_shows_everywhere(user: dict[str, Any]) -> None:
    """An epilog that waits keeps node02 COMPLETING after its job: status, the dashboard
    (card and /metrics) and the API all say completing; the buttons' errors stay until
    dismissed and drain asks first."""
    hang = f"#!/bin/sh\\nwhile [ ! -e {RELEASE} ]; do sleep 1; done\\n"
    for node in ("node01", "node02", "node03"):
        on_node(user, node, f"printf '{hang}' > {EPILOG} && chmod 755 {EPILOG} && rm -f {RELEASE}"
                f" && echo Epilog={EPILOG} >> /etc/slurm/slurm.conf")  # fmt: skip
    on_node(user, "node01", "scontrol reconfigure")
    try:
        job = shell(
            "piherd ssh node01 -- sbatch -w node02 --wrap true", user["env"], user["cwd"], 60
        )
        assert job.returncode == 0, job.stderr
        wait_for(lambda: "COMPLETING" in _slurm(user, "node02").flags, 90, "node02 completing")

        status = shell("piherd status --json node02", user["env"], user["cwd"], 60)
        shown = json.loads(status.stdout)["nodes"][0]["slurm"]
        assert "completing" in shown["state"] and "COMPLETING" in shown["flags"]
        table = shell("piherd status node02", user["env"], user["cwd"], 60).stdout
        assert "completing" in table

        port = free_port()
        token = "walkthrough-token-0123456789"
        dash_env = {**user["env"], "PIHERD_DASHBOARD_TOKEN": token}
        proc = subprocess.Popen(
            [piherd(), "dashboard", "--port", str(port), "--interval", "1"], env=dash_env,
            cwd=user["cwd"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: _ready(f"{base}/api/state", token),
                90,
                "a round",
            )
            values = metric_values(http_get(f"{base}/metrics", token)[1])
            assert metric(values, "piherd_slurm_node_state", node="node02", state="completing") == 1
            assert metric(values, "piherd_slurm_node_state", node="node03", state="completing") == 0
            with chromium() as driver:
                load_page(driver, f"{base}/?token={token}")
                wait_for(lambda: "completing" in cards(driver).get("node02", {}).get("slurm", ""),
                         30, "node02's card saying completing")  # fmt: skip
                screenshot(driver, "dashboard-completing")
                _buttons(user, driver)
        finally:
            interrupt(proc)
    finally:
        for node in ("node01", "node02", "node03"):
            on_node(user, node, f"touch {RELEASE}; grep -vx Epilog={EPILOG} /etc/slurm/slurm.conf"
                    f" > /etc/slurm/.conf.tmp; cat /etc/slurm/.conf.tmp > /etc/slurm/slurm.conf;"
                    " rm -f /etc/slurm/.conf.tmp")  # fmt: skip
        on_node(user, "node01", "scontrol reconfigure")
        wait_for(lambda: not _slurm(user, "node02").flags, 60, "node02 done completing")


def _buttons(user: dict[str, Any], driver: Any) -> None:
    """Resume of an idle node fails in Slurm: the error stays through refreshes until
    dismissed. Drain asks for confirmation; declining it drains nothing."""
    click(driver, "#node-node03 button.resume")
    banner = wait_for(
        lambda: driver.find_element(By.ID, "action-error").is_displayed(), 15, "error"
    )
    assert banner
    text = driver.find_element(By.ID, "action-error-text").text
    assert text.startswith("resume node03:"), text
    time.sleep(5)  # several 2-second refreshes (correctness, not timing: it must survive them)
    assert driver.find_element(By.ID, "action-error").is_displayed()
    click(driver, "#action-error-dismiss")
    assert not driver.find_element(By.ID, "action-error").is_displayed()
    click(driver, "#node-node03 button.drain")
    confirm = WebDriverWait(driver, 10).until(expected_conditions.alert_is_present())
    assert "Drain node03" in confirm.text
    confirm.dismiss()
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 (the dialog is gone)
    time.sleep(2)
    assert not _slurm(user, "node03").drain


def test_sim_commands_use_the_current_cluster_and_refuse_to_guess(user: dict[str, Any]) -> None:
    env, cwd = user["env"], user["cwd"]
    other = shell(f"piherd sim up --name {OTHER} --light --workers 0", env, cwd, 300)
    assert other.returncode == 0, other.stderr
    try:
        # sim up made aux2 current; `use` switches back by name.
        assert shell(f"piherd use {NAME}", env, cwd).returncode == 0
        picked = shell("piherd sim status --json", env, cwd)
        assert picked.returncode == 0 and f"cluster {NAME} (current)" in picked.stderr
        assert len(json.loads(picked.stdout)) == 3
        lone = {**env, "XDG_CONFIG_HOME": str(cwd / "nobody")}  # nothing current
        refused = shell("piherd sim status", lone, cwd)
        assert refused.returncode == 2 and "several running" in refused.stderr
        assert NAME in refused.stderr and OTHER in refused.stderr
    finally:
        down = shell(f"piherd sim down --name {OTHER}", env, cwd, 300)
        assert down.returncode == 0, down.stderr
    assert shell("piherd use", env, cwd).stdout.startswith(f"current cluster: {STATE}/cluster.toml")


def test_power_cut_revive_like_a_pi(user: dict[str, Any]) -> None:
    """After `sim kill`/`revive` the node's uptime starts again and the shared storage is
    back without `piherd up`; injected signals add up."""
    env, cwd = user["env"], user["cwd"]
    for command in ("piherd sim kill node03", "piherd sim revive node03"):
        done = shell(command, env, cwd, 300)
        assert done.returncode == 0, done.stderr
    vc = VirtualCluster.attach(NAME)

    def back() -> dict[str, Any] | None:
        result = shell("piherd status --json node03", env, cwd, 60)
        node = json.loads(result.stdout)["nodes"][0]
        return node if node.get("storage_mounted") and node.get("reachable") else None

    node = wait_for(back, 120, "node03 back with its storage mounted")
    assert node["uptime_s"] < 600, node
    shell("piherd sim inject node03 overtemp", env, cwd)
    shell("piherd sim inject node03 undervoltage", env, cwd)
    row = next(r for r in vc.status() if r["node"] == "node03")
    assert int(row["temp_mc"]) >= 85000 and str(row["undervoltage"]) == "1", row
    shell("piherd sim inject node03 clear", env, cwd)


def test_sim_down_as_written(user: dict[str, Any]) -> None:
    """Last: the quick start's `sim down`, which needs no --name: aux is current."""
    run_doc(user, quick_start()[-1])
    assert not STATE.exists() and not leftovers(NAME)
    assert shell("piherd use", user["env"], user["cwd"]).stdout.startswith("current cluster: none")
