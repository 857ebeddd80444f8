"""Presence: an agent with no live device is not ready ("disconnected") at once,
and gets back what they had when a device returns."""

from __future__ import annotations

import pytest

from switch.apps.acd import AcdError, QueueRules
from switch.apps.acd.events import AgentChanged, Offer, OfferEnded, StopOffer

from .support import make, of_type, offers, serve


def test_losing_the_last_device_sets_not_ready_and_coming_back_restores() -> None:
    acd = make(QueueRules("q"), {"a": {}})
    acd.device_down("a", "a-phone", 5)
    agent = acd.agent("a")
    assert (agent.status, agent.reason) == ("not-ready", "disconnected")
    acd.join("c1", "q", 6)
    assert offers(acd.device_up("a", "a-browser", 7)) == [("c1", ("a",))]
    changes = [(e.new, e.reason, e.at) for e in of_type(acd.take_events(), AgentChanged)]
    assert changes[:2] == [("not-ready", "disconnected", 5), ("available", "", 7)]


def test_an_agent_on_a_break_stays_on_it_after_reconnecting() -> None:
    acd = make(QueueRules("q"), {"a": {}})
    acd.set_not_ready("a", "lunch", 1)
    acd.device_down("a", "a-phone", 2)
    assert acd.agent("a").reason == "disconnected"
    with pytest.raises(AcdError, match="has no device connected"):
        acd.set_ready("a", 3)
    acd.device_up("a", "a-phone", 4)
    assert (acd.agent("a").status, acd.agent("a").reason) == ("not-ready", "lunch")


def test_one_device_of_several_is_enough() -> None:
    acd = make(QueueRules("q"), {"a": {}})
    acd.device_up("a", "a-browser", 1)
    acd.device_down("a", "a-phone", 2)
    assert acd.agent("a").status == "available"
    [offer] = acd.join("c1", "q", 3)
    assert isinstance(offer, Offer) and offer.devices == (("a", ("a-browser",)),)


def test_an_offer_to_a_dead_flow_is_pulled_back_at_once() -> None:
    acd = make(QueueRules("q", ring_timeout=30), {"a": {}, "b": {}}, login=False)
    acd.login("a", 0, devices=["a-ws"])
    [offer] = acd.join("c1", "q", 1)
    acd.join("c2", "q", 2)
    commands = acd.device_down("a", "a-ws", 3)  # long before the ring timeout
    assert commands == [StopOffer(offer.reservation, "c1", ("a",), "disconnected")]
    assert acd.waiting("q") == ["c1", "c2"]  # back at the front
    [ended] = of_type(acd.take_events(), OfferEnded)
    assert (ended.reason, ended.missed) == ("disconnected", 0)  # not a miss
    assert offers(acd.login("b", 4, devices=["b-ws"])) == [("c1", ("b",))]
    assert acd.reservation(offer.reservation) is None


def test_an_agent_on_a_call_finishes_it_then_is_not_ready() -> None:
    acd = make(QueueRules("q", wrapup=30), {"a": {}})
    acd.join("c1", "q", 1)
    serve(acd, "a", 2)
    acd.device_down("a", "a-phone", 10)
    assert acd.agent("a").status == "on-call"
    acd.call_ended("a", 20)
    assert (acd.agent("a").status, acd.agent("a").reason) == ("not-ready", "disconnected")
    acd.device_up("a", "a-phone", 25)
    assert acd.agent("a").status == "available"


def test_logging_in_without_a_device_is_not_ready() -> None:
    acd = make(QueueRules("q"), {"a": {}}, login=False)
    acd.login("a", 1, devices=[])
    assert (acd.agent("a").status, acd.agent("a").reason) == ("not-ready", "disconnected")
    acd.join("c1", "q", 2)
    assert offers(acd.device_up("a", "a-phone", 3)) == [("c1", ("a",))]


def test_no_agent_is_ever_left_reserved() -> None:
    """Whatever happens to the agent, a reservation ends: answer, ring out, withdraw."""
    acd = make(QueueRules("q", ring_timeout=10), {"a": {}})
    acd.join("c1", "q", 0)
    acd.logout("a", 1)
    assert acd.agent("a").status == "logged-out"
    assert acd.store.all("reservation") == []
    assert acd.entry("c1").status == "waiting"


def test_an_agent_who_answers_another_call_while_offered_is_busy_and_the_caller_moves_on() -> None:
    acd = make(QueueRules("q"), {"a": {}, "b": {}})
    acd.set_not_ready("b", "break", 0)
    assert offers(acd.join("c1", "q", 1)) == [("c1", ("a",))]
    out = acd.busy("a", 2)  # a answered a direct call while c1 rang them
    assert [type(c) for c in out] == [StopOffer]
    [ended] = of_type(acd.take_events(), OfferEnded)
    assert (ended.agent, ended.reason, ended.missed) == ("a", "withdrawn", 0)
    assert acd.agent("a").status == "on-call"
    assert acd.waiting("q") == ["c1"]  # back at their place
    assert offers(acd.set_ready("b", 3)) == [("c1", ("b",))]
