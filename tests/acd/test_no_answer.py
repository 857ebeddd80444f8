"""Offers not answered: back to the front, and agents who keep missing are set not ready."""

from __future__ import annotations

import pytest

from switch.apps.acd import OfferGone, QueueRules, TenantRules
from switch.apps.acd.events import NotifyAgent, OfferEnded, StopOffer

from .support import make, of_type, offers, serve


def test_an_offer_not_answered_goes_back_to_the_front() -> None:
    acd = make(QueueRules("q", ring_timeout=15), {"a": {}, "b": {}}, login=False)
    acd.login("a", 0, devices=["p"])
    commands = acd.join("c1", "q", 1)
    acd.join("c2", "q", 2)
    acd.join("c3", "q", 3)
    reservation = commands[0].reservation
    assert acd.waiting("q") == ["c2", "c3"]
    commands = acd.handle_timer(16)
    assert commands[0] == StopOffer(reservation, "c1", ("a",), "no answer")
    # c1 keeps its place (and enqueue time); a takes the next caller meanwhile.
    assert offers(commands[1:]) == [("c2", ("a",))]
    assert acd.waiting("q") == ["c1", "c3"]
    assert acd.entry("c1").enqueued_at == 1
    assert offers(acd.login("b", 17, devices=["p"])) == [("c1", ("b",))]


def test_the_agent_who_let_it_ring_is_not_offered_it_again_for_the_ring_timeout() -> None:
    acd = make(QueueRules("q", ring_timeout=15), {"a": {}})
    acd.join("c1", "q", 1)
    assert offers(acd.handle_timer(16)) == []
    assert acd.entry("c1").skips("a", 20)
    assert offers(acd.handle_timer(31)) == [("c1", ("a",))]


def test_misses_in_a_row_set_the_agent_not_ready_and_say_why() -> None:
    acd = make(QueueRules("q", ring_timeout=10), {"a": {}}, tenant=TenantRules(max_missed=2))
    acd.join("c1", "q", 0)
    acd.handle_timer(10)  # miss 1
    assert acd.agent("a").missed == 1
    commands = acd.handle_timer(20)  # offered again at 20... and rings
    assert offers(commands) == [("c1", ("a",))]
    commands = acd.handle_timer(30)  # miss 2
    assert acd.agent("a").status == "not-ready"
    assert acd.agent("a").reason == "missed calls"
    assert acd.agent("a").missed == 0
    [notice] = of_type(commands, NotifyAgent)
    assert notice.agent == "a"
    assert "the last 2 calls offered to you were not answered" in notice.message
    assert [e.missed for e in of_type(acd.take_events(), OfferEnded)] == [1, 2]


def test_an_answer_resets_the_count() -> None:
    acd = make(
        QueueRules("q", ring_timeout=10, wrapup=0), {"a": {}}, tenant=TenantRules(max_missed=2)
    )
    acd.join("c1", "q", 0)
    acd.handle_timer(10)
    acd.handle_timer(20)  # c1 offered again
    serve(acd, "a", 21)
    assert acd.agent("a").missed == 0


def test_declining_is_a_miss_and_the_caller_moves_on() -> None:
    acd = make(QueueRules("q"), {"a": {}, "b": {}})
    acd.join("c1", "q", 1)
    first = acd.reservation(acd.entry("c1").reservation).agents[0]
    other = "b" if first == "a" else "a"
    commands = acd.declined("c1", first, 2)
    assert of_type(commands, StopOffer)[0].reason == "declined"
    assert offers(commands) == [("c1", (other,))]
    assert acd.agent(first).missed == 1


def test_max_missed_zero_never_sets_not_ready() -> None:
    acd = make(QueueRules("q", ring_timeout=5), {"a": {}}, tenant=TenantRules(max_missed=0))
    acd.join("c1", "q", 0)
    for t in range(5, 200, 5):
        acd.handle_timer(float(t))
    assert acd.agent("a").status in ("available", "reserved")
    assert acd.agent("a").missed > 10


def test_an_answer_after_the_offer_is_over_is_refused() -> None:
    acd = make(QueueRules("q", ring_timeout=10), {"a": {}})
    acd.join("c1", "q", 0)
    with pytest.raises(OfferGone, match="agent a answered caller c1, whose offer to them is over"):
        acd.answered("c1", "a", 10)  # the timer fires first: the offer rang out
    assert acd.entry("c1").status == "waiting"
    with pytest.raises(OfferGone):
        acd.answered("nobody", "a", 11)


def test_every_reservation_expires() -> None:
    acd = make(QueueRules("q", ring_timeout=12), {"a": {}})
    acd.join("c1", "q", 3)
    res = acd.reservation(acd.entry("c1").reservation)
    assert res.expires_at == 15
    assert acd.next_deadline() == 15
    acd.handle_timer(15)
    assert acd.reservation(res.id) is None
