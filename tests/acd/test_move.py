"""A supervisor moves a waiting caller: to another queue, to the front, or both."""

from __future__ import annotations

import pytest

from switch.apps.acd import AcdError, QueueRules
from switch.apps.acd.events import CallerMoved, Moved, OfferEnded, StopOffer

from .support import make, of_type, offers, serve


def busy_acd():
    """Queues a and b; agent x (in a only) and y (in b only) both on a call."""
    acd = make(
        [QueueRules("a"), QueueRules("b")],
        {"x": {"queues": {"a": 1}}, "y": {"queues": {"b": 1}}},
    )
    acd.join("hold-x", "a", 0)
    serve(acd, "x", 0.5)
    acd.join("hold-y", "b", 0)
    serve(acd, "y", 0.5)
    acd.take_events()
    return acd


def test_move_to_another_queue_keeps_the_enqueue_time_and_is_an_event() -> None:
    acd = busy_acd()
    acd.join("c1", "a", 10)
    out = acd.move("c1", 20, queue="b")
    assert of_type(out, Moved) == [Moved("c1", "a", "b")]
    assert acd.waiting("a") == [] and acd.waiting("b") == ["c1"]
    entry = acd.entry("c1")
    assert entry is not None and entry.queue == "b" and entry.enqueued_at == 10
    moved = of_type(acd.take_events(), CallerMoved)
    assert moved == [CallerMoved("c1", "a", "b", "supervisor", 20)]


def test_moved_caller_keeps_seniority_over_later_callers_of_the_new_queue() -> None:
    acd = busy_acd()
    acd.join("early", "a", 5)
    acd.join("late", "b", 10)
    acd.move("early", 20, queue="b")
    assert acd.waiting("b") == ["early", "late"]


def test_front_puts_the_caller_first_in_their_own_queue() -> None:
    acd = busy_acd()
    for i, t in enumerate((10, 11, 12)):
        acd.join(f"c{i}", "a", t)
    out = acd.move("c2", 20, front=True)
    assert acd.waiting("a") == ["c2", "c0", "c1"]
    assert acd.position("c2") == 1
    assert of_type(out, Moved) == []  # same queue: no new music
    # And the next free agent of the queue takes them first.
    acd.call_ended("x", 30)
    out = acd.set_ready("x", 31)
    assert offers(out) == [("c2", ("x",))]


def test_move_to_another_queue_and_its_front() -> None:
    acd = busy_acd()
    acd.join("b1", "b", 1)
    acd.join("b2", "b", 2)
    acd.join("a1", "a", 10)
    acd.move("a1", 20, queue="b", front=True)
    assert acd.waiting("b") == ["a1", "b1", "b2"]


def test_moving_a_caller_being_rung_withdraws_the_offer_without_a_miss() -> None:
    acd = make(
        [QueueRules("a"), QueueRules("b")],
        {"x": {"queues": {"a": 1}}, "y": {"queues": {"b": 1}}},
    )
    acd.join("hold-y", "b", 0)
    serve(acd, "y", 0.5)
    out = acd.join("c1", "a", 1)
    assert offers(out) == [("c1", ("x",))]
    acd.take_events()
    out = acd.move("c1", 2, queue="b")
    assert [(s.caller, s.agents, s.reason) for s in of_type(out, StopOffer)] == [
        ("c1", ("x",), "withdrawn")
    ]
    ended = of_type(acd.take_events(), OfferEnded)
    assert [(e.agent, e.reason, e.missed) for e in ended] == [("x", "withdrawn", 0)]
    assert acd.agent("x").status == "available"
    assert acd.waiting("b") == ["c1"]


def test_a_full_queue_refuses_the_move_and_the_caller_stays() -> None:
    acd = make(
        [QueueRules("a"), QueueRules("b", max_len=1)],
        {"x": {"queues": {"a": 1}}, "y": {"queues": {"b": 1}}},
    )
    for agent, queue in (("x", "a"), ("y", "b")):
        acd.join(f"hold-{agent}", queue, 0)
        serve(acd, agent, 0.5)
    acd.join("b1", "b", 1)
    acd.join("c1", "a", 2)
    with pytest.raises(AcdError, match="'b' is full: caller c1 stays in 'a'"):
        acd.move("c1", 3, queue="b")
    assert acd.waiting("a") == ["c1"]


def test_bad_moves_say_what_is_wrong() -> None:
    acd = busy_acd()
    acd.join("c1", "a", 1)
    with pytest.raises(AcdError, match="no queue 'zzz'"):
        acd.move("c1", 2, queue="zzz")
    with pytest.raises(AcdError, match="not waiting in a queue"):
        acd.move("nobody", 2, queue="b")
    with pytest.raises(AcdError, match="in queue 'a' already"):
        acd.move("c1", 2, queue="a")
    assert acd.waiting("a") == ["c1"]
