"""Slurm power saving on the head (services/power_saving.py) and the LED service's files."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import tomlkit

from piherd.bundle import watch_service_inputs
from piherd.model import ConfigError
from piherd.render import RenderError, node_packages, node_units, render_node
from piherd.secrets import load_or_create_secrets, render_context
from piherd.services import leds_agent as agent
from piherd.services import load, loads
from piherd.services import power_saving as saving
from piherd.services.slurm import slurm_conf

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster.toml"
SAVING = """
[services.power]
enabled = true
slurm_suspend = true
suspend_time_s = 120

[[services.power.controllers]]
nodes = "@workers"
driver = "poe-snmp"
host = "switch1"
ports = "1-3"
secret = "poe"
"""


def saving_cluster(tmp_path: Path, extra: str = SAVING, secret: bool = True) -> Path:
    doc = tomlkit.parse(EXAMPLE.read_text())
    doc["cluster"]["secrets_dir"] = str(tmp_path / "secrets")  # type: ignore[index]
    path = tmp_path / "cluster.toml"
    path.write_text(tomlkit.dumps(doc) + extra)
    if secret:
        folder = tmp_path / "secrets" / "power"
        folder.mkdir(parents=True)
        (folder / "poe").write_text("c0mmunity\n")
        (folder / "other").write_text("not-for-the-head\n")
    return path


def head_files(path: Path) -> dict[str, bytes]:
    cluster = load(path)
    bundle, text = watch_service_inputs(cluster)
    ctx = render_context(load_or_create_secrets(cluster), piherd_bundle=bundle, cluster_toml=text)
    return {p: s.content for p, s in render_node(cluster, cluster.head, ctx).items()}


def test_slurm_conf_calls_piherd_to_suspend_and_resume(tmp_path: Path) -> None:
    cluster = load(saving_cluster(tmp_path))
    ctx = render_context(load_or_create_secrets(cluster))
    lines = slurm_conf(cluster, ctx)
    assert "SuspendProgram=/usr/local/lib/piherd/slurm-suspend" in lines
    assert "ResumeProgram=/usr/local/lib/piherd/slurm-resume" in lines
    assert "SuspendTime=120" in lines and "ResumeTimeout=600" in lines
    assert not any(line.startswith("SuspendExcNodes") for line in lines)  # all have power
    assert not any(line.startswith("Suspend") for line in slurm_conf(load(EXAMPLE), ctx))


def test_the_head_gets_piherd_scripts_and_only_the_secrets_it_needs(tmp_path: Path) -> None:
    files = head_files(saving_cluster(tmp_path))
    suspend = files[saving.SUSPEND].decode()
    last = shlex.split(suspend.splitlines()[-1])
    assert last[:4] == ["exec", "/usr/local/bin/piherd", "power", "off"]
    assert last[-5:-3] == ["--", "$1"] and "--reason" in last
    assert last[-3:] == ["</dev/null", ">>/var/log/slurm/piherd-power.out", "2>&1"]
    assert shlex.split(files[saving.RESUME].decode().splitlines()[-1])[3] == "on"
    assert files[f"{saving.SECRETS_DIR}/power/poe"] == b"c0mmunity\n"
    assert not any(p.endswith("/other") for p in files)  # scoped: no other controller's
    copy = tomlkit.parse(files[saving.CLUSTER_FILE].decode())
    assert copy["cluster"]["secrets_dir"] == saving.SECRETS_DIR  # type: ignore[index]
    assert files[saving.PROGRAM].startswith(b"#!/usr/bin/python3")


def test_head_packages_include_the_drivers_tool(tmp_path: Path) -> None:
    cluster = load(saving_cluster(tmp_path))
    assert "snmp" in node_packages(cluster, cluster.head)
    assert "snmp" not in node_packages(cluster, cluster.workers[0])


def test_a_missing_secret_is_named(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="power secret 'poe' is missing"):
        head_files(saving_cluster(tmp_path, secret=False))


def test_power_saving_refuses_the_sim_driver(tmp_path: Path) -> None:
    extra = SAVING.replace('driver = "poe-snmp"\nhost = "switch1"\nports = "1-3"\nsecret = "poe"',
                           'driver = "sim"\nsim = "pwr"')  # fmt: skip
    with pytest.raises(ConfigError, match="cannot power nodes on through 'sim'"):
        load(saving_cluster(tmp_path, extra))


LEDS = """
[services.leds]
enabled = true
[services.leds.leds]
green = { board = "ACT" }
yellow = { chip = "pinctrl-bcm2711", line = 17 }
[services.leds.states]
idle = { green = "on" }
draining = { yellow = "blink" }
"""


def test_led_agent_config_and_unit(tmp_path: Path) -> None:
    path = saving_cluster(tmp_path, LEDS, secret=False)
    cluster = load(path)
    node = cluster.workers[0]
    ctx = render_context(load_or_create_secrets(cluster))
    files = render_node(cluster, node, ctx)
    config = json.loads(files["/etc/piherd/leds.json"].content)
    assert config["leds"]["yellow"] == {"chip": "pinctrl-bcm2711", "line": 17}
    assert config["states"] == {"idle": {"green": "on"}, "draining": {"yellow": "blink"}}
    assert config["node"] == node.name
    assert files["/usr/local/lib/piherd/leds-agent"].mode == 0o755
    assert any(u.name == "piherd-leds.service" for u in node_units(cluster, node))
    assert "python3-libgpiod" in node_packages(cluster, node)


def test_led_states_refer_to_defined_leds_and_known_patterns() -> None:
    text = EXAMPLE.read_text() + LEDS.replace('idle = { green = "on" }', 'idle = { blue = "on" }')
    with pytest.raises(ConfigError, match="no LED is called 'blue'"):
        loads(text)
    with pytest.raises(ConfigError, match="unknown pattern 'strobe'"):
        loads(EXAMPLE.read_text() + LEDS.replace('"blink"', '"strobe"'))


@pytest.mark.parametrize(
    ("slurm", "identify", "expected"),
    [
        ("IDLE", False, "idle"),
        ("ALLOCATED", False, "allocated"),
        ("MIXED", False, "allocated"),
        ("IDLE+DRAIN", False, "draining"),
        ("ALLOCATED+DRAIN", False, "draining"),
        ("DOWN+DRAIN", False, "down"),
        ("IDLE*", False, "down"),
        ("DOWN", False, "down"),
        (None, False, "down"),
        ("IDLE", True, "identify"),
    ],
)
def test_agent_maps_slurm_states(slurm: str | None, identify: bool, expected: str) -> None:
    assert agent.classify(slurm, identify) == expected


def test_agent_patterns_and_board_leds(tmp_path: Path) -> None:
    assert agent.pattern_on("blink", 0.2) and not agent.pattern_on("blink", 0.7)
    assert agent.pattern_on("fast", 0.05) and not agent.pattern_on("fast", 0.2)
    assert agent.pattern_on("on", 5) and not agent.pattern_on("off", 5)
    led0 = tmp_path / "led0"  # an older kernel's name for ACT
    led0.mkdir()
    (led0 / "max_brightness").write_text("255\n")
    led = agent.BoardLed("ACT", root=str(tmp_path))
    led.set(True)
    assert (led0 / "trigger").read_text() == "none\n"
    assert (led0 / "brightness").read_text() == "255\n"
    assert agent.parse_state("NodeName=node02 Arch=x State=IDLE+DRAIN ThreadsPerCore=1") == (
        "IDLE+DRAIN"
    )
