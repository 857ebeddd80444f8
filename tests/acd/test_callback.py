"""Callbacks keep the caller's place and enqueue time, are never dialled twice,
and never outnumber the agents free for them."""

from __future__ import annotations

import pytest

from switch.apps.acd import AcdError, QueueRules
from switch.apps.acd.events import (
    CallbackDialled,
    CallbackEnded,
    CallbackRequested,
    CallerAnswered,
    DialCallback,
    Offer,
    OfferCallback,
    StopOffer,
)

from .support import make, of_type, offers, serve


def queue(mode: str, **rules) -> QueueRules:
    return QueueRules("q", wrapup=0, callback_mode=mode, **rules)


def busy(mode: str, agents=("a",), **rules):
    """Every agent busy on a call; returns the acd."""
    acd = make(queue(mode, **rules), {agent: {} for agent in agents})
    for n, agent in enumerate(agents):
        acd.join(f"hold{n}", "q", 0)
        serve(acd, agent, 0.5)
    return acd


def test_a_callback_keeps_the_callers_place_and_enqueue_time() -> None:
    acd = busy("agent-first")
    acd.join("c1", "q", 10, number="+15550001")
    acd.join("c2", "q", 20)
    acd.request_callback("c1", 30)
    entry = acd.entry("c1")
    assert (entry.enqueued_at, entry.callback.number) == (10, "+15550001")
    assert acd.waiting("q") == ["c1", "c2"]
    [requested] = of_type(acd.take_events(), CallbackRequested)
    assert (requested.mode, requested.number) == ("agent-first", "+15550001")
    assert offers(acd.call_ended("a", 100)) == [("c1", ("a",))]


def test_agent_first_rings_the_agent_then_dials_the_customer() -> None:
    acd = busy("agent-first")
    acd.join("c1", "q", 10)
    acd.request_callback("c1", 11, number="+15550002")
    [offer] = acd.call_ended("a", 50)
    assert isinstance(offer, Offer) and offer.callback
    acd.take_events()
    [dial] = acd.answered("c1", "a", 53)
    assert dial == DialCallback(offer.reservation, "c1", "q", "+15550002", "a", "agent-first", 30.0)
    events = acd.take_events()
    assert of_type(events, CallerAnswered)[0].callback is True
    assert of_type(events, CallbackDialled)[0].agent == "a"
    assert acd.entry("c1") is None
    acd.callback_result("c1", True, 60)
    [ended] = of_type(acd.take_events(), CallbackEnded)
    assert (ended.answered, ended.wait) == (True, 50)


def test_customer_first_holds_the_agent_and_dials_the_customer() -> None:
    acd = busy("customer-first")
    acd.join("c1", "q", 10)
    acd.request_callback("c1", 11, number="+15550003")
    [dial] = acd.call_ended("a", 50)
    assert isinstance(dial, DialCallback) and dial.mode == "customer-first"
    assert dial.agent == "a" and acd.agent("a").status == "reserved"
    assert acd.entry("c1").callback.dialled
    # The customer answers: now the held agent is rung.
    [offer] = acd.callback_result("c1", True, 60)
    assert offer == Offer(dial.reservation, "c1", "q", ("a",), (("a", ("a-phone",)),), 80.0, True)
    acd.take_events()
    acd.answered("c1", "a", 62)
    assert of_type(acd.take_events(), CallerAnswered)[0].callback is True


def test_a_callback_needs_a_number() -> None:
    acd = busy("customer-first")
    acd.join("c1", "q", 10)
    with pytest.raises(AcdError, match="caller c1 has no number to call back at: give one"):
        acd.request_callback("c1", 11)
    acd.request_callback("c1", 12, number="+15550003")
    with pytest.raises(AcdError, match="has already asked for a callback"):
        acd.request_callback("c1", 13, number="+15550003")
    with pytest.raises(AcdError, match="no callback of caller c1 is being dialled"):
        acd.callback_result("c1", True, 20)


def test_customer_not_answering_ends_the_callback_once() -> None:
    acd = busy("customer-first")
    acd.join("c1", "q", 10, number="+15550005")
    acd.request_callback("c1", 11)
    acd.join("c2", "q", 12)
    [dial] = acd.call_ended("a", 50)
    commands = acd.callback_result("c1", False, 70)
    assert commands[0] == StopOffer(dial.reservation, "c1", ("a",), "callback failed")
    assert offers(commands) == [("c2", ("a",))]
    assert acd.entry("c1") is None
    assert [(e.answered, e.wait) for e in of_type(acd.take_events(), CallbackEnded)] == [
        (False, 60)
    ]


def test_a_callback_is_never_dialled_twice() -> None:
    acd = busy("customer-first", agents=("a", "b"))
    acd.join("c1", "q", 10, number="+15550006")
    acd.request_callback("c1", 11)
    [dial] = acd.call_ended("a", 50)
    # The held agent's browser dies while the customer is dialled.
    acd.device_down("a", "a-phone", 55)
    commands = acd.call_ended("b", 56)  # b is free, but c1 is not dialled again
    assert not of_type(commands, DialCallback)
    assert acd.agent("b").status == "available"
    # The customer answers: they wait as a live caller, at their place, and b takes them.
    commands = acd.callback_result("c1", True, 60)
    assert offers(commands) == [("c1", ("b",))]
    assert acd.entry("c1").callback is None
    dialled = of_type(acd.take_events(), CallbackDialled)
    assert len(dialled) == 1 and dialled[0].agent == dial.agent


def test_callbacks_dialling_never_outnumber_free_agents() -> None:
    acd = busy("customer-first", agents=("a", "b", "c"))
    for n in range(5):
        acd.join(f"cb{n}", "q", 10 + n, number=f"+1555000{n}")
        acd.request_callback(f"cb{n}", 20)
    dials = of_type(acd.call_ended("b", 50), DialCallback)
    assert [d.caller for d in dials] == ["cb0"]
    dials = of_type(acd.call_ended("a", 51), DialCallback)
    assert [d.caller for d in dials] == ["cb1"]
    assert len(acd.store.all("reservation")) == 2


def test_a_callback_is_offered_when_the_estimated_wait_is_long() -> None:
    acd = busy("agent-first", callback_offer_ewt=60.0)
    # The one agent is busy with a call of about DEFAULT_TALK (180 s): a long wait.
    commands = acd.join("c1", "q", 10, number="+15550007")
    [offer] = of_type(commands, OfferCallback)
    assert offer.caller == "c1" and offer.ewt >= 60
    assert acd.entry("c1").callback_offered
    # Offered once: announcements later do not offer it again.
    acd2 = make(queue("agent-first", callback_offer_ewt=60.0, announce_every=30.0), {"a": {}})
    acd2.join("hold", "q", 0)
    serve(acd2, "a", 1)
    first = acd2.join("c1", "q", 10, number="+15550007")
    assert len(of_type(first, OfferCallback)) == 1
    later = acd2.handle_timer(40) + acd2.handle_timer(70)
    assert of_type(later, OfferCallback) == []


def test_no_callback_is_offered_when_the_wait_is_short() -> None:
    acd = make(queue("agent-first", callback_offer_ewt=60.0), {"a": {}, "b": {}})
    acd.join("hold", "q", 0)
    assert of_type(acd.join("c1", "q", 1, number="+15550008"), OfferCallback) == []


def test_a_queue_without_callbacks_says_so() -> None:
    acd = busy("off")
    acd.join("c1", "q", 10, number="+15550009")
    with pytest.raises(
        AcdError, match=r'set its callback\.mode to "agent-first" or "customer-first"'
    ):
        acd.request_callback("c1", 11)


def test_limits_do_not_send_a_callback_away() -> None:
    acd = busy("agent-first", max_wait=30.0)
    acd.join("c1", "q", 10, number="+15550010")
    acd.request_callback("c1", 11)
    acd.handle_timer(100)
    assert acd.entry("c1") is not None
