"""Wrap-up: its time per queue, extensions within the cap, ending it early."""

from __future__ import annotations

import pytest

from switch.apps.acd import AcdError, QueueRules
from switch.apps.acd.events import AgentChanged, WrapupExtended

from .support import make, of_type, offers, serve

QUEUES = [QueueRules("short", wrapup=10, wrapup_max=30), QueueRules("long", wrapup=60)]
AGENTS = {"a": {"queues": {"short": 1, "long": 1}}}


def after_call(queue: str, ended: float = 100.0):
    acd = make(QUEUES, AGENTS)
    acd.join("c1", queue, 0)
    serve(acd, "a", 1)
    acd.call_ended("a", ended)
    acd.join("next", queue, ended + 0.5)  # waits for the wrap-up to end
    return acd


def test_wrap_up_time_is_the_queues() -> None:
    for queue, wrapup in (("short", 10), ("long", 60)):
        acd = after_call(queue)
        assert acd.agent("a").status == "wrap-up"
        assert acd.next_deadline() == 100 + wrapup
        assert offers(acd.handle_timer(100 + wrapup - 0.1)) == []
        assert offers(acd.handle_timer(100 + wrapup)) == [("next", ("a",))]


def test_an_agent_extends_wrap_up_within_the_cap() -> None:
    acd = after_call("short")
    assert acd.extend_wrapup("a", 15, 105) == 125
    assert acd.extend_wrapup("a", 15, 106) == 130  # capped: 30 s after the call
    assert of_type(acd.take_events(), WrapupExtended)[-1].until == 130
    with pytest.raises(AcdError, match=r"wrap-up is at its cap already \(30 s after the call\)"):
        acd.extend_wrapup("a", 5, 107)
    assert offers(acd.handle_timer(129)) == []
    assert offers(acd.handle_timer(130)) == [("next", ("a",))]


def test_default_cap_is_two_minutes_or_the_wrap_up() -> None:
    acd = after_call("long")  # wrapup 60, default wrapup_max 120
    assert acd.extend_wrapup("a", 500, 101) == 220


def test_extending_needs_a_wrap_up() -> None:
    acd = make(QUEUES, AGENTS)
    with pytest.raises(AcdError, match="agent a is available: cannot extend"):
        acd.extend_wrapup("a", 10, 1)
    with pytest.raises(AcdError, match="positive"):
        acd.extend_wrapup("a", 0, 1)


def test_ready_ends_wrap_up_early_and_not_ready_takes_over() -> None:
    acd = after_call("long")
    assert offers(acd.set_ready("a", 105)) == [("next", ("a",))]
    acd = after_call("long")
    acd.set_not_ready("a", "break", 105)
    assert offers(acd.handle_timer(200)) == []
    assert acd.agent("a").reason == "break"


def test_a_call_outside_the_acd_has_no_wrap_up() -> None:
    acd = make(QUEUES, AGENTS)
    acd.busy("a", 0)
    acd.join("c1", "short", 1)
    assert offers(acd.call_ended("a", 50)) == [("c1", ("a",))]


def test_handle_time_is_measured_from_answer_to_available() -> None:
    acd = after_call("short", ended=100)  # answered at 1, wrap-up to 110
    acd.handle_timer(110)
    assert acd.handle_time("short") == 109


def test_no_wrap_up_is_one_write_with_both_changes_told() -> None:
    acd = make([QueueRules("q", wrapup=0)], {"a": {}})
    acd.join("c1", "q", 0)
    serve(acd, "a", 1)
    acd.join("c2", "q", 2)  # waits for a
    acd.take_events()
    commits = acd.store.commits
    assert offers(acd.call_ended("a", 50)) == [("c2", ("a",))]
    # The call's end (on-call -> wrap-up -> available) and the reservation.
    assert acd.store.commits - commits == 2
    changes = [(e.old, e.new) for e in of_type(acd.take_events(), AgentChanged)]
    assert changes == [("on-call", "wrap-up"), ("wrap-up", "available"), ("available", "reserved")]
    assert acd.handle_time("q") == 49
    assert acd.agent("a").talk["q"] == 49


def test_no_wrap_up_without_a_device_ends_disconnected() -> None:
    acd = make([QueueRules("q", wrapup=0)], {"a": {}})
    acd.join("c1", "q", 0)
    serve(acd, "a", 1)
    acd.device_down("a", "a-phone", 10)  # on a call: stays on it
    acd.call_ended("a", 50)
    assert (acd.agent("a").status, acd.agent("a").reason) == ("not-ready", "disconnected")
