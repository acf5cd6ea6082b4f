"""The watch state machine: verdicts and Slurm states in, drain/resume actions out."""

from __future__ import annotations

from piherd.health.drain_policy import Action, WatchMachine
from piherd.health.slurm_state import SlurmNode
from piherd.health.verdicts import Level, Verdict

OK = Verdict("node02", Level.OK)
UV = Verdict("node02", Level.CRITICAL, ("under-voltage",))
GONE = Verdict("node02", Level.CRITICAL, ("unreachable",))
IDLE = {"node02": SlurmNode("node02", "idle")}


def drained(reason: str, user: str = "root") -> dict[str, SlurmNode]:
    return {"node02": SlurmNode("node02", "idle", frozenset({"DRAIN"}), reason, user)}


def test_critical_node_is_drained_with_the_rule_as_reason() -> None:
    m = WatchMachine()
    actions, events = m.step(1.0, [UV], IDLE)
    assert actions == [Action("drain", "node02", "piherd: under-voltage")]
    assert [e.kind for e in events] == ["level", "drain"]
    assert events[0].message == "unknown -> critical: under-voltage"
    assert events[0].time == 1.0 and events[1].reasons == ("under-voltage",)
    # Already drained with that reason: nothing more to do.
    assert m.step(2.0, [UV], drained("piherd: under-voltage")) == ([], [])


def test_resumed_after_enough_healthy_rounds() -> None:
    m = WatchMachine(resume_after=2)
    m.step(1.0, [UV], IDLE)
    state = drained("piherd: under-voltage")
    actions, events = m.step(2.0, [OK], state)
    assert actions == [] and [e.kind for e in events] == ["level"]
    actions, events = m.step(3.0, [OK], state)
    assert actions == [Action("resume", "node02")]
    assert events[0].kind == "resume" and "under-voltage" in events[0].message


def test_admin_drain_is_never_resumed() -> None:
    m = WatchMachine(resume_after=1)
    state = drained("fan broken", user="alice")
    actions, events = m.step(1.0, [OK], state)
    assert actions == [] and [e.kind for e in events] == ["level", "hold"]
    assert "alice" in events[1].message
    # ... not even when the node is critical and healthy again later, and logged once.
    assert m.step(2.0, [UV], state)[0] == []
    assert m.step(3.0, [OK], state)[0] == []
    assert all(e.kind != "hold" for e in m.step(4.0, [OK], state)[1])


def test_unreachable_needs_consecutive_failures() -> None:
    m = WatchMachine(unreachable_after=2)
    m.step(0.0, [OK], IDLE)
    actions, events = m.step(1.0, [GONE], IDLE)
    assert actions == [] and events == []  # one failed probe is not enough
    actions, events = m.step(2.0, [GONE], IDLE)
    # Dead: marked down first (Slurm requeues its jobs now), then drained.
    assert actions == [Action("drain", "node02", "piherd: unreachable", down=True)]
    # A failure, then a success, then a failure: the count starts again.
    m2 = WatchMachine(unreachable_after=2)
    for t, v in enumerate([GONE, OK, GONE, OK]):
        assert m2.step(float(t), [v], IDLE)[0] == []


def test_no_resume_while_unreachable_or_critical() -> None:
    m = WatchMachine(unreachable_after=3, resume_after=1)
    state = drained("piherd: unreachable")
    m.step(0.0, [OK], IDLE)
    # Still drained by us and probes fail below the threshold: keep it drained.
    assert m.step(1.0, [GONE], state)[0] == []
    assert m.step(2.0, [UV], state)[0] == [Action("drain", "node02", "piherd: under-voltage")]


def test_nothing_changes_in_slurm_without_slurm_state() -> None:
    m = WatchMachine()
    actions, events = m.step(1.0, [UV], None)
    assert actions == [] and [e.kind for e in events] == ["level"]
    # Nodes Slurm does not know (the head) get levels but no actions.
    actions, _ = m.step(2.0, [Verdict("head", Level.CRITICAL, ("under-voltage",))], IDLE)
    assert actions == []


def test_event_as_dict_is_json_ready() -> None:
    _, events = WatchMachine().step(5.0, [UV], IDLE)
    d = events[1].as_dict()
    assert d["node"] == "node02" and d["kind"] == "drain" and d["reasons"] == ["under-voltage"]


def test_dead_node_already_down_and_drained_is_left_as_is() -> None:
    m = WatchMachine(unreachable_after=1)
    done = {
        "node02": SlurmNode(
            "node02", "down", frozenset({"DRAIN", "NOT_RESPONDING"}), "piherd: unreachable"
        )
    }
    assert m.step(1.0, [GONE], done)[0] == []
    # Down by piherd but not yet drained: only the drain is missing.
    half = {"node02": SlurmNode("node02", "down", frozenset(), "piherd: unreachable")}
    assert m.step(2.0, [GONE], half)[0] == [
        Action("drain", "node02", "piherd: unreachable", down=False)
    ]


def test_node_set_down_by_an_admin_is_left_alone() -> None:
    m = WatchMachine(resume_after=1)
    admin = {"node02": SlurmNode("node02", "down", frozenset(), "power supply swap", "bob")}
    assert m.step(1.0, [OK], admin)[0] == []
    assert m.step(2.0, [UV], admin)[0] == []
    # Down without a reason (Slurm's own "not responding") is not an admin decision.
    plain = {"node02": SlurmNode("node02", "down", frozenset({"NOT_RESPONDING"}))}
    assert m.step(2.5, [OK], plain)[0] == []
    slurm = {"node02": SlurmNode("node02", "down", frozenset(), "Not responding", "slurm")}
    assert m.step(2.7, [UV], slurm)[0] == [Action("drain", "node02", "piherd: under-voltage")]
    assert m.step(3.0, [UV], plain)[0] == [Action("drain", "node02", "piherd: under-voltage")]


def test_a_node_never_seen_answering_has_no_level_before_it_counts() -> None:
    """`watch --once` on a powered-off node: one failed probe logs no `unknown -> ok`."""
    m = WatchMachine(unreachable_after=2)
    assert m.step(1.0, [GONE], IDLE) == ([], [])
    actions, events = m.step(2.0, [GONE], IDLE)
    assert events[0].message == "unknown -> critical: unreachable"
    assert actions == [Action("drain", "node02", "piherd: unreachable", down=True)]


def test_a_failed_probe_is_not_a_healthy_round() -> None:
    m = WatchMachine(unreachable_after=3, resume_after=2)
    state = drained("piherd: under-voltage")
    m.step(0.0, [UV], IDLE)
    m.step(1.0, [OK], state)
    assert m.step(2.0, [GONE], state)[0] == []  # unreachable: no resume
    assert m.step(3.0, [OK], state)[0] == []  # one healthy round since
    assert m.step(4.0, [OK], state)[0] == [Action("resume", "node02")]
