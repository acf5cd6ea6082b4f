"""services.distcc and services.web: settings checked, files rendered for the right nodes only."""

from __future__ import annotations

from pathlib import Path

import pytest

from piherd.model import ConfigError
from piherd.render import RenderContext, node_packages, node_units, render_node
from piherd.services import distcc, loads, web

BASE = (Path(__file__).parents[2] / "examples" / "cluster.toml").read_text()
CTX = RenderContext(
    munge_key=b"k" * 1024,
    storage_private_key=b"",
    storage_public_key="",
    hardware={"node02": (4, 4000), "node03": (4, 4000), "node04": (2, 2000)},
)


def cluster_with(table: str):  # type: ignore[no-untyped-def]
    return loads(BASE + "\n" + table)


def problems(table: str) -> str:
    with pytest.raises(ConfigError) as caught:
        cluster_with(table)
    return caught.value.render()


def test_both_are_off_by_default() -> None:
    cluster = loads(BASE)
    for node in cluster.nodes:
        files = render_node(cluster, node, CTX)
        assert distcc.HOSTS not in files and web.HAPROXY_CFG not in files
        assert web.NGINX_CONF not in files
        assert not {"distcc", "haproxy", "nginx-light"} & set(node_packages(cluster, node))


def test_distcc_servers_listen_on_their_address_for_the_subnet_only() -> None:
    cluster = cluster_with("[services.distcc]\nenabled = true\n")
    unit = render_node(cluster, cluster.node("node03"), CTX)[distcc.UNIT_PATH].content.decode()
    assert "--listen=192.168.1.13 --port=3632 --allow=192.168.1.0/24 --jobs=4 --nice=10" in unit
    assert "User=distccd" in unit
    units = node_units(cluster, cluster.node("node03"))
    assert units[-2].name == "distcc.service" and units[-2].masked
    assert units[-1].name == distcc.UNIT and units[-1].enable
    assert "gcc" in node_packages(cluster, cluster.node("node03"))
    # The head is the client: the workers with one slot per CPU, no local compiles.
    head = render_node(cluster, cluster.node("node01"), CTX)
    assert distcc.UNIT_PATH not in head
    assert head[distcc.HOSTS].content.decode().splitlines()[-1] == (
        "192.168.1.12:3632/4 192.168.1.13:3632/4 192.168.1.14:3632/2"
    )
    assert "make" in node_packages(cluster, cluster.node("node01"))


def test_distcc_node_sets_and_numbers_are_checked() -> None:
    shown = problems('[services.distcc]\nenabled = true\nservers = "node[07-09]"\njobs = -1\n')
    assert "services.distcc.servers" in shown and "services.distcc.jobs" in shown
    shown = problems("[services.distcc]\nenabled = true\nport = 70000\nnice = 20\n")
    assert "services.distcc.port" in shown and "services.distcc.nice" in shown


def test_web_balancer_checks_backends_at_the_interval_and_stats_stay_in_the_subnet() -> None:
    cluster = cluster_with("[services.web]\nenabled = true\ncheck_interval = 0.5\nfall = 3\n")
    cfg = render_node(cluster, cluster.node("node01"), CTX)[web.HAPROXY_CFG].content.decode()
    assert "    bind 192.168.1.11:80\n" in cfg
    assert "    default-server inter 500ms fall 3 rise 2\n" in cfg
    for index in (2, 3, 4):
        assert f"    server node0{index} 192.168.1.1{index}:8080 check\n" in cfg
    assert "    option redispatch 1\n" in cfg and "    retries 3\n" in cfg
    stats = cfg.split("listen piherd-web-stats\n")[1]
    assert "    bind 192.168.1.11:8404\n" in stats
    assert "    http-request deny unless { src 192.168.1.0/24 }\n" in stats
    conf = render_node(cluster, cluster.node("node04"), CTX)[web.NGINX_CONF].content.decode()
    assert "listen 192.168.1.14:8080;" in conf and "add_header X-Backend node04 always;" in conf
    assert node_packages(cluster, cluster.node("node01")).count("haproxy") == 1
    assert "nginx-light" not in node_packages(cluster, cluster.node("node01"))


def test_web_settings_are_checked() -> None:
    shown = problems('[services.web]\nenabled = true\nbalancer = "node09"\n')
    assert "services.web.balancer" in shown
    shown = problems(
        '[services.web]\nenabled = true\ncheck_interval = nan\nroot = "/var/../etc"\n'
        "stats_port = 80\n"
    )
    assert "services.web.check_interval" in shown and "services.web.root" in shown
    assert "services.web.stats_port" in shown
    shown = problems('[services.web]\nenabled = true\nbackends = "@all"\nbackend_port = 80\n')
    assert "services.web.backend_port" in shown
    shown = problems('[services.web]\nenabled = true\nroot = "/srv/www;\\n"\n')
    assert "services.web.root" in shown
