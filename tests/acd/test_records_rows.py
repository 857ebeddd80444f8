"""ACD events as rows of the records: typed columns, one per event."""

from __future__ import annotations

from typing import Any

from switch.apps.acd.events import (
    AgentChanged,
    CallbackRequested,
    CallerAbandoned,
    CallerAnswered,
    CallerExited,
    CallerJoined,
    CallerMoved,
    OfferEnded,
)
from switch.apps.acd_records import AcdRecorder, event_row
from switch.config import ExitTarget


def test_agent_state_changes_are_agent_events() -> None:
    kind, row = event_row("demo", AgentChanged("1001", "available", "not-ready", "lunch",
                                               "pause", 50.0))  # fmt: skip
    assert kind == "agent_event"
    assert row == {"time": 50.0, "tenant": "demo", "agent": "1001", "state": "not-ready",
                   "previous": "available", "reason": "lunch", "queue": None}  # fmt: skip


def test_caller_events_are_queue_events() -> None:
    joined = event_row("demo", CallerJoined("7", "support", 2, (("en", 5),), 3, 40.0, "", 10.0))
    assert joined == ("queue_event", {
        "time": 10.0, "tenant": "demo", "queue": "support", "call_id": "7", "agent": None,
        "event": "joined", "wait": None, "position": 3, "reason": None,
        "extra": {"priority": 2, "skills": [["en", 5]], "ewt": 40.0, "sticky": None},
    })  # fmt: skip
    answered = event_row("demo", CallerAnswered("7", "support", "1001", 12.5, False, 22.5))[1]
    assert (answered["event"], answered["agent"], answered["wait"]) == ("answered", "1001", 12.5)
    abandoned = event_row("demo", CallerAbandoned("8", "support", 30.0, 2, 40.0))[1]
    assert (abandoned["event"], abandoned["wait"], abandoned["position"]) == ("abandoned", 30.0, 2)
    gone = CallerExited("9", "support", "max_wait", ExitTarget(voicemail="sales"), 120.0, 130.0)
    exited = event_row("demo", gone)[1]
    assert (exited["event"], exited["reason"], exited["extra"]) == (
        "exited", "max_wait", {"target": {"voicemail": "sales"}},
    )  # fmt: skip
    moved = event_row("demo", CallerMoved("9", "support", "overflow", "full", 131.0))[1]
    assert (moved["event"], moved["queue"], moved["extra"]) == (
        "moved", "overflow", {"previous": "support"},
    )  # fmt: skip
    missed = event_row("demo", OfferEnded("r1", "7", "1002", "no answer", 1, 15.0))[1]
    assert (missed["event"], missed["agent"], missed["reason"]) == (
        "offer_ended", "1002", "no answer",
    )  # fmt: skip
    callback = event_row("demo", CallbackRequested("7", "support", "+1555", "agent-first", 9.0))
    assert callback[1]["extra"] == {"number": "+1555", "mode": "agent-first"}


def test_the_recorder_keeps_each_row_and_survives_a_bad_event() -> None:
    kept: list[tuple[str, dict[str, Any]]] = []

    class Sink:
        def queue_event(self, row: dict[str, Any]) -> str:
            kept.append(("queue", row))
            return "q"

        def agent_event(self, row: dict[str, Any]) -> str:
            kept.append(("agent", row))
            return "a"

    recorder = AcdRecorder(Sink())
    recorder("demo", AgentChanged("1001", "available", "on-call", "answered", "answer", 1.0))
    recorder("demo", CallerAbandoned("8", "support", 3.0, 1, 4.0))
    recorder("demo", object())  # type: ignore[arg-type]  # not an event: nothing, no crash
    assert [(where, row["tenant"]) for where, row in kept] == [("agent", "demo"), ("queue", "demo")]
