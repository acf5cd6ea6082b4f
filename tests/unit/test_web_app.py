"""The dashboard app with starlette's TestClient, fed health rounds from captured outputs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from test_health_probe import PI_OUTPUT
from test_health_slurm import SCONTROL, SQUEUE

from piherd.health.collect import Snapshot
from piherd.health.probe import parse_probe, unreachable
from piherd.health.slurm_state import METRIC_STATES, parse_nodes, parse_queue
from piherd.health.verdicts import evaluate
from piherd.model.cluster import HealthRules
from piherd.web.app import Dashboard, static_text
from piherd.web.dashboard_state import DashboardState
from piherd.web.guards import served_hosts


def make_snapshot(t: float, load: str = "1.52") -> Snapshot:
    slurm = parse_nodes(SCONTROL)
    out = PI_OUTPUT.replace("1.52 0.98", f"{load} 0.98")
    health = [
        parse_probe(
            "node01",
            out.replace("81234", "45000")
            .replace("vcgencmd throttled=0x50005", "vcgencmd throttled=0x0")
            .replace("ro,noatime", "rw,noatime"),
        ),
        parse_probe("node02", out),
        unreachable("node03", "unreachable (no route to host)"),
    ]
    health = [h.with_slurm(slurm.get(h.node)) for h in health]
    verdicts = {h.node: evaluate(h, HealthRules()) for h in health}
    return Snapshot(
        time=t,
        health=tuple(health),
        verdicts=verdicts,
        slurm=slurm,
        jobs=tuple(parse_queue(SQUEUE)),
        roles={"node01": "head", "node02": "worker", "node03": "worker"},
    )


class FakeBackend:
    """Rounds from captured outputs; records the Slurm actions asked for."""

    def __init__(self) -> None:
        self.nodes = ("node01", "node02", "node03")
        self.calls: list[tuple[str, str, str]] = []
        self.t = 1000.0

    async def round(self) -> Snapshot:
        self.t += 2.0
        return make_snapshot(self.t)

    async def drain(self, node: str, reason: str) -> str | None:
        self.calls.append(("drain", node, reason))
        return None

    async def resume(self, node: str) -> str | None:
        self.calls.append(("resume", node, ""))
        return "scontrol: error: Invalid node state specified" if node == "node03" else None


BASE = "http://127.0.0.1:8470"  # where `piherd dashboard` serves by default


def client_for(
    token: str | None = None, base: str = BASE, bind: str = "127.0.0.1"
) -> tuple[TestClient, FakeBackend]:
    backend = FakeBackend()

    @asynccontextmanager
    async def open_backend() -> AsyncIterator[FakeBackend]:
        yield backend

    dash = Dashboard(open_backend, interval=0.5, token=token, hosts=served_hosts(bind))
    return TestClient(dash.app(), base_url=base), backend


def wait_ready(client: TestClient, **kw: object) -> dict:
    for _ in range(100):
        data = client.get("/api/state", **kw).json()  # type: ignore[arg-type]
        if data["ready"]:
            return data
    raise AssertionError("dashboard never became ready")


def test_state_has_nodes_levels_slurm_and_queue() -> None:
    client, _ = client_for()
    with client:
        data = wait_ready(client)
    nodes = {n["node"]: n for n in data["nodes"]}
    assert list(nodes) == ["node01", "node02", "node03"]
    assert nodes["node01"]["level"] == "ok" and nodes["node01"]["role"] == "head"
    assert nodes["node02"]["level"] == "critical"
    assert nodes["node02"]["critical"] == [
        "under-voltage",
        "temperature 81.2 C >= 80",
        "root filesystem read-only",
    ]
    assert nodes["node02"]["slurm"]["state"] == "drained"
    assert nodes["node02"]["slurm"]["drained_by_piherd"] is True
    assert nodes["node03"]["reachable"] is False and nodes["node03"]["critical"] == ["unreachable"]
    assert [j["job_id"] for j in data["jobs"]] == ["12", "13"]
    assert data["history"]["node02"]["load1"][0] == 1.52


def test_history_is_a_ring_of_one_hour() -> None:
    state = DashboardState(interval=600.0, history_s=3600.0)
    assert state.capacity == 6
    for i in range(10):
        state.update(make_snapshot(1000.0 + 600 * i, load=f"{i}.00"))
    hist = state.as_dict()["history"]["node02"]
    assert hist["load1"] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert hist["t"][0] == 1000.0 + 600 * 4
    # Points older than the horizon leave even when the ring is not full.
    wide = DashboardState(interval=1.0, history_s=3600.0)
    wide.update(make_snapshot(0.0))
    wide.update(make_snapshot(7200.0))
    assert wide.as_dict()["history"]["node02"]["t"] == [7200.0]


def test_token_required_on_data_routes() -> None:
    client, _ = client_for(token="s3cret")
    with client:
        assert client.get("/api/state").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/api/state", headers={"X-Piherd-Token": "wrong"}).status_code == 401
        wait_ready(client, headers={"Authorization": "Bearer s3cret"})
        assert client.get("/api/state?token=s3cret").status_code == 200
        assert client.get("/metrics", headers={"X-Piherd-Token": "s3cret"}).status_code == 200
        r = client.post("/api/nodes/node02/drain", json={})
        assert r.status_code == 401
        # The page shell holds no data and loads without the token (it reads ?token=).
        assert client.get("/").status_code == 200


def test_drain_and_resume_act_through_the_backend() -> None:
    client, backend = client_for()
    with client:
        wait_ready(client)
        r = client.post("/api/nodes/node02/drain", json={"reason": "fan\nnoise"})
        assert r.status_code == 200 and r.json()["ok"] is True
        assert client.post("/api/nodes/node02/resume", json={}).status_code == 200
        r = client.post("/api/nodes/node03/resume", json={})
        assert r.status_code == 502 and "Invalid node state" in r.json()["error"]
        assert client.post("/api/nodes/node09/drain", json={}).status_code == 404
        assert client.post("/api/nodes/node02/reboot", json={}).status_code == 404
    # A dashboard drain is an admin's: never "piherd:", so watch will not resume it.
    assert backend.calls == [
        ("drain", "node02", "dashboard: fan noise"),
        ("resume", "node02", ""),
        ("resume", "node03", ""),
    ]


def test_buttons_refuse_cross_site_requests() -> None:
    client, backend = client_for()
    with client:
        wait_ready(client)
        form = client.post("/api/nodes/node02/drain", data={"reason": "x"})
        assert form.status_code == 403
        other = client.post(
            "/api/nodes/node02/drain", json={}, headers={"Origin": "http://evil.example"}
        )
        assert other.status_code == 403
        same = client.post("/api/nodes/node02/drain", json={}, headers={"Origin": BASE})
        assert same.status_code == 200
    assert [c[0] for c in backend.calls] == ["drain"]


def test_metrics_parse_with_prometheus_parser() -> None:
    client, _ = client_for()
    with client:
        wait_ready(client)
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(name: str, **labels: str) -> float:
        for s in families[name].samples:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise KeyError((name, labels))

    assert value("piherd_node_up", node="node02") == 1.0
    assert value("piherd_node_up", node="node03") == 0.0
    assert value("piherd_node_load1", node="node02") == pytest.approx(1.52)
    assert value("piherd_node_temperature_celsius", node="node02") == pytest.approx(81.234)
    assert value("piherd_node_throttled", node="node02", flag="under-voltage", when="now") == 1.0
    assert value("piherd_node_throttled", node="node01", flag="under-voltage", when="now") == 0.0
    assert value("piherd_node_health_level", node="node02") == 2.0
    assert value("piherd_node_health_level", node="node01") == 0.0
    assert value("piherd_slurm_node_state", node="node02", state="drained") == 1.0
    assert value("piherd_slurm_node_state", node="node02", state="idle") == 0.0
    assert value("piherd_node_root_read_only", node="node02") == 1.0


def test_metrics_slurm_states_are_a_closed_set_and_flags_each_read_one() -> None:
    """DOWN+DRAIN+NOT_RESPONDING (node03) reads 1 in down, drained and not_responding;
    every node carries exactly the documented label values."""
    client, _ = client_for()
    with client:
        wait_ready(client)
        text = client.get("/metrics").text
    samples = [
        s
        for f in text_string_to_metric_families(text)
        if f.name == "piherd_slurm_node_state"
        for s in f.samples
    ]
    by_node: dict[str, dict[str, float]] = {}
    for s in samples:
        by_node.setdefault(s.labels["node"], {})[s.labels["state"]] = s.value
    assert set(by_node) == {"node01", "node02", "node03"}
    for states in by_node.values():
        assert tuple(states) == METRIC_STATES
    ones = {node: {k for k, v in states.items() if v == 1.0} for node, states in by_node.items()}
    assert ones == {
        "node01": {"idle"},
        "node02": {"drained"},
        "node03": {"down", "drained", "not_responding"},
    }


def test_metrics_registry_is_per_app() -> None:
    from prometheus_client import REGISTRY

    client, _ = client_for()
    with client:
        wait_ready(client)
    assert REGISTRY.get_sample_value("piherd_node_up", {"node": "node02"}) is None


def test_page_loads_nothing_external() -> None:
    html, js, css = (static_text(n) for n in ("index.html", "app.js", "style.css"))
    for text in (html, css):
        assert not re.search(r"(src|href)=\"(https?:)?//", text)
        assert "url(http" not in text
    # The only URL in the script is the SVG namespace, which is never fetched.
    assert re.findall(r"https?://[^\"']+", js) == ["http://www.w3.org/2000/svg"]
    assert ".innerHTML" not in js


@pytest.mark.parametrize(
    "host", ["evil.example:8470", "evil.example", "127.0.0.1.evil.example:8470", "10.0.0.5:8470"]
)
def test_without_a_token_other_host_names_are_refused(host: str) -> None:
    """A DNS-rebinding page (evil.example resolving to 127.0.0.1) sends its own Host."""
    client, backend = client_for()
    with client:
        wait_ready(client)
        headers = {"Host": host}
        assert client.get("/api/state", headers=headers).status_code == 400
        assert client.get("/metrics", headers=headers).status_code == 400
        assert client.get("/", headers=headers).status_code == 400
        origin = {**headers, "Origin": f"http://{host}"}
        r = client.post("/api/nodes/node02/drain", json={}, headers=origin)
        assert r.status_code == 400
    assert backend.calls == []


@pytest.mark.parametrize(
    ("bind", "host"),
    [("127.0.0.1", "127.0.0.1:8470"), ("127.0.0.1", "localhost:8470"), ("::1", "[::1]:8470")],
)
def test_without_a_token_the_served_names_work(bind: str, host: str) -> None:
    client, _ = client_for(bind=bind)
    with client:
        wait_ready(client, headers={"Host": host})
        r = client.post(
            "/api/nodes/node02/drain", json={}, headers={"Host": host, "Origin": f"http://{host}"}
        )
        assert r.status_code == 200


def test_with_a_token_any_host_name_may_ask() -> None:
    """Behind a proxy or on a LAN name the token, not the Host header, guards the data."""
    client, _ = client_for(token="s3cret", base="http://pi-head.lan:8470")
    with client:
        wait_ready(client, headers={"Authorization": "Bearer s3cret"})


def test_every_response_forbids_framing_and_foreign_content() -> None:
    client, _ = client_for()
    with client:
        wait_ready(client)
        answers = [
            client.get("/"),
            client.get("/static/app.js"),
            client.get("/static/nope.js"),
            client.get("/api/state"),
            client.get("/metrics"),
            client.post("/api/nodes/node02/drain", data={"reason": "x"}),
            client.get("/", headers={"Host": "evil.example"}),
        ]
    for r in answers:
        assert r.headers["x-frame-options"] == "DENY", r.url
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, r.url
        assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_a_blank_token_is_refused(blank: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        client_for(token=blank)
