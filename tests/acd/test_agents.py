"""The agent state machine: the table, its errors, its events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.apps.acd import TRANSITIONS, AcdError, InvalidTransition, QueueRules, transition
from switch.apps.acd.agents import RESUME, allowed_actions
from switch.apps.acd.events import AgentChanged
from switch.apps.acd.model import AgentRecord

from .support import make, of_type, serve

STATES = ("logged-out", "available", "reserved", "on-call", "wrap-up", "not-ready")
ACTIONS = sorted({action for _, action in TRANSITIONS})


@given(st.sampled_from(STATES), st.sampled_from(ACTIONS), st.floats(0, 1e9))
def test_every_pair_is_in_the_table_or_an_error(status, action, now) -> None:
    agent = AgentRecord("1001", status=status, version=4, resume=("not-ready", "lunch"))
    target = TRANSITIONS.get((status, action))
    if target is None:
        with pytest.raises(InvalidTransition) as caught:
            transition(agent, action, now)
        assert str(caught.value).startswith(f"agent 1001 is {status}: cannot {action} ")
        assert isinstance(caught.value, AcdError)
        return
    new, event = transition(agent, action, now, "lunch" if target == "not-ready" else "")
    expected = "not-ready" if target == RESUME else target
    assert new.status == expected
    assert new.version == 5
    assert event == AgentChanged("1001", status, expected, event.reason, action, now)


def test_error_says_what_the_agent_could_do() -> None:
    agent = AgentRecord("1001", status="on-call")
    with pytest.raises(InvalidTransition) as caught:
        transition(agent, "logout", 5.0)
    assert str(caught.value) == (
        "agent 1001 is on-call: cannot logout (from on-call an agent can: hangup)"
    )
    assert allowed_actions("logged-out") == ["login"]


def test_becoming_available_starts_the_idle_clock_and_since() -> None:
    agent = AgentRecord("1001", status="wrap-up", since=10.0, idle_since=3.0)
    new, _ = transition(agent, "wrapup-end", 42.0)
    assert (new.status, new.since, new.idle_since) == ("available", 42.0, 42.0)
    again, _ = transition(new, "not-ready", 50.0, "break")
    assert (again.reason, again.idle_since) == ("break", 42.0)


def test_disconnect_remembers_where_to_come_back_to() -> None:
    on_break = AgentRecord("1001", status="not-ready", reason="lunch")
    lost, event = transition(on_break, "disconnect", 1.0)
    assert (lost.status, lost.reason, lost.resume) == (
        "not-ready",
        "disconnected",
        ("not-ready", "lunch"),
    )
    assert event.reason == "disconnected"
    back, _ = transition(lost, "reconnect", 2.0)
    assert (back.status, back.reason, back.resume) == ("not-ready", "lunch", None)

    ready = AgentRecord("1002", status="available")
    lost, _ = transition(ready, "disconnect", 1.0)
    # A second disconnect (another device) keeps what was remembered first.
    lost_again, _ = transition(lost, "disconnect", 1.5)
    back, _ = transition(lost_again, "reconnect", 2.0)
    assert back.status == "available"


def test_engine_records_every_change_with_its_time() -> None:
    acd = make(QueueRules("support", wrapup=5), {"1001": {}}, login=False)
    acd.login("1001", 1.0, devices=["phone"])
    acd.join("c1", "support", 2.0)
    serve(acd, "1001", 3.0)
    acd.call_ended("1001", 10.0)
    acd.handle_timer(15.0)
    acd.set_not_ready("1001", "lunch", 16.0)
    acd.set_ready("1001", 20.0)
    acd.logout("1001", 30.0)
    changes = [(e.old, e.new, e.action, e.at) for e in of_type(acd.take_events(), AgentChanged)]
    assert changes == [
        ("logged-out", "available", "login", 1.0),
        ("available", "reserved", "reserve", 2.0),
        ("reserved", "on-call", "answer", 3.0),
        ("on-call", "wrap-up", "hangup", 10.0),
        ("wrap-up", "available", "wrapup-end", 15.0),
        ("available", "not-ready", "not-ready", 16.0),
        ("not-ready", "available", "ready", 20.0),
        ("available", "logged-out", "logout", 30.0),
    ]


def test_reasons_are_the_tenants() -> None:
    acd = make(QueueRules("support"), {"1001": {}})
    with pytest.raises(
        AcdError,
        match=r"'nap' is not a not-ready reason of this tenant \(reasons: break, lunch, meeting",
    ):
        acd.set_not_ready("1001", "nap", 1.0)
    with pytest.raises(AcdError, match="'disconnected' is set by the ACD itself"):
        acd.set_not_ready("1001", "disconnected", 1.0)
    with pytest.raises(InvalidTransition, match="agent 1001 is available: cannot ready"):
        acd.set_ready("1001", 1.0)
    with pytest.raises(AcdError, match="no agent '1009'"):
        acd.set_ready("1009", 1.0)


def test_an_agent_on_a_call_cannot_log_out_or_take_a_break() -> None:
    acd = make(QueueRules("support"), {"1001": {}})
    acd.join("c1", "support", 1.0)
    serve(acd, "1001", 2.0)
    with pytest.raises(InvalidTransition, match="on-call: cannot logout"):
        acd.logout("1001", 3.0)
    with pytest.raises(InvalidTransition, match="on-call: cannot not-ready"):
        acd.set_not_ready("1001", "break", 3.0)
    assert acd.agent("1001").status == "on-call"
