"""Limits and exits: max wait, max length, empty queues, hours; abandons with their wait."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from switch.apps.acd import MAX_HOPS, AcdError, QueueRules
from switch.apps.acd.events import (
    CallerAbandoned,
    CallerExited,
    CallerMoved,
    Moved,
    SendTo,
)
from switch.apps.acd.hours import TenantCalendar
from switch.config import ExitTarget, Hours

from .support import make, of_type, offers, serve

VOICEMAIL = ExitTarget(voicemail="support")
HANG_UP = ExitTarget(message="")


def busy(queues, agents=None):
    agents = agents or {"a": {"queues": {queues[0].name: 1}}}
    acd = make(queues, agents)
    for agent in agents:
        acd.join(f"hold-{agent}", queues[0].name, 0)
        serve(acd, agent, 0.5)
    acd.take_events()
    return acd


def test_max_wait_sends_the_caller_where_the_exit_says() -> None:
    acd = busy([QueueRules("q", max_wait=60, exits={"max_wait": VOICEMAIL})])
    acd.join("c1", "q", 10)
    assert acd.handle_timer(69) == []
    assert acd.handle_timer(70) == [SendTo("c1", "q", "max_wait", VOICEMAIL)]
    assert acd.entry("c1") is None
    [exited] = of_type(acd.take_events(), CallerExited)
    assert (exited.reason, exited.target, exited.wait) == ("max_wait", VOICEMAIL, 60)


def test_max_wait_waits_for_an_offer_ringing() -> None:
    acd = make(QueueRules("q", max_wait=30, ring_timeout=20), {"a": {}}, login=False)
    acd.join("c1", "q", 0)
    acd.login("a", 15, devices=["p"])  # rung from 15 to 35
    assert acd.handle_timer(30) == []
    assert acd.handle_timer(35)[-1] == SendTo("c1", "q", "max_wait", HANG_UP)


def test_a_full_queue_sends_new_callers_away() -> None:
    acd = busy([QueueRules("q", max_len=2, exits={"full": ExitTarget(message="Busy, sorry.")})])
    acd.join("c1", "q", 1)
    acd.join("c2", "q", 2)
    [out] = acd.join("c3", "q", 3)
    assert out == SendTo("c3", "q", "full", ExitTarget(message="Busy, sorry."))
    assert acd.waiting("q") == ["c1", "c2"]


def test_join_empty_refuses_callers_nobody_could_take() -> None:
    rules = QueueRules("q", join_empty=False, exits={"empty": ExitTarget(ivr="main")})
    acd = make(rules, {"a": {"skills": {"english": 5}}})
    assert acd.join("c1", "q", 1, skills={"french": 2}) == [
        SendTo("c1", "q", "empty", ExitTarget(ivr="main"))
    ]
    serve_commands = acd.join("c2", "q", 2, skills={"english": 3})
    assert offers(serve_commands) == [("c2", ("a",))]
    acd.answered("c2", "a", 3)
    # A busy agent still staffs the queue: callers may join and wait.
    assert acd.join("c3", "q", 4) == []
    acd.call_ended("a", 10)
    acd.set_not_ready("a", "lunch", 11)
    assert acd.join("c4", "q", 12)[0].reason == "empty"


def test_leave_when_empty_sends_waiting_callers_on_when_the_last_agent_goes() -> None:
    rules = QueueRules("q", leave_when_empty=True, exits={"empty": VOICEMAIL})
    acd = busy([rules], {"a": {}, "b": {}})
    acd.join("c1", "q", 1)
    acd.join("c2", "q", 2)
    acd.call_ended("a", 3)  # a takes c1 (wrap-up 10 s first)
    acd.set_not_ready("a", "break", 4)
    assert acd.entry("c1") is not None  # b still staffs the queue
    acd.call_ended("b", 5)
    commands = acd.set_not_ready("b", "break", 6)
    assert sorted(c.caller for c in commands if isinstance(c, SendTo)) == ["c1", "c2"]
    assert acd.waiting("q") == []


def test_leave_when_empty_follows_presence_too() -> None:
    rules = QueueRules("q", leave_when_empty=True)
    acd = make(rules, {"a": {}})
    acd.join("hold", "q", 0)
    acd.join("c1", "q", 1)
    commands = acd.device_down("a", "a-phone", 2)
    assert sorted(c.caller for c in commands if isinstance(c, SendTo)) == ["c1", "hold"]


def at(text: str, zone: str = "Europe/London") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_closed_queues_send_callers_away() -> None:
    days = {key: ["09:00-17:00"] for key in ("mon", "tue", "wed", "thu", "fri")}
    hours = Hours.model_validate({"timezone": "Europe/London", **days, "holidays": ["12-25"]})
    calendar = TenantCalendar("office", {"office": hours})
    rules = QueueRules("q", calendar=calendar, exits={"closed": ExitTarget(ivr="after-hours")})
    acd = make(rules, {"a": {}})
    assert acd.join("early", "q", at("2025-12-22T08:59"))[0] == SendTo(
        "early", "q", "closed", ExitTarget(ivr="after-hours")
    )
    assert offers(acd.join("open", "q", at("2025-12-22T09:00"))) == [("open", ("a",))]
    acd.hangup("open", at("2025-12-22T09:01"))
    assert acd.join("xmas", "q", at("2025-12-25T12:00"))[0].reason == "closed"
    assert acd.join("saturday", "q", at("2025-12-27T12:00"))[0].reason == "closed"


def test_overflow_to_another_queue_keeps_the_callers_seniority() -> None:
    queues = [
        QueueRules("billing", max_wait=60, exits={"max_wait": ExitTarget(queue="support")}),
        QueueRules("support", wrapup=0),
    ]
    agents = {"a": {"queues": {"billing": 1}}, "s": {"queues": {"support": 1}}}
    acd = make(queues, agents)
    acd.join("hold-a", "billing", 0)
    serve(acd, "a", 0.5)
    acd.join("hold-s", "support", 0)
    serve(acd, "s", 0.5)
    acd.join("b1", "billing", 10)
    acd.join("s1", "support", 30)
    commands = acd.handle_timer(70)
    assert commands == [Moved("b1", "billing", "support")]
    [moved] = of_type(acd.take_events(), CallerMoved)
    assert (moved.old, moved.new, moved.reason) == ("billing", "support", "max_wait")
    entry = acd.entry("b1")
    assert (entry.queue, entry.enqueued_at, entry.joined_at) == ("support", 10, 70)
    # b1 joined support after s1 but has waited longer: it is offered first.
    assert acd.waiting("support") == ["b1", "s1"]
    assert offers(acd.call_ended("s", 80)) == [("b1", ("s",))]


def test_overflow_loops_end() -> None:
    queues = [
        QueueRules("a", max_wait=10, exits={"max_wait": ExitTarget(queue="b")}),
        QueueRules("b", max_wait=10, exits={"max_wait": ExitTarget(queue="a")}),
    ]
    acd = make(queues, {})
    acd.join("c1", "a", 0)
    out = []
    for t in range(10, 200, 10):
        out += acd.handle_timer(float(t))
    assert len(of_type(out, Moved)) == MAX_HOPS
    assert out[-1] == SendTo("c1", "a" if MAX_HOPS % 2 == 0 else "b", "max_wait", HANG_UP)


def test_an_abandon_is_recorded_with_its_wait_and_position() -> None:
    acd = busy([QueueRules("q")])
    acd.join("c1", "q", 10)
    acd.join("c2", "q", 20)
    acd.hangup("c2", 45)
    acd.hangup("c2", 46)  # told twice: the second is ignored
    [abandon] = of_type(acd.take_events(), CallerAbandoned)
    assert (abandon.caller, abandon.wait, abandon.position) == ("c2", 25, 2)
    assert acd.waiting("q") == ["c1"]


def test_an_abandon_while_ringing_frees_the_agent() -> None:
    acd = make(QueueRules("q"), {"a": {}})
    assert offers(acd.join("c1", "q", 1)) == [("c1", ("a",))]
    commands = acd.hangup("c1", 3)
    assert commands[0].reason == "caller left"
    assert acd.agent("a").status == "available" and acd.agent("a").missed == 0


def test_bad_joins_say_what_is_wrong() -> None:
    acd = make(QueueRules("q"), {})
    with pytest.raises(AcdError, match=r"no queue 'nope' \(queues: q\)"):
        acd.join("c1", "nope", 0)
    acd.join("c1", "q", 0)
    with pytest.raises(AcdError, match="caller 'c1' is already in queue 'q'"):
        acd.join("c1", "q", 1)
    with pytest.raises(AcdError, match="level 11 is not between 1 and 10"):
        acd.join("c2", "q", 1, skills={"english": 11})
