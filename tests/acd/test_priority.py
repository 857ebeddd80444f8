"""Rank across queues: longest wait first, priority as a head start that cannot starve anyone."""

from __future__ import annotations

import pytest

from switch.apps.acd import AcdError, QueueRules
from switch.apps.acd.events import CallerJoined

from .support import make, of_type, offers, serve


def busy_agent(queues: list[QueueRules], agent_queues: dict[str, int]):
    acd = make(queues, {"a": {"queues": agent_queues}})
    acd.join("hold", queues[0].name, 0)
    serve(acd, "a", 1)
    return acd


def next_offer(acd, now: float) -> str:
    """The agent hangs up at `now` (no wrap-up): who is offered next."""
    [(caller, _)] = offers(acd.call_ended("a", now))
    serve(acd, "a", now + 1)
    return caller


def test_fifo_within_equal_priority() -> None:
    acd = busy_agent([QueueRules("q", wrapup=0)], {"q": 1})
    for i, t in enumerate((5, 6, 7, 8)):
        acd.join(f"c{i}", "q", t)
    assert acd.waiting("q") == ["c0", "c1", "c2", "c3"]
    assert [next_offer(acd, 100.0 * n) for n in (1, 2, 3, 4)] == ["c0", "c1", "c2", "c3"]


def test_vip_numbers_jump_the_line() -> None:
    rules = QueueRules("q", wrapup=0, vip=frozenset({"+15550001"}), vip_priority=3)
    acd = busy_agent([rules], {"q": 1})
    acd.take_events()
    acd.join("c1", "q", 10, number="+15559999")
    acd.join("vip", "q", 20, number="+15550001")
    joined = of_type(acd.take_events(), CallerJoined)
    assert [(e.caller, e.priority, e.position) for e in joined] == [("c1", 0, 1), ("vip", 3, 1)]
    assert next_offer(acd, 50) == "vip"


def test_priority_set_by_the_ivr() -> None:
    acd = busy_agent([QueueRules("q", wrapup=0)], {"q": 1})
    acd.join("c1", "q", 10)
    acd.join("c2", "q", 20, priority=1)
    assert next_offer(acd, 50) == "c2"
    with pytest.raises(AcdError, match=r"priority 10 is not 0\.\.9"):
        acd.join("c3", "q", 30, priority=10)


def test_priority_is_a_head_start_not_a_pass() -> None:
    """priority_step 60 s x priority 5: a VIP ranks as if 300 s earlier, no more."""
    acd = busy_agent([QueueRules("q", wrapup=0, priority_step=60.0)], {"q": 1})
    acd.join("old", "q", 10)
    acd.join("vip-late", "q", 311, priority=5)  # ranks as 11: behind "old"
    acd.join("vip-soon", "q", 309, priority=5)  # ranks as 9: ahead of "old"
    assert [next_offer(acd, t) for t in (400, 500, 600)] == ["vip-soon", "old", "vip-late"]


def test_a_stream_of_vips_does_not_starve_anyone() -> None:
    """One agent, a VIP every 10 s taking 10 s each: the ordinary caller still
    gets the agent once no VIP ranks ahead of them, 300 s after they joined."""
    acd = busy_agent([QueueRules("q", wrapup=0, priority_step=60.0)], {"q": 1})
    acd.join("ordinary", "q", 5)
    served_at = None
    for n in range(60):
        t = 10.0 + 10 * n
        acd.join(f"vip{n}", "q", t, priority=5)
        commands = acd.call_ended("a", t + 0.5)
        [(caller, _)] = offers(commands)
        serve(acd, "a", t + 0.6)
        if caller == "ordinary":
            served_at = t + 0.5
            break
    assert served_at is not None
    assert 300 <= served_at - 5 <= 320


def test_across_queues_the_longest_waiting_caller_wins() -> None:
    acd = busy_agent([QueueRules("q1", wrapup=0), QueueRules("q2", wrapup=0)], {"q1": 1, "q2": 1})
    acd.join("q1-late", "q1", 20)
    acd.join("q2-early", "q2", 10)
    acd.join("q1-early", "q1", 15)
    assert [next_offer(acd, t) for t in (100, 200, 300)] == ["q2-early", "q1-early", "q1-late"]


def test_queue_weight_is_a_head_start_for_the_whole_queue() -> None:
    queues = [QueueRules("normal", wrapup=0), QueueRules("gold", wrapup=0, weight=1)]
    acd = busy_agent(queues, {"normal": 1, "gold": 1})
    acd.join("n", "normal", 10)
    acd.join("g", "gold", 60)  # weight 1 x 60 s: ranks as 0, ahead of n
    acd.join("g2", "gold", 80)  # ranks as 20: behind n
    assert [next_offer(acd, t) for t in (100, 200, 300)] == ["g", "n", "g2"]


def test_equal_ranks_go_by_arrival() -> None:
    queues = [QueueRules("a", wrapup=0), QueueRules("b", wrapup=0)]
    acd = busy_agent(queues, {"a": 1, "b": 1})
    acd.join("first", "b", 10)
    acd.join("second", "a", 10)
    assert [next_offer(acd, t) for t in (100, 200)] == ["first", "second"]
