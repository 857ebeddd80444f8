"""Sticky agent: a repeat caller goes first to the agent who served them last."""

from __future__ import annotations

from switch.apps.acd import QueueRules, TenantRules
from switch.apps.acd.events import CallerJoined

from .support import make, of_type, offers, serve

NUMBER = "+15550001"


def served_by_b(sticky_wait: float = 20.0, tenant: TenantRules | None = None, **rules):
    """a and b in queue q; NUMBER's first call was answered by b at t=2 and ended at 12."""
    acd = make(QueueRules("q", wrapup=0, sticky_wait=sticky_wait, **rules), {"a": {}, "b": {}},
               tenant=tenant, login=False)  # fmt: skip
    acd.login("b", 0, devices=["p"])
    acd.join("first", "q", 1, number=NUMBER)
    serve(acd, "b", 2)
    acd.call_ended("b", 12)
    acd.login("a", 13, devices=["p"])  # idle since 13; b since 12
    return acd


def test_a_repeat_caller_is_offered_to_the_agent_who_served_them() -> None:
    acd = served_by_b()
    # Longest idle is b (since 12) before a (since 13): use a stranger to prove the point.
    acd.join("stranger", "q", 20, number="+15559999")
    assert acd.agent("b").status == "reserved"  # longest idle took the stranger
    acd.answered("stranger", "b", 21)
    acd.call_ended("b", 25)
    # Now a is idle longest (13 < 25), but the repeat caller goes to b.
    assert offers(acd.join("again", "q", 30, number=NUMBER)) == [("again", ("b",))]
    joined = of_type(acd.take_events(), CallerJoined)[-1]
    assert joined.sticky == "b"


def test_the_caller_waits_for_a_busy_sticky_agent_within_sticky_wait() -> None:
    acd = served_by_b(sticky_wait=20)
    acd.join("other", "q", 14)  # b (idle since 12) takes it
    serve(acd, "b", 15)
    assert offers(acd.join("again", "q", 30, number=NUMBER)) == []  # a is free, not offered
    assert acd.agent("a").status == "available"
    # b frees within the 20 s: b gets the repeat caller.
    assert offers(acd.call_ended("b", 45)) == [("again", ("b",))]


def test_after_sticky_wait_anyone_may_take_the_caller() -> None:
    acd = served_by_b(sticky_wait=20)
    acd.join("other", "q", 14)
    serve(acd, "b", 15)
    acd.join("again", "q", 30, number=NUMBER)
    assert offers(acd.handle_timer(49.9)) == []
    assert offers(acd.handle_timer(50)) == [("again", ("a",))]


def test_no_waiting_for_a_sticky_agent_who_is_not_taking_calls() -> None:
    acd = served_by_b()
    acd.set_not_ready("b", "lunch", 20)
    assert offers(acd.join("again", "q", 30, number=NUMBER)) == [("again", ("a",))]


def test_a_sticky_agent_leaving_releases_their_callers_at_once() -> None:
    acd = served_by_b(sticky_wait=60)
    acd.join("other", "q", 14)
    serve(acd, "b", 15)
    acd.join("again", "q", 30, number=NUMBER)
    acd.call_ended("b", 35)  # b is offered "again" ...
    acd.set_not_ready("b", "break", 36)  # ... and goes on a break instead
    assert acd.entry("again").sticky == ""
    assert acd.agent("a").status == "reserved"


def test_kept_callers_come_first_for_their_agent() -> None:
    acd = served_by_b(sticky_wait=60)
    acd.set_not_ready("a", "break", 13.5)
    acd.join("other", "q", 14)
    serve(acd, "b", 15)
    acd.join("early", "q", 20)  # ranks ahead of the repeat caller
    acd.join("again", "q", 30, number=NUMBER)
    assert offers(acd.call_ended("b", 40)) == [("again", ("b",))]


def test_a_sticky_agent_is_reached_whatever_their_tier() -> None:
    agents = {"a": {"queues": {"q": 1}}, "b": {"queues": {"q": 2}}}
    acd = make(QueueRules("q", wrapup=0, sticky_wait=20, tier_waits=(60.0,)), agents)
    acd.set_not_ready("a", "break", 0)
    acd.join("first", "q", 100, number=NUMBER)
    acd.handle_timer(160)  # tier 2 opens: b takes it
    serve(acd, "b", 161)
    acd.call_ended("b", 170)
    acd.set_ready("a", 171)
    assert offers(acd.join("again", "q", 180, number=NUMBER)) == [("again", ("b",))]


def test_sticky_memory_forgets() -> None:
    acd = served_by_b(tenant=TenantRules(sticky_memory=100))
    acd.join("other", "q", 14)
    serve(acd, "b", 15)
    assert offers(acd.join("again", "q", 200, number=NUMBER)) == [("again", ("a",))]


def test_sticky_is_off_by_default() -> None:
    acd = served_by_b(sticky_wait=0)
    acd.join("other", "q", 14)
    serve(acd, "b", 15)
    assert offers(acd.join("again", "q", 30, number=NUMBER)) == [("again", ("a",))]
