"""The CTI event shapes the README documents, from each ACD event (pure)."""

from __future__ import annotations

from switch.apps.acd.events import (
    CallerAbandoned,
    CallerAnswered,
    CallerExited,
    CallerMoved,
    Decided,
    OfferEnded,
    WrapupExtended,
)
from switch.config import ExitTarget
from switch.web.cti_events import audience, from_acd, queues_touched


def test_each_acd_event_becomes_its_documented_cti_event():
    cases = [
        (CallerAnswered("12", "support", "1001", 30.0, False, 5.0),
         {"type": "caller.answered", "call_id": 12, "queue": "support", "agent": "1001",
          "wait": 30.0}),
        (CallerAbandoned("12", "support", 9.0, 2, 5.0),
         {"type": "caller.left", "call_id": 12, "queue": "support", "reason": "abandoned",
          "wait": 9.0}),
        (CallerExited("12", "support", "max_wait", ExitTarget(message=""), 60.0, 5.0),
         {"type": "caller.left", "call_id": 12, "queue": "support", "reason": "max_wait",
          "wait": 60.0}),
        (CallerMoved("12", "support", "sales", "supervisor", 5.0),
         {"type": "caller.moved", "call_id": 12, "old": "support", "queue": "sales",
          "reason": "supervisor"}),
        (OfferEnded("r1", "12", "1001", "no answer", 1, 5.0),
         {"type": "offer.ended", "call_id": 12, "agent": "1001", "reason": "no answer"}),
        (WrapupExtended("1001", 99.0, 5.0),
         {"type": "agent.wrapup", "agent": "1001", "until": 99.0}),
    ]  # fmt: skip
    for item, expected in cases:
        event = from_acd("acme", item, None, 5.0)
        assert event == {**expected, "tenant": "acme", "at": 5.0}, item


def test_routing_explanations_are_not_on_the_feed():
    assert from_acd("acme", Decided(None, 1.0), None, 1.0) is None  # type: ignore[arg-type]


def test_who_sees_what_and_which_stats_change():
    offered = {"type": "call.offered", "agents": ["1001", "1002"], "queue": "support"}
    assert audience(offered) == ({"1001", "1002"}, None)
    assert audience({"type": "queue.stats", "queue": "support"}) == (set(), "support")
    state = {"type": "agent.state", "agent": "1002"}
    assert audience(state) == ({"1002"}, None)
    assert queues_touched(state, {"1002": ["support", "sales"]}) == {"support", "sales"}
    moved = {"type": "caller.moved", "old": "support", "queue": "sales"}
    assert queues_touched(moved, {}) == {"support", "sales"}
